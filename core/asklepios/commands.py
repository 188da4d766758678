"""Sub-commands that plugins contribute: ``asklepios <plugin-id> <command> [ARGS...]``.

A plugin registers each command through the ``register_commands`` hook with a lazy
``"package.module:function"`` target. The command line hands a first word that is no built-in
command but an installed plugin's id to :func:`run_plugin_command`, which loads only that plugin
(its hook module, no components), imports the one function asked for and calls it with the
remaining arguments.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from asklepios_sdk.registration import COMMANDS_HOOK, check_command, command_doc, resolve_target

from asklepios._text import did_you_mean
from asklepios.errors import PluginError

if TYPE_CHECKING:
    from asklepios.plugins import PluginHost

__all__ = ["PluginCommand", "format_commands", "plugin_commands", "run_plugin_command"]


@dataclass(frozen=True)
class PluginCommand:
    """One registered sub-command: plugin, name, lazy target and one-line doc."""

    plugin: str
    name: str
    target: str
    doc: str


def plugin_commands(host: PluginHost, plugin_id: str) -> dict[str, PluginCommand]:
    """Load ``plugin_id`` and return its sub-commands, by name (registration order).

    Raises:
        PluginError: the plugin did not load, or one of its ``register_commands`` calls is
            invalid.
    """
    info = host.load(plugin_id)
    if not info.loaded:
        raise PluginError(info.problem())
    found: dict[str, PluginCommand] = {}
    problems: list[str] = []

    def register(name: str, target: str, doc: str | None = None) -> None:
        mistakes = check_command(plugin_id, name, target, doc)
        if name in found:
            mistakes.append(f"plugin '{plugin_id}' registers command {name!r} twice")
        problems.extend(mistakes)
        if not mistakes:
            found[name] = PluginCommand(plugin_id, name, target, command_doc(target, doc) or "")

    host.only(COMMANDS_HOOK, plugin_id)(register=register)
    if problems:
        raise PluginError(f"{problems[0]} ({info.label}). Fix the plugin's register_commands hook")
    return found


def format_commands(plugin_id: str, commands: dict[str, PluginCommand]) -> str:
    """Return the usage text of a plugin's sub-commands."""
    if not commands:
        return f"plugin '{plugin_id}' contributes no commands\n"
    width = max(len(name) for name in commands)
    lines = [f"usage: asklepios {plugin_id} COMMAND [ARGS]...", "", "commands:"]
    lines += [f"  {c.name.ljust(width)}  {c.doc}" for c in commands.values()]
    lines.append(f"\n`asklepios {plugin_id} COMMAND --help` describes a command's arguments.")
    return "\n".join(lines) + "\n"


def run_plugin_command(host: PluginHost, plugin_id: str, argv: Sequence[str]) -> int:
    """Run ``asklepios <plugin_id> ARGV...`` and return the exit code.

    Without a command (or with ``-h``/``--help``) it prints the plugin's commands (exit 0; 2
    when a command was expected and none given).

    Raises:
        PluginError: the plugin does not load, or has no such command (the message lists them).
    """
    commands = plugin_commands(host, plugin_id)
    if not argv or argv[0] in ("-h", "--help"):
        sys.stdout.write(format_commands(plugin_id, commands))
        return 0 if argv else 2
    name, rest = argv[0], list(argv[1:])
    command = commands.get(name)
    if command is None:
        hint = did_you_mean(name, commands)
        known = ", ".join(commands) or "none"
        raise PluginError(
            f"plugin '{plugin_id}' has no command {name!r}.{' ' + hint if hint else ''} Its "
            f"commands: {known}; `asklepios {plugin_id}` describes them"
        )
    try:
        code = resolve_target(command.target)(rest)
    except SystemExit as done:  # argparse's --help and usage errors end this way
        code = done.code if isinstance(done.code, int) or done.code is None else 1
    return 0 if code is None else int(code)
