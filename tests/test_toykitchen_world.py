"""The Toy Kitchen world: renderer, captions, toy recipes, dataset split, and the training script end to end."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from cooklab.errors import ConfigError
from cooklab.toykitchen import models as toy
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
    """The training script end to end at toy scale: autoencoder, SD set, Flux set, CLIP, saved and loaded like the shipped ones."""
    import torch

    from cooklab.toykitchen.train import train

    train(tmp_path, "smoke", device="cpu")
    for stage in ("autoencoder", "sd", "flux", "clip"):
        log = json.loads((tmp_path / f"{stage}_training.json").read_text())
        assert log["steps_done"] == 2 and len(log["losses"]) == 1 and np.isfinite(log["losses"][0][1])
    sd, flux = toy.toy_sd(tmp_path / "sd"), toy.toy_flux(tmp_path / "flux")
    assert sd.unet.dtype == torch.float32  # shipped in float16, loaded in float32 for the CPU
    assert sd.vae.config.scaling_factor == flux.vae.config.scaling_factor
    image = sd("a blue bowl", num_inference_steps=2, generator=torch.Generator().manual_seed(0)).images[0]
    assert image.size == (64, 64)
    image = flux("a blue bowl", num_inference_steps=2, max_sequence_length=toy.T5_MAX_LENGTH,
                 generator=torch.Generator().manual_seed(0)).images[0]
    assert image.size == (64, 64)
    clip = toy.toy_clip(tmp_path / "clip")
    assert clip.model.dtype == torch.float32 and clip.text_features(["a blue bowl"])[0].shape == (1, 64)


def test_missing_weights_name_the_fix(tmp_path):
    from cooklab.errors import CheckpointError

    with pytest.raises(CheckpointError, match="cooklab toykitchen train"):
        toy.toy_sd(tmp_path / "nothing")


def test_stop_after_ends_a_stage_early(tmp_path):
    from cooklab.toykitchen.train import train

    train(tmp_path, "smoke", stages=("autoencoder",), device="cpu", vae_steps=5, stop_after=3)
    log = json.loads((tmp_path / "autoencoder_training.json").read_text())
    assert log["steps_done"] == 3 and log["config"]["vae_steps"] == 5
