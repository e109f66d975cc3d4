"""CookAnything: all recipe steps in one Flux pass -- Step-wise Regional Control, Flexible RoPE, CSCC.

One mechanism per module: ``regional.py`` (layout, mask, attention paths, processor),
``flexible_rope.py`` (per-region position ids), ``cscc.py`` (step spans and token fusion),
``chunked.py`` (long recipes as several canvases), ``cross_region_kv.py`` (K/V sharing on the
canvas), ``regional_unet.py`` (SRC on a U-Net, for the Regional SD baseline), ``lora.py`` (LoRA
adapter files), ``flow_matching.py`` (latent packing, the time shift). The pipeline:
``settings.py`` (one call's checked settings), ``canvas.py`` (text stream, layout, RoPE ids, SRC
state), ``denoising.py`` (noise, processors, the flow-matching loop, decoding) and ``pipeline.py``
(``CookAnything``: the call that composes them, LoRA loading).
"""

from .regional import (
    RegionalFluxAttnProcessor,
    RegionalState,
    RegionLayout,
    group_mask,
    regional_attention,
    regional_token_mask,
)

__all__ = [
    "MAX_CANVAS_REGIONS",
    "CookAnything",
    "CookAnythingOutput",
    "CookAnythingSettings",
    "RegionLayout",
    "RegionalFluxAttnProcessor",
    "RegionalState",
    "group_mask",
    "regional_attention",
    "regional_token_mask",
]


def __getattr__(name: str):  # the pipeline is imported on first use
    if name in ("MAX_CANVAS_REGIONS", "CookAnything", "CookAnythingOutput"):
        from . import pipeline

        return getattr(pipeline, name)
    if name == "CookAnythingSettings":
        from .settings import CookAnythingSettings

        return CookAnythingSettings
    raise AttributeError(f"module 'cooklab.cookanything' has no attribute {name!r}")
