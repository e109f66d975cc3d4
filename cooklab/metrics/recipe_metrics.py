"""CookAnything's measures, defined from CLIP features (the paper does not publish its protocol).

With L2-normalised CLIP features ``f`` (image) and ``g`` (text, long texts chunked or truncated as in
``clip_score``), ``cos(a, b) = a . b`` in [-1, 1], frames ``x_1..x_N``, step texts ``t_1..t_N``
and the recipe's goal ``G`` (its title)::

    goal faithfulness       per frame i:  cos(f(x_i), g(G))                value = mean over frames
    step faithfulness       per frame i:  cos(f(x_i), g(t_i))              value = mean over frames
    cross-step consistency  per pair:     cos(f(x_i), f(x_j))              value = mean over pairs
                            (pairs ``consecutive`` (i, i+1), the default, or ``all`` i < j)
    ingredient accuracy     per (step i, ingredient k it lists):
                            1 if cos(f(x_i), g("a photo of {k}")) > cos(f(x_i), g("a photo")) else 0
                                                                           value = mean over pairs

Ingredient accuracy is CLIP zero-shot classification between the ingredient's prompt and a
neutral prompt (softmax at any temperature picks the larger cosine): "is this picture more a
photo of {k} than just a photo?". Both prompts are parameters and are recorded. Step
faithfulness is CLIP-T without the factor 100 and the clamp at 0.
"""

from __future__ import annotations

from ..backbones.clip import DEFAULT_CLIP, ClipBackbone, clip_backbone
from ..errors import ConfigError
from .clip_score import text_record
from .result import MetricResult, frame_pairs, mean_or_nan, provenance

__all__ = ["cross_step_consistency", "goal_faithfulness", "ingredient_accuracy", "step_faithfulness"]

CROP = "whole frame, centre crop"


def goal_faithfulness(
    images, goal: str, clip: str | ClipBackbone = DEFAULT_CLIP, text_mode: str = "chunk"
) -> MetricResult:
    """``cos(f(x_i), g(goal))`` per frame, averaged: does every picture belong to the dish?"""
    clip = clip_backbone(clip)
    g, per_text = clip.text_features([goal], text_mode)  # [1, D]
    per_item = (clip.image_features(list(images)) @ g[0]).tolist()  # [N]
    return MetricResult(
        mean_or_nan(per_item),
        per_item,
        provenance(
            "goal_faithfulness",
            clip.source,
            clip.preprocess,
            CROP,
            goal=goal,
            text=text_record(clip, text_mode, per_text),
            formula="cos(image_i, goal); mean over frames",
        ),
    )


def step_faithfulness(
    images, texts: list[str], clip: str | ClipBackbone = DEFAULT_CLIP, text_mode: str = "chunk"
) -> MetricResult:
    """``cos(f(x_i), g(t_i))`` per frame, averaged: does picture i show step i?"""
    clip = clip_backbone(clip)
    images, texts = list(images), list(texts)
    if len(images) != len(texts):
        raise ConfigError(f"{len(images)} images but {len(texts)} texts: give one step text per frame.")
    g, per_text = clip.text_features(texts, text_mode)  # [N, D]
    per_item = (clip.image_features(images) * g).sum(-1).tolist()  # [N]
    return MetricResult(
        mean_or_nan(per_item),
        per_item,
        provenance(
            "step_faithfulness",
            clip.source,
            clip.preprocess,
            CROP,
            text=text_record(clip, text_mode, per_text),
            formula="cos(image_i, step_text_i); mean over frames",
        ),
    )


def cross_step_consistency(
    images, clip: str | ClipBackbone = DEFAULT_CLIP, pairs: str = "consecutive"
) -> MetricResult:
    """``cos(f(x_i), f(x_j))`` per frame pair (``consecutive`` or ``all``), averaged."""
    clip = clip_backbone(clip)
    images = list(images)
    index = frame_pairs(len(images), pairs)
    f = clip.image_features(images)  # [N, D]
    per_item = [float(f[i] @ f[j]) for i, j in index]
    return MetricResult(
        mean_or_nan(per_item),
        per_item,
        provenance(
            "cross_step_consistency",
            clip.source,
            clip.preprocess,
            CROP,
            pairs=pairs,
            pair_index=index,
            formula="cos(image_i, image_j); mean over pairs",
        ),
    )


def ingredient_accuracy(
    images,
    ingredients: list[list[str]],
    clip: str | ClipBackbone = DEFAULT_CLIP,
    template: str = "a photo of {}",
    neutral: str = "a photo",
) -> MetricResult:
    """Per (step, listed ingredient): 1 if the frame is closer to ``template.format(k)`` than to ``neutral``, else 0;
    averaged."""
    clip = clip_backbone(clip)
    images, ingredients = list(images), [list(names) for names in ingredients]
    if len(images) != len(ingredients):
        raise ConfigError(
            f"{len(images)} images but {len(ingredients)} ingredient lists: give one list (maybe empty) per frame."
        )
    if "{}" not in template:
        raise ConfigError(f"template={template!r} has no '{{}}' for the ingredient: e.g. 'a photo of {{}}'.")
    scored = [(i, name) for i, names in enumerate(ingredients) for name in names]  # (step, ingredient) pairs
    per_item: list[float] = []
    if scored:
        f = clip.image_features(images)  # [N, D]
        names = sorted({name for _, name in scored})
        g, _ = clip.text_features([neutral, *(template.format(n) for n in names)], "chunk")  # [1 + K, D]
        row = {n: k + 1 for k, n in enumerate(names)}
        per_item = [float(f[i] @ g[row[name]] > f[i] @ g[0]) for i, name in scored]
    return MetricResult(
        mean_or_nan(per_item),
        per_item,
        provenance(
            "ingredient_accuracy",
            clip.source,
            clip.preprocess,
            CROP,
            scored=scored,
            template=template,
            neutral=neutral,
            formula="1[cos(image_i, template(k)) > cos(image_i, neutral)]; mean over (step, ingredient)",
            **({} if scored else {"note": "no step lists an ingredient: nothing to score (value nan)"}),
        ),
    )
