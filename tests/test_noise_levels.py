"""Noise level -> timestep mapping and region-aware noise (Eq. 5-7) as pure functions."""

import pytest
import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler

from cooklab import ConfigError
from cooklab.grounding import box_to_mask
from cooklab.recipe_diffusion import NoiseLevels, combine_by_mask, region_aware_noise, resize_mask

SD = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1, num_train_timesteps=1000)
SCHEDULERS = [
    DDIMScheduler(**SD, clip_sample=False, set_alpha_to_one=False),
    DPMSolverMultistepScheduler(**SD),
    EulerDiscreteScheduler(**SD),
]


def levels(scheduler, n):
    scheduler.set_timesteps(n)
    return NoiseLevels(scheduler, n)


@pytest.mark.parametrize("scheduler", SCHEDULERS, ids=lambda s: type(s).__name__)
@pytest.mark.parametrize("n", [4, 10, 20, 50])
@pytest.mark.parametrize("level", [0.3, 0.9, 0.999, 1.0])
def test_index_is_img2img_strength(scheduler, n, level):
    lv = levels(scheduler, n)
    init = min(int(n * level), n)  # diffusers' get_timesteps
    assert lv.index(level) == (n - init) * scheduler.order
    assert lv.steps_run(level) == init


def test_ddim_add_noise_is_the_closed_form():
    lv = levels(SCHEDULERS[0], 20)
    x, eps = torch.randn(1, 4, 8, 8), torch.randn(1, 4, 8, 8)
    t = int(lv.timestep(0.9))
    abar = SCHEDULERS[0].alphas_cumprod[t]
    assert torch.allclose(lv.add_noise(x, eps, 0.9), abar.sqrt() * x + (1 - abar).sqrt() * eps, atol=1e-6)
    a, b = lv.coefficients(0.9)
    assert a == pytest.approx(abar.sqrt().item()) and b == pytest.approx((1 - abar).sqrt().item())


def test_euler_levels_use_their_own_sigma_even_after_begin_index_is_set():
    sch = EulerDiscreteScheduler(**SD)
    lv = levels(sch, 20)
    x, eps = torch.zeros(1, 1, 2, 2), torch.ones(1, 1, 2, 2)
    sch.set_begin_index(lv.index(0.999))  # what the pipeline does for the base level
    obj = lv.add_noise(x, eps, 0.5)
    assert torch.allclose(obj, sch.sigmas[lv.index(0.5)] * eps)
    assert lv.coefficients(0.999)[1] > lv.coefficients(0.5)[1]


def test_level_below_one_step_adds_no_noise():
    lv = levels(SCHEDULERS[0], 10)
    x = torch.randn(1, 4, 8, 8)
    assert lv.timestep(0.05) is None and torch.equal(lv.add_noise(x, torch.randn_like(x), 0.05), x)


@pytest.mark.parametrize("scheduler", SCHEDULERS, ids=lambda s: type(s).__name__)
def test_region_noise_reduces_to_uniform_with_equal_levels(scheduler):
    lv = levels(scheduler, 20)
    x, eps = torch.randn(1, 4, 8, 8), torch.randn(1, 4, 8, 8)
    mask = resize_mask(box_to_mask((8, 8, 40, 48), (64, 64)), (8, 8), (64, 64))
    rn = region_aware_noise(x, eps, mask, 0.999, 0.999, lv.add_noise)
    assert torch.equal(rn.combined, lv.add_noise(x, eps, 0.999))
    rn = region_aware_noise(x, eps, mask, 0.5, 0.999, lv.add_noise)
    inside, outside = mask == 1, mask == 0
    assert torch.equal(rn.combined[..., inside], rn.container[..., inside])  # Eq. 7 inside
    assert torch.equal(rn.combined[..., outside], rn.background[..., outside])  # Eq. 7 outside
    assert rn.sigma_map[inside].unique().numel() == 1 and rn.sigma_map[inside][0] < rn.sigma_map[outside][0]


def test_combine_by_mask_is_eq_7():
    m = torch.tensor([[0.0, 0.25], [1.0, 0.5]])
    a, b = torch.ones(1, 2, 2, 2), torch.zeros(1, 2, 2, 2)
    assert torch.equal(combine_by_mask(m, a, b)[0, 0], m)


def test_masks_and_boxes():
    m = box_to_mask((0.5, 0, 2, 1), (2, 4))
    assert torch.equal(m, torch.tensor([[0.5, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]))
    with pytest.raises(ConfigError, match="empty"):
        box_to_mask((4, 4, 4, 8), (8, 8))
    with pytest.raises(ConfigError, match="image size or of the latent size"):
        resize_mask(torch.ones(30, 30), (8, 8), (64, 64))
    with pytest.raises(ConfigError, match="latent grid"):
        region_aware_noise(
            torch.zeros(1, 4, 8, 8), torch.zeros(1, 4, 8, 8), torch.ones(4, 4), 0.9, 0.999, lambda x, e, s: x
        )
    with pytest.raises(ConfigError, match="between 0 and 1"):
        from cooklab.recipe_diffusion.noise_levels import check_level

        check_level("object_noise", -0.1)
