"""The training engine: stages of epochs, evaluation, checkpoints, DDP, progress and the run.

Modules: :mod:`~asklepios.engine.loop` (one stage), :mod:`~asklepios.engine.run` (a whole run
with folds and resume), :mod:`~asklepios.engine.stage_init` (a stage's ``init_from``),
:mod:`~asklepios.engine.checkpoint`, :mod:`~asklepios.engine.distributed`,
:mod:`~asklepios.engine.seeding`, :mod:`~asklepios.engine.progress`. The public way to run an
experiment is :func:`asklepios.api.run`.
"""
