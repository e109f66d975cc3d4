"""Reading a Toy Kitchen picture back into the world's terms from the renderer's palette (the oracle's eyes).

The renderer paints every object in a handful of known colours (``world.palette()``) that were chosen
far apart, so a picture -- rendered or generated -- can be read pixel by pixel: each pixel is given
the palette entry nearest to it in RGB, and pixels near none are left unknown. Everything else
follows from that per-pixel reading:

* **container colour** -- the colour family (rim, inside and pattern shade) covering most pixels;
* **container mask** -- that family's pixels, holes filled (food lies inside the container), largest
  connected piece only: shape and position of the container;
* **container kind** -- the container (bowl, pot, pan, plate, board) whose outline, drawn at the best
  of the positions the world uses, overlaps that mask most (``container_kind``);
* **ingredients** -- raw and cooked pixels per ingredient inside the container, leaving out pixels that
  are better explained as a blend of two neighbouring colours (``unblend``); present above a minimum count;
* **state** -- cooked when cooked-shade pixels dominate, otherwise a guess from the sizes and spread
  of the ingredient's connected pieces (approximate: see ``ingredient_state``);
* **cut** (world v3) -- the shape of the pieces whatever their shade: a diced carrot, fried, still reads as
  diced (``ingredient_cut``: the same piece rules, on the pixels of the ingredient's dominant shade).

The measures built on these readings (frame checks, consistency, faithfulness, the mask provider) are in
``oracle.py``. On rendered ground truth the reading is exact up to occlusion (``tests/test_toykitchen_oracle.py``
measures it); on generated pictures (blurred edges, noise, approximate colours) it is the metric.
Images may be PIL images, ``[H, W, 3]`` uint8 arrays, float arrays in [0, 1] or ``[3, H, W]`` tensors.
No scipy: connected components and hole filling are done with numpy label propagation.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ..images import rgb_255
from .world import (
    ALLOWED_STATES,
    CONTAINER_COLOURS,
    CONTAINERS,
    GRID,
    INGREDIENTS,
    POSITION_JITTER,
    Scene,
    palette,
    render,
)

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

#: a container colour must cover at least this fraction of the picture to count as found. Rendered
#: containers cover at least 20 % with their own shades (1000 random scenes, food on top included), while
#: stray pixels of a generated picture's edges and noise stay well below.
MIN_CONTAINER_FRACTION = 0.03

#: an ingredient is present with at least this many pixels per 64 x 64 (the count scales with the
#: area). The sparsest rendered ingredient -- 40 one-pixel rice grains, 26 tiny mixed bits, or diced
#: meat mostly covered by food drawn after it -- keeps at least 19 pixels at 64 x 64 (1000 random
#: scenes), while the stray pixels that noise or leftover blends put near an ingredient colour rarely
#: reach a handful: 8 sits between, nearer the noise so that small, blurred pieces still count.
MIN_INGREDIENT_PIXELS = 8


def _key_parts(key: str) -> tuple[str, str, str]:
    kind, name, shade = key.split(":")
    return kind, name, shade


_CONTAINER_IDX = {
    c: np.array([i for i, k in enumerate(PALETTE_KEYS) if _key_parts(k)[:2] == ("container", c)])
    for c in CONTAINER_COLOURS
}
_RAW_IDX = {n: PALETTE_KEYS.index(f"ingredient:{n}:raw") for n in INGREDIENTS}
_COOKED_IDX = {n: PALETTE_KEYS.index(f"ingredient:{n}:cooked") for n in INGREDIENTS}


# ---------------------------------------------------------------------------
# Pixels
# ---------------------------------------------------------------------------


def classify(image) -> np.ndarray:
    """[H, W] int: the index into ``PALETTE_KEYS`` of each pixel's nearest palette colour, -1 if farther than
    ``MAX_DISTANCE``."""
    rgb = rgb_255(image)  # [H, W, 3]
    x = rgb.reshape(-1, 3).astype(np.float64)  # [HW, 3]
    p = _PALETTE_RGB.astype(np.float64)  # [K, 3]
    d2 = (x * x).sum(1, keepdims=True) - 2 * x @ p.T + (p * p).sum(1)  # [HW, K] squared distances
    idx = d2.argmin(1)  # [HW]
    near = d2[np.arange(len(x)), idx] <= MAX_DISTANCE**2
    return np.where(near, idx, -1).reshape(rgb.shape[:2])


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


class Reading:
    """One picture read once: its RGB values and palette labels; container and food worked out on first use.

    Every measure below accepts a ``Reading`` in place of a picture, so that several measures of one
    picture classify its pixels once (``read(image)``).
    """

    def __init__(self, image):
        self.rgb = rgb_255(image)  # [H, W, 3] float32, 0..255
        self.labels = classify(self.rgb)  # [H, W] int, index into PALETTE_KEYS or -1

    @property
    def shape(self) -> tuple[int, int]:
        return self.labels.shape

    @cached_property
    def colour(self) -> tuple[str | None, float]:
        """(detected container colour or None, fraction of the picture its shades cover)."""
        fractions = container_fractions(self)
        colour = max(fractions, key=fractions.get)
        return (colour if fractions[colour] >= MIN_CONTAINER_FRACTION else None), fractions[colour]

    @cached_property
    def mask(self) -> np.ndarray:
        """[H, W] bool: mask of the detected container (all False without one)."""
        colour = self.colour[0]
        return container_mask(self, colour) if colour else np.zeros(self.shape, dtype=bool)

    @cached_property
    def food_labels(self) -> np.ndarray:
        """[H, W] int: the labels inside ``food_region``, -1 elsewhere, blends of two neighbouring colours set to
        -1."""
        labels = unblend(self.rgb, self.labels)
        return np.where(food_region(self), labels, -1)

    @cached_property
    def kind(self) -> tuple[str | None, float]:
        """(detected container kind or None, the IoU of its best-fitting outline): ``container_kind``."""
        return _best_kind(self.mask)


def read(image) -> Reading:
    """``image`` read into a ``Reading`` (returned as is if it already is one)."""
    return image if isinstance(image, Reading) else Reading(image)


def container_fractions(image) -> dict[str, float]:
    """Fraction of the picture each container colour family (its three shades together) covers."""
    lab = read(image).labels  # [H, W]
    counts = np.bincount(lab.ravel() + 1, minlength=len(PALETTE_KEYS) + 1)[1:]  # [K]; -1 dropped
    return {c: float(counts[idx].sum() / lab.size) for c, idx in _CONTAINER_IDX.items()}


def container_colour(image) -> tuple[str | None, float]:
    """The container colour whose shades cover the most pixels and that fraction; None below
    ``MIN_CONTAINER_FRACTION``."""
    return read(image).colour


def container_mask(image, colour: str | None = None) -> np.ndarray:
    """Boolean [H, W]: the container of ``colour`` (default: the detected one), holes filled, largest piece only.

    Holes are what lies on the container (food, a board's hanging hole); after filling, the largest
    4-connected piece is kept so that stray pixels of the colour elsewhere do not count.
    All False when no colour is given and none is detected.
    """
    reading = read(image)
    if colour is None:
        return reading.mask
    if colour not in CONTAINER_COLOURS:
        raise ValueError(f"unknown container colour {colour!r}: choose one of {list(CONTAINER_COLOURS)}.")
    family = np.isin(reading.labels, _CONTAINER_IDX[colour])  # [H, W]
    return largest_component(fill_holes(family))


def _outlines(size: int) -> dict[str, np.ndarray]:
    """Each container kind's filled outline, centred on the grid: {kind: [size, size] bool}."""
    if size not in _OUTLINES:
        _OUTLINES[size] = {kind: fill_holes(render(Scene(container=kind), size).labels >= 1) for kind in CONTAINERS}
    return _OUTLINES[size]


_OUTLINES: dict[int, dict[str, np.ndarray]] = {}


def container_kind(image) -> tuple[str | None, float]:
    """(the container kind whose outline fits the container mask best, that best IoU); (None, 0.0) without a container.

    Every kind's outline (``world.render`` of an empty container, holes filled) is shifted over all the
    centres the world draws a container at (``world.POSITION_JITTER`` grid cells around the middle, in
    whole pixels) and compared with the container mask by IoU; the kind with the highest IoU wins.
    Kinds differ in size (plate radius 23, bowl 20, pot 19, pan 18), handles (two for the pot, one long
    one for the pan) and shape (the board is a rectangle), so on rendered pictures this is exact.
    """
    return read(image).kind


def _best_kind(mask: np.ndarray) -> tuple[str | None, float]:
    """``container_kind`` of a container mask [H, W] bool."""
    if not mask.any():
        return None, 0.0
    h, w = mask.shape
    if h != w:
        raise ValueError(f"container_kind reads square pictures (the world is square); got {h} x {w}.")
    j = int(np.ceil(POSITION_JITTER * h / GRID))  # largest shift in pixels
    area = mask.sum()
    best, best_iou = None, 0.0
    for kind, outline in _outlines(h).items():
        padded = np.pad(outline, j)  # [H + 2j, W + 2j]
        windows = np.lib.stride_tricks.sliding_window_view(padded, (h, w))  # [2j + 1, 2j + 1, H, W]: shifted outlines
        inter = (windows & mask).sum(axis=(-2, -1))  # [2j + 1, 2j + 1]
        union = area + outline.sum() - inter
        score = float((inter / union).max())
        if score > best_iou:
            best, best_iou = kind, score
    return best, best_iou


# ---------------------------------------------------------------------------
# Ingredients
# ---------------------------------------------------------------------------


def erode(mask: np.ndarray, steps: int = 1) -> np.ndarray:
    """Boolean [H, W]: ``mask`` shrunk by ``steps`` pixels (4-neighbourhood; outside the picture counts as False)."""
    mask = np.asarray(mask, dtype=bool)
    for _ in range(steps):
        pad = np.pad(mask, 1)  # [H + 2, W + 2]
        mask = mask & pad[:-2, 1:-1] & pad[2:, 1:-1] & pad[1:-1, :-2] & pad[1:-1, 2:]
    return mask


#: food lies at least 3 pixels (64 x 64 grid) inside a container's outline; ingredient pixels are only
#: counted this far inside it, which drops the blends a blurred picture has along the outline
#: (container + table colour: purple or blue on wood pass for onion, black on linen for rice)
RIM_MARGIN = 2


def food_region(image) -> np.ndarray:
    """Boolean [H, W]: where food is looked for -- the detected container eroded by ``RIM_MARGIN`` (scaled), else
    everywhere."""
    reading = read(image)
    if not reading.mask.any():
        return np.ones(reading.shape, dtype=bool)
    return erode(reading.mask, max(1, round(RIM_MARGIN * reading.shape[0] / GRID)))


_INGREDIENT_ID = np.array(
    [list(INGREDIENTS).index(k.split(":")[1]) if k.startswith("ingredient:") else -1 for k in PALETTE_KEYS] + [-2]
)  # [K + 1]: ingredient of each label; label -1 -> -2


def unblend(rgb: np.ndarray, labels: np.ndarray, radius: int = 2) -> np.ndarray:
    """``labels`` with every ingredient pixel that is better explained as a blend of two other colours next to it set
    to -1.

    A blurred edge between two colours A and B holds pixels on the segment A-B in RGB, and some palette
    colours lie near such segments of others: meat (200, 80, 100) sits between tomato red and pink, so
    the edge of a tomato in a pink bowl reads as a ring of meat. For each pixel labelled as an ingredient,
    take the labels of its neighbours within ``radius`` that belong to other objects; if the pixel is
    closer to the segment between two of their colours than to its own colour, it is a blend. Exact
    colours (rendered ground truth) are never blends: their own distance is 0. A radius of 2 (a 5 x 5
    window) reaches the pure colours on both sides of a blurred edge (with 1, 23 instead of 18 false finds
    remained in 300 scenes with sigma 8 noise and a radius 0.5 blur; without unblending, 96).
    """
    own_ing = _INGREDIENT_ID[labels]  # [H, W]
    off = np.linalg.norm(rgb - _PALETTE_RGB[labels], axis=-1)  # [H, W] distance to the own colour
    ys, xs = np.nonzero((own_ing >= 0) & (off > 0.5))  # [N]: an exact palette colour is never a blend
    if not len(ys):
        return labels
    offsets = [(dy, dx) for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1) if dy or dx]
    pad = np.pad(labels, radius, constant_values=-1)
    neigh = np.stack([pad[ys + radius + dy, xs + radius + dx] for dy, dx in offsets], 1)  # [N, M]
    valid = (neigh >= 0) & (_INGREDIENT_ID[neigh] != own_ing[ys, xs][:, None])  # [N, M]: another object's colour
    none = len(PALETTE_KEYS)  # sorts after every label
    cand = np.sort(np.where(valid, neigh, none), 1)  # [N, M]
    cand[:, 1:][cand[:, 1:] == cand[:, :-1]] = none  # each colour once
    cand = np.sort(cand, 1)
    u = int((cand < none).sum(1).max())  # the most distinct colours around one pixel
    if u < 2:
        return labels
    cand = cand[:, :u]  # [N, U]
    i, j = np.triu_indices(u, 1)  # [P] pairs of distinct colours
    pal = np.vstack([_PALETTE_RGB, np.zeros((1, 3), np.float32)])  # [K + 1, 3]
    a, b = pal[cand[:, i]], pal[cand[:, j]]  # [N, P, 3]
    x = rgb[ys, xs][:, None, :]  # [N, 1, 3]
    ab = b - a
    t = np.clip(((x - a) * ab).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-6), 0, 1)  # [N, P]
    d_blend = np.linalg.norm(x - a - t[..., None] * ab, axis=-1)  # [N, P]
    d_blend = np.where((cand[:, i] < none) & (cand[:, j] < none), d_blend, np.inf).min(1)  # [N]
    d_own = off[ys, xs]  # [N]
    out = labels.copy()
    blend = d_blend < d_own
    out[ys[blend], xs[blend]] = -1
    return out


def ingredient_pixels(image) -> dict[str, int]:
    """Pixels per ingredient in the ``food_region``, raw and cooked shades together, blends left out: ``{"carrot": 57,
    ...}``."""
    lab = read(image).food_labels  # [H, W]
    counts = np.bincount(lab.ravel() + 1, minlength=len(PALETTE_KEYS) + 1)[1:]  # [K]
    return {n: int(counts[_RAW_IDX[n]] + counts[_COOKED_IDX[n]]) for n in INGREDIENTS}


def food_mask(image, name: str) -> np.ndarray:
    """Boolean [H, W]: the pixels the oracle reads as ingredient ``name`` (raw or cooked shade) -- the food's mask.

    The same pixels ``ingredient_pixels`` counts: inside the ``food_region`` (the detected container eroded by
    ``RIM_MARGIN``; the whole picture when no container is found), blends of two neighbouring colours left out
    (``unblend``). On a rendered scene it equals the renderer's own ``Rendered.mask(name)`` pixel for pixel (the
    renderer keeps food ``RIM_MARGIN`` inside the outline; ``tests/test_food_mask.py``); on a generated picture it
    is what the oracle reads. All False when the picture shows none of it.
    """
    if name not in INGREDIENTS:
        raise ValueError(f"unknown ingredient {name!r}: choose one of {list(INGREDIENTS)}.")
    lab = read(image).food_labels  # [H, W]
    return (lab == _RAW_IDX[name]) | (lab == _COOKED_IDX[name])


def min_ingredient_pixels(shape: tuple[int, int]) -> int:
    """``MIN_INGREDIENT_PIXELS`` scaled from 64 x 64 to a picture of ``shape`` (H, W): counts grow with the area."""
    return max(1, round(MIN_INGREDIENT_PIXELS * shape[0] * shape[1] / GRID**2))


def ingredient_present(image, name: str) -> bool:
    """Whether ``name`` covers at least ``min_ingredient_pixels`` pixels (raw or cooked) of the food region."""
    if name not in INGREDIENTS:
        raise ValueError(f"unknown ingredient {name!r}: choose one of {list(INGREDIENTS)}.")
    reading = read(image)
    return ingredient_pixels(reading)[name] >= min_ingredient_pixels(reading.shape)


# Thresholds of the state guess, on the 64 x 64 design grid (pictures of another size are resampled to it).
# They were chosen on the rendered pieces of 1500 random scenes; what each state looks like there:
#   whole  -- one or two large blobs (a tomato is a disc of radius 4.5, meat a 14 x 10 ellipse): most pixels
#             are interior (all 4 neighbours the same ingredient), ~0.6-0.7; rice is a compact heap of grains
#   sliced -- six discs of radius 2.5 (meat: 7 x 2.4 strips), often touching: interior ~0.5, 0.6-1.0 boundary
#             edges per pixel
#   diced  -- twelve ~3 x 3 cubes: few interior pixels (~0.2), over 0.9 boundary edges per pixel
#   mixed  -- 26 bits of 1-4 pixels spread over the whole container (whole rice: the same bits in a heap)
_TINY_PIECE = 5  # median piece size (pixels) at or below which the food is "tiny bits"...
_MIN_TINY_PIECES = 6  # ...if there are at least this many pieces
_MIXED_SPREAD = 0.19  # RMS distance of tiny bits from their centre / sqrt(container area): spread over it -> mixed
_DICED_EDGES = 0.9  # boundary edges per pixel at or above which the pieces are small cubes -> diced
_DICED_INTERIOR = 0.15  # ... or an interior fraction below this
_WHOLE_INTERIOR = 0.6  # interior fraction of whole pieces (at most two pieces)
_CARROT_ELONGATION = 1.6  # whole carrots are thin triangles that look diced by thickness: one or two long pieces


@dataclass
class PieceStats:
    """Connected-component statistics of one ingredient's raw pixels (64 x 64 grid)."""

    pixels: int
    pieces: int  # 4-connected components
    large_pieces: int  # components of at least 6 pixels
    median_piece: float  # median component size, pixels
    interior: float  # fraction of pixels whose 4 neighbours are the same ingredient
    edges: float  # boundary edges per pixel (perimeter / area)
    spread: float  # RMS distance of the pixels from their centroid / sqrt(container area)
    elongation: float  # size-weighted mean of sqrt(major / minor axis variance) of the large pieces


def piece_stats(mask: np.ndarray, container_area: float) -> PieceStats:
    """Statistics of a boolean [H, W] mask of one ingredient's pixels (see ``PieceStats``)."""
    labels, n = label_components(mask)
    sizes = np.bincount(labels.ravel())[1:]  # [n]
    pixels = int(mask.sum())
    pad = np.pad(mask, 1)  # [H + 2, W + 2]
    neighbours = [pad[:-2, 1:-1], pad[2:, 1:-1], pad[1:-1, :-2], pad[1:-1, 2:]]  # 4 x [H, W]
    interior = int((mask & np.logical_and.reduce(neighbours)).sum())
    edges = int(sum((mask & ~nb).sum() for nb in neighbours))
    ys, xs = np.nonzero(mask)
    spread = float(np.sqrt(xs.var() + ys.var()) / np.sqrt(max(container_area, 1.0))) if pixels else 0.0
    elong, weights = [], []
    for i in np.flatnonzero(sizes >= 6) + 1:
        yy, xx = np.nonzero(labels == i)
        cov = np.cov(np.stack([xx, yy])) + np.eye(2) / 12  # + the variance of a pixel: no zero axis
        lo, hi = np.linalg.eigvalsh(cov)
        elong.append(np.sqrt(hi / lo))
        weights.append(sizes[i - 1])
    return PieceStats(
        pixels=pixels,
        pieces=n,
        large_pieces=int((sizes >= 6).sum()),
        median_piece=float(np.median(sizes)) if n else 0.0,
        interior=interior / max(pixels, 1),
        edges=edges / max(pixels, 1),
        spread=spread,
        elongation=float(np.average(elong, weights=weights)) if elong else 1.0,
    )


def _state_from_stats(name: str, s: PieceStats) -> str:
    """The rules of ``ingredient_state`` once cooking is ruled out; only states ``name`` can be in are returned."""
    allowed = ALLOWED_STATES[name]
    if s.median_piece <= _TINY_PIECE and s.pieces >= _MIN_TINY_PIECES:  # tiny bits: stirred in, or a rice heap
        return "mixed" if s.spread >= _MIXED_SPREAD or "whole" not in allowed else "whole"
    if "diced" in allowed and (s.edges >= _DICED_EDGES or s.interior < _DICED_INTERIOR):
        if name == "carrot" and s.large_pieces <= 2 and s.elongation >= _CARROT_ELONGATION:
            return "whole"
        return "diced"
    if "whole" in allowed and s.interior >= _WHOLE_INTERIOR and s.large_pieces <= 2:
        return "whole"
    if "sliced" in allowed:
        return "sliced"
    return "whole" if "whole" in allowed else "mixed"


def _on_grid(lab: np.ndarray) -> np.ndarray:
    """The label map resampled (nearest) to the 64 x 64 design grid the state thresholds are set on."""
    if lab.shape == (GRID, GRID):
        return lab
    h, w = lab.shape
    rows = ((np.arange(GRID) + 0.5) * h / GRID).astype(int)  # [64]: the source row at each grid row's centre
    cols = ((np.arange(GRID) + 0.5) * w / GRID).astype(int)  # [64]
    return lab[rows[:, None], cols[None, :]]


def ingredient_state(image, name: str) -> str | None:
    """A best-effort guess of the state ``name`` is in: one of ``world.STATES``, or None when it is absent.

    *Cooked* when cooked-shade pixels outnumber raw ones (cooking changes the colour, so this part is
    as exact as the colours). Otherwise the guess comes from the connected pieces of the raw pixels
    (``piece_stats``), among the states the ingredient can be in:

    * many tiny bits (median piece <= 5 px) spread over the container -> *mixed*; in a heap -> *whole* (rice);
    * small square bits: many boundary edges per pixel, few interior pixels -> *diced*;
    * one or two large pieces, mostly interior pixels -> *whole*;
    * otherwise round medium pieces -> *sliced*.

    Pieces touch and food hides food, so this is approximate: on rendered ground truth it is right
    for about 9 in 10 ingredients (every cooked one, ~87 % of the others; whole / sliced / diced of
    the same ingredient are what it confuses). ``tests/test_toykitchen_oracle.py`` measures it.
    """
    reading = read(image)
    if not ingredient_present(reading, name):
        return None
    lab = _on_grid(reading.food_labels)  # [64, 64]
    raw = lab == _RAW_IDX[name]  # [64, 64]
    if (lab == _COOKED_IDX[name]).sum() > raw.sum():
        return "cooked"
    area = reading.mask.sum() * GRID**2 / reading.labels.size or GRID**2  # on the 64 x 64 grid
    return _state_from_stats(name, piece_stats(raw, float(area)))


def ingredient_cut(image, name: str) -> str | None:
    """The shape of ``name``'s pieces whatever their shade (world v3): whole, diced, sliced or mixed; None when absent.

    The rules of ``ingredient_state`` once cooking is ruled out (``piece_stats`` of the pieces), applied to the
    pixels of the shade that dominates -- the cooked shade for cooked food. A diced carrot reads *diced* raw and
    fried; a whole carrot fried reads *whole*. For the old world's cooked food (``Ingredient.cut`` None: cubes)
    it reads what the cubes look like, *diced* (rice: tiny grains). As approximate as the state guess.
    """
    reading = read(image)
    if not ingredient_present(reading, name):
        return None
    lab = _on_grid(reading.food_labels)  # [64, 64]
    raw, cooked = lab == _RAW_IDX[name], lab == _COOKED_IDX[name]  # [64, 64] each
    pieces = cooked if cooked.sum() > raw.sum() else raw
    area = reading.mask.sum() * GRID**2 / reading.labels.size or GRID**2  # on the 64 x 64 grid
    return _state_from_stats(name, piece_stats(pieces, float(area)))
