"""Run records: what produced a run (config, versions, plugins, seeds, device), what changed.

A run directory holds ``config.yaml`` (resolved, full ids), ``record.json`` and ``command.txt``.
:func:`check_record` compares a record with what is installed now.
"""

from __future__ import annotations

import hashlib
import json
import platform
import shlex
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from asklepios_sdk import AsklepiosError
from asklepios_sdk.io import write_atomic

__all__ = [
    "RecordError",
    "check_record",
    "command_line",
    "config_sha256",
    "git_commit",
    "plugin_entries",
    "read_record",
    "write_record",
]

RECORD_VERSION = 1


class RecordError(AsklepiosError):
    """A run directory lacks its record or the record cannot be read."""


def config_sha256(text: str) -> str:
    """Return the sha256 of the resolved config text."""
    return hashlib.sha256(text.encode()).hexdigest()


def git_commit(path: str | Path | None) -> str | None:
    """Return the commit checked out at ``path`` when it is inside a git work tree."""
    if path is None or not Path(path).exists():
        return None
    try:
        out = subprocess.run(
            ["git", "-C", str(path), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _dist_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _citation(module: str) -> dict[str, Any] | None:
    """Return the citation the top package of ``module`` declares (``CITATION.cff``), if any."""
    from asklepios_sdk.citation import read_citation

    try:
        citation = read_citation(module.split(".")[0])
    except AsklepiosError as err:
        return {"error": str(err)}
    except ModuleNotFoundError:  # an in-memory plugin: nothing installed to read
        return None
    return citation.as_record() if citation is not None else None


def plugin_entries(host: Any, plugin_ids: Iterable[str]) -> list[dict[str, Any]]:
    """Describe each plugin: distribution, version, location, VCS commit and citation."""
    entries = []
    for plugin_id in sorted(set(plugin_ids)):
        info = host.info(plugin_id)
        commit = info.vcs_commit or git_commit(info.location)
        entries.append(
            {
                "id": plugin_id,
                "distribution": info.distribution,
                "version": info.version,
                "location": info.location,
                "module": info.module,
                "vcs_commit": commit,
                "citation": _citation(info.module) if info.module else None,
            }
        )
    return entries


def _environment() -> dict[str, Any]:
    import torch

    return {
        "asklepios": _dist_version("asklepios"),
        "asklepios_sdk": _dist_version("asklepios-sdk"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "platform": platform.platform(),
    }


def write_record(
    run_dir: Path,
    config_text: str,
    *,
    host: Any,
    component_ids: Sequence[str],
    seed: int,
    device: str,
    world_size: int,
    argv: Sequence[str],
    extra_plugins: Iterable[str] = (),
    plugins_metadata: Mapping[str, Any] | None = None,
    weights: Mapping[str, Any] | None = None,
    plugin_problems: Sequence[str] = (),
) -> dict[str, Any]:
    """Write ``config.yaml``, ``record.json`` and ``command.txt`` into ``run_dir`` (rank 0).

    ``plugin_problems`` names the installed plugins that failed to load for this run (one line
    each, with the cause), so a reader knows which cross-cutting plugins took no part.
    """
    plugin_ids = {cid.split(".", 1)[0] for cid in component_ids} | set(extra_plugins)
    plugins = plugin_entries(host, plugin_ids)
    record = {
        "record_version": RECORD_VERSION,
        "config_sha256": config_sha256(config_text),
        "environment": _environment(),
        "plugins": plugins,
        "components": sorted(set(component_ids)),
        "citations": {p["id"]: p["citation"] for p in plugins if p["citation"]},
        "seed": seed,
        "device": device,
        "world_size": world_size,
        "git_commit": git_commit(Path.cwd()),
        "command": list(argv),
        "plugins_metadata": dict(plugins_metadata or {}),
        "weights": dict(weights or {}),
        "plugin_problems": list(plugin_problems),
    }
    write_atomic(run_dir / "config.yaml", config_text)
    write_atomic(run_dir / "record.json", json.dumps(record, indent=2, default=str) + "\n")
    write_atomic(run_dir / "command.txt", shlex.join(argv) + "\n")
    return record


def read_record(run_dir: str | Path) -> dict[str, Any]:
    """Read ``record.json`` of ``run_dir`` or raise :class:`RecordError` saying what is missing."""
    path = Path(run_dir) / "record.json"
    if not path.is_file():
        raise RecordError(f"{path} does not exist; is {run_dir} an asklepios run directory?")
    try:
        return json.loads(path.read_text())
    except ValueError as err:
        raise RecordError(f"{path} is not valid JSON: {err}") from err


def check_record(run_dir: str | Path, host: Any) -> list[str]:
    """Return one line per difference between the run's record and what is installed now."""
    run_dir = Path(run_dir)
    record = read_record(run_dir)
    diffs: list[str] = []
    config_path = run_dir / "config.yaml"
    if config_path.is_file():
        sha = config_sha256(config_path.read_text())
        if sha != record.get("config_sha256"):
            diffs.append(
                f"config.yaml changed since the run (sha256 {sha[:12]} != "
                f"{str(record.get('config_sha256'))[:12]})"
            )
    else:
        diffs.append("config.yaml is missing")
    now = _environment()
    for key in ("asklepios", "asklepios_sdk", "python", "torch", "cuda"):
        before = record.get("environment", {}).get(key)
        if before != now[key]:
            diffs.append(f"{key}: recorded {before}, installed {now[key]}")
    for plugin in record.get("plugins", []):
        pid = plugin["id"]
        if pid not in host.index:
            diffs.append(
                f"plugin {pid}: recorded {plugin['distribution']} {plugin['version']}, "
                f"not installed now (pip install {plugin['distribution']}=={plugin['version']})"
            )
            continue
        current = plugin_entries(host, [pid])[0]
        for key in ("distribution", "version", "vcs_commit", "location"):
            if plugin.get(key) != current.get(key):
                diffs.append(
                    f"plugin {pid} {key}: recorded {plugin.get(key)}, installed {current.get(key)}"
                )
    return diffs


def command_line() -> list[str]:
    """Return the command line of this process as the user typed it."""
    return [Path(sys.argv[0]).name, *sys.argv[1:]]
