"""CookAnything: all recipe steps in one Flux pass -- Step-wise Regional Control, Flexible RoPE, CSCC.

One mechanism per module: ``regional.py`` (layout, mask, attention paths, processor),
``flexible_rope.py`` (per-region position ids), ``cscc.py`` (step spans and token fusion),
``cross_region_kv.py`` (Recipe Diffusion's K/V sharing between the canvas's regions),
``regional_unet.py`` (Step-wise Regional Control on an SD U-Net, for the baselines),
``chunked.py`` (recipes longer than one canvas: chunks joined by anchor regions),
``lora.py`` (LoRA adapters on the Flux transformer: the training-based mode),
``pipeline.py`` (the call that composes them).
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
    "MAX_STEPS",
    "CookAnything",
    "CookAnythingOutput",
    "RegionLayout",
    "RegionalFluxAttnProcessor",
    "RegionalState",
    "group_mask",
    "regional_attention",
    "regional_token_mask",
]


def __getattr__(name: str):  # the pipeline is imported on first use
    if name in ("MAX_STEPS", "CookAnything", "CookAnythingOutput"):
        from . import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'cooklab.cookanything' has no attribute {name!r}")
