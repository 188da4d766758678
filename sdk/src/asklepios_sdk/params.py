"""The params base model every component's parameters derive from."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["EmptyParams", "Params", "WeightsSpec"]


class Params(BaseModel):
    """Base for a component's params: unknown keys are errors and values are immutable.

    Subclasses declare fields with defaults and ``Field(description=...)``; the description is shown
    by ``asklepios plugins show`` and exported into the JSON Schema that editors use.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class EmptyParams(Params):
    """Params of a component that takes none."""


class WeightsSpec(Params):
    """Where a component's weights come from; applied after construction, never a silent fallback.

    Exactly one of ``path`` (a local safetensors / PyTorch file) and ``cache_id`` (an entry already
    in the user's hub cache) is given.
    """

    path: str | None = Field(None, description="Local .safetensors, .pt or .pth file.")
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
