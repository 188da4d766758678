"""Registration, lookup, suggestions and building through ``asklepios.registry``."""

from __future__ import annotations

import pytest
from asklepios.errors import (
    AmbiguousComponentError,
    BuildError,
    DuplicateComponentError,
    ParamsError,
    PluginLoadError,
    RegistryError,
    UnknownComponentError,
)
from asklepios.plugins import PluginStatus, get_component, list_components, set_host
from asklepios.registry import KINDS
from asklepios_sdk import BuildContext, ComponentError, EmptyParams, Params, hookimpl
from pydantic import BaseModel, Field


class FocalParams(Params):
    gamma: float = Field(2.0, ge=0, description="Focusing parameter.")
    alpha: float | None = None


def focal(params: FocalParams, ctx: BuildContext) -> tuple[str, float, int]:
    """Compute the focal loss (test double)."""
    return ("focal", params.gamma, ctx.seed)


def plain(params, ctx):
    """Build a plain thing."""
    return "plain"


@pytest.fixture
def host(make_host, plugin_module):
    @hookimpl
    def register_losses(register):
        register("focal", focal, FocalParams)
        register("plain", plain, EmptyParams)

    @hookimpl
    def register_samplers(register):
        register("balanced", plain, EmptyParams, doc="Draw classes uniformly.")

    @hookimpl
    def other_losses(register):
        register("focal", plain, EmptyParams)

    one = plugin_module("one", register_losses=register_losses, register_samplers=register_samplers)
    other = plugin_module("other", register_losses=other_losses)
    return make_host({"one": one, "other": other})


def test_kinds_are_the_registration_hooks():
    assert KINDS == (
        "backbone",
        "loss",
        "augmentation",
        "adapter",
        "evaluator",
        "sampler",
        "dataset",
        "trainer",
    )


def test_full_id_activates_only_its_plugin(host):
    entry = host.registry.get("loss", "one.focal")
    assert (entry.id, entry.kind, entry.name, entry.plugin_id) == (
        "one.focal",
        "loss",
        "focal",
        "one",
    )
    assert entry.plugin_version == "1.2.3"
    assert entry.params_model is FocalParams
    assert entry.doc == "Compute the focal loss (test double)."
    assert host.info("other").status == PluginStatus.NOT_LOADED


def test_doc_and_params_defaults(host):
    assert host.registry.get("sampler", "one.balanced").doc == "Draw classes uniformly."
    assert host.registry.get("loss", "one.plain").params_model is EmptyParams


def test_bare_name_resolves_when_unique(host):
    assert host.registry.get("sampler", "balanced").id == "one.balanced"
    assert host.registry.resolve_id("loss", "plain") == "one.plain"


def test_ambiguous_bare_name_lists_full_ids(host):
    with pytest.raises(AmbiguousComponentError, match=r"one\.focal, other\.focal"):
        host.registry.get("loss", "focal")


def test_unknown_id_suggests_and_lists_installed(host):
    with pytest.raises(UnknownComponentError) as caught:
        host.registry.get("loss", "one.focl")
    text = str(caught.value)
    assert "Did you mean 'one.focal'" in text
    assert "Installed loss components: one.focal, one.plain, other.focal" in text


def test_unknown_plugin_prefix(host):
    with pytest.raises(UnknownComponentError, match="no plugin 'onee' is installed"):
        host.registry.get("loss", "onee.focal")


def test_unknown_kind(host):
    with pytest.raises(RegistryError, match="Did you mean 'loss'"):
        host.registry.get("losses", "one.focal")


def test_failed_plugin_is_named_instead_of_unknown_id(make_host, plugin_module):
    @hookimpl
    def register_losses(register):
        raise ImportError("No module named 'fancy_dep'")

    host = make_host({"fancy": plugin_module("fancy", register_losses=register_losses)})
    with pytest.raises(PluginLoadError) as caught:
        host.registry.get("loss", "fancy.thing")
    text = str(caught.value)
    assert "loss 'fancy.thing' comes from plugin 'fancy' (asklepios-fancy 1.2.3)" in text
    assert "fancy_dep" in text
    with pytest.raises(UnknownComponentError, match="did not load: plugin 'fancy'"):
        host.registry.get("loss", "thing")


def test_duplicate_name_in_one_plugin_names_both_factories(make_host, plugin_module):
    def first(params, ctx):
        return 1

    def second(params, ctx):
        return 2

    @hookimpl
    def register_losses(register):
        register("twice", first, EmptyParams)
        register("twice", second, EmptyParams)

    host = make_host({"dup": plugin_module("dup", register_losses=register_losses)})
    info = host.activate("dup")
    assert info.status == PluginStatus.FAILED
    assert "first" in info.error and "second" in info.error
    assert isinstance(info.cause, DuplicateComponentError)


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("Bad.Name", EmptyParams, "bare lowercase snake_case"),
        ("ok", dict, "is not a subclass of asklepios_sdk.Params"),
        ("ok2", BaseModel, "is not a subclass of asklepios_sdk.Params"),
    ],
)
def test_register_validates_its_arguments(make_host, plugin_module, name, params, message):
    @hookimpl
    def register_losses(register):
        register(name, plain, params)

    host = make_host({"reg": plugin_module("reg", register_losses=register_losses)})
    info = host.activate("reg")
    assert message in info.error


def test_build_validates_params_and_passes_ctx(host):
    entry = host.registry.get("loss", "one.focal")
    assert entry.build({"gamma": 3}, BuildContext(seed=7)) == ("focal", 3.0, 7)
    assert entry.build(FocalParams(gamma=1), BuildContext()) == ("focal", 1.0, 0)
    with pytest.raises(ParamsError) as caught:
        entry.build({"gama": 1, "alpha": "x"}, BuildContext(), where="loss")
    text = str(caught.value)
    assert "loss 'one.focal' (plugin one 1.2.3)" in text
    assert "loss.gama: unknown parameter" in text
    assert "loss.alpha: " in text and "(got 'x')" in text
    assert isinstance(caught.value, ComponentError)


def test_build_wraps_factory_errors_with_the_cause(make_host, plugin_module):
    def exploding(params, ctx):
        raise ValueError("bad shape")

    @hookimpl
    def register_backbones(register):
        register("boom", exploding, EmptyParams)

    host = make_host({"x": plugin_module("x", register_backbones=register_backbones)})
    entry = host.registry.get("backbone", "x.boom")
    with pytest.raises(BuildError, match=r"model\.backbone \(plugin x 1\.2\.3\).*bad shape") as err:
        entry.build({}, BuildContext(), where="model.backbone")
    assert isinstance(err.value.__cause__, ValueError)


def test_list_with_kind_and_pattern(host):
    assert [e.id for e in host.registry.list("loss")] == ["one.focal", "one.plain", "other.focal"]
    assert [e.id for e in host.registry.list(None, "*focal")] == ["one.focal", "other.focal"]
    assert [e.id for e in host.registry.list(None, "bal")] == ["one.balanced"]


def test_module_functions_use_the_process_host(host):
    set_host(host)
    assert get_component("loss", "one.plain").id == "one.plain"
    assert [e.id for e in list_components("sampler")] == ["one.balanced"]


def test_registry_add_refuses_a_taken_id(host):
    entry = host.registry.get("loss", "one.focal")
    with pytest.raises(DuplicateComponentError, match="registered twice"):
        host.registry.add(entry)
