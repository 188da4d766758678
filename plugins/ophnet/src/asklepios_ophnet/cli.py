"""Command line of the plugin: challenge labels, CSV -> ActivityNet JSON, .pkl -> .npy.

Run as ``asklepios ophnet COMMAND`` (the plugin registers the commands with the core's
``register_commands`` hook), ``python -m asklepios_ophnet COMMAND`` or ``asklepios-ophnet COMMAND``:

- ``challenge LOCA_ALL_CSV OUT_DIR``: write ``OphNet2024_loca_challenge.csv`` (rare labels to
  "Others") and ``OphNet2024_loca_challenge_phase.csv`` (consecutive phases merged).
- ``convert CSV OUT_JSON --level phase|operation [--video-info FILE | --default-fps FPS]``: the
  ActivityNet-style JSON that ``ophnet.tal_features`` and the reference code read.
- ``pkl-to-npy SRC_DIR DST_DIR --trust-pickle``: convert trusted pickled feature files.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from asklepios_sdk import AsklepiosError
from asklepios_sdk.io import write_atomic

__all__ = ["build_parser", "challenge", "convert", "main", "pkl_to_npy"]


def _challenge(args: argparse.Namespace) -> str:
    from asklepios_ophnet.annotations import read_loca_csv
    from asklepios_ophnet.labels import challenge_remap, merge_consecutive_phases

    table = challenge_remap(
        read_loca_csv(args.csv), args.min_count, args.other_phase, args.other_operation
    )
    merged = merge_consecutive_phases(table)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "OphNet2024_loca_challenge.csv", table.to_csv(index=False))
    write_atomic(out / "OphNet2024_loca_challenge_phase.csv", merged.to_csv(index=False))
    return f"wrote {len(table)} operation rows and {len(merged)} merged phase rows to {out}"


def _convert(args: argparse.Namespace) -> str:
    from asklepios_ophnet.annotations import read_loca_csv, read_video_info
    from asklepios_ophnet.labels import to_activitynet

    table = read_loca_csv(args.csv)
    info = read_video_info(args.video_info) if args.video_info else {}
    document = to_activitynet(table, args.level, info, args.default_fps, args.version)
    write_atomic(args.out, json=document)
    return f"wrote {len(document['database'])} videos, {len(table)} segments to {args.out}"


def _pkl_to_npy(args: argparse.Namespace) -> str:
    from asklepios_ophnet.features import convert_pickles

    written = convert_pickles(args.source, args.target, args.trust_pickle)
    return f"wrote {len(written)} .npy files to {args.target}"


def build_parser(prog: str = "asklepios-ophnet") -> argparse.ArgumentParser:
    """Return the parser of ``python -m asklepios_ophnet``."""
    parser = argparse.ArgumentParser(
        prog=prog, description="OphNet annotation and feature utilities."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    challenge = commands.add_parser("challenge", help="write the challenge-label CSVs")
    challenge.add_argument("csv", help="OphNet2024_loca_all.csv")
    challenge.add_argument("out_dir", help="folder for the two CSVs")
    challenge.add_argument("--min-count", type=int, default=15)
    challenge.add_argument("--other-phase", type=int, default=51)
    challenge.add_argument("--other-operation", type=int, default=106)
    challenge.set_defaults(run=_challenge)
    convert = commands.add_parser("convert", help="localisation CSV -> ActivityNet JSON")
    convert.add_argument("csv", help="a localisation CSV")
    convert.add_argument("out", help="the JSON file to write")
    convert.add_argument("--level", choices=("phase", "operation"), default="phase")
    convert.add_argument(
        "--video-info", help="fps/duration: a CSV video_id,fps,duration or a released JSON"
    )
    convert.add_argument("--default-fps", type=float, help="fps of videos without video info")
    convert.add_argument("--version", default="OphNet2024")
    convert.set_defaults(run=_convert)
    pickles = commands.add_parser("pkl-to-npy", help="convert trusted .pkl features to .npy")
    pickles.add_argument("source", help="folder of .pkl files")
    pickles.add_argument("target", help="folder for the .npy files")
    pickles.add_argument(
        "--trust-pickle",
        action="store_true",
        help="confirm the files are trusted: unpickling runs code stored in them",
    )
    pickles.set_defaults(run=_pkl_to_npy)
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "asklepios-ophnet") -> int:
    """Run one command; print errors without a traceback and return the exit code."""
    args = build_parser(prog).parse_args(argv)
    try:
        message = args.run(args)
    except AsklepiosError as err:
        sys.stderr.write(f"error: {err}\n")
        return 1
    sys.stdout.write(message + "\n")
    return 0


def challenge(argv: list[str]) -> int:
    """Write the challenge-label CSVs (Others remap, merged phases) from loca_all."""
    return main(["challenge", *argv], prog="asklepios ophnet")


def convert(argv: list[str]) -> int:
    """Convert a localisation CSV to the ActivityNet-style JSON the features dataset reads."""
    return main(["convert", *argv], prog="asklepios ophnet")


def pkl_to_npy(argv: list[str]) -> int:
    """Convert trusted pickled feature files to .npy (needs --trust-pickle)."""
    return main(["pkl-to-npy", *argv], prog="asklepios ophnet")
