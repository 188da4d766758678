"""Commands that inspect the installation: plugins, components, doctor, new-plugin."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from asklepios import plugins as _plugins
from asklepios.cli._app import EXIT_DOCTOR, _console, _print_json, app, plugins_app


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


@app.command("doctor")
def doctor() -> None:
    """Check the installation: versions, device, and every plugin's load status and time."""
    from asklepios import _cli_render

    host = _plugins.get_host()
    host.activate_all()
    problems = _cli_render.doctor_report(_console(), host)
    if problems:
        raise typer.Exit(EXIT_DOCTOR)


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
