"""Install a plugin package into a private target directory and run commands that see it.

The shared environment is never modified: ``pip install --target`` writes the distribution (with
its ``dist-info`` and entry points) into a temporary directory, and subprocesses get it on
``PYTHONPATH``, so ``asklepios`` discovers the plugin exactly as if it were installed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ASKLEPIOS = Path(sys.executable).with_name("asklepios")


def pip_install(package_dir: Path, target: Path) -> None:
    """Install ``package_dir`` (no dependencies, no build isolation) into ``target``."""
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps"]
    command += ["--no-build-isolation", "--target", str(target), str(package_dir)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def run_with(
    site: Path, command: list[str], cwd: Path, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` in ``cwd`` with ``site`` first on ``PYTHONPATH``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), env.get("PYTHONPATH")) if p)
    env["ASKLEPIOS_STRICT_PLUGINS"] = "1"
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
