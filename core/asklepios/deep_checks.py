"""Deep checks of a config: what only building a stage can tell, before a run creates anything.

``asklepios validate --deep`` and ``asklepios run`` (before it creates the run directory) build,
for each stage, what a run builds first: the dataset's index and training facts, then the model
(backbone and adapters) as a *skeleton* on the meta device (shapes, no memory, no weights; on the
CPU for a component that cannot be built on meta) and the evaluators. Against those they check:

* the device: ``cuda`` / ``cuda:N`` / ``mps`` exist on this machine;
* ``freeze``: every pattern matches a parameter of the model the stage builds (after
  ``replace_head``);
* ``replace_head``: the backbone has ``reset_classifier`` and the dataset states its classes;
* ``init_from``: the source stage's checkpoint fits this stage's model (keys and shapes);
* the dataset's files exist and are readable (``data.verify``; ``full`` checks headers here);
* a training batch size of one with unsynchronised BatchNorm layers (the loop refuses it);
* each evaluator's ``fit_split`` is a split of the stage's dataset;
* ``train.monitor.metric``: ``loss`` or ``<evaluator name>/<key>`` of an evaluator of the stage,
  and one of the keys it declares (``Evaluator.output_keys``) when it declares them;
* every component builds (a build error is reported at its config path).

Every problem is reported at once, each at the config key (file and line) it comes from; a
problem a stage inherits from the base config is reported once.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from asklepios._text import did_you_mean
from asklepios.config import Origins, load_config_with_origins, stage_configs
from asklepios.config.checks import device_problem
from asklepios.config.loader import format_path
from asklepios.errors import ConfigError, ConfigIssue
from asklepios.plugins import get_host

if TYPE_CHECKING:
    from asklepios_sdk import BuildContext, Evaluator
    from torch import nn

    from asklepios.config import ExperimentConfig, StageConfig
    from asklepios.plugins import PluginHost

__all__ = ["check_deep", "load_checked_config"]

KeyPath = tuple[str | int, ...]


@dataclass
class _Skeleton:
    """What one stage builds, as far as the checks need it."""

    ctx: BuildContext
    split_names: tuple[str, ...]
    backbone: nn.Module
    model: nn.Module
    evaluators: list[Evaluator] = field(default_factory=list)

    def shapes(self, module: nn.Module) -> dict[str, tuple[int, ...]]:
        """Return the state-dict shapes of ``module`` (the whole model or the backbone)."""
        return {k: tuple(v.shape) for k, v in module.state_dict().items() if hasattr(v, "shape")}


class _Report:
    """Issues located through the origins of the loaded config, each reported once."""

    def __init__(self, origins: Origins) -> None:
        self.origins = origins
        self.issues: list[ConfigIssue] = []
        self.seen: set[tuple[str, str]] = set()

    def add(
        self, path: KeyPath, message: str, suggestion: str | None = None, file: str = ""
    ) -> None:
        key = (format_path(path), message)
        if key in self.seen:
            return
        self.seen.add(key)
        self.issues.append(
            ConfigIssue(
                file=file or self.origins.file_of(path),
                line=None if file else self.origins.line_of(path),
                path=format_path(path),
                message=message,
                suggestion=suggestion,
            )
        )


def _written(stage: StageConfig | None, path: KeyPath) -> bool:
    """Return whether ``stage`` writes ``path`` (or a mapping or list that holds it)."""
    if stage is None:
        return False
    node: Any = getattr(stage, str(path[0]), None)
    for part in path[1:]:
        in_list = isinstance(node, list) and isinstance(part, int) and part < len(node)
        if in_list or (isinstance(node, Mapping) and part in node):
            node = node[part]
        else:
            return node is not None and not isinstance(node, Mapping)
    return node is not None


def _device_message(requested: str) -> tuple[str, str] | None:
    """Return ``(problem, hint)`` when the machine lacks the requested device."""
    import torch

    hint = "--set train.device=auto (CUDA when present, else CPU), or cpu"
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            build = torch.version.cuda or "a CPU-only build"
            return (
                f"'{requested}' asks for a CUDA GPU, but this machine has none that torch can "
                f"use (torch {torch.__version__}, CUDA: {build})",
                hint,
            )
        index = int(requested.partition(":")[2] or 0)
        count = torch.cuda.device_count()
        if index >= count:
            return f"'{requested}' asks for GPU {index}, but this machine has {count}", hint
    if requested == "mps" and not torch.backends.mps.is_available():
        return "'mps' asks for an Apple GPU, but torch cannot use one here", hint
    return None


class _DeepChecker:
    """Build each stage's skeleton, once per distinct data section, and check it."""

    def __init__(self, config: ExperimentConfig, host: PluginHost, origins: Origins) -> None:
        self.config = config
        self.host = host
        self.report = _Report(origins)
        self.data_cache: dict[str, tuple[Any, BuildContext]] = {}
        self.built: dict[str, _Skeleton] = {}
        self.generating: dict[str, Any] = {}  # generation stages so far -> their model section
        self.pending = False  # the last data build waits for a generation stage
        self.verified: set[str] = set()  # data sections whose files passed at data.verify

    # -- where a problem is written ---------------------------------------------------------

    def at(self, stage: StageConfig | None, index: int, path: KeyPath) -> KeyPath:
        """Return ``path`` inside stage ``index`` when the stage writes it, else the base's."""
        return ("stages", index, *path) if _written(stage, path) else path

    # -- device ----------------------------------------------------------------------------

    def check_device(self, device: str | None) -> None:
        requested = device or self.config.train.device
        file = f"--device {device}" if device else ""
        problem = device_problem(requested)
        if problem is None:
            problem = _device_message(requested) if requested != "auto" else None
        if problem is not None:
            hint = problem[1].replace("--set train.device=", "--device ") if device else problem[1]
            self.report.add(("train", "device"), problem[0], hint, file=file)

    # -- building --------------------------------------------------------------------------

    def context(self, effective: ExperimentConfig, name: str, builder: Any) -> BuildContext:
        """Return a stage's context before its data: the generation stages so far in extras."""
        from asklepios_sdk import BuildContext
        from asklepios_sdk.synthesis import GENERATED_EXTRA, GENERATION_MODELS_EXTRA

        return BuildContext(
            seed=effective.seed,
            device="cpu",
            epochs=effective.train.epochs,
            stage=name,
            extras={
                GENERATED_EXTRA: dict.fromkeys(self.generating),
                GENERATION_MODELS_EXTRA: dict(self.generating),
            },
            components=builder.part,
        )

    def evaluators_alone(
        self, effective: ExperimentConfig, name: str, stage: StageConfig | None, index: int
    ) -> None:
        """Build the evaluators of a stage whose data an earlier stage generates.

        Without the data's facts an evaluator may fail for want of them, so only a
        ``ConfigConflictError`` (params that contradict another component's) is reported.
        """
        from asklepios_sdk import ConfigConflictError

        from asklepios.build import Builder

        builder = Builder(self.host.registry)
        ctx = self.context(effective, name, builder)
        for i, spec in enumerate(effective.evaluators):
            try:
                builder.component("evaluator", spec, ctx, f"evaluators.{i}")
            except Exception as err:
                if _caused_by(err, ConfigConflictError):
                    where = self.at(stage, index, ("evaluators", i))
                    self.report.add(where, _failure(f"evaluator '{spec.type}'", err))

    def data(
        self, effective: ExperimentConfig, name: str, stage: StageConfig | None, index: int
    ) -> tuple[Any, BuildContext] | None:
        """Build (once per distinct data section) the dataset and the context of its facts."""
        from asklepios.build import (
            Builder,
            facts_after_transforms,
            sample_transforms,
            training_facts,
        )
        from asklepios.datafiles import verified_key, verify_dataset

        data = effective.data
        key = json.dumps(
            [
                data.dataset.model_dump(mode="json"),
                [w.model_dump(mode="json") for w in data.wrappers],
                [t.model_dump(mode="json") for t in data.transforms.eval],
                effective.seed,
            ],
            sort_keys=True,
            default=str,
        )
        self.pending = False
        if key in self.data_cache:
            return self.data_cache[key]
        builder = Builder(self.host.registry)
        ctx = self.context(effective, name, builder)
        where: KeyPath = ("data", "dataset")
        try:
            dataset = builder.component("dataset", data.dataset, ctx, "data.dataset")
            for i, spec in enumerate(data.wrappers):
                where = ("data", "wrappers", i)
                wrapper = builder.component("dataset", spec, ctx, f"data.wrappers.{i}")
                dataset = wrapper.wrap(dataset)
            where = ("data", "dataset")
            level = "headers" if data.verify == "full" else data.verify  # 'full': the build
            verify_dataset(dataset, level, f"data.dataset [{data.dataset.type}]")
            if level == data.verify:
                self.verified.add(verified_key(data))
            where = ("data",)
            facts = training_facts(dataset)
            ctx = ctx.replace(data=facts)
            eval_tf = sample_transforms(builder, data.transforms.eval, ctx, "data.transforms.eval")
            ctx = ctx.replace(data=facts_after_transforms(facts, dataset.split("train"), eval_tf))
        except Exception as err:
            if _is_pending(err):  # an earlier stage generates it: checked when it runs
                self.pending = True
                return None
            self.report.add(self.at(stage, index, where), _failure("the data", err))
            return None
        self.data_cache[key] = (dataset, ctx)
        return dataset, ctx

    def skeleton(
        self, effective: ExperimentConfig, name: str, stage: StageConfig | None, index: int
    ) -> _Skeleton | None:
        """Build the stage's model on the meta device (CPU as a fallback) and its evaluators."""
        import torch

        from asklepios.build import Builder, build_model, default_specs

        found = self.data(effective, name, stage, index)
        if found is None:
            if self.pending:  # the evaluators can be checked without the data
                self.evaluators_alone(effective, name, stage, index)
            return None
        dataset, ctx = found
        ctx = ctx.replace(epochs=effective.train.epochs, stage=name)

        class _NoWeights(Builder):
            def module(self, kind: str, spec: Any, ctx: BuildContext, where: str) -> Any:
                return self.component(kind, spec, ctx, where)  # weights are checked, not loaded

        builder = _NoWeights(self.host.registry)
        try:
            try:
                with torch.device("meta"):
                    backbone, model = build_model(builder, effective, ctx)
            except Exception:  # a component that computes at construction: build it for real
                backbone, model = build_model(builder, effective, ctx)
        except Exception as err:
            if not _is_weights_error(err):  # weights are the run's to load (earlier stages')
                self.report.add(self.at(stage, index, ("model",)), _failure("the model", err))
            return None
        evaluators = []
        _, specs = default_specs(effective, ctx.data)
        for i, spec in enumerate(specs):
            try:
                evaluators.append(builder.component("evaluator", spec, ctx, f"evaluators.{i}"))
            except Exception as err:
                if _is_pending(err):
                    continue
                where = self.at(stage, index, ("evaluators", i))
                self.report.add(where, _failure(f"evaluator '{spec.type}'", err))
        return _Skeleton(ctx, tuple(dataset.split_names), backbone, model, evaluators)

    # -- checks of one stage ---------------------------------------------------------------

    def check_stage(
        self, index: int, stage: StageConfig | None, effective: ExperimentConfig
    ) -> None:
        name = stage.name if stage is not None else "main"
        built = self.skeleton(effective, name, stage, index)
        generate = stage.generate if stage is not None else None
        if generate is not None:
            self.generating[name] = effective.model.model_dump(mode="json")
        if built is None:
            return
        if generate is not None and generate.split not in built.split_names:
            self.report.add(
                ("stages", index, "generate", "split"),
                f"split {generate.split!r} is not a split of the stage's dataset",
                f"use one of {list(built.split_names)}",
            )
        if stage is not None and stage.init_from is not None:
            self.check_init(index, stage, built)
        if stage is not None and stage.replace_head:
            self.replace_head(index, built)
        if stage is not None and stage.freeze:
            self.check_freeze(index, stage.freeze, built)
        if effective.train.epochs > 0 and generate is None:
            self.check_single_samples(index, stage, effective, built)
        self.check_fit_splits(index, stage, built)
        if effective.train.epochs > 0 and "val" in built.split_names:
            self.check_monitor(index, stage, effective, built)
        self.built[name] = built

    def check_single_samples(
        self, index: int, stage: StageConfig | None, effective: ExperimentConfig, built: _Skeleton
    ) -> None:
        """Refuse a batch size of one for unsynchronised BatchNorm, as the training loop would."""
        import os

        from asklepios.build import drops_single_batch
        from asklepios.engine.distributed import batchnorm_layers, single_sample_problem

        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        layers = batchnorm_layers(built.model)
        if not layers or not drops_single_batch(effective, world_size):
            return
        problem = single_sample_problem(
            layers, effective.data.loader.batch_size, None, world_size > 1
        )
        if problem:
            self.report.add(self.at(stage, index, ("data", "loader", "batch_size")), problem)

    def check_fit_splits(self, index: int, stage: StageConfig | None, built: _Skeleton) -> None:
        """Check that each evaluator's ``fit_split`` is a split of the stage's dataset."""
        for i, evaluator in enumerate(built.evaluators):
            split = getattr(evaluator, "fit_split", None)
            if split and split not in built.split_names:
                self.report.add(
                    self.at(stage, index, ("evaluators", i)),
                    f"the evaluator fits on split {split!r}, which the stage's dataset does not "
                    "provide",
                    f"the dataset's splits are {list(built.split_names)}",
                )

    def check_init(self, index: int, stage: StageConfig, built: _Skeleton) -> None:
        assert stage.init_from is not None
        source = self.built.get(stage.init_from.stage)
        if source is None:
            return
        model, old_model = built.shapes(built.model), source.shapes(source.model)
        if set(model) == set(old_model):
            new, old, what = model, old_model, "model"
        else:  # the engine then loads the backbone alone, strictly
            new, old = built.shapes(built.backbone), source.shapes(source.backbone)
            what = "backbone"
        missing, unexpected = sorted(set(new) - set(old)), sorted(set(old) - set(new))
        shapes = [
            f"{k}: {old[k]} -> {new[k]}" for k in sorted(set(new) & set(old)) if new[k] != old[k]
        ]
        problems = []
        if missing:
            problems.append(
                f"keys this stage's {what} has and the checkpoint lacks: {_few(missing)}"
            )
        if unexpected:
            problems.append(
                f"keys the checkpoint has and this stage's {what} lacks: {_few(unexpected)}"
            )
        if shapes:
            problems.append(f"shapes that differ: {_few(shapes)}")
        if problems:
            self.report.add(
                ("stages", index, "init_from"),
                f"the checkpoint of stage '{stage.init_from.stage}' does not fit the {what} this "
                f"stage builds; " + "; ".join(problems),
                "give both stages the same backbone, or set replace_head: true for a new "
                "classifier",
            )

    def replace_head(self, index: int, built: _Skeleton) -> None:
        import torch

        where = ("stages", index, "replace_head")
        num_classes = built.ctx.data.num_classes
        reset = getattr(built.backbone, "reset_classifier", None)
        if not num_classes:
            self.report.add(
                where, "replace_head needs the number of classes; the dataset states none"
            )
        elif reset is None:
            self.report.add(
                where,
                f"replace_head needs a backbone with reset_classifier(); "
                f"{type(built.backbone).__name__} has none",
            )
        else:
            device = next((p.device for p in built.model.parameters()), torch.device("cpu"))
            try:
                with torch.device(device):
                    reset(num_classes)
            except Exception as err:
                self.report.add(where, f"replace_head: {_failure('a new classifier', err)}")

    def check_freeze(self, index: int, patterns: Sequence[str], built: _Skeleton) -> None:
        names = [n for n, _ in built.model.named_parameters()]
        for i, pattern in enumerate(patterns):
            if any(fnmatch.fnmatchcase(n, pattern) for n in names):
                continue
            tops = _prefixes(names)
            self.report.add(
                ("stages", index, "freeze", i),
                f"pattern {pattern!r} matches no parameter of the model this stage builds "
                f"({len(names)} parameters; names start with {_few(tops)})",
                did_you_mean(pattern, tops) or f"e.g. {tops[0] if tops else 'backbone.*'}",
            )

    def check_monitor(
        self,
        index: int,
        stage: StageConfig | None,
        effective: ExperimentConfig,
        built: _Skeleton,
    ) -> None:
        metric = effective.train.monitor.metric
        if metric is None or metric == "loss":
            return
        where = self.at(stage, index, ("train", "monitor", "metric"))
        if format_path(where) in {issue.path for issue in self.report.issues}:
            return  # one report for a metric every stage inherits
        known: list[str] = ["loss"]
        declared_by: dict[str, tuple[str, ...]] = {}
        for evaluator in built.evaluators:
            keys = tuple(getattr(evaluator, "output_keys", ()) or ())
            declared_by[evaluator.name] = keys
            known += [f"{evaluator.name}/{k}" for k in keys] or [f"{evaluator.name}/<key>"]
        name, _, key = metric.partition("/")
        stage_words = f"stage '{stage.name}'" if stage is not None else "this config"
        if name not in declared_by:
            self.report.add(
                where,
                f"{metric!r} is not a metric of {stage_words}: its evaluators are named "
                f"{', '.join(repr(n) for n in declared_by) or '(none)'}; metrics are 'loss' or "
                "'<evaluator name>/<key>'",
                did_you_mean(metric, known) or f"one of: {_few(known)}",
            )
        elif declared_by[name] and key not in declared_by[name]:
            self.report.add(
                where,
                f"{metric!r} is not a metric of {stage_words}: evaluator '{name}' gives "
                f"{_few(list(declared_by[name]))}",
                did_you_mean(metric, known) or f"one of: {_few(known)}",
            )


def _prefixes(names: Sequence[str]) -> list[str]:
    """Return the parameter-name prefixes (``model.layer1.*``) at the first depth that differs."""
    tops: list[str] = []
    for depth in (1, 2, 3):
        tops = sorted(
            {n if n.count(".") < depth else ".".join(n.split(".")[:depth]) + ".*" for n in names}
        )
        if len(tops) > 1:
            break
    return tops


def _few(items: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")


def _is_weights_error(err: BaseException) -> bool:
    """Return whether ``err`` (or its cause) is a component not finding its weights."""
    from asklepios_sdk import WeightsError

    while err is not None:
        if isinstance(err, WeightsError):
            return True
        err = err.__cause__  # type: ignore[assignment]
    return False


def _caused_by(err: BaseException | None, kind: type[BaseException]) -> bool:
    """Return whether ``err`` or one of its causes is a ``kind``."""
    while err is not None:
        if isinstance(err, kind):
            return True
        err = err.__cause__
    return False


def _is_pending(err: BaseException) -> bool:
    """Return whether ``err`` (or its cause) is data an earlier generation stage will make."""
    from asklepios_sdk.synthesis import GenerationPending

    while err is not None:
        if isinstance(err, GenerationPending):
            return True
        err = err.__cause__  # type: ignore[assignment]
    return False


def _failure(what: str, err: Exception) -> str:
    from asklepios_sdk import AsklepiosError

    text = str(err) if isinstance(err, AsklepiosError) else f"{type(err).__name__}: {err}"
    return f"building {what} failed: {text}"


def check_deep(
    config: ExperimentConfig,
    host: PluginHost,
    origins: Origins | None = None,
    *,
    device: str | None = None,
) -> frozenset[str]:
    """Run the deep checks of a validated config; raise :class:`ConfigError` listing every problem.

    Returns the :func:`~asklepios.datafiles.verified_key` of each data section whose files were
    checked at their ``data.verify`` level, so that the run does not check them again.

    Args:
        config: the config as :func:`~asklepios.config.load_config` returned it.
        host: the plugin host whose registry builds the components.
        origins: where each key came from (files, lines, ``--set``), for the messages.
        device: the device the run will use instead of ``train.device`` (``run --device``).
    """
    origins = origins or Origins("<config>")
    checker = _DeepChecker(config, host, origins)
    checker.check_device(device)
    for index, (stage, effective) in enumerate(stage_configs(config)):
        checker.check_stage(index, stage, effective)
    if checker.report.issues:
        raise ConfigError(checker.report.issues, origins.root)
    return frozenset(checker.verified)


def load_checked_config(
    path: str | Path,
    overrides: Sequence[str] = (),
    *,
    host: PluginHost | None = None,
    device: str | None = None,
) -> ExperimentConfig:
    """Load a config (:func:`~asklepios.config.load_config`) and run the deep checks on it.

    Args:
        path: the config file.
        overrides: ``--set`` overrides.
        host: the plugin host (default: the process-wide one).
        device: the device the run will use instead of ``train.device`` (``run --device``).

    Raises:
        ConfigError: every problem of the fast checks, or else of the deep ones.
    """
    host = host or get_host()
    config, origins = load_config_with_origins(path, overrides, host=host)
    check_deep(config, host, origins, device=device)
    return config
