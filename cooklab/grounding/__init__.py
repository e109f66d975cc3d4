"""Container masks for region-aware noise: the ``MaskProvider`` protocol and its providers.

``provider.py`` defines the protocol (``(image, phrase) -> MaskResult | mask | None``), ``MaskResult``
and the simple providers (boxes). Detector + segmenter providers implement the same protocol:
``GroundedSAM`` (transformers' GroundingDINO + SAM, the default) in ``grounded_sam.py`` and
``OriginalGroundedSAM`` (groundingdino-py + segment-anything, the paper's packages) in
``original.py``, with ``groundingdino_compat.py`` making groundingdino-py run on transformers 5.
Those are imported on first use, so importing this package stays light. ``tiny.py`` builds
GroundingDINO and SAM from small configs in memory (tests, the Toy Kitchen's pair);
``registry.py`` resolves a provider's name (``"grounded-sam"``) for the pictures of a model set.
"""

from importlib import import_module

from .provider import Box, BoxMaskProvider, MaskProvider, MaskResult, as_mask_result, box_to_mask, to_mask_tensor

_LAZY = {
    "GroundedSAM": ".grounded_sam",
    "Detections": ".grounded_sam",
    "OriginalGroundedSAM": ".original",
    "ensure_bert_compat": ".groundingdino_compat",
}

__all__ = [
    "Box",
    "BoxMaskProvider",
    "MaskProvider",
    "MaskResult",
    "as_mask_result",
    "box_to_mask",
    "to_mask_tensor",
    *_LAZY,
]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(_LAZY[name], __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
