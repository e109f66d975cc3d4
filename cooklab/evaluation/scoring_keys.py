"""What each stored score was measured with: one key per metric, so a changed input is scored again.

A unit's ``unit.json`` keeps, next to each metric's numbers, the metric's **scoring key**: every
input the number depends on besides the frames::

    key(metric) = { input: value(input)  for input in SCORING_INPUTS[metric] }

    backbone      {"name": the metric's backbone (``EvalConfig.backbone_for``: its ``backbones:`` entry,
                  else clip: / dino:), "weights": weights_digest(loaded model)}
    masks         {"spec": the config's masks:, "digest": sha256 of the masks actually used}
    text_mode, pairs, multiple_choice      the protocol's parameters (``PROTOCOL``, the choices and seed)
    dreamsim, oracle       the package (version) that computes them

``cooklab evaluate`` reuses a stored number only when its key equals the key of this run
(``fresh_scores``); any other metric is scored again from the unit's saved frames (not generated
again). A unit written before keys existed has none, so all its metrics are scored again. The
weights are hashed once per backbone and run (``cooklab.backbones.weights_digest``), so a backbone
must load for its stored numbers to count: one that cannot is an error, never an old number. With
``dino_l2_masked`` the masks are an input, so checking a finished unit reads its frames and runs the
mask provider on them. ``dreamsim`` is keyed by its package's version (its weights load inside the
metric), the oracle metrics by cooklab's. The set-level metrics (``set_scoring``) are never stored,
so they have no key: they are scored from the frames at every merge.

A new metric adds an entry to ``SCORING_INPUTS`` (and, for a new kind of input, to ``INPUTS``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..metrics.multiple_choice import CHOICES
from ..versions import package_versions
from .config import EvalConfig

__all__ = [
    "INPUTS",
    "PROTOCOL",
    "SCORING_INPUTS",
    "Measured",
    "check_keyed",
    "fresh_scores",
    "masks_digest",
    "scoring_keys",
]

#: the protocol parameters ``cooklab evaluate`` scores with (``cooklab.metrics.score``'s keywords)
PROTOCOL = {"text_mode": "chunk", "pairs": "consecutive", "seed": 0}

#: metric -> the names of the inputs its number depends on (the frames aside)
SCORING_INPUTS: dict[str, tuple[str, ...]] = {
    "clip_score": ("backbone", "text_mode"),
    "clip_image_score": ("backbone", "pairs"),
    "goal_faithfulness": ("backbone", "text_mode"),
    "step_faithfulness": ("backbone", "text_mode"),
    "cross_step_consistency": ("backbone", "pairs"),
    "ingredient_accuracy": ("backbone",),
    "clip_similarity": ("backbone", "text_mode"),
    "step_faithfulness_mc": ("backbone", "multiple_choice"),
    "cross_step_consistency_dino": ("backbone",),
    "dino_l2": ("backbone", "pairs"),
    "dino_l2_masked": ("backbone", "masks", "pairs"),
    "dreamsim": ("dreamsim", "pairs"),
    "dreamsim_masked": ("dreamsim", "masks", "pairs"),
    "oracle_container_consistency": ("oracle",),
    "oracle_step_faithfulness": ("oracle",),
    "oracle_state_accuracy": ("oracle",),
    "oracle_reference_kept": ("oracle",),
}


@dataclass
class Measured:
    """What one unit is scored with: the config, the loaded backbones' weight digests, the unit's masks."""

    config: EvalConfig
    weights: dict[str, str]  # metric -> weights_digest of its loaded CLIP / DINOv2
    masks: list | None = None  # one [H, W] bool mask or None per frame (the mask metrics), else None


#: input name -> its value for a unit and a metric (JSON-able)
INPUTS: dict[str, Callable[[Measured, str], Any]] = {
    "backbone": lambda m, metric: {"name": m.config.backbone_for(metric), "weights": m.weights[metric]},
    "masks": lambda m, metric: {"spec": m.config.masks, "digest": masks_digest(m.masks)},
    "text_mode": lambda m, metric: PROTOCOL["text_mode"],
    "pairs": lambda m, metric: PROTOCOL["pairs"],
    "multiple_choice": lambda m, metric: {"choices": CHOICES, "seed": PROTOCOL["seed"]},
    "dreamsim": lambda m, metric: package_versions("dreamsim"),
    "oracle": lambda m, metric: package_versions("cooklab"),  # the Toy Kitchen oracle is cooklab's code
}


def masks_digest(masks: list | None) -> str | None:
    """16 hex digits of sha256 over the masks (``[H, W]`` arrays or None per frame), in frame order."""
    if masks is None:
        return None
    sha = hashlib.sha256()
    for mask in masks:
        if mask is None:
            sha.update(b"none|")
            continue
        array = np.ascontiguousarray(np.asarray(mask, dtype=bool))  # [H, W]
        sha.update(f"{array.shape}|".encode())
        sha.update(np.packbits(array).tobytes())
    return sha.hexdigest()[:16]


def check_keyed(metrics) -> None:
    """A ``ConfigError`` naming the fix when a metric has no entry in ``SCORING_INPUTS``."""
    unkeyed = [m for m in metrics if m not in SCORING_INPUTS]
    if unkeyed:
        raise ConfigError(
            f"metric(s) {unkeyed} have no scoring key, so cooklab evaluate could not tell a stored number from a "
            "stale one: leave them out of `metrics:` (score a run with `cooklab score`), or add their inputs to "
            "SCORING_INPUTS in cooklab/evaluation/scoring_keys.py."
        )


def scoring_keys(measured: Measured, metrics) -> dict[str, dict]:
    """``{metric: key}`` for each of ``metrics`` (keys as JSON reads them back, to compare with stored ones)."""
    keys = {}
    for metric in metrics:
        key = {name: INPUTS[name](measured, metric) for name in SCORING_INPUTS[metric]}
        keys[metric] = json.loads(json.dumps(key, sort_keys=True))  # tuples as lists, like a stored key
    return keys


def fresh_scores(record: dict, keys: dict[str, dict]) -> dict[str, dict]:
    """The stored scores of ``record`` (a ``unit.json``) still valid: its key for the metric equals ``keys``'."""
    stored = record.get("scoring", {})
    return {m: record["metrics"][m] for m, key in keys.items() if m in record["metrics"] and stored.get(m) == key}
