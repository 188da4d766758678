"""The entry point: Ctrl-C handling, plugin sub-commands, and one message per error."""

from __future__ import annotations

import os
import signal
import sys
import threading
import traceback
from typing import Any

import typer

from asklepios import plugins as _plugins
from asklepios.cli._app import (
    _STATE,
    EXIT_ERROR,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    _interrupted,
    _show_cursor,
    app,
)

__all__ = ["main"]


def _is_asklepios_error(err: BaseException) -> bool:
    errors = sys.modules.get("asklepios_sdk.errors")
    return errors is not None and isinstance(err, errors.AsklepiosError)


def _abort(signum: int, frame: Any) -> None:
    """Second Ctrl-C: leave at once, without the clean-up the first one started."""
    _show_cursor()
    os.write(2, b"\naborted\n")
    os._exit(EXIT_INTERRUPTED)


def _interrupt(signum: int, frame: Any) -> None:
    """First Ctrl-C: stop cleanly (KeyboardInterrupt); a second one aborts."""
    signal.signal(signal.SIGINT, _abort)
    raise KeyboardInterrupt


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
