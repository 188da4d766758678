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

from asklepios.cli import _configs, _inspect, _runs  # noqa: F401  (they add their commands)
from asklepios.cli._app import (
    EXIT_DOCTOR,
    EXIT_ERROR,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    app,
    plugins_app,
)
from asklepios.cli._main import main
from asklepios.cli._runs import run_command

__all__ = [
    "EXIT_DOCTOR",
    "EXIT_ERROR",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "app",
    "main",
    "plugins_app",
    "run_command",
]
