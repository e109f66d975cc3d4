"""CLIP score (Recipe Diffusion, Tables I-II): each frame against its step text, and frame against frame.

With a CLIP image encoder ``f`` and text encoder ``g`` (projected features, L2-normalised,
``cos(a, b) = a . b``; ``cooklab.backbones.ClipBackbone``)::

    CLIP-T   per frame i:          100 * max(cos(f(x_i), g(t_i)), 0)        value = mean over frames
    CLIP-I   per pair (i, j):      100 * max(cos(f(x_i), f(x_j)), 0)        value = mean over pairs

(the clamp at 0 and the factor 100 are the usual CLIPScore convention, as in torchmetrics), with
pairs ``consecutive`` ((1,2), (2,3), ...; the default) or ``all`` (every i < j).

A step text longer than CLIP's 77 tokens is chunked (default) or truncated as
``ClipBackbone.windows`` describes; the record lists the tokens and windows of every text.
The backbone is a ``ClipBackbone``, a hub id or a local folder (``clip_backbone``; default
``"openai/clip-vit-base-patch32"``); ``tiny_random_clip()`` builds a random one for tests.
"""

from __future__ import annotations

from typing import Any

from ..backbones.clip import DEFAULT_CLIP, ClipBackbone, clip_backbone
from ..errors import ConfigError
from .result import MetricResult, frame_pairs, mean_or_nan, provenance

__all__ = ["clip_image_score", "clip_score", "text_record"]


def text_record(clip: ClipBackbone, mode: str, per_text: list[dict[str, int]]) -> dict[str, Any]:
    """The record's ``text`` entry: the mode, CLIP's window and, per text, its tokens, windows and tokens cut."""
    return {"mode": mode, "max_tokens": clip.max_tokens, "per_text": per_text}


def clip_score(
    images, texts: list[str], clip: str | ClipBackbone = DEFAULT_CLIP, text_mode: str = "chunk"
) -> MetricResult:
    """CLIP-T: ``100 * max(cos(f(x_i), g(t_i)), 0)`` per frame i (frame i against step text i), averaged."""
    clip = clip_backbone(clip)
    images, texts = list(images), list(texts)
    if len(images) != len(texts):
        raise ConfigError(f"{len(images)} images but {len(texts)} texts: give one step text per frame.")
    g, per_text = clip.text_features(texts, text_mode)  # [N, D]
    sims = (clip.image_features(images) * g).sum(-1)  # [N]
    per_item = (100 * sims.clamp(min=0)).tolist()
    return MetricResult(
        mean_or_nan(per_item),
        per_item,
        provenance(
            "clip_score",
            clip.source,
            clip.preprocess,
            "whole frame, centre crop",
            text=text_record(clip, text_mode, per_text),
            formula="100 * max(cos(image_i, text_i), 0); mean over frames",
        ),
    )


def clip_image_score(images, clip: str | ClipBackbone = DEFAULT_CLIP, pairs: str = "consecutive") -> MetricResult:
    """CLIP-I: ``100 * max(cos(f(x_i), f(x_j)), 0)`` per frame pair (``consecutive`` or ``all``), averaged."""
    clip = clip_backbone(clip)
    images = list(images)
    index = frame_pairs(len(images), pairs)
    f = clip.image_features(images)  # [N, D]
    per_item = [100 * max(float(f[i] @ f[j]), 0.0) for i, j in index]
    return MetricResult(
        mean_or_nan(per_item),
        per_item,
        provenance(
            "clip_image_score",
            clip.source,
            clip.preprocess,
            "whole frame, centre crop",
            pairs=pairs,
            pair_index=index,
            formula="100 * max(cos(image_i, image_j), 0); mean over pairs",
        ),
    )
