"""An experiment from start to end: run directory, folds, stages, resume, summary, plots, record.

:func:`run_experiment` reads straight through: start the session (distributed set-up, run
directory, lifecycle plugins), run each fold's stages, summarise, finish (hooks, record, summary,
plots). A stage that finished before an interruption is restored from its ``summary.json``.

``record.json`` carries the run's ``status``: ``running`` from the first stage on, then
``completed``, ``failed`` (with ``error``) or ``interrupted``; a run that fails before writing its
record removes its run directory. ``--resume`` refuses a config that resolves differently from
the run's own (:func:`check_resume_config`).
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import time
import warnings
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from asklepios_sdk import AsklepiosError, AsklepiosWarning, BuildContext
from asklepios_sdk.io import write_atomic
from asklepios_sdk.synthesis import GENERATED_EXTRA

from asklepios.build import Built, build_experiment
from asklepios.config.model import ExperimentConfig, StageConfig
from asklepios.datafiles import verified_key
from asklepios.engine.distributed import DistInfo, barrier, init_distributed
from asklepios.engine.generate import generate_dataset, generated_folder
from asklepios.engine.loop import StageRunner
from asklepios.engine.progress import RunProgress
from asklepios.engine.seeding import derive_seed, seed_everything
from asklepios.engine.stage_init import init_from_checkpoint, init_report
from asklepios.engine.state import MetricsLog, RunStateView, to_jsonable
from asklepios.reporting import stage_facts

if TYPE_CHECKING:
    from asklepios.plugins import PluginHost

__all__ = ["RunError", "check_resume_config", "run_experiment"]


_ATOMIC_TEMP = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp(\.[^.]+)?")
"""The temporary file of an interrupted ``write_atomic``: ``.<name>.<random>.tmp[<suffix>]``."""


class RunError(AsklepiosError):
    """A run cannot start or continue (bad run directory, missing stage checkpoint)."""


def _new_run_dir(config: ExperimentConfig, dist: DistInfo, given: str | Path | None) -> Path:
    """Create ``given`` or ``<output_dir>/<name>-<stamp>[-n]`` on rank 0; tell every rank."""
    path: Path | None = None
    if dist.is_main and given is not None:
        path = Path(given)
        if path.exists() and any(path.iterdir()):
            raise RunError(f"run directory {path} exists and is not empty; give a new one")
        path.mkdir(parents=True, exist_ok=True)
    elif dist.is_main:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        base = Path(config.output_dir) / f"{config.name}-{stamp}"
        path, n = base, 1
        while path.exists():
            n += 1
            path = Path(f"{base}-{n}")
        path.mkdir(parents=True)
    if dist.enabled:
        holder = [str(path) if path else None]
        torch.distributed.broadcast_object_list(holder, src=0)
        path = Path(str(holder[0]))
    assert path is not None
    return path


def _top_missing(folder: Path) -> Path | None:
    """Return the outermost folder of ``folder``'s path that does not exist yet, if any."""
    missing = None
    for candidate in [folder, *folder.parents]:
        if candidate.exists():
            return missing
        missing = candidate
    return missing


def _existing_run_dir(resume_dir: str | Path, dist: DistInfo) -> Path:
    """Return the run directory to resume, without the temporary files of interrupted writes."""
    run_dir = Path(resume_dir)
    if not (run_dir / "config.yaml").is_file():
        raise RunError(f"--resume {run_dir}: no config.yaml there; is it a run directory?")
    if dist.is_main:
        for leftover in run_dir.rglob(".*.tmp*"):
            if leftover.is_file() and _ATOMIC_TEMP.fullmatch(leftover.name):
                leftover.unlink()
    return run_dir


def check_resume_config(run_dir: str | Path, given: ExperimentConfig, source: str) -> None:
    """Refuse to resume ``run_dir`` with ``given`` unless it resolves to the run's own config.

    Args:
        run_dir: the run directory (its ``config.yaml`` is the resolved config of the run).
        given: the config the command line resolves to (a config file and/or ``--set``).
        source: how the command line gave it, for the message (``other.yaml --set ...``).

    Raises:
        RunError: naming the keys that differ, with both values.
    """
    import yaml

    from asklepios.config import dump_config, load_config
    from asklepios.config.loader import flatten
    from asklepios.records import config_sha256

    saved = dump_config(load_config(Path(run_dir) / "config.yaml"))
    text = dump_config(given)
    if config_sha256(text) == config_sha256(saved):
        return
    before, after = flatten(yaml.safe_load(saved)), flatten(yaml.safe_load(text))
    keys = [k for k in dict.fromkeys([*before, *after]) if before.get(k) != after.get(k)]
    lines = [
        f"  - {key}: the run has {before.get(key, '(unset)')!r}, {source} gives "
        f"{after.get(key, '(unset)')!r}"
        for key in keys[:12]
    ]
    if len(keys) > 12:
        lines.append(f"  ... and {len(keys) - 12} more")
    raise RunError(
        "\n".join(
            [
                f"--resume {run_dir}: {source} does not resolve to the run's config "
                f"(sha256 {config_sha256(text)[:12]} != {config_sha256(saved)[:12]}):",
                *lines,
                f"  resume with the run's own config (asklepios run --resume {run_dir}), or "
                "start a new run with the changed config",
            ]
        )
    )


def _read_record(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "record.json"
    return dict(json.loads(path.read_text())) if path.is_file() else {}


def _update_record(run_dir: Path, **fields: Any) -> None:
    """Rewrite ``record.json`` with ``fields`` changed (``None`` removes a key)."""
    path = run_dir / "record.json"
    if not path.is_file():
        return
    record = json.loads(path.read_text())
    for key, value in fields.items():
        if value is None:
            record.pop(key, None)
        else:
            record[key] = value
    write_atomic(path, json.dumps(record, indent=2, default=str) + "\n")


def _replace_head(built: Built, stage_name: str, device: torch.device) -> None:
    num_classes = built.ctx.data.num_classes
    if not num_classes:
        raise RunError(f"stage {stage_name}: replace_head needs the dataset's number of classes")
    reset = getattr(built.backbone, "reset_classifier", None)
    if reset is None:
        raise RunError(
            f"stage {stage_name}: replace_head needs a backbone with reset_classifier(); "
            f"{type(built.backbone).__name__} has none"
        )
    reset(num_classes)
    built.backbone.to(device)


@dataclass
class _Session:
    """What every fold and stage of one run shares, and what the record collects from them."""

    config: ExperimentConfig
    host: PluginHost
    run_dir: Path
    resuming: bool
    dist: DistInfo
    device: torch.device
    progress: RunProgress
    argv: Sequence[str]
    view: RunStateView
    plugin_problems: list[str]
    component_ids: list[str] = field(default_factory=list)
    weights: dict[str, Any] = field(default_factory=dict)
    started: bool = False
    keep_dir: bool = False  # the directory existed before the run (resumed, or given empty)
    made_parents: Path | None = None  # the outermost folder above run_dir that this run made
    verified: set[str] = field(default_factory=set)  # datasets whose files were checked
    generated: dict[str, str] = field(default_factory=dict)  # this fold's generated datasets

    @property
    def hooks(self) -> Any:
        return self.host.hook

    def run_fold(self, fold: int | None, k: int | None) -> dict[str, Any]:
        """Run (or restore) every stage of one fold; return its stage summaries and test."""
        from asklepios.config import stage_configs

        fold_dir = self.run_dir / f"fold-{fold}" if fold is not None else self.run_dir
        log = MetricsLog(fold_dir / "metrics.jsonl" if self.dist.is_main else None)
        if self.dist.is_main:
            fold_dir.mkdir(parents=True, exist_ok=True)
        summaries: dict[str, Any] = {}
        offset = 0
        self.generated = {}
        for index, (stage, effective) in enumerate(stage_configs(self.config)):
            name = stage.name if stage is not None else "main"
            done = fold_dir / "checkpoints" / name / "summary.json"
            if self.resuming and done.is_file():
                summaries[name] = json.loads(done.read_text())
                offset = summaries[name].get("metrics_offset_end", offset)
            else:
                fold_of = (fold, k) if fold is not None and k else None
                summaries[name] = self.run_stage(
                    index, name, stage, effective, fold_dir, fold_of, log, offset
                )
                offset = summaries[name]["metrics_offset_end"]
            if "generated" in summaries[name]:
                self.generated[name] = str(generated_folder(fold_dir, name))
        last = summaries[list(summaries)[-1]]
        return {"fold": fold, "stages": summaries, "test": last.get("test", {})}

    def run_stage(
        self,
        index: int,
        name: str,
        stage: StageConfig | None,
        effective: ExperimentConfig,
        fold_dir: Path,
        fold: tuple[int, int] | None,
        log: MetricsLog,
        offset: int,
    ) -> dict[str, Any]:
        """Build one stage, start it from its checkpoint or its source stage, fit, summarise."""
        seed_everything(
            derive_seed(effective.seed, index, -1 if fold is None else fold[0]),
            effective.train.deterministic,
        )
        generate = stage.generate if stage is not None else None
        if generate is not None:  # a generation stage trains nothing
            train = effective.train.model_copy(update={"epochs": 0})
            effective = effective.model_copy(update={"train": train})
        dataset_key = verified_key(effective.data)
        built = build_experiment(
            effective,
            self.host.registry,
            rank=self.dist.rank,
            world_size=self.dist.world_size,
            device=str(self.device),
            stage=name,
            output_dir=str(self.run_dir),
            fold=fold,
            verify_data=dataset_key not in self.verified,
            extras={GENERATED_EXTRA: dict(self.generated)},
        )
        self.verified.add(dataset_key)
        self.component_ids += [c for c in built.component_ids if c not in self.component_ids]
        self.weights.update({f"{name}/{where}": rec for where, rec in built.weights.items()})
        self.view.context, self.view.config = built.ctx, effective
        stage_dir = fold_dir / "checkpoints" / name
        step_end = self.host.caller("step_end")
        runner = StageRunner(
            built,
            name,
            stage_dir,
            self.dist,
            self.device,
            log,
            self.progress,
            self.hooks,
            step_end,
            self.view,
        )
        loaded = None
        if stage is not None and stage.init_from is not None:
            loaded = init_from_checkpoint(runner, fold_dir, stage, self.config)
        if stage is not None and stage.replace_head:
            _replace_head(built, name, self.device)
        runner.prepare(stage.freeze if stage is not None else [])
        self._show_stage(runner, index, name, stage)
        report = init_report(runner.model, loaded) if loaded is not None else None
        if report is not None:
            self.progress.log(
                "  init: " + "; ".join(f"{k} {', '.join(v) or '-'}" for k, v in report.items())
            )
        self.start()
        resumed = self.resuming and runner.resume()
        if self.resuming and not resumed and self.dist.is_main:
            log.truncate(offset)
        self.hooks.stage_start(run=self.view, stage=name)
        if generate is not None:
            summary = generate_dataset(runner, generate, generated_folder(fold_dir, name))
        else:
            summary = runner.fit()
        summary.update(stage_facts(built.evaluators, built.ctx.data.class_names))
        if report is not None:
            summary["init_from"] = report
        summary["metrics_offset_end"] = log.offset()
        if self.dist.is_main:
            write_atomic(stage_dir / "summary.json", json=to_jsonable(summary))
        self.hooks.stage_end(run=self.view, stage=name, summary=summary)
        return dict(to_jsonable(summary))

    def _show_stage(
        self, runner: StageRunner, index: int, name: str, stage: StageConfig | None
    ) -> None:
        init = stage.init_from if stage is not None else None
        source = f"{init.stage} ({init.checkpoint})" if init is not None else None
        if stage is not None and stage.replace_head:
            source = f"{source or 'scratch'}, new head"
        params = list(runner.model.parameters())
        self.progress.stage_started(
            name,
            index,
            max(1, len(self.config.stages)),
            runner.config.train.epochs,
            runner.steps_per_epoch,
            source,
            stage.freeze if stage is not None else [],
            (sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)),
        )

    def start(self) -> None:
        """Write the record of a fresh run and call ``run_start``, once, before the first fit."""
        if self.started:
            return
        if self.dist.is_main and not self.resuming:
            self.write_record()
        elif self.dist.is_main:
            resumes = _read_record(self.run_dir).get("resumes", [])
            _update_record(
                self.run_dir, status="running", error=None, resumes=[*resumes, self.argv]
            )
        self.hooks.run_start(run=self.view)
        self.started = True

    def write_record(self, status: str = "running") -> None:
        """Write ``record.json`` (rank 0) with ``status``; a resumed run updates its own."""
        from asklepios.config import dump_config
        from asklepios.records import plugin_entries, write_record

        if self.resuming:
            record = _read_record(self.run_dir)
            ids = sorted({*record.get("components", []), *self.component_ids})
            taking_part = {c.split(".", 1)[0] for c in ids} | set(self.host.lifecycle_plugins())
            _update_record(
                self.run_dir,
                status=status,
                components=ids,
                plugins=plugin_entries(self.host, taking_part),
                weights={**record.get("weights", {}), **self.weights},
            )
            return

        write_record(
            self.run_dir,
            dump_config(self.config),
            host=self.host,
            component_ids=self.component_ids,
            seed=self.config.seed,
            device=str(self.device),
            world_size=self.dist.world_size,
            argv=self.argv,
            extra_plugins=self.host.lifecycle_plugins(),
            plugins_metadata=self._plugins_metadata(),
            weights=self.weights,
            plugin_problems=self.plugin_problems,
        )
        _update_record(self.run_dir, status=status)

    def _plugins_metadata(self) -> dict[str, Any]:
        """Return every plugin's ``record_metadata`` for ``record.json``, by plugin id."""
        return {
            plugin_id: to_jsonable(result)
            for plugin_id, result in self.host.call_each("record_metadata", run=self.view).items()
        }

    def fail(self, err: BaseException) -> None:
        """Tell ``run_failed``; mark the record ``failed``/``interrupted``, or remove the run.

        A ``run_failed`` implementation that raises becomes a warning: the run's own error is
        what the user must see.
        """
        interrupted = isinstance(err, KeyboardInterrupt)
        text = str(err).strip().splitlines()
        error = f"{type(err).__name__}: {text[0] if text else ''}".rstrip(": ")
        if self.started:
            try:
                self.hooks.run_failed(run=self.view, error=error, interrupted=interrupted)
            except Exception as hook_err:
                warnings.warn(
                    f"a run_failed hook raised {type(hook_err).__name__}: {hook_err}",
                    AsklepiosWarning,
                    stacklevel=2,
                )
        if not self.dist.is_main:
            return
        if (self.run_dir / "record.json").is_file():
            fields: dict[str, Any] = {"status": "interrupted" if interrupted else "failed"}
            if self.started:  # trackers say where their (now closed) runs are
                fields["plugins_metadata"] = self._plugins_metadata()
            _update_record(self.run_dir, error=error, **fields)
        elif not self.resuming:  # nothing of the run to keep: leave no partial directory
            for path in [self.run_dir] if not self.keep_dir else self.run_dir.iterdir():
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
            self._remove_made_parents()

    def _remove_made_parents(self) -> None:
        """Remove the folders above the run directory that this run made, if left empty."""
        if self.made_parents is None or self.keep_dir:
            return
        folder = self.run_dir.parent
        while folder != self.made_parents.parent and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
            folder = folder.parent

    def finish(self, summary: dict[str, Any], quiet: bool) -> None:
        """Call ``run_end``; on rank 0 complete the record, write summary, metrics.csv, plots."""
        from asklepios.reporting import print_summary, stage_comparison, write_reports

        self.progress.run_finished()
        self.start()
        plots: list[Path] = []
        if self.dist.is_main:  # before run_end, so trackers can log the summary and plots
            write_atomic(self.run_dir / "summary.json", json=to_jsonable(summary))
            plots = [p for p in write_reports(self.run_dir, summary) if p.suffix == ".png"]
        self.hooks.run_end(run=self.view, summary=summary)
        if self.dist.is_main:
            self.write_record()  # later stages may have named more components
            self.progress.close()
            if not quiet:
                print_summary(summary, self.progress.console)
            self.progress.log(f"wrote {len(plots)} plots under {self.run_dir / 'plots'}")
            comparison = stage_comparison(summary)
            if comparison:
                self.progress.log(comparison)
            _update_record(self.run_dir, status="completed")
        barrier(self.dist)


def _summarise(
    config: ExperimentConfig,
    session: _Session,
    folds: list[dict[str, Any]],
    k: int | None,
    started: float,
) -> dict[str, Any]:
    from asklepios.reporting import cv_summary

    summary: dict[str, Any] = {
        "name": config.name,
        "run_dir": str(session.run_dir),
        "device": str(session.device),
        "world_size": session.dist.world_size,
        "stages": folds[0]["stages"],
        "test": folds[-1]["test"],
        "wall_seconds": round(time.time() - started, 2),
    }
    if k:
        summary["folds"] = folds
        summary["cv"] = cv_summary([f["test"] for f in folds])
    return summary


def _load_lifecycle_plugins(host: PluginHost, dist: DistInfo) -> list[str]:
    """Load every enabled plugin for its lifecycle hooks; report on stderr those that failed."""
    host.load_all()
    problems = host.problems()
    if dist.is_main:
        for problem in problems:
            print(f"warning: {problem}; it takes no part in this run", file=sys.stderr)
    return problems


def run_experiment(
    config: ExperimentConfig,
    *,
    host: PluginHost,
    resume_dir: str | Path | None = None,
    new_dir: str | Path | None = None,
    folds: int | None = None,
    quiet: bool = False,
    device: str | None = None,
    argv: Sequence[str] = (),
    verified_data: Collection[str] = (),
) -> dict[str, Any]:
    """Run (or resume) ``config`` and return its summary.

    Args:
        config: the validated config (full component ids).
        host: the plugin host (registry, hook relay, plugin index).
        resume_dir: an existing run directory to continue.
        new_dir: the new run directory to write (default ``<output_dir>/<name>-<time>``).
        folds: k-fold cross-validation over train+val (overrides ``train.folds``).
        quiet: no progress bars or per-epoch lines.
        device: overrides ``train.device``.
        argv: the command line, stored in the run record.
        verified_data: :func:`~asklepios.datafiles.verified_key` of the data sections whose
            files the deep checks just verified at their ``data.verify`` level (not again).
    """
    started = time.time()
    dist, dev = init_distributed(device or config.train.device)
    problems = _load_lifecycle_plugins(host, dist)
    kept = resume_dir is not None or (new_dir is not None and Path(new_dir).is_dir())
    parent = Path(new_dir).parent if new_dir is not None else Path(config.output_dir)
    made_parents = None if kept or not dist.is_main else _top_missing(parent)
    run_dir = (
        _existing_run_dir(resume_dir, dist) if resume_dir else _new_run_dir(config, dist, new_dir)
    )
    view = RunStateView(
        config=config,
        context=BuildContext(
            seed=config.seed, device=str(dev), rank=dist.rank, world_size=dist.world_size
        ),
        output_dir=str(run_dir),
        rank=dist.rank,
        world_size=dist.world_size,
        is_main=dist.is_main,
    )
    session = _Session(
        config=config,
        host=host,
        run_dir=run_dir,
        resuming=resume_dir is not None,
        keep_dir=kept,
        made_parents=made_parents,
        dist=dist,
        device=dev,
        progress=RunProgress(enabled=dist.is_main, quiet=quiet),
        argv=argv,
        view=view,
        plugin_problems=problems,
        verified=set(verified_data),
    )
    try:
        with session.progress:  # on Ctrl-C: terminal restored, RunInterrupted says where
            session.progress.run_started(run_dir, session.resuming)
            k = folds or config.train.folds
            results = [session.run_fold(fold, k) for fold in (range(k) if k else [None])]
            summary = _summarise(config, session, results, k, started)
            session.finish(summary, quiet)
    except BaseException as err:
        session.fail(err)
        raise
    barrier(dist)  # every rank returns once rank 0 has written the summary and the record
    return summary
