"""Chunked CookAnything: long recipes as several canvases joined by anchors (cooklab/cookanything/chunked.py)."""

import warnings

import numpy as np
import pytest
import torch

import cooklab
from cooklab import ConfigError
from cooklab.cookanything.chunked import Chunking, anchor_latents, last_pinned_step, plan_chunks
from cooklab.models import TINY_T5_MAX_LENGTH

KW = dict(
    num_inference_steps=2,
    max_sequence_length=TINY_T5_MAX_LENGTH,
    progress=False,
    output_type="latent",
    height=32,
    width=32,
)
LONG = [f"Stir the carrots in the pot {i}" for i in range(30)]  # 32 x 32 regions: 4 tokens each
SHORT = [f"Stir {i}" for i in range(15)]  # short enough that the whole description keeps every step at 128 tokens


def chunking(size, anchor="fixed", anchors=1, strength=None):
    return Chunking.resolve(size, anchor, anchors, strength, default_size=12)


def quiet(ca, steps, **kwargs):
    """A call whose whole description may be cut at 64 tokens (a long recipe): that warning is not under test here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".* is cut at max_sequence_length")
        return ca(steps, **{**KW, **kwargs})


def test_chunk_boundaries_follow_the_setting():
    chunks = plan_chunks(15, chunking(6))
    assert [(c.anchors, c.steps) for c in chunks] == [
        ((), tuple(range(0, 6))),
        ((5,), tuple(range(6, 11))),
        ((10,), tuple(range(11, 15))),
    ]
    for n, size, anchors in [(15, 6, 1), (30, 12, 1), (30, 5, 2), (13, 12, 1), (30, 4, 3), (7, 2, 1), (16, 4, 1)]:
        chunks = plan_chunks(n, chunking(size, anchors=anchors))
        assert sorted(s for c in chunks for s in c.steps) == list(range(n))  # every step new in exactly one chunk
        assert all(len(c.regions) <= size for c in chunks)
        assert all(c.regions == tuple(range(c.regions[0], c.regions[-1] + 1)) for c in chunks)  # consecutive steps
        for before, after in zip(chunks, chunks[1:]):
            assert after.anchors == tuple(range(after.steps[0] - anchors, after.steps[0]))  # the last A steps so far
            assert after.anchors[-1] == before.steps[-1]
        sizes = [len(c.regions) for c in chunks]
        assert max(sizes) - min(sizes) <= 1  # balanced
    assert [len(c.regions) for c in plan_chunks(13, chunking(12))] == [7, 7]  # not 12 + (1 + 1)
    assert [c.steps for c in plan_chunks(10, chunking(4, "none"))] == [(0, 1, 2, 3), (4, 5, 6), (7, 8, 9)]
    assert (
        len(plan_chunks(12, chunking(None))) == 1 and len(plan_chunks(13, chunking(None))) == 2
    )  # default K = MAX_CANVAS_REGIONS = 12


def test_anchor_pinning_rule():
    sigmas = torch.tensor([1.0, 0.8, 0.55, 0.3, 0.1, 0.0])
    assert last_pinned_step(sigmas, 0.0) == 5  # fixed: every step and the final latents
    assert last_pinned_step(sigmas, 0.5) == 3  # renoise: the first step at or below 0.5 restarts the anchor
    assert last_pinned_step(sigmas, 1.0) == 0
    z0, eps = torch.randn(1, 4, 8), torch.randn(1, 4, 8)
    assert torch.equal(anchor_latents(z0, eps, 0.0), z0) and torch.equal(anchor_latents(z0, eps, 1.0), eps)


def test_fifteen_and_thirty_steps_run_in_chunks(ca):
    out = quiet(ca, LONG[:15], seed=0, chunk_size=6)
    assert len(out.images) == 15 and [len(c.regions) for c in out.chunks] == [6, 6, 5]
    assert out.settings["frame_chunks"] == [1] * 6 + [2] * 5 + [3] * 4
    assert out.settings["frame_anchors"] == [[]] * 6 + [[6]] * 5 + [[11]] * 4
    assert [c["steps"] for c in out.settings["chunks"]] == [[1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11], [12, 13, 14, 15]]
    assert out.canvas.shape[1] == 15 * out.layout.region_tokens  # the frames' latents, stacked in step order
    out = quiet(ca, LONG, seed=0, anchor_regions=2)  # default K = 12: 30 steps in 3 canvases of 11 or 12 regions
    assert len(out.images) == 30 and out.settings["chunk_size"] == 12
    assert [len(c.regions) for c in out.chunks] == [12, 11, 11] and out.settings["frame_anchors"][-1] == [20, 21]


def test_k_at_least_n_is_the_one_canvas_call_bit_for_bit(ca):
    """The one-canvas call composed by hand from its stages;
    every chunk_size >= N gives exactly its latents and images.
    """
    steps, seed = LONG[:4], 3
    c = ca.prepare_canvas(steps, height=32, width=32, max_sequence_length=TINY_T5_MAX_LENGTH)
    latents = ca._noise(4, 32, 32, seed, c.text.embeds.dtype, ca.device)
    with torch.no_grad(), ca.attention_processors(c.state, install=True):
        latents, _ = ca._denoise(latents, c.state, c.text, c.txt_ids, c.img_ids, 2, 3.5, 1.0, False)
        images, _ = ca._decode(latents, c.layout, "np")
    for size in (None, 4, 9):
        out = ca(steps, seed=seed, chunk_size=size, **KW)
        assert torch.equal(out.canvas, latents) and len(out.chunks) == 1
        assert out.settings["frame_chunks"] == [1] * 4 and out.settings["frame_anchors"] == [[]] * 4
    pictures = ca(steps, seed=seed, chunk_size=4, **{**KW, "output_type": "np"})
    assert all(np.array_equal(a, b) for a, b in zip(pictures.images, images))


def test_cscc_in_a_chunk_reads_the_whole_recipe_with_chunk_text_whole(ca, tiny_flux):
    """chunk_text="whole" (the behaviour before the switch): chunk 2's text stream is the whole recipe's
    base prompt and CSCC-fused step rows, not its own steps encoded alone.
    """
    seen = []
    handle = tiny_flux.transformer.register_forward_pre_hook(
        lambda m, a, kw: seen.append(kw["encoder_hidden_states"]), with_kwargs=True
    )
    try:
        out = ca(
            SHORT,
            seed=0,
            chunk_size=6,
            chunk_text="whole",
            **{**KW, "max_sequence_length": 128, "num_inference_steps": 1},
        )
    finally:
        handle.remove()
    assert out.spans.truncated_steps == [] and len(seen) == 3  # one transformer call per chunk
    assert out.settings["chunk_text"] == "whole" and out.settings["chunks"][1]["cscc_window"] == [1, 15]
    whole = ca.prepare_canvas(SHORT, height=32, width=32, max_sequence_length=128).text  # [1, L + 15 L, D]
    L = whole.step_len
    chunk = out.chunks[1]
    expected = torch.cat(
        [whole.embeds[:, :L]] + [whole.embeds[:, L + j * L : L + (j + 1) * L] for j in chunk.regions], dim=1
    )
    assert torch.equal(seen[1], expected)
    delta = whole.cscc_delta[chunk.steps[0]]  # [L, D] what Eq. 12 added to the chunk's first new step
    span = out.spans.spans[chunk.steps[0]]
    assert span.start > 6 and span.fused_length > 0 and delta.abs().max() > 0  # read from far inside the whole recipe
    alone = ca.prepare_canvas([SHORT[j] for j in chunk.regions], height=32, width=32, max_sequence_length=128).text
    assert seen[1].shape == alone.embeds.shape and not torch.equal(seen[1], alone.embeds)


def test_a_fixed_anchor_follows_the_previous_frames_path_and_a_renoised_one_is_set_free(ca, tiny_flux):
    steps, n_inference = SHORT[:7], 5
    seen = []
    handle = tiny_flux.transformer.register_forward_pre_hook(
        lambda m, a, kw: seen.append(kw["hidden_states"]), with_kwargs=True
    )
    try:
        fixed = ca(steps, seed=1, chunk_size=4, **{**KW, "num_inference_steps": n_inference})
        chunk_2 = seen[n_inference:]  # the transformer inputs of the second canvas
        seen.clear()
        renoised = ca(
            steps,
            seed=1,
            chunk_size=4,
            anchor="renoise",
            anchor_strength=0.7,
            **{**KW, "num_inference_steps": n_inference},
        )
        renoised_2 = seen[n_inference:]
    finally:
        handle.remove()
    (anchor,) = fixed.chunks[1].anchors
    assert fixed.chunks[1].anchors == renoised.chunks[1].anchors == (3,)
    p = fixed.layout.region_tokens
    z0 = fixed.images[anchor]  # [1, P, C 4] the anchor step's final latents (its frame)
    eps = ca._noise(1, 32, 32, 1 + anchor, z0.dtype, ca.device)  # the anchor step's own starting noise
    ca._timesteps(len(fixed.chunks[1].regions) * p, n_inference)
    sigmas = tiny_flux.scheduler.sigmas
    last = last_pinned_step(sigmas, 0.7)
    assert 0 < last < n_inference - 1  # the renoised anchor is denoised freely in the last steps
    for i in range(n_inference):
        assert torch.allclose(chunk_2[i][:, :p], anchor_latents(z0, eps, float(sigmas[i])), atol=1e-6)
        pinned = torch.allclose(renoised_2[i][:, :p], anchor_latents(z0, eps, float(sigmas[i])), atol=1e-6)
        assert pinned == (i <= last), i
    for a, b in zip(fixed.images[:4], renoised.images[:4]):  # the first chunk has no anchor
        assert torch.equal(a, b)
    assert not torch.equal(fixed.images[4], renoised.images[4])  # the new regions see the anchor (base branch)
    none = ca(steps, seed=1, chunk_size=4, anchor="none", **{**KW, "num_inference_steps": n_inference})
    assert none.settings["frame_anchors"] == [[]] * 7 and none.settings["anchor_regions"] == 0


def test_chunked_generation_is_deterministic_in_the_seed(ca):
    a = quiet(ca, LONG[:15], seed=4, chunk_size=5)
    b = quiet(ca, LONG[:15], seed=4, chunk_size=5)
    c = quiet(ca, LONG[:15], seed=5, chunk_size=5)
    assert torch.equal(a.canvas, b.canvas) and not torch.equal(a.canvas, c.canvas)


def test_cross_region_references_become_the_chunks_own(ca):
    out = quiet(
        ca, LONG[:11], seed=0, chunk_size=6, cross_region_kv=True, image_attention="region", attention_backend="masked"
    )
    # chunk 2 = anchor step 6 then steps 7..11; step 6's reference (5) is not on that canvas: it keeps its own keys
    assert out.settings["chunks"][1]["cross_region_kv"] == [6, 6, 7, 8, 9, 10]
    assert out.settings["chunks"][0]["cross_region_kv"] == [1, 1, 2, 3, 4, 5]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(chunk_size=0), "chunk_size=0: give the most regions"),
        (dict(chunk_size=2.5), "integer >= 1"),
        (dict(chunk_size=4, anchor_regions=4), "anchor_regions=4 with chunk_size=4"),
        (dict(chunk_size=1), "use a chunk_size above 1, or anchor='none'"),
        (dict(anchor_regions=0), "or anchor='none'"),
        (dict(anchor="sideways"), "choose one of"),
        (dict(anchor_strength=0.3), "use anchor='renoise'"),
        (dict(anchor="renoise", anchor_strength=0.0), r"in \(0, 1\]"),
        (dict(anchor="renoise", anchor_strength=1.5), r"in \(0, 1\]"),
        (dict(anchor="none", anchor_strength=0.5), "drop it with anchor='none'"),
        (dict(chunk_text="recipe"), "chunk_text='recipe': choose 'window'"),
    ],
)
def test_impossible_chunk_settings_are_refused_before_any_model_runs(ca, tiny_flux, kwargs, match):
    calls = []
    handle = tiny_flux.transformer.register_forward_pre_hook(lambda *a: calls.append(1))
    try:
        with pytest.raises(ConfigError, match=match):
            ca(LONG[:3], seed=0, **{**KW, **kwargs})
    finally:
        handle.remove()
    assert calls == []


def test_one_step_per_canvas_without_anchors_is_plain_flux_per_step_from_seed_plus_n(ca):
    """Without SRC and CSCC a one-region chunk reads only its step (pooled: its own), its noise from seed + n."""
    off = dict(regional=False, cscc=False)
    out = ca(LONG[:3], seed=2, chunk_size=1, anchor="none", **off, **KW)
    assert out.settings["frame_chunks"] == [1, 2, 3]
    for n in range(3):
        alone = ca([LONG[n]], seed=2 + n, **off, **KW)
        assert torch.equal(alone.images[0], out.images[n])


def test_a_trace_of_several_chunks_is_refused(ca):
    with cooklab.trace(ca), pytest.raises(ConfigError, match="chunk_size >= 5"):
        ca(LONG[:5], seed=0, chunk_size=3, **KW)
    with cooklab.trace(ca) as tr:
        ca(LONG[:3], seed=0, chunk_size=3, **KW)
    assert tr.canvas is not None


# ---- chunk_text="window": each chunk's own base prompt and CSCC window (issue 26, finding 7) ----------------------

TITLE = "Carrot soup"
WINDOWED = dict(KW, num_inference_steps=1, max_sequence_length=64)  # 64 T5 tokens: about 4 steps of LONG


def text_streams(ca, tiny_flux, steps, **kwargs):
    """The call's output and the transformer's ``encoder_hidden_states`` of each chunk (one denoising step)."""
    seen = []
    handle = tiny_flux.transformer.register_forward_pre_hook(
        lambda m, a, kw: seen.append(kw["encoder_hidden_states"]), with_kwargs=True
    )
    try:
        out = ca(cooklab.Recipe.from_steps(steps, title=TITLE), seed=0, **{**WINDOWED, **kwargs})
    finally:
        handle.remove()
    return out, seen


def n_tokens(tokenizer, text):
    return len(tokenizer(text, truncation=False, verbose=False).input_ids)  # with </s>


def only_place(haystack, needle):
    """The one index where the id list ``needle`` occurs in ``haystack`` (found by search, not by offsets)."""
    places = [p for p in range(len(haystack) - len(needle) + 1) if haystack[p : p + len(needle)] == needle]
    assert len(places) == 1, places
    return places[0]


@torch.no_grad()
def test_every_step_of_every_chunk_gets_its_cscc_rows_from_a_window_that_fits(ca, tiny_flux):
    """Designed: 10 steps of 12-13 T5 tokens at a 64-token limit. The whole description keeps about
    4 steps, so chunk_text="whole" cuts steps 5-10 out of CSCC; with "window" each chunk's fused rows
    are step_alone + lam * (the window text encoded directly)[b : b + t], b found by searching the
    step's token ids in the window's ids."""
    from cooklab.cookanything.cscc import whole_description

    steps, lam, tok = LONG[:10], 0.2, tiny_flux.tokenizer_2
    with pytest.warns(UserWarning, match="whole description is cut"):
        old, _ = text_streams(ca, tiny_flux, steps, chunk_size=3, chunk_text="whole")
    assert old.settings["truncated_steps"][-1] == 10  # the old mode: the later chunks' steps lose CSCC
    out, seen = text_streams(ca, tiny_flux, steps, chunk_size=3)  # 3 regions of ~13 tokens: room for one more
    assert out.settings["chunk_text"] == "window" and out.settings["truncated_steps"] == []
    L = out.settings["max_sequence_length"]
    assert len(seen) == len(out.chunks) == 5
    # regions 3, 3, 3, 3, 2 (balanced): a 3-region chunk has room for 1 step before it, the last (2) for 2
    assert [r["cscc_window"] for r in out.settings["chunks"]] == [[1, 3], [2, 5], [4, 7], [6, 9], [7, 10]]
    for chunk, record, stream in zip(out.chunks, out.settings["chunks"], seen):
        first, last = record["cscc_window"]
        window = steps[first - 1 : last]
        assert last == chunk.regions[-1] + 1 and first <= chunk.regions[0] + 1  # it ends with the chunk
        window_text, _ = whole_description(window, TITLE)
        assert n_tokens(tok, window_text) <= L  # it fits ...
        if first > 1:  # ... and one more step before it would not
            assert n_tokens(tok, whole_description(steps[first - 2 : last], TITLE)[0]) > L
        texts = [steps[j] for j in chunk.regions]
        alone, _, _ = tiny_flux.encode_prompt(texts, texts, max_sequence_length=L)  # [n, L, D]
        recipe, _, _ = tiny_flux.encode_prompt(window_text, window_text, max_sequence_length=L)  # [1, L, D]
        window_ids = tok(window_text).input_ids
        for i, step in enumerate(texts):
            own = tok(step).input_ids[:-1]  # the step's tokens, no </s>
            b, t = only_place(window_ids, own), len(own)
            expected = alone[i].clone()
            expected[:t] += lam * recipe[0, b : b + t]  # Eq. 12 with b relative to the window
            got = stream[0, L * (1 + i) : L * (2 + i)]  # slot 0 is the base prompt
            assert torch.equal(got, expected), (chunk.index, i, (got - expected).abs().max())
            assert not torch.allclose(got, alone[i], atol=1e-3)  # CSCC changed this step's rows


@torch.no_grad()
def test_the_base_prompt_of_chunk_k_describes_chunk_ks_steps(ca, tiny_flux):
    from cooklab.cookanything.cscc import whole_description

    steps = LONG[:10]
    out, seen = text_streams(ca, tiny_flux, steps, chunk_size=4, cscc=False)
    L = out.settings["max_sequence_length"]
    whole, _ = whole_description(steps, TITLE)
    everything, _, _ = tiny_flux.encode_prompt(whole, whole, max_sequence_length=L)
    for chunk, stream in zip(out.chunks, seen):
        own, _ = whole_description([steps[j] for j in chunk.regions], TITLE)
        assert all(steps[j] in own for j in chunk.regions)  # it names the chunk's steps
        base, _, _ = tiny_flux.encode_prompt(own, own, max_sequence_length=L)  # [1, L, D]
        assert torch.equal(stream[:, :L], base), (stream[:, :L] - base).abs().max()
        if chunk.index:
            assert not torch.equal(stream[:, :L], everything)  # not the whole recipe's (cut) description


def test_one_chunk_is_the_one_canvas_call_in_either_chunk_text(ca):
    steps = LONG[:4]
    window = ca(steps, seed=3, chunk_size=4, **KW)
    whole = ca(steps, seed=3, chunk_size=4, chunk_text="whole", **KW)
    assert torch.equal(window.canvas, whole.canvas) and window.settings["chunks"][0]["cscc_window"] == [1, 4]
