"""World v3's single scenes (``cooklab.toykitchen.scenes_v3``) and the worlds' scene samplers and captions:
v2 renders and captions as before, v3 draws cooked food that kept its cut and names its whole look."""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import torch

from cooklab.toykitchen import oracle as O
from cooklab.toykitchen.captions import PLURAL, STATE_WORDS, ingredient_phrase, random_caption
from cooklab.toykitchen.clip_model import caption_pair
from cooklab.toykitchen.dataset import HELD_OUT, holds_held_out, render_dataset
from cooklab.toykitchen.recipes_v3 import V3_WORDS
from cooklab.toykitchen.scenes_v3 import KEPT_CUT_SHARE, random_caption_v3, random_scene_v3
from cooklab.toykitchen.training_captions import sample_caption_pairs, sample_captions
from cooklab.toykitchen.world import ALLOWED_STATES, Ingredient, random_scene, render
from cooklab.toykitchen.worlds import get_world

FRIED = STATE_WORDS["cooked"]


def _kept(scene) -> list[Ingredient]:
    return [i for i in scene.ingredients if i.cut is not None]


def test_v2_renders_and_captions_as_before_the_switch():
    """The v2 world's training set is the draws of the code before it (``random_scene`` from the chunk's seeded
    generator, one render each), and its captions are ``random_caption``'s with the old food phrase."""
    data = render_dataset(30, seed=5, size=32, chunk=20, world=get_world("v2"))
    default = render_dataset(30, seed=5, size=32, chunk=20)
    scenes = []
    for chunk, count in ((0, 20), (1, 10)):
        rng = np.random.default_rng([5, chunk])
        scenes += [random_scene(rng, exclude=HELD_OUT) for _ in range(count)]
    assert data.scenes == scenes == default.scenes
    expected = np.stack([np.asarray(render(s, 32).image) for s in scenes])
    assert np.array_equal(data.images, expected) and np.array_equal(default.images, expected)
    idx = torch.arange(30).repeat(20)
    texts = sample_captions(data, idx, np.random.default_rng(1), 0.1)
    rng, before = np.random.default_rng(1), []
    for i in idx.tolist():  # the body of sample_captions before the worlds carried their captions
        text = "" if rng.random() < 0.1 else random_caption(data.scenes[i], rng, phrase=ingredient_phrase)
        before.append(text[:1].upper() + text[1:] + "." if text and rng.random() < 0.5 else text)
    assert texts == before
    assert sample_captions(default, idx, np.random.default_rng(1), 0.1) == before


def test_v3_scenes_keep_cuts_at_the_stated_share_and_never_a_held_out_triple():
    rng = np.random.default_rng(0)
    scenes = [random_scene_v3(rng, exclude=HELD_OUT) for _ in range(6000)]
    cooked = [i for s in scenes for i in s.ingredients if i.state == "cooked"]
    kept = [i for i in cooked if i.cut is not None]
    assert len(cooked) > 1000
    assert abs(len(kept) / len(cooked) - KEPT_CUT_SHARE) < 0.05
    assert {i.cut for i in kept} == {"whole", "diced", "sliced", "mixed"}  # every cut a fry can keep
    assert all(i.cut in ALLOWED_STATES[i.name] for i in kept)
    assert not any(holds_held_out(s) for s in scenes)
    assert not any(
        i.cut is not None for s in (random_scene(np.random.default_rng(0)) for _ in range(300)) for i in s.ingredients
    )  # v2 never


def test_the_v3_training_set_shows_the_kept_cut_and_the_oracle_reads_it_back():
    """Each cut-kept ingredient of the v3 training set reads cooked, and its cut reads as the same food raw in that
    cut reads (the renderer draws the cut's pieces in the cooked shade); most read the cut that was drawn."""
    data = render_dataset(400, seed=3, world=get_world("v3"))
    assert data.caption is random_caption_v3 and not any(holds_held_out(s) for s in data.scenes)
    hits = total = 0
    for image, scene in zip(data.images, data.scenes):
        if not _kept(scene):
            continue
        raw = replace(scene, ingredients=tuple(Ingredient(i.name, i.cut or i.state) for i in scene.ingredients))
        cooked_reading, raw_reading = O.read(image), O.read(render(raw).image)
        for ing in _kept(scene):
            assert O.ingredient_state(cooked_reading, ing.name) == "cooked"
            assert O.ingredient_cut(cooked_reading, ing.name) == O.ingredient_state(raw_reading, ing.name)
            hits += O.ingredient_cut(cooked_reading, ing.name) == ing.cut
            total += 1
    assert total >= 30
    assert hits / total >= 0.75


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


def test_v3_captions_name_the_kept_cut_whenever_they_name_the_state():
    rng = np.random.default_rng(1)
    named_look = named_bare = 0
    for _ in range(3000):
        scene = random_scene_v3(rng, exclude=HELD_OUT)
        text = random_caption_v3(scene, rng)
        assert set(_words(text)) <= set(V3_WORDS), text
        for ing in _kept(scene):
            assert f"{FRIED} {PLURAL[ing.name]}" not in text, text  # the state without the cut
            named_look += f"{FRIED} {STATE_WORDS[ing.cut]} {PLURAL[ing.name]}" in text
            named_bare += PLURAL[ing.name] in _words(text) and f"{STATE_WORDS[ing.cut]} {PLURAL[ing.name]}" not in text
    assert named_look >= 200 and named_bare >= 20  # the look named, and sometimes the food alone (state left out)


def test_v3_captions_vary_as_the_old_captions_do():
    """On a scene without kept cuts a v3 caption is the old caption drawn with the same generator: the same
    templates, attributes left out at the same rates."""
    for seed in range(300):
        scene = random_scene(np.random.default_rng(seed), exclude=HELD_OUT)
        assert random_caption_v3(scene, np.random.default_rng(seed)) == random_caption(
            scene, np.random.default_rng(seed)
        )


def test_the_clip_stage_pairs_are_drawn_by_the_worlds_caption():
    """v3 training data: the CLIP stage's positives name the kept cut like every v3 caption; v2: as before."""
    v3 = render_dataset(300, seed=4, size=16, world=get_world("v3"))
    idx = torch.arange(300).repeat(4)
    positives, negatives = sample_caption_pairs(v3, idx, np.random.default_rng(0))
    named = 0
    for i, text, negative in zip(idx.tolist(), positives, negatives):
        for ing in _kept(v3.scenes[i]):  # the negative keeps all food but one, with its look
            assert f"{FRIED} {PLURAL[ing.name]}" not in text.lower() + negative.lower(), (text, negative)
            named += f"{FRIED} {STATE_WORDS[ing.cut]} {PLURAL[ing.name]}" in text.lower()
    assert named >= 20
    v2 = render_dataset(40, seed=4, size=16)
    rng, before = np.random.default_rng(0), []
    for i in range(40):
        pos, neg = caption_pair(v2.scenes[i], rng)
        before += [
            (pos[:1].upper() + pos[1:] + ".", neg[:1].upper() + neg[1:] + ".") if rng.random() < 0.5 else (pos, neg)
        ]
    assert list(zip(*sample_caption_pairs(v2, torch.arange(40), np.random.default_rng(0)))) == before
