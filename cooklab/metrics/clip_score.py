"""CLIP score (Recipe Diffusion, Tables I-II): each frame against its step text, and frame against frame.

With a CLIP image encoder ``f`` and text encoder ``g`` (projected features, L2-normalised,
``cos(a, b) = a . b``; ``cooklab.backbones.ClipBackbone``)::

    CLIP-T   per frame i:          100 * max(cos(f(x_i), g(t_i)), 0)        value = mean over frames
    CLIP-I   per pair (i, j):      100 * max(cos(f(x_i), f(x_j)), 0)        value = mean over pairs

(the clamp at 0 and the factor 100 are the usual CLIPScore convention, as in torchmetrics), with
pairs ``consecutive`` ((1,2), (2,3), ...; the default) or ``all`` (every i < j).

Recipe Diffusion's Tables I-II report "CLIP Score" on a 0.30-0.46 scale: a raw cosine, not
``100 * max(cos, 0)``. ``clip_similarity`` is that number::

    CLIP similarity  per frame i:  cos(f(x_i), g(t_i))                      value = mean over frames

(the paper says "between images and text, or between image pairs"; its scale and its column's
reading, text-image alignment, make it the frame against its step text; the paper names no
backbone, cooklab's default is ``openai/clip-vit-base-patch32``, recorded).

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

__all__ = ["clip_image_score", "clip_score", "clip_similarity", "text_record"]


def text_record(clip: ClipBackbone, mode: str, per_text: list[dict[str, int]]) -> dict[str, Any]:
    """The record's ``text`` entry: the mode, CLIP's window and, per text, its tokens, windows and tokens cut."""
    return {"mode": mode, "max_tokens": clip.max_tokens, "per_text": per_text}


def _frame_text_metric(name: str, images, texts, clip, text_mode: str, scale, formula: str) -> MetricResult:
    """``scale(cos(f(x_i), g(t_i)))`` per frame i, averaged: CLIP-T and CLIP similarity."""
    clip = clip_backbone(clip)
    images, texts = list(images), list(texts)
    if len(images) != len(texts):
        raise ConfigError(f"{len(images)} images but {len(texts)} texts: give one step text per frame.")
    g, per_text = clip.text_features(texts, text_mode)  # [N, D]
    sims = (clip.image_features(images) * g).sum(-1)  # [N]
    per_item = scale(sims).tolist()
    return MetricResult(
        mean_or_nan(per_item),
        per_item,
        provenance(
            name,
            clip.source,
            clip.preprocess,
            "whole frame, centre crop",
            text=text_record(clip, text_mode, per_text),
            formula=formula,
        ),
    )


def clip_score(
    images, texts: list[str], clip: str | ClipBackbone = DEFAULT_CLIP, text_mode: str = "chunk"
) -> MetricResult:
    """CLIP-T: ``100 * max(cos(f(x_i), g(t_i)), 0)`` per frame i (frame i against step text i), averaged."""
    return _frame_text_metric(
        "clip_score",
        images,
        texts,
        clip,
        text_mode,
        lambda sims: 100 * sims.clamp(min=0),
        "100 * max(cos(image_i, text_i), 0); mean over frames",
    )


def clip_similarity(
    images, texts: list[str], clip: str | ClipBackbone = DEFAULT_CLIP, text_mode: str = "chunk"
) -> MetricResult:
    """Recipe Diffusion's CLIP Score on its scale: the raw ``cos(f(x_i), g(t_i))`` per frame i, averaged (no factor
    100, no clamp)."""
    return _frame_text_metric(
        "clip_similarity",
        images,
        texts,
        clip,
        text_mode,
        lambda sims: sims,
        "cos(image_i, text_i); mean over frames (Recipe Diffusion's 0.30-0.46 scale)",
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
