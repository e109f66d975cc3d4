"""CookAnything's SRC and CSCC on a Stable Diffusion U-Net (cooklab.baselines.RegionalSD): stock equivalences, the
blend, errors."""

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline

from cooklab import CheckpointError, ConfigError
from cooklab.baselines import RegionalSD
from cooklab.cookanything.cscc import whole_description
from cooklab.cookanything.regional_unet import UNetRegionLayout, regional_unet_attention

STEPS = ["Put a white bowl on the table", "Crack two eggs into the bowl", "Whisk the eggs in the bowl"]
FAST = dict(num_inference_steps=4, progress=False, output_type="np")


@pytest.fixture
def regional(tiny_sd):
    return RegionalSD(tiny_sd)


def stock(tiny_sd, prompt, seed, **kwargs):
    pipe = StableDiffusionPipeline(**{**tiny_sd.components, "safety_checker": None}, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe(
        prompt, generator=torch.Generator("cpu").manual_seed(seed), num_inference_steps=4, output_type="np", **kwargs
    ).images[0]


def test_one_region_without_src_or_cscc_is_stock_sd_bit_for_bit(regional, tiny_sd):
    out = regional(STEPS[:1], seed=3, regional=False, **FAST)
    assert np.array_equal(out.images[0], stock(tiny_sd, STEPS[0], 3))
    assert np.array_equal(out.canvas, out.images[0])


def test_one_region_with_src_is_stock_sd_of_its_step_at_alpha_0_and_of_the_description_at_alpha_1(regional, tiny_sd):
    at0 = regional(STEPS[:1], seed=1, alpha=0.0, **FAST).images[0]
    assert np.abs(at0 - stock(tiny_sd, STEPS[0], 1)).max() < 1e-5
    at1 = regional(STEPS[:1], seed=1, alpha=1.0, **FAST)
    description = whole_description(STEPS[:1], at1.recipe.title)[0]
    assert np.abs(at1.images[0] - stock(tiny_sd, description, 1)).max() < 1e-5


def test_cross_attention_of_a_region_reads_only_its_steps_text():
    layout = UNetRegionLayout(n_regions=3, step_text_len=5, base_text_len=5)
    g = torch.Generator().manual_seed(0)
    q = torch.randn(1, 2, 3 * 4, 8, generator=g)  # 3 regions of 4 tokens
    k, v = (torch.randn(1, 2, layout.text_len, 8, generator=g) for _ in range(2))
    out = regional_unet_attention(q, k, v, layout, True, alpha=0.25)
    k2, v2 = k.clone(), v.clone()
    k2[:, :, 5 + 5 : 5 + 10] += 3  # step 2's slot changes
    v2[:, :, 5 + 5 : 5 + 10] -= 1
    out2 = regional_unet_attention(q, k2, v2, layout, True, alpha=0.25)
    assert torch.equal(out[:, :, :4], out2[:, :, :4]) and torch.equal(out[:, :, 8:], out2[:, :, 8:])
    assert not torch.allclose(out[:, :, 4:8], out2[:, :, 4:8])
    sdpa = torch.nn.functional.scaled_dot_product_attention
    region2 = 0.25 * sdpa(q[:, :, 4:8], k[:, :, :5], v[:, :, :5]) + 0.75 * sdpa(
        q[:, :, 4:8], k[:, :, 10:15], v[:, :, 10:15]
    )
    assert torch.allclose(out[:, :, 4:8], region2, atol=1e-6)  # Eq. 9: alpha base + (1 - alpha) regional


def test_self_attention_blends_the_canvas_and_the_region():
    layout = UNetRegionLayout(n_regions=2, step_text_len=5, base_text_len=5)
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(1, 2, 8, 4, generator=g) for _ in range(3))
    sdpa = torch.nn.functional.scaled_dot_product_attention
    out = regional_unet_attention(q, k, v, layout, False, alpha=0.3)
    first = 0.3 * sdpa(q, k, v)[:, :, :4] + 0.7 * sdpa(q[:, :, :4], k[:, :, :4], v[:, :, :4])
    assert torch.allclose(out[:, :, :4], first, atol=1e-6)
    assert torch.equal(regional_unet_attention(q, k, v, layout, False, 0.3, "global"), sdpa(q, k, v))


def test_a_canvas_of_three_regions(regional, tiny_sd):
    before = dict(tiny_sd.unet.attn_processors)
    out = regional(STEPS, seed=0, **FAST)
    assert len(out.images) == 3 and out.canvas.shape == (3 * 64, 64, 3)
    assert np.array_equal(np.concatenate(out.images, axis=0).shape, out.canvas.shape)
    assert dict(tiny_sd.unet.attn_processors) == before  # stock processors back
    assert not np.array_equal(np.stack(out.images), np.stack(regional(STEPS, seed=0, regional=False, **FAST).images))
    assert np.array_equal(np.stack(out.images), np.stack(regional(STEPS, seed=0, **FAST).images))  # deterministic


def test_cscc_at_lambda_0_is_cscc_off_and_changes_the_canvas_otherwise(regional):
    off = np.stack(regional(STEPS, seed=0, **FAST).images)
    zero = regional(STEPS, seed=0, cscc=True, lam=0.0, **FAST)
    assert np.array_equal(np.stack(zero.images), off)
    assert zero.spans is not None and all(s.own_start == 1 and s.matches for s in zero.spans.spans)
    assert not np.array_equal(np.stack(regional(STEPS, seed=0, cscc=True, lam=0.5, **FAST).images), off)


def test_processors_come_back_after_a_failure(regional, tiny_sd, monkeypatch):
    before = dict(tiny_sd.unet.attn_processors)

    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(RegionalSD, "_denoise", boom)
    with pytest.raises(RuntimeError, match="boom"):
        regional(STEPS, seed=0, **FAST)
    assert dict(tiny_sd.unet.attn_processors) == before


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(alpha=1.5), "alpha"),
        (dict(lam=-0.1), "lam"),
        (dict(height=40), "downsampling"),
        (dict(image_attention="all"), "image_attention"),
    ],
)
def test_bad_arguments(regional, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        regional(STEPS, seed=0, **{**FAST, **kwargs})


def test_a_flux_pipeline_is_refused(tiny_flux):
    with pytest.raises(CheckpointError, match="CookAnything"):
        RegionalSD(tiny_flux)
