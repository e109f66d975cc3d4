"""What every metric shares: the result, the frame pairs a sequence metric compares, provenance.

One interface for all metrics: images (and texts or masks) in, a ``MetricResult`` out::

    MetricResult(value=0.83,                 # the number a paper's table reports
                 per_item=[0.81, 0.85],      # what was averaged: one per frame or per pair of frames
                 record={...})               # how it was computed (see ``provenance``)

``value`` is the mean of ``per_item`` for every metric here; it is ``nan`` when there is
nothing to average (the record then says why).

Images are anything ``cooklab.images`` reads (PIL images, ``[H, W, 3]`` / ``[H, W]`` arrays,
uint8 0..255 or float 0..1, ``[3, H, W]`` / ``[H, W, 3]`` tensors); the feature backbones and their
preprocessing are ``cooklab.backbones``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from itertools import combinations
from typing import Any

import numpy as np

from ..backbones.preprocess import Preprocess
from ..errors import ConfigError
from ..versions import package_versions

__all__ = ["PAIRS", "MetricResult", "frame_pairs", "mean_or_nan", "provenance"]

#: how a sequence metric pairs frames: each with the next, or every pair once
PAIRS = ("consecutive", "all")


@dataclass
class MetricResult:
    """A metric's value, the items it averages, and how it was computed."""

    value: float
    per_item: list[float]
    record: dict[str, Any] = field(default_factory=dict)


def frame_pairs(n: int, pairs: str) -> list[tuple[int, int]]:
    """The (i, j) frame pairs a sequence metric compares: ``consecutive`` (i, i+1) or ``all`` (i < j)."""
    if pairs not in PAIRS:
        raise ConfigError(f"pairs={pairs!r}: choose one of {list(PAIRS)}.")
    if n < 2:
        raise ConfigError(f"{n} image(s): a sequence metric compares frames, give at least 2.")
    return [(i, i + 1) for i in range(n - 1)] if pairs == "consecutive" else list(combinations(range(n), 2))


def mean_or_nan(values: list[float]) -> float:
    """The mean of ``values``; nan for an empty list (nothing to measure)."""
    return float(np.mean(values)) if values else math.nan


def provenance(
    metric: str, backbone: str, resolution: Preprocess | str, crop_mask: str, **details: Any
) -> dict[str, Any]:
    """The record of a ``MetricResult``: metric, backbone id or folder, input resolution, crop/mask handling, versions,
    details."""
    resolution = asdict(resolution) if isinstance(resolution, Preprocess) else resolution
    return {
        "metric": metric,
        "backbone": backbone,
        "input_resolution": resolution,
        "crop_mask": crop_mask,
        **details,
        "versions": package_versions("torch", "transformers", "cooklab"),
    }
