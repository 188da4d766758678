"""The pix2pixHD global generator run as Fundus2Video's autoregressive sliding window.

Each step maps ``[x ; C_n]`` (CF image and a 3-frame context, 6 channels) to the next 3 FFA frames
as the 3 output channels. Step ``n`` of a video with ``M`` frames predicts frames
``[n, min(n+1, M-1), min(n+2, M-1)]`` (0-based); at inference every frame is the average of the
predictions of the steps that covered it (``min(j+1, 3)`` of them).

References:
    Wang et al., "High-Resolution Image Synthesis and Semantic Manipulation with Conditional GANs"
    (pix2pixHD), CVPR 2018; Zhang et al., "Fundus2Video", MICCAI 2024, arXiv 2408.15217.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from asklepios_sdk import Backbone, BuildContext, ComponentError
from torch import Tensor, nn

from asklepios_knowledge_mask.params import FundusVideoGeneratorParams

__all__ = [
    "FundusVideoGenerator",
    "GlobalGenerator",
    "ResnetBlock",
    "context_window",
    "find_generator",
    "generate_video",
    "overlap_average",
    "sampling_probability",
    "target_indices",
]

WINDOW = 3
"""Frames predicted per step: the 3 output channels of the generator."""


def target_indices(step: int, num_frames: int, window: int = WINDOW) -> list[int]:
    """Return the 0-based frame indices step ``step`` predicts (clamped at the last frame)."""
    return [min(step + c, num_frames - 1) for c in range(window)]


def context_window(video: Tensor, step: int, window: int = WINDOW) -> Tensor:
    """Return the real (teacher-forcing) context of step ``step >= 1``: the window ``Y_{step-1}``.

    Args:
        video: real frames ``(B, M, C, H, W)``; channel 0 of each frame is used (grey frames).
        step: window step, at least 1.
        window: frames per step.

    Returns:
        ``(B, window, H, W)`` with frames ``[step-1, min(step, M-1), min(step+1, M-1)]``.
    """
    return video[:, target_indices(step - 1, video.shape[1], window), 0]


def step_target(video: Tensor, step: int, window: int = WINDOW) -> Tensor:
    """Return the real 3-frame target of step ``step`` as ``(B, window, H, W)``."""
    return video[:, target_indices(step, video.shape[1], window), 0]


def sampling_probability(videos_seen: int, ramp: int = 1000, every: int = 100) -> float:
    """Return the probability of using the generated context (scheduled sampling, §4.2).

    ``(1 + ⌊s/100⌋) / (2 + ⌊s/100⌋)`` while ``s < 1000`` training videos have been seen, then 1.
    """
    if videos_seen >= ramp:
        return 1.0
    k = videos_seen // every
    return (1 + k) / (2 + k)


def overlap_average(steps: Tensor) -> Tensor:
    """Average overlapping window predictions into a video.

    Args:
        steps: ``(M, B, window, H, W)``: output of every step, channel ``c`` of step ``n`` being
            frame ``n + c``. Channels past the last frame (clamped duplicates) are ignored.

    Returns:
        ``(B, M, H, W)``: frame ``j`` is the mean over the ``min(j+1, window)`` steps covering it.
    """
    num_frames, window = steps.shape[0], steps.shape[2]
    total = torch.zeros_like(steps[:, :, 0]).transpose(0, 1)
    count = torch.zeros(num_frames, dtype=steps.dtype, device=steps.device)
    for c in range(min(window, num_frames)):
        total[:, c:] = total[:, c:] + steps[: num_frames - c, :, c].transpose(0, 1)
        count[c:] += 1
    return total / count[None, :, None, None]


class ResnetBlock(nn.Module):
    """pix2pixHD residual block: pad-conv3x3-IN-ReLU-pad-conv3x3-IN plus the skip."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, kernel_size=3),
            nn.InstanceNorm2d(dim, affine=False),
            nn.ReLU(),
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, kernel_size=3),
            nn.InstanceNorm2d(dim, affine=False),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv_block(x)


class GlobalGenerator(nn.Module):
    """pix2pixHD ``GlobalGenerator`` with the layer order of the original ``nn.Sequential``.

    With the defaults (``ngf`` 64, 4 downsamplings, 9 blocks) layer ``i`` of :attr:`model` is the
    spec's layer ``i``: 0 pad, 1 conv7, 2 IN, 3 ReLU, 4-15 downsampling, 16-24 residual blocks,
    25-36 upsampling, 37 pad, 38 conv7, 39 tanh.
    """

    def __init__(
        self,
        input_nc: int = 6,
        output_nc: int = 3,
        ngf: int = 64,
        n_downsampling: int = 4,
        n_blocks: int = 9,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(input_nc, ngf, kernel_size=7),
            nn.InstanceNorm2d(ngf, affine=False),
            nn.ReLU(),
        ]
        for i in range(n_downsampling):
            mult = 2**i
            layers += [
                nn.Conv2d(ngf * mult, ngf * mult * 2, kernel_size=3, stride=2, padding=1),
                nn.InstanceNorm2d(ngf * mult * 2, affine=False),
                nn.ReLU(),
            ]
        mult = 2**n_downsampling
        layers += [ResnetBlock(ngf * mult) for _ in range(n_blocks)]
        for i in range(n_downsampling):
            mult = 2 ** (n_downsampling - i)
            layers += [
                nn.ConvTranspose2d(
                    ngf * mult, ngf * mult // 2, 3, stride=2, padding=1, output_padding=1
                ),
                nn.InstanceNorm2d(ngf * mult // 2, affine=False),
                nn.ReLU(),
            ]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, kernel_size=7), nn.Tanh()]
        self.input_nc = input_nc
        self.model = nn.Sequential(*layers)
        self.bottleneck_index = 4 + 3 * n_downsampling + n_blocks - 1
        self.bottleneck_dim = ngf * 2**n_downsampling
        for module in self.modules():
            if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
                nn.init.normal_(module.weight, 0.0, 0.02)

    def layer_channels(self, layers: Sequence[int]) -> list[int]:
        """Return the channel count of each requested layer's output."""
        channels: list[int] = []
        current = self.input_nc
        for layer in self.model:
            if isinstance(layer, nn.Conv2d | nn.ConvTranspose2d):
                current = layer.out_channels
            channels.append(current)
        return [channels[index] for index in layers]

    def encode(self, x: Tensor, layers: Sequence[int]) -> list[Tensor]:
        """Return the outputs of ``layers`` (sorted indices), stopping after the last one."""
        if not layers:
            return []
        wanted, last, feats = set(layers), max(layers), []
        if last >= len(self.model):
            raise ComponentError(
                f"knowledge_mask.generator: layer {last} requested, the generator has "
                f"{len(self.model)} layers; lower 'nce_layers'"
            )
        h = x
        for index, layer in enumerate(self.model):
            h = layer(h)
            if index in wanted:
                feats.append(h)
            if index == last:
                break
        return feats

    def forward(
        self, x: Tensor, feature_hook: Callable[[Tensor], Tensor] | None = None
    ) -> tuple[Tensor, Tensor]:
        """Run one step; return ``(output, bottleneck)`` (bottleneck after ``feature_hook``)."""
        split = self.bottleneck_index + 1
        h = self.model[:split](x)
        if feature_hook is not None:
            h = feature_hook(h)
        return self.model[split:](h), h


StepFn = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]


def generate_video(
    step_fn: StepFn, cf: Tensor, num_frames: int, window: int = WINDOW
) -> tuple[Tensor, Tensor]:
    """Generate ``num_frames`` frames autoregressively, always from the generated context.

    Args:
        step_fn: ``(cf, context) -> (output (B, window, H, W), bottleneck)``.
        cf: CF images ``(B, 3, H, W)``; also the context of step 0.
        num_frames: video length ``M``.
        window: frames per step.

    Returns:
        ``(video (B, M, 3, H, W), features (B, C))``: overlap-averaged grey frames copied to 3
        channels, and the bottleneck features averaged over positions and steps.
    """
    if num_frames < 1:
        raise ComponentError(f"knowledge_mask.generator: num_frames must be >= 1, got {num_frames}")
    context, outputs, features = cf, [], []
    for _ in range(num_frames):
        out, bottleneck = step_fn(cf, context)
        outputs.append(out)
        features.append(bottleneck.mean(dim=(2, 3)))
        context = out
    grey = overlap_average(torch.stack(outputs))
    video = grey[:, :, None].expand(-1, -1, 3, -1, -1)
    return video, torch.stack(features).mean(0)


class FundusVideoGenerator(Backbone):
    """Generate an FFA video from a CF photograph with the pix2pixHD sliding-window generator.

    ``forward(batch)``: with ``batch['context']`` (``(B, 3, H, W)``) run one window step on
    ``[image ; context]`` and return ``logits`` (``(B, 3, H, W)``, the next 3 frames in
    ``[-1, 1]``); otherwise generate the whole video autoregressively from ``batch['image']``
    alone, with ``num_frames`` frames (or as many as ``batch['video']`` has; its content is not
    read), and return ``video`` ``(B, M, 3, H, W)`` (also as ``logits``). ``features`` is the
    bottleneck averaged over positions (and steps).
    """

    def __init__(self, params: FundusVideoGeneratorParams, ctx: BuildContext) -> None:
        super().__init__()
        self.params = params
        p = self.params
        if p.output_nc != WINDOW or p.input_nc != 3 + WINDOW:
            raise ComponentError(
                "knowledge_mask.generator: the sliding window needs input_nc = 6 and output_nc = 3 "
                f"(CF + 3 context frames -> 3 frames), got {p.input_nc} and {p.output_nc}"
            )
        self.netG = GlobalGenerator(p.input_nc, p.output_nc, p.ngf, p.n_downsampling, p.n_blocks)
        self.feature_dim = self.netG.bottleneck_dim

    def step(
        self, cf: Tensor, context: Tensor, feature_hook: Callable[[Tensor], Tensor] | None = None
    ) -> tuple[Tensor, Tensor]:
        """Run one window step on ``[cf ; context]``; return ``(output, bottleneck)``."""
        factor = 2**self.params.n_downsampling
        if cf.shape[-1] % factor or cf.shape[-2] % factor:
            raise ComponentError(
                f"knowledge_mask.generator: image size {tuple(cf.shape[-2:])} is not a multiple "
                f"of 2**n_downsampling = {factor}; resize (fov_preprocess 'size') or lower "
                "n_downsampling"
            )
        return self.netG(torch.cat([cf, context], dim=1), feature_hook)

    def encode(self, x: Tensor, layers: Sequence[int]) -> list[Tensor]:
        """Return the generator's layer outputs for ``x`` (used as the PatchNCE encoder)."""
        return self.netG.encode(x, layers)

    def num_frames_of(self, batch: dict[str, Any]) -> int:
        """Return the number of frames to generate for ``batch``."""
        if self.params.num_frames is not None:
            return self.params.num_frames
        if "video" in batch:
            return int(batch["video"].shape[1])
        raise ComponentError(
            "knowledge_mask.generator: cannot tell how many frames to generate; give the batch a "
            "'video' (only its length is read) or set 'num_frames' in the backbone params"
        )

    def forward(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        cf = batch["image"]
        if "context" in batch:
            out, bottleneck = self.step(cf, batch["context"])
            return {"logits": out, "features": bottleneck.mean(dim=(2, 3))}
        video, features = generate_video(self.step, cf, self.num_frames_of(batch))
        return {"video": video, "logits": video, "features": features}

    def example_batch(self, ctx: BuildContext, batch_size: int = 2) -> dict[str, Any]:
        """Return a tiny step batch: CF and context images (at least 2 bottleneck pixels wide)."""
        factor = 2**self.params.n_downsampling
        size = max((ctx.data.image_size or (32, 32))[0] // factor, 2) * factor
        gen = torch.Generator().manual_seed(0)
        return {
            "image": torch.rand(batch_size, 3, size, size, generator=gen) * 2 - 1,
            "context": torch.rand(batch_size, 3, size, size, generator=gen) * 2 - 1,
        }


def find_generator(model: nn.Module) -> FundusVideoGenerator:
    """Return the :class:`FundusVideoGenerator` inside ``model`` (possibly wrapped by adapters)."""
    for module in model.modules():
        if isinstance(module, FundusVideoGenerator):
            return module
    raise ComponentError(
        "knowledge_mask needs a knowledge_mask.generator backbone; the model has none. Set "
        "model.backbone.type to knowledge_mask.generator"
    )
