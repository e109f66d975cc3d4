"""Recipe Diffusion (Xia & Fujita): sequential frames, cross-frame K/V sharing, region-aware noise."""

from .kv_sharing import KVSharingAttnProcessor, KVSharingState
from .noise_levels import NoiseLevels
from .pipeline import VARIANTS, FrameInfo, NoiseRecord, RecipeDiffusion, RecipeDiffusionOutput
from .region_noise import RegionNoise, combine_by_mask, region_aware_noise, resize_mask

__all__ = [
    "VARIANTS", "FrameInfo", "KVSharingAttnProcessor", "KVSharingState", "NoiseLevels", "NoiseRecord",
    "RecipeDiffusion", "RecipeDiffusionOutput", "RegionNoise", "combine_by_mask", "region_aware_noise", "resize_mask",
]
