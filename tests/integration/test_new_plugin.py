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
    root = tmp_path / "eye_lab"
    out = capsys.readouterr().out
    assert f"wrote {root}" in out
    assert f"next: cd {root} && pip install -e '.[test]' && python -m pytest" in out
    package = root / "src" / "asklepios_eye_lab"
    assert sorted(p.name for p in package.glob("*.py")) == [
        "__init__.py",
        "evaluators.py",
        "hooks.py",
        "losses.py",
        "params.py",
    ]
    assert (package / "py.typed").exists() and (root / "tests" / "test_readme.py").exists()
    assert 'name = "asklepios-eye-lab"' in (root / "pyproject.toml").read_text()


def test_cli_takes_a_distribution_name_that_version_follows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["new-plugin", "eye_lab", "--dist-name", "acme-eye", "--dir", str(tmp_path)]
    assert cli.main(argv) == 0
    root = tmp_path / "eye_lab"
    assert 'name = "acme-eye"' in (root / "pyproject.toml").read_text()
    assert 'version("acme-eye")' in (root / "src" / "asklepios_eye_lab" / "__init__.py").read_text()
    argv = ["new-plugin", "eye_two", "--dist-name", "acme eye", "--dir", str(tmp_path)]
    assert cli.main(argv) == 1
    assert "not a valid project name" in capsys.readouterr().err
    assert not (tmp_path / "eye_two").exists()


def test_cli_refuses_an_unknown_kind(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["new-plugin", "eye_lab", "--kinds", "los", "--dir", str(tmp_path)]) == 1
    assert "did you mean 'loss'?" in capsys.readouterr().err
    assert not (tmp_path / "eye_lab").exists()


@pytest.mark.slow
def test_generated_plugin_installs_passes_its_tests_is_listed_and_runs(tmp_path: Path) -> None:
    kinds = "backbone,loss,augmentation,adapter,evaluator,sampler,dataset,trainer"
    argv = ["new-plugin", "scaffolded", "--kinds", kinds, "--dir", str(tmp_path)]
    assert cli.main([*argv, "--dist-name", "acme-scaffolded"]) == 0
    root, site = tmp_path / "scaffolded", tmp_path / "site"
    pip_install(root, site)

    pytest_cmd = [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider"]
    deprecations = ["-W", "error::asklepios_sdk.errors.AsklepiosDeprecationWarning"]
    tests = run_with(site, [*pytest_cmd, *deprecations], root)
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-3000:]
    assert "passed" in tests.stdout and "failed" not in tests.stdout
    for check in ("plugin::registration-light", "scaffolded.rdrop::params-naming"):
        assert f"PASSED tests/conftest.py::{check}" in tests.stdout
    assert "PASSED tests/test_readme.py::" in tests.stdout

    code = "import asklepios_scaffolded as p; print(p.__version__)"
    version = run_with(site, [sys.executable, "-c", code], tmp_path)
    assert version.stdout.strip() == "0.1.0", version.stderr  # read for the name actually used

    listed = run_with(site, [str(ASKLEPIOS), "plugins", "list", "--json"], tmp_path)
    assert listed.returncode == 0, listed.stderr
    entry = {p["id"]: p for p in json.loads(listed.stdout)}["scaffolded"]
    assert entry["distribution"] == "acme-scaffolded" and entry["version"] == "0.1.0"
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
