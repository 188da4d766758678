"""Check in a fresh interpreter which heavy modules importing a hook module pulls in."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence

__all__ = ["heavy_imports"]

_PROBE = """
import importlib, json, sys
before = set(sys.modules)
importlib.import_module(sys.argv[1])
heavy = json.loads(sys.argv[2])
loaded = sorted(m for m in heavy if m in sys.modules and m not in before)
print(json.dumps(loaded))
"""


def heavy_imports(module: str, heavy: Sequence[str], timeout: float = 60.0) -> list[str]:
    """Import ``module`` in a subprocess and return which of ``heavy`` it imported.

    The subprocess sees this interpreter's ``sys.path``, so in-tree and temporary plugins resolve
    as they do in the test session. Raises RuntimeError with the subprocess's stderr if the import
    fails.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, module, json.dumps(list(heavy))],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"importing {module!r} in a fresh interpreter failed:\n{proc.stderr}")
    return list(json.loads(proc.stdout.strip().splitlines()[-1]))
