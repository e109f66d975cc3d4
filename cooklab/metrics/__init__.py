"""Measure a generated sequence the way the papers do: one interface, images in, ``MetricResult`` out.

Every metric takes the frames (and the texts, masks or expectations it needs) and returns a
``MetricResult(value, per_item, record)``; ``docs/metrics.md`` defines each precisely.

* ``result`` -- ``MetricResult``, the frame pairs of a sequence metric, the provenance record
* ``clip_score`` -- CLIP-T (frame vs its step text) and CLIP-I (frame vs frame); ``clip_similarity``, Recipe
  Diffusion Tables I-II's CLIP Score on its scale (a raw cosine)
* ``dino_distance`` -- L2 distance of DINOv2 CLS embeddings between frames, whole (``dino_l2``) or masked
  (``dino_l2_masked``), Tables I-II; ``cross_step_consistency_dino``, the Illustrated Instructions protocol's
  (DINOv2 ViT-L/14, all pairs)
* ``dreamsim`` -- DreamSim distance between frames (``dreamsim_masked``: their key objects), through the optional
  ``dreamsim`` package
* ``recipe_metrics`` -- CookAnything's goal / step faithfulness, cross-step consistency, ingredient accuracy (CLIP
  cosines, cooklab's own reading)
* ``multiple_choice`` -- goal and step faithfulness as the Illustrated Instructions protocol computes them (4-way
  multiple choice, OpenCLIP ViT-H/14), the numbers CookAnything reports
* ``key_objects`` -- a frame cut to its container (mask or box crop) for the key-object measures
* ``toy_oracle`` -- the Toy Kitchen oracle's consistency, faithfulness, state accuracy and (world v3) reference kept
* ``attention_segmentation`` -- a word's attention map against the object's mask: IoU at thresholds, AUROC, the
  centre-prior baseline (``benchmarks/attention_segmentation.py``)
* ``judge`` -- step faithfulness and ingredient presence judged by a vision-language chat model (optional)

The CLIP and DINOv2 backbones they run on are ``cooklab.backbones`` (re-exported here).

``score(images, recipe)`` runs several at once, loading each backbone once::

    from cooklab.metrics import score
    results = score(out.images, recipe)               # the hub's CLIP and DINOv2
    results["clip_score"].value, results["dino_l2"].per_item, results["dino_l2"].record

Importing this package loads torch but neither diffusers nor transformers' models.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

from ..backbones import (
    DEFAULT_CLIP,
    DEFAULT_DINO,
    DINOV2_LARGE,
    OPENCLIP_VIT_H14,
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
from .clip_score import clip_image_score, clip_score, clip_similarity
from .dino_distance import container_masks, cross_step_consistency_dino, dino_l2, dino_l2_masked
from .dreamsim import DEFAULT_CACHE_DIR, dreamsim_distance, dreamsim_masked
from .judge import JUDGE_METRICS, VisionJudge, judge_metrics
from .key_objects import box_mask, key_object_crop
from .multiple_choice import goal_faithfulness_mc, multiple_choice_correct, step_faithfulness_mc
from .recipe_metrics import cross_step_consistency, goal_faithfulness, ingredient_accuracy, step_faithfulness
from .result import MetricResult
from .toy_oracle import (
    oracle_container_consistency,
    oracle_reference_kept,
    oracle_state_accuracy,
    oracle_step_faithfulness,
)

__all__ = [
    "BACKBONE_KIND",
    "DEFAULT_BACKBONES",
    "DEFAULT_METRICS",
    "DINOV2_LARGE",
    "MASK_METRICS",
    "METRICS",
    "OPENCLIP_VIT_H14",
    "PROTOCOL_METRICS",
    "SET_METRICS",
    "ClipBackbone",
    "DinoBackbone",
    "MetricResult",
    "Preprocess",
    "VisionJudge",
    "clip_backbone",
    "box_mask",
    "clip_image_score",
    "clip_score",
    "clip_similarity",
    "container_masks",
    "cross_step_consistency",
    "cross_step_consistency_dino",
    "dino_backbone",
    "dino_l2",
    "dino_l2_masked",
    "dreamsim_distance",
    "dreamsim_masked",
    "goal_faithfulness",
    "goal_faithfulness_mc",
    "ingredient_accuracy",
    "judge_metrics",
    "key_object_crop",
    "metric_backbones",
    "multiple_choice_correct",
    "oracle_container_consistency",
    "oracle_reference_kept",
    "oracle_state_accuracy",
    "oracle_step_faithfulness",
    "score",
    "step_faithfulness",
    "step_faithfulness_mc",
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
#: the Toy Kitchen oracle's measures a toy run gets by default
ORACLE_METRICS = ("oracle_container_consistency", "oracle_step_faithfulness", "oracle_state_accuracy")
#: the oracle's measure of world v3's back-references (an old-world recipe gives nan): named, never a default
V3_ORACLE_METRICS = ("oracle_reference_kept",)
#: every measure that reads the recipe's truth, so needs its ``ToyRecipe``
TOY_RECIPE_METRICS = (*ORACLE_METRICS, *V3_ORACLE_METRICS)
DINO_METRICS = ("dino_l2", "dino_l2_masked")
#: the papers' protocols (``docs/metrics.md``): Recipe Diffusion's CLIP similarity and key-object DreamSim, the
#: Illustrated Instructions protocol's multiple-choice step faithfulness and DINOv2 consistency (per sequence)
PROTOCOL_METRICS = ("clip_similarity", "step_faithfulness_mc", "cross_step_consistency_dino", "dreamsim_masked")
#: metrics of a whole set of sequences, not of one: ``goal_faithfulness_mc(sequences)``; ``cooklab evaluate`` per row
SET_METRICS = ("goal_faithfulness_mc",)
#: the metrics measured on container regions: they need ``masks``
MASK_METRICS = ("dino_l2_masked", "dreamsim_masked")
#: every name ``score`` knows
METRICS = (
    *CLIP_METRICS,
    *DINO_METRICS,
    "dreamsim",
    *TOY_RECIPE_METRICS,
    *JUDGE_METRICS,
    *PROTOCOL_METRICS,
    *SET_METRICS,
)
#: what ``score`` runs by default: the papers' learned metrics that need no optional package
DEFAULT_METRICS = (*CLIP_METRICS, "dino_l2")
#: the backbone each CLIP / DINOv2 metric reads when none is given: the reference's for a paper's protocol
DEFAULT_BACKBONES = {
    **{m: DEFAULT_CLIP for m in (*CLIP_METRICS, "clip_similarity")},
    **{m: DEFAULT_DINO for m in DINO_METRICS},
    "step_faithfulness_mc": OPENCLIP_VIT_H14,
    "goal_faithfulness_mc": OPENCLIP_VIT_H14,
    "cross_step_consistency_dino": DINOV2_LARGE,
}
#: which kind of backbone a metric reads: "clip" or "dino" (the others read none, or their own package)
BACKBONE_KIND = {
    m: "dino" if m in (*DINO_METRICS, "cross_step_consistency_dino") else "clip" for m in DEFAULT_BACKBONES
}


def metric_backbones(metrics, clip=None, dino=None, backbones=None, device="auto", batch_size=None) -> dict:
    """``{metric: loaded backbone}`` for the CLIP / DINOv2 metrics among ``metrics``, each source loaded once.

    A metric's backbone: ``backbones[metric]`` when given, else ``clip`` / ``dino`` (by its
    ``BACKBONE_KIND``) when given, else ``DEFAULT_BACKBONES[metric]`` (the reference's for a
    protocol: OpenCLIP ViT-H/14 for the multiple choice, DINOv2 ViT-L/14 for the consistency).
    """
    backbones = dict(backbones or {})
    loaded: dict = {}  # source (a string, or a built backbone's id) -> backbone
    out = {}
    for metric in metrics:
        kind = BACKBONE_KIND.get(metric)
        if kind is None:
            continue
        source = backbones.get(metric) or (clip if kind == "clip" else dino) or DEFAULT_BACKBONES[metric]
        key = (kind, source if isinstance(source, (str, Path)) else id(source))
        if key not in loaded:
            load = clip_backbone if kind == "clip" else dino_backbone
            loaded[key] = load(source, device=device, batch_size=batch_size)
        out[metric] = loaded[key]
    return out


def _check_inputs(metrics, expectations, judge, masks) -> None:
    """``ConfigError`` naming the fix for a metric ``score`` cannot run with what it was given."""
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ConfigError(f"unknown metric(s) {unknown}: choose from {list(METRICS)}.")
    set_level = [m for m in metrics if m in SET_METRICS]
    if set_level:
        raise ConfigError(
            f"{set_level} measure a set of recipes, not one sequence: call cooklab.metrics.goal_faithfulness_mc("
            "[(images, goal), ...]) on several recipes' frames, or list it in a `cooklab evaluate` config."
        )
    if expectations is None and any(m in TOY_RECIPE_METRICS for m in metrics):
        raise ConfigError(
            "the oracle_* metrics read a Toy Kitchen recipe's expectations: pass the ToyRecipe "
            "(cooklab.toykitchen.random_toy_recipe(...)), not a plain Recipe."
        )
    if judge is None and any(m in JUDGE_METRICS for m in metrics):
        raise ConfigError(
            "the judge_* metrics ask a vision-language model: pass judge=VisionJudge(model, base_url=...)."
        )
    masked = [m for m in metrics if m in MASK_METRICS]
    if masked and (masks is None or not any(m is not None for m in masks)):
        raise ConfigError(
            f"{masked} measure the frames' container regions: pass masks= (one [H, W] mask or None per "
            "frame, e.g. cooklab.metrics.container_masks(images, phrases, provider))."
        )


def score(
    images,
    recipe,
    metrics=DEFAULT_METRICS,
    *,
    clip=None,
    dino=None,
    backbones=None,
    masks=None,
    dreamsim_cache_dir: str | Path = DEFAULT_CACHE_DIR,
    text_mode: str = "chunk",
    pairs: str = "consecutive",
    seed: int = 0,
    device: str | None = "auto",
    batch_size: int | None = None,
    judge: VisionJudge | None = None,
) -> dict[str, MetricResult]:
    """Run ``metrics`` on one generated sequence: ``{name: MetricResult}``, in the order asked.

    images: one picture per step. recipe: anything ``cooklab.as_recipe`` takes, or a Toy Kitchen
    ``ToyRecipe`` (needed by the ``oracle_*`` metrics, which read its expectations; ``oracle_reference_kept`` its
    references and true scenes). The goal is
    the recipe's title, step texts its steps, ingredient lists ``Step.ingredients``.
    clip / dino: a hub id, a local folder or a built backbone (``tiny_random_clip()``) for every CLIP / DINOv2
    metric; backbones: ``{metric: backbone}`` for single metrics; what is not given is the metric's
    ``DEFAULT_BACKBONES`` entry (``metric_backbones``). Each is loaded once.
    masks: one mask or None per frame, for ``dino_l2_masked`` and ``dreamsim_masked`` (the container regions;
    ``container_masks``).
    text_mode: ``"chunk"`` or ``"truncate"`` for texts beyond CLIP's 77 tokens; pairs: ``"consecutive"`` or ``"all"``.
    seed: the multiple choice's draws (``step_faithfulness_mc``).
    device: where CLIP, DINOv2 and DreamSim run (``"auto"``: CUDA when available; None: leave given backbones where
    they are);
    batch_size: frames per forward pass (None: the backbone's own). judge: a ``VisionJudge`` for the ``judge_*``
    metrics.
    """
    toy = recipe if isinstance(recipe, ToyRecipe) else None
    expectations = list(toy.expectations) if toy is not None else None
    _check_inputs(metrics, expectations, judge, masks)
    recipe = recipe.to_recipe() if isinstance(recipe, ToyRecipe) else as_recipe(recipe)
    images = list(images)
    if len(images) != len(recipe.steps):
        raise ConfigError(
            f"{len(images)} images for a recipe of {len(recipe.steps)} steps: give one picture per step."
        )
    texts = [step.text for step in recipe.steps]
    bb = metric_backbones(metrics, clip, dino, backbones, device, batch_size)  # metric -> its backbone
    judged: dict[str, MetricResult] = {}  # both judge_* metrics come from one pass over the frames

    def from_judge(name: str) -> MetricResult:
        if not judged:
            judged.update(judge_metrics(images, recipe, judge))
        return judged[name]

    run = {
        "clip_score": lambda: clip_score(images, texts, bb["clip_score"], text_mode),
        "clip_image_score": lambda: clip_image_score(images, bb["clip_image_score"], pairs),
        "goal_faithfulness": lambda: goal_faithfulness(images, recipe.title, bb["goal_faithfulness"], text_mode),
        "step_faithfulness": lambda: step_faithfulness(images, texts, bb["step_faithfulness"], text_mode),
        "cross_step_consistency": lambda: cross_step_consistency(images, bb["cross_step_consistency"], pairs),
        "ingredient_accuracy": lambda: ingredient_accuracy(
            images, [step.ingredients for step in recipe.steps], bb["ingredient_accuracy"]
        ),
        "clip_similarity": lambda: clip_similarity(images, texts, bb["clip_similarity"], text_mode),
        "step_faithfulness_mc": lambda: step_faithfulness_mc(images, texts, bb["step_faithfulness_mc"], seed=seed),
        "cross_step_consistency_dino": lambda: cross_step_consistency_dino(images, bb["cross_step_consistency_dino"]),
        "dino_l2": lambda: dino_l2(images, None, bb["dino_l2"], pairs),
        "dino_l2_masked": lambda: dino_l2_masked(images, masks, bb["dino_l2_masked"], pairs),
        "dreamsim": lambda: dreamsim_distance(
            images, dreamsim_cache_dir, pairs=pairs, device=resolve_device(device or "cpu")
        ),
        "dreamsim_masked": lambda: dreamsim_masked(
            images, masks, dreamsim_cache_dir, pairs=pairs, device=resolve_device(device or "cpu")
        ),
        "oracle_container_consistency": lambda: oracle_container_consistency(images),
        "oracle_step_faithfulness": lambda: oracle_step_faithfulness(images, expectations),
        "oracle_state_accuracy": lambda: oracle_state_accuracy(images, expectations),
        "oracle_reference_kept": lambda: oracle_reference_kept(images, toy),
        **{name: (lambda name=name: from_judge(name)) for name in JUDGE_METRICS},
    }
    with ExitStack() as stack:  # each CLIP's features of the frames once, not once per metric
        for backbone in {id(b): b for b in bb.values() if isinstance(b, ClipBackbone)}.values():
            stack.enter_context(backbone.reusing())
        return {name: run[name]() for name in metrics}
