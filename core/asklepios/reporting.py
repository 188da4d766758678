"""Summaries and plots of a run: the summary table, loss/metric curves, the confusion matrix."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from asklepios_sdk import AsklepiosError
from asklepios_sdk.io import write_atomic
from rich.console import Console
from rich.table import Table

__all__ = [
    "ReportError",
    "cv_summary",
    "print_summary",
    "read_metrics",
    "report_run",
    "write_plots",
]


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
    keys = [k for k, v in fold_tests[0].items() if isinstance(v, int | float)] if fold_tests else []
    out: dict[str, dict[str, Any]] = {}
    for key in keys:
        values = [float(t[key]) for t in fold_tests if isinstance(t.get(key), int | float)]
        mean = sum(values) / len(values)
        var = sum((v - mean) ** 2 for v in values) / (len(values) - 1) if len(values) > 1 else 0.0
        out[key] = {"mean": mean, "std": math.sqrt(var), "values": values}
    return out


def _scalars(metrics: Mapping[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}


def print_summary(summary: Mapping[str, Any], console: Console | None = None) -> None:
    """Print one table per stage (validation and test metrics), or the CV mean ± sd."""
    console = console or Console()
    title = f"{summary.get('name', 'run')}  ->  {summary.get('run_dir', '')}"
    if summary.get("cv"):
        table = Table(title=f"{title}  ({len(summary['folds'])}-fold cross-validation, test)")
        table.add_column("metric")
        table.add_column("mean ± sd", justify="right")
        table.add_column("folds", justify="right")
        for key, stats in summary["cv"].items():
            values = ", ".join(f"{v:.4f}" for v in stats["values"])
            table.add_row(key, f"{stats['mean']:.4f} ± {stats['std']:.4f}", values)
        console.print(table)
        return
    console.print(f"[bold]{title}[/bold]")
    for name, stage in summary.get("stages", {}).items():
        parts = [p for p in ("val", "test") if _scalars(stage.get(p) or {})]
        if not parts:
            continue
        caption = None
        if stage.get("best_epoch") is not None:
            caption = (
                f"best epoch {stage['best_epoch'] + 1} by {stage.get('monitor')}, "
                f"test on the {stage.get('selected_checkpoint')} checkpoint"
            )
        table = Table(title=f"stage {name}", caption=caption, title_justify="left")
        table.add_column("metric", no_wrap=True)
        for part in parts:
            table.add_column(part, justify="right")
        by_part = {part: _scalars(stage.get(part) or {}) for part in parts}
        keys = list(dict.fromkeys(k for part in parts for k in by_part[part]))
        for key in keys:
            cells = [by_part[part].get(key) for part in parts]
            table.add_row(key, *("" if v is None else f"{v:.4f}" for v in cells))
        console.print(table)


def write_plots(run_dir: Path, summary: Mapping[str, Any]) -> list[Path]:
    """Write ``plots/curves.png`` and, for classification, ``plots/confusion_<stage>.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots = run_dir / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    fold_dirs = sorted(p for p in run_dir.glob("fold-*") if p.is_dir()) or [run_dir]
    rows = read_metrics(fold_dirs[0] / "metrics.jsonl")
    train = [r for r in rows if r.get("split") == "train"]
    val = [r for r in rows if r.get("split") == "val"]
    if train:
        metric_keys = sorted(
            {k for r in val for k, v in r.items() if "/" in k and isinstance(v, int | float)}
        )
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        x_train = list(range(1, len(train) + 1))
        axes[0].plot(x_train, [r.get("loss") for r in train], label="train loss")
        if any("loss" in r for r in val):
            x_val = [
                train.index(
                    next(t for t in train if t["stage"] == r["stage"] and t["epoch"] == r["epoch"])
                )
                + 1
                for r in val
            ]
            axes[0].plot(x_val, [r.get("loss") for r in val], label="val loss", marker="o")
            for key in metric_keys:
                axes[1].plot(x_val, [r.get(key) for r in val], label=key, marker=".")
        axes[0].set_xlabel("epoch (all stages)")
        axes[0].set_title("loss")
        axes[0].legend()
        axes[1].set_xlabel("epoch (all stages)")
        axes[1].set_title("validation metrics")
        if metric_keys:
            axes[1].legend(fontsize="small")
        fig.tight_layout()
        path = plots / "curves.png"
        write_atomic(path, write=lambda tmp: fig.savefig(tmp, dpi=110))
        plt.close(fig)
        written.append(path)
    for name, stage in (summary.get("stages") or {}).items():
        test = stage.get("test") or {}
        for key, value in test.items():
            if key.endswith("/confusion_matrix") and isinstance(value, list):
                written.append(_confusion_plot(plt, value, plots / f"confusion_{name}.png", name))
    return written


def _confusion_plot(plt: Any, matrix: list[list[int]], path: Path, stage: str) -> Path:
    import numpy as np

    counts = np.asarray(matrix, dtype=float)
    rates = counts / np.clip(counts.sum(axis=1, keepdims=True), 1, None)
    size = max(4.0, 0.45 * len(counts) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    for (i, j), value in np.ndenumerate(counts):
        ax.text(
            j,
            i,
            f"{int(value)}",
            ha="center",
            va="center",
            color="white" if rates[i, j] > 0.5 else "black",
            fontsize=8,
        )
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(f"confusion matrix (test, {stage}); colour = row rate")
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    write_atomic(path, write=lambda tmp: fig.savefig(tmp, dpi=110))
    plt.close(fig)
    return path


def report_run(run_dir: str | Path, console: Console | None = None) -> dict[str, Any]:
    """Reprint the summary table of ``run_dir`` and regenerate its plots; return the summary."""
    run_dir = Path(run_dir)
    path = run_dir / "summary.json"
    if not path.is_file():
        raise ReportError(
            f"{path} does not exist: the run has not finished; resume it with "
            f"`asklepios run --resume {run_dir}`"
        )
    summary = json.loads(path.read_text())
    print_summary(summary, console)
    for plot in write_plots(run_dir, summary):
        (console or Console()).print(f"wrote {plot}")
    return summary
