"""ActionFormer: single-stage temporal action localisation with a multi-scale local transformer.

Features ``[B, T, C]`` go through ``arch[0]`` masked convs (+LayerNorm, ReLU), ``arch[1]``
transformer blocks at full resolution and ``arch[2]`` blocks that each halve ``T``; the
``arch[2] + 1`` outputs, each LayerNormed (identity FPN), are the pyramid. Level ``l`` has one
point per step at ``t = i * 2^l`` (feature steps) that regresses actions whose larger
boundary distance lies in ``regression_range[l]``. Shared heads (``head_num_layers`` masked
convs) give per point ``K`` sigmoid class logits and two distances to the action's start and
end, in strides of the level (``ReLU(scale_l * x)``). :class:`ActionFormerLoss`
(``asklepios_ophnet.actionformer_loss``) assigns the points and trains the heads; in eval mode
the model also decodes scored segments for ``ophnet.tal_map`` (see :meth:`ActionFormer.detect`).

Local attention lets each step attend to the steps within ``mha_win_size // 2`` of it at its
own level; deviations from the reference code (padding invariance, any ``T``) are listed in
``actionformer_blocks`` and the plugin README.

References:
    Zhang, Wu and Li, ActionFormer: Localizing Moments of Actions with Transformers, ECCV 2022.
"""

from __future__ import annotations

import math

import torch
from asklepios_sdk import Backbone, Batch, BuildContext, ComponentError
from asklepios_sdk.sequences import IGNORE_INDEX, example_sequence_batch, pad_sequences
from torch import Tensor, nn

from asklepios_ophnet.actionformer_blocks import (
    ChannelNorm,
    MaskedConv1d,
    Scale,
    TransformerBlock,
)
from asklepios_ophnet.actionformer_nms import hard_nms, segment_voting, soft_nms
from asklepios_ophnet.params import ActionFormerParams

__all__ = ["ActionFormer", "action_classes", "actionformer_example_batch"]


def action_classes(ctx: BuildContext) -> int | None:
    """Return the data's action classes: segment classes (no background) if known."""
    segment = ctx.data.extras.get("ophnet.segment_classes")
    return int(segment) if segment is not None else ctx.data.num_classes


def actionformer_example_batch(ctx: BuildContext, batch_size: int) -> Batch:
    """Return a padded sequence batch whose segment labels are action classes."""
    batch = example_sequence_batch(ctx, batch_size, lengths=[5 + 6 * i for i in range(batch_size)])
    classes = action_classes(ctx) or 3
    labels = batch["segment_labels"]
    batch["segment_labels"] = torch.where(labels >= 0, labels % classes, labels)
    return batch


class _Head(nn.Module):
    """``layers - 1`` masked convs with LayerNorm and ReLU, then an output conv."""

    def __init__(
        self, dim: int, width: int, out: int, layers: int, kernel: int, with_ln: bool
    ) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            MaskedConv1d(dim if i == 0 else width, width, kernel, bias=not with_ln)
            for i in range(layers - 1)
        )
        self.norms = nn.ModuleList(ChannelNorm(width) for _ in range(layers - 1) if with_ln)
        self.out = MaskedConv1d(width if layers > 1 else dim, out, kernel)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        for i, conv in enumerate(self.convs):
            x, _ = conv(x, mask)
            x = torch.relu(self.norms[i](x, mask) if len(self.norms) else x)
        return self.out(x, mask)[0]


class ActionFormer(Backbone):
    """Localise actions with ActionFormer's multi-scale local transformer and point heads.

    Input ``features [B, T, C]`` with ``mask [B, T]`` (any ``T >= 1``). Output, the pyramid's
    points concatenated level by level (``P = sum_l ceil(T / 2^l)``): ``logits [B, P, K]``
    (sigmoid class logits), ``offsets [B, P, 2]`` (distances to start/end in strides),
    ``points [B, P, 4]`` (step, regression range low/high, stride), ``point_mask [B, P]``,
    ``features [B, T, D]`` (the finest pyramid level); in eval mode also ``segments [B, S, 2]``
    on the feature grid, ``scores``, ``labels``, ``segment_mask`` for ``ophnet.tal_map``.
    Defaults: OphNet's ActionFormer operation config, else ActionFormer's.
    """

    ranges: Tensor

    def __init__(self, params: ActionFormerParams, ctx: BuildContext) -> None:
        super().__init__()
        classes = params.num_classes or action_classes(ctx)
        dim = params.input_dim or ctx.data.num_features or ctx.data.in_channels
        if not classes or not dim:
            raise ComponentError(
                f"ophnet.actionformer: needs num_classes and input_dim; the data give "
                f"{action_classes(ctx)!r} classes and {ctx.data.num_features!r} features. Set "
                "model.backbone.num_classes / model.backbone.input_dim"
            )
        self.params = params
        self.num_classes = int(classes)
        self.feature_dim = params.embd_dim
        embd, levels = params.embd_dim, params.arch[2] + 1
        self.strides = [2**level for level in range(levels)]
        self.embed = nn.ModuleList(
            MaskedConv1d(
                int(dim) if i == 0 else embd,
                embd,
                params.embd_kernel_size,
                bias=not params.embd_with_ln,
            )
            for i in range(params.arch[0])
        )
        self.embed_norms = nn.ModuleList(
            ChannelNorm(embd) for _ in range(params.arch[0]) if params.embd_with_ln
        )

        def block(stride: int) -> TransformerBlock:
            return TransformerBlock(
                embd,
                params.n_head,
                params.mha_win_size,
                stride,
                params.mlp_ratio,
                params.attn_dropout,
                params.dropout,
                params.drop_path,
            )

        self.stem = nn.ModuleList(block(1) for _ in range(params.arch[1]))
        self.branch = nn.ModuleList(block(2) for _ in range(params.arch[2]))
        self.fpn_norms = nn.ModuleList(
            ChannelNorm(embd) for _ in range(levels) if params.fpn_with_ln
        )

        def head(out: int) -> _Head:
            return _Head(
                embd,
                params.head_dim,
                out,
                params.head_num_layers,
                params.head_kernel_size,
                params.head_with_ln,
            )

        self.cls_head = head(self.num_classes)
        self.reg_head = head(2)
        self.scales = nn.ModuleList(Scale() for _ in range(levels))
        for module in self.modules():  # the reference zeroes every conv/linear bias ...
            if isinstance(module, (nn.Conv1d, nn.Linear)) and module.bias is not None:
                nn.init.zeros_(module.bias)
        prior = params.cls_prior_prob  # ... then sets the classifier's to the prior's logit
        cls_bias = self.cls_head.out.conv.bias
        assert cls_bias is not None
        nn.init.constant_(cls_bias, -math.log((1 - prior) / prior))
        ranges = torch.tensor(params.regression_range, dtype=torch.float32)
        self.register_buffer("ranges", ranges, persistent=False)

    def pyramid(self, features: Tensor, mask: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        """Return the pyramid's ``[B, D, T_l]`` features and ``[B, T_l]`` masks."""
        x = features.transpose(1, 2) * mask[:, None, :].to(features.dtype)
        for i, conv in enumerate(self.embed):
            x, _ = conv(x, mask)
            x = torch.relu(self.embed_norms[i](x, mask) if len(self.embed_norms) else x)
        for block in self.stem:
            x, mask = block(x, mask)
        feats, masks = [x], [mask]
        for block in self.branch:
            x, mask = block(x, mask)
            feats.append(x)
            masks.append(mask)
        if len(self.fpn_norms):
            feats = [norm(f, m) for norm, f, m in zip(self.fpn_norms, feats, masks, strict=True)]
        return feats, masks

    def points(self, lengths: list[int], device: torch.device) -> Tensor:
        """Return the ``[P, 4]`` points (step, range low, range high, stride) of the levels."""
        rows = []
        for level, (steps, stride) in enumerate(zip(lengths, self.strides, strict=True)):
            t = torch.arange(steps, device=device, dtype=torch.float32) * stride
            rest = torch.cat([self.ranges[level], self.ranges.new_tensor([stride])])
            rows.append(torch.cat([t[:, None], rest.to(device).expand(steps, 3)], dim=1))
        return torch.cat(rows)

    def forward(self, batch: Batch) -> dict[str, Tensor]:
        features, mask = batch["features"], batch["mask"]
        if features.dim() != 3 or features.shape[1] == 0:
            raise ComponentError(
                f"ophnet.actionformer: features must be [B, T, C] with T >= 1, got "
                f"{tuple(features.shape)}; it reads sequence batches (asklepios_sdk.sequences)"
            )
        feats, masks = self.pyramid(features, mask)
        logits = [self.cls_head(f, m).transpose(1, 2) for f, m in zip(feats, masks, strict=True)]
        offsets = [
            torch.relu(scale(self.reg_head(f, m))).transpose(1, 2)
            for scale, f, m in zip(self.scales, feats, masks, strict=True)
        ]
        points = self.points([f.shape[-1] for f in feats], features.device)
        out = {
            "logits": torch.cat(logits, dim=1),
            "offsets": torch.cat(offsets, dim=1),
            "points": points.expand(features.shape[0], -1, -1),
            "point_mask": torch.cat(masks, dim=1),
            "features": feats[0].transpose(1, 2),
        }
        if not self.training:
            lengths = mask.sum(dim=1)
            segments, scores, labels, segment_mask = self.detect(
                out["logits"].detach(), out["offsets"].detach(), points, out["point_mask"], lengths
            )
            out.update(segments=segments, scores=scores, labels=labels, segment_mask=segment_mask)
        return out

    def _candidates(
        self, logits: Tensor, offsets: Tensor, points: Tensor, point_mask: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Return one item's candidates ``(segments, scores, labels)`` over every level."""
        p = self.params
        segs, scores, labels = [], [], []
        start = 0
        for stride in self.strides:
            steps = int((points[:, 3] == stride).sum())
            level = slice(start, start + steps)
            start += steps
            prob = (logits[level].float().sigmoid() * point_mask[level, None]).flatten()
            keep = torch.nonzero(prob > p.pre_nms_thresh).flatten()
            top = prob[keep].argsort(descending=True, stable=True)[: p.pre_nms_topk]
            keep = keep[top]
            point = points[level][keep // self.num_classes]
            offset = offsets[level][keep // self.num_classes].float()
            seg = torch.stack(
                [
                    point[:, 0] - offset[:, 0] * point[:, 3],
                    point[:, 0] + offset[:, 1] * point[:, 3],
                ],
                dim=1,
            )
            long_enough = (seg[:, 1] - seg[:, 0]) > p.duration_thresh
            segs.append(seg[long_enough])
            scores.append(prob[keep][long_enough])
            labels.append((keep % self.num_classes)[long_enough])
        return torch.cat(segs), torch.cat(scores), torch.cat(labels)

    def _suppress(
        self, segs: Tensor, scores: Tensor, labels: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        p = self.params
        groups = labels if p.multiclass_nms else torch.zeros_like(labels)
        if p.nms_method == "soft":
            kept, kept_scores = soft_nms(
                segs, scores, groups, p.nms_sigma, p.min_score, p.max_seg_num
            )
        elif p.nms_method == "hard":
            kept = hard_nms(segs, scores, groups, p.iou_threshold, p.min_score, p.max_seg_num)
            kept_scores = scores[kept]
        else:
            kept, kept_scores = torch.arange(len(scores), device=scores.device), scores
        new_segs = segs[kept]
        if p.nms_method != "none" and not p.multiclass_nms and p.voting_thresh > 0 and len(kept):
            new_segs = segment_voting(new_segs, segs, scores, p.voting_thresh)
        order = kept_scores.argsort(descending=True, stable=True)[: p.max_seg_num]
        return new_segs[order], kept_scores[order], labels[kept][order]

    @torch.no_grad()
    def detect(
        self, logits: Tensor, offsets: Tensor, points: Tensor, point_mask: Tensor, lengths: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Decode scored segments on the feature grid from the heads' outputs.

        Per item and level: sigmoid scores of real points above ``pre_nms_thresh``, the
        ``pre_nms_topk`` best, segments ``t - d_start * stride .. t + d_end * stride`` longer
        than ``duration_thresh``; then Soft-NMS / NMS (class-wise with ``multiclass_nms``),
        the ``max_seg_num`` best, clipped to ``[0, length]`` steps.

        Returns:
            ``(segments [B, S, 2], scores [B, S], labels [B, S], segment_mask [B, S])``.
        """
        all_segs, all_scores, all_labels = [], [], []
        for b in range(logits.shape[0]):
            segs, scores, labels = self._suppress(
                *self._candidates(logits[b], offsets[b], points, point_mask[b])
            )
            all_segs.append(segs.clamp(0, float(lengths[b])))
            all_scores.append(scores)
            all_labels.append(labels)
        seg, segment_mask = pad_sequences(all_segs)
        score, _ = pad_sequences(all_scores)
        label, _ = pad_sequences(all_labels, pad_value=IGNORE_INDEX)
        return seg, score, label, segment_mask.to(logits.device)

    def example_batch(self, ctx: BuildContext, batch_size: int = 2) -> Batch:
        """Return a padded sequence batch (lengths 5, 11, ...) with action-class segments."""
        return actionformer_example_batch(ctx, batch_size)
