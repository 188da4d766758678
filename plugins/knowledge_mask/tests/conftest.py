"""Test set-up: the SDK conformance kit over every component, at tiny sizes, on one thread."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import torch
from asklepios_sdk import BuildContext
from asklepios_sdk.testing import Conformance, Override
from safetensors.torch import save_file
from torchvision.models.vgg import cfgs, make_layers

torch.set_num_threads(1)  # tiny tensors; CI machines are shared


def _random_vgg_file() -> str:
    """Write a random-init VGG19 trunk (a stand-in for ImageNet weights, never downloaded)."""
    directory = Path(tempfile.mkdtemp(prefix="km-vgg-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    torch.manual_seed(0)
    trunk = make_layers(cfgs["E"])[:30]
    state = {f"features.{k}": v.contiguous() for k, v in trunk.state_dict().items()}
    save_file(state, directory / "vgg19.safetensors")
    return str(directory / "vgg19.safetensors")


def _tiny_csv() -> str:
    """Write a tiny Fundus2Video-format CSV with 8x8 PNG frames of 20 patients."""
    import numpy as np
    from PIL import Image

    directory = Path(tempfile.mkdtemp(prefix="km-csv-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    image = np.full((8, 8, 3), 60, np.uint8)
    Image.fromarray(image).save(directory / "img.png")
    rows = [
        f"p{patient},{patient},{phase},{level},img.png,img.png"
        for patient in range(20)
        for level, phase in enumerate(("E", "E", "L", "L"))
    ]
    csv = directory / "data.csv"
    csv.write_text("pid_eye,orgid,Phase,level_1,co_rigid,fa_rigid\n" + "\n".join(rows) + "\n")
    return str(csv)


def _tiny_generator(ctx: BuildContext) -> torch.nn.Module:
    from asklepios_knowledge_mask.generator import FundusVideoGenerator
    from asklepios_knowledge_mask.params import FundusVideoGeneratorParams

    return FundusVideoGenerator(FundusVideoGeneratorParams(ngf=4, n_blocks=1), ctx)


asklepios_conformance = Conformance(
    "asklepios_knowledge_mask.hooks",
    overrides={
        "knowledge_mask.generator": Override(params={"ngf": 4, "n_blocks": 1}),
        "knowledge_mask.discriminator": Override(params={"ndf": 8}),
        "knowledge_mask.patchnce": Override(
            params={"channels": (6, 8, 16, 32, 64), "num_patches": 16, "nc": 8}
        ),
        "knowledge_mask.vgg_perceptual": Override(params={"weights_path": _random_vgg_file()}),
        "knowledge_mask.attention": Override(model=_tiny_generator),
        "knowledge_mask.ffa_video": Override(params={"csv_path": _tiny_csv()}),
        "knowledge_mask.adversarial": Override(
            params={"discriminator": {"ndf": 8}, "nce": {"num_patches": 16, "nc": 8}},
            model=_tiny_generator,
        ),
    },
)
