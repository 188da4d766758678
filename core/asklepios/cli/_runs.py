"""Commands on runs: run (or resume), report, record check, predict, export, compare.

The logic lives in :mod:`asklepios.engine`, :mod:`asklepios.reporting`, :mod:`asklepios.records`,
:mod:`asklepios.inference`, :mod:`asklepios.export` and :mod:`asklepios.compare`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from asklepios import plugins as _plugins
from asklepios.cli._app import (
    EXIT_ERROR,
    _config_warnings,
    _console,
    _interrupted,
    _print_json,
    app,
)

__all__ = ["run_command"]


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
    """Load the config (from ``resume``'s ``config.yaml`` when resuming) and run it.

    The config passes the deep checks (:mod:`asklepios.deep_checks`) before the run directory
    is created, so a config that cannot run leaves nothing behind. With ``resume``, a config
    file or ``--set`` overrides are refused unless they resolve to the run's own config (same
    sha256); the error names each key that differs.
    """
    from asklepios.config import load_config_with_origins
    from asklepios.deep_checks import check_deep, load_checked_config
    from asklepios.engine.run import RunError, check_resume_config, run_experiment

    if resume is not None:  # a config or --set only if it resolves to the run's own config
        saved = Path(resume) / "config.yaml"
        if not saved.is_file():
            raise RunError(f"--resume {resume}: no config.yaml there; is it a run directory?")
        if config_path is not None or overrides:
            with _config_warnings():
                given = load_checked_config(config_path or saved, overrides, device=device)
            source = " ".join([str(config_path or saved), *(f"--set {o}" for o in overrides)])
            check_resume_config(resume, given, source)
        config_path, overrides = saved, ()
    if config_path is None:
        raise RunError("give a config file, or --resume RUN_DIR to continue a run")
    host = _plugins.get_host()
    with _config_warnings():
        config, origins = load_config_with_origins(config_path, overrides, host=host)
        verified = check_deep(config, host, origins, device=device)
    return run_experiment(
        config,
        host=host,
        resume_dir=resume,
        folds=folds,
        quiet=quiet,
        device=device,
        argv=argv,
        verified_data=verified,
    )


@app.command("run")
def run(
    config: Annotated[Path | None, typer.Argument(help="Config file; omit with --resume.")] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", metavar="KEY=VALUE", help="Override a key, e.g. train.epochs=5."),
    ] = None,
    resume: Annotated[
        Path | None, typer.Option("--resume", metavar="RUN_DIR", help="Continue a stopped run.")
    ] = None,
    folds: Annotated[
        int | None, typer.Option("--folds", min=2, help="k-fold cross-validation.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress or summary output.")] = False,
    device: Annotated[
        str | None, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")
    ] = None,
) -> None:
    """Run an experiment (or resume one): train, evaluate, test, write the run directory."""
    try:
        run_command(
            config,
            overrides or (),
            resume=resume,
            folds=folds,
            quiet=quiet,
            device=device,
            argv=["asklepios", *sys.argv[1:]],
        )
    except KeyboardInterrupt as err:  # say where it stopped before typer turns it into exit 130
        raise typer.Exit(_interrupted(err)) from err
    from asklepios.engine.distributed import leave_process_group

    leave_process_group()


@app.command("report")
def report(run_dir: Annotated[Path, typer.Argument(help="A run directory.")]) -> None:
    """Print a run's summary table and regenerate its plots."""
    from asklepios.reporting import report_run

    report_run(run_dir, _console())


record_app = typer.Typer(help="Inspect run records.", no_args_is_help=True)
app.add_typer(record_app, name="record")


@record_app.command("check")
def record_check(run_dir: Annotated[Path, typer.Argument(help="A run directory.")]) -> None:
    """Report what differs between a run's record and what is installed now."""
    from asklepios.records import check_record

    diffs = check_record(run_dir, _plugins.get_host())
    console = _console()
    if not diffs:
        console.print(f"{run_dir}: the installed versions match the record")
        return
    for line in diffs:
        console.print(f"- {line}", highlight=False)
    raise typer.Exit(EXIT_ERROR)


@app.command("predict")
def predict(
    run_dir: Annotated[Path, typer.Argument(help="A finished run directory.")],
    data: Annotated[
        str | None,
        typer.Option(
            "--data",
            help="Dataset config (.yaml/.json), CSV of image paths, or image folder; "
            "default: the run's own dataset.",
        ),
    ] = None,
    path_column: Annotated[
        str, typer.Option("--path-column", help="The image column of a --data CSV.")
    ] = "path",
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", help="CSV to write (default RUN_DIR/predictions.csv)."),
    ] = None,
    split: Annotated[str, typer.Option("--split", help="Split of a dataset to predict.")] = "test",
    checkpoint: Annotated[
        str, typer.Option("--checkpoint", help="best, last, or a .pt file.")
    ] = "best",
    stage: Annotated[str | None, typer.Option("--stage", help="Default: the last stage.")] = None,
    fold: Annotated[int | None, typer.Option("--fold", help="Fold of a CV run.")] = None,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")] = "auto",
) -> None:
    """Predict with a run's model: one CSV row per item (id, label, probabilities).

    On the run's own split, ids are the files the dataset lists and ``label`` the true label.
    """
    from asklepios.api import Run
    from asklepios.engine.distributed import init_distributed, leave_process_group

    dist, dev = init_distributed(device)
    predictions = Run.open(run_dir).predict(
        data,
        split=split,
        checkpoint=checkpoint,
        stage=stage,
        fold=fold,
        device=str(dev),
        path_column=path_column,
    )
    if dist.is_main:
        path = predictions.write_csv(output or run_dir / "predictions.csv")
        _console(stderr=True).print(f"wrote {len(predictions)} predictions to {path}")
    leave_process_group()


@app.command("export")
def export(
    run_dir: Annotated[Path, typer.Argument(help="A finished run directory.")],
    fmt: Annotated[
        str, typer.Option("--format", help="torchscript, onnx or safetensors.")
    ] = "torchscript",
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", help="Folder or file (default RUN_DIR/export/)."),
    ] = None,
    checkpoint: Annotated[
        str, typer.Option("--checkpoint", help="best, last, or a .pt file.")
    ] = "best",
    stage: Annotated[str | None, typer.Option("--stage", help="Default: the last stage.")] = None,
    fold: Annotated[int | None, typer.Option("--fold", help="Fold of a CV run.")] = None,
) -> None:
    """Export a run's model with its preprocessing JSON, verified by reloading it."""
    from asklepios.api import Run

    exported = Run.open(run_dir).export(fmt, output, checkpoint=checkpoint, stage=stage, fold=fold)
    _console().print(
        f"wrote {exported.path} and {exported.preprocessing.name} (reloaded: largest logit "
        f"difference {exported.max_abs_diff:.2g})"
    )


@app.command("compare")
def compare(
    runs: Annotated[list[str], typer.Argument(help="Run directories or globs ('runs/lt-*').")],
    metric: Annotated[
        list[str] | None,
        typer.Option(
            "--metric",
            metavar="KEY",
            help="Metric to show: a final test key, or STAGE:KEY for a stage's; repeatable.",
        ),
    ] = None,
    plot: Annotated[
        Path | None, typer.Option("--plot", metavar="PNG", help="Write a bar chart.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Compare runs: final test metrics (mean ± sd over folds), config and record differences."""
    from asklepios.compare import compare_runs, expand_runs, plot_comparison, print_comparison

    comparison = compare_runs(expand_runs(runs), metric or ())
    if as_json:
        _print_json(comparison.to_dict())
    else:
        print_comparison(comparison, _console())
    if plot is not None:
        _console(stderr=True).print(f"wrote {plot_comparison(comparison, plot)}")
