"""Benchmark: our corruptions against ``imagecorruptions`` 1.1.2 itself, per corruption, severity.

The reference runs in its own virtual environment (default
``~/.cache/asklepios/imagecorruptions-1.1.2``, created on first use with
``imagecorruptions==1.1.2``, OpenCV headless, scikit-image, SciPy and ``setuptools<81``;
``--ref-venv`` points elsewhere). It is
never a dependency of asklepios or of its tests: ``bench/imagecorruptions_ref/worker.py`` runs there
as a subprocess and applies the spec's shim (``np.float_``, ``multichannel``).

For each corruption and severity, on a batch of 64 distinct 224² RGB crops of scikit-image's sample
photographs, one thread on both sides:

* deterministic corruptions: mean |ours − reference| over every pixel (grey levels), goal ≤ 0.1;
* random ones: mean over ``--draws`` outputs (500; ``--glass-draws`` 200 for ``glass_blur``) of
  the image mean and std, relative difference, goal ≤ 2 %;
* time per image: ours on the whole batch (``corrupt`` on a uint8 batch), the reference one image at
  a time, as it runs; speed-up = reference / ours, goal ≥ 5× in geometric mean, ≥ 1× everywhere.

Usage: ``python bench/corruptions.py [--draws 500] [--severities 1 2 3 4 5] [--only NAME ...]``.
Prints a table and a summary; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from asklepios_diffusion_tta.corruptions import CORRUPTIONS, DETERMINISTIC, corrupt

WORKER = Path(__file__).resolve().parent / "imagecorruptions_ref" / "worker.py"
DEFAULT_VENV = Path.home() / ".cache" / "asklepios" / "imagecorruptions-1.1.2"
REFERENCE_PACKAGES = [
    "imagecorruptions==1.1.2",
    "opencv-python-headless",
    "scikit-image",
    "scipy",
    "numpy",
    "Pillow",
    "setuptools<81",
]
SIZE, BATCH = 224, 64
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def ensure_venv(venv: Path) -> Path:
    """Return the reference venv's Python, creating the venv on first use."""
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"creating the reference environment {venv} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(python), "-m", "pip", "install", "--quiet"]
        # imagecorruptions 1.1.2 asks for opencv-python (GUI build); the headless build suffices
        subprocess.run([*pip, *REFERENCE_PACKAGES[1:]], check=True)
        subprocess.run([*pip, "--no-deps", REFERENCE_PACKAGES[0]], check=True)
    return python


class Reference:
    """The worker process in the reference venv, one JSON job per line."""

    def __init__(self, python: Path) -> None:
        env = {**os.environ, **ONE_THREAD}
        self.process = subprocess.Popen(
            [str(python), str(WORKER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )

    def ask(self, job: dict) -> dict:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(job) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("the imagecorruptions worker stopped (see its error above)")
        return json.loads(line)

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=60)


def crops(count: int, size: int, seed: int = 0) -> np.ndarray:
    """Return ``count`` distinct ``size``² RGB crops (uint8) of scikit-image's sample photos."""
    from skimage import data
    from skimage.transform import resize

    sources = [data.retina(), data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        image = sources[i % len(sources)]
        side = int(rng.integers(size, min(image.shape[:2]) + 1))
        top = int(rng.integers(0, image.shape[0] - side + 1))
        left = int(rng.integers(0, image.shape[1] - side + 1))
        window = image[top : top + side, left : left + side]
        patch = resize(window, (size, size), anti_aliasing=True)
        out.append((patch * 255).astype(np.uint8))
    return np.stack(out)


def ours(
    batch: torch.Tensor, name: str, severity: int, draws: int, seed: int, frost: str
) -> tuple[np.ndarray, float]:
    """Run our corruption over the batch until ``draws`` outputs; return them and s per image."""
    gen = torch.Generator().manual_seed(seed)
    outputs, spent, done = [], 0.0, 0
    while done < draws:
        part = batch[: min(len(batch), draws - done)]
        started = time.perf_counter()
        out = corrupt(part, name, severity, gen, frost_texture_dir=frost)
        spent += time.perf_counter() - started
        outputs.append(out.permute(0, 2, 3, 1).numpy())
        done += len(part)
    return np.concatenate(outputs), spent / draws


def compare(
    name: str, ours_out: np.ndarray, ref: dict, images: np.ndarray
) -> tuple[str, float, bool]:
    """Return the statistics column, the figure checked against the goal, and whether it holds."""
    if name in DETERMINISTIC:
        diff = np.abs(ours_out[: len(images)].astype(np.int64) - ref["outputs"].astype(np.int64))
        mad = float(diff.mean())
        return f"mean |Δ| {mad:6.3f} (max {int(diff.max()):3d})", mad, mad <= 0.1
    values = ours_out.astype(np.float64).reshape(len(ours_out), -1)
    mean_ours, std_ours = float(values.mean(1).mean()), float(values.std(1).mean())
    mean_ref, std_ref = float(ref["means"].mean()), float(ref["stds"].mean())
    rel_mean = abs(mean_ours - mean_ref) / mean_ref
    rel_std = abs(std_ours - std_ref) / std_ref
    worst = max(rel_mean, rel_std)
    text = (
        f"mean {mean_ours:6.2f}/{mean_ref:6.2f} ({100 * rel_mean:4.2f} %) "
        f"std {std_ours:5.2f}/{std_ref:5.2f} ({100 * rel_std:4.2f} %)"
    )
    return text, 100 * worst, worst <= 0.02


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=500, help="outputs per random corruption")
    parser.add_argument(
        "--glass-draws", type=int, default=200, help="outputs of glass_blur (about 0.5 s each)"
    )
    parser.add_argument("--severities", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--only", nargs="+", default=list(CORRUPTIONS))
    parser.add_argument("--ref-venv", type=Path, default=DEFAULT_VENV)
    parser.add_argument("--seed", type=int, default=0, help="offsets every draw's seed")
    args = parser.parse_args()
    torch.set_num_threads(1)
    python = ensure_venv(args.ref_venv)
    reference = Reference(python)
    info = reference.ask({"op": "info"})
    images = crops(BATCH, SIZE)
    batch = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    print(
        f"imagecorruptions {info['version']} (its venv: {args.ref_venv}) vs asklepios, "
        f"{BATCH} images of {SIZE}², {args.draws} draws per random corruption, one thread each"
    )
    print(f"{'corruption':18s}{'sev':>4s}{'ours ms':>9s}{'ref ms':>9s}{'speed-up':>9s}  statistics")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "images.npy", images)
        for name in args.only:
            for severity in args.severities:
                deterministic = name in DETERMINISTIC
                draws = args.glass_draws if name == "glass_blur" else args.draws
                draws = len(images) if deterministic else draws
                seed = 1000 * severity + len(rows) + 100_000 * args.seed
                ours_out, ours_s = ours(batch, name, severity, draws, seed, info["frost"])
                out_file = Path(tmp) / "ref.npz"
                ref_s = reference.ask(
                    {
                        "op": "run",
                        "name": name,
                        "severity": severity,
                        "draws": draws,
                        "seed": seed,
                        "deterministic": deterministic,
                        "images": str(Path(tmp) / "images.npy"),
                        "out": str(out_file),
                    }
                )["seconds_per_image"]
                with np.load(out_file) as ref:
                    stats, figure, ok = compare(name, ours_out, dict(ref), images)
                speedup = ref_s / ours_s
                rows.append((name, severity, ours_s, ref_s, speedup, figure, ok, deterministic))
                flag = "" if ok else "  MISSES"
                print(
                    f"{name:18s}{severity:4d}{1e3 * ours_s:9.2f}{1e3 * ref_s:9.2f}"
                    f"{speedup:8.1f}x  {stats}{flag}",
                    flush=True,
                )
    reference.close()
    speedups = [row[4] for row in rows]
    geo = math.exp(sum(math.log(s) for s in speedups) / len(speedups))
    slower = [f"{r[0]} s{r[1]} ({r[4]:.2f}x)" for r in rows if r[4] < 1]
    missed = [f"{r[0]} s{r[1]}" for r in rows if not r[6]]
    print(
        f"geometric-mean speed-up {geo:.1f}x over {len(rows)} (corruption, severity) pairs; "
        f"total per image over them: ours {1e3 * sum(r[2] for r in rows):.1f} ms, reference "
        f"{1e3 * sum(r[3] for r in rows):.1f} ms"
    )
    print(f"slower than the reference: {', '.join(slower) or 'none'}")
    print(f"statistics outside the goal: {', '.join(missed) or 'none'}")


if __name__ == "__main__":
    main()
