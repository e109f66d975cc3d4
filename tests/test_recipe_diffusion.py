"""Recipe Diffusion pipeline: each mechanism off gives the stock diffusers result; each on does what it says."""

import numpy as np
import pytest
import torch
from diffusers import (
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerDiscreteScheduler,
    StableDiffusionImg2ImgPipeline,
)

import cooklab
from cooklab import ConfigError, RecipeError
from cooklab.recipe_diffusion.region_noise import resize_mask

STEPS = ["Put a white bowl on the table", "Crack two eggs into the bowl", "Whisk the eggs in the bowl"]
PLANS = [
    {"container": "bowl", "container_attributes": ["white"], "reference_step": None},
    {"container": "bowl", "container_attributes": ["white"], "reference_step": 1},
    {"container": "bowl", "container_attributes": ["white"], "reference_step": 2},
]
OFF = dict(sequential=False, kv_sharing=False, region_aware=False)
FAST = dict(num_inference_steps=4, progress=False)
BOX = (8, 8, 48, 40)  # a container box in a 64x64 frame


def recipe():
    return cooklab.Recipe.from_steps(STEPS, title="Eggs", plans=PLANS)


def arr(img):
    return np.asarray(img, dtype=np.float32)


def test_all_mechanisms_off_equals_stock_pipeline(rd, tiny_sd):
    out = rd(STEPS, seed=3, output_type="np", **OFF, **FAST)
    for i, text in enumerate(STEPS):
        stock = tiny_sd(
            text, num_inference_steps=4, generator=torch.Generator().manual_seed(3 + i), output_type="np"
        ).images[0]
        assert np.abs(stock - out.images[i]).max() <= 1e-5
    assert all(f.reference is None and f.kv_reference is None and not f.region_aware for f in out.frames)
    first = tiny_sd.scheduler.timesteps[0]
    for i, f in enumerate(out.frames):
        assert (f.index, f.text, f.prompt, f.seed) == (i, STEPS[i], STEPS[i], 3 + i)
        assert (f.start_index, f.steps_run, f.start_timestep) == (0, 4, float(first))
    negative = rd(STEPS[:1], seed=3, output_type="np", negative_prompt="burnt", **OFF, **FAST)
    stock = tiny_sd(
        STEPS[0],
        negative_prompt="burnt",
        num_inference_steps=4,
        generator=torch.Generator().manual_seed(3),
        output_type="np",
    ).images[0]
    assert np.abs(stock - negative.images[0]).max() <= 1e-5 and not np.array_equal(negative.images[0], out.images[0])


@pytest.mark.parametrize("scheduler_cls", [DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler])
def test_sequential_frames_equal_img2img_from_the_previous_image(rd, tiny_sd, scheduler_cls):
    """The paper's L_{i-1}: the previous frame's image encoded by the VAE (the default)."""
    tiny_sd.scheduler = scheduler_cls.from_config(tiny_sd.scheduler.config)
    out = rd(
        STEPS, seed=0, num_inference_steps=5, kv_sharing=False, region_aware=False, output_type="np", progress=False
    )
    i2i = StableDiffusionImg2ImgPipeline(**tiny_sd.components)
    i2i.set_progress_bar_config(disable=True)
    for i in (1, 2):
        previous = tiny_sd.image_processor.numpy_to_pil(out.images[i - 1][None])[0]  # the 8-bit image a user gets
        ref = i2i(
            STEPS[i],
            image=previous,
            strength=0.999,
            num_inference_steps=5,
            generator=torch.Generator().manual_seed(i),
            output_type="np",
        ).images[0]
        assert np.abs(ref - out.images[i]).max() <= 1e-5
        f = out.frames[i]
        assert (f.reference, f.start_from, f.reference_latent, f.start_index, f.steps_run) == (
            i - 1,
            "previous",
            "encoded",
            1,
            4,
        )
    final = rd(
        STEPS,
        seed=0,
        num_inference_steps=5,
        kv_sharing=False,
        region_aware=False,
        output_type="np",
        progress=False,
        reference_latent="final",
    )
    assert not np.array_equal(final.images[1], out.images[1])  # the VAE round trip is a real difference


@pytest.mark.parametrize("scheduler_cls", [DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler])
def test_sequential_frames_equal_img2img_from_the_reference_latent(rd, tiny_sd, scheduler_cls):
    tiny_sd.scheduler = scheduler_cls.from_config(tiny_sd.scheduler.config)
    out = rd(
        STEPS,
        seed=0,
        num_inference_steps=5,
        kv_sharing=False,
        region_aware=False,
        output_type="np",
        progress=False,
        reference_latent="final",
    )
    i2i = StableDiffusionImg2ImgPipeline(**tiny_sd.components)
    i2i.set_progress_bar_config(disable=True)
    for i in (1, 2):
        ref = i2i(
            STEPS[i],
            image=out.latents[i - 1],
            strength=0.999,
            num_inference_steps=5,
            generator=torch.Generator().manual_seed(i),
            output_type="np",
        ).images[0]
        assert np.abs(ref - out.images[i]).max() <= 1e-5
        assert out.frames[i].reference == i - 1 and out.frames[i].start_index == 1 and out.frames[i].steps_run == 4


def test_equal_noise_levels_give_uniform_noising(rd):
    kw = dict(seed=1, num_inference_steps=20, kv_sharing=False, progress=False, output_type="np")
    uniform = rd(recipe(), region_aware=False, **kw)
    equal = rd(recipe(), region_aware=True, masks=[None, BOX, BOX], object_noise=0.999, base_noise=0.999, **kw)
    assert all(f.region_aware for f in equal.frames[1:])
    for a, b in zip(uniform.images, equal.images, strict=False):
        assert np.abs(a - b).max() <= 1e-5


def test_region_aware_noise_keeps_the_container_closer_to_the_reference(rd):
    kw = dict(seed=1, num_inference_steps=20, kv_sharing=False, progress=False)
    with cooklab.trace(rd, capture="noise") as tr:
        out = rd(recipe(), masks=[None, BOX, None], object_noise=0.5, **kw)
    f1 = out.frames[1]
    assert f1.region_aware and f1.object_noise == 0.5 and f1.object_timestep < f1.start_timestep
    rec = tr.noise[1]
    mask = rec.region.mask
    assert mask.shape == (8, 8) and 0 < mask.mean() < 1
    inside, outside = mask > 0.99, mask < 0.01
    assert rec.sigma_map[inside].max() < rec.sigma_map[outside].min()  # less noise on the container
    # inside the mask the start latent is exactly L_container (Eq. 5), outside L_background (Eq. 6)
    assert torch.equal(rec.noised[:, inside], rec.region.container[0][:, inside].float())
    assert torch.equal(rec.noised[:, outside], rec.region.background[0][:, outside].float())
    uniform = rd(recipe(), region_aware=False, **kw)
    assert not np.array_equal(arr(out.images[1]), arr(uniform.images[1]))
    assert np.array_equal(arr(out.images[0]), arr(uniform.images[0]))  # frame 0 is untouched


def test_metadata_reference_step_selects_the_reference_frame(rd):
    plans = [dict(p) for p in PLANS]
    plans[2]["reference_step"] = 1  # step 3 goes back to step 1's bowl
    out = rd(STEPS, metadata=plans, seed=0, masks=[None, BOX, BOX], **FAST)
    assert [f.reference for f in out.frames] == [None, 0, 0]  # region-aware noise of L_j (Eq. 5-7)
    assert [f.mask_reference for f in out.frames] == [None, 0, 0]
    assert [f.kv_reference for f in out.frames] == [None, 0, 0]


def test_frames_start_from_the_previous_frame_and_take_masks_and_kv_from_the_reference(rd):
    plans = [dict(p) for p in PLANS]
    plans[2]["reference_step"] = 1  # step 3's bowl is step 1's
    kw = dict(metadata=plans, seed=0, output_type="np", **FAST)
    out = rd(STEPS, **kw)  # no mask: uniform noise, so the paper's start, I_{i-1}
    assert [(f.reference, f.start_from) for f in out.frames] == [(None, None), (0, "previous"), (1, "previous")]
    assert [f.kv_reference for f in out.frames] == [None, 0, 0] and out.frames[2].mask_reference == 0
    by_ref = rd(STEPS, start_from="reference", **kw)
    assert [(f.reference, f.start_from) for f in by_ref.frames] == [(None, None), (0, "reference"), (0, "reference")]
    assert np.array_equal(out.images[1], by_ref.images[1]) and not np.array_equal(out.images[2], by_ref.images[2])
    masked = rd(STEPS, masks=[None, None, BOX], **kw)  # Eq. 5-7 noise L_j whatever start_from says
    assert (masked.frames[2].reference, masked.frames[2].start_from, masked.frames[2].region_aware) == (
        0,
        "reference",
        True,
    )
    assert masked.settings["start_from"] == "previous" and masked.settings["reference_latent"] == "encoded"


def test_no_mask_falls_back_to_uniform_noise_and_says_why(rd):
    out = rd(recipe(), seed=0, **FAST)
    assert [f.region_aware for f in out.frames] == [False, False, False]
    assert "mask_provider" in out.frames[1].fallback
    out = rd(STEPS, seed=0, **FAST)  # no metadata at all
    assert "no container" in out.frames[1].fallback
    first = [dict(p) for p in PLANS]
    first[1] = {"container": "pan", "reference_step": None}
    out = rd(STEPS, metadata=first, seed=0, mask_provider=cooklab.BoxMaskProvider(BOX), **FAST)
    assert "first appears" in out.frames[1].fallback and out.frames[2].region_aware


def test_mask_provider_is_asked_with_the_reference_image_and_container(rd):
    calls = []

    def provider(image, phrase):
        calls.append((image.size, phrase))
        return None if len(calls) == 2 else cooklab.BoxMaskProvider(BOX)(image, phrase)

    out = rd(recipe(), seed=0, mask_provider=provider, **FAST)
    assert calls == [((64, 64), "bowl"), ((64, 64), "bowl")]
    assert out.frames[1].region_aware and out.frames[1].mask.source == "box"
    assert (
        not out.frames[2].region_aware and "found no 'bowl' in the reference image (step 2)" in out.frames[2].fallback
    )

    def masks(image, phrase):  # a provider that answers with a bare mask: the pipeline names its source
        mask = torch.zeros(image.height, image.width)
        mask[8:40, 8:48] = 1
        return mask if phrase == "bowl" else None

    out = rd(recipe(), seed=0, mask_provider=masks, **FAST)
    assert (
        out.frames[1].region_aware and out.frames[1].mask.source == "function" and out.frames[1].mask.phrase == "bowl"
    )


def test_degenerate_mask_falls_back(rd):
    with cooklab.trace(rd, capture="noise") as tr:
        out = rd(recipe(), seed=0, masks=[None, torch.zeros(64, 64), torch.ones(8, 8)], **FAST)
    assert not out.frames[1].region_aware and "degenerate" in out.frames[1].fallback
    assert not out.frames[2].region_aware and "degenerate" in out.frames[2].fallback
    assert tr.noise[1].region is None and "degenerate" in tr.noise[1].fallback  # visible in the trace
    assert tr.noise[1].mask is out.frames[1].mask


def test_kv_sharing_changes_frames_after_the_first_and_is_deterministic(rd):
    kw = dict(seed=0, region_aware=False, output_type="np", **FAST)
    shared = rd(recipe(), kv_sharing=True, **kw)
    plain = rd(recipe(), kv_sharing=False, **kw)
    again = rd(recipe(), kv_sharing=True, **kw)
    assert np.array_equal(shared.images[0], plain.images[0])
    assert not np.array_equal(shared.images[1], plain.images[1])
    for a, b in zip(shared.images, again.images, strict=False):
        assert np.array_equal(a, b)
    assert len(shared.settings["kv_layers"]) == 3  # mid + two up-block layers of the tiny U-Net
    cpu_cache = rd(recipe(), kv_sharing=True, kv_cache_device="cpu", **kw)
    for a, b in zip(shared.images, cpu_cache.images, strict=False):
        assert np.array_equal(a, b)


def test_kv_sharing_without_sequential_shares_only_attention(rd):
    out = rd(recipe(), seed=0, sequential=False, kv_sharing=True, region_aware=False, **FAST)
    assert [f.reference for f in out.frames] == [None, None, None]
    assert [f.kv_reference for f in out.frames] == [None, 0, 1]


def test_variants_set_the_switches(rd):
    out = rd(recipe(), seed=0, variant="region_aware", masks=[None, BOX, BOX], **FAST)
    assert out.settings["kv_sharing"] is False and out.settings["region_aware"] is True
    assert all(f.kv_reference is None for f in out.frames) and out.frames[1].region_aware
    independent = rd(recipe(), seed=0, variant="independent", masks=[None, BOX, BOX], **FAST)  # masks unused, no error
    assert not any(f.region_aware or f.reference is not None for f in independent.frames)
    with pytest.raises(ConfigError, match="choose one of"):
        rd(recipe(), variant="magic", **FAST)


def test_processors_are_restored_after_a_call_and_after_an_error(rd):
    before = dict(rd.unet.attn_processors)
    rd(recipe(), seed=0, masks=[None, BOX, BOX], **FAST)
    assert dict(rd.unet.attn_processors) == before

    def broken(image, phrase):
        raise RuntimeError("detector crashed")

    with pytest.raises(RuntimeError, match="detector crashed"):
        rd(recipe(), seed=0, mask_provider=broken, **FAST)
    assert dict(rd.unet.attn_processors) == before


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(height=60), ConfigError, "multiples of 8"),
        (dict(masks=[None, torch.ones(10, 10), None]), ConfigError, "frame 1: mask has size 10x10"),
        (dict(masks=[None, BOX]), ConfigError, "one per step"),
        (dict(masks={0: BOX}), ConfigError, "starts from pure noise"),
        (dict(masks={3: BOX}), ConfigError, "frames are numbered 0..2"),
        (dict(masks={"1": BOX}), ConfigError, "frames are numbered 0..2"),
        (dict(sequential=False, region_aware=True), ConfigError, "needs sequential=True"),
        (dict(base_noise=1.5), ConfigError, "between 0 and 1"),
        (dict(base_noise=0.1), ConfigError, "runs no denoising step"),
        (dict(metadata=[None, None, {"container": "bowl", "reference_step": 3}]), RecipeError, "reference_step"),
        (dict(metadata=[None, None]), RecipeError, "3"),
        (dict(start_from="first"), ConfigError, "'previous'"),
        (dict(reference_latent="decoded"), ConfigError, "'encoded'"),
    ],
)
def test_bad_inputs_raise_clear_errors(rd, kwargs, error, match):
    kwargs = {"seed": 0, **FAST, **kwargs}
    with pytest.raises(error, match=match):
        rd(recipe(), **kwargs)


def test_zero_steps_and_wrong_pipelines_are_refused(tiny_sd):
    with pytest.raises(RecipeError):
        cooklab.Recipe.from_steps([])
    with pytest.raises(cooklab.CheckpointError, match="StableDiffusionPipeline"):
        cooklab.RecipeDiffusion.from_pipe(cooklab.models.tiny_flux())


def test_collapsed_noise_levels_warn(rd):
    with pytest.warns(UserWarning, match="same timestep"):
        rd(recipe(), seed=0, masks=[None, BOX, BOX], num_inference_steps=5, progress=False)


def test_resize_mask_keeps_area():
    mask = torch.zeros(64, 64)
    mask[:32] = 1
    small = resize_mask(mask, (8, 8), (64, 64))
    assert small.shape == (8, 8) and torch.isclose(small.mean(), torch.tensor(0.5))


def test_a_rule_plan_drives_references_and_prompts(rd):
    from cooklab.agent import plan

    raw = cooklab.Recipe.from_steps(STEPS, title="Eggs")  # no metadata of its own
    p = plan(raw, agent="rules", cache_dir=False)
    out = rd(raw, plan=p, seed=0, masks=[None, BOX, BOX], enriched_prompts=True, **FAST)
    assert [f.container for f in out.frames] == [s.container for s in p.steps]
    assert [f.prompt for f in out.frames] == p.prompts()
    assert out.frames[2].reference == p.steps[2].reference_step - 1
    with pytest.raises(ConfigError, match="not both"):
        rd(raw, plan=p, metadata=PLANS, **FAST)
