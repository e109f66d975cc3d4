"""The v3 training switches of the Toy Kitchen sets: worlds and vocabularies, context captions, panel pictures,
resume (``cooklab.toykitchen.worlds``, ``context_captions``, ``panels``, ``training_loop.resume_point``)."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch

from cooklab.cookanything.flow_matching import pack_images
from cooklab.errors import ConfigError
from cooklab.models import toy as shipped
from cooklab.toykitchen import architectures as toy
from cooklab.toykitchen import diffusion_training
from cooklab.toykitchen.captions import WORDS
from cooklab.toykitchen.context_captions import CONTEXT_FIRST_SEED, ContextMix, FrontFit, context_pool
from cooklab.toykitchen.dataset import HELD_OUT, ToyDataset, holds_held_out, render_dataset
from cooklab.toykitchen.panels import PANEL_WORDS, panel_batch, panel_canvas, panel_caption
from cooklab.toykitchen.recipes import random_toy_recipe
from cooklab.toykitchen.training_captions import sample_captions
from cooklab.toykitchen.training_config import PRESETS
from cooklab.toykitchen.world import render
from cooklab.toykitchen.worlds import WORLDS, World, get_world, vocabulary


def _token_count(tokenizer, text: str) -> int:
    return len(tokenizer(text, truncation=False).input_ids)


@pytest.mark.parametrize("make", [toy.clip_tokenizer, toy.t5_tokenizer], ids=["clip", "t5"])
def test_front_fit_keeps_the_longest_run_of_last_sentences_that_fits(make):
    """Against the tokenizer's own count of the joined text: the last sentence is always there, the text fits the
    encoder with its special tokens, and one more sentence from the front would not."""
    tokenizer = make()
    fit, limit, cut = FrontFit(tokenizer), tokenizer.model_max_length, 0
    for seed in range(40):
        sentences = random_toy_recipe(seed, 8).texts
        text = fit(sentences)
        start = len(sentences) - len(text.split(". ")) + (0 if text.endswith(".") else 1)
        assert text == " ".join(sentences[start:]) and text.endswith(sentences[-1])
        assert _token_count(tokenizer, text) <= limit, text
        if start > 0:
            cut += 1
            assert _token_count(tokenizer, " ".join(sentences[start - 1 :])) > limit
    assert cut >= 10  # the recipes are long enough that the front is cut often


def test_front_fit_keeps_a_last_sentence_longer_than_the_encoder_alone():
    tokenizer = toy.clip_tokenizer()
    long = "Add " + " and ".join(["diced carrots"] * 12) + " to the bowl."
    assert FrontFit(tokenizer)(("Place a blue bowl on the mint table.", long)) == long


def _held_out_recipe(seed: int, n_steps: int):
    """A v2 recipe whose step 2 shows a held-out triple when the seed is odd."""
    recipe = random_toy_recipe(seed, n_steps)
    if seed % 2 == 0:
        return recipe
    colour, container, name = sorted(HELD_OUT)[0]
    scenes = list(recipe.scenes)
    scenes[1] = replace(
        scenes[1], colour=colour, container=container, ingredients=(replace(scenes[1].ingredients[0], name=name),)
    )
    return replace(recipe, scenes=tuple(scenes))


def test_context_pairs_are_a_recipes_first_steps_and_the_scene_after_the_last():
    world = World("test", _held_out_recipe, WORDS, 4)
    pool = context_pool(world, 6, chunk=4)
    assert pool.skipped == 3 and len(pool) == 3 * 3  # odd seeds skipped; steps 2, 3, 4 of the others
    assert all(not holds_held_out(s) for s in pool.scenes)
    for i, (sentences, seed) in enumerate(zip(pool.sentences, pool.seeds)):
        assert seed >= CONTEXT_FIRST_SEED and seed % 2 == 0
        recipe = random_toy_recipe(seed, 4)
        k = len(sentences)
        assert 2 <= k <= 4 and sentences == recipe.texts[:k]
        assert np.array_equal(pool.images[i], np.asarray(render(recipe.scenes[k - 1]).image))


def test_context_mix_puts_the_pairs_at_the_end_of_the_batch_with_their_own_picture():
    pool = context_pool(get_world("v2"), 3)
    latents = torch.arange(len(pool), dtype=torch.float32)[:, None, None, None].expand(-1, 1, 2, 2)  # latent i = i
    fits = [toy.clip_tokenizer(), toy.t5_tokenizer()]
    mix = ContextMix(pool, latents, 0.25, 8, seed=3, tokenizers=fits)
    z, texts = mix.add(torch.full((6, 1, 2, 2), -1.0), [["x"] * 6, ["y"] * 6], dropout=0.0)
    assert mix.count == 2 and z.shape == (8, 1, 2, 2) and [len(t) for t in texts] == [8, 8]
    assert texts[0][:6] == ["x"] * 6 and texts[1][:6] == ["y"] * 6
    for row in range(6, 8):
        i = int(z[row, 0, 0, 0])
        assert texts[0][row] == FrontFit(fits[0])(pool.sentences[i])
        assert texts[1][row] == FrontFit(fits[1])(pool.sentences[i])


def test_context_share_zero_draws_nothing():
    mix = ContextMix(None, None, 0.0, 8, seed=3, tokenizers=[])
    z0, texts = torch.zeros(8, 1), [["a"] * 8]
    state = mix.gen.get_state()
    assert mix.add(z0, texts, 0.1) == (z0, texts) and torch.equal(mix.gen.get_state(), state)
    with pytest.raises(ValueError, match="context_share"):
        ContextMix(None, None, 1.5, 8, seed=3, tokenizers=[])


def _record_texts(monkeypatch) -> list[list[str]]:
    seen: list[list[str]] = []
    original = diffusion_training.BatchTokenizer.__call__

    def recording(self, texts, device):
        seen.append(list(texts))
        return original(self, texts, device)

    monkeypatch.setattr(diffusion_training.BatchTokenizer, "__call__", recording)
    return seen


@pytest.fixture
def out(tmp_path):
    shutil.copytree(shipped.TOY_DIR / "autoencoder", tmp_path / "autoencoder")
    return tmp_path


def test_sd_batches_at_share_zero_are_the_batches_of_before(out, monkeypatch):
    """The captions the sd stage tokenizes, against the draws of the stage before the v3 switches: the batch's
    indices, its captions, its noise and its time steps from the generators seeded ``seed + 1``."""
    from cooklab.toykitchen.train import train

    seen = _record_texts(monkeypatch)
    cfg = train(out, "smoke", stages=("sd",), device="cpu", sd_steps=3)
    data = render_dataset(cfg.images, cfg.seed)
    gen, rng = torch.Generator().manual_seed(cfg.seed + 1), np.random.default_rng(cfg.seed + 1)
    expected = []
    for _ in range(3):
        idx = torch.randint(len(data), (cfg.batch,), generator=gen)
        expected.append(sample_captions(data, idx, rng, cfg.caption_dropout))
        torch.randn((cfg.batch, 4, 16, 16), generator=gen)
        torch.randint(0, 1000, (cfg.batch,), generator=gen)
    assert seen == expected
    seen.clear()
    train(out, "smoke", stages=("sd",), device="cpu", sd_steps=3, context_share=0.5)
    assert len(seen) == 3 and all(len(t) == cfg.batch for t in seen)
    assert all(t[-1].count(".") >= 2 or t[-1] == "" for t in seen)  # the last two: two sentences or more


def test_flux_batches_at_share_zero_are_the_batches_of_before(out, monkeypatch):
    """The flux stage without context captions and panels draws its batches as before: indices, captions (read by
    CLIP and T5 alike), noise and time from the generators seeded ``seed + 2``."""
    from cooklab.toykitchen.train import train

    seen = _record_texts(monkeypatch)
    cfg = train(out, "smoke", stages=("flux",), device="cpu", flux_steps=3)
    data = render_dataset(cfg.images, cfg.seed)
    gen, rng = torch.Generator().manual_seed(cfg.seed + 2), np.random.default_rng(cfg.seed + 2)
    expected = []
    for _ in range(3):
        idx = torch.randint(len(data), (cfg.batch,), generator=gen)
        texts = sample_captions(data, idx, rng, cfg.caption_dropout)
        expected += [texts, texts]
        torch.randn((cfg.batch, 4, 16, 16), generator=gen)
        torch.randn(cfg.batch, generator=gen)
    assert seen == expected


def test_a_v3_stage_trains_on_v3_scenes_and_captions_and_loads(out, monkeypatch):
    """``world="v3"``: the sd stage's batches are drawn from the v3 training set (cooked food that kept a cut) with
    v3 captions, and the stage gives a loadable pipeline with the v3 vocabulary."""
    from cooklab.toykitchen.train import train

    seen = _record_texts(monkeypatch)
    cfg = train(out, "smoke", stages=("sd",), device="cpu", sd_steps=3, images=200, world="v3")
    data = render_dataset(cfg.images, cfg.seed, world=get_world("v3"))
    assert any(i.cut is not None for s in data.scenes for i in s.ingredients)
    gen, rng = torch.Generator().manual_seed(cfg.seed + 1), np.random.default_rng(cfg.seed + 1)
    expected = []
    for _ in range(3):
        idx = torch.randint(len(data), (cfg.batch,), generator=gen)
        expected.append(sample_captions(data, idx, rng, cfg.caption_dropout))
        torch.randn((cfg.batch, 4, 16, 16), generator=gen)
        torch.randint(0, 1000, (cfg.batch,), generator=gen)
    assert seen == expected
    sd = shipped.toy_sd(out / "sd")
    assert sd.tokenizer.get_vocab() == toy.clip_tokenizer(get_world("v3").words).get_vocab()
    assert sd("fried diced carrots in a blue bowl", num_inference_steps=2).images[0].size == (64, 64)


def test_panel_canvas_packs_region_major_as_cookanything():
    panels = torch.randn(2, 3, 4, 16, 16)  # [B, n, C, H, W]
    canvas = panel_canvas(panels)
    assert canvas.shape == (2, 4, 48, 16)
    tokens = pack_images(canvas)  # [2, 3 * 64, 16]
    for k in range(3):
        assert torch.equal(tokens[:, 64 * k : 64 * (k + 1)], pack_images(panels[:, k]))


def test_panel_batches_caption_every_panel_and_refuse_held_out_triples():
    data = render_dataset(12, seed=1)
    latents = torch.arange(12, dtype=torch.float32)[:, None, None, None].expand(-1, 4, 16, 16)
    rng = np.random.default_rng(0)
    for _ in range(6):
        batch = panel_batch(data, latents, torch.Generator().manual_seed(0), rng, 8, dropout=0.0)
        n = batch.panels
        assert 2 <= n <= 4 and batch.latents.shape == (8 // n, 4, 16 * n, 16) and batch.indices.shape == (8 // n, n)
        for canvas, row, caption in zip(batch.latents, batch.indices.tolist(), batch.captions):
            assert [int(canvas[0, 16 * k, 0]) for k in range(n)] == row  # panel k is picture row[k], top to bottom
            head, parts = caption.split(": ", 1)
            assert (
                head == f"{['two', 'three', 'four'][n - 2]} panels from top to bottom" and len(parts.split("; ")) == n
            )
    colour, container, name = sorted(HELD_OUT)[0]
    scenes = [
        replace(s, colour=colour, container=container, ingredients=(replace(s.ingredients[0], name=name),))
        if s.ingredients
        else s
        for s in data.scenes
    ]
    with pytest.raises(ValueError, match="held-out"):
        panel_batch(ToyDataset(data.images, scenes), latents, torch.Generator(), np.random.default_rng(0), 8, 0.0)
    with pytest.raises(ValueError, match="parts"):
        panel_caption(["a bowl"])


def test_vocabularies_keep_the_old_words_and_ids():
    v2 = get_world("v2")
    assert WORLDS["v2"].recipe is random_toy_recipe and vocabulary(v2) == WORDS
    words = vocabulary(v2, panels=True)
    assert words[: len(WORDS)] == WORDS and set(PANEL_WORDS) <= set(words) and len(set(words)) == len(words)
    old, new = toy.clip_tokenizer(), toy.clip_tokenizer(words)
    assert old.get_vocab() == toy.clip_tokenizer(WORDS).get_vocab()
    for w in WORDS:
        assert new.convert_tokens_to_ids(w + "</w>") == old.convert_tokens_to_ids(w + "</w>")
    assert all(len(new(w, add_special_tokens=False).input_ids) == 1 for w in PANEL_WORDS)
    old_t5, new_t5 = toy.t5_tokenizer(), toy.t5_tokenizer(words)
    assert old_t5.get_vocab() == toy.t5_tokenizer(WORDS).get_vocab()
    for w in WORDS + tuple(w.capitalize() for w in WORDS):
        assert new_t5.convert_tokens_to_ids("▁" + w) == old_t5.convert_tokens_to_ids("▁" + w), w
    for w in PANEL_WORDS:
        assert len(new_t5(w.capitalize(), add_special_tokens=False).input_ids) == 1
    with pytest.raises(ConfigError, match="start with captions.WORDS"):
        World("bad", random_toy_recipe, ("panels", *WORDS), 4)
    with pytest.raises(ConfigError, match="choose one of v2"):
        get_world("v9")


def test_a_set_continued_into_a_larger_vocabulary_keeps_every_tokens_row():
    """The CLIP tokenizer puts its start and end tokens after the words: continued by token, not by position."""
    old_tok, new_tok = toy.clip_tokenizer(), toy.clip_tokenizer(vocabulary(get_world("v2"), panels=True))
    old, new = old_tok.get_vocab(), new_tok.get_vocab()
    assert new[old_tok.bos_token] != old[old_tok.bos_token]  # the start token moved
    weight = torch.randn(len(old), 3)
    rows = diffusion_training.remap_rows(weight, old, new)
    assert rows.shape == (len(new), 3)
    for token in (old_tok.bos_token, old_tok.eos_token, "bowl</w>", "a"):
        assert torch.equal(rows[new[token]], weight[old[token]]), token
    assert not rows[new["panels</w>"]].any()
    words = vocabulary(get_world("v2"), panels=True)
    pipe = toy.build_flux(toy.build_vae(), 1.0, 0.0, words)
    diffusion_training.continue_from(pipe, shipped.TOY_DIR / "flux", ("text_encoder", "text_encoder_2"))
    trained = shipped.toy_flux()
    for part, tokenizer, token in (
        ("text_encoder", "tokenizer", old_tok.eos_token),
        ("text_encoder_2", "tokenizer_2", "▁Add"),
    ):
        before = (
            trained.components[part].get_input_embeddings().weight[trained.components[tokenizer].get_vocab()[token]]
        )
        after = pipe.components[part].get_input_embeddings().weight[pipe.components[tokenizer].get_vocab()[token]]
        assert torch.equal(before, after), (part, token)


def test_smoke_run_with_context_and_panels_gives_loadable_pipelines(out, monkeypatch):
    from cooklab.toykitchen.train import train

    seen = _record_texts(monkeypatch)
    train(
        out,
        "smoke",
        stages=("sd", "flux"),
        device="cpu",
        flux_steps=6,
        context_share=0.5,
        panel_share=0.5,
        init_from=str(shipped.TOY_DIR),
    )
    panel_steps = [t for t in seen[2:] if any(" panels from top to bottom: " in x for x in t)]  # flux: CLIP, T5
    assert 0 < len(panel_steps) < len(seen[2:])
    sd, flux = shipped.toy_sd(out / "sd"), shipped.toy_flux(out / "flux")
    assert sd.tokenizer.get_vocab() == toy.clip_tokenizer().get_vocab()  # the sd set has no panel words
    assert flux.tokenizer.get_vocab() == toy.clip_tokenizer(vocabulary(get_world("v2"), panels=True)).get_vocab()
    image = flux(
        "three panels from top to bottom: a blue bowl; a red pot; a green pan",
        height=192,
        num_inference_steps=2,
        max_sequence_length=shipped.T5_MAX_LENGTH,
        generator=torch.Generator().manual_seed(0),
    ).images[0]
    assert image.size == (64, 192)
    assert sd("a blue bowl", num_inference_steps=2).images[0].size == (64, 64)
    log = json.loads((out / "flux_training.json").read_text())
    assert log["config"]["panel_share"] == 0.5 and log["config"]["world"] == "v2"
    moved = log["continued"]  # the embedding tables moved by token into the vocabulary with the panel words
    assert len(moved["text_encoder"]) == 1 and moved["text_encoder"][0].endswith("token_embedding.weight")
    assert "shared.weight" in moved["text_encoder_2"] and not moved["transformer"]


def test_a_stopped_stage_resumes_where_it_stopped(out, monkeypatch):
    from cooklab.toykitchen.train import train

    seen = _record_texts(monkeypatch)

    train(out, "smoke", stages=("sd",), device="cpu", sd_steps=4, stop_after=2)
    first = json.loads((out / "sd_training.json").read_text())
    assert first["steps_done"] == 2
    with pytest.raises(ConfigError, match="--sd-steps 4"):
        train(out, "smoke", stages=("sd",), device="cpu", sd_steps=5, resume=True)
    seen.clear()
    train(out, "smoke", stages=("sd",), device="cpu", sd_steps=4, resume=True)
    assert len(seen) == 2  # steps 3 and 4 only
    log = json.loads((out / "sd_training.json").read_text())
    assert log["steps_done"] == 4 and [c["steps_done"] for c in log["calls"]] == [2, 4]
    assert log["losses"][0] == first["losses"][0] and log["losses"][-1][0] == 4
    assert "unet" in log["continued"] and shipped.toy_sd(out / "sd").unet is not None
    train(out, "smoke", stages=("sd",), device="cpu", sd_steps=4)  # without resume: from step 0 again
    assert "calls" not in json.loads((out / "sd_training.json").read_text())


def test_presets_train_as_before_by_default():
    for cfg in PRESETS.values():
        assert (cfg.world, cfg.context_share, cfg.panel_share, cfg.resume) == ("v2", 0.0, 0.0, False)
