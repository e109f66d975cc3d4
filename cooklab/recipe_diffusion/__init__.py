"""Recipe Diffusion (Xia & Fujita): sequential frames, cross-frame K/V sharing, region-aware noise.

One mechanism per module: ``noise_levels.py`` (a level as img2img strength),
``region_noise.py`` (Eq. 5-7), ``kv_sharing.py`` (Eq. 1-4), ``records.py`` (what a call
reports), ``inputs.py`` (a call's inputs checked and prepared: variants, sizes, reference
frames, container masks; the baselines use it too), ``pipeline.py`` (the call that composes
them). Only the pipeline needs diffusers; it is imported on first use, so reading results and
plotting them stays light.
"""

from .kv_sharing import KVSharingAttnProcessor, KVSharingState
from .noise_levels import NoiseLevels
from .records import FrameInfo, NoiseRecord, RecipeDiffusionOutput
from .region_noise import RegionNoise, combine_by_mask, region_aware_noise, resize_mask

__all__ = [
    "VARIANTS",
    "FrameInfo",
    "KVSharingAttnProcessor",
    "KVSharingState",
    "NoiseLevels",
    "NoiseRecord",
    "RecipeDiffusion",
    "RecipeDiffusionOutput",
    "RegionNoise",
    "combine_by_mask",
    "region_aware_noise",
    "resize_mask",
]


def __getattr__(name: str):  # the pipeline (and with it diffusers) is imported on first use
    if name in ("VARIANTS", "RecipeDiffusion"):
        from . import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'cooklab.recipe_diffusion' has no attribute {name!r}")
