"""Types of the ``register`` callback the host hands to every registration hook."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from asklepios_sdk.context import BuildContext

if TYPE_CHECKING:
    from asklepios_sdk.params import Params

__all__ = ["REGISTRATION_HOOKS", "ComponentFactory", "Register"]

REGISTRATION_HOOKS: dict[str, str] = {
    "backbone": "register_backbones",
    "loss": "register_losses",
    "augmentation": "register_augmentations",
    "adapter": "register_adapters",
    "evaluator": "register_evaluators",
    "sampler": "register_samplers",
    "dataset": "register_datasets",
    "trainer": "register_trainers",
}
"""Component kind (singular, as in configs and ids) -> the hook that registers components of it."""

ComponentFactory = Callable[[Any, BuildContext], Any]
"""A callable ``(params, ctx) -> component`` that constructs from validated params only."""


class Register(Protocol):
    """The callback a registration hook receives, bound by the host to the calling plugin.

    ``name`` is bare (no dot) and becomes ``<plugin-id>.<name>``; ``params`` is the component's
    :class:`~asklepios_sdk.Params` subclass (``None`` means it takes none); ``doc`` defaults to the
    first line of the factory's docstring. Registering a name twice is an error naming both
    factories.
    """

    def __call__(
        self,
        name: str,
        factory: ComponentFactory,
        params: type[Params] | None = None,
        doc: str | None = None,
    ) -> None: ...
