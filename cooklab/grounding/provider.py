"""Where container masks come from: the ``MaskProvider`` protocol and simple providers.

Region-aware noise (Recipe Diffusion, Eq. 5-7) needs a mask ``M_j`` of the persisting
container in the reference image ``I_j``. A *mask provider* is any callable

    provider(image: PIL.Image.Image, phrase: str) -> MaskResult | mask | None

that returns the container's mask in image pixels (``H x W``, values in [0, 1]) or
``None`` when nothing was found. The paper uses GroundingDINO (box from the phrase)
followed by SAM (mask from the box); those providers plug into the same protocol.
A provider may return a bare tensor/array/PIL mask; ``as_mask_result`` wraps it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import PIL.Image
import torch

from ..errors import ConfigError

Box = tuple[float, float, float, float]  # (x0, y0, x1, y1) in image pixels, x to the right, y down


@dataclass
class MaskResult:
    """A container mask found in an image, with where it came from."""

    mask: torch.Tensor  # [H, W] float32 in [0, 1], image pixels
    phrase: str = ""
    box: Box | None = None
    score: float | None = None
    source: str = "explicit"  # "explicit", "box", or the provider's name
    extra: dict = field(default_factory=dict)

    @property
    def area(self) -> float:
        """Fraction of the image covered by the mask."""
        return float(self.mask.float().mean())


@runtime_checkable
class MaskProvider(Protocol):
    """Anything that maps (reference image, container phrase) to a mask, or None if not found."""

    def __call__(self, image: PIL.Image.Image, phrase: str) -> MaskResult | torch.Tensor | np.ndarray | None:
        """The mask of the object ``phrase`` names in ``image``.

        Args:
            image: the frame to look at (RGB).
            phrase: the object to find, e.g. the step's container ("a blue pot").

        Returns a ``MaskResult``, a bare ``[H, W]`` mask in [0, 1], or None when nothing is found.
        """


def to_mask_tensor(mask, what: str = "mask") -> torch.Tensor:
    """Turn a bool/float tensor, numpy array or PIL image into a float32 [H, W] tensor in [0, 1]."""
    if isinstance(mask, PIL.Image.Image):
        mask = np.asarray(mask.convert("L"), dtype=np.float32) / 255.0
    if isinstance(mask, np.ndarray):
        mask = torch.from_numpy(np.ascontiguousarray(mask))
    if not isinstance(mask, torch.Tensor):
        raise ConfigError(
            f"{what} must be a tensor, numpy array, PIL image or box (x0, y0, x1, y1); got {type(mask).__name__}."
        )
    mask = mask.detach().to("cpu", torch.float32)
    while mask.ndim > 2 and mask.shape[0] == 1:  # [1, 1, H, W] -> [H, W]
        mask = mask[0]
    if mask.ndim != 2:
        raise ConfigError(f"{what} must be 2-D (H x W); got shape {tuple(mask.shape)}. Pass one mask per frame.")
    if mask.numel() and (mask.min() < 0 or mask.max() > 1):
        raise ConfigError(
            f"{what} has values outside [0, 1] (min {mask.min():.3g}, max {mask.max():.3g}): pass a binary or soft "
            "mask."
        )
    return mask


def box_to_mask(box: Box, image_hw: tuple[int, int]) -> torch.Tensor:
    """Rasterise a pixel box (x0, y0, x1, y1) to a [H, W] mask with fractional edge coverage."""
    h, w = image_hw
    x0, y0, x1, y1 = (float(v) for v in box)
    if not (x1 > x0 and y1 > y0):
        raise ConfigError(f"box {tuple(box)} is empty: give (x0, y0, x1, y1) with x1 > x0 and y1 > y0, in pixels.")
    xs = torch.arange(w, dtype=torch.float32)
    ys = torch.arange(h, dtype=torch.float32)
    cover_x = (torch.minimum(xs + 1, torch.tensor(x1)) - torch.maximum(xs, torch.tensor(x0))).clamp(0, 1)  # [W]
    cover_y = (torch.minimum(ys + 1, torch.tensor(y1)) - torch.maximum(ys, torch.tensor(y0))).clamp(0, 1)  # [H]
    return cover_y[:, None] * cover_x[None, :]


def as_mask_result(value, image_hw: tuple[int, int], phrase: str = "", source: str = "explicit") -> MaskResult | None:
    """Normalise what a user or a provider gave (MaskResult, mask, box, None) into a MaskResult."""
    if value is None:
        return None
    if isinstance(value, MaskResult):
        return value
    if isinstance(value, (tuple, list)) and len(value) == 4 and all(isinstance(v, (int, float)) for v in value):
        return MaskResult(
            mask=box_to_mask(value, image_hw), phrase=phrase, box=tuple(float(v) for v in value), source="box"
        )
    return MaskResult(mask=to_mask_tensor(value), phrase=phrase, source=source)


@dataclass
class BoxMaskProvider:
    """A provider that always answers with the same box (useful in notebooks and tests)."""

    box: Box

    def __call__(self, image: PIL.Image.Image, phrase: str) -> MaskResult:
        """The box's mask at the size of ``image``, whatever the phrase.

        Args:
            image: the frame (only its size is read).
            phrase: recorded in the result.
        """
        return MaskResult(
            mask=box_to_mask(self.box, (image.height, image.width)), phrase=phrase, box=self.box, source="box"
        )
