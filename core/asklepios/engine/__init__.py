"""The training engine: stages of epochs, evaluation, checkpoints, DDP, progress and the run.

Modules: :mod:`~asklepios.engine.loop` (one stage), :mod:`~asklepios.engine.run` (a whole run
with folds and resume), :mod:`~asklepios.engine.checkpoint`, :mod:`~asklepios.engine.distributed`,
:mod:`~asklepios.engine.seeding`, :mod:`~asklepios.engine.optim`, :mod:`~asklepios.engine.progress`.
"""

from __future__ import annotations

__all__ = ["run_experiment"]


def run_experiment(*args: object, **kwargs: object) -> dict[str, object]:
    """Run (or resume) an experiment; see :func:`asklepios.engine.run.run_experiment`."""
    from asklepios.engine.run import run_experiment as _run

    return _run(*args, **kwargs)  # type: ignore[arg-type]
