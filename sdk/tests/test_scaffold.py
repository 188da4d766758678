"""The plugin scaffold: files per kind, the SDK 0.2 contract, lint-clean code that conforms."""

from __future__ import annotations

import ast
import dataclasses
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from asklepios_sdk.registration import REGISTRATION_HOOKS, TARGET_PATTERN
from asklepios_sdk.scaffold import (
    KINDS,
    MAX_ID_LENGTH,
    ScaffoldError,
    new_plugin,
    next_steps,
    plugin_files,
)
from asklepios_sdk.scaffold._files import compatible_range
from asklepios_sdk.testing import COMPONENT_TABLE_HEADER, check_plugin, component_table_rows


def _ruff(root: Path) -> None:
    for command in (["check", "--no-cache", "."], ["format", "--check", "--no-cache", "."]):
        lint = subprocess.run(
            [sys.executable, "-m", "ruff", *command], cwd=root, capture_output=True, text=True
        )
        assert lint.returncode == 0, lint.stdout + lint.stderr


def test_files_follow_the_requested_kinds() -> None:
    files = plugin_files("eye_lab", ["evaluator", "loss"])
    assert set(files) == {
        "pyproject.toml",
        "README.md",
        "configs/example.yaml",
        "src/asklepios_eye_lab/__init__.py",
        "src/asklepios_eye_lab/py.typed",
        "src/asklepios_eye_lab/hooks.py",
        "src/asklepios_eye_lab/params.py",
        "src/asklepios_eye_lab/CITATION.cff",
        "src/asklepios_eye_lab/losses.py",
        "src/asklepios_eye_lab/evaluators.py",
        "tests/conftest.py",
        "tests/test_readme.py",
        "tests/test_losses.py",
        "tests/test_evaluators.py",
    }
    pyproject = files["pyproject.toml"]
    assert 'name = "asklepios-eye-lab"' in pyproject
    assert 'eye_lab = "asklepios_eye_lab.hooks"' in pyproject
    assert '"torchmetrics>=1.2,<2"' in pyproject
    assert 'requires = ["setuptools>=77"]' in pyproject and "wheel" not in pyproject
    assert 'test = ["pytest>=8"]' in pyproject
    assert 'asklepios_eye_lab = ["CITATION.cff", "py.typed"]' in pyproject
    config = files["configs/example.yaml"]
    assert "loss: {type: eye_lab.sce}" in config and "- {type: eye_lab.brier}" in config
    assert "dataset: {type: core.digits}" in config and "backbone: {type: core.mlp}" in config
    assert files["tests/conftest.py"].endswith(
        'asklepios_conformance = "asklepios_eye_lab.hooks"\n'
    )
    readme = files["README.md"]
    assert "```bibtex" in readme and config in readme
    assert "pip install -e '.[test]'" in readme and "python -m pytest" in readme


def test_core_and_sdk_ranges_are_those_of_the_installed_versions() -> None:
    pyproject = plugin_files("eye_lab", ["loss"])["pyproject.toml"]
    for dist in ("asklepios", "asklepios-sdk"):
        assert f'"{dist}{compatible_range(version(dist))}"' in pyproject
    assert compatible_range("0.1.0") == ">=0.1,<0.2"
    assert compatible_range("0.2.3rc1") == ">=0.2,<0.3"
    assert compatible_range("1.4.0") == ">=1.4,<2"


def _register_calls(hooks: str) -> dict[str, list[ast.Call]]:
    calls: dict[str, list[ast.Call]] = {}
    for node in ast.parse(hooks).body:
        if isinstance(node, ast.FunctionDef):
            calls[node.name] = [
                n
                for n in ast.walk(node)
                if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "register"
            ]
    return calls


def test_hooks_make_one_lazy_register_call_per_component_with_its_params() -> None:
    files = plugin_files("eye_lab", list(KINDS))
    hooks = files["src/asklepios_eye_lab/hooks.py"]
    assert not re.search(r"^\s*(import|from) (torch|numpy)", hooks, flags=re.M)
    assert "losss" not in hooks
    assert '"""Register the eye_lab losses."""' in hooks
    calls = _register_calls(hooks)
    assert set(calls) == set(REGISTRATION_HOOKS.values())
    params = files["src/asklepios_eye_lab/params.py"]
    for template in KINDS.values():
        (call,) = calls[template.hook]
        name, target, model = call.args
        assert isinstance(name, ast.Constant) and name.value == template.name
        assert isinstance(target, ast.Constant) and TARGET_PATTERN.match(target.value)
        assert target.value == f"asklepios_eye_lab.{template.module}:{template.cls}"
        if template.params is None:
            assert ast.unparse(model) == "EmptyParams"
            assert "params: EmptyParams, ctx: BuildContext" in template.code
        else:
            assert ast.unparse(model) == f"p.{template.cls}Params"  # kit rule params-naming
            assert f"class {template.cls}Params(Params):" in params
            module = files[f"src/asklepios_eye_lab/{template.module}.py"]
            assert f"from asklepios_eye_lab.params import {template.cls}Params" in module
            assert f"params: {template.cls}Params, ctx: BuildContext" in module
    assert "torch" not in params and "numpy" not in params


def test_params_module_is_left_out_when_no_component_takes_params() -> None:
    files = plugin_files("eye_lab", ["evaluator", "sampler"])
    assert "src/asklepios_eye_lab/params.py" not in files
    assert "import params" not in files["src/asklepios_eye_lab/hooks.py"]


def test_readme_table_has_the_kit_header_one_row_per_component_and_escapes_bars(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loss = KINDS["loss"]
    code = loss.code.replace("Combine cross-entropy and", "Combine |p - y| terms of CE and")
    monkeypatch.setitem(KINDS, "loss", dataclasses.replace(loss, code=code))
    readme = plugin_files("eye_lab", ["loss", "evaluator"])["README.md"]
    table = [
        *COMPONENT_TABLE_HEADER,
        "| `eye_lab.sce` | loss | Combine \\|p - y\\| terms of CE and reverse cross-entropy for "
        "learning with noisy labels. |",
        "| `eye_lab.brier` | evaluator | Compute the multi-class Brier score (lower is better). |",
    ]
    assert "\n".join(table) in readme
    assert "- `eye_lab.sce`: Wang et al., ICCV 2019" in readme


def test_distribution_name_is_a_convention_that_version_follows() -> None:
    default = plugin_files("eye_lab", ["loss"])
    assert 'version("asklepios-eye-lab")' in default["src/asklepios_eye_lab/__init__.py"]
    custom = plugin_files("eye_lab", ["loss"], dist_name="acme.eye-tools")
    assert 'name = "acme.eye-tools"' in custom["pyproject.toml"]
    assert 'eye_lab = "asklepios_eye_lab.hooks"' in custom["pyproject.toml"]  # id unchanged
    assert 'version("acme.eye-tools")' in custom["src/asklepios_eye_lab/__init__.py"]
    assert "title: acme.eye-tools" in custom["src/asklepios_eye_lab/CITATION.cff"]
    assert custom["README.md"].startswith("# acme.eye-tools\n")
    assert "asklepios-eye-lab" not in "".join(custom.values()).replace("`asklepios-<id>`", "")
    with pytest.raises(ScaffoldError, match=r"not a valid project name.*'asklepios-eye-lab'"):
        plugin_files("eye_lab", ["loss"], dist_name="eye lab")


def test_next_steps_install_the_test_extra_and_run_pytest_through_python() -> None:
    assert next_steps(Path("plugins/my_lab")) == (
        "cd plugins/my_lab && pip install -e '.[test]' && python -m pytest"
    )
    assert next_steps("/tmp/my dir/x").startswith("cd '/tmp/my dir/x' && ")


@pytest.mark.parametrize(
    ("name", "kinds", "message"),
    [
        ("Eye-Lab", ["loss"], "lowercase snake_case"),
        ("core", ["loss"], "not be 'core'"),
        ("e" * (MAX_ID_LENGTH + 1), ["loss"], f"at most {MAX_ID_LENGTH}"),
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


def test_the_longest_id_still_gives_lint_clean_code(tmp_path: Path) -> None:
    _ruff(new_plugin("x" * MAX_ID_LENGTH, list(KINDS), tmp_path, dist_name="acme-" + "x" * 40))


@pytest.mark.slow
def test_generated_plugin_is_lint_clean_and_passes_the_kit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = new_plugin("gen_all", list(KINDS), tmp_path)
    _ruff(root)
    monkeypatch.syspath_prepend(str(root / "src"))
    report = check_plugin("asklepios_gen_all.hooks")
    assert report.failures == [], [o.message for o in report.failures]
    assert {o.check.component for o in report.outcomes} - {None} == {
        f"gen_all.{t.name}" for t in KINDS.values()
    }
    passed = {o.check.name for o in report.outcomes if o.status == "passed"}
    assert {"plugin::import-light", "plugin::registration-light"} <= passed
    for t in KINDS.values():
        assert f"gen_all.{t.name}::params-naming" in passed
    assert {"gen_all.sce::checkpoint-state", "gen_all.class_balanced::checkpoint-state"} <= passed
    table = "\n".join([*COMPONENT_TABLE_HEADER, *component_table_rows("asklepios_gen_all.hooks")])
    assert table in (root / "README.md").read_text()
