"""The worked third-party plugin (examples/third_party_plugin): install, test, mix with core."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from _installed import ASKLEPIOS, pip_install, run_with

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "third_party_plugin"


@pytest.mark.slow
def test_polyloss_installs_passes_its_suite_and_runs_with_core_components(tmp_path: Path) -> None:
    source = tmp_path / "polyloss"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "runs"))
    site = tmp_path / "site"
    pip_install(source, site)
    shutil.rmtree(source / "src")  # the suite must test the installed package

    pytest_cmd = [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider"]
    pytest_cmd += ["-W", "error::asklepios_sdk.errors.AsklepiosDeprecationWarning"]
    tests = run_with(site, pytest_cmd, source)
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-3000:]
    kit_checks = (
        "plugin::import-light",
        "plugin::registration-light",
        "polyloss.poly::loss-output",
        "polyloss.poly::params-naming",
        "polyloss.poly_focal::params-naming",
        "polyloss.poly_focal::checkpoint-state",
        "polyloss.poly_focal::pickle",
    )
    for check in kit_checks:
        assert f"PASSED tests/conftest.py::{check}" in tests.stdout
    assert "PASSED tests/test_readme.py::" in tests.stdout

    overrides = ["--set", "train.epochs=1", "--set", f"output_dir={tmp_path / 'runs'}"]
    config = source / "configs" / "polyloss_digits.yaml"
    ran = run_with(
        site, [str(ASKLEPIOS), "run", str(config), *overrides, "--device", "cpu"], tmp_path
    )
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    (run_dir,) = (tmp_path / "runs").iterdir()
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert any("poly" in json.dumps(row) for row in metrics)
    record = (run_dir / "record.json").read_text()
    assert "asklepios-polyloss" in record and "PolyLoss: A Polynomial Expansion" in record
