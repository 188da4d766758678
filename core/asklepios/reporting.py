"""What a run leaves for its reader: headline tables, labelled matrices, metrics.csv, plots.

The terminal shows what a reader looks at first: per stage the loss and the evaluators' headline
keys (:attr:`asklepios_sdk.Evaluator.headline_keys`; at most :data:`MAX_ROWS` rows), each labelled
matrix (an artifact ``{"rows", "columns", "values"}``, e.g. corruption x severity) as one table,
a pointer to ``summary.json`` and ``metrics.csv`` for everything else, and, when two trained
stages were tested, a closing line saying how much the last one changed the headline figures.
Plots live in :mod:`asklepios._plots`; :func:`write_reports` writes them with ``metrics.csv``.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from asklepios_sdk import AsklepiosError
from asklepios_sdk.io import write_atomic
from rich.console import Console
from rich.table import Table
from rich.text import Text

from asklepios._headline import (
    DEFAULT_HEADLINE,
    MAX_ROWS,
    headline,
    is_matrix,
    is_number,
    stage_facts,
)

__all__ = [
    "DEFAULT_HEADLINE",
    "MAX_ROWS",
    "ReportError",
    "cv_summary",
    "headline",
    "is_matrix",
    "print_summary",
    "read_metrics",
    "report_run",
    "stage_comparison",
    "stage_facts",
    "write_metrics_csv",
    "write_reports",
]

_FIRST_COLUMNS = ("stage", "epoch", "split", "step", "checkpoint", "lr", "loss")


class ReportError(AsklepiosError):
    """A run directory has no summary or metrics to report."""


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Read ``metrics.jsonl``, skipping a last line cut short by an interruption."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return rows


def cv_summary(fold_tests: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Return mean, sample standard deviation and values of each scalar test metric over folds."""
    keys = [k for k, v in fold_tests[0].items() if is_number(v)] if fold_tests else []
    out: dict[str, dict[str, Any]] = {}
    for key in keys:
        values = [float(t[key]) for t in fold_tests if is_number(t.get(key))]
        mean = sum(values) / len(values)
        var = sum((v - mean) ** 2 for v in values) / (len(values) - 1) if len(values) > 1 else 0.0
        out[key] = {"mean": mean, "std": math.sqrt(var), "values": values}
    return out


def _scalars(metrics: Mapping[str, Any] | None) -> dict[str, float]:
    return {k: float(v) for k, v in (metrics or {}).items() if is_number(v)}


# -- headline keys ---------------------------------------------------------------------------------


def _primary(metrics: Mapping[str, Any], patterns: Mapping[str, Sequence[str]]) -> list[str]:
    """Return each evaluator's first headline key present in ``metrics``."""
    keys = []
    for name in patterns:
        mine = {name: patterns[name]}
        found = [k for k in headline(metrics, mine, limit=MAX_ROWS) if k.startswith(f"{name}/")]
        if found:
            keys.append(found[0])
    return keys


def stage_comparison(summary: Mapping[str, Any]) -> str | None:
    """Return one line comparing the first and the last trained stage on the test split.

    It compares the last stage's monitored metric and each evaluator's first headline key, on
    the test metrics both stages have; ``None`` with fewer than two trained, tested stages.
    """
    trained = [
        (name, stage)
        for name, stage in (summary.get("stages") or {}).items()
        if stage.get("epochs") and _scalars(stage.get("test"))
    ]
    if len(trained) < 2 or summary.get("cv"):
        return None
    (first_name, first), (last_name, last) = trained[0], trained[-1]
    before, after = _scalars(first["test"]), _scalars(last["test"])
    keys = [last["monitor"]] if last.get("monitor") not in (None, "loss") else []
    keys += _primary(after, last.get("headline") or {})
    keys = [k for k in dict.fromkeys(keys) if k in before and k in after]
    if not keys:
        return None
    parts = [
        f"{_short_key(k, keys)} {before[k]:.3f} -> {after[k]:.3f} ({after[k] - before[k]:+.3f})"
        for k in keys
    ]
    return f"{last_name} vs {first_name} (test): {', '.join(parts)}"


def _short_key(key: str, keys: Sequence[str]) -> str:
    tail = key.split("/", 1)[-1]
    return tail if sum(k.split("/", 1)[-1] == tail for k in keys) == 1 else key


# -- the terminal ----------------------------------------------------------------------------------


def _matrix_table(title: str, matrix: Mapping[str, Any]) -> Table:
    table = Table(title=title, title_justify="left", min_width=len(title))
    table.add_column(str(matrix.get("label") or ""), no_wrap=True)
    for column in matrix["columns"]:
        table.add_column(str(column), justify="right")
    for row, values in zip(matrix["rows"], matrix["values"], strict=True):
        cells = ["" if v is None else f"{float(v):.4f}" for v in values]
        table.add_row(str(row), *cells)
    return table


def _stage_table(name: str, stage: Mapping[str, Any]) -> tuple[list[Table | Text], int]:
    """Return the tables of one stage and how many scalar metrics they leave out."""
    parts = [p for p in ("val", "test") if _scalars(stage.get(p))]
    tables: list[Table | Text] = []
    if not parts:
        return tables, 0
    by_part = {part: _scalars(stage.get(part)) for part in parts}
    merged: dict[str, float] = {}
    for part in parts:
        merged.update(by_part[part])
    keys = headline(merged, stage.get("headline"))
    table = Table(title=f"stage {name}", title_justify="left")
    table.add_column("metric", no_wrap=True)
    for part in parts:
        table.add_column(part, justify="right")
    for key in keys:
        cells = [by_part[part].get(key) for part in parts]
        table.add_row(key, *("" if v is None else f"{v:.4f}" for v in cells))
    tables.append(table)
    if stage.get("best_epoch") is not None:
        caption = (
            f"best epoch {stage['best_epoch'] + 1} by {stage.get('monitor')}; "
            f"tested on the {stage.get('selected_checkpoint')} checkpoint"
        )
        tables.append(Text(caption, style="dim"))
    shown_part = "test" if "test" in parts else parts[-1]
    for key, value in (stage.get(shown_part) or {}).items():
        if is_matrix(value):
            tables.append(_matrix_table(f"stage {name}: {key} ({shown_part})", value))
    return tables, len(merged) - len(keys)


def print_summary(summary: Mapping[str, Any], console: Console | None = None) -> None:
    """Print the headline tables of every stage (or the CV mean ± sd) and what is left out."""
    console = console or Console()
    title = f"{summary.get('name', 'run')}  ->  {summary.get('run_dir', '')}"
    stages = summary.get("stages") or {}
    if summary.get("cv"):
        last = stages[list(stages)[-1]] if stages else {}
        means = {k: v["mean"] for k, v in summary["cv"].items()}
        keys = headline(means, last.get("headline"))
        table = Table(title=f"{title}  ({len(summary['folds'])}-fold cross-validation, test)")
        table.add_column("metric")
        table.add_column("mean ± sd", justify="right")
        table.add_column("folds", justify="right")
        for key in keys:
            stats = summary["cv"][key]
            values = ", ".join(f"{v:.4f}" for v in stats["values"])
            table.add_row(key, f"{stats['mean']:.4f} ± {stats['std']:.4f}", values)
        console.print(table)
        hidden = len(means) - len(keys)
    else:
        console.print(f"[bold]{title}[/bold]")
        hidden = 0
        for name, stage in stages.items():
            parts, left_out = _stage_table(name, stage)
            hidden += left_out
            for part in parts:
                console.print(part)
    if hidden:
        console.print(
            f"{hidden} more metrics in summary.json and metrics.csv", style="dim", highlight=False
        )


# -- files -----------------------------------------------------------------------------------------


def write_metrics_csv(folder: Path) -> Path | None:
    """Write ``metrics.csv`` beside ``metrics.jsonl``: one row per line, scalar columns only."""
    rows = read_metrics(folder / "metrics.jsonl")
    if not rows:
        return None
    seen: dict[str, None] = {}
    for row in rows:
        for key, value in row.items():
            if key in _FIRST_COLUMNS or is_number(value) or value is None:
                seen.setdefault(key)
    columns = [c for c in _FIRST_COLUMNS if c in seen]
    columns += [c for c in seen if c not in _FIRST_COLUMNS]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(row.get(k)) for k in columns})
    return write_atomic(folder / "metrics.csv", buffer.getvalue())


def _cell(value: Any) -> Any:
    return value if is_number(value) or isinstance(value, str) else ""


def _folds(run_dir: Path, summary: Mapping[str, Any]) -> list[tuple[str, Path, Mapping[str, Any]]]:
    """Return ``(plots subfolder, folder with metrics.jsonl, stage summaries)`` per fold."""
    folds = summary.get("folds")
    if not folds:
        return [("", run_dir, summary.get("stages") or {})]
    return [
        (f"fold-{f['fold']}", run_dir / f"fold-{f['fold']}", f.get("stages") or {}) for f in folds
    ]


def write_reports(run_dir: Path, summary: Mapping[str, Any]) -> list[Path]:
    """Write ``metrics.csv`` of each fold and every plot under ``plots/``; return the paths."""
    from asklepios._plots import write_plots

    written = []
    for prefix, folder, stages in _folds(run_dir, summary):
        path = write_metrics_csv(folder)
        if path is not None:
            written.append(path)
        written += write_plots(read_metrics(folder / "metrics.jsonl"), stages, run_dir, prefix)
    return written


def report_run(run_dir: str | Path, console: Console | None = None) -> dict[str, Any]:
    """Reprint the summary of ``run_dir``, rewrite metrics.csv, redraw every plot; return it."""
    run_dir = Path(run_dir)
    path = run_dir / "summary.json"
    if not path.is_file():
        raise ReportError(
            f"{path} does not exist: the run has not finished; resume it with "
            f"`asklepios run --resume {run_dir}`"
        )
    summary = json.loads(path.read_text())
    console = console or Console()
    print_summary(summary, console)
    written = write_reports(run_dir, summary)
    plots = [p for p in written if p.suffix == ".png"]
    console.print(f"wrote metrics.csv and {len(plots)} plots under {run_dir / 'plots'}")
    line = stage_comparison(summary)
    if line:
        console.print(line, highlight=False)
    return summary
