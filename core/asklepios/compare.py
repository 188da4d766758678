"""Compare finished runs: final test metrics side by side, and what differs between them.

For each run: its final test metrics (the last stage's ``test``; with ``--folds`` the mean ± sd
over folds), by default each evaluator's headline keys (the ``headline`` patterns the run wrote
into its stage summary; every scalar test metric for runs without them). Then the keys of the
resolved configs whose values differ (``name`` and ``output_dir`` left out) and the record
differences that explain results: core, SDK, torch and plugin versions, seed, device and world
size. Reads only the run directories' JSON and YAML files: no torch, no plugin.
"""

from __future__ import annotations

import glob
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from asklepios_sdk import AsklepiosError
from asklepios_sdk.io import write_atomic

from asklepios.config.loader import flatten

__all__ = [
    "CompareError",
    "Comparison",
    "Value",
    "compare_runs",
    "expand_runs",
    "plot_comparison",
    "print_comparison",
]

_IGNORED_CONFIG_KEYS = ("name", "output_dir")


class CompareError(AsklepiosError):
    """A run directory cannot be compared (missing, unfinished) or a metric is unknown."""


@dataclass(frozen=True)
class Value:
    """One metric of one run: the value, or the mean ± sd over ``n`` folds."""

    mean: float | None
    sd: float | None = None
    n: int = 1

    def format(self, digits: int = 4) -> str:
        """Return ``0.8123`` or ``0.8123 ± 0.0100 (5)``; ``-`` when missing."""
        if self.mean is None:
            return "-"
        if self.sd is None:
            return f"{self.mean:.{digits}f}"
        return f"{self.mean:.{digits}f} ± {self.sd:.{digits}f} ({self.n})"


@dataclass
class Comparison:
    """Runs side by side.

    Attributes:
        runs: the run directories, in the order given.
        labels: a short unique label per run (the directory name).
        metrics: the compared metric keys, in order.
        values: per run label, metric key -> :class:`Value`.
        config_diff: config key -> the value in each run (``None`` where absent).
        record_diff: record key -> the value in each run.
    """

    runs: list[Path]
    labels: list[str]
    metrics: list[str]
    values: dict[str, dict[str, Value]]
    config_diff: dict[str, list[Any]] = field(default_factory=dict)
    record_diff: dict[str, list[Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (``asklepios compare --json``)."""
        return {
            "runs": [str(p) for p in self.runs],
            "metrics": {
                label: {key: {"mean": v.mean, "sd": v.sd, "n": v.n} for key, v in values.items()}
                for label, values in self.values.items()
            },
            "config_diff": {k: _plain(v) for k, v in self.config_diff.items()},
            "record_diff": {k: _plain(v) for k, v in self.record_diff.items()},
        }

    def to_dataframe(self) -> Any:
        """Return the metrics table as a pandas DataFrame (one row per run)."""
        import pandas as pd

        rows = {
            label: {key: v.mean for key, v in values.items()}
            for label, values in self.values.items()
        }
        return pd.DataFrame.from_dict(rows, orient="index")[self.metrics]


def _plain(values: list[Any]) -> list[Any]:
    return [None if v is ABSENT else v for v in values]


def expand_runs(patterns: Iterable[str | Path]) -> list[Path]:
    """Return the run directories named or matched by glob ``patterns``, in order, once each."""
    found: list[Path] = []
    for pattern in patterns:
        text = str(pattern)
        matches = sorted(glob.glob(text)) if glob.has_magic(text) else [text]
        if not matches:
            raise CompareError(f"no run directory matches {text!r}")
        for match in matches:
            path = Path(match)
            if (path / "summary.json").is_file() and path not in found:
                found.append(path)
            elif not glob.has_magic(text):
                raise CompareError(
                    f"{path} has no summary.json: not a finished run directory (resume it "
                    f"with `asklepios run --resume {path}`)"
                )
    if not found:
        raise CompareError("no finished run directory among " + ", ".join(map(str, patterns)))
    return found


def _read(path: Path) -> Any:
    if path.suffix == ".json":
        return json.loads(path.read_text()) if path.is_file() else {}
    import yaml

    return yaml.safe_load(path.read_text()) if path.is_file() else {}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _final_values(summary: Mapping[str, Any]) -> dict[str, Value]:
    cv = summary.get("cv")
    if cv:
        return {
            k: Value(v.get("mean"), v.get("std"), len(v.get("values") or []))
            for k, v in cv.items()
            if _is_number(v.get("mean"))
        }
    test = summary.get("test") or {}
    values = {k: Value(float(v)) for k, v in test.items() if _is_number(v)}
    for stage, data in (summary.get("stages") or {}).items():  # '<stage>:<key>', any stage
        stage_test = data.get("test") if isinstance(data, Mapping) else None
        if isinstance(stage_test, Mapping):
            values.update(
                {f"{stage}:{k}": Value(float(v)) for k, v in stage_test.items() if _is_number(v)}
            )
    return values


def _headline_keys(summary: Mapping[str, Any], keys: Sequence[str]) -> list[str]:
    """Return the headline test keys of a run: its evaluators' declared patterns, in order.

    An evaluator without patterns contributes all of its keys; a run whose summary has no
    ``headline`` patterns (older runs) contributes every scalar test metric.
    """
    stages = summary.get("stages") or {}
    last = stages[list(stages)[-1]] if stages else {}
    patterns: Mapping[str, Sequence[str]] = last.get("headline") or {}
    if not patterns:
        return [k for k in keys if k != "loss" and ":" not in k]
    chosen: list[str] = []
    for name, declared in patterns.items():
        mine = [k for k in keys if k.startswith(f"{name}/")]
        picked = [k for p in declared for k in mine if fnmatchcase(k[len(name) + 1 :], p)]
        chosen += [k for k in (picked if declared else mine) if k not in chosen]
    return chosen


class _Absent:
    """A key a run's config or record does not have (shown as ``-``, ``null`` in JSON)."""

    def __repr__(self) -> str:
        return "-"


ABSENT = _Absent()


def _differences(
    flats: Sequence[Mapping[str, Any]], ignored: Sequence[str] = ()
) -> dict[str, list[Any]]:
    """Return each key whose value differs between runs, with every run's value."""
    keys = list(dict.fromkeys(k for flat in flats for k in flat))
    out: dict[str, list[Any]] = {}
    for key in keys:
        if key in ignored:
            continue
        values = [flat.get(key, ABSENT) for flat in flats]
        texts = {json.dumps(v, sort_keys=True, default=repr) for v in values}
        if len(texts) > 1:
            out[key] = values
    return out


def _record_facts(record: Mapping[str, Any]) -> dict[str, Any]:
    env = record.get("environment") or {}
    facts: dict[str, Any] = {
        "asklepios": env.get("asklepios"),
        "asklepios_sdk": env.get("asklepios_sdk"),
        "torch": env.get("torch"),
        "python": env.get("python"),
        "seed": record.get("seed"),
        "device": record.get("device"),
        "world_size": record.get("world_size"),
        "git_commit": record.get("git_commit"),
    }
    for plugin in record.get("plugins") or []:
        facts[f"plugin {plugin.get('id')}"] = plugin.get("version")
    return facts


def _labels(runs: Sequence[Path]) -> list[str]:
    names = [p.name for p in runs]
    if len(set(names)) == len(names):
        return names
    return [str(p) for p in runs]


def compare_runs(runs: Sequence[Path], metrics: Sequence[str] = ()) -> Comparison:
    """Compare finished run directories; ``metrics`` picks keys (default: headline keys).

    A key is a final test metric (``classification/accuracy``; mean ± sd over folds) or
    ``<stage>:<key>`` for the test metric of any stage (``classifier:classification/accuracy``).

    Raises:
        CompareError: a metric asked for is in none of the runs.
    """
    if not runs:
        raise CompareError("give at least one run directory")
    summaries = [_read(run / "summary.json") for run in runs]
    finals = [_final_values(s) for s in summaries]
    if metrics:
        known = {k for final in finals for k in final}
        unknown = [m for m in metrics if m not in known]
        if unknown:
            stages = sorted({k.split(":", 1)[0] for k in known if ":" in k})
            raise CompareError(
                f"metric(s) {unknown} are in none of the runs; they have: "
                + ", ".join(sorted(k for k in known if ":" not in k))
                + (f"; and as '<stage>:<key>' the test metrics of {stages}" if stages else "")
            )
        keys = list(metrics)
    else:
        keys = []
        for summary, final in zip(summaries, finals, strict=True):
            keys += [k for k in _headline_keys(summary, list(final)) if k not in keys]
    labels = _labels(runs)
    values = {
        label: {k: final.get(k, Value(None)) for k in keys}
        for label, final in zip(labels, finals, strict=True)
    }
    configs = [flatten(_read(run / "config.yaml")) for run in runs]
    records = [_record_facts(_read(run / "record.json")) for run in runs]
    return Comparison(
        runs=list(runs),
        labels=labels,
        metrics=keys,
        values=values,
        config_diff=_differences(configs, _IGNORED_CONFIG_KEYS) if len(runs) > 1 else {},
        record_diff=_differences(records) if len(runs) > 1 else {},
    )


def _cell(value: Any) -> str:
    if value is ABSENT:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    text = json.dumps(value, default=str) if isinstance(value, list | dict) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def print_comparison(comparison: Comparison, console: Any = None) -> None:
    """Print the metrics table, then the config and record differences."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    table = Table(title="final test metrics", title_justify="left")
    table.add_column("run", no_wrap=True)
    for key in comparison.metrics:
        table.add_column(key, justify="right")
    for label in comparison.labels:
        row = comparison.values[label]
        table.add_row(label, *(row[k].format() for k in comparison.metrics))
    console.print(table)
    for title, diff in (
        ("config differences", comparison.config_diff),
        ("record differences", comparison.record_diff),
    ):
        if not diff:
            console.print(f"{title}: none", highlight=False)
            continue
        detail = Table(title=title, title_justify="left")
        detail.add_column("key", no_wrap=True)
        for label in comparison.labels:
            detail.add_column(label)
        for key, values in diff.items():
            detail.add_row(key, *(_cell(v) for v in values))
        console.print(detail)


def plot_comparison(comparison: Comparison, path: str | Path) -> Path:
    """Write a grouped bar chart of the metrics (error bars: sd over folds) to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    keys, labels = comparison.metrics, comparison.labels
    if not keys:
        raise CompareError("no metric to plot")
    width = 0.8 / max(1, len(labels))
    x = np.arange(len(keys))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(keys) * max(1, len(labels)) ** 0.5), 4))
    for i, label in enumerate(labels):
        row = comparison.values[label]
        means = [math.nan if row[k].mean is None else float(row[k].mean or 0.0) for k in keys]
        sds = [row[k].sd or 0.0 for k in keys]
        ax.bar(
            x + (i - (len(labels) - 1) / 2) * width, means, width, yerr=sds, capsize=3, label=label
        )
    ax.set_xticks(x, [k.split("/", 1)[-1] for k in keys], rotation=30, ha="right")
    ax.set_ylabel("final test value")
    ax.legend(fontsize="small")
    fig.tight_layout()
    out = write_atomic(Path(path), write=lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    plt.close(fig)
    return out
