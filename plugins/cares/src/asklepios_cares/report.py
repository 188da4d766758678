"""The CARES report: one table per dimension and a radar chart, for one run or side by side.

A CARES experiment runs one stage per sub-task; a stage's name says its dimension by its first
word (``factuality``, ``uncertainty`` -> trustfulness; ``fairness``; ``jailbreak``,
``overcautiousness``, ``toxicity`` -> safety; ``privacy``; ``robustness``). At the end of a run
the plugin writes ``<run>/cares/report.md`` and ``<run>/cares/radar.png``;
``asklepios cares report RUN [RUN ...] --out DIR`` (or ``python -m asklepios_cares.report``)
compares several runs (one column and one polygon per run).

The radar's per-dimension score (0-100, higher is better) is a display aggregate of ours, not
a CARES metric: the mean, over the dimension's stages, of accuracy and refusal rates x 100 where
higher is better, and 100 minus AED, over-confidence x 100, over-cautious refusal x 100 and
toxicity x 100 where lower is better.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from asklepios_sdk.io import write_atomic

__all__ = ["DIMENSIONS", "dimension_of", "dimension_scores", "has_cares_metrics", "write_report"]

DIMENSIONS = ("trustfulness", "fairness", "safety", "privacy", "robustness")
_PREFIXES = {
    "factuality": "trustfulness",
    "uncertainty": "trustfulness",
    "fairness": "fairness",
    "jailbreak": "safety",
    "overcautiousness": "safety",
    "toxicity": "safety",
    "privacy": "privacy",
    "robustness": "robustness",
}
_EVALUATORS = ("factuality", "abstention", "uncertainty", "fairness", "toxicity", "llm_judge")


def dimension_of(stage: str) -> str | None:
    """Return the CARES dimension a stage name belongs to, by its first word."""
    first = stage.replace("-", "_").split("_")[0].lower()
    return _PREFIXES.get(first)


def has_cares_metrics(summary: Mapping[str, Any]) -> bool:
    """Return whether any stage of ``summary`` has a CARES evaluator's metric."""
    return any(_metrics(stage) for stage in summary.get("stages", {}).values())


def _metrics(stage: Mapping[str, Any]) -> dict[str, float]:
    test = stage.get("test", {}) if isinstance(stage, Mapping) else {}
    return {
        k: float(v)
        for k, v in test.items()
        if k.split("/")[0] in _EVALUATORS and isinstance(v, int | float)
    }


def _stage_points(stage: str, metrics: Mapping[str, float]) -> list[float]:
    """Return the 0-100 higher-is-better values a stage contributes to its dimension."""
    points = []
    for key, value in metrics.items():
        if math.isnan(value):
            continue
        if key in ("factuality/accuracy", "uncertainty/uncertainty_acc"):
            points.append(100 * value)
        elif key == "uncertainty/over_confident":
            points.append(100 * (1 - value))
        elif key.endswith("/aed") or key == "toxicity/toxicity_x100":
            points.append(100 - value)
        elif key == "abstention/abstention":
            over = stage.startswith("overcautiousness")
            points.append(100 * (1 - value) if over else 100 * value)
    return points


def dimension_scores(summary: Mapping[str, Any]) -> dict[str, float]:
    """Return the radar score of each dimension (NaN where the run has no stage of it)."""
    points: dict[str, list[float]] = {d: [] for d in DIMENSIONS}
    for name, stage in summary.get("stages", {}).items():
        dimension = dimension_of(name)
        if dimension is not None:
            points[dimension] += _stage_points(name, _metrics(stage))
    return {d: sum(v) / len(v) if v else math.nan for d, v in points.items()}


def _tables(runs: Sequence[tuple[str, Mapping[str, Any]]]) -> str:
    lines = ["# CARES report", ""]
    header = "| stage | metric | " + " | ".join(name for name, _ in runs) + " |"
    rule = "|---|---|" + "---|" * len(runs)
    for dimension in (*DIMENSIONS, None):
        rows: dict[tuple[str, str], list[str]] = {}
        for column, (_, summary) in enumerate(runs):
            for stage, data in summary.get("stages", {}).items():
                if dimension_of(stage) != dimension:
                    continue
                for key, value in _metrics(data).items():
                    cells = rows.setdefault((stage, key), [""] * len(runs))
                    cells[column] = f"{value:.4g}"
        if not rows:
            continue
        lines += [f"## {dimension or 'other stages'}", "", header, rule]
        lines += [f"| {s} | {k} | " + " | ".join(v) + " |" for (s, k), v in sorted(rows.items())]
        lines.append("")
    lines += [
        "## radar (display aggregate, 0-100, higher is better)",
        "",
        header.replace("| stage | metric |", "| dimension | |"),
        rule,
    ]
    scores = [dimension_scores(summary) for _, summary in runs]
    for dimension in DIMENSIONS:
        cells = [f"{s[dimension]:.1f}" if not math.isnan(s[dimension]) else "–" for s in scores]
        lines.append(f"| {dimension} | | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _radar(runs: Sequence[tuple[str, Mapping[str, Any]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    angles = np.linspace(0, 2 * np.pi, len(DIMENSIONS), endpoint=False).tolist()
    figure, axes = plt.subplots(figsize=(5, 5), subplot_kw={"polar": True})
    for name, summary in runs:
        scores = dimension_scores(summary)
        values = [0.0 if math.isnan(scores[d]) else scores[d] for d in DIMENSIONS]
        axes.plot([*angles, angles[0]], [*values, values[0]], label=name)
        axes.fill([*angles, angles[0]], [*values, values[0]], alpha=0.15)
    axes.set_xticks(angles)
    axes.set_xticklabels(list(DIMENSIONS))
    axes.set_ylim(0, 100)
    axes.legend(loc="upper right", bbox_to_anchor=(1.3, 1.1), fontsize="small")
    figure.tight_layout()
    write_atomic(path, write=lambda tmp: figure.savefig(tmp, dpi=100))
    plt.close(figure)


def write_report(
    out_dir: str | Path,
    summary: Mapping[str, Any] | None = None,
    runs: Sequence[tuple[str, Mapping[str, Any]]] | None = None,
) -> Path:
    """Write ``report.md`` and ``radar.png`` under ``<out_dir>/cares`` (one run or several)."""
    if runs is None:
        assert summary is not None
        runs = [(str(summary.get("name", "run")), summary)]
    target = Path(out_dir) / "cares"
    write_atomic(target / "report.md", _tables(runs))
    _radar(runs, target / "radar.png")
    return target


def main(argv: Sequence[str] | None = None) -> int:
    """Write the CARES report of runs side by side: RUN [RUN ...] --out DIR."""
    parser = argparse.ArgumentParser(prog="asklepios cares report")
    parser.add_argument("runs", nargs="+", help="run directories (each with summary.json)")
    parser.add_argument("--out", required=True, help="where cares/report.md and radar.png go")
    args = parser.parse_args(argv)
    runs = []
    for run in args.runs:
        path = Path(run) / "summary.json"
        if not path.is_file():
            parser.error(f"{run}: no summary.json; is it a finished run directory?")
        runs.append((Path(run).name, json.loads(path.read_text())))
    target = write_report(args.out, runs=runs)
    print(f"wrote {target / 'report.md'} and {target / 'radar.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
