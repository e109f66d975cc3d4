"""The einops rewrites of the mechanisms' reshapes give exactly what the tensor expressions they replaced gave."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from diffusers import FluxPipeline

from cooklab.cookanything.cscc import whole_description
from cooklab.cookanything.flow_matching import pack_latents, unpack_latents
from cooklab.models import TINY_T5_MAX_LENGTH
from cooklab.recipe import as_recipe
from cooklab.recipe_diffusion import NoiseLevels, resize_mask

STEPS = ["Dice two carrots on a wooden board", "Fry the carrots in a black pan", "Serve the carrots on a white plate"]
KW = dict(num_inference_steps=2, max_sequence_length=TINY_T5_MAX_LENGTH, progress=False)


@pytest.mark.parametrize(("n", "channels", "h", "w"), [(1, 16, 8, 8), (3, 16, 8, 12), (2, 4, 2, 6)])
def test_packing_is_fluxs_per_region(n, channels, h, w):
    latents = torch.randn(n, channels, h, w)
    tokens = pack_latents(latents)  # [1, N P, C 4]
    stock = torch.cat([FluxPipeline._pack_latents(x[None], 1, channels, h, w) for x in latents], dim=1)
    assert torch.equal(tokens, stock)
    back = unpack_latents(tokens, n, h // 2)  # [N, C, H, W]
    assert torch.equal(back, latents)
    p = tokens.shape[1] // n
    for i in range(
        n
    ):  # Flux's unpacking of one region's tokens (its height/width arguments are pixels: 8 per latent pixel)
        assert torch.equal(
            back[i : i + 1], FluxPipeline._unpack_latents(tokens[:, i * p : (i + 1) * p], 8 * h, 8 * w, 8)
        )


@pytest.mark.parametrize(
    ("image_hw", "latent_hw"),
    [((64, 64), (8, 8)), ((512, 768), (64, 96)), ((48, 80), (6, 10)), ((72, 120), (8, 8)), ((30, 30), (8, 8))],
)
def test_resize_mask_is_area_interpolation_bit_for_bit(image_hw, latent_hw):
    g = torch.Generator().manual_seed(0)
    for mask in (
        torch.rand(image_hw, generator=g),
        (torch.rand(image_hw, generator=g) > 0.5).float(),
        torch.rand(image_hw, generator=g) > 0.7,
    ):  # soft, binary, bool
        expected = F.interpolate(mask.float()[None, None], size=latent_hw, mode="area")[0, 0]
        assert torch.equal(resize_mask(mask, latent_hw), expected)


def test_add_noise_gives_every_latent_of_a_batch_the_same_timestep():
    from diffusers import DDIMScheduler

    levels = NoiseLevels(DDIMScheduler(), 20)
    levels.scheduler.set_timesteps(20)
    x, eps = torch.randn(3, 4, 8, 8), torch.randn(3, 4, 8, 8)
    batch = levels.add_noise(x, eps, 0.9)
    t = levels.scheduler.timesteps[levels.index(0.9) : levels.index(0.9) + 1].repeat(3)  # the expression it replaced
    assert torch.equal(batch, levels.scheduler.add_noise(x, eps, t))
    assert all(torch.equal(batch[i : i + 1], levels.add_noise(x[i : i + 1], eps[i : i + 1], 0.9)) for i in range(3))


def _text_stream(ca, **kwargs):
    """The encoder_hidden_states / pooled_projections of every transformer call of one generation."""
    seen = []
    hook = ca.transformer.register_forward_pre_hook(
        lambda m, a, kw: seen.append((kw["encoder_hidden_states"], kw["pooled_projections"])), with_kwargs=True
    )
    try:
        ca(STEPS, seed=0, output_type="latent", **KW, **kwargs)
    finally:
        hook.remove()
    return seen


@torch.no_grad()
def test_text_slots_are_the_encodings_end_to_end(ca, tiny_flux):
    steps, steps_pooled, _ = tiny_flux.encode_prompt(STEPS, STEPS, max_sequence_length=TINY_T5_MAX_LENGTH)  # [N, L, D]
    whole, _ = whole_description(STEPS, as_recipe(STEPS).title)
    base, base_pooled, _ = tiny_flux.encode_prompt(whole, whole, max_sequence_length=TINY_T5_MAX_LENGTH)  # [1, L, D]
    neg, neg_pooled, _ = tiny_flux.encode_prompt("blurry", "blurry", max_sequence_length=TINY_T5_MAX_LENGTH)
    d = steps.shape[-1]

    plain = _text_stream(ca, regional=False, cscc=False)[0]  # the expressions the einops lines replaced:
    assert torch.equal(plain[0], torch.cat([p.reshape(1, -1, d) for p in steps.split(1)], dim=1))
    assert torch.equal(plain[1], steps_pooled.mean(0, keepdim=True))

    cond, uncond = _text_stream(ca, cscc=False, true_cfg_scale=2.0, negative_prompt="blurry")[:2]
    assert torch.equal(cond[0], torch.cat([base] + [p.reshape(1, -1, d) for p in steps.split(1)], dim=1))
    assert torch.equal(cond[1], base_pooled)
    assert torch.equal(uncond[0], neg.repeat(1, 1 + len(STEPS), 1)) and torch.equal(uncond[1], neg_pooled)


def test_canvases_are_the_regions_stacked(ca):
    arrays = ca(STEPS, seed=0, output_type="np", **KW)
    assert np.array_equal(arrays.canvas, np.concatenate(arrays.images, axis=0))
    tensors = ca(STEPS, seed=0, output_type="pt", **KW)
    assert torch.equal(tensors.canvas, torch.cat(tensors.images, dim=-2))
    latents = ca(STEPS, seed=0, output_type="latent", **KW)
    assert all(
        torch.equal(a, b)
        for a, b in zip(latents.images, latents.canvas.split(latents.canvas.shape[1] // 3, dim=1), strict=True)
    )
