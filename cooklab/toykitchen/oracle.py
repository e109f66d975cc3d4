"""Oracle metrics for Toy Kitchen pictures: frame checks, sequence measures and a mask provider.

Built on the palette reading of a picture (``palette_reading.py``: container colour, mask and kind,
ingredients and their states), re-exported here so that ``cooklab.toykitchen.oracle`` is the oracle's one
public face:

* **frame checks** against a recipe step's ``Expectation`` (``check_frame``), **consistency** of a sequence
  (same colour, overlapping container masks: ``container_consistency``), **step faithfulness** (the named
  ingredient is there) and **state accuracy**;
* **masks** of what the picture shows: the container (``container_mask``) and each ingredient's food
  (``food_mask``), the truth that ``cooklab.metrics.attention_segmentation`` scores word maps against;
* ``OracleMaskProvider`` -- the container mask as a cooklab mask provider, so Recipe Diffusion's
  region-aware noise can run in the toy world without GroundingDINO + SAM.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import PIL.Image
import torch

from ..grounding.provider import MaskResult
from .palette_reading import (
    MAX_DISTANCE,
    MIN_CONTAINER_FRACTION,
    MIN_INGREDIENT_PIXELS,
    PALETTE_KEYS,
    RIM_MARGIN,
    PieceStats,
    Reading,
    classify,
    container_colour,
    container_fractions,
    container_kind,
    container_mask,
    erode,
    fill_holes,
    food_mask,
    food_region,
    ingredient_cut,
    ingredient_pixels,
    ingredient_present,
    ingredient_state,
    iou,
    label_components,
    largest_component,
    min_ingredient_pixels,
    piece_stats,
    read,
    unblend,
)
from .recipes import Expectation
from .world import CONTAINER_COLOURS

__all__ = [
    "CONSISTENCY_IOU",
    "MAX_DISTANCE",
    "MIN_CONTAINER_FRACTION",
    "MIN_INGREDIENT_PIXELS",
    "PALETTE_KEYS",
    "RIM_MARGIN",
    "FrameCheck",
    "OracleMaskProvider",
    "PieceStats",
    "Reading",
    "check_frame",
    "classify",
    "container_colour",
    "container_consistency",
    "container_fractions",
    "container_kind",
    "container_mask",
    "erode",
    "fill_holes",
    "food_mask",
    "food_region",
    "ingredient_cut",
    "ingredient_pixels",
    "ingredient_present",
    "ingredient_state",
    "iou",
    "label_components",
    "largest_component",
    "min_ingredient_pixels",
    "piece_stats",
    "read",
    "state_accuracy",
    "step_faithfulness",
    "unblend",
]


# ---------------------------------------------------------------------------
# Frames and sequences
# ---------------------------------------------------------------------------


@dataclass(eq=False)
class FrameCheck:
    """What the oracle read in one frame, against the step's expectation."""

    colour: str | None  # detected container colour
    colour_ok: bool
    ingredient_ok: bool | None  # None when the expectation names no ingredient
    state_ok: bool | None  # None when the expectation names no state
    mask: np.ndarray  # [H, W] bool container mask
    state: str | None = None  # the guessed state of the expected ingredient
    fraction: float = 0.0  # fraction of the picture the detected colour covers
    container: str | None = None  # detected container kind (``container_kind``)
    container_ok: bool = False  # it is the expected one
    cut: str | None = None  # world v3: the shape read for the expected ingredient (only when the expectation has one)
    cut_ok: bool | None = None  # None when the expectation names no cut


def check_frame(image, expectation: Expectation) -> FrameCheck:
    """Read ``image`` and compare it with ``expectation`` (colour; container kind; ingredient present; its state; in
    world v3 the cut shape a cooked ingredient kept)."""
    reading = read(image)
    colour, fraction = reading.colour
    ingredient_ok = state_ok = state = cut = cut_ok = None
    if expectation.ingredient is not None:
        ingredient_ok = ingredient_present(reading, expectation.ingredient)
        state = ingredient_state(reading, expectation.ingredient)
        if expectation.state is not None:
            state_ok = state == expectation.state
        if expectation.cut is not None:
            cut = ingredient_cut(reading, expectation.ingredient)
            cut_ok = cut == expectation.cut
    kind, _ = container_kind(reading)
    return FrameCheck(
        colour=colour,
        colour_ok=colour == expectation.colour,
        ingredient_ok=ingredient_ok,
        state_ok=state_ok,
        mask=reading.mask,
        state=state,
        fraction=fraction,
        container=kind,
        container_ok=kind == expectation.container,
        cut=cut,
        cut_ok=cut_ok,
    )


#: container masks of a later frame and the first must overlap at least this much (IoU) to be the same container
CONSISTENCY_IOU = 0.5


def container_consistency(images) -> list[bool]:
    """For frames 2..N: the same container colour as frame 1 and a container mask with IoU >= ``CONSISTENCY_IOU`` with
    it.

    All False when frame 1 shows no container colour. Returns ``len(images) - 1`` booleans.
    """
    readings = [read(im) for im in images]
    if not readings:
        return []
    first = readings[0]
    if first.colour[0] is None:
        return [False] * (len(readings) - 1)
    return [r.colour[0] == first.colour[0] and iou(r.mask, first.mask) >= CONSISTENCY_IOU for r in readings[1:]]


def _pairs(images, expectations):
    if len(images) != len(expectations):
        raise ValueError(f"{len(images)} images but {len(expectations)} expectations: give one per step.")
    return [(im, e) for im, e in zip(images, expectations) if e.ingredient is not None]


def step_faithfulness(images, expectations) -> list[bool]:
    """For every step whose expectation names an ingredient (in order): is it present in the step's image?"""
    return [ingredient_present(im, e.ingredient) for im, e in _pairs(images, expectations)]


def state_accuracy(images, expectations) -> float | None:
    """Fraction of steps naming an ingredient and a state whose state guess matches; None when no step names one."""
    hits = [ingredient_state(im, e.ingredient) == e.state for im, e in _pairs(images, expectations) if e.state]
    return float(np.mean(hits)) if hits else None


# ---------------------------------------------------------------------------
# A mask provider for Recipe Diffusion's region-aware noise
# ---------------------------------------------------------------------------


@dataclass
class OracleMaskProvider:
    """The container mask read from the palette: a cooklab ``MaskProvider`` for Toy Kitchen pictures.

    Call it as ``provider(image, phrase)``. The colour family is ``colour`` if given, else a container
    colour the phrase names when the picture shows it ("the blue bowl"), else the detected colour.
    Returns None when no container colour covers ``MIN_CONTAINER_FRACTION`` of the picture.
    """

    colour: str | None = None

    def __call__(self, image: PIL.Image.Image, phrase: str) -> MaskResult | None:
        """The container's mask read from the palette: the colour ``phrase`` names, else the colour the oracle reads.

        Args:
            image: a Toy Kitchen picture (rendered or generated).
            phrase: the container phrase; a colour word in it picks that colour (unless the provider was given one).

        Returns a ``MaskResult`` with the mask and its box, or None when no container colour covers enough pixels.
        """
        reading = read(image)
        fractions = container_fractions(reading)
        named = [c for c in CONTAINER_COLOURS if c in phrase.lower().split()]
        colour = self.colour or next((c for c in named if fractions[c] >= MIN_CONTAINER_FRACTION), None)
        colour = colour or reading.colour[0]
        if colour is None or fractions[colour] < MIN_CONTAINER_FRACTION:
            return None
        mask = container_mask(reading, colour)  # [H, W] bool
        if not mask.any():
            return None
        ys, xs = np.nonzero(mask)
        box = (
            float(xs.min()),
            float(ys.min()),
            float(xs.max() + 1),
            float(ys.max() + 1),
        )  # pixel edges, x1 / y1 exclusive
        extra: dict[str, Any] = {"colour": colour, "colour_fraction": fractions[colour]}
        return MaskResult(
            mask=torch.from_numpy(mask.astype(np.float32)),
            phrase=phrase,
            box=box,
            score=float(mask.mean()),
            source="oracle",
            extra=extra,
        )
