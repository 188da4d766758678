"""The ``asklepios`` CLI: output, JSON, exit codes, error messages and import hygiene."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import asklepios
import pytest
import yaml
from asklepios import cli
from asklepios.cli import EXIT_DOCTOR, EXIT_ERROR, EXIT_INTERNAL, EXIT_OK, EXIT_USAGE, main
from asklepios.plugins import set_host
from asklepios_sdk import EmptyParams, Params, hookimpl
from pydantic import Field


class FocalParams(Params):
    gamma: float = Field(2.0, ge=0, description="Focusing parameter.")


def _factory(params, ctx):
    """Build a test double."""
    return params


@pytest.fixture
def host(make_host, plugin_module):
    @hookimpl
    def core_trainers(register):
        register("supervised", _factory, EmptyParams)

    @hookimpl
    def core_datasets(register):
        register("digits", _factory, EmptyParams)

    @hookimpl
    def core_backbones(register):
        register("mlp", _factory, EmptyParams)

    @hookimpl
    def lt_losses(register):
        register("focal", _factory, FocalParams)
        register("ldam", _factory, EmptyParams, doc="Label-distribution-aware margin loss.")

    @hookimpl
    def lt_samplers(register):
        register("class_aware", _factory, EmptyParams)

    @hookimpl
    def bad_losses(register):
        raise RuntimeError("bad plugin hook")

    host = make_host(
        {
            "core": plugin_module(
                "core",
                register_trainers=core_trainers,
                register_datasets=core_datasets,
                register_backbones=core_backbones,
            ),
            "lt": plugin_module("lt", register_losses=lt_losses, register_samplers=lt_samplers),
        }
    )
    host.extra_bad = plugin_module("bad", register_losses=bad_losses)
    set_host(host)
    return host


CONFIG = {
    "name": "cli",
    "data": {"dataset": {"type": "digits"}},
    "model": {"backbone": {"type": "core.mlp"}},
    "loss": {"type": "focal", "gamma": 1.5},
}


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_version(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == EXIT_OK and out.strip() == f"asklepios {asklepios.__version__}"


def test_usage_errors_exit_2(capsys):
    code, _, err = run(capsys, "plugins", "lst")
    assert code == EXIT_USAGE and "No such command" in err
    code, _, _ = run(capsys, "validate")
    assert code == EXIT_USAGE


def test_plugins_list_json_and_all(capsys, fake_site):
    fake_site.add("oldie", "", version="0.3", requires=("asklepios<0.0.1",))
    code, out, _ = run(capsys, "plugins", "list", "--json")
    assert code == EXIT_OK
    records = {r["id"]: r for r in json.loads(out)}
    assert "core" not in records
    old = records["oldie"]
    assert old["status"] == "incompatible" and old["distribution"] == "asklepios-oldie"
    assert "requires asklepios<0.0.1; you have" in old["error"]
    code, out, _ = run(capsys, "plugins", "list", "--json", "--all")
    assert "core" in {r["id"] for r in json.loads(out)}


def test_plugins_list_table_shows_failures_and_requirements(capsys, fake_site):
    fake_site.add("oldie", "", version="0.3", requires=("asklepios<0.0.1",))
    code, out, _ = run(capsys, "plugins", "list")
    assert code == EXIT_OK
    assert "oldie" in out and "incompatible" in out and "fix: " in out
    code, out, _ = run(capsys, "plugins", "list", "--requirements")
    assert "asklepios-oldie==0.3" in out.splitlines()


def test_disable_flag(capsys, fake_site):
    fake_site.add("quiet", "")
    code, out, _ = run(capsys, "--disable", "quiet", "plugins", "list", "--json")
    assert code == EXIT_OK
    assert {r["id"]: r["status"] for r in json.loads(out)}["quiet"] == "disabled"


def test_strict_flag_reraises_plugin_failures(capsys, fake_site, monkeypatch):
    monkeypatch.delenv("ASKLEPIOS_STRICT_PLUGINS", raising=False)
    fake_site.add("broken", "raise RuntimeError('broken at import')\n")
    code, out, _ = run(capsys, "plugins", "show", "broken")
    assert code == EXIT_OK and "broken at import" in out
    code, _, err = run(capsys, "--strict", "plugins", "show", "broken")
    assert code == EXIT_ERROR and "broken at import" in err
    assert "Traceback" not in err


def test_plugins_show_lists_components_and_params(capsys, host):
    code, out, _ = run(capsys, "plugins", "show", "lt")
    assert code == EXIT_OK
    assert "lt.focal" in out and "gamma: float (default 2.0)  Focusing parameter." in out
    assert "Label-distribution-aware margin loss." in out
    code, out, _ = run(capsys, "plugins", "show", "lt", "--json")
    record = json.loads(out)
    assert [c["id"] for c in record["component_list"]] == ["lt.focal", "lt.ldam", "lt.class_aware"]


def test_plugins_show_unknown_id(capsys, host):
    code, _, err = run(capsys, "plugins", "show", "ltt")
    assert code == EXIT_ERROR and "Did you mean 'lt'" in err


def test_components_by_kind_pattern_and_plural(capsys, host):
    code, out, _ = run(capsys, "components", "loss", "--json")
    assert code == EXIT_OK
    assert [r["id"] for r in json.loads(out)["components"]] == ["lt.focal", "lt.ldam"]
    code, out, _ = run(capsys, "components", "*focal*", "--json")
    assert [r["id"] for r in json.loads(out)["components"]] == ["lt.focal"]
    code, out, _ = run(capsys, "components", "samplers", "--json")
    assert [r["id"] for r in json.loads(out)["components"]] == ["lt.class_aware"]
    code, out, _ = run(capsys, "components")
    assert "lt.focal" in out and "core.mlp" in out


def test_components_note_failed_plugins(capsys, host):
    host.add_plugin(host.extra_bad, "bad")
    code, out, _ = run(capsys, "components", "loss")
    assert code == EXIT_OK
    assert "note" in out and "plugin 'bad'" in out and "bad plugin hook" in out
    code, out, _ = run(capsys, "components", "loss", "--json")
    assert code == EXIT_OK
    problems = json.loads(out)["plugin_problems"]
    assert [(p["id"], p["status"]) for p in problems] == [("bad", "failed")]
    assert "bad plugin hook" in problems[0]["error"]


def test_validate_ok_print_and_set(capsys, host, tmp_path):
    file = tmp_path / "c.yaml"
    file.write_text(yaml.safe_dump(CONFIG))
    code, out, _ = run(capsys, "validate", str(file))
    assert code == EXIT_OK and "valid" in out and "main" in out
    code, out, _ = run(capsys, "validate", str(file), "--print", "--set", "loss.gamma=3")
    resolved = yaml.safe_load(out)
    assert resolved["loss"] == {"type": "lt.focal", "gamma": 3}
    assert resolved["data"]["dataset"]["type"] == "core.digits"


def test_validate_reports_every_problem_without_traceback(capsys, host, tmp_path):
    file = tmp_path / "c.yaml"
    file.write_text(yaml.safe_dump({**CONFIG, "sed": 1, "loss": {"type": "focal", "gama": 1}}))
    code, out, err = run(capsys, "validate", str(file))
    assert code == EXIT_ERROR and out == ""
    assert "(2 problems)" in err
    assert "sed: unknown key" in err and "Did you mean 'seed'" in err
    assert "loss.gama [lt.focal (lt 1.2.3)]: unknown parameter" in err
    assert "Traceback" not in err


def test_debug_prints_the_traceback(capsys, host, tmp_path):
    code, _, err = run(capsys, "--debug", "validate", str(tmp_path / "missing.yaml"))
    assert code == EXIT_ERROR and "Traceback" in err and "file not found" in err


def test_internal_errors_exit_4(capsys, host, monkeypatch):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("oops")

    monkeypatch.setattr(host.registry, "list", broken)
    code, _, err = run(capsys, "components")
    assert code == EXIT_INTERNAL
    assert "internal error: ZeroDivisionError: oops" in err and "--debug" in err


def test_schema_to_file_is_json(capsys, host, tmp_path):
    target = tmp_path / "out" / "schema.json"
    code, _, err = run(capsys, "schema", "-o", str(target))
    assert code == EXIT_OK and "wrote" in err
    schema = json.loads(target.read_text())
    assert "component.loss" in schema["$defs"]
    code, out, _ = run(capsys, "schema")
    assert json.loads(out)["title"] == "asklepios experiment config"


@pytest.mark.slow  # imports torch for the device report
def test_doctor_ok_and_problems(capsys, host):
    code, out, _ = run(capsys, "doctor")
    assert code == EXIT_OK
    assert "asklepios-sdk" in out and "torch" in out and "no problems found" in out
    host.add_plugin(host.extra_bad, "bad")
    code, out, _ = run(capsys, "doctor")
    assert code == EXIT_DOCTOR and "bad plugin hook" in out


def test_exit_codes_are_documented():
    doc = cli.__doc__ or ""
    for code in (EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_DOCTOR, EXIT_INTERNAL):
        assert f"``{code}``" in doc


def test_plugins_list_imports_no_plugin_and_no_torch(fake_site):
    fake_site.add("heavy", "import torch\nraise AssertionError('imported')\n")
    script = textwrap.dedent(
        """
        import json, sys
        from asklepios.cli import main
        from asklepios.plugins import get_host
        for args in (["plugins", "list"], ["plugins", "list", "--json", "--all"],
                     ["plugins", "list", "--requirements"]):
            assert main(args) == 0, args
        plugin_modules = set()
        for info in get_host().plugins():
            plugin_modules.add(info.module.split(":")[0])
            plugin_modules.add(info.module.split(".")[0])
        plugin_modules.discard("asklepios")
        plugin_modules.add("asklepios.builtins")
        loaded = [m for m in sys.modules if m == "torch" or m.startswith("torch.")
                  or m in plugin_modules]
        print("LOADED=" + json.dumps(sorted(loaded)))
        print("PLUGINS=" + json.dumps(sorted(plugin_modules)))
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(fake_site.root), *sys.path])}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 0, result.stderr
    lines = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    assert json.loads(lines["LOADED"]) == []
    assert any(m.startswith("fakeplug_heavy") for m in json.loads(lines["PLUGINS"]))


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "asklepios"
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and result.stdout.startswith("asklepios ")


QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "configs" / "quickstart.yaml"


def test_the_fast_commands_import_no_torch():
    # issue 14: validate (of the quickstart, which names three plugins), components, plugins
    # show and schema read params models and docs only; torch comes with building
    script = textwrap.dedent(
        f"""
        import sys
        from asklepios.cli import main
        heavy = ("torch", "timm", "open_clip", "diffusers", "torchvision", "torchmetrics")
        quickstart = {str(QUICKSTART)!r}
        for args in (["validate", quickstart], ["validate", "--print", quickstart],
                     ["components"], ["plugins", "show", "longtail"], ["schema"]):
            assert main(args) == 0, args
            loaded = sorted(m for m in sys.modules if m.split(".")[0] in heavy)
            assert not loaded, (args, loaded[:5])
        print("CLEAN")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=300
    )
    assert result.returncode == 0 and result.stdout.rstrip().endswith("CLEAN"), result.stderr


def test_validate_print_fills_in_component_defaults(capsys, host, tmp_path):
    file = tmp_path / "c.yaml"
    file.write_text(yaml.safe_dump({**CONFIG, "loss": {"type": "focal"}}))
    code, out, _ = run(capsys, "validate", str(file), "--print")
    assert code == EXIT_OK and yaml.safe_load(out)["loss"] == {"type": "lt.focal", "gamma": 2.0}


def test_validate_prints_config_warnings_on_stderr(capsys, host, tmp_path):
    data = {**CONFIG, "stages": [{"name": "a"}, {"name": "b", "loss": {"gamma": 1.0}}]}
    file = tmp_path / "c.yaml"
    file.write_text(yaml.safe_dump(data))
    code, out, err = run(capsys, "validate", str(file), "--set", "loss.gamma=3")
    assert code == EXIT_OK and "valid" in out
    assert err.startswith("warning: --set loss.gamma=3 does not reach stage 'b'")
    assert "--set stages.b.loss.gamma=3" in err
    code, _, err = run(capsys, "validate", str(file), "--set", "stages.b.loss.gamma=3")
    assert code == EXIT_OK and err == ""


def test_other_warnings_while_checking_a_config_are_shown_once(capsys, host, monkeypatch):
    """A plugin's warning raised during validation is shown once (it used to be recorded again
    on every replay, looping without end)."""
    from asklepios.cli._app import _config_warnings

    shown: list[str] = []
    monkeypatch.setattr(warnings, "showwarning", lambda message, *args: shown.append(str(message)))
    with _config_warnings():
        warnings.warn("cannot check the calibrator here", UserWarning, stacklevel=1)
    assert shown == ["cannot check the calibrator here"]


@pytest.mark.parametrize(
    ("content", "fragment"),
    [(b"name: caf\xe9\n", "not UTF-8 text: byte 0xe9 at line 1"), (b"\x89PNG\x00\x00", "binary")],
)
def test_an_undecodable_config_exits_1_naming_the_file(capsys, host, tmp_path, content, fragment):
    file = tmp_path / "c.yaml"
    file.write_bytes(content)
    code, _, err = run(capsys, "validate", str(file))
    assert code == EXIT_ERROR
    assert err.startswith(f"error: config {file} is invalid (1 problem)") and fragment in err


def test_params_show_their_types_as_a_reader_writes_them():
    from typing import Literal

    from asklepios._cli_render import type_name
    from asklepios_sdk.params import LocalDir, LocalFile, LocalPath
    from pydantic import PositiveInt

    class Shown(Params):
        manifest: LocalFile
        images: LocalDir | None = None
        cache: LocalPath = "cache"
        size: PositiveInt | list[PositiveInt] | None = None
        mode: Literal["RGB", "L"] = "RGB"
        pair: tuple[float, float] = (0.0, 1.0)

    shown = {name: type_name(f.annotation, f.metadata) for name, f in Shown.model_fields.items()}
    assert shown == {
        "manifest": "file",
        "images": "folder | None",
        "cache": "path",
        "size": "int | list[int] | None",
        "mode": "'RGB' | 'L'",
        "pair": "tuple[float, float]",
    }
