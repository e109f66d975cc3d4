"""The CLIP backbone: a transformers ``CLIPModel``, its tokenizer and its image ``Preprocess``.

With a CLIP image encoder ``f`` and text encoder ``g``, ``ClipBackbone.image_features`` gives
``f(x)`` and ``ClipBackbone.text_features`` gives ``g(t)``, projected and L2-normalised (so
``cos(a, b) = a . b``); ``cooklab.metrics.clip_score`` and ``recipe_metrics`` build the papers'
measures on them, and the Toy Kitchen trains its own CLIP (``cooklab.models.toy_clip``).

CLIP reads at most 77 tokens (start and end token included). A longer text is either
**chunked** (default): its tokens are cut into windows of at most 75, each window gets the start
and end token and is encoded, and ``g(t) = normalise(mean_k normalise(g(window_k)))``; or
**truncated** to its first 75 tokens. A text of at most 75 tokens is one window either way, so
the mode changes nothing for it.

``clip_backbone(source)`` builds a ``ClipBackbone`` from a hub id or a local folder (default
``"openai/clip-vit-base-patch32"``; the Illustrated Instructions protocol uses ``OPENCLIP_VIT_H14``;
offline-aware, a ``CheckpointError`` naming the fix when the files are not there), from a ``CLIPModel``
plus tokenizer, or passes a ``ClipBackbone`` through.
``tiny_random_clip()`` is a small CLIP with random weights built from a config in code (tests).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from .preprocess import DEFAULT_BATCH_SIZE, Preprocess, batched_features, load_pretrained, progress, resolve_device

if TYPE_CHECKING:
    from transformers import CLIPModel, PreTrainedTokenizerBase

__all__ = [
    "CLIP_MEAN",
    "CLIP_STD",
    "DEFAULT_CLIP",
    "OPENCLIP_VIT_H14",
    "TEXT_MODES",
    "ClipBackbone",
    "clip_backbone",
    "tiny_random_clip",
]

DEFAULT_CLIP = "openai/clip-vit-base-patch32"
#: the Illustrated Instructions reference's faithfulness backbone: OpenCLIP ViT-H/14 trained on LAION-2B (the hub
#: repo holds transformers' CLIPModel weights and tokenizer too; its processor: shortest side 224, bicubic, centre
#: crop 224, the CLIP mean and std -- the reference's transform)
OPENCLIP_VIT_H14 = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"
#: what happens to a text longer than CLIP's window
TEXT_MODES = ("chunk", "truncate")
#: OpenAI CLIP's normalisation (CLIPImageProcessor's defaults)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass
class ClipBackbone:
    """A CLIP model with its tokenizer and image preprocessing; ``source`` names where it came from."""

    model: CLIPModel
    tokenizer: PreTrainedTokenizerBase
    preprocess: Preprocess
    source: str
    batch_size: int = DEFAULT_BATCH_SIZE  # pictures per forward pass
    _kept: dict | None = field(
        default=None, init=False, repr=False, compare=False
    )  # features kept inside ``reusing()``

    @contextmanager
    def reusing(self):
        """Inside the block, features of the same pictures and of the same texts are computed once.

        ``score`` runs up to six CLIP metrics on one sequence; each asks for the frames' image
        features, and two for the step texts'. Pictures are recognised by identity (the kept entry
        holds them, so they stay the same objects), texts by their string and mode.
        """
        self._kept = {}
        try:
            yield self
        finally:
            self._kept = None

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def max_tokens(self) -> int:
        """CLIP's text window, start and end token included (77 for every released CLIP)."""
        return int(self.model.config.text_config.max_position_embeddings)

    def image_features(self, images) -> torch.Tensor:
        """``[N, D]`` L2-normalised projected image features of whole frames, ``batch_size`` frames at a time on the
        model's device."""
        images = list(images)
        if self._kept is not None:
            for kept, features in self._kept.get("images", []):
                if len(kept) == len(images) and all(a is b for a, b in zip(kept, images)):
                    return features
        f = batched_features(
            lambda pixels: self.model.get_image_features(pixel_values=pixels).pooler_output,
            images,
            self.preprocess,
            batch_size=self.batch_size,
            device=self.device,
            dtype=self.model.dtype,
            desc="CLIP images",
        )
        f = F.normalize(f, dim=-1)  # [N, D]
        if self._kept is not None:
            self._kept.setdefault("images", []).append((images, f))
        return f

    def windows(self, text: str, mode: str) -> tuple[int, list[list[int]]]:
        """(content tokens of ``text``, its token windows): each window at most ``max_tokens - 2`` tokens; one when
        truncating."""
        if mode not in TEXT_MODES:
            raise ConfigError(f"text_mode={mode!r}: choose one of {list(TEXT_MODES)}.")
        ids = self.tokenizer(text, add_special_tokens=False, verbose=False)[
            "input_ids"
        ]  # content tokens only, any length
        width = self.max_tokens - 2  # room for the start and end token
        if mode == "truncate" or len(ids) <= width:
            return len(ids), [ids[:width]]
        return len(ids), [ids[i : i + width] for i in range(0, len(ids), width)]

    @torch.no_grad()
    def text_features(self, texts: list[str], mode: str = "chunk") -> tuple[torch.Tensor, list[dict[str, int]]]:
        """``[T, D]`` L2-normalised text features, one per text (windows averaged), and per text its tokens, windows
        and tokens cut."""
        key = ("texts", tuple(texts), mode)
        if self._kept is not None and key in self._kept:
            features, records = self._kept[key]
            return features, [dict(r) for r in records]
        tok = self.tokenizer
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        records, features = [], []
        for text in progress(texts, "CLIP texts", unit="text"):
            n_tokens, windows = self.windows(text, mode)
            records.append(
                {
                    "tokens": n_tokens,
                    "windows": len(windows),
                    "truncated": max(0, n_tokens - sum(len(w) for w in windows)),
                }
            )
            rows = [[tok.bos_token_id, *w, tok.eos_token_id] for w in windows]
            ids = torch.full((len(rows), self.max_tokens), pad, dtype=torch.long)  # [K, 77]
            attention = torch.zeros_like(ids)  # [K, 77]
            for k, row in enumerate(rows):
                ids[k, : len(row)] = torch.tensor(row)
                attention[k, : len(row)] = 1
            g = self.model.get_text_features(
                input_ids=ids.to(self.device), attention_mask=attention.to(self.device)
            ).pooler_output
            g = F.normalize(g.float(), dim=-1)  # [K, D], one per window
            features.append(F.normalize(g.mean(0), dim=-1))  # [D]
        features = torch.stack(features)  # [T, D]
        if self._kept is not None:
            self._kept[key] = (features, [dict(r) for r in records])
        return features, records


def clip_backbone(
    source: str | Path | ClipBackbone | CLIPModel = DEFAULT_CLIP,
    tokenizer=None,
    preprocess: Preprocess | None = None,
    device: str | torch.device | None = None,
    batch_size: int | None = None,
    **from_pretrained_kwargs,
) -> ClipBackbone:
    """A ``ClipBackbone`` from a hub id / local folder, from a built ``CLIPModel`` (+ tokenizer), or passed through.

    device: where the model runs (``"auto"``: CUDA when available, else the CPU; None: where it is).
    batch_size: frames per forward pass (None: keep the backbone's, ``DEFAULT_BATCH_SIZE`` for a new one).
    """
    from transformers import AutoTokenizer, CLIPImageProcessor, CLIPModel

    if isinstance(source, ClipBackbone):
        backbone = source
    elif isinstance(source, CLIPModel):
        if tokenizer is None:
            raise ConfigError(
                "a CLIPModel was given without its tokenizer: pass tokenizer= (e.g. "
                "CLIPTokenizer.from_pretrained(...))."
            )
        size = int(source.config.vision_config.image_size)
        preprocess = preprocess or Preprocess(resize=size, crop=size, mean=CLIP_MEAN, std=CLIP_STD)
        backbone = ClipBackbone(
            source.eval(), tokenizer, preprocess, f"in memory (CLIPModel, {source.name_or_path or 'no name'})"
        )
    else:
        model = load_pretrained(CLIPModel, source, **from_pretrained_kwargs).eval()
        tokenizer = tokenizer or load_pretrained(AutoTokenizer, source, **from_pretrained_kwargs)
        preprocess = preprocess or Preprocess.from_processor(
            load_pretrained(CLIPImageProcessor, source, **from_pretrained_kwargs)
        )
        backbone = ClipBackbone(model, tokenizer, preprocess, str(source))
    if device is not None:
        backbone.model.to(resolve_device(device))
    if batch_size is not None:
        backbone.batch_size = batch_size
    return backbone


def tiny_random_clip(seed: int = 0, image_size: int = 32) -> ClipBackbone:
    """A small ``CLIPModel`` with random weights, built from a config in code with cooklab's in-memory tokenizer
    (tests; meaningless numbers)."""
    from transformers import CLIPConfig, CLIPModel

    from ..word_tokenizers import tiny_clip_tokenizer

    tokenizer = tiny_clip_tokenizer()
    text = {
        "vocab_size": len(tokenizer),
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "max_position_embeddings": 77,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    vision = {
        "image_size": image_size,
        "patch_size": 8,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
    }
    torch.manual_seed(seed)
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).eval()
    preprocess = Preprocess(resize=image_size, crop=image_size, mean=CLIP_MEAN, std=CLIP_STD)
    return ClipBackbone(model, tokenizer, preprocess, f"tiny_random_clip(seed={seed}, image_size={image_size})")
