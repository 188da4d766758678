"""`asklepios new-plugin`: generate, install, test, list and run a plugin end to end."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from _installed import ASKLEPIOS, pip_install, run_with
from asklepios import cli


def test_cli_writes_the_requested_kinds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["new-plugin", "eye_lab", "--kinds", "loss,evaluator", "--dir", str(tmp_path)])
    assert code == 0
    assert "wrote" in capsys.readouterr().out
    package = tmp_path / "eye_lab" / "src" / "asklepios_eye_lab"
    assert sorted(p.name for p in package.glob("*.py")) == [
        "__init__.py",
        "evaluators.py",
        "hooks.py",
        "losses.py",
    ]


def test_cli_refuses_an_unknown_kind(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["new-plugin", "eye_lab", "--kinds", "los", "--dir", str(tmp_path)]) == 1
    assert "did you mean 'loss'?" in capsys.readouterr().err
    assert not (tmp_path / "eye_lab").exists()


@pytest.mark.slow
def test_generated_plugin_installs_passes_its_tests_is_listed_and_runs(tmp_path: Path) -> None:
    kinds = "backbone,loss,augmentation,adapter,evaluator,sampler,dataset,trainer"
    assert cli.main(["new-plugin", "scaffolded", "--kinds", kinds, "--dir", str(tmp_path)]) == 0
    root, site = tmp_path / "scaffolded", tmp_path / "site"
    pip_install(root, site)

    tests = run_with(site, [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], root)
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-3000:]
    assert "passed" in tests.stdout and "failed" not in tests.stdout

    listed = run_with(site, [str(ASKLEPIOS), "plugins", "list", "--json"], tmp_path)
    assert listed.returncode == 0, listed.stderr
    entry = {p["id"]: p for p in json.loads(listed.stdout)}["scaffolded"]
    assert entry["distribution"] == "asklepios-scaffolded" and entry["version"] == "0.1.0"
    assert entry["status"] in ("not loaded", "ok")

    overrides = ["--set", "train.epochs=1", "--set", f"output_dir={tmp_path / 'runs'}"]
    command = [str(ASKLEPIOS), "run", "configs/example.yaml", *overrides, "--device", "cpu"]
    ran = run_with(site, [*command, "--quiet"], root)
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    (run_dir,) = (tmp_path / "runs").iterdir()
    record = json.loads((run_dir / "record.json").read_text())
    assert "scaffolded" in json.dumps(record["plugins"])
    metrics = (run_dir / "metrics.jsonl").read_text()
    assert "brier/brier" in metrics and "rdrop_kl" in metrics
