"""Run ``asklepios run`` in child processes that the ``fault`` test plugin can SIGKILL.

Each run is a real process running the CLI's ``main(["run", ...])`` with the ``probe`` and
``fault`` plugins; it is forked from a multiprocessing *forkserver* that imported torch and
asklepios once, so a run costs its own work only (not an interpreter start, ~5 s here). The
forkserver never runs torch code, so forking from it is safe.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Sequence
from pathlib import Path

PRELOAD = [
    "torch",
    "numpy",
    "sklearn.datasets",
    "sklearn.model_selection",
    "matplotlib.pyplot",
    "asklepios.cli",
    "asklepios.config",
    "asklepios.engine.run",
    "asklepios.reporting",
    "asklepios.builtins.datasets",
    "asklepios.builtins.backbones",
    "asklepios.builtins.losses",
    "asklepios.builtins.evaluators",
    "_probe_plugin",
    "_fault_plugin",
]


def _child(args: Sequence[str], env: dict[str, str], log: str) -> None:
    """Run the CLI on ``args`` with the test plugins; stdout and stderr go to ``log``."""
    os.environ.update(env)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    import _fault_plugin
    import _probe_plugin
    import torch
    from asklepios.cli import main
    from asklepios.plugins import PluginHost, set_host

    torch.set_num_threads(1)
    host = PluginHost(discover=False)
    host.add_plugin(_probe_plugin, "probe")
    host.add_plugin(_fault_plugin, "fault")
    set_host(host)
    code = main(list(args))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


class ForkedCLI:
    """Start ``asklepios run`` children from one forkserver; return their exit codes."""

    def __init__(self, log_dir: Path) -> None:
        self.context = multiprocessing.get_context("forkserver")
        self.context.set_forkserver_preload(PRELOAD)
        self.log_dir = log_dir
        self.runs = 0

    def run(self, args: Sequence[str], kill_at: str | None = None, timeout: float = 120) -> int:
        """Run ``asklepios <args>``; with ``kill_at`` the fault plugin kills it there.

        Returns the exit code, ``-9`` when it was killed. The output is in :meth:`output`.
        """
        self.runs += 1
        env = {"FAULT_KILL_AT": kill_at or ""}
        proc = self.context.Process(target=_child, args=(list(args), env, str(self.log)))
        proc.start()
        proc.join(timeout)
        if proc.exitcode is None:
            proc.kill()
            proc.join()
            raise TimeoutError(f"asklepios {' '.join(args)} ran past {timeout} s:\n{self.output()}")
        assert proc.exitcode is not None
        return proc.exitcode

    @property
    def log(self) -> Path:
        return self.log_dir / f"run-{self.runs}.log"

    def output(self) -> str:
        """Return what the latest run printed."""
        return self.log.read_text() if self.log.exists() else ""
