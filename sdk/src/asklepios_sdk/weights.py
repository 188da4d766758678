"""Load a component's weights from a local file, as a :class:`~asklepios_sdk.WeightsSpec` says.

Building a component and loading its weights are separate steps: the factory constructs from
params (randomly initialised), then the host calls :func:`load_weights`. Weights come from a local
file only — a path, or an entry already in a local hub cache — and are read with safetensors or
``torch.load(weights_only=True)``. Nothing is ever downloaded, and a failure raises
:class:`~asklepios_sdk.WeightsError` (with every path tried); there is no fallback to random init.

Example::

    from asklepios_sdk import WeightsSpec
    from asklepios_sdk.weights import load_weights

    report = load_weights(model, WeightsSpec(path="ckpt.pt", prefix="module.", strict=False))
    report.missing_keys, report.unexpected_keys, report.sha256
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from asklepios_sdk.errors import WeightsError
from asklepios_sdk.params import WeightsSpec

if TYPE_CHECKING:
    from torch import Tensor, nn

__all__ = [
    "WeightsReport",
    "file_sha256",
    "load_weights",
    "read_state_dict",
    "remap_keys",
    "resolve_weights_path",
]

HF_FILENAMES = (
    "model.safetensors",
    "open_clip_model.safetensors",
    "diffusion_pytorch_model.safetensors",
    "pytorch_model.bin",
    "open_clip_pytorch_model.bin",
    "diffusion_pytorch_model.bin",
)
"""Files looked for, in this order, in a Hugging Face cache snapshot when the id names none."""

_CHECKPOINT_KEYS = ("state_dict", "model", "model_state_dict", "module", "ema")


@dataclass(frozen=True)
class WeightsReport:
    """What :func:`load_weights` loaded, for the run record and for the user.

    Attributes:
        path: the file read.
        sha256: its sha256 (hex).
        loaded_keys: model keys filled from the file.
        missing_keys: model keys the file did not provide (allowed only with ``strict=False``).
        unexpected_keys: file keys (after prefix and rename) the model does not have.
        source: provenance given in the spec.
        license: licence given in the spec.
    """

    path: str
    sha256: str
    loaded_keys: tuple[str, ...]
    missing_keys: tuple[str, ...] = ()
    unexpected_keys: tuple[str, ...] = ()
    source: str | None = None
    license: str | None = None
    cache_id: str | None = field(default=None)

    def summary(self) -> str:
        """Return a one-paragraph account of what was loaded and what was not."""
        text = f"loaded {len(self.loaded_keys)} tensors from {self.path}"
        if self.missing_keys:
            text += f"; missing {len(self.missing_keys)}: {_preview(self.missing_keys)}"
        if self.unexpected_keys:
            text += f"; unexpected {len(self.unexpected_keys)}: {_preview(self.unexpected_keys)}"
        return text

    def as_record(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict for the run record."""
        return {
            "path": self.path,
            "cache_id": self.cache_id,
            "sha256": self.sha256,
            "source": self.source,
            "license": self.license,
            "loaded": len(self.loaded_keys),
            "missing_keys": list(self.missing_keys),
            "unexpected_keys": list(self.unexpected_keys),
        }


def _preview(keys: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def _where(where: str | None) -> str:
    return f"{where}: " if where else ""


def file_sha256(path: str | os.PathLike[str], chunk_size: int = 1 << 20) -> str:
    """Return the hex sha256 of the file at ``path``, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _hf_cache_roots() -> list[Path]:
    if os.environ.get("HF_HUB_CACHE"):
        return [Path(os.environ["HF_HUB_CACHE"])]
    if os.environ.get("HF_HOME"):
        return [Path(os.environ["HF_HOME"]) / "hub"]
    return [Path("~/.cache/huggingface/hub").expanduser()]


def _torch_cache_roots() -> list[Path]:
    home = os.environ.get("TORCH_HOME") or str(Path("~/.cache/torch").expanduser())
    return [Path(home) / "hub" / "checkpoints"]


def _hf_candidates(ref: str, roots: Iterable[Path]) -> list[Path]:
    parts = ref.split("/")
    if len(parts) < 2:
        raise WeightsError(
            f"hub cache id 'hf-hub:{ref}' is not 'org/name[@revision][/file]'; e.g. "
            "'hf-hub:timm/resnet18.a1_in1k' or 'hf-hub:org/model@main/weights.safetensors'"
        )
    org, name_rev, filename = parts[0], parts[1], "/".join(parts[2:])
    name, _, revision = name_rev.partition("@")
    revision = revision or "main"
    filenames = (filename,) if filename else HF_FILENAMES
    candidates = []
    for root in roots:
        repo = root / f"models--{org}--{name}"
        ref_file = repo / "refs" / revision
        commit = ref_file.read_text().strip() if ref_file.is_file() else revision
        candidates += [repo / "snapshots" / commit / f for f in filenames]
    return candidates


def resolve_weights_path(
    spec: WeightsSpec,
    *,
    base_dir: str | os.PathLike[str] | None = None,
    cache_dirs: Sequence[str | os.PathLike[str]] | None = None,
    where: str | None = None,
) -> Path:
    """Return the local file ``spec`` points to, or raise WeightsError listing the paths tried.

    ``spec.path`` is taken as given (``~`` expanded), relative paths against ``base_dir`` (the
    config's directory) and then the working directory. ``spec.cache_id`` is looked up in local
    caches only:

    - ``hf-hub:org/name[@revision][/file]`` (or ``org/name...``): the Hugging Face hub cache
      (``$HF_HUB_CACHE``, ``$HF_HOME/hub``, ``~/.cache/huggingface/hub``), ``refs/<revision>``
      resolved to its snapshot; without ``/file`` the usual weight file names are tried;
    - ``torch-hub:file.pth``: ``$TORCH_HOME/hub/checkpoints`` (default ``~/.cache/torch``);
    - ``cache_dirs`` (when given) replace those default roots, for tests and offline mirrors.
    """
    if (spec.path is None) == (spec.cache_id is None):
        raise WeightsError(
            f"{_where(where)}weights need exactly one of 'path' (a local file) and 'cache_id' "
            f"(an entry in the local hub cache); got path={spec.path!r}, cache_id={spec.cache_id!r}"
        )
    roots = [Path(d) for d in cache_dirs] if cache_dirs is not None else None
    if spec.path is not None:
        given = Path(spec.path).expanduser()
        if given.is_absolute():
            candidates = [given]
        else:
            candidates = [Path(base_dir) / given] if base_dir is not None else []
            candidates.append(Path.cwd() / given)
    else:
        cache_id = str(spec.cache_id)
        if cache_id.startswith("torch-hub:"):
            name = cache_id.removeprefix("torch-hub:")
            candidates = [r / name for r in (roots or _torch_cache_roots())]
        else:
            ref = cache_id.removeprefix("hf-hub:")
            candidates = _hf_candidates(ref, roots or _hf_cache_roots())
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    tried = "\n  ".join(str(c) for c in candidates)
    what = f"path={spec.path!r}" if spec.path is not None else f"cache_id={spec.cache_id!r}"
    raise WeightsError(
        f"{_where(where)}weights {what} not found; tried:\n  {tried}\n"
        "Nothing is downloaded and there is no fallback to random weights: put the file at one "
        "of these paths, fix 'weights.path', or remove 'weights' to train from scratch."
    )


def _unwrap_checkpoint(obj: Any, path: Path) -> Mapping[str, Any]:
    import torch

    if not isinstance(obj, Mapping):
        raise WeightsError(f"{path} holds a {type(obj).__name__}, not a state dict")
    if any(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj
    for key in _CHECKPOINT_KEYS:
        inner = obj.get(key)
        if isinstance(inner, Mapping) and any(isinstance(v, torch.Tensor) for v in inner.values()):
            return inner
    raise WeightsError(
        f"{path} holds no tensors at the top level nor under any of {list(_CHECKPOINT_KEYS)}; "
        f"its keys are {_preview(sorted(map(str, obj)))}"
    )


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """Read a state dict from a ``.safetensors`` file or a PyTorch file (``weights_only=True``).

    A PyTorch checkpoint that nests the weights under ``state_dict``, ``model``,
    ``model_state_dict``, ``module`` or ``ema`` is unwrapped. Non-tensor entries are dropped.
    """
    import torch

    file = Path(path)
    try:
        if file.suffix == ".safetensors":
            from safetensors.torch import load_file

            return dict(load_file(str(file), device="cpu"))
        obj = torch.load(file, map_location="cpu", weights_only=True)
    except WeightsError:
        raise
    except Exception as err:
        raise WeightsError(
            f"could not read weights from {file}: {type(err).__name__}: {err}. PyTorch files are "
            "read with weights_only=True (no pickled code); re-save them as a plain state dict"
        ) from err
    state = _unwrap_checkpoint(obj, file)
    return {str(k): v for k, v in state.items() if isinstance(v, torch.Tensor)}


def remap_keys(
    state: Mapping[str, Tensor], prefix: str | None = None, rename: Mapping[str, str] | None = None
) -> dict[str, Tensor]:
    """Keep keys starting with ``prefix`` (stripped), then replace key prefixes per ``rename``.

    ``rename`` maps an old key prefix to a new one; the longest matching old prefix wins, so
    ``{"fc.": "head.", "fc.bias": "head.b"}`` is unambiguous.
    """
    if prefix:
        state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    if not rename:
        return dict(state)
    olds = sorted(rename, key=len, reverse=True)
    result: dict[str, Tensor] = {}
    for key, value in state.items():
        old = next((o for o in olds if key.startswith(o)), None)
        result[rename[old] + key[len(old) :] if old is not None else key] = value
    return result


def load_weights(
    module: nn.Module,
    spec: WeightsSpec,
    *,
    where: str | None = None,
    base_dir: str | os.PathLike[str] | None = None,
    cache_dirs: Sequence[str | os.PathLike[str]] | None = None,
) -> WeightsReport:
    """Load the weights ``spec`` names into ``module`` and return what was loaded.

    Steps: resolve the local file (:func:`resolve_weights_path`), check ``spec.sha256``, read it
    (:func:`read_state_dict`), filter and strip ``spec.prefix``, apply ``spec.rename``, check
    shapes, then ``module.load_state_dict``.

    Args:
        module: the freshly built component.
        spec: the ``weights:`` entry of its config.
        where: config path of the component (``model.backbone``), named in every error.
        base_dir: directory relative paths are resolved against first (the config's directory).
        cache_dirs: hub-cache roots replacing the defaults.

    Returns:
        A :class:`WeightsReport` (loaded, missing and unexpected keys, sha256, provenance).

    Raises:
        WeightsError: the file is missing (with the paths tried), unreadable, has another sha256,
            no key matches the module, a shape differs, or ``strict`` and keys are missing or
            unexpected. The module is left unchanged in every case but the last step's own error.
    """
    path = resolve_weights_path(spec, base_dir=base_dir, cache_dirs=cache_dirs, where=where)
    digest = file_sha256(path)
    if spec.sha256 is not None and spec.sha256.lower() != digest:
        raise WeightsError(
            f"{_where(where)}{path} has sha256 {digest}, but the config expects {spec.sha256}; "
            "the file changed or is another file: check it, or update 'weights.sha256'"
        )
    raw = read_state_dict(path)
    state = remap_keys(raw, spec.prefix, spec.rename)
    if spec.prefix and not state:
        raise WeightsError(
            f"{_where(where)}no key of {path} starts with prefix {spec.prefix!r}; its keys start "
            f"like: {_preview(sorted(raw))}"
        )
    own = module.state_dict()
    mismatched = [
        f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in state.items()
        if k in own and tuple(v.shape) != tuple(own[k].shape)
    ]
    if mismatched:
        raise WeightsError(
            f"{_where(where)}{path}: {len(mismatched)} tensor shape(s) differ from the model: "
            f"{_preview(mismatched)}; build the component with matching params, or drop those "
            "keys with 'weights.prefix' / 'weights.rename'"
        )
    loaded = tuple(sorted(k for k in state if k in own))
    missing = tuple(sorted(k for k in own if k not in state))
    unexpected = tuple(sorted(k for k in state if k not in own))
    if not loaded:
        raise WeightsError(
            f"{_where(where)}no key of {path} matches the model (file: {_preview(sorted(state))}; "
            f"model: {_preview(sorted(own))}); set 'weights.prefix' or 'weights.rename'"
        )
    if spec.strict and (missing or unexpected):
        detail = []
        if missing:
            detail.append(f"missing {len(missing)}: {_preview(missing)}")
        if unexpected:
            detail.append(f"unexpected {len(unexpected)}: {_preview(unexpected)}")
        raise WeightsError(
            f"{_where(where)}{path} does not match the model ({'; '.join(detail)}); map the keys "
            "with 'weights.prefix' / 'weights.rename', or set 'weights.strict: false' to load the "
            "matching part"
        )
    module.load_state_dict({k: state[k] for k in loaded}, strict=False)
    return WeightsReport(
        path=str(path),
        sha256=digest,
        loaded_keys=loaded,
        missing_keys=missing,
        unexpected_keys=unexpected,
        source=spec.source,
        license=spec.license,
        cache_id=spec.cache_id,
    )
