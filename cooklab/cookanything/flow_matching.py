"""Flux's latent tokens and its noise schedule's time shift, shared by generation and training.

Packing (``FluxPipeline._pack_latents``): every 2 x 2 patch of latent pixels becomes one token of
``C 2 2`` channels, in raster order. A canvas of N regions lays its regions' tokens one after
another (region-major), which is the raster order of the tall canvas.

Time shift (``FlowMatchEulerDiscreteScheduler`` with ``use_dynamic_shifting``): a noise level
``sigma`` in (0, 1) is moved towards 1 for longer image sequences,

    mu = m(S)  (``calculate_shift``: linear in the image sequence length S)
    shift(sigma) = e^mu / (e^mu + (1 / sigma - 1))

and, with a static ``shift`` s instead, ``s sigma / (1 + (s - 1) sigma)``. The sampler shifts its
schedule so; training draws its noise levels through the same shift so that it sees the levels
sampling visits.
"""

from __future__ import annotations

import math

import torch
from diffusers.pipelines.flux.pipeline_flux import calculate_shift
from einops import rearrange

__all__ = ["pack_images", "pack_latents", "shift_sigma", "time_shift_mu", "unpack_latents"]


def pack_images(latents: torch.Tensor) -> torch.Tensor:
    """[B, C, H, W] latents -> [B, P, C 4] tokens, one image per batch entry, as ``FluxPipeline._pack_latents``.

    P = H/2 x W/2 tokens per image, raster order; each token holds a 2 x 2 patch of ``C`` channels.
    """
    return rearrange(latents, "b c (h ph) (w pw) -> b (h w) (c ph pw)", ph=2, pw=2)


def pack_latents(latents: torch.Tensor) -> torch.Tensor:
    """[N, C, H, W] region latents -> [1, N P, C 4] canvas tokens:
    each region packed, the regions one after another.
    """
    return rearrange(pack_images(latents), "n p c -> 1 (n p) c")


def unpack_latents(tokens: torch.Tensor, n_regions: int, rows: int) -> torch.Tensor:
    """[1, N P, C 4] canvas tokens -> [N, C, H, W] region latents: ``pack_latents`` undone (``rows`` = H / 2)."""
    return rearrange(tokens, "1 (n h w) (c ph pw) -> n c (h ph) (w pw)", n=n_regions, h=rows, ph=2, pw=2)


def time_shift_mu(scheduler_config, image_seq_len: int) -> float:
    """``mu`` of the dynamic time shift for ``image_seq_len`` image tokens (diffusers' ``calculate_shift``).

    The scheduler's own ``base_image_seq_len`` / ``max_image_seq_len`` / ``base_shift`` / ``max_shift``,
    with FLUX.1's values (256, 4096, 0.5, 1.15) where its config has none.
    """
    cfg = scheduler_config
    return calculate_shift(
        image_seq_len,
        cfg.get("base_image_seq_len", 256),
        cfg.get("max_image_seq_len", 4096),
        cfg.get("base_shift", 0.5),
        cfg.get("max_shift", 1.15),
    )


def shift_sigma(sigma: torch.Tensor, scheduler_config, image_seq_len: int) -> torch.Tensor:
    """Flux's timestep shift of ``sigma`` for ``image_seq_len`` image tokens (as
    ``FlowMatchEulerDiscreteScheduler``).
    """
    cfg = scheduler_config
    if cfg.get("use_dynamic_shifting", False):
        mu = time_shift_mu(cfg, image_seq_len)
        return math.exp(mu) / (math.exp(mu) + (1 / sigma - 1))  # exponential time shift, power 1
    shift = cfg.get("shift", 1.0)
    return shift * sigma / (1 + (shift - 1) * sigma)
