"""Convert MONICA's pickled label map (``dic.npy``) to a CSV that needs no unpickling.

Usage: ``python -m asklepios_longtail.split_list_convert dic.npy labels.csv --trust-pickle``.
The output is written atomically (:func:`asklepios_sdk.io.write_atomic`).
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from collections.abc import Sequence
from pathlib import Path

from asklepios_sdk.io import write_atomic

__all__ = ["convert", "main"]


def convert(source: str | Path, target: str | Path, trust_pickle: bool = False) -> int:
    """Write ``source``'s label map to ``target`` as ``path,label`` rows; return the row count."""
    from asklepios_longtail.datasets import read_label_map

    mapping = read_label_map(source, trust_pickle=trust_pickle)
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(["path", "label"])
    for key in sorted(mapping):
        writer.writerow([key, mapping[key]])
    write_atomic(target, text.getvalue())
    return len(mapping)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the converter from the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="MONICA dic.npy (a pickled dict path -> label)")
    parser.add_argument("target", help="CSV file to write")
    parser.add_argument(
        "--trust-pickle",
        action="store_true",
        help="confirm that you trust the file: unpickling can run arbitrary code",
    )
    args = parser.parse_args(argv)
    from asklepios_sdk import AsklepiosError

    try:
        rows = convert(args.source, args.target, args.trust_pickle)
    except AsklepiosError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {rows} labels to {args.target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
