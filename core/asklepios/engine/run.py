"""An experiment from start to end: run directory, folds, stages, resume, summary, plots, record.

:func:`run_experiment` reads straight through: start the session (distributed set-up, run
directory, lifecycle plugins), run each fold's stages, summarise, finish (hooks, record, summary,
plots). A stage that finished before an interruption is restored from its ``summary.json``.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from asklepios_sdk import AsklepiosError, BuildContext
from asklepios_sdk.io import write_atomic

from asklepios.build import Built, build_experiment
from asklepios.config.model import ExperimentConfig, StageConfig
from asklepios.engine.checkpoint import load_checkpoint
from asklepios.engine.distributed import DistInfo, barrier, init_distributed
from asklepios.engine.loop import StageRunner
from asklepios.engine.progress import RunProgress
from asklepios.engine.seeding import derive_seed, seed_everything
from asklepios.engine.state import MetricsLog, RunStateView, to_jsonable
from asklepios.reporting import stage_facts

if TYPE_CHECKING:
    from asklepios.plugins import PluginHost

__all__ = ["RunError", "run_experiment"]


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


def _existing_run_dir(resume_dir: str | Path) -> Path:
    run_dir = Path(resume_dir)
    if not (run_dir / "config.yaml").is_file():
        raise RunError(f"--resume {run_dir}: no config.yaml there; is it a run directory?")
    return run_dir


def _init_from(runner: StageRunner, fold_dir: Path, stage: StageConfig) -> None:
    """Load the checkpoint a stage starts from (the whole model, else the backbone)."""
    init = stage.init_from
    assert init is not None
    path = fold_dir / "checkpoints" / init.stage / f"{init.checkpoint}.pt"
    state = load_checkpoint(path, map_location=runner.device)
    if set(state["model"]) == set(runner.model.state_dict()):
        runner.model.load_state_dict(state["model"])
    else:
        runner.built.backbone.load_state_dict(state["backbone"])


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
        for index, (stage, effective) in enumerate(stage_configs(self.config)):
            name = stage.name if stage is not None else "main"
            done = fold_dir / "checkpoints" / name / "summary.json"
            if self.resuming and done.is_file():
                summaries[name] = json.loads(done.read_text())
                offset = summaries[name].get("metrics_offset_end", offset)
                continue
            fold_of = (fold, k) if fold is not None and k else None
            summaries[name] = self.run_stage(
                index, name, stage, effective, fold_dir, fold_of, log, offset
            )
            offset = summaries[name]["metrics_offset_end"]
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
        built = build_experiment(
            effective,
            self.host.registry,
            rank=self.dist.rank,
            world_size=self.dist.world_size,
            device=str(self.device),
            stage=name,
            output_dir=str(self.run_dir),
            fold=fold,
        )
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
        if stage is not None and stage.init_from is not None:
            _init_from(runner, fold_dir, stage)
        if stage is not None and stage.replace_head:
            _replace_head(built, name, self.device)
        runner.prepare(stage.freeze if stage is not None else [])
        self._show_stage(runner, index, name, stage)
        self.start()
        resumed = self.resuming and runner.resume()
        if self.resuming and not resumed and self.dist.is_main:
            log.truncate(offset)
        self.hooks.stage_start(run=self.view, stage=name)
        summary = runner.fit()
        summary.update(stage_facts(built.evaluators, built.ctx.data.class_names))
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
        self.hooks.run_start(run=self.view)
        self.started = True

    def write_record(self) -> None:
        from asklepios.config import dump_config
        from asklepios.records import write_record

        metadata = {
            plugin_id: to_jsonable(result)
            for plugin_id, result in self.host.call_each("record_metadata", run=self.view).items()
        }
        write_record(
            self.run_dir,
            dump_config(self.config),
            host=self.host,
            component_ids=self.component_ids,
            seed=self.config.seed,
            device=str(self.device),
            world_size=self.dist.world_size,
            argv=self.argv,
            plugins_metadata=metadata,
            weights=self.weights,
            plugin_problems=self.plugin_problems,
        )

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
            if not self.resuming:  # later stages may have named more components
                self.write_record()
            self.progress.close()
            if not quiet:
                print_summary(summary, self.progress.console)
            self.progress.log(f"wrote {len(plots)} plots under {self.run_dir / 'plots'}")
            comparison = stage_comparison(summary)
            if comparison:
                self.progress.log(comparison)
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
    """
    started = time.time()
    dist, dev = init_distributed(device or config.train.device)
    run_dir = _existing_run_dir(resume_dir) if resume_dir else _new_run_dir(config, dist, new_dir)
    problems = _load_lifecycle_plugins(host, dist)
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
        dist=dist,
        device=dev,
        progress=RunProgress(enabled=dist.is_main, quiet=quiet),
        argv=argv,
        view=view,
        plugin_problems=problems,
    )
    with session.progress:  # on Ctrl-C: terminal restored, RunInterrupted says where
        session.progress.run_started(run_dir, session.resuming)
        k = folds or config.train.folds
        results = [session.run_fold(fold, k) for fold in (range(k) if k else [None])]
        summary = _summarise(config, session, results, k, started)
        session.finish(summary, quiet)
    return summary
