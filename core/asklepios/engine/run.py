"""An experiment from start to end: run directory, stages, folds, resume, summary, plots, record."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from asklepios_sdk import AsklepiosError

from asklepios.build import build_experiment
from asklepios.engine.checkpoint import load_checkpoint
from asklepios.engine.distributed import DistInfo, barrier, init_distributed
from asklepios.engine.loop import StageRunner
from asklepios.engine.progress import RunProgress
from asklepios.engine.seeding import derive_seed, seed_everything
from asklepios.engine.state import MetricsLog, RunStateView, to_jsonable

__all__ = ["RunError", "run_command", "run_experiment"]


class RunError(AsklepiosError):
    """A run cannot start or continue (bad run directory, missing stage checkpoint)."""


def _new_run_dir(config: Any, dist: DistInfo) -> Path:
    path = None
    if dist.is_main:
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
        path = Path(holder[0])  # type: ignore[arg-type]
    return path  # type: ignore[return-value]


def _init_from(runner: StageRunner, fold_dir: Path, stage_cfg: Any) -> None:
    init = stage_cfg.init_from
    path = fold_dir / "checkpoints" / init.stage / f"{init.checkpoint}.pt"
    state = load_checkpoint(path, map_location=runner.device)
    model_keys = set(runner.model.state_dict())
    if set(state["model"]) == model_keys:
        runner.model.load_state_dict(state["model"])
    else:
        runner.built.backbone.load_state_dict(state["backbone"])


def _write_record(
    run_dir: Path,
    config: Any,
    host: Any,
    component_ids: list[str],
    weights: dict[str, Any],
    dev: torch.device,
    dist: DistInfo,
    argv: Sequence[str],
    view: RunStateView,
) -> None:
    from asklepios.config import dump_config
    from asklepios.records import write_record

    metadata = {
        plugin_id: to_jsonable(result)
        for plugin_id, result in host.call_each("record_metadata", run=view).items()
    }
    write_record(
        run_dir,
        dump_config(config),
        host=host,
        component_ids=component_ids,
        seed=config.seed,
        device=str(dev),
        world_size=dist.world_size,
        argv=argv,
        plugins_metadata=metadata,
        weights=weights,
    )


def run_experiment(
    config: Any,
    *,
    host: Any,
    resume_dir: str | Path | None = None,
    folds: int | None = None,
    quiet: bool = False,
    device: str | None = None,
    argv: Sequence[str] = (),
) -> dict[str, Any]:
    """Run (or resume) ``config`` and return its summary.

    Args:
        config: the validated :class:`~asklepios.config.model.ExperimentConfig`.
        host: the plugin host (registry, hook relay, plugin index).
        resume_dir: an existing run directory to continue.
        folds: k-fold cross-validation over train+val (overrides ``train.folds``).
        quiet: no progress bars or per-epoch lines.
        device: overrides ``train.device``.
        argv: the command line, stored in the run record.
    """
    from asklepios.config import stage_configs
    from asklepios.reporting import cv_summary, print_summary, write_plots

    started = time.time()
    dist, dev = init_distributed(device or config.train.device)
    if resume_dir is not None:
        run_dir = Path(resume_dir)
        if not (run_dir / "config.yaml").is_file():
            raise RunError(f"--resume {run_dir}: no config.yaml there; is it a run directory?")
    else:
        run_dir = _new_run_dir(config, dist)
    k = folds or config.train.folds
    stages = stage_configs(config)
    progress = RunProgress(enabled=dist.is_main, quiet=quiet)
    host.load_all()  # cross-cutting plugins (loggers, EMA) take part without being named
    hooks = host.hook
    step_end = host.caller("step_end")
    fold_list: list[int | None] = list(range(k)) if k else [None]
    view = RunStateView(
        config=config,
        context=None,
        output_dir=str(run_dir),
        rank=dist.rank,  # type: ignore[arg-type]
        world_size=dist.world_size,
        is_main=dist.is_main,
    )
    component_ids: list[str] = []
    weights: dict[str, Any] = {}
    fold_summaries: list[dict[str, Any]] = []
    started_hooks = False
    for fold in fold_list:
        fold_dir = run_dir / f"fold-{fold}" if fold is not None else run_dir
        log = MetricsLog(fold_dir / "metrics.jsonl" if dist.is_main else None)
        if dist.is_main:
            fold_dir.mkdir(parents=True, exist_ok=True)
        stage_summaries: dict[str, Any] = {}
        offset = 0
        for index, (stage_cfg, effective) in enumerate(stages):
            name = stage_cfg.name if stage_cfg is not None else "main"
            stage_dir = fold_dir / "checkpoints" / name
            done = stage_dir / "summary.json"
            if resume_dir is not None and done.is_file():
                stage_summaries[name] = json.loads(done.read_text())
                offset = stage_summaries[name].get("metrics_offset_end", offset)
                continue
            seed_everything(
                derive_seed(effective.seed, index, -1 if fold is None else fold),
                effective.train.deterministic,
            )
            built = build_experiment(
                effective,
                host.registry,
                rank=dist.rank,
                world_size=dist.world_size,
                device=str(dev),
                stage=name,
                output_dir=str(run_dir),
                fold=(fold, k) if fold is not None else None,
            )
            component_ids += [c for c in built.component_ids if c not in component_ids]
            weights.update({f"{name}/{where}": rec for where, rec in built.weights.items()})
            view.context, view.config = built.ctx, effective
            runner = StageRunner(
                built,
                name,
                stage_dir,
                dist,
                dev,
                log,
                progress,
                hooks,
                step_end,
                view,
            )
            if stage_cfg is not None and stage_cfg.init_from is not None:
                _init_from(runner, fold_dir, stage_cfg)
            if stage_cfg is not None and stage_cfg.replace_head:
                num_classes = built.ctx.data.num_classes
                if not num_classes:
                    raise RunError(
                        f"stage {name}: replace_head needs the dataset's number of classes"
                    )
                built.backbone.reset_classifier(num_classes)
                built.backbone.to(dev)
            runner.prepare(stage_cfg.freeze if stage_cfg is not None else [])
            if not started_hooks:
                if dist.is_main and resume_dir is None:
                    _write_record(
                        run_dir, config, host, component_ids, weights, dev, dist, argv, view
                    )
                hooks.run_start(run=view)
                started_hooks = True
            resumed = resume_dir is not None and runner.resume()
            if resume_dir is not None and not resumed and dist.is_main:
                log.truncate(offset)
            hooks.stage_start(run=view, stage=name)
            summary = runner.fit()
            summary["metrics_offset_end"] = log.offset()
            offset = summary["metrics_offset_end"]
            if dist.is_main:
                from asklepios.records import write_atomic

                write_atomic(done, json.dumps(to_jsonable(summary), indent=2) + "\n")
            hooks.stage_end(run=view, stage=name, summary=summary)
            stage_summaries[name] = to_jsonable(summary)
        last = stage_summaries[list(stage_summaries)[-1]]
        fold_summaries.append(
            {"fold": fold, "stages": stage_summaries, "test": last.get("test", {})}
        )
    summary: dict[str, Any] = {
        "name": config.name,
        "run_dir": str(run_dir),
        "device": str(dev),
        "world_size": dist.world_size,
        "stages": fold_summaries[0]["stages"],
        "test": fold_summaries[-1]["test"],
        "wall_seconds": round(time.time() - started, 2),
    }
    if k:
        summary["folds"] = fold_summaries
        summary["cv"] = cv_summary([f["test"] for f in fold_summaries])
    if not started_hooks:
        hooks.run_start(run=view)
    hooks.run_end(run=view, summary=summary)
    if dist.is_main:
        from asklepios.records import write_atomic

        if resume_dir is None:
            _write_record(run_dir, config, host, component_ids, weights, dev, dist, argv, view)
        write_atomic(run_dir / "summary.json", json.dumps(to_jsonable(summary), indent=2) + "\n")
        if not quiet:
            print_summary(summary, progress.console)
        for plot in write_plots(run_dir, summary):
            progress.log(f"wrote {plot}")
    barrier(dist)
    return summary


def run_command(
    config_path: str | Path | None,
    overrides: Sequence[str] = (),
    *,
    resume: str | Path | None = None,
    folds: int | None = None,
    quiet: bool = False,
    device: str | None = None,
    argv: Sequence[str] = (),
) -> dict[str, Any]:
    """Load the config (from ``resume``'s ``config.yaml`` when resuming) and run it."""
    from asklepios.config import load_config
    from asklepios.plugins import get_host

    if resume is not None:
        config_path = Path(resume) / "config.yaml"
        if not Path(config_path).is_file():
            raise RunError(f"--resume {resume}: no config.yaml there; is it a run directory?")
    if config_path is None:
        raise RunError("give a config file, or --resume RUN_DIR to continue a run")
    config = load_config(config_path, overrides)
    return run_experiment(
        config,
        host=get_host(),
        resume_dir=resume,
        folds=folds,
        quiet=quiet,
        device=device,
        argv=argv,
    )
