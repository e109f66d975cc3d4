"""Instrumentation: ``trace`` records attention and noise; ``locate`` finds layers by name."""

from .locate import locate
from .observer import TracingAttnProcessor
from .trace import CAPTURE_KINDS, FrameTrace, Trace, trace

__all__ = ["CAPTURE_KINDS", "FrameTrace", "Trace", "TracingAttnProcessor", "locate", "trace"]
