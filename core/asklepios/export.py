"""Export a run's model (TorchScript, ONNX, safetensors) with its preprocessing, verified.

The exported program maps an image batch ``N x C x H x W`` (after the run's eval transforms) to
the model's ``logits``. Beside it, ``<file name>.preprocessing.json`` (one per exported file, so
exports in several formats into one folder keep theirs) records what a consumer must do first and
after: the eval transforms (component ids and params), the input shape, the task, the
class names and how logits become probabilities. Every export is verified: reloaded (TorchScript
by ``torch.jit.load``, ONNX by ONNX Runtime, safetensors into a freshly built model) and compared
with the original model on a sample batch of the run's data, and on a batch of another size for
the traced formats. A model that cannot be traced (it needs more than the image, or branches on
data) fails with the components it is made of and the format that always works (safetensors).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from asklepios_sdk import AsklepiosError
from asklepios_sdk.io import write_atomic
from torch import nn
from torch.utils.data import default_collate

from asklepios.config import ComponentSpec
from asklepios.inference import LoadedModel

if TYPE_CHECKING:
    from asklepios.plugins import PluginHost

__all__ = ["FORMATS", "ExportError", "Exported", "export_model", "sample_batch"]

Format = Literal["torchscript", "onnx", "safetensors"]
FORMATS: dict[str, str] = {"torchscript": ".pt", "onnx": ".onnx", "safetensors": ".safetensors"}
"""Export format -> file suffix."""
ATOL = 1e-4
RTOL = 1e-3


class ExportError(AsklepiosError):
    """A model cannot be exported in the asked format, or its export does not verify."""


@dataclass(frozen=True)
class Exported:
    """What an export wrote and how closely the reloaded model matches the original.

    Attributes:
        path: the exported model file.
        preprocessing: the JSON file beside it.
        format: ``torchscript``, ``onnx`` or ``safetensors``.
        max_abs_diff: largest absolute difference of the logits on the sample batch.
    """

    path: Path
    preprocessing: Path
    format: str
    max_abs_diff: float


class _ImageToLogits(nn.Module):
    """``image -> logits``: the run's model behind a tensor-only interface for tracing."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        outputs = self.model({"image": image})
        return outputs["logits"] if isinstance(outputs, dict) else outputs


def sample_batch(loaded: LoadedModel, size: int = 4) -> torch.Tensor:
    """Return ``size`` images of the run's own data after its eval transforms."""
    splits = loaded.built.eval_splits
    split = splits.get("test") or splits.get("val")
    if split is None:
        raise ExportError("the run's dataset has no val or test split to take a sample batch from")
    count = min(size, len(split))  # type: ignore[arg-type]
    batch = default_collate([split[i] for i in range(count)])
    image = batch.get("image") if isinstance(batch, dict) else None
    if not isinstance(image, torch.Tensor):
        raise ExportError(
            "the run's samples have no 'image' tensor; only image models can be exported"
        )
    return image.to(loaded.device)


def _components(loaded: LoadedModel) -> str:
    model = loaded.built.config.model
    names = [model.backbone.type, *(a.type for a in model.adapters)]
    return ", ".join(names)


def _cannot(loaded: LoadedModel, fmt: str, err: BaseException) -> ExportError:
    return ExportError(
        f"the model of stage {loaded.stage} ({_components(loaded)}) cannot be exported as {fmt}: "
        f"{type(err).__name__}: {err}. Tracing needs a model that maps the image alone to its "
        "logits without branching on the data; export --format safetensors always works (the "
        "weights, rebuilt with asklepios)"
    )


def _torchscript(module: nn.Module, image: torch.Tensor, path: Path) -> nn.Module:
    with warnings.catch_warnings():  # torch >= 2.10 deprecates TorchScript; it still works
        warnings.simplefilter("ignore", FutureWarning)
        traced = torch.jit.trace(module, (image,), check_trace=False)
        write_atomic(path, write=lambda tmp: torch.jit.save(traced, str(tmp)))
        return torch.jit.load(str(path), map_location=image.device)


def _onnx(module: nn.Module, image: torch.Tensor, path: Path) -> Any:
    try:
        import onnxruntime
    except ImportError as err:
        raise ExportError(
            "ONNX export needs onnx, onnxscript and onnxruntime: pip install 'asklepios[export]'"
        ) from err
    batch = torch.export.Dim("batch", min=1)

    def write(tmp: Path) -> None:
        program = torch.onnx.export(
            module,
            (image,),
            dynamo=True,
            input_names=["image"],
            output_names=["logits"],
            dynamic_shapes={"image": {0: batch}},
            external_data=False,
            verbose=False,
        )
        assert program is not None
        program.save(str(tmp))

    write_atomic(path, write=write)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def run(x: torch.Tensor) -> torch.Tensor:
        (out,) = session.run(["logits"], {"image": x.detach().cpu().numpy()})
        return torch.as_tensor(out)

    return run


def _safetensors(loaded: LoadedModel, path: Path, host: PluginHost) -> nn.Module:
    from safetensors.torch import load_model, save_model

    from asklepios.build import build_experiment

    write_atomic(path, write=lambda tmp: save_model(loaded.model, str(tmp)))
    fresh = build_experiment(
        loaded.built.config, host.registry, device=str(loaded.device), stage=loaded.stage
    ).model.to(loaded.device)
    load_model(fresh, str(path), device=str(loaded.device))
    return _ImageToLogits(fresh.eval())


def _spec(spec: ComponentSpec) -> dict[str, Any]:
    data = spec.model_dump(mode="json")
    if data.get("weights") is None:
        data.pop("weights", None)
    return data


def _preprocessing(loaded: LoadedModel, fmt: str, image: torch.Tensor) -> dict[str, Any]:
    config = loaded.built.config
    postprocess = {"classification": "softmax", "multilabel": "sigmoid"}.get(loaded.task)
    return {
        "format": fmt,
        "input": {"name": "image", "shape": ["N", *image.shape[1:]], "dtype": str(image.dtype)},
        "output": {"name": "logits", "postprocess": postprocess},
        "task": loaded.task,
        "class_names": loaded.class_names,
        "eval_transforms": [_spec(t) for t in config.data.transforms.eval],
        "dataset": _spec(config.data.dataset),
        "model": {
            "backbone": _spec(config.model.backbone),
            "adapters": [_spec(a) for a in config.model.adapters],
        },
        "stage": loaded.stage,
        "checkpoint": str(loaded.checkpoint),
    }


def _max_diff(expected: torch.Tensor, got: torch.Tensor, fmt: str) -> float:
    got = got.to(expected.device, expected.dtype)
    if got.shape != expected.shape:
        raise ExportError(
            f"{fmt} export gives logits of shape {tuple(got.shape)}, expected "
            f"{tuple(expected.shape)}"
        )
    diff = float((got - expected).abs().max()) if expected.numel() else 0.0
    if not torch.allclose(got, expected, atol=ATOL, rtol=RTOL):
        raise ExportError(
            f"{fmt} export does not reproduce the model: largest logit difference {diff:.3g} "
            f"(tolerance {ATOL} + {RTOL} x |logit|); the model may branch on the data or use "
            "randomness at eval time"
        )
    return diff


@torch.inference_mode(False)
def export_model(
    loaded: LoadedModel,
    fmt: str,
    output: str | Path,
    *,
    run_dir: Path | None = None,
    host: PluginHost | None = None,
) -> Exported:
    """Write the model in ``fmt`` under ``output`` (a folder, or a file) and verify it.

    Args:
        loaded: from :func:`asklepios.inference.load_run_model`.
        fmt: ``torchscript`` (``model.pt``), ``onnx`` (``model.onnx``) or ``safetensors``
            (``model.safetensors``, the state dict; load it into the model asklepios rebuilds).
        output: a folder (the file is ``model.<suffix>`` in it) or a file path.
        run_dir: recorded in the preprocessing JSON.
        host: the plugin host that rebuilds the model for safetensors (default: the process's).

    Raises:
        ExportError: the format is unknown, the model cannot be traced, or the reloaded export
            does not reproduce the model's logits on a sample batch.
    """
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; formats: {', '.join(FORMATS)}")
    output = Path(output)
    path = output if output.suffix == FORMATS[fmt] else output / f"model{FORMATS[fmt]}"
    path.parent.mkdir(parents=True, exist_ok=True)
    module = _ImageToLogits(loaded.model).eval()
    image = sample_batch(loaded)
    with torch.no_grad():
        try:
            expected = module(image)
        except Exception as err:
            raise _cannot(loaded, fmt, err) from err
        try:
            if fmt == "torchscript":
                reloaded: Any = _torchscript(module, image, path)
            elif fmt == "onnx":
                reloaded = _onnx(module, image, path)
            else:
                from asklepios.plugins import get_host

                reloaded = _safetensors(loaded, path, host or get_host())
        except ExportError:
            raise
        except Exception as err:
            raise _cannot(loaded, fmt, err) from err
        diff = _max_diff(expected, reloaded(image), fmt)
        if fmt != "safetensors" and len(image) > 1:  # a traced batch size must not be baked in
            diff = max(diff, _max_diff(module(image[:1]), reloaded(image[:1]), fmt))
    info = _preprocessing(loaded, fmt, image)
    info["run_dir"] = str(run_dir) if run_dir is not None else None
    info["verified_max_abs_diff"] = diff
    preprocessing = path.with_name(f"{path.name}.preprocessing.json")
    write_atomic(preprocessing, json.dumps(info, indent=2) + "\n")
    return Exported(path, preprocessing, fmt, diff)
