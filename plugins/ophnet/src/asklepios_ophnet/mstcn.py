"""MS-TCN: multi-stage temporal convolution for frame-wise phase recognition on clip features.

A single stage maps its input to ``num_f_maps`` channels (1x1 conv), applies ``num_layers``
dilated residual layers (dilation ``2^i``, kernel 3: ``x + dropout(conv1x1(relu(dilated(x))))``,
masked) and a 1x1 classifier. Stage 1 reads the features; each later stage reads the softmax of
the previous stage's logits. Every stage's logits are trained with cross-entropy plus a truncated
smoothing term (:class:`MSTCNLoss`). Each stage's input projection is masked too (the reference
masks from the first residual layer on; it trains one unpadded video per batch), so an item's
output does not depend on the padding of its batch.

References:
    Farha and Gall, MS-TCN: Multi-Stage Temporal Convolutional Network for Action
    Segmentation, CVPR 2019.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from asklepios_sdk import Backbone, Batch, BuildContext, ComponentError, Loss, LossOutput
from asklepios_sdk.sequences import IGNORE_INDEX, example_sequence_batch, pad_sequences
from torch import Tensor, nn

from asklepios_ophnet.params import MSTCNLossParams, MSTCNParams

__all__ = ["MSTCN", "MSTCNLoss", "decode_segments"]


class _DilatedResidual(nn.Module):
    def __init__(self, dilation: int, channels: int, dropout: float) -> None:
        super().__init__()
        self.dilated = nn.Conv1d(channels, channels, 3, padding=dilation, dilation=dilation)
        self.pointwise = nn.Conv1d(channels, channels, 1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        out = self.dropout(self.pointwise(F.relu(self.dilated(x))))
        return (x + out) * mask


class _Stage(nn.Module):
    def __init__(self, layers: int, maps: int, dim: int, classes: int, dropout: float) -> None:
        super().__init__()
        self.inp = nn.Conv1d(dim, maps, 1)
        self.layers = nn.ModuleList(_DilatedResidual(2**i, maps, dropout) for i in range(layers))
        self.out = nn.Conv1d(maps, classes, 1)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        hidden = self.inp(x) * mask  # masked, so padded steps never leak into real ones
        for layer in self.layers:
            hidden = layer(hidden, mask)
        return self.out(hidden) * mask


def decode_segments(
    probs: Tensor, mask: Tensor, background: int | None = None
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Turn per-step class probabilities into scored segments, one per run of one argmax class.

    A run of steps ``a .. b-1`` with the same argmax ``k`` (not ``background``) becomes segment
    ``[a, b]`` of class ``k`` scored by the mean probability of ``k`` over the run.

    Args:
        probs: ``[B, T, K]`` probabilities; mask: ``[B, T]`` real steps.
        background: a class that yields no segment.

    Returns:
        ``(segments [B, P, 2], scores [B, P], labels [B, P], segment_mask [B, P])``.
    """
    segments, scores, labels = [], [], []
    for item_probs, item_mask in zip(probs, mask, strict=True):
        p = item_probs[item_mask]
        best = p.argmax(dim=-1)
        if len(best) == 0:
            segments.append(p.new_zeros(0, 2))
            scores.append(p.new_zeros(0))
            labels.append(best.new_zeros(0))
            continue
        change = torch.ones_like(best, dtype=torch.bool)
        change[1:] = best[1:] != best[:-1]
        starts = torch.nonzero(change).flatten()
        ends = torch.cat([starts[1:], starts.new_tensor([len(best)])])
        run_labels = best[starts]
        run_ids = torch.cumsum(change.long(), 0) - 1
        own = p.gather(1, best[:, None]).squeeze(1)
        sums = torch.zeros(len(starts), dtype=p.dtype, device=p.device).index_add_(0, run_ids, own)
        keep = (
            run_labels != background if background is not None else torch.ones_like(change[starts])
        )
        segments.append(torch.stack([starts, ends], dim=1).to(p.dtype)[keep])
        scores.append((sums / (ends - starts).to(p.dtype))[keep])
        labels.append(run_labels[keep])
    seg, segment_mask = pad_sequences(segments)
    score, _ = pad_sequences(scores)
    label, _ = pad_sequences(labels, pad_value=IGNORE_INDEX)
    return seg, score, label, segment_mask.to(probs.device)


class MSTCN(Backbone):
    """Segment actions frame by frame with a multi-stage temporal convolutional network.

    Input ``features [B, T, C]`` with ``mask [B, T]``; output ``logits [B, T, K]`` (last stage),
    ``stage_logits [S, B, T, K]`` for :class:`MSTCNLoss`, ``features [B, T, K]`` (the last
    stage's probabilities) and, in eval mode, the decoded segments (``segments``, ``scores``,
    ``labels``, ``segment_mask``) that ``ophnet.tal_map`` scores; a background class (the data's
    ``ophnet.background_class``) yields no segment. Defaults are the paper's: 4 stages of 10
    layers with 64 maps and dropout 0.5.
    """

    def __init__(self, params: MSTCNParams, ctx: BuildContext) -> None:
        super().__init__()
        classes = params.num_classes or ctx.data.num_classes
        dim = params.input_dim or ctx.data.num_features or ctx.data.in_channels
        if not classes or not dim:
            raise ComponentError(
                f"ophnet.mstcn: needs num_classes and input_dim; the data give "
                f"{ctx.data.num_classes!r} and {ctx.data.num_features!r}. Set "
                "model.backbone.num_classes / model.backbone.input_dim"
            )
        self.num_classes = int(classes)
        self.feature_dim = int(classes)
        background = ctx.data.extras.get("ophnet.background_class")
        self.background = int(background) if background is not None else None
        widths = [int(dim)] + [self.num_classes] * (params.num_stages - 1)
        self.stages = nn.ModuleList(
            _Stage(params.num_layers, params.num_f_maps, w, self.num_classes, params.dropout)
            for w in widths
        )

    def forward(self, batch: Batch) -> dict[str, Tensor]:
        mask = batch["mask"]
        step_mask = mask[:, None, :].to(batch["features"].dtype)
        x = batch["features"].transpose(1, 2) * step_mask
        outputs = []
        for i, stage in enumerate(self.stages):
            x = stage(x if i == 0 else F.softmax(x, dim=1) * step_mask, step_mask)
            outputs.append(x)
        stage_logits = torch.stack(outputs).transpose(2, 3)  # [S, B, T, K]
        logits = stage_logits[-1]
        probs = logits.softmax(dim=-1)
        out = {"logits": logits, "stage_logits": stage_logits, "features": probs}
        if not self.training:
            segments, scores, labels, segment_mask = decode_segments(
                probs.detach(), mask, self.background
            )
            out.update(segments=segments, scores=scores, labels=labels, segment_mask=segment_mask)
        return out

    def example_batch(self, ctx: BuildContext, batch_size: int = 2) -> Batch:
        """Return a padded sequence batch (lengths 5, 8, ...)."""
        return example_sequence_batch(ctx, batch_size)


class MSTCNLoss(Loss):
    """Cross-entropy plus MS-TCN's truncated smoothing loss, summed over every stage.

    For each stage's logits ``y`` (``[B, T, K]``): ``ce`` = cross-entropy over labelled real
    steps; ``smooth`` = mean over real step pairs ``(t-1, t)`` and classes of
    ``min((log p_t - log p_{t-1})^2, tau^2)``, with ``p_{t-1}`` detached; total =
    ``sum_stages ce + smooth_weight * smooth`` (lambda 0.15, tau 4). The reference averages the
    smoothing term over padded steps too (equal for unpadded batches of one video, its setting);
    here it averages over real steps, so the loss does not change with the batch's padding.
    """

    def __init__(self, params: MSTCNLossParams, ctx: BuildContext) -> None:
        super().__init__()
        self.smooth_weight = params.smooth_weight
        self.clamp = params.tau**2

    def forward(self, outputs: Mapping[str, Tensor], batch: Batch) -> LossOutput:
        stages = outputs.get("stage_logits")
        if stages is None:
            stages = outputs["logits"][None]
        mask = batch["mask"]
        labels = batch["frame_labels"].masked_fill(~mask, IGNORE_INDEX)
        pairs = (mask[:, 1:] & mask[:, :-1]).to(stages.dtype)[..., None]  # [B, T-1, 1]
        ce_total = stages.new_zeros(())
        smooth_total = stages.new_zeros(())
        for logits in stages:
            ce_total = ce_total + F.cross_entropy(
                logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE_INDEX
            )
            log_p = F.log_softmax(logits.float(), dim=-1)
            diff = (log_p[:, 1:] - log_p.detach()[:, :-1]) ** 2
            per_pair = diff.clamp(max=self.clamp) * pairs
            denominator = (pairs.sum() * logits.shape[-1]).clamp_min(1)
            smooth_total = smooth_total + per_pair.sum() / denominator
        total = ce_total + self.smooth_weight * smooth_total
        return LossOutput(total, {"ce": ce_total.detach(), "smooth": smooth_total.detach()})

    def example_inputs(
        self, ctx: BuildContext, batch_size: int = 4
    ) -> tuple[dict[str, Tensor], Batch]:
        """Return stage logits ``[2, B, T, K]`` that require grad and a sequence batch."""
        batch = example_sequence_batch(ctx, batch_size)
        classes = ctx.data.num_classes or 3
        gen = torch.Generator().manual_seed(1)
        stages = torch.randn(2, *batch["mask"].shape, classes, generator=gen).requires_grad_(True)
        return {"stage_logits": stages, "logits": stages[-1]}, batch
