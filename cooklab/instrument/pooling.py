"""Token grids and pooling, shared by the captures (``unet_capture``, ``flux_capture``) and ``Trace``.

A layer with ``P`` image tokens lays them on a ``rows x cols`` grid of the latent's aspect
ratio (a U-Net block halves both sides per level). Stored maps are average-pooled to at most
``limit`` cells per side; to average layers of different resolution, coarse maps are brought
to the finest grid by nearest-neighbour upsampling.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def grid(tokens: int, latent_hw: tuple[int, int]) -> tuple[int, int]:
    """(rows, cols) of a layer's token grid from its token count and the latent aspect ratio."""
    h, w = latent_hw
    f = math.sqrt(h * w / tokens)
    rows, cols = round(h / f), round(w / f)
    if rows * cols != tokens:
        raise ValueError(f"cannot lay {tokens} tokens on a grid of aspect {h}:{w}")
    return rows, cols


def pooled_size(rows: int, cols: int, limit: int) -> tuple[int, int]:
    """The grid a ``rows x cols`` map is stored at: at most ``limit`` cells per side."""
    return min(rows, limit), min(cols, limit)


def pool(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Average-pool the last two axes of x to ``size`` (no-op when already that small)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    lead = x.shape[:-2]
    return F.adaptive_avg_pool2d(x.reshape(-1, 1, *x.shape[-2:]), size).reshape(*lead, *size)


def upsample(x: torch.Tensor, size: tuple[int, int], mode: str = "nearest") -> torch.Tensor:
    """Upsample the last two axes to ``size``: ``"nearest"`` (coarse layers onto the finest grid) or
    ``"bilinear"`` (a word map onto the picture, ``align_corners=False``)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    lead = x.shape[:-2]
    extra = {} if mode == "nearest" else {"align_corners": False}
    return F.interpolate(x.reshape(-1, 1, *x.shape[-2:]), size=tuple(size), mode=mode, **extra).reshape(*lead, *size)
