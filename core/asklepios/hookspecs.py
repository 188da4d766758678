"""Hook specifications of the ``asklepios`` pluggy project: the reference for plugin authors.

Hooks are called by keyword; an implementation may accept any subset of a spec's arguments, so
arguments are only ever added, never removed or renamed. Implement them in a plugin's hook module
with ``@asklepios_sdk.hookimpl``.

Registration hooks run once, when the host activates a plugin (only when a config names one of
its components or a listing is asked for). The settings hook runs when a config has an entry for
the plugin in a settings section (``tracking.<plugin-id>``). The commands hook runs when the
command line names the plugin (``asklepios <plugin-id> ...``). Lifecycle hooks run during
``asklepios run``; the loop resolves them at build time and calls the per-step hook only when some
plugin implements it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pluggy
from asklepios_sdk import PROJECT_NAME

if TYPE_CHECKING:
    from asklepios_sdk import Register, RunState
    from asklepios_sdk.registration import RegisterCommand, RegisterSettings

__all__ = ["PROJECT_NAME", "hookspec"]

hookspec = pluggy.HookspecMarker(PROJECT_NAME)

# ---------------------------------------------------------------------------------------------
# Registration hooks: called once per plugin on activation; every rank.
# ---------------------------------------------------------------------------------------------


@hookspec
def register_backbones(register: Register) -> None:
    """Register backbone components: models mapping a batch to ``logits`` and ``features``.

    Called once when the plugin is activated, on every rank. ``register`` is bound to the calling
    plugin: ``register(name, "package.module:Class", ClassParams)`` makes ``<plugin-id>.<name>``;
    the class is imported only when the component is built.
    Return value: ignored.
    """


@hookspec
def register_losses(register: Register) -> None:
    """Register loss components: ``forward(outputs, batch) -> LossOutput``.

    Called once when the plugin is activated, on every rank. Return value: ignored.
    """


@hookspec
def register_augmentations(register: Register) -> None:
    """Register augmentations, per-sample (``SampleTransform``) or per-batch (``BatchTransform``).

    Called once when the plugin is activated, on every rank. Return value: ignored.
    """


@hookspec
def register_adapters(register: Register) -> None:
    """Register adapters: modules that wrap the model built so far (heads, TTA, re-scaling).

    Called once when the plugin is activated, on every rank. Return value: ignored.
    """


@hookspec
def register_evaluators(register: Register) -> None:
    """Register evaluators: torchmetrics-protocol metrics returning a dict of values.

    Called once when the plugin is activated, on every rank. Return value: ignored.
    """


@hookspec
def register_samplers(register: Register) -> None:
    """Register samplers: rank-sharded ``torch.utils.data.Sampler`` with ``set_epoch``.

    Called once when the plugin is activated, on every rank. Return value: ignored.
    """


@hookspec
def register_datasets(register: Register) -> None:
    """Register datasets (sources of splits) and dataset wrappers.

    Called once when the plugin is activated, on every rank. Return value: ignored.
    """


@hookspec
def register_trainers(register: Register) -> None:
    """Register trainers: the optimisation step the engine's loop calls per batch.

    Called once when the plugin is activated, on every rank. Return value: ignored.
    """


# ---------------------------------------------------------------------------------------------
# Settings hook: cross-cutting plugins declare their entry of a settings section of configs.
# ---------------------------------------------------------------------------------------------


@hookspec
def register_settings(register: RegisterSettings) -> None:
    """Register the params model of this plugin's entry in a settings section of configs.

    For plugins that take part in runs without being named (trackers): ``register("tracking",
    MLflowParams)`` makes ``tracking.<plugin-id>`` a config entry that validation checks with that
    model (unknown keys rejected, defaults written into the resolved config). Every field needs a
    default, since a config may leave the entry out; lifecycle hooks read the entry with
    ``asklepios_sdk.registration.read_settings(run.config, "tracking", plugin_id, MLflowParams)``.
    Called when a config with an entry for the plugin is validated, on every rank.
    Return value: ignored.
    """


# ---------------------------------------------------------------------------------------------
# Commands hook: plugins contribute sub-commands of the command line.
# ---------------------------------------------------------------------------------------------


@hookspec
def register_commands(register: RegisterCommand) -> None:
    """Register this plugin's sub-commands, run as ``asklepios <plugin-id> <name> ARGS...``.

    ``register("convert", "asklepios_myplugin.cli:convert")``: the function is imported only when
    the command runs and receives the remaining arguments as a ``list[str]`` (it parses them
    itself, e.g. with argparse) and returns the exit code (``None`` means 0); raising an
    ``AsklepiosError`` prints its message and exits 1. ``asklepios <plugin-id>`` lists the
    commands with their one-line docs (the function's docstring, read from source). Called when
    the command line names the plugin, in that process only. Return value: ignored.
    """


# ---------------------------------------------------------------------------------------------
# Lifecycle hooks: called by the engine during `asklepios run`.
# ---------------------------------------------------------------------------------------------


@hookspec
def run_start(run: RunState) -> None:
    """Called once after the run is built and before the first stage, on every rank.

    May read the run and write files under ``run.output_dir`` when ``run.is_main``. Return: ignored.
    """


@hookspec
def stage_start(run: RunState, stage: str) -> None:
    """Called at the start of each stage (``"main"`` when the config has none), on every rank.

    Return value: ignored.
    """


@hookspec
def epoch_start(run: RunState, epoch: int) -> None:
    """Called before each training epoch (0-based ``epoch``), on every rank. Return: ignored."""


@hookspec
def step_end(run: RunState, step: int, losses: Mapping[str, float]) -> None:
    """Called after each optimiser step with the step's loss terms, on every rank.

    Only called when at least one plugin implements it, so the loop pays nothing otherwise. Keep it
    cheap: it runs in the hot path. May update state such as an EMA of ``run.model``.
    Return value: ignored.
    """


@hookspec
def epoch_end(run: RunState, epoch: int, metrics: Mapping[str, float]) -> None:
    """Called after each training epoch with its averaged training losses, on every rank.

    Return value: ignored.
    """


@hookspec
def evaluation_end(run: RunState, split: str, metrics: Mapping[str, float]) -> None:
    """Called after evaluating ``split`` (``"val"`` or ``"test"``) with metrics synced across ranks.

    Called on every rank. Return value: ignored.
    """


@hookspec
def stage_end(run: RunState, stage: str, summary: Mapping[str, Any]) -> None:
    """Called at the end of each stage with its summary (best epoch, final metrics), every rank.

    Return value: ignored.
    """


@hookspec
def run_end(run: RunState, summary: Mapping[str, Any]) -> None:
    """Called once after the last stage with the run's summary, on every rank.

    On rank 0, ``summary.json``, ``metrics.csv`` and ``plots/`` are written before this call (a
    tracker may upload them); ``record.json`` is completed after it, with every plugin's
    ``record_metadata``. Return value: ignored.
    """


@hookspec
def run_failed(run: RunState, error: str, interrupted: bool) -> None:
    """Called once when a run stops early, on an error or Ctrl-C, on every rank.

    ``error`` is the one-line cause; ``interrupted`` is true for Ctrl-C (the run can be resumed).
    Trackers close their run as failed or killed here (``run_end`` is not called). It runs before
    ``record.json`` is marked ``failed``/``interrupted``; an implementation that raises is
    reported as a warning and does not hide the run's own error. Return value: ignored.
    """


@hookspec
def record_metadata(run: RunState) -> Mapping[str, Any] | None:
    """Return extra metadata to store in ``record.json`` under ``plugins_metadata.<plugin-id>``.

    Called once on rank 0 while the run record is written. Values must be JSON-serialisable.
    Return value: a mapping, or ``None`` to add nothing; every implementation's result is kept.
    """
