"""Fundus2Video's per-step truncated back-propagation vs back-propagating through the whole video.

For videos of M frames the generator runs M sliding-window steps. ``truncated`` (the method, and
``knowledge_mask.adversarial``) back-propagates and steps after every window step with the next
context detached; ``full`` keeps the generated context attached and back-propagates the summed
loss of all steps once. Both use the same generator objective (L1 + gradient variance +
mask-enhanced PatchNCE) so that only the graph retention differs.

Each (variant, M) runs in a fresh process; it prints the peak memory added by the training loop
(CUDA: ``max_memory_allocated``; CPU: peak RSS growth) and the time per video, as ratios
full / truncated measured in the same run. Usage::

    python bench/knowledge_mask_memory.py [--size 64] [--ngf 16] [--frames 4 8 16]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _current_rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def run_one(variant: str, frames: int, size: int, ngf: int, repeats: int) -> dict[str, float]:
    """Train ``repeats`` videos with one variant; return peak memory growth and time per video."""
    import torch
    import torch.nn.functional as F
    from asklepios_knowledge_mask.generator import FundusVideoGenerator, step_target
    from asklepios_knowledge_mask.params import FundusVideoGeneratorParams, MaskedPatchNCEParams
    from asklepios_knowledge_mask.patchnce import MaskedPatchNCE
    from asklepios_knowledge_mask.perceptual import gradient_variance
    from asklepios_sdk import BuildContext

    torch.manual_seed(0)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    ctx = BuildContext(device=device.type)
    model = FundusVideoGenerator(FundusVideoGeneratorParams(ngf=ngf), ctx).to(device)
    channels = tuple(model.netG.layer_channels((0, 4, 8, 12, 16)))
    nce = MaskedPatchNCE(MaskedPatchNCEParams(channels=channels), ctx).to(device)
    opt = torch.optim.Adam([*model.parameters(), *nce.parameters()], lr=2e-4, betas=(0.5, 0.999))
    cf = torch.rand(1, 3, size, size, device=device) * 2 - 1
    video = (torch.rand(1, frames, 1, size, size, device=device) * 2 - 1).expand(-1, -1, 3, -1, -1)
    mask = (torch.rand(1, 1, size, size, device=device) > 0.5).float()

    def objective(fake: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        nce_out = nce(
            {"logits": fake, "encoder": model},
            {"image": cf, "target": target, "knowledge_mask": mask},
        )
        return F.l1_loss(fake, target) + 5 * gradient_variance(fake, target) + nce_out.total

    def one_video() -> None:
        context, total = cf, None
        for n in range(frames):
            target = step_target(video, n)
            fake, _ = model.step(cf, context if n else cf)
            loss = objective(fake, target)
            if variant == "truncated":
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                context = fake.detach()
            else:
                total = loss if total is None else total + loss
                context = fake
        if variant == "full":
            opt.zero_grad(set_to_none=True)
            total.backward()
            opt.step()

    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated() / 2**20
    else:
        base = _current_rss_mb()  # the loop's peak is measured against the RSS before it
    one_video()  # first video: allocator and kernel warm-up, included in the memory peak
    start = time.perf_counter()
    for _ in range(repeats):
        one_video()
    if device.type == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() / 2**20 - base
    else:
        peak = _peak_rss_mb() - base
    seconds = (time.perf_counter() - start) / repeats
    return {"peak_mb": peak, "seconds": seconds, "device": device.type}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--ngf", type=int, default=16)
    parser.add_argument("--frames", type=int, nargs="+", default=[4, 8, 16])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--child", nargs=2, metavar=("VARIANT", "FRAMES"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        variant, frames = args.child[0], int(args.child[1])
        print(json.dumps(run_one(variant, frames, args.size, args.ngf, args.repeats)))
        return
    print(f"size {args.size}, ngf {args.ngf}, {args.repeats} videos per measurement")
    print(
        f"{'M':>4} {'trunc MB':>10} {'full MB':>10} {'mem x':>7} "
        f"{'trunc s':>8} {'full s':>8} {'time x':>7}"
    )
    for frames in args.frames:
        result = {}
        for variant in ("truncated", "full"):
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--size",
                    str(args.size),
                    "--ngf",
                    str(args.ngf),
                    "--repeats",
                    str(args.repeats),
                    "--child",
                    variant,
                    str(frames),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            result[variant] = json.loads(out.stdout.strip().splitlines()[-1])
        t, f = result["truncated"], result["full"]
        mem_ratio = f["peak_mb"] / max(t["peak_mb"], 1e-6)
        print(
            f"{frames:>4} {t['peak_mb']:>10.1f} {f['peak_mb']:>10.1f} {mem_ratio:>7.2f} "
            f"{t['seconds']:>8.3f} {f['seconds']:>8.3f} {f['seconds'] / t['seconds']:>7.2f}"
        )


if __name__ == "__main__":
    main()
