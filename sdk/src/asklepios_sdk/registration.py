"""The registration contract: the ``register`` callback, what one call records, and its checks.

Everything the host and the conformance kit need to agree on lives here, once: the component kinds
and the hook that registers each, the lifecycle hook names, the id and name patterns, the reserved
param names, the docstring first-line rule and :func:`check_registration`, which returns every
problem of one ``register(...)`` call (the host raises the first, the kit reports them all). Cross-
cutting plugins (trackers) declare their entry of a settings section of configs (``tracking:``)
through ``register_settings`` (:class:`RegisterSettings`, :func:`check_settings`) and read it back
in their lifecycle hooks with :func:`read_settings`. Plugins contribute sub-commands
(``asklepios <plugin-id> <command> ARGS``) through ``register_commands`` (:class:`RegisterCommand`,
:func:`check_command`).

A registration names its implementation lazily, ``"package.module:Class"``, so registering imports
the params model (pydantic and the SDK) and nothing heavier: torch, timm or diffusers load when the
component is built (:meth:`Registration.resolve`), and the one-line doc is read from the source
(:meth:`Registration.read_doc`). Importing this module imports neither pydantic nor torch.
"""

from __future__ import annotations

import importlib
import inspect
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, TypeVar

from asklepios_sdk.context import BuildContext
from asklepios_sdk.errors import AsklepiosDeprecationWarning

if TYPE_CHECKING:
    from asklepios_sdk.params import Params

__all__ = [
    "COMMANDS_HOOK",
    "COMMAND_NAME_PATTERN",
    "COMPONENT_NAME_PATTERN",
    "KINDS",
    "LIFECYCLE_HOOKS",
    "PLUGIN_ID_PATTERN",
    "REGISTRATION_HOOKS",
    "RESERVED_PARAM_NAMES",
    "SETTINGS_HOOK",
    "SETTINGS_SECTIONS",
    "TARGET_PATTERN",
    "ComponentFactory",
    "Register",
    "RegisterCommand",
    "RegisterSettings",
    "Registration",
    "Target",
    "check_command",
    "check_registration",
    "check_settings",
    "command_doc",
    "first_doc_line",
    "make_registration",
    "read_settings",
    "resolve_target",
]

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

KINDS: tuple[str, ...] = tuple(REGISTRATION_HOOKS)
"""The component kinds, in build order."""

LIFECYCLE_HOOKS: tuple[str, ...] = (
    "run_start",
    "stage_start",
    "epoch_start",
    "step_end",
    "epoch_end",
    "evaluation_end",
    "stage_end",
    "run_end",
    "run_failed",
    "record_metadata",
)
"""The hooks through which plugins take part in a run without being named in its config."""

SETTINGS_HOOK = "register_settings"
"""The hook through which a cross-cutting plugin declares its entry of a settings section."""

SETTINGS_SECTIONS: tuple[str, ...] = ("tracking",)
"""Config sections keyed by plugin id: ``tracking.<plugin-id>`` holds one tracker's settings."""

COMMANDS_HOOK = "register_commands"
"""The hook through which a plugin contributes sub-commands: ``asklepios <plugin-id> <command>``."""

COMMAND_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_-]*$")
"""A command name: lowercase letters, digits, ``-`` and ``_``, a letter first."""

PLUGIN_ID_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
"""A plugin id (the entry-point name): lowercase letters, digits and ``_``, a letter first."""

COMPONENT_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_]*$")
"""A bare component name; the host prefixes ``<plugin-id>.``."""

TARGET_PATTERN = re.compile(
    r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$"
)
"""A lazy target: ``"package.module:Name"`` (``Name`` may be dotted through classes)."""

RESERVED_PARAM_NAMES: frozenset[str] = frozenset({"type", "weights"})
"""Keys a component spec uses itself (the component id, its weights), so no params field may."""

ComponentFactory: TypeAlias = Callable[[Any, BuildContext], Any]
"""A callable ``(params, ctx) -> component`` that constructs from validated params only."""

P = TypeVar("P", bound="Params")

Target: TypeAlias = "str | ComponentFactory"
"""What ``register`` takes as the implementation: ``"package.module:Class"`` or a callable."""


class Register(Protocol):
    """The callback a registration hook receives, bound by the host to the calling plugin.

    ``register(name, target, params, doc=None)``: ``name`` is bare (no dot) and becomes
    ``<plugin-id>.<name>``; ``target`` is ``"package.module:Class"``, imported only when the
    component is built, whose constructor takes ``(params, ctx)``; ``params`` is the component's
    :class:`~asklepios_sdk.Params` subclass, named ``<Class>Params`` (:class:`~asklepios_sdk.
    EmptyParams` when it takes none); ``doc`` defaults to the first line of the target's docstring,
    read from its source without importing it. Registering a name twice is an error.
    """

    def __call__(
        self,
        name: str,
        target: Target,
        params: type[Params],
        doc: str | None = None,
    ) -> None: ...


class RegisterSettings(Protocol):
    """The callback ``register_settings`` receives, bound by the host to the calling plugin.

    ``register(section, params)``: the config entry ``<section>.<plugin-id>`` (``tracking.mlflow``)
    is validated with ``params``, a :class:`~asklepios_sdk.Params` subclass whose every field has a
    default (the entry is optional: the plugin runs with the defaults when a config has none).
    ``section`` is one of :data:`SETTINGS_SECTIONS`. Registering a section twice is an error.
    """

    def __call__(self, section: str, params: type[Params]) -> None: ...


class RegisterCommand(Protocol):
    """The callback ``register_commands`` receives, bound by the host to the calling plugin.

    ``register(name, target, doc=None)``: ``asklepios <plugin-id> <name> ARGS...`` imports
    ``target`` (``"package.module:function"``) only then and calls it with the remaining
    arguments as a ``list[str]``; it parses them itself and returns the exit code (``None`` is 0).
    ``doc`` defaults to the first line of the function's docstring, read from its source.
    Registering a name twice is an error.
    """

    def __call__(self, name: str, target: str, doc: str | None = None) -> None: ...


def first_doc_line(doc: str | None) -> str | None:
    """Return the first non-empty line of a docstring, stripped, or None when there is none."""
    for line in inspect.cleandoc(doc or "").splitlines():
        if line.strip():
            return line.strip()
    return None


def resolve_target(target: str) -> Any:
    """Import ``"package.module:Name"`` and return the object (``Name`` may be dotted).

    Raises:
        ImportError: the module cannot be imported (its own error, unchanged).
        AttributeError: the module has no such name (the message says which).
    """
    module_name, _, qualname = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise AttributeError(
                f"'{target}': module '{module_name}' has no attribute '{qualname}'"
            ) from None
    return obj


@dataclass(frozen=True)
class Registration:
    """One ``register(...)`` call: which plugin registered what, under which name.

    Attributes:
        plugin_id: the plugin the ``register`` callback was bound to.
        kind: the component kind (``loss``, ``backbone``, ...).
        name: the bare name; the component id is ``<plugin_id>.<name>``.
        target: ``"package.module:Name"``, or a callable for in-memory plugins.
        params: the params model as given (``None`` when omitted).
        doc: the one-line doc as given explicitly, or None to read it from the target.
    """

    plugin_id: str
    kind: str
    name: str
    target: Target
    params: Any = None
    doc: str | None = None

    @property
    def component_id(self) -> str:
        """Return ``<plugin-id>.<name>``."""
        return f"{self.plugin_id}.{self.name}"

    @property
    def target_path(self) -> str:
        """Return the target as ``"module:qualname"`` (also for a callable), for messages."""
        if isinstance(self.target, str):
            return self.target
        module = getattr(self.target, "__module__", None) or "?"
        qualname = getattr(self.target, "__qualname__", None) or type(self.target).__qualname__
        return f"{module}:{qualname}"

    @property
    def params_model(self) -> type[Params]:
        """Return the params model, :class:`~asklepios_sdk.EmptyParams` when none was given."""
        if self.params is None:
            from asklepios_sdk.params import EmptyParams

            return EmptyParams
        return self.params

    def resolve(self) -> ComponentFactory:
        """Import the target (when lazy) and return the callable that builds the component."""
        if isinstance(self.target, str):
            return resolve_target(self.target)
        return self.target

    def read_doc(self) -> str | None:
        """Return the one-line doc: the explicit one, else the target docstring's first line.

        A lazy target's docstring is read from its module's source, without importing it.
        """
        if self.doc is not None:
            return first_doc_line(self.doc)
        if isinstance(self.target, str):
            from asklepios_sdk._source import source_docstring

            module, _, qualname = self.target.partition(":")
            return first_doc_line(source_docstring(module, qualname))
        return first_doc_line(inspect.getdoc(self.target))


def make_registration(
    plugin_id: str,
    kind: str,
    name: str,
    target: Target,
    params: Any = None,
    doc: str | None = None,
    *,
    stacklevel: int = 3,
) -> Registration:
    """Record one ``register`` call, warning about the forms deprecated in SDK 0.2.

    Passing the component class itself (``register("focal", FocalLoss, FocalLossParams)``)
    imports the implementation at registration; it still works until SDK 0.3, with an
    :class:`~asklepios_sdk.AsklepiosDeprecationWarning` giving the lazy string to write instead.
    Classes defined in ``__main__`` (a notebook or script) are not warned about. Omitting
    ``params`` warns too: pass :class:`~asklepios_sdk.EmptyParams`.
    """
    where = f"plugin '{plugin_id}' registering {kind} {name!r}"
    if inspect.isclass(target) and target.__module__ != "__main__":
        warnings.warn(
            f"{where}: passing the class imports it (and torch) at registration; pass the lazy "
            f"reference '{target.__module__}:{target.__qualname__}' instead (the class form "
            "is removed in asklepios-sdk 0.3; see CHANGELOG.md)",
            AsklepiosDeprecationWarning,
            stacklevel=stacklevel,
        )
    if params is None:
        warnings.warn(
            f"{where}: register(name, target, params) takes params; pass "
            "asklepios_sdk.EmptyParams for a component without any (omitting it is removed in "
            "asklepios-sdk 0.3)",
            AsklepiosDeprecationWarning,
            stacklevel=stacklevel,
        )
    return Registration(plugin_id, kind, name, target, params, doc)


def check_registration(reg: Registration, *, read_doc: bool = True) -> list[str]:
    """Return every problem of one registration, each a sentence with the fix (empty: fine).

    Checks: the kind, the name pattern, the target (a ``"module:Name"`` string or a callable),
    the params model (a :class:`~asklepios_sdk.Params` subclass without reserved field names) and,
    when ``read_doc``, that a one-line doc exists (explicit, or the target's docstring).
    """
    from asklepios_sdk.params import Params

    problems: list[str] = []
    target_ok = True
    if reg.kind not in REGISTRATION_HOOKS:
        problems.append(f"unknown component kind {reg.kind!r}; kinds: {', '.join(KINDS)}")
    if not isinstance(reg.name, str) or not COMPONENT_NAME_PATTERN.match(reg.name):
        problems.append(
            f"name {reg.name!r} must be bare lowercase snake_case (no dot): the host prefixes "
            f"'{reg.plugin_id}.'"
        )
    if isinstance(reg.target, str):
        if not TARGET_PATTERN.match(reg.target):
            target_ok = False
            problems.append(
                f"target {reg.target!r} is not a lazy reference; write 'package.module:Class'"
            )
    elif not callable(reg.target):
        target_ok = False
        problems.append(f"target {reg.target!r} is neither 'package.module:Class' nor a callable")
    model = reg.params_model
    if not (isinstance(model, type) and issubclass(model, Params)):
        problems.append(
            f"params {model!r} is not a subclass of asklepios_sdk.Params; derive the params model "
            "from Params (unknown keys rejected, values frozen)"
        )
    else:
        reserved = sorted(RESERVED_PARAM_NAMES & set(model.model_fields))
        if reserved:
            problems.append(
                f"params model {model.__name__} has field(s) {reserved}, which a config can never "
                f"set ({', '.join(sorted(RESERVED_PARAM_NAMES))} are keys of the component spec "
                "itself); rename them"
            )
    if read_doc and target_ok and not reg.read_doc():
        problems.append(
            f"no one-line doc: give {reg.target_path} a docstring, or pass register(..., doc='...')"
        )
    return problems


def check_settings(plugin_id: str, section: str, params: Any) -> list[str]:
    """Return every problem of one ``register_settings`` call, each with the fix (empty: fine).

    Checks: the section is one of :data:`SETTINGS_SECTIONS`; the params model is a
    :class:`~asklepios_sdk.Params` subclass that validates with no values (every field has a
    default, since a config may leave the entry out).
    """
    from asklepios_sdk.params import Params

    problems: list[str] = []
    if section not in SETTINGS_SECTIONS:
        problems.append(
            f"plugin '{plugin_id}' registers settings for section {section!r}; sections: "
            f"{', '.join(SETTINGS_SECTIONS)}"
        )
    if not (isinstance(params, type) and issubclass(params, Params)):
        problems.append(
            f"plugin '{plugin_id}': settings params {params!r} is not a subclass of "
            "asklepios_sdk.Params; derive it from Params (unknown keys rejected)"
        )
        return problems
    required = sorted(name for name, info in params.model_fields.items() if info.is_required())
    if required:
        problems.append(
            f"plugin '{plugin_id}': settings {params.__name__} has required field(s) {required}; "
            f"give each a default, since a config may have no '{section}.{plugin_id}' entry"
        )
    return problems


def command_doc(target: str, doc: str | None = None) -> str | None:
    """Return a command's one-line doc: ``doc``, else its function's docstring (from source)."""
    if doc is not None:
        return first_doc_line(doc)
    from asklepios_sdk._source import source_docstring

    module, _, qualname = target.partition(":")
    return first_doc_line(source_docstring(module, qualname))


def check_command(plugin_id: str, name: str, target: Any, doc: str | None = None) -> list[str]:
    """Return every problem of one ``register_commands`` call, each with the fix (empty: fine).

    Checks: the name matches :data:`COMMAND_NAME_PATTERN`; the target is a lazy
    ``"package.module:function"`` string; there is a one-line doc.
    """
    problems: list[str] = []
    if not isinstance(name, str) or not COMMAND_NAME_PATTERN.match(name):
        problems.append(
            f"plugin '{plugin_id}': command name {name!r} must be lowercase letters, digits, "
            "'-' or '_', starting with a letter (e.g. 'convert', 'pkl-to-npy')"
        )
    if not isinstance(target, str) or not TARGET_PATTERN.match(target):
        problems.append(
            f"plugin '{plugin_id}': command {name!r} target {target!r} is not a lazy "
            "'package.module:function' string"
        )
    elif not command_doc(target, doc):
        problems.append(
            f"plugin '{plugin_id}': command {name!r} has no one-line doc: give {target} a "
            "docstring, or pass register(..., doc='...')"
        )
    return problems


def read_settings(config: Any, section: str, plugin_id: str, params: type[P]) -> P:
    """Return the validated settings of ``plugin_id`` in ``config.<section>`` (defaults if absent).

    Lifecycle hooks call it with ``run.config``: ``read_settings(run.config, "tracking",
    "mlflow", MLflowParams)``. The host has validated the entry already; this only builds the
    model from it.
    """
    entries = getattr(config, section, None) or {}
    return params.model_validate(dict(entries.get(plugin_id) or {}))
