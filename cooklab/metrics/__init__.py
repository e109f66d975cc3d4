"""Measure a generated sequence the way the papers do: one interface, images in, ``MetricResult`` out.

Every metric takes the frames (and the texts, masks or expectations it needs) and returns a
``MetricResult(value, per_item, record)``; ``docs/metrics.md`` defines each precisely.

* ``result`` -- ``MetricResult``, the frame pairs of a sequence metric, the provenance record
* ``clip_score`` -- CLIP-T (frame vs its step text) and CLIP-I (frame vs frame), Recipe Diffusion Tables I-II
* ``dino_distance`` -- L2 distance of DINOv2 CLS embeddings between frames, whole (``dino_l2``) or masked
  (``dino_l2_masked``), Tables I-II
* ``dreamsim`` -- DreamSim distance between frames, through the optional ``dreamsim`` package
* ``recipe_metrics`` -- CookAnything's goal / step faithfulness, cross-step consistency, ingredient accuracy (CLIP)
* ``toy_oracle`` -- the Toy Kitchen oracle's consistency, faithfulness and state accuracy
* ``judge`` -- step faithfulness and ingredient presence judged by a vision-language chat model (optional)

The CLIP and DINOv2 backbones they run on are ``cooklab.backbones`` (re-exported here).

``score(images, recipe)`` runs several at once, loading each backbone once::

    from cooklab.metrics import score
    results = score(out.images, recipe)               # the hub's CLIP and DINOv2
    results["clip_score"].value, results["dino_l2"].per_item, results["dino_l2"].record

Importing this package loads torch but neither diffusers nor transformers' models.
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

from ..backbones import (
    DEFAULT_CLIP,
    DEFAULT_DINO,
    ClipBackbone,
    DinoBackbone,
    Preprocess,
    clip_backbone,
    dino_backbone,
    resolve_device,
    tiny_random_clip,
    tiny_random_dino,
)
from ..errors import ConfigError
from ..recipe import as_recipe
from ..toykitchen.recipes import ToyRecipe
from .clip_score import clip_image_score, clip_score
from .dino_distance import container_masks, dino_l2, dino_l2_masked
from .dreamsim import DEFAULT_CACHE_DIR, dreamsim_distance
from .judge import JUDGE_METRICS, VisionJudge, judge_metrics
from .recipe_metrics import cross_step_consistency, goal_faithfulness, ingredient_accuracy, step_faithfulness
from .result import MetricResult
from .toy_oracle import oracle_container_consistency, oracle_state_accuracy, oracle_step_faithfulness

__all__ = [
    "DEFAULT_METRICS",
    "METRICS",
    "ClipBackbone",
    "DinoBackbone",
    "MetricResult",
    "Preprocess",
    "VisionJudge",
    "clip_backbone",
    "clip_image_score",
    "clip_score",
    "container_masks",
    "cross_step_consistency",
    "dino_backbone",
    "dino_l2",
    "dino_l2_masked",
    "dreamsim_distance",
    "goal_faithfulness",
    "ingredient_accuracy",
    "judge_metrics",
    "oracle_container_consistency",
    "oracle_state_accuracy",
    "oracle_step_faithfulness",
    "score",
    "step_faithfulness",
    "tiny_random_clip",
    "tiny_random_dino",
]

CLIP_METRICS = (
    "clip_score",
    "clip_image_score",
    "goal_faithfulness",
    "step_faithfulness",
    "cross_step_consistency",
    "ingredient_accuracy",
)
ORACLE_METRICS = ("oracle_container_consistency", "oracle_step_faithfulness", "oracle_state_accuracy")
#: every name ``score`` knows
DINO_METRICS = ("dino_l2", "dino_l2_masked")
METRICS = (*CLIP_METRICS, *DINO_METRICS, "dreamsim", *ORACLE_METRICS, *JUDGE_METRICS)
#: what ``score`` runs by default: the papers' learned metrics that need no optional package
DEFAULT_METRICS = (*CLIP_METRICS, "dino_l2")


def score(
    images,
    recipe,
    metrics=DEFAULT_METRICS,
    *,
    clip=DEFAULT_CLIP,
    dino=DEFAULT_DINO,
    masks=None,
    dreamsim_cache_dir: str | Path = DEFAULT_CACHE_DIR,
    text_mode: str = "chunk",
    pairs: str = "consecutive",
    device: str | None = "auto",
    batch_size: int | None = None,
    judge: VisionJudge | None = None,
) -> dict[str, MetricResult]:
    """Run ``metrics`` on one generated sequence: ``{name: MetricResult}``, in the order asked.

    images: one picture per step. recipe: anything ``cooklab.as_recipe`` takes, or a Toy Kitchen
    ``ToyRecipe`` (needed by the ``oracle_*`` metrics, which read its expectations). The goal is
    the recipe's title, step texts its steps, ingredient lists ``Step.ingredients``.
    clip / dino: a hub id, a local folder or a built backbone (``tiny_random_clip()``), each loaded once.
    masks: one mask or None per frame, for ``dino_l2_masked`` (the masked object regions; ``container_masks``).
    text_mode: ``"chunk"`` or ``"truncate"`` for texts beyond CLIP's 77 tokens; pairs: ``"consecutive"`` or ``"all"``.
    device: where CLIP, DINOv2 and DreamSim run (``"auto"``: CUDA when available; None: leave given backbones where
    they are);
    batch_size: frames per forward pass (None: the backbone's own). judge: a ``VisionJudge`` for the ``judge_*``
    metrics.
    """
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ConfigError(f"unknown metric(s) {unknown}: choose from {list(METRICS)}.")
    expectations = list(recipe.expectations) if isinstance(recipe, ToyRecipe) else None
    recipe = recipe.to_recipe() if isinstance(recipe, ToyRecipe) else as_recipe(recipe)
    images = list(images)
    if len(images) != len(recipe.steps):
        raise ConfigError(
            f"{len(images)} images for a recipe of {len(recipe.steps)} steps: give one picture per step."
        )
    if expectations is None and any(m in ORACLE_METRICS for m in metrics):
        raise ConfigError(
            "the oracle_* metrics read a Toy Kitchen recipe's expectations: pass the ToyRecipe "
            "(cooklab.toykitchen.random_toy_recipe(...)), not a plain Recipe."
        )
    if judge is None and any(m in JUDGE_METRICS for m in metrics):
        raise ConfigError(
            "the judge_* metrics ask a vision-language model: pass judge=VisionJudge(model, base_url=...)."
        )
    texts = [step.text for step in recipe.steps]
    clip = (
        clip_backbone(clip, device=device, batch_size=batch_size) if any(m in CLIP_METRICS for m in metrics) else None
    )
    if "dino_l2_masked" in metrics and (masks is None or not any(m is not None for m in masks)):
        raise ConfigError(
            "dino_l2_masked measures the frames' container regions: pass masks= (one [H, W] mask or None per "
            "frame, e.g. cooklab.metrics.container_masks(images, phrases, provider))."
        )
    dino = (
        dino_backbone(dino, device=device, batch_size=batch_size) if any(m in DINO_METRICS for m in metrics) else None
    )
    judged: dict[str, MetricResult] = {}  # both judge_* metrics come from one pass over the frames

    def from_judge(name: str) -> MetricResult:
        if not judged:
            judged.update(judge_metrics(images, recipe, judge))
        return judged[name]

    run = {
        "clip_score": lambda: clip_score(images, texts, clip, text_mode),
        "clip_image_score": lambda: clip_image_score(images, clip, pairs),
        "goal_faithfulness": lambda: goal_faithfulness(images, recipe.title, clip, text_mode),
        "step_faithfulness": lambda: step_faithfulness(images, texts, clip, text_mode),
        "cross_step_consistency": lambda: cross_step_consistency(images, clip, pairs),
        "ingredient_accuracy": lambda: ingredient_accuracy(images, [step.ingredients for step in recipe.steps], clip),
        "dino_l2": lambda: dino_l2(images, None, dino, pairs),
        "dino_l2_masked": lambda: dino_l2_masked(images, masks, dino, pairs),
        "dreamsim": lambda: dreamsim_distance(
            images, dreamsim_cache_dir, pairs=pairs, device=resolve_device(device or "cpu")
        ),
        "oracle_container_consistency": lambda: oracle_container_consistency(images),
        "oracle_step_faithfulness": lambda: oracle_step_faithfulness(images, expectations),
        "oracle_state_accuracy": lambda: oracle_state_accuracy(images, expectations),
        **{name: (lambda name=name: from_judge(name)) for name in JUDGE_METRICS},
    }
    with clip.reusing() if clip is not None else nullcontext():  # the frames' CLIP features once, not once per metric
        return {name: run[name]() for name in metrics}
