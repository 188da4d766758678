"""Discovery, isolation, strict mode, lazy loading and the hook relay of ``asklepios.plugins``."""

from __future__ import annotations

import sys

import pytest
from asklepios.errors import (
    BuildError,
    DuplicatePluginError,
    IncompatiblePluginError,
    PluginDisabledError,
    PluginError,
    PluginLoadError,
    UnknownPluginError,
)
from asklepios.plugins import (
    DISABLE_ENV,
    STRICT_ENV,
    PluginHost,
    PluginStatus,
    get_host,
    is_strict,
    reset_host,
)
from asklepios_sdk import BuildContext, EmptyParams, hookimpl
from asklepios_sdk.errors import AsklepiosDeprecationWarning

GOOD_HOOKS = """
from asklepios_sdk import hookimpl

@hookimpl
def register_losses(register):
    from {package}.family import MakeParams
    register("thing", "{package}.family:make", MakeParams)

@hookimpl
def step_end(run, step, losses):
    pass
"""

FAMILY = """
from asklepios_sdk import Params

class MakeParams(Params):
    scale: float = 1.0

def make(params, ctx):
    \"\"\"Make a thing scaled by ``scale``.\"\"\"
    return ("thing", params.scale)
"""


def _good(site, plugin_id="good", **kwargs):
    package = f"fake_{plugin_id}_pkg_{len(site.packages)}"
    return site.add(
        plugin_id,
        GOOD_HOOKS.format(package=package),
        package=package,
        extra_modules={"family": FAMILY},
        **kwargs,
    )


def test_index_reads_distribution_metadata_without_importing(fake_site):
    module = _good(fake_site, version="0.3.1")
    host = fake_site.host()
    info = host.info("good")
    assert (info.distribution, info.version, info.module) == ("asklepios-good", "0.3.1", module)
    assert info.core_range == ">=0.2,<0.3"
    assert info.sdk_range == ">=0.2,<0.3"
    assert info.location == str(fake_site.root)
    assert info.status == PluginStatus.NOT_LOADED
    assert module not in sys.modules
    assert module.rpartition(".")[0] not in sys.modules


def test_activation_is_lazy_and_per_plugin(fake_site):
    first = _good(fake_site, "first")
    second = _good(fake_site, "second")
    host = fake_site.host()
    entry = host.registry.get("loss", "first.thing")
    assert entry.plugin_id == "first" and entry.plugin_version == "0.1.0"
    assert first in sys.modules
    assert second not in sys.modules
    assert host.info("first").components == {"loss": 1}
    assert host.info("first").import_seconds is not None


def test_import_error_is_recorded_and_only_a_user_of_it_fails(fake_site):
    fake_site.add("broken", "import not_a_real_module_xyz\n")
    _good(fake_site)
    host = fake_site.host()
    assert host.registry.get("loss", "good.thing").id == "good.thing"
    info = host.activate("broken")
    assert info.status == PluginStatus.FAILED
    assert "not_a_real_module_xyz" in info.error
    assert "install the missing module" in info.fix
    with pytest.raises(PluginLoadError, match=r"asklepios-broken 0\.1\.0.*not_a_real_module_xyz"):
        host.registry.get("loss", "broken.anything")


def test_raising_registration_hook_keeps_none_of_its_components(fake_site):
    fake_site.add(
        "raiser",
        """
        from asklepios_sdk import hookimpl

        @hookimpl
        def register_losses(register):
            register("fine", lambda p, c: None, EmptyParams)

        @hookimpl
        def register_backbones(register):
            raise RuntimeError("boom in hook")
        """,
    )
    host = fake_site.host()
    info = host.activate("raiser")
    assert info.status == PluginStatus.FAILED
    assert "RuntimeError: boom in hook" in info.error
    assert host.registry.entries("loss") == []
    assert "raiser" not in [name for name, _ in host.plugin_manager.list_name_plugin()]


def test_incompatible_range_is_detected_before_import(fake_site):
    module = _good(fake_site, "old", version="0.3", requires=("asklepios<0.0.5",))
    host = fake_site.host()
    info = host.info("old")
    assert info.status == PluginStatus.INCOMPATIBLE
    assert info.error.startswith("asklepios-old 0.3 requires asklepios<0.0.5; you have ")
    assert "--disable old" in info.fix
    with pytest.raises(IncompatiblePluginError, match=r"requires asklepios<0\.0\.5"):
        host.require("old")
    assert module not in sys.modules


def test_incompatible_sdk_range_is_detected(fake_site):
    _good(fake_site, "newsdk", requires=("asklepios-sdk>=9",))
    assert "requires asklepios-sdk>=9" in fake_site.host().info("newsdk").error


def test_requirement_under_an_extra_marker_is_not_a_core_range(fake_site):
    _good(fake_site, "extra", requires=('asklepios<0.0.1; extra == "dev"',))
    assert fake_site.host().info("extra").core_range is None


def test_duplicate_plugin_ids_name_both_distributions(fake_site):
    _good(fake_site, "twin", dist="asklepios-twin-a")
    _good(fake_site, "twin", dist="asklepios-twin-b")
    host = fake_site.host()
    info = host.info("twin")
    assert info.status == PluginStatus.DUPLICATE
    assert "asklepios-twin-a" in info.error and "asklepios-twin-b" in info.error
    with pytest.raises(DuplicatePluginError, match=r"twin-a.*twin-b|twin-b.*twin-a"):
        host.require("twin")
    with pytest.raises(DuplicatePluginError, match="declared by two distributions"):
        _ = fake_site.host(strict=True).index


def test_strict_mode_reraises_with_the_cause_chained(fake_site):
    fake_site.add("broken", "raise ValueError('bad module')\n")
    host = fake_site.host(strict=True)
    with pytest.raises(PluginLoadError, match="bad module") as caught:
        host.activate("broken")
    assert isinstance(caught.value.__cause__, ValueError)


def test_strict_switch_reads_the_environment(monkeypatch):
    monkeypatch.setenv(STRICT_ENV, "1")
    assert is_strict() and PluginHost(discover=False).strict
    monkeypatch.setenv(STRICT_ENV, "0")
    assert not is_strict()
    assert is_strict(True)


def test_disabled_plugins_are_never_imported(fake_site, monkeypatch):
    first = _good(fake_site, "first")
    second = _good(fake_site, "second")
    monkeypatch.setenv(DISABLE_ENV, "first")
    host = fake_site.host(disabled=["second"], strict=True)
    assert host.info("first").status == PluginStatus.DISABLED
    assert host.info("second").status == PluginStatus.DISABLED
    assert host.activate_all() == []
    with pytest.raises(PluginDisabledError, match="--disable"):
        host.require("second")
    assert first not in sys.modules and second not in sys.modules


def test_misspelled_hook_fails_through_check_pending(make_host, plugin_module):
    @hookimpl
    def register_loss(register):  # the spec is register_losses
        raise AssertionError("never called")

    host = make_host({"typo": plugin_module("typo", register_loss=register_loss)})
    info = host.activate("typo")
    assert info.status == PluginStatus.FAILED
    assert "register_loss" in info.error and "spelling" in info.fix


def test_hook_with_an_unknown_argument_is_rejected(make_host, plugin_module):
    @hookimpl
    def register_losses(register, colour):
        raise AssertionError("never called")

    host = make_host({"badarg": plugin_module("badarg", register_losses=register_losses)})
    info = host.activate("badarg")
    assert info.status == PluginStatus.FAILED
    assert "colour" in info.error


def test_unknown_plugin_id_suggests_installed_ones(make_host, plugin_module):
    host = make_host({"longtail": plugin_module("lt")})
    with pytest.raises(UnknownPluginError, match="Did you mean 'longtail'"):
        host.info("longtial")


def test_each_plugin_gets_its_own_register(make_host, plugin_module):
    seen = {}

    def hook_for(plugin_id):
        @hookimpl
        def register_losses(register):
            seen[plugin_id] = register
            register("same_name", lambda p, c: plugin_id, EmptyParams)

        return plugin_module(plugin_id, register_losses=register_losses)

    host = make_host({"one": hook_for("one"), "two": hook_for("two")})
    host.activate_all()
    assert seen["one"] is not seen["two"]
    ids = [e.id for e in host.registry.entries("loss")]
    assert ids == ["one.same_name", "two.same_name"]
    assert [e.plugin_id for e in host.registry.entries("loss")] == ["one", "two"]


def test_lifecycle_hooks_and_has_impl(make_host, plugin_module):
    calls = []

    @hookimpl
    def run_start(run):
        calls.append(("run_start", run))

    @hookimpl
    def step_end(run, step, losses):
        calls.append(("step_end", step, dict(losses)))

    host = make_host({"logger": plugin_module("logger", run_start=run_start, step_end=step_end)})
    assert not host.has_impl("step_end")
    host.load_all()
    assert host.has_impl("step_end") and host.has_impl("run_start")
    assert not host.has_impl("epoch_end")
    assert not host.has_impl("no_such_hook")
    host.hook.run_start(run="R")
    host.hook.step_end(run="R", step=3, losses={"total": 1.0})
    assert calls == [("run_start", "R"), ("step_end", 3, {"total": 1.0})]


def test_record_metadata_collects_every_result(make_host, plugin_module):
    @hookimpl
    def record_metadata(run):
        return {"git": "abc"}

    host = make_host({"prov": plugin_module("prov", record_metadata=record_metadata)})
    host.load_all()
    assert host.hook.record_metadata(run=None) == [{"git": "abc"}]


def test_core_builtins_are_plugin_core():
    host = PluginHost(discover=False)
    info = host.info("core")
    assert info.builtin and info.distribution == "asklepios"
    assert info.module == "asklepios.builtins.hooks"


def test_missing_builtins_module_is_a_clear_failure(monkeypatch):
    from asklepios.plugins import discovery

    monkeypatch.setattr(discovery, "BUILTINS_MODULE", "asklepios.no_such_builtins.hooks")
    host = PluginHost(discover=False, strict=False)
    info = host.activate("core")
    assert info.status == PluginStatus.FAILED
    assert "asklepios.no_such_builtins" in info.error


def test_get_host_is_shared_and_replaced_on_new_settings():
    first = get_host()
    assert get_host() is first
    strict = get_host(strict=not first.strict)
    assert strict is not first and get_host() is strict
    reset_host()
    assert get_host() is not strict


def test_in_memory_plugin_ids_are_validated(make_host, plugin_module):
    host = make_host({})
    with pytest.raises(PluginLoadError, match="invalid plugin id"):
        host.add_plugin(plugin_module("x"), "Bad.Id")
    host.add_plugin(plugin_module("x"), "ok")
    with pytest.raises(DuplicatePluginError):
        host.add_plugin(plugin_module("y"), "ok")


def test_describe_lists_versions(make_host, plugin_module):
    data = make_host({"one": plugin_module("one")}).describe()
    assert data["plugins"]["one"]["version"] == "1.2.3"
    assert "asklepios" in data


def test_caller_resolves_hooks_into_plain_functions(make_host, plugin_module):
    calls = []

    @hookimpl
    def step_end(run, step):
        calls.append(("a", step))

    @hookimpl
    def other_step_end(step, losses):
        calls.append(("b", step, dict(losses)))
        return "b"

    @hookimpl(wrapper=True)
    def wrapped_epoch_end(epoch):
        calls.append(("wrap", epoch))
        return (yield)

    host = make_host(
        {
            "a": plugin_module("a", step_end=step_end),
            "b": plugin_module("b", step_end=other_step_end, epoch_end=wrapped_epoch_end),
        }
    )
    assert host.caller("step_end") is None
    host.load("a")
    one = host.caller("step_end")
    assert one(run=None, step=1, losses={}) == []
    host.load("b")
    both = host.caller("step_end")
    relay = host.hook.step_end(run=None, step=2, losses={"t": 1.0})
    assert both(run=None, step=2, losses={"t": 1.0}) == relay == ["b"]
    assert calls == [("a", 1), ("b", 2, {"t": 1.0}), ("a", 2), ("b", 2, {"t": 1.0}), ("a", 2)]
    assert host.caller("epoch_end") is host.hook.epoch_end
    with pytest.raises(PluginError, match="no hook named"):
        host.caller("step_ends")


def test_distribution_added_later_in_the_same_process_loads(fake_site):
    _good(fake_site, "early")
    assert fake_site.host().registry.get("loss", "early.thing").id == "early.thing"
    _good(fake_site, "late")
    host = fake_site.host()
    assert host.registry.get("loss", "late.thing").plugin_id == "late"


def test_hook_tracing_writes_every_call(make_host, plugin_module, monkeypatch, capsys):
    @hookimpl
    def epoch_start(run, epoch):
        return None

    monkeypatch.setenv("ASKLEPIOS_TRACE_HOOKS", "1")
    host = make_host({"tr": plugin_module("tr", epoch_start=epoch_start)})
    host.load_all()
    host.hook.epoch_start(run=None, epoch=4)
    assert "epoch_start" in capsys.readouterr().err


LAZY_HOOKS = """
from asklepios_sdk import EmptyParams, hookimpl

@hookimpl
def register_losses(register):
    register("lazy", "{package}.heavy:HeavyLoss", EmptyParams)
    register("broken", "{package}.missing:Nothing", EmptyParams)
"""

HEAVY = """
import sys

sys.modules.setdefault("heavy_import_witness", sys)


class HeavyLoss:
    \"\"\"Stand in for a torch loss: importing this module is what registration must avoid.\"\"\"

    def __init__(self, params, ctx):
        self.seed = ctx.seed
"""


def test_registration_imports_no_target_until_build(fake_site):
    package = f"fake_lazy_pkg_{len(fake_site.packages)}"
    fake_site.add(
        "lazy",
        LAZY_HOOKS.format(package=package),
        package=package,
        extra_modules={"heavy": HEAVY},
    )
    sys.modules.pop("heavy_import_witness", None)
    host = PluginHost(strict=True)
    entry = host.registry.get("loss", "lazy.lazy")
    assert f"{package}.heavy" not in sys.modules and "heavy_import_witness" not in sys.modules
    assert entry.doc.startswith("Stand in for a torch loss")  # read from source
    assert f"{package}.heavy" not in sys.modules
    assert entry.target == f"{package}.heavy:HeavyLoss"
    built = entry.build({}, BuildContext(seed=5))
    assert built.seed == 5 and "heavy_import_witness" in sys.modules


def test_a_target_that_does_not_import_fails_at_build_naming_plugin_and_fix(fake_site):
    package = f"fake_lazy_pkg_{len(fake_site.packages)}"
    fake_site.add(
        "lazy", LAZY_HOOKS.format(package=package), package=package, extra_modules={"heavy": HEAVY}
    )
    host = PluginHost(strict=True)
    entry = host.registry.get("loss", "lazy.broken")  # registering it imported nothing
    with pytest.raises(BuildError) as caught:
        entry.build({}, BuildContext(), where="loss")
    text = str(caught.value)
    assert "loss 'lazy.broken' at loss (plugin lazy 0.1.0)" in text
    assert f"'{package}.missing:Nothing'" in text and "Fix: install the missing module" in text


def test_the_class_form_still_registers_with_a_deprecation_warning(make_host, plugin_module):
    from asklepios.builtins.losses import CrossEntropyLoss
    from asklepios.builtins.params import CrossEntropyLossParams

    @hookimpl
    def register_losses(register):
        register("old", CrossEntropyLoss, CrossEntropyLossParams)

    host = make_host({"old": plugin_module("old", register_losses=register_losses)})
    with pytest.warns(
        AsklepiosDeprecationWarning, match="asklepios.builtins.losses:CrossEntropyLoss"
    ):
        entry = host.registry.get("loss", "old.old")
    assert entry.target == "asklepios.builtins.losses:CrossEntropyLoss"
    assert entry.doc


def test_omitted_params_still_register_with_a_deprecation_warning(make_host, plugin_module):
    @hookimpl
    def register_losses(register):
        register("bare", "asklepios.builtins.losses:CrossEntropyLoss")

    host = make_host({"bare": plugin_module("bare", register_losses=register_losses)})
    with pytest.warns(AsklepiosDeprecationWarning, match="pass asklepios_sdk.EmptyParams"):
        entry = host.registry.get("loss", "bare.bare")
    assert entry.params_model is EmptyParams
