"""Instrumentation: ``trace`` records attention and noise; ``locate`` finds layers by name.

``Trace`` observes the attention processors at their hook points (``observer.py``); what it
computes from a U-Net or a Flux layer is in ``unet_capture.py`` / ``flux_capture.py``.
"""

from .locate import locate
from .observer import ObservedAttnProcessor, observed
from .trace import CAPTURE_KINDS, FrameTrace, Trace, trace

__all__ = ["CAPTURE_KINDS", "FrameTrace", "ObservedAttnProcessor", "Trace", "locate", "observed", "trace"]
