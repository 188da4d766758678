"""The plugin scaffold: files per kind, validation, atomic writes, lint-clean code that conforms."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from asklepios_sdk.scaffold import KINDS, ScaffoldError, new_plugin, plugin_files
from asklepios_sdk.testing import check_plugin


def test_files_follow_the_requested_kinds() -> None:
    files = plugin_files("eye_lab", ["evaluator", "loss"])
    assert set(files) == {
        "pyproject.toml",
        "README.md",
        "configs/example.yaml",
        "src/asklepios_eye_lab/__init__.py",
        "src/asklepios_eye_lab/py.typed",
        "src/asklepios_eye_lab/hooks.py",
        "src/asklepios_eye_lab/CITATION.cff",
        "src/asklepios_eye_lab/losses.py",
        "src/asklepios_eye_lab/evaluators.py",
        "tests/conftest.py",
        "tests/test_losses.py",
        "tests/test_evaluators.py",
    }
    pyproject = files["pyproject.toml"]
    assert 'name = "asklepios-eye-lab"' in pyproject
    assert 'eye_lab = "asklepios_eye_lab.hooks"' in pyproject
    assert '"asklepios>=0.1,<0.2"' in pyproject and '"torchmetrics>=1.2,<2"' in pyproject
    hooks = files["src/asklepios_eye_lab/hooks.py"]
    assert "def register_losses" in hooks and "def register_evaluators" in hooks
    assert "register_backbones" not in hooks and "import torch" not in hooks
    config = files["configs/example.yaml"]
    assert "loss: {type: eye_lab.sce}" in config and "- {type: eye_lab.brier}" in config
    assert "dataset: {type: core.digits}" in config and "backbone: {type: core.mlp}" in config
    assert files["tests/conftest.py"].endswith(
        'asklepios_conformance = "asklepios_eye_lab.hooks"\n'
    )
    readme = files["README.md"]
    assert "| `eye_lab.sce` | loss |" in readme and "```bibtex" in readme and config in readme


@pytest.mark.parametrize(
    ("name", "kinds", "message"),
    [
        ("Eye-Lab", ["loss"], "lowercase snake_case"),
        ("core", ["loss"], "not be 'core'"),
        ("eye", ["los"], "did you mean 'loss'?"),
        ("eye", [], "at least one kind"),
    ],
)
def test_bad_names_and_kinds_are_refused(
    name: str, kinds: list[str], message: str, tmp_path: Path
) -> None:
    with pytest.raises(ScaffoldError, match=message):
        new_plugin(name, kinds, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_existing_target_is_never_overwritten(tmp_path: Path) -> None:
    (tmp_path / "eye").mkdir()
    (tmp_path / "eye" / "mine.txt").write_text("keep")
    with pytest.raises(ScaffoldError, match="exists and is not empty"):
        new_plugin("eye", ["loss"], tmp_path)
    assert [p.name for p in (tmp_path / "eye").iterdir()] == ["mine.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eye"]  # no staging left behind


@pytest.mark.slow
def test_generated_plugin_is_lint_clean_and_passes_the_kit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = new_plugin("gen_all", list(KINDS), tmp_path)
    for command in (["check", "--no-cache", "."], ["format", "--check", "--no-cache", "."]):
        lint = subprocess.run(
            [sys.executable, "-m", "ruff", *command], cwd=root, capture_output=True, text=True
        )
        assert lint.returncode == 0, lint.stdout + lint.stderr
    monkeypatch.syspath_prepend(str(root / "src"))
    report = check_plugin("asklepios_gen_all.hooks")
    assert report.failures == [], [o.message for o in report.failures]
    assert {o.check.component for o in report.outcomes} - {None} == {
        f"gen_all.{t.name}" for t in KINDS.values()
    }
