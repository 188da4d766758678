"""Check in a fresh interpreter which heavy modules a hook module pulls in, and when.

Two moments count: importing the hook module (``asklepios plugins``, ``asklepios run`` gathering
lifecycle hooks) and running its registration hooks and reading every component's doc
(``asklepios validate``, ``components``, ``schema``). Neither may import torch or its kin.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["HeavyImports", "heavy_imports"]

_PROBE = """
import importlib, json, sys
heavy = json.loads(sys.argv[2])
before = set(sys.modules)
def loaded():
    return sorted(m for m in heavy if m in sys.modules and m not in before)
module = importlib.import_module(sys.argv[1])
at_import = loaded()
from asklepios_sdk.testing._collect import collect
for entry in collect(module, sys.argv[3]).entries:
    entry.doc
print(json.dumps([at_import, loaded()]))
"""


@dataclass(frozen=True)
class HeavyImports:
    """Heavy modules loaded by importing a hook module, and by then registering its components."""

    at_import: tuple[str, ...]
    at_registration: tuple[str, ...]


def heavy_imports(
    module: str, heavy: Sequence[str], plugin_id: str, timeout: float = 60.0
) -> HeavyImports:
    """Import ``module`` and run its registration hooks in a subprocess; report heavy imports.

    The subprocess sees this interpreter's ``sys.path``, so in-tree and temporary plugins resolve
    as they do in the test session. Raises RuntimeError with the subprocess's stderr if the import
    fails.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, module, json.dumps(list(heavy)), plugin_id],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"importing {module!r} in a fresh interpreter failed:\n{proc.stderr}")
    at_import, at_registration = json.loads(proc.stdout.strip().splitlines()[-1])
    return HeavyImports(tuple(at_import), tuple(at_registration))
