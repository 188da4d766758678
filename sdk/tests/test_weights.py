"""Weight loading from local files: formats, key mapping, checks, and errors that list paths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from asklepios_sdk import WeightsError, WeightsSpec
from asklepios_sdk.weights import (
    file_sha256,
    load_weights,
    read_state_dict,
    remap_keys,
    resolve_weights_path,
)
from pydantic import ValidationError
from safetensors.torch import save_file
from torch import nn


def _model(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))


def _same(a: nn.Module, b: nn.Module) -> bool:
    return all(
        torch.equal(x, y)
        for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )


def test_safetensors_and_torch_files_load_exactly(tmp_path: Path) -> None:
    source = _model(1)
    save_file(source.state_dict(), tmp_path / "w.safetensors")
    torch.save(source.state_dict(), tmp_path / "w.pt")
    for name in ("w.safetensors", "w.pt"):
        target = _model(2)
        report = load_weights(target, WeightsSpec(path=str(tmp_path / name)))
        assert _same(source, target)
        assert report.missing_keys == () and report.unexpected_keys == ()
        assert report.sha256 == file_sha256(tmp_path / name)
        assert len(report.loaded_keys) == 4
        json.dumps(report.as_record())


def test_nested_checkpoint_prefix_and_rename(tmp_path: Path) -> None:
    source = _model(1)
    wrapped = {f"module.net.{k}": v for k, v in source.state_dict().items()}
    torch.save({"epoch": 3, "state_dict": wrapped}, tmp_path / "ckpt.pth")
    assert set(read_state_dict(tmp_path / "ckpt.pth")) == set(wrapped)
    target = nn.Sequential()
    target.add_module("a", nn.Linear(3, 4))
    target.add_module("r", nn.ReLU())
    target.add_module("b", nn.Linear(4, 2))
    spec = WeightsSpec(
        path=str(tmp_path / "ckpt.pth"), prefix="module.net.", rename={"0.": "a.", "2.": "b."}
    )
    load_weights(target, spec)
    assert torch.equal(target.a.weight, source[0].weight)
    assert torch.equal(target.b.bias, source[2].bias)


def test_remap_keys_longest_prefix_wins() -> None:
    state = {"fc.bias": torch.zeros(1), "fc.weight": torch.ones(1), "x": torch.ones(1)}
    out = remap_keys(state, rename={"fc.": "head.", "fc.bias": "head.b"})
    assert set(out) == {"head.b", "head.weight", "x"}
    assert set(remap_keys(state, prefix="fc.")) == {"bias", "weight"}


def test_strict_reports_missing_and_unexpected_then_partial_load(tmp_path: Path) -> None:
    source = _model(1)
    state = dict(source.state_dict())
    state.pop("2.bias")
    state["extra.weight"] = torch.zeros(1)
    save_file(state, tmp_path / "part.safetensors")
    target = _model(2)
    before = target[2].bias.clone()
    with pytest.raises(WeightsError, match=r"missing 1: 2\.bias; unexpected 1: extra\.weight"):
        load_weights(
            target, WeightsSpec(path=str(tmp_path / "part.safetensors")), where="model.backbone"
        )
    assert torch.equal(target[2].bias, before)  # nothing loaded on error
    report = load_weights(
        target, WeightsSpec(path=str(tmp_path / "part.safetensors"), strict=False)
    )
    assert report.missing_keys == ("2.bias",) and report.unexpected_keys == ("extra.weight",)
    assert torch.equal(target[0].weight, source[0].weight)
    assert torch.equal(target[2].bias, before)
    assert "missing 1" in report.summary()


def test_missing_file_lists_paths_tried_and_never_falls_back(tmp_path: Path) -> None:
    target = _model(2)
    spec = WeightsSpec(path="nope.pt")
    with pytest.raises(WeightsError) as info:
        load_weights(target, spec, where="model.backbone", base_dir=tmp_path)
    message = str(info.value)
    assert message.startswith("model.backbone: weights path='nope.pt' not found; tried:")
    assert str(tmp_path / "nope.pt") in message and str(Path.cwd() / "nope.pt") in message
    assert "no fallback to random weights" in message


def test_sha256_mismatch_shape_mismatch_and_no_matching_key(tmp_path: Path) -> None:
    save_file(_model(1).state_dict(), tmp_path / "w.safetensors")
    spec = WeightsSpec(path=str(tmp_path / "w.safetensors"), sha256="0" * 64)
    with pytest.raises(WeightsError, match="has sha256"):
        load_weights(_model(), spec)
    good = WeightsSpec(
        path=str(tmp_path / "w.safetensors"), sha256=file_sha256(tmp_path / "w.safetensors").upper()
    )
    load_weights(_model(), good)
    wide = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 2))
    with pytest.raises(WeightsError, match=r"0\.weight: file \(4, 3\) vs model \(5, 3\)"):
        load_weights(wide, WeightsSpec(path=str(tmp_path / "w.safetensors")))
    with pytest.raises(WeightsError, match=r"no key .* matches the model"):
        load_weights(
            nn.Sequential(nn.Sequential(nn.Linear(3, 4))),
            WeightsSpec(path=str(tmp_path / "w.safetensors"), strict=False),
        )
    with pytest.raises(WeightsError, match=r"prefix 'backbone\.'"):
        load_weights(
            _model(), WeightsSpec(path=str(tmp_path / "w.safetensors"), prefix="backbone.")
        )


def test_unreadable_and_pickled_code_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="could not read weights"):
        read_state_dict(tmp_path / "junk.pt")
    torch.save({"fn": _model}, tmp_path / "code.pt")
    with pytest.raises(WeightsError, match="weights_only=True"):
        read_state_dict(tmp_path / "code.pt")


def test_hub_cache_ids_resolve_locally(tmp_path: Path) -> None:
    repo = tmp_path / "models--lab--tiny"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123\n")
    snapshot = repo / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    save_file(_model(1).state_dict(), snapshot / "model.safetensors")
    found = resolve_weights_path(WeightsSpec(cache_id="hf-hub:lab/tiny"), cache_dirs=[tmp_path])
    assert found == snapshot / "model.safetensors"
    explicit = WeightsSpec(cache_id="lab/tiny@abc123/model.safetensors")
    assert resolve_weights_path(explicit, cache_dirs=[tmp_path]) == found
    torch.save(_model(1).state_dict(), tmp_path / "r18.pth")
    torch_id = WeightsSpec(cache_id="torch-hub:r18.pth")
    assert resolve_weights_path(torch_id, cache_dirs=[tmp_path]) == tmp_path / "r18.pth"
    with pytest.raises(WeightsError, match="models--lab--other"):
        resolve_weights_path(WeightsSpec(cache_id="hf-hub:lab/other"), cache_dirs=[tmp_path])
    with pytest.raises(WeightsError, match="org/name"):
        resolve_weights_path(WeightsSpec(cache_id="hf-hub:tiny"), cache_dirs=[tmp_path])


def test_weights_spec_needs_exactly_one_source() -> None:
    with pytest.raises(ValidationError, match="exactly one of 'path'"):
        WeightsSpec()
    with pytest.raises(ValidationError, match="exactly one of 'path'"):
        WeightsSpec(path="a.pt", cache_id="hf-hub:a/b")
