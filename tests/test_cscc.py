"""CSCC: step token spans found by character offsets, and the Eq. 12 fusion."""

import string

import pytest
import torch
from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers
from tokenizers.models import Unigram
from transformers import ByT5Tokenizer, T5TokenizerFast

from cooklab.cookanything.cscc import RecipeSpans, StepSpan, cscc_fuse, step_token_spans, whole_description
from cooklab.errors import ConfigError
from cooklab.word_tokenizers import TINY_T5_MAX_LENGTH, tiny_clip_tokenizer, tiny_t5_tokenizer

# Subword pieces, so that words split into several tokens as with the real T5 vocabulary.
_SUBWORDS = """▁the ▁a ▁an ▁and ▁add ▁stir ▁bake ▁Bake ▁Add ▁Stir ▁Chop ▁Serve ▁Mix ▁for ▁at ▁to ▁in ▁min
    ▁cup ▁milk ▁salt ▁carrot ▁soup ▁on ▁butter ▁hot ▁well ▁rest ▁cr ème ▁fra î che ▁Saut é
    ion s ed ing er ly ▁1 ▁2 ▁5 80 25 30 20 ml tsp"""


def real_style_t5_tokenizer() -> T5TokenizerFast:
    """A T5TokenizerFast wired like the real T5 tokenizer.json (Flux's tokenizer_2), built in memory.

    Real T5: Unigram model, normalizer Precompiled (nmt_nfkc, a binary table we do not
    have; NFKC stands in) + Replace(" {2,}", " "), pre-tokenizer Metaspace alone (no
    WhitespaceSplit, unlike T5Tokenizer built from a vocab list), "$A </s>" post-processor.
    """
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -3.0)]
    pieces += [(char, -8.0) for char in string.ascii_letters + string.digits + string.punctuation + "°⁄"]
    pieces += [(piece, -5.0) for piece in _SUBWORDS.split()]
    backend = Tokenizer(Unigram(pieces, unk_id=2, byte_fallback=False))
    backend.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")])
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    return T5TokenizerFast(tokenizer_object=backend, extra_ids=0, model_max_length=512)


TOKENIZERS = {"tiny_t5": tiny_t5_tokenizer, "real_style_t5": real_style_t5_tokenizer}

RECIPES = {
    "numbers_punctuation": [
        "Bake at 180°C for 25-30 min.",
        "Add 1/2 cup (120 ml) milk; stir.",
        "Stir, stir, and stir again!",
    ],
    "unicode": ["Sauté the onions in butter — 5 min.", "Add crème fraîche & ½ tsp salt.", "Serve 🍝 hot. ﬁnish"],
    "repeated": ["Chop the carrot.", "Chop the carrot.", "Add the carrot to the carrot soup.", "carrot"],
    "whitespace": ["  Mix   well.  ", "Rest\t20 min.", "Serve."],
}


@pytest.fixture(params=list(TOKENIZERS), scope="module")
def tokenizer(request):
    return TOKENIZERS[request.param]()


# ---------------------------------------------------------------------------
# whole_description
# ---------------------------------------------------------------------------


def test_whole_description_joins_steps_and_reports_their_characters():
    text, spans = whole_description(["Chop.", "  Fry it. ", "Serve"], title="Soup")
    assert text == "Soup. Chop. Fry it. Serve"
    assert [text[start:end] for start, end in spans] == ["Chop.", "Fry it.", "Serve"]
    assert whole_description(["Chop."])[0] == "Chop."
    for title in ("Soup!", "Soup?", "Soup."):  # no "!." for a title with its own stop
        assert whole_description(["Chop."], title=title)[0] == f"{title} Chop."
    assert whole_description(["Chop."], title="  ")[0] == "Chop."


def test_whole_description_refuses_empty_steps():
    with pytest.raises(ConfigError, match="at least one step"):
        whole_description([])
    with pytest.raises(ConfigError, match="step 1 is empty"):
        whole_description(["Chop.", "  "])


# ---------------------------------------------------------------------------
# step_token_spans
# ---------------------------------------------------------------------------


def _encode(tokenizer, text, max_length=512):
    return tokenizer(text, padding="max_length", max_length=max_length, truncation=True)["input_ids"]


@pytest.mark.parametrize("title", [None, "Carrot soup"])
@pytest.mark.parametrize("recipe", list(RECIPES))
def test_spans_are_exact(tokenizer, recipe, title):
    steps = RECIPES[recipe]
    result = step_token_spans(tokenizer, steps, title=title)
    assert isinstance(result, RecipeSpans) and result.text == whole_description(steps, title)[0]
    assert result.step_texts == [step.strip() for step in steps]
    ids = _encode(tokenizer, result.text)
    assert ids[result.n_tokens - 1] == tokenizer.eos_token_id  # n_tokens counts the final </s>
    assert all(i == tokenizer.pad_token_id for i in ids[result.n_tokens :])
    for n, span in enumerate(result.spans):
        own = _encode(tokenizer, steps[n].strip())
        own = own[: own.index(tokenizer.eos_token_id)]
        assert span == StepSpan(n, span.start, len(own), len(own), False, True, span.char_start, span.char_end)
        assert ids[span.start : span.start + span.length] == own  # the recipe tokens are the step's own tokens
        assert result.text[span.char_start : span.char_end] == steps[n].strip()
    # every text token belongs to the title or to exactly one step, in order, and </s> to none
    title_tokens = result.spans[0].start
    assert (title_tokens > 0) == (title is not None)
    for before, after in zip(result.spans, result.spans[1:]):
        assert after.start == before.start + before.length
    last = result.spans[-1]
    assert last.start + last.length == result.n_tokens - 1
    assert result.truncated_steps == []


def test_real_style_first_token_starts_at_the_space_before_the_step():
    """Why a step owns the gap before it: with Metaspace alone, "▁Add" is offset at the space."""
    tokenizer = real_style_t5_tokenizer()
    text, char_spans = whole_description(["Bake at 180°C.", "Add milk."])
    encoding = tokenizer(text, return_offsets_mapping=True)
    offsets = encoding["offset_mapping"]
    second = char_spans[1][0]
    assert any(start == second - 1 for start, _ in offsets)  # a token starting on the separating space
    spans = step_token_spans(tokenizer, ["Bake at 180°C.", "Add milk."])
    assert tokenizer.convert_ids_to_tokens(encoding["input_ids"][spans.spans[1].start]) == "▁Add"


def test_truncation_cuts_the_last_steps_and_reports_them():
    tokenizer = tiny_t5_tokenizer()
    steps = ["Chop the carrot.", "Add salt and pepper to the soup.", "Stir the soup.", "Serve hot soup."]
    full = step_token_spans(tokenizer, steps, max_sequence_length=TINY_T5_MAX_LENGTH)
    assert full.truncated_steps == []
    limit = full.spans[1].start + 3  # keeps 3 tokens of step 1, leaves room for </s>
    cut = step_token_spans(tokenizer, steps, max_sequence_length=limit + 1)
    assert cut.n_tokens == limit + 1
    assert cut.truncated_steps == [1, 2, 3]
    assert cut.spans[0] == full.spans[0]
    one, two, three = cut.spans[1:]
    assert (one.start, one.length, one.own_length, one.matches) == (
        full.spans[1].start,
        3,
        full.spans[1].own_length,
        True,
    )
    assert one.fused_length == 3
    for span in (two, three):
        assert span.length == 0 and span.fused_length == 0 and span.truncated
        assert span.start == limit  # where the cut-off step would have begun


def test_own_truncation_limits_own_length():
    tokenizer = tiny_t5_tokenizer()
    result = step_token_spans(tokenizer, ["Mix " * 20], max_sequence_length=8)
    assert result.spans[0].own_length == 7 and result.spans[0].length == 7  # 8 minus </s>
    assert result.truncated_steps == [0]


def test_slow_tokenizer_is_refused_with_the_fix():
    with pytest.raises(ConfigError, match="fast tokenizer"):
        step_token_spans(ByT5Tokenizer(), ["Chop the carrot."])


def test_a_start_token_shifts_the_fused_rows_by_one():
    """CLIP puts <|startoftext|> first: step n's tokens are rows 1..t_n of its own encoding, and Eq. 12 adds there."""
    tok = tiny_clip_tokenizer()
    steps = ["Chop the carrot.", "Fry the carrot in a pan."]
    spans = step_token_spans(tok, steps, title="Carrots", max_sequence_length=77)
    recipe_ids = tok(spans.text, padding="max_length", max_length=77, truncation=True).input_ids
    for n, span in enumerate(spans.spans):
        own = tok(steps[n], padding="max_length", max_length=77, truncation=True).input_ids
        assert span.own_start == 1 and own[0] == tok.bos_token_id and span.matches
        assert own[1 : 1 + span.own_length] == recipe_ids[span.start : span.start + span.length]
    fused, delta = cscc_fuse(torch.zeros(2, 77, 4), torch.arange(77 * 4.0).reshape(77, 4), spans, lam=1.0)
    for n, span in enumerate(spans.spans):
        rows = delta[n].abs().sum(-1).nonzero().flatten().tolist()
        assert rows == list(range(1, 1 + span.fused_length))
        assert torch.equal(
            delta[n, 1 : 1 + span.fused_length],
            torch.arange(77 * 4.0).reshape(77, 4)[span.start : span.start + span.fused_length],
        )


# ---------------------------------------------------------------------------
# cscc_fuse
# ---------------------------------------------------------------------------

L, D = 16, 8


def _spans(lengths: list[tuple[int, int, int]]) -> RecipeSpans:
    """RecipeSpans from (start, length, own_length) triples."""
    spans = [StepSpan(n, b, length, own, length < own, True, 0, 0) for n, (b, length, own) in enumerate(lengths)]
    return RecipeSpans(text="", spans=spans, n_tokens=0)


@pytest.fixture
def embeds():
    generator = torch.Generator().manual_seed(0)
    step = torch.randn(3, L, D, generator=generator)  # [N, L, D]
    recipe = torch.randn(1, 2 * L, D, generator=generator)  # [1, L_r, D]
    spans = _spans([(0, 5, 5), (5, 7, 7), (12, 2, 6)])  # step 2 was cut after 2 tokens
    return step, recipe, spans


def test_lambda_zero_is_an_exact_copy(embeds):
    step, recipe, spans = embeds
    recipe = recipe.clone()
    recipe[0, 3] = float("inf")  # fp16 T5 can overflow; lam = 0 must still be exact
    fused, delta = cscc_fuse(step, recipe, spans, 0.0)
    assert torch.equal(fused, step) and fused.data_ptr() != step.data_ptr()
    assert not delta.any()


def test_fusion_changes_only_the_step_tokens(embeds):
    step, recipe, spans = embeds
    step_before, recipe_before = step.clone(), recipe.clone()
    fused, delta = cscc_fuse(step, recipe, spans, 0.5)
    assert fused.shape == delta.shape == step.shape
    assert torch.equal(step, step_before) and torch.equal(recipe, recipe_before)  # inputs untouched
    assert torch.equal(fused, step + delta)
    for n, span in enumerate(spans.spans):
        t = span.fused_length
        assert torch.equal(delta[n, :t], 0.5 * recipe[0, span.start : span.start + t])
        assert not delta[n, t:].any()
        changed = (fused[n] != step[n]).any(dim=-1)  # [L]
        assert torch.equal(changed, torch.arange(L) < t)
    same, _ = cscc_fuse(step, recipe[0], spans, 0.5)  # [L_r, D] works too
    assert torch.equal(same, fused)


def test_a_span_that_exactly_fills_the_encodings_is_fused(embeds):
    step, recipe, _ = embeds
    spans = _spans([(0, 5, 5), (5, 7, 7), (2 * L - L, L, L)])  # step 2: t = L rows, ending at the recipe's last row
    fused, delta = cscc_fuse(step, recipe, spans, 0.5)
    assert torch.equal(delta[2], 0.5 * recipe[0, L : 2 * L])


def test_a_step_cut_off_entirely_is_not_fused(embeds):
    step, recipe, _ = embeds
    fused, delta = cscc_fuse(step, recipe, _spans([(0, 5, 5), (5, 0, 4), (5, 0, 3)]), 0.2)
    assert not delta[1:].any() and torch.equal(fused[1:], step[1:])


def test_a_step_whose_recipe_tokens_are_not_its_own_is_not_fused(embeds):
    step, recipe, spans = embeds
    spans.spans[1].matches = False  # Eq. 12 adds position by position: only where both hold the same token
    assert spans.spans[1].fused_length == 0
    fused, delta = cscc_fuse(step, recipe, spans, 0.5)
    assert not delta[1].any() and torch.equal(fused[1], step[1])
    assert delta[0].any() and delta[2].any()


def test_shape_errors_are_clear(embeds):
    step, recipe, spans = embeds
    with pytest.raises(ConfigError, match=r"step_embeds must be \[N, L, D\]"):
        cscc_fuse(step[0], recipe, spans, 0.2)
    with pytest.raises(ConfigError, match="recipe_embeds must be"):
        cscc_fuse(step, recipe.repeat(2, 1, 1), spans, 0.2)
    with pytest.raises(ConfigError, match="width D=8 but recipe_embeds D=4"):
        cscc_fuse(step, recipe[..., :4], spans, 0.2)
    with pytest.raises(ConfigError, match="3 steps but spans has 2"):
        cscc_fuse(step, recipe, _spans([(0, 5, 5), (5, 7, 7)]), 0.2)
    with pytest.raises(ConfigError, match="only 6 rows"):
        cscc_fuse(step[:, :6], recipe, spans, 0.2)
    with pytest.raises(ConfigError, match="recipe_embeds has 10"):
        cscc_fuse(step, recipe[:, :10], spans, 0.2)


def test_fusion_with_the_tiny_flux_text_encoder():
    """End to end with FluxPipeline's own T5 encoding: shapes line up and the recipe context differs."""
    from cooklab.models import tiny_flux

    pipe = tiny_flux()
    steps = ["Chop the carrot into cubes.", "Fry the carrot in butter.", "Serve the carrot."]
    spans = step_token_spans(pipe.tokenizer_2, steps, title="Carrots", max_sequence_length=TINY_T5_MAX_LENGTH)
    with torch.no_grad():
        step_embeds = pipe._get_t5_prompt_embeds(
            spans.step_texts, max_sequence_length=TINY_T5_MAX_LENGTH, device="cpu"
        )
        recipe_embeds = pipe._get_t5_prompt_embeds(spans.text, max_sequence_length=TINY_T5_MAX_LENGTH, device="cpu")
    assert step_embeds.shape == (3, TINY_T5_MAX_LENGTH, 32) and recipe_embeds.shape == (1, TINY_T5_MAX_LENGTH, 32)
    assert all(span.matches for span in spans.spans)
    fused, delta = cscc_fuse(step_embeds, recipe_embeds, spans, 0.2)
    for n, span in enumerate(spans.spans):
        contextual = recipe_embeds[0, span.start : span.start + span.length]
        own = step_embeds[n, : span.length]
        assert not torch.allclose(contextual, own)  # same tokens, but they attended to the whole recipe
        assert torch.equal(delta[n, : span.length], 0.2 * contextual)
