"""What a Recipe Diffusion call reports: per-frame settings, the output, per-frame noise.

Plain dataclasses, kept apart from ``pipeline.py`` so that code which only *reads* results
(``cooklab.viz``, ``cooklab.report``, a notebook plotting a saved trace) does not import
diffusers:

* ``FrameInfo``: the settings one frame actually ran with (``out.frames[i]``);
* ``RecipeDiffusionOutput``: what ``RecipeDiffusion.__call__`` returns;
* ``NoiseRecord``: the noise a frame started from, as ``cooklab.trace`` records it
  (``tr.noise[i]``, capture ``"noise"``).

Frames are numbered from 0 here (step number = index + 1).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..grounding.provider import MaskResult
from ..recipe import Recipe
from .region_noise import RegionNoise

__all__ = ["FrameInfo", "NoiseRecord", "RecipeDiffusionOutput"]


@dataclass
class FrameInfo:
    """The settings actually used for one frame (what the result reports)."""

    index: int  # 0-based frame index (step number = index + 1)
    text: str
    prompt: str
    seed: int
    container: str | None  # the step's container from the metadata (the mask provider's phrase)
    reference: int | None  # frame whose latent this frame started from (None: pure noise)
    kv_reference: int | None  # frame whose K/V this frame attended to (None: no sharing)
    start_index: int  # position in scheduler.timesteps where denoising started
    steps_run: int
    start_timestep: float
    base_noise: float | None  # None for a frame started from pure noise
    object_noise: float | None  # None unless region-aware noise was applied
    object_timestep: float | None  # the timestep the container was noised to (None: no region-aware noise)
    region_aware: bool  # region-aware noise applied to this frame
    fallback: str | None = None  # why uniform noise was used although region_aware=True
    mask: MaskResult | None = field(default=None, repr=False)
    kv_fallback_steps: int = 0  # steps that read the reference's K/V of a neighbouring step
    start_from: str | None = (
        None  # why `reference` was chosen: "previous", "reference" (start_from or Eq. 5-7), None: noise
    )
    mask_reference: int | None = (
        None  # frame whose image the container mask was looked for in (None: not region-aware)
    )
    reference_latent: str | None = (
        None  # "encoded" (VAE encoding of its image) or "final" (its final latent); None: noise
    )


@dataclass
class RecipeDiffusionOutput:
    images: list  # one image per step (PIL by default, per output_type)
    frames: list[FrameInfo]
    latents: list[torch.Tensor]  # final latent of each frame, [1, C, h, w] on the CPU
    recipe: Recipe
    settings: dict  # the call's settings after presets and defaults


@dataclass
class NoiseRecord:
    """Per-frame noise as seen by ``cooklab.trace`` (capture ``"noise"``)."""

    frame: int
    reference: int
    base_noise: float
    object_noise: float | None
    base_timestep: float | None
    object_timestep: float | None
    region: RegionNoise | None  # None for uniform noise
    noised: torch.Tensor  # [C, h, w] the latent denoising starts from
    sigma_map: torch.Tensor  # [h, w]
    signal_map: torch.Tensor  # [h, w]
    fallback: str | None = None  # why uniform noise was used although region-aware noise was asked for
    mask: MaskResult | None = None  # what the mask source returned (kept even when it was degenerate)

    def stats(self) -> dict:
        """Mean/std of the noised latent inside and outside the mask (whole latent if uniform)."""
        m = self.region.mask if self.region is not None else torch.zeros(self.noised.shape[-2:])
        out = {}
        for name, w in (("inside", m), ("outside", 1 - m)):
            if float(w.sum()) > 0:
                x = self.noised[:, w > 0.5] if bool((w > 0.5).any()) else self.noised.flatten(1)[:, :0]
                out[name] = {
                    "sigma": float((self.sigma_map * w).sum() / w.sum()),
                    "mean": float(x.mean()) if x.numel() else float("nan"),
                    "std": float(x.std()) if x.numel() > 1 else float("nan"),
                }
        return out
