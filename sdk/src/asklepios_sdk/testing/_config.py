"""How a suite configures the conformance kit: which plugin, which facts, per-component overrides.

This module imports no torch, so the pytest plugin can read a suite's configuration cheaply.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from asklepios_sdk.context import BuildContext, DataFacts
from asklepios_sdk.errors import ComponentError

__all__ = [
    "DEFAULT_FACTS",
    "HEAVY_MODULES",
    "RULES",
    "Conformance",
    "Override",
    "default_context",
    "host_components",
    "survival_facts",
]

RULES: Mapping[str, str] = MappingProxyType(
    {
        "hooks": "the hook module imports, its hooks match the hookspecs and run without error",
        "import-light": "importing the hook module imports no torch-heavy module",
        "registration-light": "running the registration hooks and reading every doc imports no "
        "torch-heavy module (targets are lazy 'package.module:Class' references)",
        "registration": "a bare snake_case name, a 'module:Class' target, a Params model without "
        "reserved field names, a doc line; registered once",
        "params-naming": "the params model of class Foo is FooParams (EmptyParams when none); "
        "no lambda targets",
        "build": "the target builds the component on CPU from (params, ctx) with default params",
        "params-schema": "the params model forbids unknown keys and exports a JSON Schema",
        "pickle": "the component pickles and unpickles (DataLoader workers receive copies)",
        "forward-backward": "forward on the example batch returns the output dict; backward fills "
        "finite gradients",
        "loss-output": "the loss returns a finite scalar total with gradients and named terms",
        "checkpoint-state": "a loss or sampler restored from state_dict() continues exactly like "
        "the one that saved it (the engine checkpoints them that way)",
        "augmentation-determinism": "the same seed gives the same output",
        "augmentation-shapes": "the output keeps the shapes the transform declares",
        "sampler-indices": "the sampler yields len(sampler) valid indices of the dataset",
        "sampler-epoch": "the order depends only on the seed and the epoch given to set_epoch",
        "sampler-shards": "ranks get equal shares that together cover the one-rank order",
        "evaluator-keys": "compute() returns the declared keys as finite scalars with a direction",
        "evaluator-reset": "reset() returns every metric state to its default",
        "evaluator-ddp": "compute() synced over 2 gloo ranks equals compute() on one process",
        "dataset-splits": "every split is non-empty, yields sample dicts and matches labels(); a "
        "split's declared collate_fn pickles and batches its first items into a dict",
        "trainer-step": "train_step returns a finite LossOutput and updates the parameters",
    }
)
"""Every rule the kit checks, by id, with what it requires (ids are what ``skip`` takes)."""

HEAVY_MODULES: tuple[str, ...] = (
    "torch",
    "torchvision",
    "torchmetrics",
    "timm",
    "open_clip",
    "diffusers",
    "transformers",
    "sklearn",
    "sksurv",
    "lifelines",
    "scipy",
    "matplotlib",
    "skimage",
    "cv2",
    "monai",
)
"""Modules a hook module must not import at import time (rule ``import-light``)."""

_LABELS = (0, 1, 0, 2, 0, 1, 0, 0, 1, 0, 2, 0, 0, 1, 0, 0, 2, 1, 0, 0, 1, 0, 2, 0)

DEFAULT_FACTS = DataFacts(
    task="classification",
    num_samples=len(_LABELS),
    num_classes=3,
    class_counts=tuple(_LABELS.count(c) for c in range(3)),
    class_names=("a", "b", "c"),
    labels=_LABELS,
    in_channels=3,
    image_size=(16, 16),
)
"""Facts of the kit's default data: 24 images of 3x16x16 in 3 imbalanced classes (14/6/4)."""


def survival_facts(num_samples: int = 24, num_features: int = 6) -> DataFacts:
    """Return facts of a small tabular survival split, for ``Override(data=...)``.

    Times are ``1..num_samples`` and every third sample is censored, so ranking metrics and
    time-binned losses have events and censoring to work with.
    """
    return DataFacts(
        task="survival",
        num_samples=num_samples,
        num_features=num_features,
        in_channels=num_features,
        times=tuple(float(t) for t in range(1, num_samples + 1)),
        events=tuple(0 if i % 3 == 2 else 1 for i in range(num_samples)),
    )


def host_components(
    kind: str, component_id: str, params: Mapping[str, Any] | None, ctx: BuildContext, where: str
) -> Any:
    """Build a part through the installed host's registry, as a run would (``ctx.components``).

    Give it to a ``BuildContext`` a test makes itself (``BuildContext(..., components=
    host_components)``) when the component under test builds others with ``build_component``.
    """
    from importlib import import_module

    try:
        plugins = import_module("asklepios.plugins")
    except ImportError as err:
        raise ComponentError(
            f"{where}: building {kind} {component_id!r} as a part needs the asklepios host "
            "installed next to the SDK (pip install asklepios)"
        ) from err
    return plugins.get_component(kind, component_id).build(params, ctx, where=where)


def default_context(data: DataFacts | None = None) -> BuildContext:
    """Return the BuildContext the kit builds components with: CPU, seed 0, 2 epochs of 3 steps.

    Components built as parts of others (``build_component``) come from the installed host.
    """
    return BuildContext(
        data=data or DEFAULT_FACTS,
        seed=0,
        device="cpu",
        epochs=2,
        steps_per_epoch=3,
        components=host_components,
    )


@dataclass(frozen=True)
class Override:
    """What a suite changes for one component (keyed by ``<plugin>.<name>`` or bare name).

    Attributes:
        params: keyword arguments for the params model (e.g. tiny widths for a big network).
        data: facts the component is built with (replaces the kit's default data facts).
        ctx: a whole BuildContext (its ``data`` wins over ``data``; device should stay ``cpu``).
        skip: ``{rule id: reason}`` for rules that do not apply; the reason is shown in the report.
        model: ``ctx -> nn.Module``: the inner model an adapter wraps or a trainer trains
            (default: the kit's tiny image classifier).
        loss: ``ctx -> Loss``: the loss a trainer's step uses (default: cross-entropy on
            ``logits`` and ``label``).
        dataset: ``ctx -> Dataset``: the inner dataset a dataset wrapper wraps
            (default: the kit's tiny in-memory dataset built from the data facts).
    """

    params: Mapping[str, Any] = field(default_factory=dict)
    data: DataFacts | None = None
    ctx: BuildContext | None = None
    skip: Mapping[str, str] = field(default_factory=dict)
    model: Callable[[BuildContext], Any] | None = None
    dataset: Callable[[BuildContext], Any] | None = None
    loss: Callable[[BuildContext], Any] | None = None

    def __post_init__(self) -> None:
        unknown = sorted(set(self.skip) - set(RULES))
        if unknown:
            raise ValueError(
                f"Override.skip names unknown rule(s) {unknown}; known rules: {sorted(RULES)}"
            )

    def context(self, base: BuildContext) -> BuildContext:
        """Return the BuildContext for this component, starting from the suite's ``base``."""
        if self.ctx is not None:
            return self.ctx
        if self.data is not None:
            return base.replace(data=self.data)
        return base


@dataclass(frozen=True)
class Conformance:
    """A suite's conformance-kit configuration; assign it to ``asklepios_conformance``.

    Attributes:
        hooks: the plugin's hook module, as a dotted name (``"asklepios_longtail.hooks"``) or an
            object carrying ``@hookimpl`` functions (in-memory plugins; ``import-light`` is then
            not checked).
        plugin_id: the id the components are named under; default: the entry point in group
            ``asklepios.plugins`` whose value is ``hooks``, else ``<x>`` of ``asklepios_<x>.hooks``.
        data: data facts every component is built with unless overridden.
        overrides: per-component :class:`Override`, keyed by ``<plugin>.<name>`` or bare name.
        skip: ``{rule id: reason}`` applied to every component.
        heavy_modules: modules the hook module must not import (rule ``import-light``).
    """

    hooks: str | object
    plugin_id: str | None = None
    data: DataFacts | None = None
    overrides: Mapping[str, Override] = field(default_factory=dict)
    skip: Mapping[str, str] = field(default_factory=dict)
    heavy_modules: tuple[str, ...] = HEAVY_MODULES

    def __post_init__(self) -> None:
        unknown = sorted(set(self.skip) - set(RULES))
        if unknown:
            raise ValueError(
                f"Conformance.skip names unknown rule(s) {unknown}; known rules: {sorted(RULES)}"
            )
        for key, value in self.overrides.items():
            if not isinstance(value, Override):
                raise TypeError(
                    f"Conformance.overrides[{key!r}] is {type(value).__name__}; "
                    "wrap it as asklepios_sdk.testing.Override(...)"
                )

    def override_for(self, component_id: str) -> Override:
        """Return the override of ``component_id`` (full or bare name), or an empty one."""
        bare = component_id.split(".", 1)[-1]
        return self.overrides.get(component_id) or self.overrides.get(bare) or Override()

    def base_context(self) -> BuildContext:
        """Return the BuildContext every component starts from."""
        return default_context(self.data)

    @classmethod
    def coerce(cls, value: object) -> Conformance:
        """Accept what a suite assigns: a Conformance, a dotted module name or a hook object."""
        if isinstance(value, Conformance):
            return value
        return cls(hooks=value)
