"""The training data of the toy GroundingDINO and SAM (``grounding_training.py``): scenes with exact boxes and masks.

Scenes are rendered at 64 x 64 (``render_grounding``); the container mask is ``fill_holes(labels >= 1)``, the rim
with everything on it, as ``oracle.container_mask`` reads it; the box is that mask's extent (``mask_box``).
Pictures are lightly blurred, noised and colour-shifted (``augment``) so that generated frames (softer,
off-palette) look like training data.

Detector captions are container phrases in GroundingDINO's form, ``"blue pot."``, ``"pot."``,
``"cutting board."`` (``container_phrases``). Positives name the container shown (with or without its colour);
negatives (``negative_share``) name another colour or another kind, or show an empty table (``sample_caption``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..models.toy import IMAGE_SIZE
from .captions import CONTAINER_WORDS
from .oracle import fill_holes
from .world import CONTAINER_COLOURS, CONTAINERS, render


@dataclass
class GroundingData:
    """Rendered scenes with the container's exact mask and box."""

    images: torch.Tensor  # [n, 64, 64, 3] uint8
    masks: torch.Tensor  # [n, 64, 64] bool: the container with everything on it
    boxes: torch.Tensor  # [n, 4] float (x0, y0, x1, y1) pixel edges
    colours: list[str]
    kinds: list[str]


def mask_box(mask: np.ndarray) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) pixel edges of a non-empty boolean mask (x1, y1 exclusive)."""
    ys, xs = np.nonzero(mask)
    return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)


def render_grounding(scenes) -> GroundingData:
    """Render ``scenes`` at 64 x 64 with their container masks and boxes."""
    images, masks, boxes = [], [], []
    for scene in scenes:
        drawn = render(scene, IMAGE_SIZE)
        mask = fill_holes(drawn.labels >= 1)  # [H, W] as oracle.container_mask reads it
        images.append(np.asarray(drawn.image))
        masks.append(mask)
        boxes.append(mask_box(mask))
    return GroundingData(
        torch.from_numpy(np.stack(images)),
        torch.from_numpy(np.stack(masks)),
        torch.tensor(boxes),
        [s.colour for s in scenes],
        [s.container for s in scenes],
    )


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """[B, 3, H, W] in [0, 1] -> the same, blurred (3 x 3 box, random strength), colour-shifted (+-0.05) and noised
    (sigma <= 0.04)."""
    b = x.shape[0]
    blurred = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    t = torch.rand(b, 1, 1, 1, generator=gen)
    x = (1 - t) * x + t * blurred
    x = x + (torch.rand(b, 3, 1, 1, generator=gen) - 0.5) * 0.1
    x = x + torch.randn(x.shape, generator=gen) * torch.rand(b, 1, 1, 1, generator=gen) * 0.04
    return x.clamp(0, 1)


def normalise(x: torch.Tensor, image_processor) -> torch.Tensor:
    """[B, 3, H, W] in [0, 1] -> the processor's normalisation (its resize is the identity at 64 x 64)."""
    mean = torch.tensor(image_processor.image_mean).view(1, 3, 1, 1)
    std = torch.tensor(image_processor.image_std).view(1, 3, 1, 1)
    return (x - mean) / std


def unit_pixels(images: torch.Tensor) -> torch.Tensor:
    """uint8 [B, H, W, 3] -> float [B, 3, H, W] in [0, 1]."""
    return images.permute(0, 3, 1, 2).float() / 255


def container_phrases(colour: str, kind: str) -> list[str]:
    """The phrases that name a container: its kind word(s), with and without its colour ("blue pot", "pot")."""
    words = [CONTAINER_WORDS[kind]] + (["board"] if kind == "board" else [])
    return [f"{colour} {w}" for w in words] + words


def sample_caption(colour: str, kind: str, rng: np.random.Generator, negative_share: float) -> tuple[str, bool, bool]:
    """(caption, positive, hide the container): a phrase naming this container, or with ``negative_share`` one that
    does not (another colour or kind; or the container hidden, an empty table)."""
    if rng.random() >= negative_share:
        options = container_phrases(colour, kind)
        return options[rng.integers(len(options))] + ".", True, False
    what = rng.integers(5)
    if what == 4:  # empty table, the true phrase
        return f"{colour} {CONTAINER_WORDS[kind]}.", False, True
    other_colour = [c for c in CONTAINER_COLOURS if c != colour][rng.integers(len(CONTAINER_COLOURS) - 1)]
    other_kind = [k for k in CONTAINERS if k != kind][rng.integers(len(CONTAINERS) - 1)]
    if what < 2:
        return f"{other_colour} {CONTAINER_WORDS[kind]}.", False, False
    return (
        (f"{colour} {CONTAINER_WORDS[other_kind]}." if what == 2 else f"{CONTAINER_WORDS[other_kind]}."),
        False,
        False,
    )
