"""The ``asklepios`` command line: parse, dispatch, print. Logic lives in the modules commands use.

Commands: ``plugins list|show``, ``components``, ``validate``, ``schema``, ``doctor``,
``new-plugin``, and the sub-commands plugins contribute (``asklepios <plugin-id> <command>``,
through the ``register_commands`` hook; :mod:`asklepios.commands`); global
options ``--version``, ``--debug`` (tracebacks), ``--strict`` (re-raise plugin failures, like
``ASKLEPIOS_STRICT_PLUGINS=1``) and ``--disable ID`` (never load a plugin, like
``ASKLEPIOS_DISABLE_PLUGINS``).

Exit codes:

* ``0`` -- success.
* ``1`` -- the command failed for a reason it explains: an invalid config, a plugin that failed to
  load, an unknown id, an unreadable file (any :class:`asklepios_sdk.AsklepiosError`).
* ``2`` -- the command line itself is wrong (unknown option, missing argument).
* ``3`` -- ``doctor`` found broken, incompatible or duplicated plugins.
* ``4`` -- an unexpected internal error (a bug); ``--debug`` prints the traceback.
* ``130`` -- interrupted.

Adding a command: write a small function that parses options and calls into the module the command
is about, decorate it with ``@app.command()`` (or ``@plugins_app.command()``), and raise
:class:`~asklepios_sdk.AsklepiosError` subclasses for failures: :func:`main` prints them as one
message. Keep heavy imports (torch) inside the function body: ``asklepios plugins list`` must stay
free of them.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import traceback
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from asklepios import plugins as _plugins

__all__ = [
    "EXIT_DOCTOR",
    "EXIT_ERROR",
    "EXIT_INTERNAL",
    "EXIT_OK",
    "EXIT_USAGE",
    "app",
    "main",
    "run_command",
]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_DOCTOR = 3
EXIT_INTERNAL = 4
EXIT_INTERRUPTED = 130

app = typer.Typer(
    name="asklepios",
    help="Plugin framework for medical-imaging deep learning research.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
plugins_app = typer.Typer(help="List and inspect installed plugins.", no_args_is_help=True)
app.add_typer(plugins_app, name="plugins")

_STATE: dict[str, Any] = {"debug": False}


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    console = Console(stderr=stderr, highlight=False)
    if not console.is_terminal:  # piped: do not squeeze tables into 80 columns
        console = Console(stderr=stderr, highlight=False, width=max(console.width, 200))
    return console


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def _version_callback(value: bool) -> None:
    if value:
        import asklepios

        sys.stdout.write(f"asklepios {asklepios.__version__}\n")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version_callback, is_eager=True, help="Print the version."
        ),
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Print tracebacks on errors.")] = False,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict", help=f"Raise plugin failures at once (also {_plugins.STRICT_ENV}=1)."
        ),
    ] = False,
    disable: Annotated[
        list[str] | None,
        typer.Option(
            "--disable",
            metavar="ID",
            help=f"Never load this plugin; repeatable (also {_plugins.DISABLE_ENV}).",
        ),
    ] = None,
) -> None:
    """Plugin framework for medical-imaging deep learning research."""
    _STATE["debug"] = debug
    if strict or disable:
        _plugins.set_host(_plugins.PluginHost(strict=True if strict else None, disabled=disable))


# -- plugins ---------------------------------------------------------------------------------------


@plugins_app.command("list")
def plugins_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON records.")] = False,
    show_all: Annotated[bool, typer.Option("--all", help="Include the core's built-ins.")] = False,
    requirements: Annotated[
        bool, typer.Option("--requirements", help="Print name==version pins.")
    ] = False,
) -> None:
    """List installed plugins from the index (imports no plugin and no torch)."""
    from asklepios import _cli_render

    infos = _plugins.get_host().plugins(include_builtin=show_all)
    if requirements:
        for info in infos:
            if not info.builtin:
                sys.stdout.write(f"{info.distribution}=={info.version}\n")
    elif as_json:
        _print_json([info.to_dict() for info in infos])
    else:
        _cli_render.plugin_table(_console(), infos)


@plugins_app.command("show")
def plugins_show(
    plugin_id: Annotated[str, typer.Argument(metavar="ID", help="Plugin id.")],
    components: Annotated[
        bool,
        typer.Option("--components/--no-components", help="Load it and list its components."),
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON record.")] = False,
) -> None:
    """Show one plugin: metadata, status or failure, and its components with their params."""
    from asklepios import _cli_render

    host = _plugins.get_host()
    info = host.info(plugin_id)
    if components and info.is_usable:
        info = host.activate(plugin_id)
    entries = [e for e in host.registry.entries() if e.plugin_id == plugin_id]
    if as_json:
        record = info.to_dict()
        record["component_list"] = [_cli_render.entry_record(e) for e in entries]
        _print_json(record)
    else:
        _cli_render.plugin_detail(_console(), info, entries if components else None)


# -- components ------------------------------------------------------------------------------------


@app.command("components")
def components(
    kind: Annotated[
        str | None, typer.Argument(help="Component kind (loss, backbone, ...) or a pattern.")
    ] = None,
    pattern: Annotated[
        str | None, typer.Argument(help="Wildcard on the id, e.g. '*focal*'.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON records.")] = False,
) -> None:
    """List installed components, optionally of one kind and matching a wildcard pattern.

    ``--json`` prints ``{"components": [...], "plugin_problems": [...]}``: the plugins that did
    not load are part of the answer, never dropped.
    """
    from asklepios import _cli_render
    from asklepios.registry import KINDS

    plurals = {k + ("es" if k.endswith("s") else "s"): k for k in KINDS}
    if kind is not None and kind not in KINDS:
        if kind in plurals:
            kind = plurals[kind]
        elif pattern is None:
            kind, pattern = None, kind  # `asklepios components '*focal*'`
    host = _plugins.get_host()
    entries = host.registry.list(kind, pattern)
    failed = host.failures()
    if as_json:
        _print_json(
            {
                "components": [_cli_render.entry_record(e) for e in entries],
                "plugin_problems": [i.to_dict() for i in failed],
            }
        )
    else:
        _cli_render.component_table(_console(), entries, failed)


# -- configs ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def _config_warnings() -> Iterator[None]:
    """Print the config's warnings (a shadowed ``--set``...) as ``warning:`` lines on stderr."""
    from asklepios.config import ConfigWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConfigWarning)
        try:
            yield
        finally:
            for item in caught:
                if issubclass(item.category, ConfigWarning):
                    sys.stderr.write(f"warning: {item.message}\n")
                else:
                    warnings.showwarning(
                        item.message, item.category, item.filename, item.lineno, item.file
                    )


@app.command("validate")
def validate(
    config: Annotated[Path, typer.Argument(help="Config file (.yaml or .json).")],
    overrides: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="KEY=VALUE",
            help="Override a key, e.g. train.epochs=5 or stages.classifier.train.epochs=1.",
        ),
    ] = None,
    show: Annotated[
        bool,
        typer.Option("--print", help="Print the resolved config (full ids, every default)."),
    ] = False,
    deep: Annotated[
        bool,
        typer.Option(
            "--deep",
            help="Also build each stage's model on the meta device (imports torch): freeze "
            "patterns, monitored metric, init_from, device. `run` always does this.",
        ),
    ] = False,
) -> None:
    """Validate a config: ids, params, files and folders; --deep also builds each model."""
    from asklepios.config import dump_config, load_config, stage_configs

    with _config_warnings():
        if deep:
            from asklepios.deep_checks import load_checked_config

            resolved = load_checked_config(config, overrides or ())
        else:
            resolved = load_config(config, overrides or ())
    if show:
        sys.stdout.write(dump_config(resolved))
        return
    stages = stage_configs(resolved)
    names = ", ".join(stage.name if stage else "main" for stage, _ in stages)
    level = "deep checks" if deep else "fast checks; --deep also builds each stage's model"
    sys.stdout.write(f"{config}: valid ({len(stages)} stage(s): {names}; {level})\n")


@app.command("schema")
def schema(
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write to FILE (default: stdout).")
    ] = None,
) -> None:
    """Write the JSON Schema of configs with every installed component, for editors."""
    from asklepios_sdk.io import write_atomic

    from asklepios.config import config_schema

    text = json.dumps(config_schema(), indent=2) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        write_atomic(output, text)
        _console(stderr=True).print(f"wrote {output}")


# -- experiments (logic in asklepios.engine, .reporting, .records) --------------------------------


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
    from asklepios.deep_checks import load_checked_config
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
    with _config_warnings():
        config = load_checked_config(config_path, overrides, device=device)
    return run_experiment(
        config,
        host=_plugins.get_host(),
        resume_dir=resume,
        folds=folds,
        quiet=quiet,
        device=device,
        argv=argv,
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


# -- finished runs: predict, export, compare (logic in asklepios.inference, .export, .compare) ----


@app.command("predict")
def predict(
    run_dir: Annotated[Path, typer.Argument(help="A finished run directory.")],
    data: Annotated[
        str | None,
        typer.Option(
            "--data",
            help="Dataset config (.yaml/.json), CSV with a 'path' column, or image folder; "
            "default: the run's own dataset.",
        ),
    ] = None,
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
    """Predict with a run's model: one CSV row per item (id, label, probabilities)."""
    from asklepios.api import Run
    from asklepios.engine.distributed import init_distributed

    dist, dev = init_distributed(device)
    predictions = Run.open(run_dir).predict(
        data, split=split, checkpoint=checkpoint, stage=stage, fold=fold, device=str(dev)
    )
    if dist.is_main:
        path = predictions.write_csv(output or run_dir / "predictions.csv")
        _console(stderr=True).print(f"wrote {len(predictions)} predictions to {path}")


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
        typer.Option("--metric", metavar="KEY", help="Metric to show; repeatable."),
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


# -- doctor ----------------------------------------------------------------------------------------


@app.command("doctor")
def doctor() -> None:
    """Check the installation: versions, device, and every plugin's load status and time."""
    from asklepios import _cli_render

    host = _plugins.get_host()
    host.activate_all()
    problems = _cli_render.doctor_report(_console(), host)
    if problems:
        raise typer.Exit(EXIT_DOCTOR)


# -- plugin authors (logic in asklepios_sdk.scaffold) ---------------------------------------------


@app.command("new-plugin")
def new_plugin(
    name: Annotated[str, typer.Argument(help="Plugin id, lowercase snake_case (e.g. my_lab).")],
    kinds: Annotated[
        str, typer.Option("--kinds", help="Comma-separated kinds to write an example of.")
    ] = "loss",
    directory: Annotated[
        Path, typer.Option("--dir", help="Directory to create the plugin package in.")
    ] = Path("."),
    dist_name: Annotated[
        str | None,
        typer.Option(
            "--dist-name",
            help="Distribution (PyPI) name; default asklepios-<id>, a convention, not a rule. "
            "The generated __version__ reads this name.",
        ),
    ] = None,
) -> None:
    """Write a ready plugin package: pyproject, hooks, params, one example per kind, tests."""
    from asklepios_sdk.scaffold import new_plugin as write_plugin
    from asklepios_sdk.scaffold import next_steps

    path = write_plugin(name, kinds.split(","), directory, dist_name=dist_name)
    lines = f"wrote {path}\nnext: {next_steps(path)}"
    _console().print(lines, highlight=False, markup=False, soft_wrap=True)  # a line to paste


# -- entry point -----------------------------------------------------------------------------------


def _is_asklepios_error(err: BaseException) -> bool:
    errors = sys.modules.get("asklepios_sdk.errors")
    return errors is not None and isinstance(err, errors.AsklepiosError)


def _show_cursor() -> None:
    """Give a terminal its cursor back (a live display hides it)."""
    if sys.stdout.isatty():
        sys.stdout.write("\x1b[?25h")
        sys.stdout.flush()


def _abort(signum: int, frame: Any) -> None:
    """Second Ctrl-C: leave at once, without the clean-up the first one started."""
    _show_cursor()
    os.write(2, b"\naborted\n")
    os._exit(EXIT_INTERRUPTED)


def _interrupt(signum: int, frame: Any) -> None:
    """First Ctrl-C: stop cleanly (KeyboardInterrupt); a second one aborts."""
    signal.signal(signal.SIGINT, _abort)
    raise KeyboardInterrupt


def _interrupted(err: BaseException | None) -> int:
    """Print where a command was interrupted (a run's message, else just that); return 130.

    Under torchrun every rank gets the Ctrl-C; only rank 0 says where the run stopped.
    """
    _show_cursor()
    if os.environ.get("RANK", "0") == "0":
        sys.stderr.write(f"{getattr(err, 'message', None) or 'interrupted'}\n")
    _STATE["interrupted"] = True
    return EXIT_INTERRUPTED


def main(argv: list[str] | None = None) -> int:
    """Run the CLI on ``argv`` (default ``sys.argv[1:]``) and return the exit code.

    Ctrl-C stops the command cleanly (exit 130; a run says where it stopped and how to resume
    it); a second Ctrl-C during that clean-up exits at once.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    _STATE["debug"] = "--debug" in args
    _STATE["interrupted"] = False
    handler = None
    if threading.current_thread() is threading.main_thread():
        handler = signal.signal(signal.SIGINT, _interrupt)
    try:
        return _dispatch(args)
    finally:
        if handler is not None:
            signal.signal(signal.SIGINT, handler)


def _plugin_command(args: list[str]) -> tuple[str, list[str]] | None:
    """Return ``(plugin id, its arguments)`` when the first word is a plugin's id, not a command.

    Applies the global ``--strict``/``--disable`` options given before it, as the root callback
    would.
    """
    strict, disabled, index = False, [], 0
    while index < len(args) and args[index].startswith("-"):
        option = args[index]
        if option in ("--version", "--help"):
            return None
        strict = strict or option == "--strict"
        if option == "--disable" and index + 1 < len(args):
            disabled.append(args[index + 1])
            index += 1
        elif option.startswith("--disable="):
            disabled.append(option.partition("=")[2])
        index += 1
    if index == len(args):
        return None
    word = args[index]
    if strict or disabled:
        _plugins.set_host(_plugins.PluginHost(strict=True if strict else None, disabled=disabled))
    if word == "core" or word not in _plugins.get_host().index:
        return None
    import click

    root = typer.main.get_command(app)
    if isinstance(root, click.Group) and word in root.commands:
        return None  # a built-in command of the same name wins
    return word, args[index + 1 :]


def _dispatch(args: list[str]) -> int:
    try:
        plugin_call = _plugin_command(args)
        if plugin_call is not None:
            from asklepios.commands import run_plugin_command

            return run_plugin_command(_plugins.get_host(), *plugin_call)
        result = app(args=args, prog_name="asklepios", standalone_mode=False)
    except typer.Exit as err:
        result = err.exit_code
    except KeyboardInterrupt as err:
        return _interrupted(err)
    except typer.Abort as err:
        return _interrupted(err.__cause__)
    except typer.TyperException as err:  # click usage errors (vendored by typer)
        show = getattr(err, "show", None)
        if show is not None:
            show()
        else:
            sys.stderr.write(f"error: {err}\n")
        code = getattr(err, "exit_code", EXIT_USAGE)
        return EXIT_USAGE if code in (None, 1) else int(code)
    except Exception as err:
        if _STATE["debug"]:
            traceback.print_exc()
        if _is_asklepios_error(err):
            sys.stderr.write(f"error: {err}\n")
            return EXIT_ERROR
        sys.stderr.write(
            f"internal error: {type(err).__name__}: {err}\n"
            "(this is a bug; run again with --debug for the traceback and report it)\n"
        )
        return EXIT_INTERNAL
    if result == EXIT_INTERRUPTED and not _STATE.get("interrupted"):
        return _interrupted(None)  # typer turned Ctrl-C into a silent exit 130
    return int(result) if isinstance(result, int) else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
