"""Atomic writes: a file (or folder) appears whole under its name, or not at all.

Everything asklepios and its plugins write into a run directory or a cache goes through here, so a
run killed at any instant leaves either the previous version or the new one, never a truncated
file. The content is written to a temporary sibling (same folder, so the rename stays on one file
system), flushed to disk, then renamed over the target. The result gets the permissions a plain
``open(path, "w")`` would give (``0o666`` less the umask), not ``mkstemp``'s private ``0o600``.
"""

from __future__ import annotations

import json as _json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["write_atomic", "write_dir_atomic"]

_NOTHING = object()


def _umask_mode(base: int) -> int:
    mask = os.umask(0)
    os.umask(mask)
    return base & ~mask


def _sync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(
    path: str | os.PathLike[str],
    content: bytes | str | None = None,
    *,
    json: Any = _NOTHING,
    write: Callable[[Path], object] | None = None,
    encoding: str = "utf-8",
    fsync: bool = True,
) -> Path:
    """Write ``path`` atomically from exactly one of ``content``, ``json`` or ``write``.

    Args:
        path: the file to create or replace; its folder is created when missing.
        content: bytes, or text encoded with ``encoding``.
        json: a JSON-serialisable object, written indented with a final newline.
        write: ``write(tmp_path)`` writes the file itself (``fig.savefig``, ``torch.save``,
            ``safetensors`` ``save_file``); ``tmp_path`` ends with the target's suffix, so
            writers that pick a format by extension choose the right one.
        encoding: the encoding of text ``content``.
        fsync: flush the file and the rename to disk (off only for throw-away caches).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        TypeError: not exactly one source given, or ``content`` of another type.
    """
    given = [content is not None, json is not _NOTHING, write is not None]
    if sum(given) != 1:
        raise TypeError("write_atomic takes exactly one of content, json= and write=")
    payload: bytes | bytearray | memoryview | None = None
    if write is None:
        if json is not _NOTHING:
            content = _json.dumps(json, indent=2) + "\n"
        if isinstance(content, str):
            content = content.encode(encoding)
        if not isinstance(content, bytes | bytearray | memoryview):
            raise TypeError(f"content must be bytes or str, not {type(content).__name__}")
        payload = content
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=f".tmp{target.suffix}", dir=target.parent
    )
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:
            if payload is not None:
                handle.write(payload)
                if fsync:
                    handle.flush()
                    os.fsync(handle.fileno())
        if write is not None:
            write(tmp)
            if fsync:
                with open(tmp, "rb+") as again:
                    os.fsync(again.fileno())
        os.chmod(tmp, _umask_mode(0o666))
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if fsync:
        _sync_dir(target.parent)
    return target


def write_dir_atomic(path: str | os.PathLike[str], write: Callable[[Path], object]) -> Path:
    """Create or replace the folder ``path`` atomically: ``write(tmp_dir)`` fills a sibling.

    For writers that produce a folder (``save_pretrained``). The old folder, if any, is moved
    aside and removed only after the new one is in place.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
    old = target.with_name(f".{target.name}-old")
    try:
        write(tmp)
        os.chmod(tmp, _umask_mode(0o777))
        if target.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    _sync_dir(target.parent)
    return target
