"""Sub-commands: ``asklepios synfer write-digits-fetext DIR`` and ``write-tiny-sd DIR``."""

from __future__ import annotations

import argparse

__all__ = ["write_digits_fetext", "write_tiny_sd"]


def write_digits_fetext(argv: list[str]) -> int:
    """Write scikit-learn's digits as a FEText source folder (PNGs, captions, 41-bit AUs)."""
    parser = argparse.ArgumentParser(prog="asklepios synfer write-digits-fetext")
    parser.add_argument("folder")
    parser.add_argument("--image-size", type=int, default=16)
    parser.add_argument("--classes", type=int, default=8)
    parser.add_argument("--per-class", type=int, default=40)
    args = parser.parse_args(argv)
    from asklepios_synfer.datasets import write_fetext
    from asklepios_synfer.params import DigitsFETextParams

    params = DigitsFETextParams(
        image_size=args.image_size, classes=args.classes, per_class=args.per_class
    )
    print(write_fetext(args.folder, params))
    return 0


def write_tiny_sd(argv: list[str]) -> int:
    """Write a tiny random Stable-Diffusion-shaped model as a diffusers folder."""
    parser = argparse.ArgumentParser(prog="asklepios synfer write-tiny-sd")
    parser.add_argument("folder")
    parser.add_argument("--resolution", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from asklepios_synfer.ldm import write_tiny_pipeline
    from asklepios_synfer.params import TinyLDMConfig

    print(
        write_tiny_pipeline(args.folder, TinyLDMConfig(resolution=args.resolution, seed=args.seed))
    )
    return 0
