"""Instrumentation: ``trace`` records attention and noise; ``locate`` finds layers by name;
``summaries`` reduces a trace to the numbers a reader checks (per-frame reference share,
per-step text->region share, base-branch and CSCC sizes); ``word_maps`` turns its per-token maps
into one heat map per word (``word_map``, ``token_maps``), finding the word's tokens with ``words``.

``Trace`` observes the attention processors at their hook points (``observer.py``); what it
computes from a U-Net or a Flux layer is in ``unet_capture.py`` / ``flux_capture.py``, on the
token grids and pooling of ``pooling.py``.
"""

from .locate import locate
from .observer import FrameTrace, ObservedAttnProcessor, observed
from .summaries import (
    base_contribution_curve,
    cscc_delta_means,
    own_region_share,
    reference_share_means,
    text_image_region_shares,
    text_image_share_matrix,
)
from .trace import CAPTURE_KINDS, FLUX_CAPTURE_KINDS, Trace, trace
from .word_maps import WEIGHTINGS, token_maps, word_map
from .words import SPECIAL_TOKENS, content_positions, prompt_words, word_occurrences, word_positions

__all__ = [
    "CAPTURE_KINDS",
    "FLUX_CAPTURE_KINDS",
    "SPECIAL_TOKENS",
    "WEIGHTINGS",
    "FrameTrace",
    "ObservedAttnProcessor",
    "Trace",
    "base_contribution_curve",
    "content_positions",
    "cscc_delta_means",
    "locate",
    "observed",
    "own_region_share",
    "prompt_words",
    "reference_share_means",
    "text_image_region_shares",
    "text_image_share_matrix",
    "token_maps",
    "trace",
    "word_map",
    "word_occurrences",
    "word_positions",
]
