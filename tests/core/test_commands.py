"""Sub-commands contributed by plugins: ``asklepios <plugin-id> <command> ARGS``."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from asklepios.cli import main
from asklepios.commands import plugin_commands
from asklepios.errors import PluginError
from asklepios.plugins import set_host
from asklepios_sdk import hookimpl
from asklepios_sdk.testing._collect import collect

sys.path.insert(0, str(Path(__file__).parent))

import _command_targets


@hookimpl
def _commands(register):
    register("greet", "_command_targets:greet")
    register("fail", "_command_targets:fail")
    register("exit-three", "_command_targets:exit_three", doc="Exit with 3.\nMore text.")


@pytest.fixture
def host(make_host, plugin_module):
    @hookimpl
    def losses(register):
        return None

    built = make_host(
        {
            "cmd": plugin_module("cmd", register_commands=_commands),
            "plain": plugin_module("plain", register_losses=losses),
            "validate": plugin_module("validate", register_commands=_commands),
        }
    )
    set_host(built)
    return built


def test_a_plugin_command_runs_with_its_arguments(capsys, host):
    _command_targets.CALLS.clear()
    assert main(["cmd", "greet", "ada", "--shout"]) == 0
    assert capsys.readouterr().out == "HELLO ADA\n"
    assert _command_targets.CALLS == [["ada", "--shout"]]
    assert main(["cmd", "exit-three"]) == 3


def test_the_plugin_alone_lists_its_commands_with_their_docs(capsys, host):
    assert main(["cmd"]) == 2  # a command was expected
    out = capsys.readouterr().out
    assert "usage: asklepios cmd COMMAND" in out
    assert "greet       Print a greeting for each name given." in out
    assert "exit-three  Exit with 3." in out and "More text" not in out
    assert main(["cmd", "--help"]) == 0
    assert main(["plain"]) == 2
    assert "contributes no commands" in capsys.readouterr().out


def test_errors_are_one_line_and_usage_errors_exit_2(capsys, host):
    assert main(["cmd", "fail"]) == 1
    assert capsys.readouterr().err == (
        "error: the input file is missing; pass it as the first argument\n"
    )
    assert main(["cmd", "greet"]) == 2  # argparse: a name is required
    assert "usage: asklepios cmd greet" in capsys.readouterr().err
    assert main(["cmd", "greeet"]) == 1
    err = capsys.readouterr().err
    assert "no command 'greeet'" in err and "Did you mean 'greet'" in err


def test_a_builtin_command_wins_over_a_plugin_of_the_same_name(capsys, host):
    assert main(["validate"]) == 2  # the built-in `validate` wants a config file
    assert "usage: asklepios cmd" not in capsys.readouterr().out


def test_disabled_plugins_and_unknown_words_are_not_dispatched(capsys, host):
    assert main(["--disable", "cmd", "cmd", "greet", "x"]) != 0
    assert main(["nosuchplugin"]) == 2  # typer: no such command


def test_invalid_registrations_are_reported(make_host, plugin_module):
    """The host raises on the first problem (as for components); the kit reports them all."""

    @hookimpl
    def bad(register):
        register("Bad Name", "_command_targets:greet")
        register("eager", _command_targets.greet)

    host = make_host({"bad": plugin_module("bad", register_commands=bad)})
    with pytest.raises(PluginError, match=r"command name 'Bad Name'") as raised:
        plugin_commands(host, "bad")
    assert "not a lazy" not in str(raised.value)


def test_the_conformance_kit_checks_command_registrations(plugin_module):
    @hookimpl
    def bad(register):
        register("twice", "_command_targets:greet")
        register("twice", "_command_targets:greet")

    problems = collect(plugin_module("kitcmd", register_commands=bad), "kitcmd").problems
    assert problems == ["command 'twice' registered twice"]
