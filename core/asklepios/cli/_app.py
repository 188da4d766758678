"""What every command shares: the typer apps, exit codes, consoles and the global options."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import warnings
from collections.abc import Iterator
from typing import Annotated, Any

import typer

from asklepios import plugins as _plugins

__all__ = [
    "EXIT_DOCTOR",
    "EXIT_ERROR",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "app",
    "plugins_app",
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


@contextlib.contextmanager
def _config_warnings() -> Iterator[None]:
    """Print the config's warnings (a shadowed ``--set``...) as ``warning:`` lines on stderr."""
    from asklepios.config import ConfigWarning

    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConfigWarning)
            yield
    finally:  # shown once recording stopped: showing inside would record them again
        for item in caught:
            if issubclass(item.category, ConfigWarning):
                sys.stderr.write(f"warning: {item.message}\n")
            else:
                warnings.showwarning(
                    item.message, item.category, item.filename, item.lineno, item.file
                )


def _show_cursor() -> None:
    """Give a terminal its cursor back (a live display hides it)."""
    if sys.stdout.isatty():
        sys.stdout.write("\x1b[?25h")
        sys.stdout.flush()


def _interrupted(err: BaseException | None) -> int:
    """Print where a command was interrupted (a run's message, else just that); return 130.

    Under torchrun every rank gets the Ctrl-C; only rank 0 says where the run stopped.
    """
    _show_cursor()
    if os.environ.get("RANK", "0") == "0":
        sys.stderr.write(f"{getattr(err, 'message', None) or 'interrupted'}\n")
    _STATE["interrupted"] = True
    return EXIT_INTERRUPTED
