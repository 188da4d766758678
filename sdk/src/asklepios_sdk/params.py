"""The params base model every component's parameters derive from, and local-path field types.

A params field that names a file or folder on this machine is typed :data:`LocalFile`,
:data:`LocalDir` or :data:`LocalPath` (plain ``str`` values with a marker). The host resolves a
relative value against the folder of the config file that wrote it (a ``--set`` value against the
working directory), expands ``~``, and, for files and folders, checks when validating a config that
they exist and are readable, naming the absolute path it checked::

    class ManifestParams(Params):
        path: LocalFile = Field(description="CSV manifest, one row per image.")
        root: LocalDir | None = Field(None, description="Folder image paths start from.")
        cache_dir: LocalPath = Field("cache", description="Created when missing.")
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, GetJsonSchemaHandler, model_validator
from pydantic_core import CoreSchema

__all__ = [
    "EmptyParams",
    "LocalDir",
    "LocalFile",
    "LocalPath",
    "LocalPathKind",
    "Params",
    "WeightsSpec",
]


@dataclass(frozen=True)
class LocalPathKind:
    """Marker of a params field that holds a local path; ``kind`` says what must exist there.

    Attributes:
        kind: ``"file"`` (an existing readable file), ``"dir"`` (an existing readable folder)
            or ``"path"`` (anything, possibly not yet there: resolved, never checked).
    """

    kind: Literal["file", "dir", "path"]

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> dict[str, Any]:
        out = dict(handler(schema))
        out["format"] = {"file": "file-path", "dir": "directory-path", "path": "path"}[self.kind]
        return out


LocalFile = Annotated[str, LocalPathKind("file")]
"""A local file that must exist and be readable; relative to the config file that wrote it."""

LocalDir = Annotated[str, LocalPathKind("dir")]
"""A local folder that must exist and be readable; relative to the config file that wrote it."""

LocalPath = Annotated[str, LocalPathKind("path")]
"""A local path that need not exist yet (a cache or output folder); resolved like the others."""


class Params(BaseModel):
    """Base for a component's params: unknown keys are errors and values are immutable.

    Subclasses declare fields with defaults and ``Field(description=...)``; the description is shown
    by ``asklepios plugins show`` and exported into the JSON Schema that editors use.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, defer_build=True)


class EmptyParams(Params):
    """Params of a component that takes none."""


class WeightsSpec(Params):
    """Where a component's weights come from; applied after construction, never a silent fallback.

    Exactly one of ``path`` (a local safetensors / PyTorch file) and ``cache_id`` (an entry already
    in the user's hub cache) is given.
    """

    path: LocalFile | None = Field(
        None,
        description="Local .safetensors, .pt or .pth file, relative to the config file that "
        "names it.",
    )
    cache_id: str | None = Field(None, description="Id of weights already in the local hub cache.")
    prefix: str | None = Field(
        None, description="Keep only keys with this prefix, and strip it (e.g. 'module.')."
    )
    rename: dict[str, str] = Field(
        default_factory=dict, description="Key prefix remapping applied after the prefix filter."
    )
    strict: bool = Field(True, description="Fail on missing or unexpected keys.")
    sha256: str | None = Field(None, description="Expected sha256 of the file; checked when given.")
    source: str | None = Field(None, description="Provenance: where these weights were published.")
    license: str | None = Field(None, description="Licence of the weights, copied into the record.")

    @model_validator(mode="after")
    def _one_source(self) -> WeightsSpec:
        if (self.path is None) == (self.cache_id is None):
            raise ValueError(
                "give exactly one of 'path' (a local weights file) and 'cache_id' (an entry in "
                f"the local hub cache); got path={self.path!r}, cache_id={self.cache_id!r}"
            )
        return self
