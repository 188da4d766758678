"""Plots of a run, all under ``plots/``: curves, confusion matrices, labelled-matrix heat maps.

* ``plots/<stage>/curves.png`` for every stage that trained, and ``plots/curves.png`` with all
  stages one after the other (boundaries marked) when more than one trained: the loss on one
  axis, each evaluator's headline validation metrics on an axis of their own;
* ``plots/<stage>/<evaluator>_confusion_matrix.png`` with the dataset's class names;
* ``plots/<stage>/<evaluator>_<key>.png`` for every labelled matrix an evaluator reported
  (``{"rows", "columns", "values"}``, e.g. accuracy per corruption and severity).

With folds, each fold's plots go to ``plots/fold-<k>/``. Figures are drawn on matplotlib's Agg
canvas without pyplot (no global backend switch, nothing left open), with matplotlib's warnings
and log messages kept off the terminal.
"""

from __future__ import annotations

import logging
import math
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from asklepios_sdk.io import write_atomic

from asklepios._headline import headline, is_matrix

__all__ = ["Series", "curve_panels", "write_plots"]

Series = tuple[str, list[int], list[float], dict[str, Any]]
"""One line of a panel: label, x (epochs), y, matplotlib style."""


def write_plots(
    rows: Sequence[Mapping[str, Any]],
    stages: Mapping[str, Mapping[str, Any]],
    run_dir: Path,
    prefix: str = "",
) -> list[Path]:
    """Draw the curves of ``rows`` (metrics.jsonl) and the artifacts of ``stages``; return paths.

    Args:
        rows: the lines of one ``metrics.jsonl``.
        stages: stage name -> stage summary (``test``/``val`` metrics, ``headline``,
            ``class_names``), as in ``summary.json``.
        run_dir: the run directory; plots go to ``run_dir/plots/<prefix>``.
        prefix: ``fold-<k>`` for a fold, else empty.
    """
    logger = logging.getLogger("matplotlib")
    level = logger.level
    logger.setLevel(logging.ERROR)  # "building the font cache" and findfont chatter
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _write_all(rows, stages, run_dir / "plots" / prefix)
    finally:
        logger.setLevel(level)


def _write_all(
    rows: Sequence[Mapping[str, Any]], stages: Mapping[str, Mapping[str, Any]], out: Path
) -> list[Path]:
    patterns: dict[str, list[str]] = {}
    for stage in stages.values():
        for name, declared in (stage.get("headline") or {}).items():
            patterns.setdefault(name, list(declared))
    written: list[Path] = []
    trained = list(dict.fromkeys(r["stage"] for r in rows if r.get("split") == "train"))
    for name in trained:
        mine = [r for r in rows if r.get("stage") == name]
        own = (stages.get(name) or {}).get("headline") or patterns
        path = _curves(mine, own, out / _safe(name) / "curves.png", f"stage {name}", "epoch")
        if path is not None:
            written.append(path)
    if len(trained) > 1:
        path = _curves(rows, patterns, out / "curves.png", "all stages", "epoch (all stages)")
        if path is not None:
            written.append(path)
    for name, stage in stages.items():
        part = "test" if stage.get("test") else "val"
        for key, value in (stage.get(part) or {}).items():
            target = out / _safe(name) / f"{_safe(key)}.png"
            if key.endswith("/confusion_matrix") and isinstance(value, list) and value:
                names = stage.get("class_names")
                written.append(_confusion(value, names, target, f"{name}: {key} ({part})"))
            elif is_matrix(value):
                written.append(_heatmap(value, target, f"{name}: {value.get('title') or key}"))
    return written


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "_"


def _finite(values: Sequence[Any]) -> bool:
    return any(isinstance(v, int | float) and math.isfinite(v) for v in values)


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else math.nan


def _figure(panels: int, width: float = 4.4, height: float = 3.4) -> tuple[Any, list[Any]]:
    from matplotlib.figure import Figure

    cols = min(panels, 3)
    rows = math.ceil(panels / cols)
    fig = Figure(figsize=(width * cols, height * rows), layout="constrained")
    axes = [fig.add_subplot(rows, cols, i + 1) for i in range(panels)]
    return fig, axes


def _save(fig: Any, path: Path, dpi: int = 110) -> Path:
    return write_atomic(path, write=lambda tmp: fig.savefig(tmp, dpi=dpi))


def curve_panels(
    rows: Sequence[Mapping[str, Any]], patterns: Mapping[str, Sequence[str]]
) -> list[tuple[str, list[Series]]]:
    """Return the panels of a curves figure: a title and its non-empty series each.

    The loss panel holds the training and validation loss; each evaluator with headline
    validation metrics gets a panel of its own. A series without one finite value is left out,
    and so is a panel left empty; validation rows count whether or not they carry a loss.
    """
    train = [r for r in rows if r.get("split") == "train"]
    x_of = {(r.get("stage"), r.get("epoch")): i + 1 for i, r in enumerate(train)}
    val = [r for r in rows if r.get("split") == "val" and (r.get("stage"), r.get("epoch")) in x_of]
    x_train = list(range(1, len(train) + 1))
    x_val = [x_of[(r.get("stage"), r.get("epoch"))] for r in val]
    panels: list[tuple[str, list[Series]]] = [
        (
            "loss",
            [
                ("train loss", x_train, [_number(r.get("loss")) for r in train], {}),
                ("val loss", x_val, [_number(r.get("loss")) for r in val], {"marker": "o"}),
            ],
        )
    ]
    merged: dict[str, Any] = {}
    for r in val:
        merged.update({k: v for k, v in r.items() if "/" in k})
    families: dict[str, list[Series]] = {}
    for key in headline(merged, patterns, limit=10_000):
        family, _, short = key.partition("/")
        line = (short, x_val, [_number(r.get(key)) for r in val], {"marker": "."})
        families.setdefault(family, []).append(line)
    panels += [(f"{family} (validation)", lines) for family, lines in families.items()]
    kept = [(title, [s for s in lines if _finite(s[2])]) for title, lines in panels]
    return [(title, lines) for title, lines in kept if lines]


def _curves(
    rows: Sequence[Mapping[str, Any]],
    patterns: Mapping[str, Sequence[str]],
    path: Path,
    title: str,
    xlabel: str,
) -> Path | None:
    """Draw :func:`curve_panels` against the epoch, stage boundaries dashed and named."""
    from matplotlib.ticker import MaxNLocator

    panels = curve_panels(rows, patterns)
    if not panels:
        return None
    train = [r for r in rows if r.get("split") == "train"]
    bounds = [i for i in range(1, len(train)) if train[i].get("stage") != train[i - 1].get("stage")]
    fig, axes = _figure(len(panels))
    for ax, (name, lines) in zip(axes, panels, strict=True):
        for label, xs, ys, style in lines:
            ax.plot(xs, ys, label=label, **style)
        for i in bounds:
            ax.axvline(i + 0.5, color="grey", linestyle="--", linewidth=0.8)
        for start in [0, *bounds] if bounds else []:
            ax.text(  # along the boundary, so short stages' names cannot run into each other
                start + 0.55,
                0.98,
                str(train[start].get("stage")),
                transform=ax.get_xaxis_transform(),
                rotation=90,
                ha="left",
                va="top",
                fontsize=7,
                color="grey",
                clip_on=True,
            )
        ax.set_title(name)
        ax.set_xlabel(xlabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize="small")
    fig.suptitle(title)
    return _save(fig, path)


def _heatmap_axes(
    fig: Any, ax: Any, values: Any, rows: Sequence[str], columns: Sequence[str], label: str
) -> None:
    import numpy as np

    finite = values[np.isfinite(values)]
    unit = finite.size > 0 and float(finite.min()) >= 0 and float(finite.max()) <= 1
    low, high = (0.0, 1.0) if unit or finite.size == 0 else (finite.min(), finite.max())
    image = ax.imshow(values, cmap="viridis", vmin=low, vmax=high, aspect="auto")
    ax.set_xticks(range(len(columns)), [str(c) for c in columns])
    ax.set_yticks(range(len(rows)), [str(r) for r in rows])
    middle = (low + high) / 2
    for (i, j), value in np.ndenumerate(values):
        if math.isfinite(value):
            colour = "black" if value > middle else "white"
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7, color=colour)
    fig.colorbar(image, ax=ax, label=label)


def _heatmap(matrix: Mapping[str, Any], path: Path, title: str) -> Path:
    import numpy as np

    values = np.array(
        [[math.nan if v is None else float(v) for v in row] for row in matrix["values"]],
        dtype=float,
    ).reshape(len(matrix["rows"]), len(matrix["columns"]))
    fig, (ax,) = _figure(1, 1.1 * len(matrix["columns"]) + 3, 0.35 * len(matrix["rows"]) + 1.8)
    _heatmap_axes(fig, ax, values, matrix["rows"], matrix["columns"], str(matrix.get("label", "")))
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


def _confusion(
    matrix: list[list[Any]], names: Sequence[str] | None, path: Path, title: str
) -> Path:
    """Draw counts coloured by the row rate (recall), labelled with the class names."""
    import numpy as np

    counts = np.asarray(matrix, dtype=float)
    k = len(counts)
    labels = list(names) if names and len(names) == k else [str(i) for i in range(k)]
    rates = counts / np.clip(counts.sum(axis=1, keepdims=True), 1, None)
    size = max(4.0, 0.45 * k + 2)
    fig, (ax,) = _figure(1, size + 1, size)
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k), labels, rotation=90 if max(map(len, labels)) > 3 else 0)
    ax.set_yticks(range(k), labels)
    for (i, j), value in np.ndenumerate(counts):
        colour = "white" if rates[i, j] > 0.5 else "black"
        ax.text(j, i, f"{int(value)}", ha="center", va="center", color=colour, fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(f"{title}; colour = row rate", fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046)
    return _save(fig, path)
