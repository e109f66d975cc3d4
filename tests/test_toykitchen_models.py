"""The shipped Toy Kitchen weights: loaded offline, run through both pipelines on the CPU, checked by the oracle.

Bounds are loose (a few images, few steps) but random weights fail them: each check is also run on
the tiny random models and must fail there.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors import safe_open

import cooklab
from cooklab.models.toy import T5_MAX_LENGTH, TOY_DIR
from cooklab.toykitchen.captions import CONTAINER_WORDS, PLURAL
from cooklab.toykitchen.dataset import HELD_OUT
from cooklab.toykitchen.oracle import OracleMaskProvider, check_frame, container_colour, ingredient_present
from cooklab.toykitchen.recipes import random_toy_recipe

pytestmark = pytest.mark.slow  # generation with the trained models; make test-fast leaves it out

CAPTIONS = sorted(HELD_OUT)[::2][:8]  # 8 held-out (colour, container, ingredient) triples


def _caption(colour, container, ingredient):
    return f"a {colour} {CONTAINER_WORDS[container]} with {PLURAL[ingredient]}"


@pytest.fixture(scope="module")
def toy_sd():
    return cooklab.models.toy_sd()


@pytest.fixture(scope="module")
def toy_flux():
    return cooklab.models.toy_flux()


def test_shipped_weights_are_float16_and_small():
    """The model sets and the grounding pair are float16; the LoRA adapter stays as trained (float32, 1 MB); all of it
    within the ~50 MB budget."""
    files = list(TOY_DIR.glob("*/*/*.safetensors"))
    assert {f.parent.parent.name for f in files} == {"sd", "flux", "lora", "grounding"}
    files += list((TOY_DIR / "autoencoder").glob("*.safetensors"))
    assert sum(f.stat().st_size for f in TOY_DIR.rglob("*.safetensors")) < 50e6
    for f in files:
        with safe_open(f, "pt") as st:
            dtypes = {st.get_slice(k).get_dtype() for k in st.keys()}
        assert dtypes == ({"F32"} if f.parent.parent.name == "lora" else {"F16"}), f  # the autoencoder: F16
        assert f.parent.parent.name != "lora" or f.stat().st_size < 2e6


def test_autoencoder_keeps_the_food():
    """The ceiling a denoiser works under: the oracle on the shipped autoencoder's reconstructions of the 200 held-out
    scenes.

    The autoencoder the model sets were first trained with (``data/toykitchen/sd/vae``) reads 171 of 200
    (rice 30/50, onion 32/40); ``data/toykitchen/autoencoder`` must keep >= 98 %.
    """
    from cooklab.toykitchen.evaluate import autoencoder_ceiling

    result = autoencoder_ceiling(cooklab.models.toy_autoencoder())
    assert result["renders"]["colour_and_ingredient"] == 200  # the oracle reads every render right
    assert result["fractions"]["colour_and_ingredient"] >= 0.98, (result["counts"], result["by_ingredient"])


def _scores(images, triples):
    colour = [container_colour(im)[0] == c for im, (c, _, _) in zip(images, triples)]
    food = [ingredient_present(im, i) for im, (_, _, i) in zip(images, triples)]
    return np.mean(colour), np.mean(food)


def test_toy_sd_draws_what_held_out_captions_name(toy_sd):
    prompts = [_caption(*t) for t in CAPTIONS]
    images = toy_sd(
        prompts, num_inference_steps=20, guidance_scale=3.0, generator=torch.Generator().manual_seed(0)
    ).images
    colour, food = _scores(images, CAPTIONS)
    assert colour >= 0.75 and food >= 0.5, (colour, food)
    noise = cooklab.models.tiny_sd()(prompts, num_inference_steps=4, generator=torch.Generator().manual_seed(0)).images
    assert _scores(noise, CAPTIONS)[0] < 0.5  # the bound means something


def test_toy_flux_draws_what_held_out_captions_name(toy_flux):
    prompts = [_caption(*t) for t in CAPTIONS]
    images = toy_flux(
        prompts,
        num_inference_steps=20,
        true_cfg_scale=3.0,
        negative_prompt=[""] * len(prompts),
        max_sequence_length=T5_MAX_LENGTH,
        height=64,
        width=64,
        generator=torch.Generator().manual_seed(0),
    ).images
    colour, food = _scores(images, CAPTIONS)
    assert colour >= 0.75 and food >= 0.5, (colour, food)
    noise = cooklab.models.tiny_flux()(
        prompts, num_inference_steps=4, max_sequence_length=64, generator=torch.Generator().manual_seed(0)
    ).images
    assert _scores(noise, CAPTIONS)[0] < 0.5


def test_recipe_diffusion_in_the_toy_kitchen(toy_sd):
    toy = random_toy_recipe(3)
    pipe = cooklab.RecipeDiffusion.from_pipe(toy_sd)
    out = pipe(
        toy.to_recipe(),
        variant="region_aware_kv",
        num_inference_steps=20,
        guidance_scale=3.0,
        mask_provider=OracleMaskProvider(),
        progress=False,
    )
    assert len(out.images) == len(toy)
    first = check_frame(out.images[0], toy.expectations[0])
    assert first.colour_ok  # the first step names the colour
    for info in out.frames[1:]:  # the oracle found the container in every reference frame: no fallback
        assert info.fallback is None and info.region_aware and info.mask.source == "oracle"


def test_cookanything_in_the_toy_kitchen(toy_flux):
    toy = random_toy_recipe(3)
    pipe = cooklab.CookAnything.from_pipe(toy_flux)
    out = pipe(
        toy.to_recipe(),
        height=64,
        width=64,
        num_inference_steps=20,
        true_cfg_scale=3.0,
        max_sequence_length=T5_MAX_LENGTH,
        progress=False,
    )
    assert len(out.images) == len(toy) and out.canvas.size == (64, 64 * len(toy))
    assert check_frame(out.images[0], toy.expectations[0]).colour_ok
