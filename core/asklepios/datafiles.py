"""Check a dataset's files before training, and report every bad one at once.

Datasets read their files lazily (in DataLoader workers), so without a check a missing or
corrupt image in the test split surfaces after the last training epoch. A dataset that reads
files lists them through :meth:`asklepios_sdk.Dataset.files` (``(row, path)`` per split, or
``(row, path, listing)`` naming the manifest line); :func:`verify_dataset` then checks them at
the level of ``data.verify``:

* ``exists``: every path is an existing, non-empty regular file;
* ``headers``: and every image PIL can open has a readable header (format and size), which
  catches files that are not images at all or are cut before the pixel data starts;
* ``full``: and every image decodes completely (catches truncated pixel data; slow);
* ``none``: no check;
* ``auto`` (default): ``headers`` for up to :data:`HEADER_LIMIT` files, ``exists`` above.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from asklepios_sdk import AsklepiosError

__all__ = [
    "HEADER_LIMIT",
    "DataFilesError",
    "check_file",
    "resolve_level",
    "verified_key",
    "verify_dataset",
]

HEADER_LIMIT = 20_000
"""Up to this many files, ``data.verify: auto`` reads image headers; above, it checks existence."""

_SHOWN = 50


class DataFilesError(AsklepiosError):
    """Files a dataset lists are missing or unreadable; the message lists every one."""


def resolve_level(level: str, count: int) -> str:
    """Return the check ``auto`` stands for with ``count`` files (other levels unchanged)."""
    if level != "auto":
        return level
    return "headers" if count <= HEADER_LIMIT else "exists"


def _image_suffixes() -> frozenset[str]:
    from PIL import Image

    Image.init()
    return frozenset(Image.registered_extensions())


def check_file(path: str | os.PathLike[str], level: str, images: Iterable[str] = ()) -> str | None:
    """Return what is wrong with ``path`` at ``level``, or ``None`` when it passes.

    Args:
        path: the file to check.
        level: ``exists``, ``headers`` or ``full``.
        images: lower-case suffixes whose headers (``headers``) or pixels (``full``) are read;
            other files are only checked to exist and be non-empty.
    """
    file = Path(path)
    try:
        info = file.stat()
    except FileNotFoundError:
        return "does not exist"
    except OSError as err:
        return f"cannot be read ({err.strerror or err})"
    if not file.is_file():
        return "is not a file"
    if info.st_size == 0:
        return "is empty (0 bytes)"
    if level == "exists" or file.suffix.lower() not in images:
        return None
    from PIL import Image

    try:
        with Image.open(file) as image:
            if level == "full":
                image.load()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        return f"is not a readable image ({type(err).__name__}: {err})"
    return None


def verified_key(data: Any) -> str:
    """Return what identifies one file check: a data section's dataset and ``data.verify``."""
    return json.dumps([data.dataset.model_dump(mode="json"), data.verify], sort_keys=True)


def verify_dataset(dataset: Any, level: str, where: str) -> int:
    """Check every file ``dataset`` lists, in every split; return how many were checked.

    Args:
        dataset: an :class:`asklepios_sdk.Dataset` (one without files passes at once).
        level: ``data.verify``: ``auto``, ``none``, ``exists``, ``headers`` or ``full``.
        where: the dataset's config path and id, e.g. ``data.dataset [core.csv]``.

    Raises:
        DataFilesError: listing every bad file with its split and row.
    """
    if level == "none":
        return 0
    listed = [
        (split, int(entry[0]), str(entry[1]), str(entry[2]) if len(entry) > 2 else "")
        for split in dataset.split_names
        for entry in dataset.files(split)
    ]
    if not listed:
        return 0
    level = resolve_level(level, len(listed))
    images = _image_suffixes() if level in ("headers", "full") else frozenset()
    workers = min(16, 4 * (os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        problems = list(pool.map(lambda item: check_file(item[2], level, images), listed))
    bad = [(*item, problem) for item, problem in zip(listed, problems, strict=True) if problem]
    if bad:
        raise DataFilesError(_report(bad, len(listed), level, where))
    return len(listed)


def _report(bad: list[tuple[str, int, str, str, str]], total: int, level: str, where: str) -> str:
    lines = [
        f"{where}: {len(bad)} of {total} files failed the pre-flight check "
        f"(data.verify={level}), before any training:"
    ]
    lines += [
        f"  - split '{s}' row {row}{f' ({source})' if source else ''}: {path} {why}"
        for s, row, path, source, why in bad[:_SHOWN]
    ]
    if len(bad) > _SHOWN:
        lines.append(f"  ... and {len(bad) - _SHOWN} more")
    if len(bad) == total and all(why == "does not exist" for *_, why in bad):
        lines.append("  none of the files exists: check the dataset's root or paths")
    lines.append(
        "  fix or remove these files (or their rows), or skip the check with --set data.verify=none"
    )
    return "\n".join(lines)
