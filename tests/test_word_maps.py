"""Word heat maps: word -> tokens, per-token maps exact against attention recomputed by hand, aggregation formulas."""

import math

import numpy as np
import pytest
import torch

import cooklab
from cooklab.instrument import content_positions, prompt_words, token_maps, word_map, word_occurrences, word_positions
from cooklab.instrument.observer import FrameTrace

# ---- (d) word -> tokens on designed prompts ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def tokenizers():
    from cooklab.word_tokenizers import tiny_clip_tokenizer, tiny_t5_tokenizer

    clip, t5 = tiny_clip_tokenizer(), tiny_t5_tokenizer()
    return {
        "clip": lambda p: clip.convert_ids_to_tokens(clip(p).input_ids),
        "t5": lambda p: t5.convert_ids_to_tokens(t5(p).input_ids),
    }


def test_clip_words_multi_token_repeats_case_phrases(tokenizers):
    tokens = tokenizers["clip"]("Put the zzcarrotx in the pot, then the POT on the pot")
    # ['<|startoftext|>', 'put</w>', 'the</w>', 'z', 'z', 'c', 'a', 'r', 'r', 'o', 't', 'x</w>', 'in</w>', ...]
    assert tokens[3:12] == ["z", "z", "c", "a", "r", "r", "o", "t", "x</w>"]
    assert word_positions(tokens, "zzcarrotx") == list(range(3, 12))  # one word, nine tokens
    pots = [i for i, t in enumerate(tokens) if t == "pot</w>"]
    assert len(pots) == 3 and word_occurrences(tokens, "pot") == [[p] for p in pots]
    assert word_positions(tokens, "Pot") == pots  # every occurrence, case-insensitive
    assert word_positions(tokens, "pot", occurrence=1) == [pots[1]] and word_positions(tokens, "pot", -1) == [pots[2]]
    assert word_positions(tokens, "the  POT") == [pots[0] - 1, pots[0], pots[1] - 1, pots[1], pots[2] - 1, pots[2]]
    assert word_positions(tokens, "pot, then") == [pots[0], pots[0] + 1, pots[0] + 2]  # punctuation in a phrase
    with pytest.raises(IndexError, match="occurs 3 time"):
        word_positions(tokens, "pot", occurrence=3)


def test_t5_words_multi_token_repeats_case_phrases(tokenizers):
    tokens = tokenizers["t5"]("Put the zzcarrotx in the pot, then the pot")
    # ['▁', 'P', 'u', 't', '▁the', '▁', 'z', 'z', 'c', 'a', 'r', 'r', 'o', 't', 'x', '▁in', '▁the', '▁pot', ',', ...]
    start = tokens.index("z")
    assert tokens[start - 1] == "\u2581"  # a bare "▁" opens the spelled-out word
    assert word_positions(tokens, "ZZCARROTX") == list(range(start - 1, start + 9))
    assert word_positions(tokens, "put") == [0, 1, 2, 3]
    pots = [i for i, t in enumerate(tokens) if t == "\u2581pot"]
    assert word_positions(tokens, "pot") == pots and tokens[pots[0] + 1] == ","  # "pot," still matches "pot"
    assert word_positions(tokens, "the pot", occurrence=1) == [pots[1] - 1, pots[1]]


def test_start_and_end_tokens_spell_no_word_and_partial_words_do_not_match(tokenizers):
    clip = tokenizers["clip"]("two carrots")
    t5 = tokenizers["t5"]("two carrots")
    assert content_positions(clip) == list(range(1, len(clip) - 1))  # BOS and EOS out
    assert content_positions(t5) == list(range(len(t5) - 1))  # </s> out
    for tokens in (clip, t5):
        for special in ("<|startoftext|>", "<|endoftext|>", "</s>", "endoftext"):
            with pytest.raises(KeyError):
                word_positions(tokens, special)
        with pytest.raises(KeyError, match=r"its words are \['two', 'carrots'\]"):
            word_positions(tokens, "carrot")  # not inside "carrots"


# ---- (e) aggregation formulas on designed stacks -------------------------------------------------------------------

TOKENS = ["<|startoftext|>", "a</w>", "pot</w>", "of</w>", "pot</w>", "<|endoftext|>"]
FINE = "up_blocks.1.attentions.0.transformer_blocks.0.attn2.processor"
COARSE = "mid_block.attentions.0.transformer_blocks.0.attn2.processor"


def _designed_trace(rd):
    """Two layers: FINE (native 16x16, stored 2x2), COARSE (native 8x8, stored 1x1); steps 0 and 1.

    Token masses (BOS, a, pot, of, pot, EOS) per pixel; rows sum to 1.
    FINE, step 0: every pixel (0.5, 0.1, 0.2, 0.1, 0.05, 0.05) but pixel (0, 0): (0.4, 0.1, 0.3, 0.1, 0.05, 0.05)
    COARSE, step 0: (0.8, 0.05, 0.05, 0.05, 0.0, 0.05)
    step 1: both layers all BOS (1, 0, 0, 0, 0, 0).
    """
    tr = cooklab.trace(rd, capture=["cross_attention"], layers=("mid", "up"))
    tr.begin_frame(FrameTrace(0, "a pot of pot", TOKENS, None, (16, 16)))
    fine = torch.tensor([0.5, 0.1, 0.2, 0.1, 0.05, 0.05])[:, None, None].repeat(1, 2, 2)
    fine[:, 0, 0] = torch.tensor([0.4, 0.1, 0.3, 0.1, 0.05, 0.05])
    coarse = torch.tensor([0.8, 0.05, 0.05, 0.05, 0.0, 0.05])[:, None, None]
    sink = torch.zeros(6, 2, 2)
    sink[0] = 1
    content = TOKENS.index("a</w>"), 5  # rows 1..4 are the prompt's words
    for (layer, step), a in {
        (FINE, 0): fine,
        (COARSE, 0): coarse,
        (FINE, 1): sink,
        (COARSE, 1): sink[:, :1, :1],
    }.items():
        tr.cross_attention[(0, layer, step)] = a
        tr.cross_content[(0, layer, step)] = a[content[0] : content[1]].sum(0)
    tr.layer_grid.update({FINE: (16, 16), COARSE: (8, 8)})
    return tr


def test_word_map_equal_weighting_and_renormalisation_by_hand(rd):
    tr = _designed_trace(rd)
    m = word_map(tr, "pot", steps=[0], renormalise=False, size=None)
    # "pot" = both occurrences: FINE 0.25 (0.35 at (0, 0)), COARSE 0.05; equal weights: (0.25 + 0.05) / 2
    assert torch.allclose(m, torch.tensor([[0.20, 0.15], [0.15, 0.15]]), atol=1e-7)
    r = word_map(tr, "pot", steps=[0], size=None)
    # words' mass: FINE 0.45 (0.55 at (0, 0)), COARSE 0.15 -> 0.3 (0.35); pot / words
    assert torch.allclose(r, torch.tensor([[0.20 / 0.35, 0.5], [0.5, 0.5]]), atol=1e-6)
    first = word_map(tr, "pot", occurrence=0, steps=[0], size=None)
    assert torch.allclose(first[1, 1], torch.tensor((0.2 + 0.05) / 2 / 0.3), atol=1e-6)
    total = sum(word_map(tr, w, steps=[0], size=None) for w in ("a", "pot", "of"))
    assert torch.allclose(total, torch.ones(2, 2), atol=1e-6)  # BOS/EOS excluded: the words share each pixel


def test_word_map_resolution_weighting_by_hand(rd):
    tr = _designed_trace(rd)
    m = word_map(tr, "pot", steps=[0], renormalise=False, size=None, weighting="resolution")
    # w = rows * cols: 256 for FINE, 64 for COARSE: (256 * 0.25 + 64 * 0.05) / 320 = 0.21
    assert torch.allclose(m[1, 1], torch.tensor(0.21), atol=1e-7)
    r = word_map(tr, "pot", steps=[0], size=None, weighting="resolution")
    assert torch.allclose(r[1, 1], torch.tensor(0.21 / ((256 * 0.45 + 64 * 0.15) / 320)), atol=1e-6)
    with pytest.raises(ValueError, match="weighting="):
        word_map(tr, "pot", weighting="area")


def test_word_map_layer_and_step_selection_upsampling_and_stack(rd):
    tr = _designed_trace(rd)
    assert torch.allclose(
        word_map(tr, "pot", layers="mid", steps=[0], size=None, renormalise=False), torch.tensor(0.05)
    )
    both = word_map(tr, "pot", size=None, renormalise=False)  # steps 0 and 1: the sink step halves the mass
    assert torch.allclose(both, word_map(tr, "pot", steps=[0], size=None, renormalise=False) / 2, atol=1e-7)
    assert torch.equal(word_map(tr, "pot", steps=[1], size=None), torch.zeros(2, 2))  # no mass on words: 0, not NaN
    big = word_map(tr, "pot", steps=[0], size=(8, 8), renormalise=False)
    assert big.shape == (8, 8) and float(big[0, 0]) == pytest.approx(0.2) and float(big[7, 7]) == pytest.approx(0.15)
    assert float(big[1, 1]) == pytest.approx(0.2) and 0.15 < float(big[3, 3]) < 0.2  # bilinear, not nearest
    stack, tokens = token_maps(tr, steps=[0])
    assert tokens == TOKENS and stack.shape == (6, 2, 2)
    assert torch.allclose(stack.sum(0), torch.ones(2, 2), atol=1e-6)
    with pytest.raises(KeyError, match="its words are"):
        word_map(tr, "lid")


# ---- (a) SD: the per-token capture against the stock pipeline's attention -----------------------------------------


def test_sd_per_token_maps_equal_attention_recomputed_from_the_stock_pipeline(tiny_sd, rd):
    """A stock diffusers run (AttnProcessor2_0) is recorded at one cross-attention layer; its inputs fed through the
    traced processor give the stock output bit for bit and per-token maps equal to softmax(Q K^T / sqrt(d)) head-mean
    recomputed by hand, whole and kept-words-only, and the words' mass equals the sum over the prompt's words."""
    from diffusers.models.attention_processor import AttnProcessor2_0

    from cooklab.instrument.observer import observed

    layer = "up_blocks.1.attentions.0.transformer_blocks.0.attn2"
    attn = dict(tiny_sd.unet.named_modules())[layer]
    assert type(attn.processor) is AttnProcessor2_0
    seen = []
    handle = attn.register_forward_hook(
        lambda m, args, kwargs, out: seen.append((args[0], kwargs["encoder_hidden_states"], out)), with_kwargs=True
    )
    prompt = "Put the pot on the stove, then the carrot in the pot"
    try:
        tiny_sd(prompt, num_inference_steps=2, height=64, width=64, output_type="np")
    finally:
        handle.remove()
    hidden, text, stock_out = seen[-1]
    tokens = tiny_sd.tokenizer.convert_ids_to_tokens(tiny_sd.tokenizer(prompt).input_ids)
    side = int(math.isqrt(hidden.shape[1]))

    def heads(x):  # [P, C] -> [h, P, d]
        return x.reshape(x.shape[0], attn.heads, -1).transpose(0, 1)

    with torch.no_grad():
        q, k = heads(attn.to_q(hidden[-1])), heads(attn.to_k(text[-1]))
        a = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(q.shape[-1]), dim=-1).mean(0)  # [P, 77]
    by_hand = a.T.reshape(77, side, side)
    for words in (None, ["pot", "carrot"]):
        tr = cooklab.trace(rd, capture=["cross_attention"], layers="up", words=words, map_size=64)
        tr.begin_frame(FrameTrace(0, prompt, tokens, None, (side, side)))
        tr.set_step(0, 1.0)
        with torch.no_grad():
            out = observed(AttnProcessor2_0(), layer + ".processor", tr)(attn, hidden, encoder_hidden_states=text)
        assert torch.equal(out, stock_out)  # the traced processor is the stock maths
        stored = tr.cross_attention[(0, layer + ".processor", 0)]
        rows = tr.token_rows[0]
        assert stored.shape[0] == len(rows)
        if words is None:
            assert rows == list(range(len(tokens)))
        else:
            assert rows == sorted(word_positions(tokens, "pot") + word_positions(tokens, "carrot")) == [3, 10, 13]
        assert (stored - by_hand[rows]).abs().max() < 1e-6
        words_mass = by_hand[content_positions(tokens)].sum(0)
        assert (tr.cross_content[(0, layer + ".processor", 0)] - words_mass).abs().max() < 1e-6


def test_sd_per_token_rows_sum_to_one_when_the_prompt_fills_clip(rd):
    """With all 77 tokens real (no padding key), the per-token maps of a query sum to 1 before pooling (and after:
    average pooling keeps sums); the words' mass is the total minus BOS and EOS."""
    with cooklab.trace(rd, capture=["cross_attention"], layers="up") as tr, pytest.warns(UserWarning, match="CLIP"):
        rd(["Whisk the eggs in the white bowl " * 20], seed=0, num_inference_steps=2, progress=False, output_type="np")
    assert len(tr.frames[0].tokens) == 77
    for key, a in tr.cross_attention.items():
        assert torch.allclose(a.sum(0), torch.ones(a.shape[1:]), atol=1e-5)
        assert torch.allclose(tr.cross_content[key], a.sum(0) - a[0] - a[76], atol=1e-5)


# ---- (b) Flux: per-token maps against the whole-text mass and attention recomputed by hand ----------------------


STEP_TOKENS = [["\u2581pot", "\u2581a", "</s>"], ["\u2581pot", "\u2581of", "\u2581pot", "</s>"]]
BASE_TOKENS = ["\u2581a", "\u2581pot", "</s>"]


def _flux_trace(ca, layout, regional, words=None):
    tr = cooklab.trace(
        ca, capture=["text_image_attention", "text_token_attention", "concept_attention"], layers="double", words=words
    )
    tr.begin_canvas(
        layout=layout,
        texts=["pot a", "pot of pot"],
        img_ids=torch.zeros(12, 3),
        txt_ids=torch.zeros(12, 3),
        spans=None,
        cscc_delta=None,
        regional=regional,
        alpha=0.1,
        token_counts=[3, 4],
        tokens=STEP_TOKENS,
        base_tokens=BASE_TOKENS,
    )
    tr.set_step(0, 1.0)
    return tr


def _attention_by_hand(q, k, layout, regional, image_attention, references):
    """{joint text position: [N P] head-mean attention of every image query on that key}, as the layer computes it."""
    from cooklab.cookanything.regional import regional_token_mask

    n, L, lb, t = layout.n_regions, layout.step_text_len, layout.base_text_len, layout.text_len
    qi = q[0, t:].transpose(0, 1)  # [H, N P, D]
    d = q.shape[-1]
    if not regional:
        a = torch.softmax(qi @ k[0].transpose(0, 1).transpose(1, 2) / math.sqrt(d), dim=-1).mean(0)  # [N P, S]
        return {p: a[:, p] for p in range(t)}
    kk = k[0, lb:].transpose(0, 1)  # [H, N L + N P, D]
    scores = (qi @ kk.transpose(1, 2) / math.sqrt(d)).masked_fill(
        ~regional_token_mask(layout, image_attention, references=references)[n * L :], float("-inf")
    )
    a = torch.softmax(scores, dim=-1).mean(0)  # [N P, N L + N P]
    out = {lb + p: a[:, p] for p in range(n * L)}
    kb = torch.cat([k[0, :lb], k[0, t:]]).transpose(0, 1)  # [H, L_b + N P, D] the base branch
    b = torch.softmax(qi @ kb.transpose(1, 2) / math.sqrt(d), dim=-1).mean(0)
    out.update({p: b[:, p] for p in range(lb)})
    return out


@pytest.mark.parametrize(
    ("regional", "image_attention", "references"),
    [(False, "region", None), (True, "region", None), (True, "global", None), (True, "region", (0, 0))],
)
def test_flux_per_token_maps_equal_attention_by_hand_and_sum_to_the_text_mass(
    ca, regional, image_attention, references
):
    from cooklab.cookanything.regional import RegionalState, RegionLayout, regional_attention

    layout = RegionLayout(n_regions=2, rows=2, cols=3, step_text_len=4, base_text_len=4)
    torch.manual_seed(7)
    q, k, v = (torch.randn(1, layout.total, 2, 16) for _ in range(3))  # |q.k| ~ 4: the 1/sqrt(d) scale matters
    state = RegionalState(layout, 0.1, image_attention, "masked", frozenset({"x"}), references=references)
    result = regional_attention(q, k, v, layout, 0.1, image_attention, "masked", references) if regional else None
    out = result.out if regional else None
    for words in (None, ["pot"]):
        tr = _flux_trace(ca, layout, regional, words)
        tr.observe_regional("x", None, q, k, state, result, value=v, output=out)
        stored, keys = tr.text_tokens[(0, "x", 0)], tr.canvas.token_keys  # [K, N rows, cols]
        by_hand = _attention_by_hand(q, k, layout, regional, image_attention, references)
        for row, (step, j) in enumerate(keys):
            joint = j if step is None else layout.base_text_len + step * layout.step_text_len + j
            assert (stored[row] - by_hand[joint].reshape(2 * 2, 3)).abs().max() < 1e-6, (step, j)
        if words is None:
            assert keys == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2), (1, 3), (None, 0), (None, 1), (None, 2)]
            for n in range(2):  # summed over step n's real tokens: the whole-text mass map
                total = stored[[r for r, (s, _) in enumerate(keys) if s == n]].sum(0)
                assert (total - tr.text_image[(0, "x", 0)][n]).abs().max() < 1e-6
        else:
            assert keys == [(0, 0), (1, 0), (1, 2), (None, 1)]
        content = tr.text_content[(0, "x", 0)]  # [steps + base, ...]: the words' mass, </s> excluded
        for c, (first, count) in enumerate([(4, 2), (8, 3), (0, 2)]):
            words_mass = sum(by_hand[p] for p in range(first, first + count)).reshape(4, 3)
            assert (content[c] - words_mass).abs().max() < 1e-6


def test_flux_concept_scores_are_output_dot_products_and_word_map_softmaxes_over_concepts(ca):
    from cooklab.cookanything.regional import RegionalState, RegionLayout, regional_attention

    layout = RegionLayout(n_regions=2, rows=2, cols=3, step_text_len=4, base_text_len=4)
    torch.manual_seed(3)
    q, k, v = (torch.randn(1, layout.total, 2, 16) for _ in range(3))
    state = RegionalState(layout, 0.1, "region", "masked", frozenset({"x"}))
    result = regional_attention(q, k, v, layout, 0.1, "region", "masked")
    tr = _flux_trace(ca, layout, True)
    tr.observe_regional("x", None, q, k, state, result, value=v, output=result.out)
    o = result.out[0].flatten(1)  # [S, H D]
    image = o[layout.text_len :]  # [N P, H D]
    scores = tr.concept[(0, "x", 0)]
    for row, (step, j) in enumerate(tr.canvas.token_keys):
        joint = j if step is None else 4 + step * 4 + j
        assert (scores[row] - (image @ o[joint]).reshape(4, 3)).abs().max() < 1e-5
    # step 1's text "pot of pot": concepts "pot" (tokens 0 and 2: mean score) and "of"; region 1 is rows 2..3
    pot = (image @ ((o[8] + o[10]) / 2)).reshape(4, 3)[2:]
    of = (image @ o[9]).reshape(4, 3)[2:]
    expected = torch.exp(pot) / (torch.exp(pot) + torch.exp(of))
    m = word_map(tr, "pot", frame=1, method="concept", size=None)
    assert (m - expected).abs().max() < 1e-5
    kept = _flux_trace(ca, layout, True, words=["pot", "a", "of"])  # the concepts: words= found in the text
    kept.observe_regional("x", None, q, k, state, result, value=v, output=result.out)
    assert (word_map(kept, "pot", frame=1, method="concept", size=None) - expected).abs().max() < 1e-5
    pot0, a0 = (image @ o[4]).reshape(4, 3)[:2], (image @ o[5]).reshape(4, 3)[:2]  # step 0: "pot a", no "of"
    assert (word_map(kept, "a", frame=0, method="concept", size=None) - torch.sigmoid(a0 - pot0)).abs().max() < 1e-5
    alone = _flux_trace(ca, layout, True, words=["pot"])  # one concept: the softmax gives it every image token
    alone.observe_regional("x", None, q, k, state, result, value=v, output=result.out)
    assert torch.allclose(word_map(alone, "pot", frame=1, method="concept", size=None), torch.ones(2, 3))


def test_flux_word_map_reads_region_n_and_renormalises_over_step_ns_words(ca):
    from cooklab.cookanything.regional import RegionalState, RegionLayout, regional_attention

    layout = RegionLayout(n_regions=2, rows=2, cols=3, step_text_len=4, base_text_len=4)
    torch.manual_seed(4)
    q, k, v = (torch.randn(1, layout.total, 2, 16) for _ in range(3))
    state = RegionalState(layout, 0.1, "region", "masked", frozenset({"x"}))
    result = regional_attention(q, k, v, layout, 0.1, "region", "masked")
    tr = _flux_trace(ca, layout, True)
    tr.observe_regional("x", None, q, k, state, result, value=v, output=result.out)
    by_hand = _attention_by_hand(q, k, layout, True, "region", None)
    region1 = slice(6, 12)  # region 1's image queries
    pot = (by_hand[8] + by_hand[10])[region1].reshape(2, 3)
    words = (by_hand[8] + by_hand[9] + by_hand[10])[region1].reshape(2, 3)
    assert (word_map(tr, "pot", frame=1, size=None, renormalise=False) - pot).abs().max() < 1e-6
    assert (word_map(tr, "pot", frame=1, size=None) - pot / words).abs().max() < 1e-6
    base_pot = by_hand[1][slice(0, 6)].reshape(2, 3)  # the base prompt's "pot" over region 0, base branch
    assert (word_map(tr, "pot", frame=0, text="base", size=None, renormalise=False) - base_pot).abs().max() < 1e-6
    stack, tokens = token_maps(tr, 1)
    assert tokens == STEP_TOKENS[1] and stack.shape == (4, 2, 3)
    assert torch.allclose(stack.sum(0), tr.text_image[(0, "x", 0)][1, 2:], atol=1e-6)


# ---- (c) a trace with the new captures changes no pixel; the pipelines record the tokens ------------------------


def test_sd_trace_with_kept_words_changes_no_pixel(rd):
    kw = dict(seed=0, num_inference_steps=3, progress=False, output_type="np")
    prompts = ["Put the pot on the stove", "Add the carrots to the pot"]
    plain = rd(prompts, **kw)
    with cooklab.trace(rd, capture=["cross_attention"], layers=("down", "mid", "up"), words=["pot", "carrots"]) as tr:
        traced = rd(prompts, **kw)
    for a, b in zip(plain.images, traced.images, strict=True):
        assert np.array_equal(a, b)
    assert tr.token_rows[0] == word_positions(tr.frames[0].tokens, "pot")
    assert tr.token_rows[1] == [3, 6] and tr.frames[1].tokens[3] == "carrots</w>"  # BOS add the carrots to the pot
    assert word_map(tr, "carrots", frame=1).shape == (64, 64)


@pytest.mark.parametrize("regional", [True, False])
def test_flux_trace_with_token_captures_changes_no_pixel_and_records_the_tokens(ca, regional):
    recipe = cooklab.Recipe.from_steps(["Put carrots in the pot", "Stir the pot"])
    kw = dict(seed=0, num_inference_steps=2, height=64, width=64, progress=False, regional=regional, output_type="np")
    plain = ca(recipe, **kw)
    capture = ["text_image_attention", "text_token_attention", "concept_attention"]
    with cooklab.trace(ca, capture=capture) as tr:
        traced = ca(recipe, **kw)
    assert np.array_equal(plain.canvas, traced.canvas)
    tok = ca.pipe.tokenizer_2
    assert tr.canvas.tokens == [tok.convert_ids_to_tokens(tok(t).input_ids) for t in recipe.texts]
    assert (tr.canvas.base_tokens is not None) == regional
    assert tr.text_tokens and tr.concept and len(tr.text_tokens) == len(tr.text_image)
    for key, per_token in tr.text_tokens.items():
        for n in range(2):
            rows = [r for r, (s, _) in enumerate(tr.canvas.token_keys) if s == n]
            assert (per_token[rows].sum(0) - tr.text_image[key][n]).abs().max() < 1e-6
    assert word_map(tr, "pot", frame=1).shape == (64, 64)
    assert "pot" in prompt_words(tr.canvas.tokens[1])


@pytest.mark.parametrize("regional", [True, False])
def test_flux_per_token_maps_equal_attention_recomputed_in_a_tiny_flux_transformer(ca, regional):
    """In a real call of the tiny Flux transformer: Q and K recomputed by hand from one double block's inputs (its
    projections, norms and RoPE), softmax(Q K^T / sqrt(d)) masked as SRC masks it, equal the stored per-token maps."""
    from diffusers.models.embeddings import apply_rotary_emb

    name = "transformer_blocks.0.attn"
    attn = dict(ca.pipe.transformer.named_modules())[name]
    seen = {}

    def keep(module, args, kwargs):
        seen[tr._step] = (kwargs["hidden_states"], kwargs["encoder_hidden_states"], kwargs["image_rotary_emb"])

    handle = attn.register_forward_pre_hook(keep, with_kwargs=True)
    recipe = cooklab.Recipe.from_steps(["Put carrots in the pot", "Stir the pot"])
    try:
        with cooklab.trace(ca, capture=["text_token_attention", "layout"], layers=(name,)) as tr:
            out = ca(recipe, seed=0, num_inference_steps=2, height=64, width=64, progress=False, regional=regional)
    finally:
        handle.remove()
    layout, key = tr.canvas.layout, name + ".processor"
    assert (key in out.settings["regional_layers"]) == regional and out.settings["regional_steps"] is None

    def project(x, proj, norm):  # [1, S, C] -> [1, S, H, D]
        return norm(proj(x).unflatten(-1, (-1, attn.head_dim)))

    for step, (hidden, text, rope) in seen.items():
        with torch.no_grad():
            q = torch.cat(
                [project(text, attn.add_q_proj, attn.norm_added_q), project(hidden, attn.to_q, attn.norm_q)], 1
            )
            k = torch.cat(
                [project(text, attn.add_k_proj, attn.norm_added_k), project(hidden, attn.to_k, attn.norm_k)], 1
            )
            q, k = apply_rotary_emb(q, rope, sequence_dim=1), apply_rotary_emb(k, rope, sequence_dim=1)
        by_hand = _attention_by_hand(q.float(), k.float(), layout, regional, "region", None)
        stored = tr.text_tokens[(0, key, step)]
        shape = (layout.n_regions * layout.rows, layout.cols)
        assert stored.shape[1:] == shape  # no pooling: every token's map as computed
        for row, (s, j) in enumerate(tr.canvas.token_keys):
            joint = j if s is None else layout.base_text_len + s * layout.step_text_len + j
            assert (stored[row] - by_hand[joint].reshape(shape)).abs().max() < 1e-6, (step, s, j)
