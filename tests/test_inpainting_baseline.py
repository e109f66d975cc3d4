"""The inpainting baselines (cooklab.baselines): stock diffusers frame by frame, the interior region, fallbacks,
errors."""

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionInpaintPipeline, StableDiffusionPipeline
from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion_img2img import retrieve_latents
from PIL import Image

import cooklab
from cooklab import CheckpointError, ConfigError
from cooklab.baselines import InpaintingBaseline, InpaintingOptions, blend_mask, interior_mask, rim_width
from cooklab.grounding import box_to_mask

STEPS = ["Put a white bowl on the table", "Crack two eggs into the bowl", "Put a pan on the stove"]
PLANS = [
    {"container": "bowl", "container_attributes": ["white"], "reference_step": None},
    {"container": "bowl", "container_attributes": ["white"], "reference_step": 1},
    {"container": "pan", "container_attributes": [], "reference_step": None},  # a new container: nothing to inpaint
]
BOX = (8, 8, 56, 48)  # the bowl in a 64x64 frame: 48 px wide, 40 px tall
FAST = dict(num_inference_steps=4, progress=False)


def recipe():
    return cooklab.Recipe.from_steps(STEPS, title="Eggs", plans=PLANS)


@pytest.fixture
def baseline(tiny_sd):
    return InpaintingBaseline(tiny_sd)


def stock_inpaint(tiny_sd):
    pipe = StableDiffusionInpaintPipeline(**tiny_sd.components, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def as_pil(image_np):
    return Image.fromarray((np.asarray(image_np) * 255).round().astype(np.uint8))


@pytest.mark.parametrize("region, strength", [("container", 1.0), ("interior", 0.75)])
def test_inpainted_frame_equals_stock_inpaint_pipeline(baseline, tiny_sd, region, strength):
    out = baseline(
        recipe(),
        seed=5,
        masks={1: BOX},
        region=region,
        interior_rim=0.25,
        strength=strength,
        negative_prompt="burnt",
        output_type="np",
        **FAST,
    )
    box = box_to_mask(BOX, (64, 64))
    mask_image = (
        as_pil(box) if region == "container" else interior_mask(box, 0.25)[None, None]
    )  # a user's PIL mask; a tensor
    reference = as_pil(out.images[0])  # the 8-bit image of frame 0, as the user receives it
    stock = stock_inpaint(tiny_sd)(
        STEPS[1],
        image=reference,
        mask_image=mask_image,
        strength=strength,
        num_inference_steps=4,
        negative_prompt="burnt",
        generator=torch.Generator().manual_seed(5 + 1),
        output_type="np",
    ).images[0]
    assert np.abs(stock - out.images[1]).max() <= 1e-5
    f = out.frames[1]
    assert (f.reference, f.mask_reference, f.start_from, f.reference_latent, f.base_noise, f.fallback) == (
        0,
        0,
        "reference",
        "encoded",
        strength,
        None,
    )
    assert (f.start_index, f.steps_run, f.kv_reference, f.region_aware) == (
        4 - int(4 * strength),
        int(4 * strength),
        None,
        False,
    )
    assert f.mask.extra["region"] == region and f.mask.box == BOX
    assert torch.equal(f.mask.extra["region_mask"], box if region == "container" else interior_mask(box, 0.25))
    assert out.settings["region"] == region and out.settings["strength"] == strength and out.settings["masks"] == [1]
    pil = baseline(
        recipe(),
        seed=5,
        masks={1: BOX},
        region=region,
        interior_rim=0.25,
        strength=strength,
        negative_prompt="burnt",
        **FAST,
    )  # the reference handed over as the PIL frame itself, not decoded again
    assert np.abs(np.asarray(pil.images[1], dtype=np.float32) / 255 - out.images[1]).max() <= 0.5 / 255 + 1e-6


def test_frames_without_a_reference_equal_stock_text_to_image(baseline, tiny_sd):
    out = baseline(recipe(), seed=3, masks={1: BOX}, guidance_scale=5.0, output_type="np", **FAST)
    stock = StableDiffusionPipeline(**tiny_sd.components, requires_safety_checker=False)
    stock.set_progress_bar_config(disable=True)
    for i in (0, 2):  # frame 1 of the recipe, and a step whose metadata has no reference_step
        expected = stock(
            STEPS[i],
            num_inference_steps=4,
            guidance_scale=5.0,
            generator=torch.Generator().manual_seed(3 + i),
            output_type="np",
        ).images[0]
        assert np.abs(expected - out.images[i]).max() <= 1e-5
        f = out.frames[i]
        assert (f.reference, f.base_noise, f.start_index, f.steps_run, f.seed) == (None, None, 0, 4, 3 + i)
    assert out.frames[0].fallback is None and out.frames[0].mask_reference is None
    assert out.frames[2].fallback == "the 'pan' first appears in this step (reference_step is null)"
    assert [tuple(z.shape) for z in out.latents] == [(1, 4, 8, 8)] * 3


def test_outside_the_mask_the_final_latent_is_the_reference_latent(baseline, tiny_sd):
    """The 4-channel blend ends with z = m * z_gen + (1 - m) * z_ref, so where m = 0 the result *is* z_ref, bit for
    bit.

    z_ref is frame 0's 8-bit image encoded by the VAE with a posterior sample drawn from frame 1's generator
    (the pipeline's first use of it); m is the mask as diffusers puts it on the latent grid (nearest).
    """
    out = baseline(recipe(), seed=0, masks={1: BOX}, output_type="np", **FAST)
    image = tiny_sd.image_processor.preprocess(as_pil(out.images[0]))  # [1, 3, 64, 64]
    z_ref = (
        retrieve_latents(tiny_sd.vae.encode(image), generator=torch.Generator().manual_seed(1))
        * tiny_sd.vae.config.scaling_factor
    )
    m = blend_mask(box_to_mask(BOX, (64, 64)), (8, 8))  # [8, 8]
    assert 0 < m.sum() < 64
    z = out.latents[1]
    assert torch.equal(z[..., m == 0], z_ref[..., m == 0])
    assert (z[..., m == 1] - z_ref[..., m == 1]).abs().mean() > 0.1  # inside, the text of step 2 was drawn


def test_pixels_far_outside_the_mask_stay_the_reference():
    """In pixels the unmasked latent goes through the VAE decoder, whose receptive field crosses the mask edge
    (and a random tiny VAE reconstructs nothing), so this runs the trained Toy Kitchen model (VAE factor 4,
    16x16 latent) and allows the decoder's error: far from the box the frame is the reference within a few percent."""
    toy = InpaintingBaseline(cooklab.models.toy_sd())
    box = (16, 16, 48, 48)
    steps = ["Place a striped blue pot on the mint table.", "Add whole broccoli to the pot."]
    out = toy(steps, masks=[None, box], guidance_scale=3.0, output_type="np", **FAST)
    diff = np.abs(out.images[1] - out.images[0]).max(axis=-1)  # [64, 64]
    yy, xx = np.mgrid[:64, :64]
    outside_by = np.maximum(
        np.maximum(box[0] - xx, xx - (box[2] - 1)), np.maximum(box[1] - yy, yy - (box[3] - 1))
    )  # px to the box
    far, inside = diff[outside_by > 8].mean(), diff[outside_by <= 0].mean()
    assert far < 0.03 and inside > 5 * far


def test_interior_is_the_container_shrunk_by_its_rim():
    box = box_to_mask(BOX, (64, 64))  # 48 x 40 px
    assert rim_width(box, 0.25) == 10  # ceil(0.25 * min(48, 40))
    assert torch.equal(
        interior_mask(box, 0.25), box_to_mask((18, 18, 46, 38), (64, 64))
    )  # the box shrunk by r on every side
    previous = box
    for rim in (0.05, 0.15, 0.3, 0.45):  # a larger rim: a strictly smaller interior, nested in the last one
        interior = interior_mask(box, rim)
        assert 0 < interior.sum() < previous.sum() and bool((interior <= previous).all())
        previous = interior
    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    disk = ((yy - 32) ** 2 + (xx - 10) ** 2 <= 18**2).float()  # cut by the left edge: the image edge counts as outside
    r = rim_width(disk, 0.15)
    assert r == 5  # ceil(0.15 * min(37 rows, 29 columns))
    interior = interior_mask(disk, 0.15)
    padded = torch.nn.functional.pad(disk, (r, r, r, r))
    for y, x in torch.nonzero(
        interior
    ).tolist():  # every interior pixel has its whole (2r+1)^2 square in the container
        assert bool(padded[y : y + 2 * r + 1, x : x + 2 * r + 1].all())
    assert 0 < interior.sum() < disk.sum() and disk[:, :r].sum() > 0 and interior[:, :r].sum() == 0
    assert interior_mask(box * 0.4, 0.2).sum() == 0  # a soft mask below 0.5 holds no container pixel
    with pytest.raises(ConfigError, match=r"interior_rim=0.5: use a value in \(0, 0.5\)"):
        interior_mask(box, 0.5)


def test_an_empty_interior_falls_back_to_text_to_image_naming_the_fix(baseline, tiny_sd):
    shelf = (8, 24, 56, 32)  # a container 8 px tall: a rim of ceil(0.45 * 8) = 4 px leaves nothing inside
    out = baseline(recipe(), seed=0, masks={1: shelf}, region="interior", interior_rim=0.45, output_type="np", **FAST)
    f = out.frames[1]
    assert f.reference is None and f.mask.extra["rim_px"] == 4 and f.mask.extra["region_mask"].sum() == 0
    assert "covers no cell of the 8x8 latent grid" in f.fallback
    assert "lower interior_rim, or use region='container'" in f.fallback
    expected = tiny_sd(
        STEPS[1], num_inference_steps=4, generator=torch.Generator().manual_seed(1), output_type="np"
    ).images[0]
    assert np.abs(expected - out.images[1]).max() <= 1e-5
    container = baseline(recipe(), seed=0, masks={1: shelf}, region="container", output_type="np", **FAST)
    assert container.frames[1].fallback is None and container.frames[1].reference == 0  # the fix works


def test_missing_masks_fall_back_and_a_provider_is_asked_with_the_reference_image(tiny_sd):
    rd = cooklab.RecipeDiffusion.from_pipe(tiny_sd)
    baseline = InpaintingBaseline(rd)  # shares the RecipeDiffusion's helpers and loaded providers
    assert baseline.recipe_diffusion is rd
    out = baseline(recipe(), **FAST)
    assert out.frames[1].fallback == "no mask: pass masks=[...] or a mask_provider" and out.frames[1].reference is None
    asked = []

    def nothing(image, phrase):
        asked.append((image, phrase))

    out = baseline(recipe(), mask_provider=nothing, **FAST)
    assert out.frames[1].fallback == "the mask provider found no 'bowl' in the reference image (step 1)"
    assert asked == [(out.images[0], "bowl")]  # frame 0's image; step 3's new pan is not looked for

    def bowl(image, phrase):
        return box_to_mask(BOX, (image.height, image.width))

    out = baseline(recipe(), mask_provider=bowl, **FAST)
    assert out.frames[1].reference == 0 and out.frames[1].fallback is None and out.frames[1].mask.source == "function"
    assert out.settings["mask_provider"] == "function"
    degenerate = baseline(recipe(), masks=[None, torch.ones(64, 64), None], **FAST)
    assert degenerate.frames[1].fallback == "degenerate mask (covers 100.0% of the latent grid)"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(region="rim"), r"region='rim': choose 'container' .*'interior' .* or 'outside'"),
        (dict(strength=0.0), r"strength=0.0: use a value in \(0, 1\]"),
        (dict(strength=1.5), r"strength=1.5: use a value in \(0, 1\]"),
        (
            dict(strength=0.2),
            r"strength=0.2 runs no denoising step with num_inference_steps=4: use num_inference_steps >= 5",
        ),
        (dict(region="interior", interior_rim=0.0), r"interior_rim=0.0: use a value in \(0, 0.5\)"),
        (dict(mask_provider="sam"), r"mask_provider='sam': use 'grounded-sam' or pass a provider object"),
        (dict(masks=[BOX]), r"masks has 1 entries for a recipe of 3 steps"),
        (dict(height=60), r"positive multiples of 8"),
    ],
)
def test_bad_arguments_raise_config_errors_that_name_the_fix(baseline, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        baseline(recipe(), **{**FAST, **kwargs})


def test_options_wrong_pipelines_and_traces_are_refused(baseline):
    assert InpaintingOptions().region == "container" and InpaintingOptions(strength=0.5).steps_run(20) == 10
    with pytest.raises(CheckpointError, match="load_sd"):
        InpaintingBaseline(object())
    with pytest.raises(ConfigError, match="no hook points"), cooklab.trace(baseline):
        pass


def test_recipe_diffusion_and_the_baseline_read_masks_alike(tiny_sd):
    """One mask resolution (resolve_container_mask) serves both: the same masks give the same fallbacks and mask
    records."""
    rd = cooklab.RecipeDiffusion.from_pipe(tiny_sd)
    baseline = InpaintingBaseline(rd)
    for masks in (None, [None, torch.ones(64, 64), None], {1: BOX}):
        ours = baseline(recipe(), masks=masks, num_inference_steps=2, progress=False)
        theirs = rd(recipe(), masks=masks, num_inference_steps=2, kv_sharing=False, object_noise=0.999, progress=False)
        assert [f.fallback for f in ours.frames] == [f.fallback for f in theirs.frames]
        assert [f.mask_reference for f in ours.frames] == [f.mask_reference for f in theirs.frames]
        assert [None if f.mask is None else f.mask.box for f in ours.frames] == [
            None if f.mask is None else f.mask.box for f in theirs.frames
        ]
    for output_type in ("latent", "pt"):  # the same kinds of images as RecipeDiffusion gives
        ours = baseline(recipe(), masks={1: BOX}, num_inference_steps=2, output_type=output_type, progress=False)
        theirs = rd(
            recipe(),
            masks={1: BOX},
            num_inference_steps=2,
            kv_sharing=False,
            object_noise=0.999,
            output_type=output_type,
            progress=False,
        )
        assert [tuple(x.shape) for x in ours.images] == [tuple(x.shape) for x in theirs.images]
        assert ours.frames[1].reference == 0


# ---- keep the container, repaint the rest; the 9-channel inpainting U-Net (issue 26, finding 8) ----------------


def reference_latent(tiny_sd, image_np, seed):
    """z_ref: the 8-bit frame encoded by the VAE, the posterior sampled from the inpainted frame's generator."""
    image = tiny_sd.image_processor.preprocess(as_pil(image_np))  # [1, 3, 64, 64]
    latent = retrieve_latents(tiny_sd.vae.encode(image), generator=torch.Generator().manual_seed(seed))
    return latent * tiny_sd.vae.config.scaling_factor  # [1, 4, 8, 8]


@torch.no_grad()
def test_outside_keeps_the_container_latents_and_repaints_the_rest(baseline, tiny_sd):
    """region="outside": R = 1 - B. Latent blending ends with z = m z_gen + (1 - m) z_ref, m = nearest(R), so
    on the latent cells of the container (m = 0) the final latent IS the reference latent, bit for bit, and the
    cells outside it were drawn anew -- the mirror image of region="container"."""
    out = baseline(recipe(), seed=0, masks={1: BOX}, region="outside", output_type="np", **FAST)
    box = box_to_mask(BOX, (64, 64))
    f = out.frames[1]
    assert f.reference == 0 and f.fallback is None and f.mask.extra["region"] == "outside"
    assert torch.equal(f.mask.extra["region_mask"], 1 - box)  # everything but the container
    z_ref, z = reference_latent(tiny_sd, out.images[0], 1), out.latents[1]
    container = blend_mask(box, (8, 8)) == 1  # [8, 8] the container's latent cells (nearest, as diffusers)
    assert 0 < container.sum() < 64
    assert torch.equal(z[..., container], z_ref[..., container])
    assert (z[..., ~container] - z_ref[..., ~container]).abs().mean() > 0.1  # the rest was repainted
    assert out.settings["region"] == "outside" and out.settings["inpainting"] == "latent_blend"


def test_inpaint_outside_is_an_evaluation_method(tiny_sd):
    from types import SimpleNamespace

    from cooklab.evaluation.methods import METHODS, method

    def bowl(image, phrase):
        return box_to_mask(BOX, (image.height, image.width))

    m = method("inpaint_outside", {"strength": 0.75})
    assert m.backbone == "sd" and METHODS["inpaint_container"].params == m.params
    settings = SimpleNamespace(num_inference_steps=4, height=64, width=64, guidance=7.5)
    rd = cooklab.RecipeDiffusion.from_pipe(tiny_sd)
    images = m.run({"sd": rd}, recipe(), 2, settings, {"strength": 0.75}, bowl)
    direct = InpaintingBaseline(rd)(recipe(), seed=2, region="outside", strength=0.75, mask_provider=bowl, **FAST)
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(images, direct.images))


def nine_channel_unet(tiny_sd, **changes):
    """A tiny inpainting U-Net: the tiny SD U-Net's config with 9 input channels (random weights, seeded)."""
    from diffusers import UNet2DConditionModel

    torch.manual_seed(7)
    return UNet2DConditionModel.from_config({**tiny_sd.unet.config, "in_channels": 9, **changes}).eval()


def channels_seen(unet):
    seen = []
    handle = unet.register_forward_pre_hook(lambda module, args: seen.append(args[0].shape[1]))
    return seen, handle


@torch.no_grad()
def test_a_nine_channel_inpainting_unet_draws_the_masked_frames(tiny_sd, tmp_path):
    """With inpaint_unet, the masked frame is stock StableDiffusionInpaintPipeline on that U-Net, which reads
    9 channels (latents, mask, masked-image latents) at every step; frames 0 and 3 stay text-to-image on the
    pipeline's 4-channel U-Net. The same U-Net saved to a folder loads by path (from_pretrained) and gives the
    same frames."""
    unet = nine_channel_unet(tiny_sd)
    baseline = InpaintingBaseline(tiny_sd, inpaint_unet=unet)
    inpaint_seen, h1 = channels_seen(unet)
    base_seen, h2 = channels_seen(tiny_sd.unet)
    try:
        out = baseline(recipe(), seed=5, masks={1: BOX}, output_type="np", **FAST)
    finally:
        h1.remove(), h2.remove()
    assert inpaint_seen == [9] * 4  # one call per step of frame 1 (guidance batched)
    assert base_seen == [4] * 8  # frames 0 and 2, text-to-image
    assert out.settings["inpainting"] == "inpainting_unet" and out.settings["inpaint_unet"] == "in memory"
    assert out.frames[1].reference == 0
    stock = StableDiffusionInpaintPipeline(**{**tiny_sd.components, "unet": unet}, requires_safety_checker=False)
    stock.set_progress_bar_config(disable=True)
    expected = stock(
        STEPS[1],
        image=as_pil(out.images[0]),
        mask_image=box_to_mask(BOX, (64, 64))[None, None],
        num_inference_steps=4,
        generator=torch.Generator().manual_seed(6),
        output_type="np",
    ).images[0]
    assert np.abs(expected - out.images[1]).max() <= 1e-5
    blended = InpaintingBaseline(tiny_sd)(recipe(), seed=5, masks={1: BOX}, output_type="np", **FAST)
    assert np.abs(blended.images[1] - out.images[1]).max() > 0.05  # another network drew frame 1
    unet.save_pretrained(tmp_path / "unet")
    loaded = InpaintingBaseline(tiny_sd, inpaint_unet=str(tmp_path))
    again = loaded(recipe(), seed=5, masks={1: BOX}, output_type="np", **FAST)
    assert again.settings["inpaint_unet"] == str(tmp_path)
    assert all(np.array_equal(a, b) for a, b in zip(again.images, out.images))


def test_an_inpainting_checkpoint_of_the_wrong_kind_is_refused_naming_the_fix(tiny_sd, tmp_path, monkeypatch):
    with pytest.raises(CheckpointError, match=r"takes 4 input channels, an inpainting U-Net 9 .* inpaint_unet=None"):
        InpaintingBaseline(tiny_sd, inpaint_unet=tiny_sd.unet)  # a text-to-image U-Net
    with pytest.raises(CheckpointError, match="reads text of width 48, the pipeline's text encoder gives 32"):
        InpaintingBaseline(tiny_sd, inpaint_unet=nine_channel_unet(tiny_sd, cross_attention_dim=48))
    with pytest.raises(CheckpointError, match="no U-Net there"):
        InpaintingBaseline(tiny_sd, inpaint_unet=str(tmp_path / "missing"))
    nine_channel_unet(tiny_sd).save_config(tmp_path / "broken")  # a config and no weights
    with pytest.raises(CheckpointError, match="cannot load the U-Net there"):
        InpaintingBaseline(tiny_sd, inpaint_unet=str(tmp_path / "broken"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError, match="stable-diffusion-2-inpainting.*Fix:"):
        InpaintingBaseline(tiny_sd, inpaint_unet="stabilityai/stable-diffusion-2-inpainting")
    nine = StableDiffusionPipeline(**{**tiny_sd.components, "unet": nine_channel_unet(tiny_sd)})
    with pytest.raises(ConfigError, match="pass the inpainting one as inpaint_unet="):
        InpaintingBaseline(nine)(recipe(), **FAST)
