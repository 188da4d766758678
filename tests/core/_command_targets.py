"""Functions that the in-memory plugins of ``test_commands.py`` register as sub-commands."""

from __future__ import annotations

import argparse
import sys

from asklepios_sdk import AsklepiosError

CALLS: list[list[str]] = []


def greet(argv: list[str]) -> int:
    """Print a greeting for each name given."""
    parser = argparse.ArgumentParser(prog="asklepios cmd greet")
    parser.add_argument("names", nargs="+")
    parser.add_argument("--shout", action="store_true")
    args = parser.parse_args(argv)
    CALLS.append(list(argv))
    for name in args.names:
        text = f"hello {name}"
        sys.stdout.write((text.upper() if args.shout else text) + "\n")
    return 0


def fail(argv: list[str]) -> None:
    """Fail with a message that names the fix."""
    raise AsklepiosError("the input file is missing; pass it as the first argument")


def exit_three(argv: list[str]) -> int:
    """Return exit code 3."""
    return 3
