"""Benchmark the TP-DRSeg injectors against frozen SAM, and checkpoint sizes, as ratios.

In one run, for a tiny SAM and for SAM ViT-B widths at a reduced resolution (256 px, 16 x 16
tokens), both with 12 injectors where the encoder has 12 blocks:

1. forward time of SAM + injectors + prompt generator vs frozen SAM alone (no gradient);
2. training-step time (forward + backward to every trainable parameter) of SAM + injectors +
   prompt generator vs frozen SAM + prompt generator (backward stops at the neck), and vs the same
   frozen SAM + prompt generator with the backward taken through SAM's frozen blocks to its input
   (what any adapter inside the encoder costs before its own work: the injectors' own overhead);
   target of the issue: injector overhead <= 1.3x;
3. memory of the same two steps (CUDA: peak allocated in a fresh process; CPU: bytes of the
   tensors autograd saves for backward);
4. trainable vs total parameters of the full ViT-B model next to the spec's derived figures;
5. checkpoint bytes with the frozen SAM weights referenced vs copied.

Usage: ``python plugins/tpdrseg/bench/tpdrseg_overhead.py [--repeats 5] [--device cpu|cuda]``.
On a shared CPU set ``OMP_NUM_THREADS`` to the cores you have.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SETTINGS: dict[str, dict[str, Any]] = {
    "tiny": {
        "img_size": 128,
        "embed_dim": 64,
        "depth": 2,
        "num_heads": 2,
        "window_size": 4,
        "global_attn_indexes": [1],
        "out_chans": 32,
    },
    "vit_b@256": {"variant": "vit_b", "img_size": 256},
}


def _models(setting: str, device: str) -> tuple[Any, Any, Any]:
    """Return (frozen SAM encoder, SAM + injectors + prompt generator, SAM + prompt generator)."""
    import torch
    from asklepios_sdk import BuildContext, EmptyParams
    from asklepios_tpdrseg.decoder import PromptGenerator
    from asklepios_tpdrseg.encoder import SamImageEncoder
    from asklepios_tpdrseg.injector import Injector
    from asklepios_tpdrseg.params import InjectorParams, SamImageEncoderParams

    ctx = BuildContext()
    params = SamImageEncoderParams(random_init=True, **SETTINGS[setting])
    torch.manual_seed(0)
    plain = SamImageEncoder(params, ctx).to(device)
    torch.manual_seed(0)
    injected = Injector(InjectorParams(), ctx).wrap(SamImageEncoder(params, ctx))
    injected = PromptGenerator(EmptyParams(), ctx).wrap(injected).to(device)
    with torch.no_grad():
        for injector in injected.model.injectors:
            injector.gamma.fill_(0.1)  # a trained state: gradients reach every conv
    torch.manual_seed(0)
    baseline = PromptGenerator(EmptyParams(), ctx).wrap(SamImageEncoder(params, ctx)).to(device)
    return plain, injected, baseline


def _inputs(setting: str, device: str) -> dict[str, Any]:
    import torch

    size = SETTINGS[setting]["img_size"]
    gen = torch.Generator().manual_seed(0)
    grid = size // 16
    return {
        "image": torch.randn(2, 3, size, size, generator=gen).to(device),
        "prior": torch.rand(2, 1, grid, grid, generator=gen).to(device),
    }


def _step(model: Any, batch: dict[str, Any], train: bool) -> None:
    import torch

    if not train:
        with torch.no_grad():
            model(batch)
        return
    out = model(batch)
    (out["dense_prompt"].float().mean() + out["sparse_prompt"].float().mean()).backward()
    model.zero_grad(set_to_none=True)
    batch["image"].grad = None


def _time(model: Any, batch: dict[str, Any], train: bool, repeats: int, device: str) -> float:
    import torch

    _step(model, batch, train)  # warm-up
    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        _step(model, batch, train)
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _memory_child(setting: str, which: str, device: str) -> None:
    """Run one step of one model in this fresh process and print its peak CUDA memory."""
    import torch

    plain, injected, baseline = _models(setting, device)
    model = {"plain": plain, "injected": injected, "baseline": baseline}[which]
    batch = _inputs(setting, device)
    torch.cuda.reset_peak_memory_stats()
    _step(model, batch, train=which != "plain")
    print(torch.cuda.max_memory_allocated())


def _saved_bytes(setting: str, which: str) -> int:
    """Return the bytes of the tensors autograd keeps for backward in one training step (CPU)."""
    import torch

    _, injected, baseline = _models(setting, "cpu")
    model = {"injected": injected, "baseline": baseline}[which]
    kept: dict[tuple[int, int], int] = {}

    def pack(tensor: Any) -> Any:
        storage = tensor.untyped_storage()
        kept[(storage.data_ptr(), storage.nbytes())] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        _step(model, _inputs(setting, "cpu"), train=True)
    return sum(kept.values())


def _peak(setting: str, which: str, device: str) -> int:
    if device == "cpu":
        return _saved_bytes(setting, which)
    out = subprocess.run(
        [sys.executable, __file__, "--child", setting, which, "--device", device],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout.strip().splitlines()[-1])


def _parameters() -> dict[str, int]:
    from asklepios_sdk import BuildContext, EmptyParams
    from asklepios_tpdrseg.decoder import MaskDecoderHead, PromptGenerator
    from asklepios_tpdrseg.encoder import SamImageEncoder
    from asklepios_tpdrseg.injector import Injector
    from asklepios_tpdrseg.params import (
        InjectorParams,
        MaskDecoderHeadParams,
        SamImageEncoderParams,
    )

    ctx = BuildContext()
    encoder = SamImageEncoder(SamImageEncoderParams(random_init=True), ctx)
    model = Injector(InjectorParams(), ctx).wrap(encoder)
    model = PromptGenerator(EmptyParams(), ctx).wrap(model)
    model = MaskDecoderHead(MaskDecoderHeadParams(random_init=True), ctx).wrap(model)
    return {
        "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "total": sum(p.numel() for p in model.parameters()),
        "sam_encoder": sum(p.numel() for p in encoder.parameters()),
    }


def _checkpoint_bytes() -> tuple[int, int]:
    """Return serialized bytes of the ViT-B@256 model state with SAM referenced vs copied."""
    import torch
    from asklepios_sdk import BuildContext, EmptyParams
    from asklepios_tpdrseg.decoder import PromptGenerator
    from asklepios_tpdrseg.encoder import SamImageEncoder
    from asklepios_tpdrseg.injector import Injector
    from asklepios_tpdrseg.params import InjectorParams, SamImageEncoderParams

    ctx = BuildContext()
    params = SamImageEncoderParams(random_init=True, **SETTINGS["vit_b@256"])
    random = SamImageEncoder(params, ctx)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "sam_encoder.pth"
        torch.save({f"image_encoder.{k}": v for k, v in random.encoder.state_dict().items()}, path)
        referenced = SamImageEncoder(params.model_copy(update={"checkpoint": str(path)}), ctx)
        sizes = []
        for encoder in (referenced, random):
            model = Injector(InjectorParams(), ctx).wrap(encoder)
            model = PromptGenerator(EmptyParams(), ctx).wrap(model)
            buffer = io.BytesIO()
            torch.save(model.state_dict(), buffer)
            sizes.append(buffer.tell())
    return sizes[0], sizes[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--child", nargs=2, metavar=("SETTING", "MODEL"))
    args = parser.parse_args()
    if args.child:
        _memory_child(*args.child, args.device)
        return
    rows = []
    for setting in SETTINGS:
        plain, injected, baseline = _models(setting, args.device)
        batch = _inputs(setting, args.device)
        forward = _time(injected, batch, False, args.repeats, args.device) / _time(
            plain, batch, False, args.repeats, args.device
        )
        injected_step = _time(injected, batch, True, args.repeats, args.device)
        step = injected_step / _time(baseline, batch, True, args.repeats, args.device)
        through = {**batch, "image": batch["image"].clone().requires_grad_(True)}
        through_step = _time(baseline, through, True, args.repeats, args.device)
        memory = _peak(setting, "injected", args.device) / _peak(setting, "baseline", args.device)
        rows.append(
            {
                "setting": setting,
                "forward": forward,
                "train_step": step,
                "train_step_vs_backward_through_sam": injected_step / through_step,
                "memory": memory,
            }
        )
    referenced, copied = _checkpoint_bytes()
    result = {
        "device": args.device,
        "ratios (SAM + 12 injectors + prompt generator) / (frozen SAM [+ prompt generator])": rows,
        "parameters (ViT-B, 12 injectors C_h=768)": {
            **_parameters(),
            "spec_trainable": 21_261_324 + 1_114_624 + 3_506_304,
            "spec_total": 93_735_472 - 6_220 + 21_261_324 + 1_114_624,
        },
        "checkpoint bytes (ViT-B@256, injectors + prompt generator)": {
            "sam_referenced": referenced,
            "sam_copied": copied,
            "ratio": referenced / copied,
        },
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
