"""Key-object regions (Recipe Diffusion, Tables I-II): a frame cut down to its container before it is measured.

Recipe Diffusion measures DreamSim and L2-DINOv2 "on key objects": the container a step keeps
(its mask from GroundingDINO + SAM, or the Toy Kitchen oracle). Two crops of a frame ``x`` with
mask ``M`` (``[H, W]``, 1 on the object)::

    mask crop:  x' = M * x + (1 - M) * fill      then x' cut to the bounding box of M, padded square with fill
    box crop:   the same with M replaced by its bounding box B(M) (the object and what lies around it)

``fill`` is a constant colour (the ImageNet mean, 0..255): pixels outside the mask never reach the
model, so changing them changes nothing (tested). ``dino_l2_masked`` does the mask crop in the
backbone's own preprocessing (``cooklab.backbones.preprocess``); ``key_object_crop`` gives the
crop as a picture for models with their own preprocessing (``dreamsim_masked``).
"""

from __future__ import annotations

import numpy as np
import PIL.Image

from ..errors import ConfigError
from ..images import rgb_array, uint8_array

__all__ = ["CROPS", "FILL", "box_mask", "key_object_crop"]

#: how a key object is cut out: its mask, or its mask's bounding box
CROPS = ("mask", "box")
#: the colour outside the object: the ImageNet mean in 0..255
FILL = (124, 116, 104)


def _bool_mask(mask, shape: tuple[int, int]) -> np.ndarray:
    """``[H, W]`` bool (above 0.5), checked against the picture's ``shape`` and for at least one pixel."""
    m = np.asarray(mask, dtype=np.float32) > 0.5
    if m.shape != shape:
        raise ConfigError(f"a mask of shape {m.shape} for an image of {shape}: give each mask the size of its image.")
    if not m.any():
        raise ConfigError("a mask is empty (no pixel above 0.5): pass None for that frame (it is then not scored).")
    return m


def box_mask(mask) -> np.ndarray:
    """``[H, W]`` bool: 1 inside the bounding box of ``mask`` (above 0.5), 0 outside."""
    m = np.asarray(mask, dtype=np.float32) > 0.5
    if not m.any():
        raise ConfigError("a mask is empty (no pixel above 0.5): pass None for that frame (it is then not scored).")
    ys, xs = np.nonzero(m)
    box = np.zeros_like(m)
    box[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1] = True
    return box


def key_object_crop(image, mask, crop: str = "mask", fill: tuple[int, int, int] = FILL) -> PIL.Image.Image:
    """The key object of ``image`` as a square RGB picture: ``crop="mask"`` or ``"box"`` (the module doc)."""
    if crop not in CROPS:
        raise ConfigError(f"crop={crop!r}: choose one of {list(CROPS)}.")
    x = uint8_array(rgb_array(image))  # [H, W, 3] uint8
    m = _bool_mask(mask, x.shape[:2])  # [H, W]
    if crop == "box":
        m = box_mask(m)
    colour = np.array(fill, dtype=np.uint8)  # [3]
    x = np.where(m[..., None], x, colour)  # [H, W, 3]: outside the object the fill colour
    ys, xs = np.nonzero(m)
    x = x[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]  # [h, w, 3] bounding box
    h, w = x.shape[:2]
    side = max(h, w)
    square = np.broadcast_to(colour, (side, side, 3)).copy()  # [side, side, 3]
    top, left = (side - h) // 2, (side - w) // 2
    square[top : top + h, left : left + w] = x
    return PIL.Image.fromarray(square)
