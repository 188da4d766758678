"""What a run leaves for its reader: headline tables, matrices, metrics.csv, plots, the umask."""

from __future__ import annotations

import csv
import io
import json
import os
import stat
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
from asklepios import _plots
from asklepios._plots import curve_panels, write_plots
from asklepios.reporting import (
    MAX_ROWS,
    headline,
    print_summary,
    report_run,
    stage_comparison,
    write_metrics_csv,
)
from rich.console import Console

sys.path.insert(0, str(Path(__file__).parent))

from _engine_helpers import make_config, only_run_dir, write_config

CORRUPTIONS = ["gaussian_noise", "defocus_blur", "contrast"]


def _matrix() -> dict[str, Any]:
    return {
        "rows": CORRUPTIONS,
        "columns": ["s1", "s3", "s5"],
        "values": [[0.9, 0.5, 0.1], [0.8, None, 0.2], [0.7, 0.4, 0.3]],
        "title": "top-1 accuracy (model)",
        "label": "accuracy",
    }


def _robustness_test() -> dict[str, Any]:
    test: dict[str, Any] = {"loss": 3.0, "rob/model/acc/clean": 0.93, "rob/model/acc/mean": 0.45}
    for i, name in enumerate(CORRUPTIONS):
        for s in (1, 3, 5):
            test[f"rob/model/acc/{name}/s{s}"] = 0.1 * (i + s)
            test[f"rob/model/bacc/{name}/s{s}"] = 0.1 * (i + s)
    test["rob/model/acc_matrix"] = _matrix()
    return test


def _summary() -> dict[str, Any]:
    cls = {"cls": ["balanced_accuracy", "accuracy"], "groups": ["acc_few"]}
    first_test = {"loss": 0.9, "cls/balanced_accuracy": 0.70, "cls/accuracy": 0.72}
    first_test |= {"groups/acc_few": 0.2, "groups/acc_many": 0.99, "cls/confusion_matrix": [[1]]}
    return {
        "name": "demo",
        "run_dir": "runs/demo-1",
        "stages": {
            "body": {
                "epochs": 3,
                "monitor": "cls/balanced_accuracy",
                "best_epoch": 2,
                "selected_checkpoint": "best",
                "headline": cls,
                "val": {"loss": 0.8, "cls/balanced_accuracy": 0.69},
                "test": first_test,
            },
            "head": {
                "epochs": 2,
                "monitor": "cls/balanced_accuracy",
                "best_epoch": 1,
                "selected_checkpoint": "best",
                "headline": cls,
                "test": {**first_test, "cls/balanced_accuracy": 0.85, "groups/acc_few": 0.6},
            },
            "robust": {"epochs": 0, "headline": {"rob": ["*/acc/clean", "*/acc/mean"]}},
        },
    }


# -- headline keys and the terminal ----------------------------------------------------------------


def test_headline_takes_declared_patterns_in_order_else_the_first_scalars() -> None:
    metrics = {"loss": 1.0, "a/x": 1, "a/y": 2, "a/z": 3, "a/m": [[1]], "b/k1": 1.0}
    metrics |= {f"c/k{i}": float(i) for i in range(12)}
    patterns = {"a": ["z", "x"], "c": []}
    keys = headline(metrics, patterns, limit=100)
    assert keys[:3] == ["loss", "a/z", "a/x"]  # declared order, non-scalars never
    assert keys[3:11] == [f"c/k{i}" for i in range(8)]  # undeclared: the first eight
    assert keys[11:] == ["b/k1"]  # evaluators not in the patterns come last
    assert headline(metrics, patterns) == keys[:MAX_ROWS]
    assert headline(_robustness_test(), {"rob": ["*/acc/clean", "*/acc/mean"]}) == [
        "loss",
        "rob/model/acc/clean",
        "rob/model/acc/mean",
    ]


def test_summary_shows_headline_rows_one_matrix_and_points_to_the_rest() -> None:
    summary = _summary()
    summary["stages"]["robust"]["test"] = _robustness_test()
    out = io.StringIO()
    print_summary(summary, Console(file=out, width=120, color_system=None))
    text = out.getvalue()
    assert "groups/acc_many" not in text  # not a headline key
    assert "cls/balanced_accuracy" in text and "groups/acc_few" in text
    assert "rob/model/acc/clean" in text and "rob/model/acc/gaussian_noise/s1" not in text
    assert text.count("gaussian_noise") == 1  # the matrix: one row per corruption
    assert "stage robust: rob/model/acc_matrix (test)" in text
    assert "best epoch 3 by cls/balanced_accuracy; tested on the best checkpoint" in text
    # body: acc_many (x1); head: acc_many (x1); robust: 18 cells
    assert "20 more metrics in summary.json and metrics.csv" in text


def test_closing_line_compares_the_first_and_last_trained_stage() -> None:
    line = stage_comparison(_summary())
    assert line == (
        "head vs body (test): balanced_accuracy 0.700 -> 0.850 (+0.150), "
        "acc_few 0.200 -> 0.600 (+0.400)"
    )
    one = _summary()
    del one["stages"]["head"]
    assert stage_comparison(one) is None


# -- metrics.csv and plots -------------------------------------------------------------------------


def _rows() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for stage, epochs, val_loss in (("body", 3, True), ("head", 2, False)):
        for epoch in range(epochs):
            rows.append({"stage": stage, "epoch": epoch, "split": "train", "lr": 0.1, "loss": 1.0})
            val = {"stage": stage, "epoch": epoch, "split": "val", "cls/accuracy": 0.5 + epoch / 10}
            val["cls/ece"] = float("nan")  # an empty series: never drawn
            if val_loss:
                val["loss"] = 0.9
            rows.append(val)
    rows.append({"stage": "head", "epoch": 1, "split": "test", "cls/confusion_matrix": [[1]]})
    return rows


def test_metrics_csv_has_one_row_per_line_and_scalar_columns(tmp_path: Path) -> None:
    text = "\n".join(json.dumps(r) for r in _rows()) + '\n{"stage": "he'  # cut by a kill
    (tmp_path / "metrics.jsonl").write_text(text)
    path = write_metrics_csv(tmp_path)
    assert path == tmp_path / "metrics.csv"
    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(_rows())
    assert list(rows[0])[:5] == ["stage", "epoch", "split", "lr", "loss"]
    assert "cls/confusion_matrix" not in rows[0]
    assert rows[1]["cls/accuracy"] == "0.5" and rows[0]["cls/accuracy"] == ""


def test_curves_leave_out_empty_series_and_draw_val_metrics_without_val_loss() -> None:
    head_only = [r for r in _rows() if r["stage"] == "head"]  # its val rows carry no loss
    panels = curve_panels(head_only, {"cls": ["accuracy", "ece"]})
    assert [title for title, _ in panels] == ["loss", "cls (validation)"]
    loss, metrics = panels[0][1], panels[1][1]
    assert [s[0] for s in loss] == ["train loss"]  # no val loss series
    assert [s[0] for s in metrics] == ["accuracy"]  # ece is all NaN
    assert metrics[0][1] == [1, 2] and metrics[0][2] == pytest.approx([0.5, 0.6])


def test_plots_per_stage_boundaries_class_names_and_no_warnings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    drawn: dict[str, Any] = {}
    save = _plots._save

    def keep(fig: Any, path: Path, dpi: int = 110) -> Path:
        drawn[str(path.relative_to(tmp_path))] = fig
        return save(fig, path, dpi)

    monkeypatch.setattr(_plots, "_save", keep)
    stages = {
        "body": {"headline": {"cls": ["accuracy"]}},
        "head": {
            "class_names": ["cat", "dog"],
            "test": {"cls/confusion_matrix": [[3, 1], [0, 4]], "rob/model/acc_matrix": _matrix()},
        },
    }
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning escaping write_plots fails the test
        written = write_plots(_rows(), stages, tmp_path)
    assert sorted(drawn) == [
        "plots/body/curves.png",
        "plots/curves.png",
        "plots/head/cls_confusion_matrix.png",
        "plots/head/curves.png",
        "plots/head/rob_model_acc_matrix.png",
    ]
    assert all(p.stat().st_size > 1000 for p in written)
    boundary = drawn["plots/curves.png"].axes[0]
    assert [t.get_text() for t in boundary.texts] == ["body", "head"]  # both stages named
    assert [ln.get_xdata()[0] for ln in boundary.lines if ln.get_linestyle() == "--"] == [3.5]
    confusion = drawn["plots/head/cls_confusion_matrix.png"].axes[0]
    assert [t.get_text() for t in confusion.get_yticklabels()] == ["cat", "dog"]
    heat = drawn["plots/head/rob_model_acc_matrix.png"].axes[0]
    assert [t.get_text() for t in heat.get_yticklabels()] == CORRUPTIONS
    assert len(heat.texts) == 8  # one number per cell that has a value
    assert capfd.readouterr().err == ""


def test_report_redraws_every_plot_and_rewrites_metrics_csv(tmp_path: Path) -> None:
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in _rows()) + "\n")
    summary = _summary()
    summary["stages"]["robust"]["test"] = _robustness_test()
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    out = io.StringIO()
    report_run(tmp_path, Console(file=out, width=120, color_system=None))
    text = out.getvalue()
    assert (tmp_path / "metrics.csv").is_file()
    assert (tmp_path / "plots" / "robust" / "rob_model_acc_matrix.png").is_file()
    assert (tmp_path / "plots" / "body" / "cls_confusion_matrix.png").is_file()
    assert f"wrote metrics.csv and 6 plots under {tmp_path / 'plots'}" in text
    assert text.rstrip().endswith("acc_few 0.200 -> 0.600 (+0.400)")


# -- permissions -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_run_outputs_follow_the_umask(tmp_path: Path) -> None:
    from asklepios.cli import main
    from asklepios.plugins import PluginHost, set_host

    set_host(PluginHost(discover=False))
    config = make_config(tmp_path)
    config["train"]["epochs"] = 1
    path = write_config(tmp_path, config)
    old = os.umask(0o027)
    try:
        assert main(["run", str(path), "--quiet"]) == 0
    finally:
        os.umask(old)
    run_dir = only_run_dir(tmp_path)
    modes = {
        str(p.relative_to(run_dir)): stat.S_IMODE(p.stat().st_mode)
        for p in [run_dir, *run_dir.rglob("*")]
    }
    assert "metrics.csv" in modes and "checkpoints/main/best.pt" in modes
    wrong = {
        name: oct(mode)
        for name, mode in modes.items()
        if mode != (0o750 if (run_dir / name).is_dir() else 0o640)
    }
    assert not wrong
