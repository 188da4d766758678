"""Checkpoints hold only trainable weights; frozen SAM/CLIP are referenced by file and sha256."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch
from _tiny import batch, chain, clip_checkpoint, sam_checkpoint
from asklepios_sdk import WeightsError
from asklepios_sdk.weights import file_sha256
from asklepios_tpdrseg._frozen import referenced_weights


def _size(state) -> int:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.tell()


def test_the_state_dict_leaves_out_frozen_file_weights_and_names_them() -> None:
    model = chain()
    state = model.state_dict()
    assert not [k for k in state if ".encoder." in k and "blocks" in k]
    assert not [k for k in state if k.startswith("model.model.model.clip.clip.")]
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable <= set(state)
    sources = {v["file"]: v["sha256"] for v in referenced_weights(model).values()}
    assert sources[str(Path(sam_checkpoint()).resolve())] == file_sha256(sam_checkpoint())
    assert file_sha256(clip_checkpoint()) in sources.values()
    full = {**state, **{n: p for n, p in model.named_parameters()}}
    assert _size(state) < 0.5 * _size(full)
    # besides the trainable parameters, only these small entries: a frozen SAM/CLIP weight
    # (the decoder's unused multimask and IoU heads included) leaking in would fail here
    chain_prior, chain_encoder = "model.model.model.", "model.model.model.model."
    assert set(state) - trainable == {
        "_extra_state",  # mask decoder: its SAM file and sha256
        "pe_layer.positional_encoding_gaussian_matrix",  # SAM's dense PE, buffer (2, C_p / 2)
        chain_prior + "_extra_state",  # explicit prior: its CLIP file and sha256
        chain_prior + "clip.pixel_mean",  # CLIP normalisation, buffers (1, 3, 1, 1)
        chain_prior + "clip.pixel_std",
        chain_encoder + "_extra_state",  # SAM encoder: its SAM file and sha256
    }
    assert state["pe_layer.positional_encoding_gaussian_matrix"].shape == (2, 16)
    assert state[chain_prior + "clip.pixel_mean"].numel() == 3
    sam = {"file": str(Path(sam_checkpoint()).resolve()), "sha256": file_sha256(sam_checkpoint())}
    assert state["_extra_state"] == state[chain_encoder + "_extra_state"] == sam
    assert state[chain_prior + "_extra_state"]["sha256"] == file_sha256(clip_checkpoint())


def test_a_trained_model_resumes_exactly_from_its_checkpoint() -> None:
    model = chain()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    data = batch(2, seed=1)
    for _ in range(2):
        loss = model(data)["logits"].float().sigmoid().mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    restored = chain()
    restored.load_state_dict(torch.load(buffer, weights_only=True))  # strict
    model.eval()
    restored.eval()
    with torch.no_grad():
        torch.testing.assert_close(restored(data)["logits"], model(data)["logits"])
    assert any(float(i.gamma.detach().abs()) > 0 for i in restored.model.model.injectors)


def test_resuming_on_top_of_other_frozen_weights_is_refused(tmp_path) -> None:
    import open_clip

    state = chain().state_dict()
    other = tmp_path / "other_clip.pt"
    torch.manual_seed(7)
    from _tiny import TINY_CLIP

    torch.save(open_clip.CLIP(**TINY_CLIP["model_cfg"]).state_dict(), other)
    from asklepios_sdk import BuildContext  # noqa: F401 - the context the chain uses

    model = chain()
    prior = model.model.model.model
    prior.weights_source = {"file": str(other), "sha256": file_sha256(other)}
    with pytest.raises(WeightsError, match="trained on top of"):
        model.load_state_dict(state)
