"""Private rendering helpers of the CLI: rich tables, JSON records, the doctor report."""

from __future__ import annotations

import platform
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from asklepios.plugins import PluginHost, PluginInfo
    from asklepios.registry import ComponentEntry

__all__ = [
    "component_table",
    "doctor_report",
    "entry_record",
    "param_rows",
    "plugin_detail",
    "plugin_table",
    "type_name",
]

_STATUS_STYLE = {
    "ok": "green",
    "not loaded": "dim",
    "failed": "bold red",
    "incompatible": "bold red",
    "duplicate": "bold red",
    "disabled": "yellow",
}


def _status(info: PluginInfo) -> str:
    style = _STATUS_STYLE.get(info.status, "")
    return f"[{style}]{info.status}[/]" if style else info.status


def plugin_table(console: Console, infos: Sequence[PluginInfo]) -> None:
    """Print id, distribution, version, core range, status and location; then the failures."""
    from rich.table import Table

    if not infos:
        console.print("no plugins installed (entry-point group 'asklepios.plugins')")
        return
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("id", "distribution", "version", "core range", "status"):
        table.add_column(column, no_wrap=True)
    table.add_column("location", overflow="fold")
    for info in infos:
        table.add_row(
            info.id,
            info.distribution,
            info.version,
            info.core_range or "-",
            _status(info),
            info.location or "-",
        )
    console.print(table)
    for info in infos:
        if info.error:
            console.print(f"[red]{info.id}[/]: {info.error}", markup=True)
            if info.fix:
                console.print(f"  fix: {info.fix}")


def type_name(annotation: Any, metadata: Sequence[Any] = ()) -> str:
    """Return a param's type as a reader writes it: ``int | None``, ``'a' | 'b'``, ``file``."""
    import types
    import typing

    from asklepios_sdk.params import LocalPathKind

    for item in metadata:
        if isinstance(item, LocalPathKind):
            return {"file": "file", "dir": "folder"}.get(item.kind, "path")
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return type_name(args[0], annotation.__metadata__)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(arg) for arg in args)
    if origin is typing.Literal:
        return " | ".join(repr(arg) for arg in args)
    if origin is not None and args:
        inner = ", ".join("..." if arg is Ellipsis else type_name(arg) for arg in args)
        return f"{getattr(origin, '__name__', str(origin))}[{inner}]"
    if annotation is type(None):
        return "None"
    name = getattr(annotation, "__name__", None)
    return name if isinstance(name, str) else str(annotation).replace("typing.", "")


def param_rows(entry: ComponentEntry) -> list[dict[str, Any]]:
    """Return name, type, default, required and description of each param of ``entry``."""
    from pydantic_core import PydanticUndefined

    rows = []
    for name, field in entry.params_model.model_fields.items():
        if field.default_factory is not None:
            default: Any = "<factory>"
        elif field.default is PydanticUndefined:
            default = None
        else:
            default = field.default
        rows.append(
            {
                "name": name,
                "type": type_name(field.annotation, field.metadata),
                "default": default,
                "required": field.is_required(),
                "description": field.description or "",
            }
        )
    return rows


def entry_record(entry: ComponentEntry) -> dict[str, Any]:
    """Return a JSON-serialisable record of a component."""
    return {
        "id": entry.id,
        "kind": entry.kind,
        "plugin": entry.plugin_id,
        "version": entry.plugin_version,
        "doc": entry.doc,
        "params": param_rows(entry),
    }


def plugin_detail(
    console: Console, info: PluginInfo, entries: Sequence[ComponentEntry] | None
) -> None:
    """Print one plugin's metadata, failure and (when given) its components and params."""
    console.print(f"[bold]{info.id}[/] ({info.label})  status: {_status(info)}")
    for label, value in (
        ("module", info.module),
        ("location", info.location),
        ("core range", info.core_range),
        ("sdk range", info.sdk_range),
        ("vcs commit", info.vcs_commit),
    ):
        if value:
            console.print(f"  {label}: {value}", markup=False)
    if info.error:
        console.print(f"  [red]error[/]: {info.error}")
        if info.fix:
            console.print(f"  fix: {info.fix}", markup=False)
    if entries is None:
        return
    if not entries:
        console.print("  no components registered")
        return
    kind = None
    for entry in entries:
        if entry.kind != kind:
            kind = entry.kind
            console.print(f"\n  [bold]{kind}[/]")
        console.print(f"    {entry.id}  {entry.doc}", markup=False)
        for row in param_rows(entry):
            default = "required" if row["required"] else f"default {row['default']!r}"
            text = f"      {row['name']}: {row['type']} ({default})"
            if row["description"]:
                text += f"  {row['description']}"
            console.print(text, markup=False)


def component_table(
    console: Console, entries: Sequence[ComponentEntry], failed: Sequence[PluginInfo]
) -> None:
    """Print components (id, kind, plugin version, doc), then the plugins that did not load."""
    from rich.table import Table

    if entries:
        table = Table(box=None, pad_edge=False, header_style="bold")
        for column in ("id", "kind", "plugin"):
            table.add_column(column, no_wrap=True)
        table.add_column("description", overflow="fold")
        for entry in entries:
            table.add_row(entry.id, entry.kind, entry.origin, entry.doc)
        console.print(table, markup=False)
    else:
        console.print("no matching components")
    for info in failed:
        console.print(f"[yellow]note[/]: {info.problem()}")


def _torch_facts() -> list[tuple[str, str]]:
    try:
        import torch
    except Exception as err:  # a broken torch is exactly what doctor must report
        return [("torch", f"not importable: {err}")]
    facts = [("torch", torch.__version__), ("cuda available", str(torch.cuda.is_available()))]
    if torch.cuda.is_available():
        facts.append(
            (
                "cuda devices",
                ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())),
            )
        )
    mps = getattr(torch.backends, "mps", None)
    facts.append(("mps available", str(bool(mps and mps.is_available()))))
    facts.append(
        (
            "distributed",
            f"gloo={torch.distributed.is_gloo_available()}, "
            f"nccl={torch.distributed.is_nccl_available()}",
        )
    )
    return facts


def doctor_report(console: Console, host: PluginHost) -> int:
    """Print versions, device facts and each plugin's status and timings; return problem count."""
    from rich.table import Table

    described = host.describe()
    facts = [
        ("python", f"{platform.python_version()} ({sys.executable})"),
        ("platform", platform.platform()),
        ("asklepios", described["asklepios"]),
        ("asklepios-sdk", described["asklepios-sdk"]),
        *_torch_facts(),
        ("strict plugins", str(host.strict)),
        ("disabled plugins", ", ".join(sorted(host.disabled)) or "-"),
    ]
    for label, value in facts:
        console.print(f"{label:>16}: {value}", markup=False)
    table = Table(box=None, pad_edge=False, header_style="bold", title="plugins")
    for column in (
        "id",
        "distribution",
        "version",
        "status",
        "import ms",
        "activate ms",
        "components",
    ):
        table.add_column(column, overflow="fold")
    for info in host.plugins():
        table.add_row(
            info.id,
            info.distribution,
            info.version,
            _status(info),
            f"{info.import_seconds * 1e3:.1f}" if info.import_seconds is not None else "-",
            f"{info.activate_seconds * 1e3:.1f}" if info.activate_seconds is not None else "-",
            str(sum(info.components.values())),
        )
    console.print(table)
    problems = [i for i in host.plugins() if i.status not in ("ok", "disabled", "not loaded")]
    for info in problems:
        console.print(f"[red]problem[/]: {info.problem()}")
    if not problems:
        console.print("[green]no problems found[/]")
    return len(problems)
