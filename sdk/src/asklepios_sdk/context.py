"""Read-only facts that component factories receive instead of reading globals.

The build step computes :class:`DataFacts` from the *training* split once and hands every factory a
:class:`BuildContext`. Both are frozen: nothing a component does at run time can change the config
or what other components see.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, TypeAlias

__all__ = ["BuildContext", "ComponentBuilder", "DataFacts"]

ComponentBuilder: TypeAlias = Callable[[str, str, "Mapping[str, Any] | None", Any, str], Any]
"""The host's ``(kind, id, params, ctx, where) -> component``, as a config would build it."""


def _frozen_mapping(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(value or {}))


class _PicklableExtras:
    """Pickle support for the frozen dataclasses below (a mappingproxy does not pickle).

    DataLoader workers started with ``spawn`` and checkpoints receive pickled copies of datasets
    and components, which may hold their facts or context.
    """

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["extras"] = dict(state["extras"])
        if "components" in state:  # the host's builder stays in the process that built
            state["components"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            object.__setattr__(self, key, value)
        object.__setattr__(self, "extras", _frozen_mapping(state["extras"]))


@dataclass(frozen=True)
class DataFacts(_PicklableExtras):
    """What the training split tells the components that depend on the data.

    Attributes:
        task: ``"classification"``, ``"multilabel"``, ``"survival"``, ``"segmentation"``,
            ``"regression"``, ``"generation"`` or a plugin's own task name.
        num_samples: size of the training split.
        num_classes: number of classes (classification) or ``None``.
        class_counts: training samples per class, indexed by class id.
        class_names: human-readable class names, indexed by class id.
        labels: the training split's class label per sample (what samplers draw from).
        in_channels: channels of the image (or feature width of tabular data).
        image_size: ``(height, width)`` of a sample after the per-sample transforms, when fixed.
        num_features: width of tabular features, when the data are tabular.
        times: survival times of the training split (survival tasks).
        events: event indicators of the training split, 1 = event, 0 = censored.
        extras: anything else a dataset wants to tell its components (read-only).
    """

    task: str = "classification"
    num_samples: int = 0
    num_classes: int | None = None
    class_counts: tuple[int, ...] | None = None
    class_names: tuple[str, ...] | None = None
    labels: tuple[int, ...] | None = None
    in_channels: int | None = None
    image_size: tuple[int, int] | None = None
    num_features: int | None = None
    times: tuple[float, ...] | None = None
    events: tuple[int, ...] | None = None
    extras: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "extras", _frozen_mapping(self.extras))

    def replace(self, **changes: Any) -> DataFacts:
        """Return a copy with ``changes`` applied (the original stays as it was)."""
        return replace(self, **changes)


@dataclass(frozen=True)
class BuildContext(_PicklableExtras):
    """Everything a component factory may know besides its own params.

    Attributes:
        data: facts of the training split.
        seed: the run's seed (components derive their own generators from it).
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``: where per-batch components will run.
        rank: this process's rank under ``torchrun`` (0 otherwise).
        world_size: number of processes (1 otherwise).
        epochs: epochs of the current stage (schedules such as DRW or SAM's rho need it).
        steps_per_epoch: optimiser steps per epoch of the current stage, when known.
        stage: name of the current stage (``"main"`` when the config has no stages).
        output_dir: the run directory, for components that write artefacts (rank 0 only).
        extras: read-only mapping for facts the core adds later without changing this class.
        components: the host's ``(kind, id, params, ctx, where) -> component`` builder, through
            which :func:`asklepios_sdk.components.build_component` builds a registered component
            as a part of another (not pickled: DataLoader workers and checkpoints lack it).
    """

    data: DataFacts = field(default_factory=DataFacts)
    seed: int = 0
    device: str = "cpu"
    rank: int = 0
    world_size: int = 1
    epochs: int = 1
    steps_per_epoch: int | None = None
    stage: str = "main"
    output_dir: str | None = None
    extras: Mapping[str, Any] = field(default_factory=dict)
    components: ComponentBuilder | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "extras", _frozen_mapping(self.extras))

    def replace(self, **changes: Any) -> BuildContext:
        """Return a copy with ``changes`` applied (the original stays as it was)."""
        return replace(self, **changes)
