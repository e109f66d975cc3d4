"""Container masks for region-aware noise: the ``MaskProvider`` protocol and its providers.

``base.py`` defines the protocol (``(image, phrase) -> MaskResult | mask | None``), ``MaskResult``
and the simple providers (boxes). Detector + segmenter providers implement the same protocol.
"""

from .base import Box, BoxMaskProvider, MaskProvider, MaskResult, as_mask_result, box_to_mask, to_mask_tensor

__all__ = ["Box", "BoxMaskProvider", "MaskProvider", "MaskResult", "as_mask_result", "box_to_mask", "to_mask_tensor"]
