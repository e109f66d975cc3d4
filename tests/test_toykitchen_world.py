"""The Toy Kitchen world: renderer, captions, toy recipes, dataset split, and the training script end to end."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from cooklab.errors import CheckpointError, ConfigError
from cooklab.models import toy as shipped
from cooklab.toykitchen import architectures as toy
from cooklab.toykitchen.captions import WORDS, full_caption, random_caption
from cooklab.toykitchen.dataset import HELD_OUT, render_dataset
from cooklab.toykitchen.recipes import random_toy_recipe
from cooklab.toykitchen.world import (
    CONTAINER_COLOURS,
    INGREDIENTS,
    Ingredient,
    Scene,
    container_shades,
    cooked_colour,
    palette,
    palette_distances,
    random_scene,
    render,
)
from cooklab.word_tokenizers import tiny_clip_tokenizer


def _scenes(n, seed=0):
    rng = np.random.default_rng(seed)
    return [random_scene(rng) for _ in range(n)]


def test_render_is_deterministic_and_exact_palette():
    for scene in _scenes(30):
        a, b = render(scene), render(scene)
        assert np.array_equal(np.asarray(a.image), np.asarray(b.image))
        assert np.array_equal(a.labels, b.labels)
        colours = {tuple(c) for c in np.asarray(a.image).reshape(-1, 3)}
        assert colours <= set(palette().values())  # no anti-aliasing: every pixel is a palette colour


def test_labels_agree_with_pixels():
    """Each pixel's label names the object whose palette colour it has."""
    for scene in _scenes(30, seed=1):
        r = render(scene)
        px = np.asarray(r.image).reshape(-1, 3)
        labels = r.labels.reshape(-1)
        shades = set(container_shades(scene.colour).values())
        for i, name in enumerate(r.names):
            got = {tuple(c) for c in px[labels == i]}
            if name == "container":
                assert got <= shades
            elif name != "table":
                ing = scene.ingredient(name)
                assert got == {cooked_colour(name) if ing.state == "cooked" else INGREDIENTS[name]}
        for ing in scene.ingredients:
            assert r.mask(ing.name).any(), f"{ing} drawn nowhere in {scene}"
        assert (r.mask("container") >= (r.labels >= 2)).all()  # food lies inside the container


def test_render_scales_and_rejects_bad_sizes():
    scene = _scenes(1)[0]
    big = render(scene, 128)
    assert big.image.size == (128, 128) and big.labels.shape == (128, 128)
    assert abs(big.mask("container").mean() - render(scene).mask("container").mean()) < 0.02
    for size in (8, 50):
        with pytest.raises(ConfigError, match="multiple of 16"):
            render(scene, size)


def test_bad_scenes_name_the_fix():
    with pytest.raises(ConfigError, match="choose one of"):
        Scene(colour="mauve")
    with pytest.raises(ConfigError, match="cannot be"):
        Ingredient("rice", "sliced")
    with pytest.raises(ConfigError, match="twice"):
        Scene(ingredients=(Ingredient("egg"), Ingredient("egg", "cooked")))


def test_palette_keeps_objects_apart():
    closest, a, b = palette_distances()[0]
    assert closest > 40, (a, b)
    for colour in CONTAINER_COLOURS:  # container colours are far from every ingredient colour, raw or cooked
        for shade in container_shades(colour).values():
            for name in INGREDIENTS:
                for c in (INGREDIENTS[name], cooked_colour(name)):
                    assert np.linalg.norm(np.subtract(shade, c)) > 45, (colour, name)


def test_captions_use_only_the_world_vocabulary_and_each_word_is_one_token():
    rng = np.random.default_rng(0)
    tok = toy.clip_tokenizer()
    t5 = toy.t5_tokenizer()
    for scene in _scenes(200):
        for text in (random_caption(scene, rng), full_caption(scene)):
            words = re.findall(r"[a-z]+", text.lower())
            assert set(words) <= set(WORDS), text
            assert len(tok.tokenize(text)) == len(re.findall(r"[a-z]+|[^a-z\s]", text.lower()))
            assert "<unk>" not in t5.tokenize(text)
    assert len(tok) < len(tiny_clip_tokenizer())  # the world's vocabulary, not the general cooking one


def test_captions_vary():
    scene = _scenes(1, seed=3)[0]
    rng = np.random.default_rng(0)
    assert len({random_caption(scene, rng) for _ in range(50)}) > 10


def test_toy_recipes_follow_their_actions():
    for seed in range(40):
        r = random_toy_recipe(seed, n_steps=4 + seed % 4)
        assert len(r) == len(r.scenes) == len(r.expectations) == 4 + seed % 4
        first = r.scenes[0]
        assert not first.ingredients and r.expectations[0].ingredient is None
        assert first.colour in r.texts[0].lower() and all(first.colour not in t.lower() for t in r.texts[1:])
        for scene, exp in zip(r.scenes[1:], r.expectations[1:]):
            assert (scene.container, scene.colour, scene.position) == (first.container, first.colour, first.position)
            assert scene.ingredient(exp.ingredient) == Ingredient(exp.ingredient, exp.state)
        recipe = r.to_recipe()
        assert recipe.texts == list(r.texts)
        assert recipe.reference_indices() == [None, *range(len(r) - 1)]
        assert random_toy_recipe(seed, 4 + seed % 4) == r  # deterministic
    with pytest.raises(ValueError, match="2 to 8"):
        random_toy_recipe(0, 1)


def test_dataset_excludes_held_out_triples_and_does_not_depend_on_workers():
    data = render_dataset(300, seed=5, chunk=100)
    assert data.images.shape == (300, 64, 64, 3) and data.images.dtype == np.uint8
    for s in data.scenes:
        assert not any((s.colour, s.container, i.name) in HELD_OUT for i in s.ingredients)
    again = render_dataset(300, seed=5, chunk=100, workers=2)
    assert np.array_equal(again.images, data.images)
    assert len(HELD_OUT) == 20


def test_training_smoke_run_produces_loadable_pipelines(tmp_path):
    """The training script end to end at toy scale: autoencoder, SD set, Flux set, CLIP, saved and loaded like the
    shipped ones."""
    import torch

    from cooklab.toykitchen.train import train

    train(tmp_path, "smoke", device="cpu")
    for stage in ("autoencoder", "sd", "flux", "clip"):
        log = json.loads((tmp_path / f"{stage}_training.json").read_text())
        assert log["steps_done"] == 2 and len(log["losses"]) == 1 and np.isfinite(log["losses"][0][1])
    sd, flux = shipped.toy_sd(tmp_path / "sd"), shipped.toy_flux(tmp_path / "flux")
    assert sd.unet.dtype == torch.float32  # shipped in float16, loaded in float32 for the CPU
    assert sd.vae.config.scaling_factor == flux.vae.config.scaling_factor
    image = sd("a blue bowl", num_inference_steps=2, generator=torch.Generator().manual_seed(0)).images[0]
    assert image.size == (64, 64)
    image = flux(
        "a blue bowl",
        num_inference_steps=2,
        max_sequence_length=shipped.T5_MAX_LENGTH,
        generator=torch.Generator().manual_seed(0),
    ).images[0]
    assert image.size == (64, 64)
    clip = shipped.toy_clip(tmp_path / "clip")
    assert clip.model.dtype == torch.float32 and clip.text_features(["a blue bowl"])[0].shape == (1, 64)


def test_dataset_food_masks_are_the_renders_ingredient_pixels():
    data = render_dataset(6, seed=3)
    assert data.food.shape == (6, 64, 64) and data.food.dtype == bool
    for scene, food in zip(data.scenes, data.food):
        assert np.array_equal(food, render(scene).labels >= 2)
    assert data.food.any()


def test_food_weighted_mse_is_the_mse_at_weight_one_and_counts_food_more():
    import torch
    import torch.nn.functional as F

    from cooklab.toykitchen.autoencoder_training import food_weighted_mse

    g = torch.Generator().manual_seed(0)
    x, recon = torch.randn(2, 3, 8, 8, generator=g), torch.randn(2, 3, 8, 8, generator=g)
    food = torch.rand(2, 8, 8, generator=g) < 0.2
    assert torch.allclose(food_weighted_mse(recon, x, food, 1.0), F.mse_loss(recon, x))
    err = ((recon - x) ** 2).mean(1)  # [2, 8, 8] per-pixel error
    w = torch.where(food, 10.0, 1.0)
    assert torch.allclose(food_weighted_mse(recon, x, food, 10.0), (w * err).sum() / w.sum())


def test_widen_latent_decodes_exactly_like_the_original():
    """New latent channels start unread: the widened decoder gives the original's pictures bit for bit."""
    import torch

    from cooklab.toykitchen.autoencoder_training import widen_latent

    torch.manual_seed(0)
    vae = toy.build_vae(4).eval()
    wide = widen_latent(vae, 16).eval()
    assert wide.config.latent_channels == 16 and widen_latent(vae, 4) is vae
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        post, wide_post = vae.encode(x).latent_dist, wide.encode(x).latent_dist
        assert torch.equal(wide_post.mean[:, :4], post.mean) and torch.equal(wide_post.logvar[:, :4], post.logvar)
        assert torch.allclose(wide_post.std[:, 4:], torch.tensor(0.05), rtol=0.2)  # new channels: bias -6, weights 0
        z = torch.cat([post.mean, torch.randn(2, 12, 16, 16)], dim=1)  # whatever the new channels hold
        assert torch.allclose(
            wide.decode(z).sample, vae.decode(post.mean).sample, atol=1e-5
        )  # zero weights: only the sum order differs (measured 8e-6)
    with pytest.raises(ValueError, match="only be widened"):
        widen_latent(wide, 8)


def test_load_widened_denoisers_start_as_they_were():
    """A U-Net and a Flux transformer continued on 8 latent channels: the old channels' prediction unchanged, the new
    ones 0."""
    import torch
    from diffusers import FluxPipeline

    from cooklab.toykitchen.diffusion_training import load_widened

    torch.manual_seed(0)
    old_sd, new_sd = toy.build_sd(toy.build_vae(4), 1.0), toy.build_sd(toy.build_vae(8), 1.0)
    widened = load_widened(new_sd.unet, old_sd.unet.state_dict())
    assert sorted(widened) == ["conv_in.weight", "conv_out.bias", "conv_out.weight"]
    z, cond = torch.randn(1, 8, 16, 16), torch.randn(1, 32, 128)
    with torch.no_grad():
        wide, narrow = new_sd.unet(z, 10, cond).sample, old_sd.unet(z[:, :4], 10, cond).sample
    assert torch.allclose(wide[:, :4], narrow, atol=1e-5) and torch.equal(wide[:, 4:], torch.zeros_like(wide[:, 4:]))

    old_flux, new_flux = toy.build_flux(toy.build_vae(4), 1.0, 0.0), toy.build_flux(toy.build_vae(8), 1.0, 0.0)
    assert sorted(load_widened(new_flux.transformer, old_flux.transformer.state_dict())) == [
        "proj_out.bias",
        "proj_out.weight",
        "x_embedder.weight",
    ]
    ids = FluxPipeline._prepare_latent_image_ids(1, 8, 8, "cpu", torch.float32)  # [64, 3]
    common = dict(
        timestep=torch.tensor([0.5]),
        guidance=None,
        pooled_projections=torch.randn(1, 128),
        encoder_hidden_states=torch.randn(1, 4, 128),
        txt_ids=torch.zeros(4, 3),
        img_ids=ids,
        return_dict=False,
    )
    with torch.no_grad():
        wide = new_flux.transformer(FluxPipeline._pack_latents(z, 1, 8, 16, 16), **common)[0]  # [1, 64, 32]
        narrow = old_flux.transformer(FluxPipeline._pack_latents(z[:, :4], 1, 4, 16, 16), **common)[0]  # [1, 64, 16]
    assert torch.allclose(wide[..., :16], narrow, atol=1e-5) and torch.equal(
        wide[..., 16:], torch.zeros_like(wide[..., 16:])
    )
    with pytest.raises(ValueError, match="does not fit"):
        load_widened(old_sd.unet, new_sd.unet.state_dict())


def test_model_sets_follow_the_autoencoders_latent_channels():
    vae = toy.build_vae(8)
    sd, flux = toy.build_sd(vae, 1.0), toy.build_flux(toy.build_vae(8), 1.0, 0.0)
    assert sd.unet.config.in_channels == sd.unet.config.out_channels == 8
    assert flux.transformer.config.in_channels == 32  # 2 x 2 patches of 8 channels


def test_autoencoder_stage_continues_a_given_autoencoder_with_more_channels(tmp_path):
    from cooklab.toykitchen.train import train

    first = tmp_path / "first"
    train(first, "smoke", stages=("autoencoder",), device="cpu")
    vae = shipped.toy_autoencoder(first / "autoencoder")
    assert vae.config.latent_channels == 4 and vae.config.scaling_factor > 0 and vae.config.shift_factor is not None
    second = tmp_path / "second"
    train(
        second,
        "smoke",
        stages=("autoencoder",),
        device="cpu",
        vae_init=str(first / "autoencoder"),
        vae_latent_channels=8,
        vae_food_weight=10.0,
        vae_batch=2,
    )
    log = json.loads((second / "autoencoder_training.json").read_text())
    assert log["config"]["vae_init"] == str(first / "autoencoder") and log["config"]["vae_batch"] == 2
    assert shipped.toy_autoencoder(second / "autoencoder").config.latent_channels == 8
    train(first, "smoke", stages=("sd", "flux"), device="cpu")
    train(
        second, "smoke", stages=("sd", "flux"), device="cpu", init_from=str(first)
    )  # continued, widened to 8 channels
    for stage, part, name in (("sd", "unet", "conv_in.weight"), ("flux", "transformer", "x_embedder.weight")):
        assert name in json.loads((second / f"{stage}_training.json").read_text())["continued"][part]
    assert shipped.toy_sd(second / "sd").unet.config.in_channels == 8
    with pytest.raises(CheckpointError, match="--stages autoencoder"):
        shipped.toy_autoencoder(tmp_path / "nothing")


def test_missing_weights_name_the_fix(tmp_path):
    with pytest.raises(CheckpointError, match="cooklab toykitchen train"):
        shipped.toy_sd(tmp_path / "nothing")


def test_stop_after_ends_a_stage_early(tmp_path):
    from cooklab.toykitchen.train import train

    train(tmp_path, "smoke", stages=("autoencoder",), device="cpu", vae_steps=5, stop_after=3)
    log = json.loads((tmp_path / "autoencoder_training.json").read_text())
    assert log["steps_done"] == 3 and log["config"]["vae_steps"] == 5
