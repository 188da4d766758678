"""Atomic writes: a file or folder appears whole under its name, or the old one stays."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from asklepios_sdk.io import write_atomic, write_dir_atomic


@pytest.fixture
def umask_027() -> Iterator[int]:
    """Run with umask 027, restoring the previous one."""
    previous = os.umask(0o027)
    try:
        yield 0o027
    finally:
        os.umask(previous)


def _siblings(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir())


def test_text_bytes_and_json(tmp_path: Path) -> None:
    text = write_atomic(tmp_path / "deep" / "er" / "notes.txt", "héllo\n")
    assert text == tmp_path / "deep" / "er" / "notes.txt"  # missing folders are created
    assert text.read_text(encoding="utf-8") == "héllo\n"
    latin = write_atomic(tmp_path / "latin.txt", "é", encoding="latin-1")
    assert latin.read_bytes() == b"\xe9"
    raw = write_atomic(str(tmp_path / "blob.bin"), b"\x00\x01\xff", fsync=False)
    assert raw.read_bytes() == b"\x00\x01\xff"
    data = {"b": [1, 2.5, None], "a": "x"}
    path = write_atomic(tmp_path / "record.json", json=data)
    assert json.loads(path.read_text()) == data and path.read_text().endswith("}\n")
    assert write_atomic(tmp_path / "null.json", json=None).read_text() == "null\n"
    assert _siblings(path) == ["blob.bin", "deep", "latin.txt", "null.json", "record.json"]


def test_replacing_an_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "metrics.txt"
    write_atomic(target, "old")
    write_atomic(target, "new")
    assert target.read_text() == "new" and _siblings(target) == ["metrics.txt"]


def test_write_callback_gets_a_temporary_path_with_the_target_suffix(tmp_path: Path) -> None:
    seen: list[Path] = []

    def save(tmp: Path) -> None:  # like fig.savefig, which picks the format by extension
        seen.append(tmp)
        assert tmp.parent == tmp_path and tmp != tmp_path / "plot.png"
        tmp.write_bytes(b"\x89PNG fake")

    path = write_atomic(tmp_path / "plot.png", write=save)
    assert seen[0].suffix == ".png" and not seen[0].exists()
    assert path.read_bytes() == b"\x89PNG fake" and _siblings(path) == ["plot.png"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"content": "a", "json": {}},
        {"content": "a", "write": print},
        {"json": 1, "write": print},
    ],
)
def test_exactly_one_source(tmp_path: Path, kwargs: dict[str, object]) -> None:
    with pytest.raises(TypeError, match="exactly one of content, json= and write="):
        write_atomic(tmp_path / "x", **kwargs)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_content_of_another_type_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="content must be bytes or str, not int"):
        write_atomic(tmp_path / "x.txt", 3)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_permissions_follow_the_umask(tmp_path: Path, umask_027: int) -> None:
    for path in (
        write_atomic(tmp_path / "a.txt", "a"),
        write_atomic(tmp_path / "b.json", json={}),
        write_atomic(tmp_path / "c.png", write=lambda tmp: tmp.write_bytes(b"c")),
    ):
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask_027 == 0o640  # not mkstemp's 0o600
    folder = write_dir_atomic(tmp_path / "model", write=lambda tmp: (tmp / "w").write_text("w"))
    assert folder.stat().st_mode & 0o777 == 0o777 & ~umask_027 == 0o750


def test_an_error_in_the_writer_keeps_the_old_file_and_leaves_no_temp_file(
    tmp_path: Path,
) -> None:
    target = write_atomic(tmp_path / "weights.pt", b"old weights")

    def crash(tmp: Path) -> None:
        tmp.write_bytes(b"half of the new wei")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomic(target, write=crash)
    assert target.read_bytes() == b"old weights"
    assert _siblings(target) == ["weights.pt"]

    class Unserialisable:
        pass

    with pytest.raises(TypeError, match="not JSON serializable"):
        write_atomic(tmp_path / "record.json", json={"x": Unserialisable()})
    assert _siblings(target) == ["weights.pt"]


def test_write_dir_atomic_creates_and_replaces_a_folder(tmp_path: Path) -> None:
    def first(tmp: Path) -> None:
        (tmp / "config.json").write_text("{}")
        (tmp / "old_only.bin").write_bytes(b"1")

    def second(tmp: Path) -> None:
        (tmp / "config.json").write_text('{"v": 2}')
        (tmp / "sub").mkdir()
        (tmp / "sub" / "model.safetensors").write_bytes(b"2")

    target = write_dir_atomic(tmp_path / "out" / "pretrained", write=first)
    assert sorted(p.name for p in target.iterdir()) == ["config.json", "old_only.bin"]
    assert write_dir_atomic(target, write=second) == target
    assert sorted(p.name for p in target.iterdir()) == ["config.json", "sub"]  # nothing merged
    assert (target / "sub" / "model.safetensors").read_bytes() == b"2"
    assert _siblings(target) == ["pretrained"]  # no temporary or old folder left


def test_write_dir_atomic_keeps_the_old_folder_when_the_writer_fails(tmp_path: Path) -> None:
    target = write_dir_atomic(tmp_path / "pretrained", lambda tmp: (tmp / "a").write_text("a"))

    def crash(tmp: Path) -> None:
        (tmp / "partial").write_text("p")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        write_dir_atomic(target, write=crash)
    assert sorted(p.name for p in target.iterdir()) == ["a"]
    assert _siblings(target) == ["pretrained"]
