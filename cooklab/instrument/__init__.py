"""Instrumentation: ``trace`` records attention and noise; ``locate`` finds layers by name;
``summaries`` reduces a trace to the numbers a reader checks (per-frame reference share,
per-step text->region share, base-branch and CSCC sizes)."""

from .locate import locate
from .observer import TracingAttnProcessor
from .summaries import (
    base_contribution_curve,
    cscc_delta_means,
    own_region_share,
    reference_share_means,
    text_image_region_shares,
)
from .trace import CAPTURE_KINDS, FrameTrace, Trace, trace

__all__ = [
    "CAPTURE_KINDS",
    "FrameTrace",
    "Trace",
    "TracingAttnProcessor",
    "base_contribution_curve",
    "cscc_delta_means",
    "locate",
    "own_region_share",
    "reference_share_means",
    "text_image_region_shares",
    "trace",
]
