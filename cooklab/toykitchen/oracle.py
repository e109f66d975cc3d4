"""Oracle metrics for Toy Kitchen pictures: read a picture back into the world's terms from the renderer's palette.

The renderer paints every object in a handful of known colours (``world.palette()``) that were chosen
far apart, so a picture -- rendered or generated -- can be read pixel by pixel: each pixel is given
the palette entry nearest to it in RGB, and pixels near none are left unknown. Everything else
follows from that per-pixel reading:

* **container colour** -- the colour family (rim, inside and pattern shade) covering most pixels;
* **container mask** -- that family's pixels, holes filled (food lies inside the container), largest
  connected piece only: shape and position of the container;
* **ingredients** -- raw and cooked pixels per ingredient; present above a minimum count;
* **state** -- cooked when cooked-shade pixels dominate, otherwise a guess from the sizes and spread
  of the ingredient's connected pieces (approximate: see ``ingredient_state``);
* **frame checks** against a recipe step's ``Expectation``, **consistency** of a sequence (same
  colour, overlapping container masks) and **step faithfulness** (the named ingredient is there);
* ``OracleMaskProvider`` -- the container mask as a cooklab mask provider, so Recipe Diffusion's
  region-aware noise can run in the toy world without GroundingDINO + SAM.

On rendered ground truth the reading is exact up to occlusion (``tests/test_toykitchen_oracle.py``
measures it); on generated pictures (blurred edges, noise, approximate colours) it is the metric.
Images may be PIL images, ``[H, W, 3]`` uint8 arrays, float arrays in [0, 1] or ``[3, H, W]`` tensors.
No scipy: connected components and hole filling are done with numpy label propagation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import PIL.Image
import torch

from ..grounding.base import MaskResult
from .recipes import Expectation
from .world import CONTAINER_COLOURS, GRID, INGREDIENTS, palette

#: every palette entry, in a fixed order: ``classify`` returns indices into this tuple
PALETTE_KEYS: tuple[str, ...] = tuple(palette())
_PALETTE_RGB = np.array([palette()[k] for k in PALETTE_KEYS], dtype=np.float32)  # [K, 3]

#: a pixel farther than this (Euclidean RGB) from every palette colour is unknown (-1).
#: ``palette_distances()`` puts the closest colours of *different* objects 43.8 apart (teal pattern /
#: mint table grain), then 44.6 (cooked rice / linen grain) and 45.8 (purple inside / cooked onion).
#: The nearest-colour rule already decides between those; the threshold only throws away pixels that
#: match nothing -- blends across edges of far-apart colours, or wrong colours of a generated picture.
#: At 45 a kept pixel is no farther from its colour than the two closest different objects are from
#: each other, while Gaussian noise of sigma 8 per channel (a typical norm of 8 * sqrt(3) ~ 14) keeps
#: virtually every pixel of a flat area.
MAX_DISTANCE = 45.0

#: a container colour must cover at least this fraction of the picture to count as found. The smallest
#: rendered container (a 3-shade plate hidden under food is never below ~10 %) is far above it, while
#: stray pixels of a generated picture's edges and noise stay well below.
MIN_CONTAINER_FRACTION = 0.03

#: an ingredient is present with at least this many pixels per 64 x 64 (the count scales with the
#: area). The sparsest rendered ingredient -- 40 one-pixel rice grains, or 26 tiny mixed bits, partly
#: covered by food drawn after it -- keeps well over 20 pixels at 64 x 64; stray pixels that blurred
#: edges or noise put near an ingredient colour rarely reach a handful.
MIN_INGREDIENT_PIXELS = 8


def _key_parts(key: str) -> tuple[str, str, str]:
    kind, name, shade = key.split(":")
    return kind, name, shade


_CONTAINER_IDX = {c: np.array([i for i, k in enumerate(PALETTE_KEYS) if _key_parts(k)[:2] == ("container", c)])
                  for c in CONTAINER_COLOURS}
_RAW_IDX = {n: PALETTE_KEYS.index(f"ingredient:{n}:raw") for n in INGREDIENTS}
_COOKED_IDX = {n: PALETTE_KEYS.index(f"ingredient:{n}:cooked") for n in INGREDIENTS}


# ---------------------------------------------------------------------------
# Pixels
# ---------------------------------------------------------------------------


def as_rgb_array(image) -> np.ndarray:
    """Any picture as a float32 [H, W, 3] array in 0..255 (PIL, uint8 / float array, [3, H, W] tensor)."""
    if isinstance(image, PIL.Image.Image):
        return np.asarray(image.convert("RGB"), dtype=np.float32)
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().float().numpy()
        if image.ndim == 3 and image.shape[0] in (1, 3) and image.shape[-1] not in (1, 3):
            image = image.transpose(1, 2, 0)  # [3, H, W] -> [H, W, 3]
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise ValueError(f"expected an RGB picture [H, W, 3]; got shape {arr.shape}.")
    if arr.dtype != np.uint8 and arr.size and float(np.nanmax(arr)) <= 1.0:
        arr = arr * 255.0  # float in [0, 1]
    return arr.astype(np.float32)


def classify(image) -> np.ndarray:
    """[H, W] int: the index into ``PALETTE_KEYS`` of each pixel's nearest palette colour, -1 if farther than ``MAX_DISTANCE``."""
    rgb = as_rgb_array(image)  # [H, W, 3]
    d2 = ((rgb[:, :, None, :] - _PALETTE_RGB[None, None]) ** 2).sum(-1)  # [H, W, K]
    idx = d2.argmin(-1)  # [H, W]
    near = np.take_along_axis(d2, idx[..., None], -1)[..., 0] <= MAX_DISTANCE**2
    return np.where(near, idx, -1)


# ---------------------------------------------------------------------------
# Connected components and hole filling (numpy; scipy is not a dependency)
# ---------------------------------------------------------------------------


def label_components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """4-connected components of a boolean [H, W] mask: ([H, W] int labels, 0 = background, 1..n), n.

    Label propagation: every pixel starts with its own flat index, takes the minimum of its
    4-neighbours inside the mask, and jumps to its label's label (pointer jumping) until nothing
    changes -- a handful of vectorised passes for the blobs of a toy picture.
    """
    mask = np.asarray(mask, dtype=bool)
    h, w = mask.shape
    big = h * w
    lab = np.where(mask, np.arange(big).reshape(h, w), big)  # [H, W]
    while True:
        pad = np.pad(lab, 1, constant_values=big)  # [H + 2, W + 2]
        new = np.minimum.reduce([lab, pad[:-2, 1:-1], pad[2:, 1:-1], pad[1:-1, :-2], pad[1:-1, 2:]])
        new = np.where(mask, new, big)
        flat = np.append(new.ravel(), big)  # index ``big`` maps to itself
        new = flat[flat[new]]  # pointer jumping: labels are flat indices of pixels of the same component
        if np.array_equal(new, lab):
            break
        lab = new
    roots, dense = np.unique(lab, return_inverse=True)
    dense = dense.reshape(h, w) + 1
    dense[~mask] = 0
    return dense, int((roots < big).sum())


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Boolean [H, W]: ``mask`` plus every background region that does not reach the picture's border."""
    mask = np.asarray(mask, dtype=bool)
    labels, _ = label_components(~mask)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    outside = np.isin(labels, border[border > 0])
    return ~outside


def largest_component(mask: np.ndarray) -> np.ndarray:
    """Boolean [H, W]: the largest 4-connected component of ``mask`` (all False if empty)."""
    labels, n = label_components(mask)
    if n == 0:
        return np.zeros(labels.shape, dtype=bool)
    sizes = np.bincount(labels.ravel())[1:]  # [n]
    return labels == 1 + int(sizes.argmax())


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks (1.0 when both are empty)."""
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


# ---------------------------------------------------------------------------
# The container
# ---------------------------------------------------------------------------


def _labels(image) -> np.ndarray:
    return image if isinstance(image, np.ndarray) and image.ndim == 2 else classify(image)


def container_fractions(image) -> dict[str, float]:
    """Fraction of the picture each container colour family (its three shades together) covers."""
    lab = _labels(image)  # [H, W]
    counts = np.bincount(lab.ravel() + 1, minlength=len(PALETTE_KEYS) + 1)[1:]  # [K]; -1 dropped
    return {c: float(counts[idx].sum() / lab.size) for c, idx in _CONTAINER_IDX.items()}


def container_colour(image) -> tuple[str | None, float]:
    """The container colour whose shades cover the most pixels and that fraction; None below ``MIN_CONTAINER_FRACTION``."""
    fractions = container_fractions(image)
    colour = max(fractions, key=fractions.get)
    fraction = fractions[colour]
    return (colour if fraction >= MIN_CONTAINER_FRACTION else None), fraction


def container_mask(image, colour: str | None = None) -> np.ndarray:
    """Boolean [H, W]: the container of ``colour`` (default: the detected one), holes filled, largest piece only.

    Holes are what lies on the container (food, a board's hanging hole); after filling, the largest
    4-connected piece is kept so that stray pixels of the colour elsewhere do not count.
    All False when no colour is given and none is detected.
    """
    lab = _labels(image)
    if colour is None:
        colour = container_colour(lab)[0]
        if colour is None:
            return np.zeros(lab.shape, dtype=bool)
    if colour not in CONTAINER_COLOURS:
        raise ValueError(f"unknown container colour {colour!r}: choose one of {list(CONTAINER_COLOURS)}.")
    family = np.isin(lab, _CONTAINER_IDX[colour])  # [H, W]
    return largest_component(fill_holes(family))
