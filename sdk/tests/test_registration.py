"""The registration contract: every problem of a ``register`` call, lazy docs, SDK 0.2 warnings."""

from __future__ import annotations

import re
import sys
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from asklepios_sdk import EmptyParams, Params
from asklepios_sdk.errors import AsklepiosDeprecationWarning
from asklepios_sdk.registration import (
    Registration,
    check_registration,
    make_registration,
    resolve_target,
)
from fake_params import FocalLossParams
from pydantic import BaseModel


class NotParams(BaseModel):
    x: int = 1


class ReservedParams(Params):
    """Params with fields a config reads as the component id and its weights."""

    type: str = "a"
    weights: float = 1.0


def _reg(
    name: str = "focal",
    target: Any = "fake_plugins:FocalLoss",
    params: Any = FocalLossParams,
    doc: str | None = None,
) -> Registration:
    return Registration("fake", "loss", name, target, params, doc)


def _register(target: Any, params: Any = None, name: str = "focal") -> Registration:
    """Call make_registration the way the host's ``register`` closure does."""
    return make_registration("fake", "loss", name, target, params)


def test_a_good_registration_has_no_problem() -> None:
    assert check_registration(_reg()) == []
    assert check_registration(_reg(params=EmptyParams, doc="Explain it.")) == []


def test_check_registration_returns_every_problem_at_once() -> None:
    problems = check_registration(_reg("Bad.Name", "fake_plugins.FocalLoss", params=NotParams))
    assert len(problems) == 3, problems
    name, target, params = problems
    assert "'Bad.Name'" in name and "bare lowercase snake_case" in name and "'fake.'" in name
    assert "'fake_plugins.FocalLoss'" in target and "'package.module:Class'" in target
    assert "NotParams" in params and "subclass of asklepios_sdk.Params" in params


@pytest.mark.parametrize(
    "target", ["fake_plugins", ":FocalLoss", "fake_plugins:", "fake plugins:FocalLoss", "a:b:c"]
)
def test_malformed_lazy_targets_are_named(target: str) -> None:
    (problem,) = check_registration(_reg(target=target))
    assert f"target {target!r} is not a lazy reference" in problem


def test_a_target_neither_string_nor_callable_is_refused() -> None:
    (problem,) = check_registration(_reg(target=42))
    assert "neither 'package.module:Class' nor a callable" in problem


def test_reserved_param_names_are_reported_with_the_fix() -> None:
    (problem,) = check_registration(_reg(params=ReservedParams))
    assert "ReservedParams" in problem and "['type', 'weights']" in problem
    assert "rename them" in problem


def test_unknown_kind_is_reported() -> None:
    reg = Registration("fake", "losses", "focal", "fake_plugins:FocalLoss", FocalLossParams)
    (problem,) = check_registration(reg)
    assert "unknown component kind 'losses'" in problem and "loss" in problem


def _no_doc(params: FocalLossParams, ctx: object) -> None:
    return None


def test_a_missing_doc_is_reported_for_callables_and_lazy_targets(tmp_path: Path) -> None:
    (problem,) = check_registration(_reg(target=_no_doc))
    assert "no one-line doc" in problem and "_no_doc" in problem
    assert check_registration(_reg(target=_no_doc, doc="Build nothing.")) == []
    (problem,) = check_registration(_reg(target="fake_plugins:NoSuchClass"))
    assert "no one-line doc" in problem and "fake_plugins:NoSuchClass" in problem
    assert check_registration(_reg(target="fake_plugins:NoSuchClass"), read_doc=False) == []


def test_missing_params_default_to_empty_params() -> None:
    reg = Registration("fake", "loss", "focal", "fake_plugins:FocalLoss")
    assert reg.params_model is EmptyParams
    assert reg.component_id == "fake.focal"


@pytest.fixture
def lazy_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A package on ``sys.path`` whose ``heavy`` module cannot even be imported."""
    name = f"lazy_pkg_{tmp_path.name}".replace("-", "_")
    package = tmp_path / name
    package.mkdir()
    (package / "__init__.py").write_text('"""A light package."""\n')
    (package / "heavy.py").write_text(
        textwrap.dedent(
            '''
            import a_module_that_does_not_exist  # importing this module would fail


            class Outer:
                """Hold an inner class."""

                class Inner:
                    """Compute something heavy.

                    More lines that are not the one-line doc.
                    """


            def build_thing(params, ctx):
                """Build the thing from a factory function."""
            '''
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    for module in [m for m in sys.modules if m == name or m.startswith(f"{name}.")]:
        del sys.modules[module]


def test_read_doc_reads_a_lazy_target_from_source_without_importing_it(lazy_package: str) -> None:
    reg = _reg(target=f"{lazy_package}.heavy:Outer.Inner")
    assert reg.read_doc() == "Compute something heavy."
    assert _reg(target=f"{lazy_package}.heavy:build_thing").read_doc() == (
        "Build the thing from a factory function."
    )
    assert check_registration(reg) == []
    assert f"{lazy_package}.heavy" not in sys.modules
    assert lazy_package in sys.modules  # find_spec imports the parents: they must stay light
    assert _reg(target=f"{lazy_package}.heavy:Outer", doc="  Given.\n\nmore").read_doc() == "Given."


def test_resolve_target_imports_and_walks_dotted_names(lazy_package: str) -> None:
    from fake_plugins import FocalLoss

    assert resolve_target("fake_plugins:FocalLoss") is FocalLoss
    assert resolve_target("asklepios_sdk.registration:Registration.read_doc") is (
        Registration.read_doc
    )
    with pytest.raises(ModuleNotFoundError, match="no_such_module"):
        resolve_target("no_such_module:Thing")
    with pytest.raises(
        AttributeError, match=re.escape("module 'fake_plugins' has no attribute 'Nope.x'")
    ):
        resolve_target("fake_plugins:Nope.x")
    with pytest.raises(ModuleNotFoundError, match="a_module_that_does_not_exist"):
        resolve_target(f"{lazy_package}.heavy:Outer")  # the module's own import error, unchanged


def test_registration_resolve_returns_the_factory() -> None:
    from fake_plugins import FocalLoss

    assert _reg().resolve() is FocalLoss
    assert _reg(target=_no_doc).resolve() is _no_doc
    assert _reg(target=_no_doc).target_path == f"{__name__}:_no_doc"


def test_a_class_target_warns_with_the_lazy_reference_to_write() -> None:
    from fake_plugins import FocalLoss

    with pytest.warns(AsklepiosDeprecationWarning) as caught:
        reg = _register(FocalLoss, FocalLossParams)
    (warning,) = caught
    message = str(warning.message)
    assert "plugin 'fake' registering loss 'focal'" in message
    assert "'fake_plugins:FocalLoss'" in message and "asklepios-sdk 0.3" in message
    assert warning.filename == __file__  # points at the plugin's register(...) call
    assert reg.target is FocalLoss and reg.resolve() is FocalLoss  # it still works


def test_omitted_params_warn_and_name_empty_params() -> None:
    with pytest.warns(AsklepiosDeprecationWarning, match="EmptyParams") as caught:
        reg = _register("fake_plugins:FocalLoss")
    assert len(caught) == 1 and "asklepios-sdk 0.3" in str(caught[0].message)
    assert reg.params_model is EmptyParams


def test_both_deprecated_forms_warn_twice() -> None:
    from fake_plugins import FocalLoss

    with pytest.warns(AsklepiosDeprecationWarning) as caught:
        _register(FocalLoss)
    assert len(caught) == 2


def test_no_warning_for_a_lazy_target_a_function_or_a_main_class() -> None:
    main_class = type("Scripted", (), {"__module__": "__main__", "__doc__": "Run in a notebook."})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _register("fake_plugins:FocalLoss", FocalLossParams)
        _register(_no_doc, FocalLossParams)
        reg = _register(main_class, EmptyParams)
    assert reg.target_path == "__main__:Scripted" and reg.read_doc() == "Run in a notebook."
