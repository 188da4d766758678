"""``cares.hf_vlm``: a local Hugging Face image-text-to-text model as the model under test.

The model directory (``config.json``, weights, processor with a chat template) is loaded with
``AutoProcessor`` and ``AutoModelForImageTextToText`` from local files only: nothing is
downloaded, and a missing or incomplete directory is an error naming what is missing. Loading
happens on the first ``generate`` (or ``fingerprint``), on the device the module was moved to,
so building the component (config checks, ``asklepios validate --deep``) reads no weights.

:func:`write_tiny_vlm` writes a tiny randomly initialised LLaVA (CLIP vision tower, one-layer
Llama, a word-level tokenizer, a chat template) with transformers' own classes: a few hundred
KB that load through exactly the same path, for tests, benchmarks and the demo.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import torch
from asklepios_sdk import BuildContext, ComponentError
from asklepios_sdk.generation import GenerativeBackbone, Message, ModelFingerprint
from torch import Tensor

from asklepios_cares.params import HFVisionLanguageModelParams

__all__ = ["HFVisionLanguageModel", "weights_sha256", "write_tiny_vlm"]

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
_TINY_TEXT = (
    "yes no not sure sorry i cannot answer the a is there are of in image lesion normal "
    "abnormal heart lungs clear effusion glaucoma disc retina vessels melanoma nevi trunk "
    "head upper lower extremity calcification present visible you confident uncertain "
    "describe patient report medical advice what where which diagnosis option choose from "
    "following two options please question signs it this with and to"
)
_TINY_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] == 'system' %}{% for c in m['content'] %}"
    "{{ c['text'] }} {% endfor %}{% elif m['role'] == 'user' %}USER: {% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<image> {% else %}{{ c['text'] }} {% endif %}{% endfor %}"
    "{% else %}ASSISTANT: {% for c in m['content'] %}{{ c['text'] }} {% endfor %}</s> "
    "{% endif %}{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)


def weights_sha256(directory: Path) -> str:
    """Return the sha256 over every weight file of ``directory`` (names and bytes, sorted)."""
    files = sorted(p for p in directory.rglob("*") if p.suffix in WEIGHT_SUFFIXES and p.is_file())
    if not files:
        raise ComponentError(
            f"cares.hf_vlm: {directory} has no weight file ({', '.join(WEIGHT_SUFFIXES)})"
        )
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(directory)).encode("utf-8") + b"\0")
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def write_tiny_vlm(directory: str | Path, seed: int = 0) -> Path:
    """Write a tiny random-init LLaVA model directory with transformers' classes; return it."""
    from asklepios_sdk.io import write_dir_atomic
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        PreTrainedTokenizerFast,
    )
    from transformers.utils import logging

    special = ["<unk>", "<pad>", "<s>", "</s>", "<image>", "USER:", "ASSISTANT:"]
    words = [*special, *_TINY_TEXT.split(), "?", ".", ",", ":", "/", "[", "]", "-"]
    words += [chr(c) for c in range(ord("a"), ord("z") + 1)] + [str(i) for i in range(10)]
    vocab = {word: index for index, word in enumerate(dict.fromkeys(words))}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()]
    )
    backend.decoder = decoders.WordPiece(prefix="##")
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="<unk>",
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
    )
    tokenizer.add_special_tokens({"additional_special_tokens": ["<image>"]})
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(
            size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16}
        ),
        tokenizer=tokenizer,
        patch_size=8,
        vision_feature_select_strategy="default",
        chat_template=_TINY_TEMPLATE,
        image_token="<image>",
        num_additional_image_tokens=1,
    )
    vision = CLIPVisionConfig(
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=16,
        patch_size=8,
        projection_dim=16,
    )
    text = LlamaConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        vocab_size=len(tokenizer),
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        # the stub types the id of one token as int | list[int]
        image_token_index=int(tokenizer.convert_tokens_to_ids("<image>")),  # type: ignore[arg-type]
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlavaForConditionalGeneration(config)

    def save(tmp: Path) -> None:
        logging.disable_progress_bar()
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)

    return write_dir_atomic(directory, write=save)


class HFVisionLanguageModel(GenerativeBackbone):
    """Answer with a local Hugging Face image-text-to-text model (greedy or seeded sampling).

    Conversations go through the processor's chat template (the image as the first part of the
    first user turn, CARES's ``<image>`` tag removed from the text), batched with left padding;
    each follow-up turn is asked in the same conversation after the model's own answer.
    """

    def __init__(self, params: HFVisionLanguageModelParams, ctx: BuildContext) -> None:
        super().__init__()
        if not params.model_dir:
            raise ComponentError(
                "cares.hf_vlm: 'model_dir' is empty; give a local model directory, e.g. "
                "model_dir: /models/llava-med-v1.5-mistral-7b-hf"
            )
        self.params = params
        self.directory = Path(params.model_dir).expanduser()
        if params.tiny_random and not (self.directory / "config.json").is_file():
            write_tiny_vlm(self.directory, seed=params.seed)
        if not (self.directory / "config.json").is_file():
            raise ComponentError(
                f"cares.hf_vlm: {self.directory} has no config.json; model_dir must be a local "
                "Hugging Face model directory (nothing is downloaded). Fetch it elsewhere, e.g. "
                "huggingface-cli download <repo> --local-dir <dir>, and point model_dir there"
            )
        self.register_buffer("_where", torch.empty(0), persistent=False)
        self._loaded: dict[str, Any] = {}  # processor and model, kept out of _modules
        self._sha256: str | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_loaded"] = {}  # reloaded from the directory on first use
        return state

    def _apply(self, fn: Any, recurse: bool = True) -> HFVisionLanguageModel:
        super()._apply(fn, recurse)
        if "model" in self._loaded:  # follow .to(device) once loaded
            self._loaded["model"] = self._loaded["model"].to(self._where.device)
        return self

    def _load(self) -> tuple[Any, Any]:
        if self._loaded:
            return self._loaded["processor"], self._loaded["model"]
        from transformers import AutoModelForImageTextToText, AutoProcessor
        from transformers.utils import logging

        logging.disable_progress_bar()
        dtype = None if self.params.dtype == "auto" else getattr(torch, self.params.dtype)
        try:
            processor = AutoProcessor.from_pretrained(self.directory, local_files_only=True)
            model = AutoModelForImageTextToText.from_pretrained(
                self.directory, local_files_only=True, dtype=dtype or "auto"
            )
        except (OSError, ValueError, KeyError) as err:
            raise ComponentError(
                f"cares.hf_vlm: cannot load {self.directory} as an image-text-to-text model "
                f"with its processor ({type(err).__name__}: {err}); the directory needs "
                "config.json, the weights and the processor files (a chat template included)"
            ) from err
        if getattr(processor, "chat_template", None) is None:
            raise ComponentError(
                f"cares.hf_vlm: the processor in {self.directory} has no chat template; add "
                "chat_template.jinja to the directory"
            )
        processor.tokenizer.padding_side = "left"
        device = cast(Tensor, self._where).device
        # transformers types .to() through a decorator that loses its signature
        self._loaded.update(processor=processor, model=model.to(device).eval())  # type: ignore[arg-type]
        return processor, self._loaded["model"]

    def fingerprint(self) -> ModelFingerprint:
        if self._sha256 is None:
            self._sha256 = weights_sha256(self.directory)
        p = self.params
        settings: dict[str, Any] = {
            "dtype": p.dtype,
            "max_new_tokens": p.max_new_tokens,
            "do_sample": p.do_sample,
            "image_tag": p.image_tag,
        }
        if p.do_sample:
            settings.update(temperature=p.temperature, top_p=p.top_p, seed=p.seed)
        return ModelFingerprint(self.directory.name, self._sha256, settings)

    def _chat(self, conversation: Sequence[Message], with_image: bool) -> list[dict[str, Any]]:
        """Return the conversation in the processor's format, the image in the first turn."""
        chat: list[dict[str, Any]] = []
        first = True
        for message in conversation:
            text = message["content"]
            parts: list[dict[str, Any]] = []
            if message["role"] == "user" and first:
                first = False
                text = text.replace(self.params.image_tag, "").strip()
                if with_image:
                    parts.append({"type": "image"})
            parts.append({"type": "text", "text": text})
            chat.append({"role": message["role"], "content": parts})
        return chat

    @torch.no_grad()
    def _generate_group(self, images: list[Tensor | None], chats: list[list[Any]]) -> list[str]:
        processor, model = self._load()
        prompts = [processor.apply_chat_template(c, add_generation_prompt=True) for c in chats]
        pictures = [i.cpu() for i in images if i is not None]
        inputs = processor(
            text=prompts, images=pictures or None, padding=True, return_tensors="pt"
        ).to(self._where.device)
        if "pixel_values" in inputs and model.dtype != inputs["pixel_values"].dtype:
            inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
        p = self.params
        options: dict[str, Any] = {"max_new_tokens": p.max_new_tokens, "do_sample": p.do_sample}
        if p.do_sample:
            options.update(temperature=p.temperature, top_p=p.top_p)
            torch.manual_seed(p.seed)
        else:
            options.update(temperature=None, top_p=None, top_k=None)
        tokenizer = processor.tokenizer
        output = model.generate(**inputs, **options, pad_token_id=tokenizer.pad_token_id)
        new = output[:, inputs["input_ids"].shape[1] :]
        return [t.strip() for t in processor.batch_decode(new, skip_special_tokens=True)]

    def generate(
        self, images: Sequence[Tensor | None], messages: Sequence[Sequence[Message]]
    ) -> list[str]:
        """Answer the conversations in batches: those with an image, then those without."""
        answers: list[str] = [""] * len(messages)
        for with_image in (True, False):
            group = [i for i, image in enumerate(images) if (image is not None) == with_image]
            if not group:
                continue
            chats = [self._chat(messages[i], with_image) for i in group]
            for i, answer in zip(
                group, self._generate_group([images[i] for i in group], chats), strict=False
            ):
                answers[i] = answer
        return answers
