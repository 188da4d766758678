"""Benchmark: time per image of our corruptions vs ``imagecorruptions`` (ratios, same run).

Usage: ``python bench/corruptions.py [--size 224] [--batch 16] [--repeats 2]``. The reference
package is optional (it needs OpenCV and ``setuptools<81``); with it, the two-line shim of the spec
is applied and per-corruption output statistics (mean, std of the corrupted image, mean absolute
deviation from the clean image) are printed side by side. Also prints the UNet evaluations per
adapted image of ``diffusion_tta.ddpm_adapter`` against DDA's count. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from asklepios_diffusion_tta.corruptions import CORRUPTIONS, corrupt
from asklepios_diffusion_tta.ddpm_adapter import DDPMAdapterParams, unet_evaluations


def _reference():
    try:
        import numpy

        if not hasattr(numpy, "float_"):
            numpy.float_ = numpy.float64  # type: ignore[attr-defined]
        from imagecorruptions import corruptions as ic
    except Exception as err:
        print(f"imagecorruptions unavailable ({type(err).__name__}: {err}); timing ours only")
        return None
    original = ic.gaussian

    def gaussian(*args, multichannel=None, **kwargs):
        if multichannel:
            kwargs["channel_axis"] = -1
        return original(*args, **kwargs)

    ic.gaussian = gaussian
    import imagecorruptions

    return imagecorruptions


def _image(size: int) -> np.ndarray:
    from skimage import data
    from skimage.transform import resize

    return (resize(data.retina(), (size, size), anti_aliasing=True) * 255).astype(np.uint8)


def _stats(out: np.ndarray, clean: np.ndarray) -> tuple[float, float, float]:
    out = out.astype(np.float64)
    return out.mean(), out.std(), np.abs(out - clean).mean()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    clean = _image(args.size)
    batch = torch.from_numpy(clean).permute(2, 0, 1)[None].float().div(255)
    batch = batch.repeat(args.batch, 1, 1, 1)
    reference = _reference()
    names = [n for n in CORRUPTIONS if n != "frost"]  # frost needs user textures
    print(f"{'corruption':18s} {'ours ms/img':>11s} {'ref ms/img':>10s} {'speed-up':>8s}  stats")
    total_ours = total_ref = 0.0
    for name in names:
        start = time.perf_counter()
        for r in range(args.repeats):
            out = corrupt(batch, name, 5, torch.Generator().manual_seed(r))
        ours = (time.perf_counter() - start) / (args.repeats * args.batch) * 1e3
        total_ours += ours
        ours_img = torch.round(out[0] * 255).byte().permute(1, 2, 0).numpy()
        line = f"{name:18s} {ours:11.2f}"
        if reference is not None:
            np.random.seed(0)
            start = time.perf_counter()
            for _ in range(args.repeats):
                ref_img = reference.corrupt(clean, corruption_name=name, severity=5)
            ref = (time.perf_counter() - start) / args.repeats * 1e3
            total_ref += ref
            a, b = _stats(ours_img, clean), _stats(np.asarray(ref_img), clean)
            line += f" {ref:10.2f} {ref / ours:8.1f}x  ours {a[0]:.1f}/{a[1]:.1f}/{a[2]:.1f}"
            line += f" ref {b[0]:.1f}/{b[1]:.1f}/{b[2]:.1f} (mean/std/MAD)"
        print(line)
    if reference is not None:
        print(
            f"mean over {len(names)}: ours {total_ours / len(names):.2f} ms, reference "
            f"{total_ref / len(names):.2f} ms, speed-up {total_ref / total_ours:.1f}x"
        )
    ours_fwd, ours_bwd = unet_evaluations(DDPMAdapterParams())
    dda_fwd, dda_bwd = unet_evaluations(DDPMAdapterParams(start_index_offset=1))
    print(
        f"UNet passes per adapted image: ours {ours_fwd} fwd + {ours_bwd} bwd, "
        f"DDA code {dda_fwd} fwd + {dda_bwd} bwd (ratio {ours_fwd / dda_fwd:.2f})"
    )


if __name__ == "__main__":
    main()
