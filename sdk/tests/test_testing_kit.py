"""The conformance kit: a good plugin passes every rule; each breaker fails its rule, by name."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from asklepios_sdk import BuildContext, EmptyParams, LossOutput, Params, hookimpl
from asklepios_sdk.testing import (
    RULES,
    Conformance,
    Override,
    Report,
    check_plugin,
    survival_facts,
)
from fake_plugins import (
    GOOD,
    Accuracy,
    FocalLoss,
    FocalLossParams,
    Jitter,
    LinearBackbone,
    LinearBackboneParams,
    NoiseDataset,
    PlainTrainer,
    ShuffleSampler,
    good_plugin,
    plugin_with,
)
from pydantic import BaseModel, ConfigDict
from torch import Tensor

pytest_plugins = ["pytester"]  # runs the kit as a plugin's suite would


def _check(kind: str, name: str, factory: Any, params: Any = EmptyParams, **kwargs: Any) -> Report:
    return check_plugin(
        Conformance(plugin_with({kind: [(name, factory, params)]}), plugin_id="fake", **kwargs)
    )


def _assert_fails(report: Report, component: str | None, rule: str, *fragments: str) -> str:
    outcome = report.failed(component, rule)
    failed = [(o.check.name, o.message) for o in report.failures]
    assert outcome is not None, f"expected {component}::{rule} to fail; failures: {failed}"
    assert f"breaks rule '{rule}'" in outcome.message
    if component is not None:
        assert outcome.message.startswith(component)
    for fragment in fragments:
        assert fragment in outcome.message
    return outcome.message


def test_good_plugin_passes_every_rule_of_every_kind() -> None:
    report = check_plugin(Conformance(good_plugin(), plugin_id="fake"))
    assert report.failures == []
    checked = {(o.check.component, o.check.rule) for o in report.outcomes if o.status == "passed"}
    kinds_rules = {rule for _, rule in checked}
    in_memory = {"import-light", "registration-light", "evaluator-ddp"}  # need a hook module
    assert kinds_rules == set(RULES) - in_memory
    names = {f"fake.{name}" for entries in GOOD.values() for name, _, _ in entries}
    assert {c for c, _ in checked} - {None} == names
    assert max(report.seconds_by_component().values()) < 30  # "seconds per component"


# -- registration, build, params, pickle -------------------------------------------------------


class NotParams(BaseModel):
    x: int = 1


def _undocumented(params: Any, ctx: BuildContext) -> Any:
    return FocalLoss(FocalLossParams(), ctx)


def test_registration_rule_names_bad_name_params_and_missing_doc() -> None:
    report = _check("loss", "Bad.Name", FocalLoss, NotParams)
    _assert_fails(report, "fake.Bad.Name", "registration", "snake_case", "subclass of")
    report = _check("loss", "nodoc", _undocumented, FocalLossParams)
    _assert_fails(report, "fake.nodoc", "registration", "one-line doc")


def test_duplicate_registration_names_both_factories() -> None:
    plugin = plugin_with(
        {"loss": [("focal", FocalLoss, FocalLossParams), ("focal", Jitter, EmptyParams)]}
    )
    report = check_plugin(Conformance(plugin, plugin_id="fake"))
    assert any("registered twice" in o.message and "Jitter" in o.message for o in report.failures)


class RequiredParams(Params):
    width: int


def _raising(params: Any, ctx: BuildContext) -> Any:
    """Fail to build."""
    raise RuntimeError("no GPU here")


def _wrong_type(params: Any, ctx: BuildContext) -> Any:
    """Return something that is not a loss."""
    return object()


def test_build_rule_reports_factory_error_wrong_type_and_required_params() -> None:
    report = _check("loss", "boom", _raising)
    _assert_fails(report, "fake.boom", "build", "RuntimeError: no GPU here")
    skipped = [o for o in report.outcomes if o.status == "skipped" and o.check.component]
    assert {o.check.rule for o in skipped} >= {"loss-output", "pickle"}
    _assert_fails(_check("loss", "odd", _wrong_type), "fake.odd", "build", "must be an nn.Module")
    report = _check("loss", "req", FocalLoss, RequiredParams)
    _assert_fails(report, "fake.req", "build", "Override(params=...)")


def test_override_params_make_required_params_buildable() -> None:
    def factory(params: RequiredParams, ctx: BuildContext) -> LinearBackbone:
        """Build a linear backbone of the given width."""
        return LinearBackbone(LinearBackboneParams(hidden=params.width), ctx)

    overrides = {"wide": Override(params={"width": 3})}
    report = _check("backbone", "wide", factory, RequiredParams, overrides=overrides)
    assert report.failures == []


class LooseParams(FocalLossParams):
    model_config = ConfigDict(extra="allow")


class Opaque:
    pass


class OpaqueParams(FocalLossParams):
    model_config = ConfigDict(arbitrary_types_allowed=True)
    thing: Opaque = Opaque()


def test_params_schema_rule_catches_extra_allowed_and_unexportable_fields() -> None:
    report = _check("loss", "loose", FocalLoss, LooseParams)
    _assert_fails(report, "fake.loose", "params-schema", "extra='allow'")
    report = _check("loss", "opaque", FocalLoss, OpaqueParams)
    _assert_fails(report, "fake.opaque", "params-schema", "model_json_schema")


class ShadowingParams(FocalLossParams):
    weights: tuple[float, ...] = (1.0, 2.0)


def test_registration_rule_catches_fields_a_config_cannot_set() -> None:
    report = _check("loss", "shadowing", FocalLoss, ShadowingParams)
    _assert_fails(report, "fake.shadowing", "registration", "['weights']", "rename them")


class LambdaLoss(FocalLoss):
    """Keep a lambda, which does not pickle."""

    def __init__(self, params: Any, ctx: BuildContext) -> None:
        super().__init__(FocalLossParams(), ctx)
        self.fn = lambda x: x


def test_pickle_rule() -> None:
    _assert_fails(_check("loss", "lam", LambdaLoss), "fake.lam", "pickle", "does not pickle")


# -- models and losses -------------------------------------------------------------------------


class TensorBackbone(LinearBackbone):
    """Return a bare tensor."""

    def __init__(self, params: Any, ctx: BuildContext) -> None:
        super().__init__(LinearBackboneParams(), ctx)

    def forward(self, batch: dict[str, Any]) -> Any:
        return super().forward(batch)["logits"]


class NoGradBackbone(TensorBackbone):
    """Run forward under no_grad."""

    def forward(self, batch: dict[str, Any]) -> Any:
        with torch.no_grad():
            return LinearBackbone.forward(self, batch)


class WrongWidthBackbone(TensorBackbone):
    """Declare a feature width it does not have."""

    feature_dim = 99

    def __init__(self, params: Any, ctx: BuildContext) -> None:
        super().__init__(params, ctx)
        self.feature_dim = 99

    def forward(self, batch: dict[str, Any]) -> Any:
        return LinearBackbone.forward(self, batch)


def test_forward_backward_rule() -> None:
    report = _check("backbone", "t", TensorBackbone)
    _assert_fails(report, "fake.t", "forward-backward", "not a dict")
    report = _check("backbone", "ng", NoGradBackbone)
    _assert_fails(report, "fake.ng", "forward-backward", "no_grad")
    report = _check("backbone", "w", WrongWidthBackbone)
    _assert_fails(report, "fake.w", "forward-backward", "feature_dim is 99")


class NanLoss(FocalLoss):
    """Return NaN."""

    def __init__(self, params: Any, ctx: BuildContext) -> None:
        super().__init__(FocalLossParams(), ctx)

    def forward(self, outputs: Mapping[str, Tensor], batch: dict[str, Any]) -> LossOutput:
        total = outputs["logits"].sum() * float("nan")
        return LossOutput(total, {"nan": total})


class NoTermsLoss(NanLoss):
    """Name no term."""

    def forward(self, outputs: Mapping[str, Tensor], batch: dict[str, Any]) -> LossOutput:
        return LossOutput(outputs["logits"].logsumexp(-1).mean())


class VectorLoss(NanLoss):
    """Return a per-sample vector."""

    def forward(self, outputs: Mapping[str, Tensor], batch: dict[str, Any]) -> LossOutput:
        value = outputs["logits"].logsumexp(-1)
        return LossOutput(value, {"v": value.mean()})


class DetachedLoss(NanLoss):
    """Return a constant."""

    def forward(self, outputs: Mapping[str, Tensor], batch: dict[str, Any]) -> LossOutput:
        value = outputs["logits"].detach().sum()
        return LossOutput(value, {"v": value})


@pytest.mark.parametrize(
    ("factory", "fragment"),
    [
        (NanLoss, "not finite"),
        (NoTermsLoss, "terms is empty"),
        (VectorLoss, "0-dim"),
        (DetachedLoss, "does not require grad"),
    ],
)
def test_loss_output_rule(factory: Any, fragment: str) -> None:
    _assert_fails(_check("loss", "bad", factory), "fake.bad", "loss-output", fragment)


# -- augmentations, samplers -------------------------------------------------------------------


class UnseededJitter(Jitter):
    """Draw noise from a fresh unseeded generator."""

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        rng = np.random.default_rng()
        noise = torch.from_numpy(rng.standard_normal(tuple(sample["image"].shape))).float()
        return {**sample, "image": sample["image"] + noise}


class SilentCrop(Jitter):
    """Crop without declaring it."""

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        return {**sample, "image": sample["image"][:, 2:, 2:]}


class DeclaredCrop(SilentCrop):
    """Crop and declare the new shape."""

    def output_shapes(self, shapes: Mapping[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
        c, h, w = shapes["image"]
        return {**shapes, "image": (c, h - 2, w - 2)}


def test_augmentation_rules() -> None:
    report = _check("augmentation", "u", UnseededJitter)
    _assert_fails(report, "fake.u", "augmentation-determinism", "same seed")
    report = _check("augmentation", "c", SilentCrop)
    _assert_fails(report, "fake.c", "augmentation-shapes", "output_shapes")
    assert _check("augmentation", "d", DeclaredCrop).failures == []


class OutOfRange(ShuffleSampler):
    """Yield one index too many."""

    def epoch_indices(self, epoch: int, generator: np.random.Generator) -> np.ndarray:
        return generator.permutation(self.num_samples) + 1


class StatefulSampler(ShuffleSampler):
    """Draw from a generator that advances with every iteration."""

    def __init__(self, params: Any, ctx: BuildContext) -> None:
        super().__init__(params, ctx)
        self.rng = np.random.default_rng(0)

    def epoch_indices(self, epoch: int, generator: np.random.Generator) -> np.ndarray:
        return self.rng.permutation(self.num_samples)


class RankSeeded(ShuffleSampler):
    """Shuffle per rank, so ranks overlap and miss samples."""

    def __iter__(self) -> Any:
        rng = np.random.default_rng([self.seed, self.epoch, self.rank])
        return iter(rng.permutation(self.num_samples)[: len(self)].tolist())


def test_sampler_rules() -> None:
    report = _check("sampler", "o", OutOfRange)
    _assert_fails(report, "fake.o", "sampler-indices", "outside [0, 24)")
    report = _check("sampler", "s", StatefulSampler)
    _assert_fails(report, "fake.s", "sampler-epoch", "twice")
    report = _check("sampler", "r", RankSeeded)
    _assert_fails(report, "fake.r", "sampler-shards", "miss")


# -- evaluators, datasets, trainers ------------------------------------------------------------


class WrongKeys(Accuracy):
    """Declare a key it does not return."""

    output_keys = ("top5",)


class NoDirection(Accuracy):
    """Leave the direction undefined."""

    higher_is_better = None
    output_keys = ()


class Sticky(Accuracy):
    """Keep a count outside the metric states, so reset() misses it."""

    def __init__(self, params: Any, ctx: BuildContext) -> None:
        super().__init__(params, ctx)
        self.seen = 0

    def update(self, outputs: Mapping[str, Tensor], batch: dict[str, Any]) -> None:
        super().update(outputs, batch)
        self.seen += 1

    def compute(self) -> dict[str, Tensor]:
        return {"top1": self.correct / self.total + self.seen}


def test_evaluator_rules() -> None:
    _assert_fails(_check("evaluator", "k", WrongKeys), "fake.k", "evaluator-keys", "top5")
    _assert_fails(_check("evaluator", "n", NoDirection), "fake.n", "evaluator-keys", "direction")
    _assert_fails(_check("evaluator", "s", Sticky), "fake.s", "evaluator-reset", "after reset")


class LyingLabels(NoiseDataset):
    """Report labels that differ from the samples'."""

    def labels(self, name: str) -> np.ndarray:
        return 1 - super().labels(name)


class _BadCollate:
    """A collate that cannot batch what its split yields."""

    def __call__(self, samples: list[Any]) -> Any:
        raise ValueError("items differ in length")


class BadCollateSplits(NoiseDataset):
    """Splits that declare a collate which fails on their items."""

    def split(self, name: str) -> torch.utils.data.Dataset:
        split = super().split(name)
        split.collate_fn = _BadCollate()  # type: ignore[attr-defined]
        return split


class Idle(PlainTrainer):
    """Compute the loss and never step."""

    def train_step(self, step: Any, batch: dict[str, Any]) -> LossOutput:
        return step.loss(step.model(batch), batch)


class WeightedTrainer(PlainTrainer):
    """Step on batches that carry a per-sample weight."""

    def example_batch(self, ctx: BuildContext, batch_size: int = 4) -> dict[str, Any]:
        batch = super().example_batch(ctx, batch_size)
        return {**batch, "weight": torch.linspace(0.5, 1.5, batch_size)}


class WeightedCE(FocalLoss):
    """Cross-entropy weighted per sample by ``batch['weight']``."""

    def forward(self, outputs: Mapping[str, Tensor], batch: dict[str, Any]) -> LossOutput:
        ce = torch.nn.functional.cross_entropy(outputs["logits"], batch["label"], reduction="none")
        total = (batch["weight"] * ce).mean()
        return LossOutput(total, {"weighted_ce": total})


def test_trainer_declares_its_batch_and_suite_gives_its_loss() -> None:
    def loss(ctx: BuildContext) -> WeightedCE:
        return WeightedCE(FocalLossParams(), ctx)

    report = _check("trainer", "w", WeightedTrainer, overrides={"w": Override(loss=loss)})
    assert report.failures == []
    report = _check("trainer", "p", PlainTrainer, overrides={"p": Override(loss=loss)})
    _assert_fails(report, "fake.p", "trainer-step", "KeyError: 'weight'")


def test_dataset_and_trainer_rules() -> None:
    report = _check("dataset", "l", LyingLabels)
    _assert_fails(report, "fake.l", "dataset-splits", "labels('train')")
    report = _check("dataset", "c", BadCollateSplits)
    _assert_fails(report, "fake.c", "dataset-splits", "collate_fn", "items differ in length")
    _assert_fails(_check("trainer", "i", Idle), "fake.i", "trainer-step", "unchanged")


# -- overrides and skips -----------------------------------------------------------------------


def test_skip_with_reason_and_per_component_data() -> None:
    seen: list[BuildContext] = []

    def factory(params: Any, ctx: BuildContext) -> NanLoss:
        """Record the context and build a NaN loss."""
        seen.append(ctx)
        return NanLoss(params, ctx)

    reason = "survival loss, own tests"
    skip = {"loss-output": reason, "checkpoint-state": reason}
    override = Override(data=survival_facts(), skip=skip)
    report = _check("loss", "surv", factory, overrides={"fake.surv": override})
    assert report.failures == []
    skipped = [o for o in report.outcomes if o.status == "skipped" and o.check.component]
    assert [o.check.rule for o in skipped] == ["loss-output", "checkpoint-state"]
    assert "survival loss, own tests" in skipped[0].message
    assert seen and all(ctx.data.task == "survival" for ctx in seen)


def test_unknown_rule_in_skip_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown rule"):
        Override(skip={"loss-finite": "typo"})


# -- plugin-level rules ------------------------------------------------------------------------


class Misspelled:
    @hookimpl
    def register_loss(self, register: Any) -> None:
        register("focal", "fake_plugins:FocalLoss", FocalLossParams)


class Raising:
    @hookimpl
    def register_losses(self, register: Any) -> None:
        raise RuntimeError("registry exploded")


def test_hooks_rule_rejects_misspelled_and_raising_hooks() -> None:
    report = check_plugin(Conformance(Misspelled(), plugin_id="fake"))
    _assert_fails(report, None, "hooks", "register_loss")
    report = check_plugin(Conformance(Raising(), plugin_id="fake"))
    _assert_fails(report, None, "hooks", "registry exploded")


def test_without_the_core_installed_unknown_hooks_are_still_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "asklepios.hookspecs", None)  # import now raises ImportError
    report = check_plugin(Conformance(Misspelled(), plugin_id="fake"))
    _assert_fails(report, None, "hooks", "'register_loss' is not an asklepios hook")
    assert check_plugin(Conformance(good_plugin(), plugin_id="fake")).failures == []


_LIGHT_HOOKS = """
@hookimpl
def register_losses(register):
    from fake_params import FocalLossParams

    register("focal", "fake_plugins:FocalLoss", FocalLossParams)
"""


def _write_plugin(root: Path, name: str, header: str, hooks: str = _LIGHT_HOOKS) -> None:
    package = root / name
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "hooks.py").write_text(header + "from asklepios_sdk import hookimpl\n\n" + hooks)


@pytest.mark.slow
def test_evaluator_ddp_rule_compares_two_gloo_ranks_with_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "asklepios_ddpcheck_hooks.py").write_text(
        textwrap.dedent(
            """
            from asklepios_sdk import hookimpl


            @hookimpl
            def register_evaluators(register):
                from asklepios_sdk import EmptyParams

                register("acc", "fake_plugins:Accuracy", EmptyParams)
                register("max_acc", "fake_plugins:MaxReducedAccuracy", EmptyParams)
            """
        )
    )
    report = check_plugin(Conformance("asklepios_ddpcheck_hooks", plugin_id="ddp"))
    assert [o.check.name for o in report.failures] == ["ddp.max_acc::evaluator-ddp"]
    _assert_fails(report, "ddp.max_acc", "evaluator-ddp", "(one process, 2 ranks) differ")
    passed = {o.check.name for o in report.outcomes if o.status == "passed"}
    assert "ddp.acc::evaluator-ddp" in passed


def test_import_light_rule_runs_a_fresh_interpreter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    _write_plugin(tmp_path, "asklepios_heavy", "import torch\n")
    _write_plugin(tmp_path, "asklepios_light", "")
    report = check_plugin("asklepios_heavy.hooks")
    assert report.plugin_id == "heavy"
    _assert_fails(report, None, "import-light", "['torch']")
    report = check_plugin("asklepios_light.hooks")
    assert report.failures == []
    assert any(o.check.rule == "import-light" and o.status == "passed" for o in report.outcomes)


# -- the SDK 0.2 rules: registration-light, params-naming, checkpoint-state ----------------------


_EAGER_PARAMS_HOOKS = """
@hookimpl
def register_losses(register):
    from fake_plugins import FocalLossParams  # the params model sits next to torch classes

    register("focal", "fake_plugins:FocalLoss", FocalLossParams)
"""

_HEAVY_PARENT_HOOKS = """
@hookimpl
def register_losses(register):
    from fake_params import FocalLossParams

    register("focal", "heavy_family.losses:FocalLoss", FocalLossParams)
"""


def test_registration_light_rule_catches_heavy_params_and_heavy_parent_packages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    family = tmp_path / "heavy_family"
    family.mkdir()
    (family / "__init__.py").write_text("from fake_plugins import FocalLoss  # re-export\n")
    (family / "losses.py").write_text("from fake_plugins import FocalLoss\n")
    _write_plugin(tmp_path, "asklepios_eager", "", _EAGER_PARAMS_HOOKS)
    _write_plugin(tmp_path, "asklepios_parent", "", _HEAVY_PARENT_HOOKS)
    _write_plugin(tmp_path, "asklepios_lazy", "")

    for module in ("asklepios_eager.hooks", "asklepios_parent.hooks"):
        report = check_plugin(module)
        _assert_fails(report, None, "registration-light", "'torch'", "lazy targets")
        assert report.failed(None, "import-light") is None  # importing the hooks is still light
    report = check_plugin("asklepios_lazy.hooks")
    passed = {o.check.name for o in report.outcomes if o.status == "passed"}
    assert {"plugin::import-light", "plugin::registration-light"} <= passed


class GammaParams(Params):
    """Params named after their field instead of their class."""

    gamma: float = 2.0


class SharedFocalLoss(FocalLoss):
    """Down-weight easy examples, with the focal loss's params under its own name."""


class SharedFocalLossParams(FocalLossParams):
    """Params of :class:`SharedFocalLoss` (the same fields as the focal loss's)."""


def _build_focal(params: FocalLossParams, ctx: BuildContext) -> FocalLoss:
    """Build the focal loss from a factory function (allowed; a class is preferred)."""
    return FocalLoss(params, ctx)


def test_params_naming_rule() -> None:
    report = _check("loss", "gamma", FocalLoss, GammaParams)
    _assert_fails(report, "fake.gamma", "params-naming", "name it FocalLossParams")
    report = _check("loss", "lam", lambda params, ctx: FocalLoss(params, ctx), FocalLossParams)
    _assert_fails(report, "fake.lam", "params-naming", "lambda")
    for target, params in [
        (FocalLoss, FocalLossParams),
        (SharedFocalLoss, SharedFocalLossParams),  # a shared shape, subclassed under its name
        (FocalLoss, EmptyParams),  # fine for any class (no params)
        (_build_focal, FocalLossParams),  # a factory function: its params end in 'Params'
    ]:
        report = _check("loss", "ok", target, params)
        assert report.failed("fake.ok", "params-naming") is None, report.failures


class RunningScaleLoss(FocalLoss):
    """Divide the focal loss by its running mean, kept in a Python float that is not saved."""

    def __init__(self, params: EmptyParams, ctx: BuildContext) -> None:
        super().__init__(FocalLossParams(), ctx)
        self.running = 1.0

    def forward(self, outputs: Mapping[str, Tensor], batch: dict[str, Any]) -> LossOutput:
        focal = super().forward(outputs, batch).total
        self.running = 0.9 * self.running + 0.1 * float(focal.detach())
        total = focal / self.running
        return LossOutput(total, {"focal": focal})


class BufferRunningScaleLoss(FocalLoss):
    """Divide the focal loss by its running mean, kept in a buffer that state_dict() saves."""

    running: Tensor

    def __init__(self, params: EmptyParams, ctx: BuildContext) -> None:
        super().__init__(FocalLossParams(), ctx)
        self.register_buffer("running", torch.tensor(1.0))

    def forward(self, outputs: Mapping[str, Tensor], batch: dict[str, Any]) -> LossOutput:
        focal = super().forward(outputs, batch).total
        self.running = 0.9 * self.running + 0.1 * focal.detach()
        total = focal / self.running
        return LossOutput(total, {"focal": focal})


class ExtraStateRunningScaleLoss(RunningScaleLoss):
    """Divide the focal loss by its running mean, a float saved through get_extra_state()."""

    def get_extra_state(self) -> Any:
        return {"running": self.running}

    def set_extra_state(self, state: Any) -> None:
        self.running = float(state["running"])


class RotatingSampler(ShuffleSampler):
    """Shift the order by the evaluations seen, counted in an attribute that is not saved."""

    def __init__(self, params: EmptyParams, ctx: BuildContext) -> None:
        super().__init__(params, ctx)
        self.evaluations = 0

    def on_evaluation(self, metrics: Mapping[str, Any]) -> None:
        self.evaluations += 1

    def epoch_indices(self, epoch: int, generator: np.random.Generator) -> np.ndarray:
        return np.roll(generator.permutation(self.num_samples), self.evaluations)


class SavedRotatingSampler(RotatingSampler):
    """Shift the order by the evaluations seen, carried through state_dict()."""

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "evaluations": self.evaluations}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.evaluations = int(state["evaluations"])


def test_checkpoint_state_rule_for_losses() -> None:
    report = _check("loss", "attr", RunningScaleLoss)
    _assert_fails(report, "fake.attr", "checkpoint-state", "register_buffer", "get_extra_state")
    assert [o.check.rule for o in report.failures] == ["checkpoint-state"]
    for good in (BufferRunningScaleLoss, ExtraStateRunningScaleLoss):
        assert _check("loss", "kept", good).failures == []


def test_checkpoint_state_rule_for_samplers() -> None:
    report = _check("sampler", "attr", RotatingSampler)
    _assert_fails(report, "fake.attr", "checkpoint-state", "restored sampler", "state_dict")
    assert [o.check.rule for o in report.failures] == ["checkpoint-state"]
    assert _check("sampler", "kept", SavedRotatingSampler).failures == []


# -- the pytest plugin -------------------------------------------------------------------------


def test_pytest_plugin_module_is_light() -> None:
    code = "import sys, asklepios_sdk.testing.plugin; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_suite_without_opt_in_gets_no_conformance_items(pytester: pytest.Pytester) -> None:
    pytester.makeconftest("x = 1\n")
    pytester.makepyfile(test_a="def test_a():\n    pass\n")
    result = pytester.runpytest("--co", "-q")
    result.stdout.fnmatch_lines(["*1 test collected*"])
    assert "conformance" not in result.stdout.str()


def test_one_line_opt_in_runs_the_kit_and_names_component_and_rule(
    pytester: pytest.Pytester,
) -> None:
    pytester.syspathinsert(Path(__file__).parent)
    pytester.makepyfile(
        asklepios_demo_hooks=textwrap.dedent(
            """
            from asklepios_sdk import hookimpl


            @hookimpl
            def register_losses(register):
                from asklepios_sdk import EmptyParams
                from fake_params import FocalLossParams

                register("focal", "fake_plugins:FocalLoss", FocalLossParams)
                register("broken", "test_testing_kit:NoTermsLoss", EmptyParams)
            """
        )
    )
    pytester.makeconftest(
        textwrap.dedent(
            """
            from asklepios_sdk.testing import Conformance

            asklepios_conformance = Conformance("asklepios_demo_hooks", plugin_id="demo")
            """
        )
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "-rA")
    result.assert_outcomes(passed=16, failed=1)  # 3 plugin rules, 7 per loss
    result.stdout.fnmatch_lines(
        [
            "*demo.broken (loss) breaks rule 'loss-output'*terms is empty*",
            "FAILED conftest.py::demo.broken::loss-output*",
        ]
    )


def test_component_table_rows_give_id_kind_and_doc_per_component() -> None:
    from asklepios_sdk.testing import component_table_rows

    rows = component_table_rows(good_plugin(), "fake")
    assert len(rows) == sum(len(entries) for entries in GOOD.values())
    focal_doc = inspect.getdoc(FocalLoss).splitlines()[0]
    assert f"| `fake.focal` | loss | {focal_doc} |" in rows


def test_component_table_rows_escape_bars_and_fit_the_header() -> None:
    from asklepios_sdk.testing import COMPONENT_TABLE_HEADER, component_table_rows

    doc = "Average |p - y| over the batch."
    plugin = plugin_with({"loss": [("l1", FocalLoss, FocalLossParams, doc)]})
    rows = component_table_rows(plugin, "fake")
    assert rows == ["| `fake.l1` | loss | Average \\|p - y\\| over the batch. |"]
    columns = [c.strip() for c in COMPONENT_TABLE_HEADER[0].strip("|").split("|")]
    assert columns == ["component", "kind", "what it does"]
    cells = re.split(r"(?<!\\)\|", rows[0])[1:-1]
    assert len(cells) == len(columns)  # the escaped bars stay inside their cell
