"""Cross-Step Consistency Control (CookAnything, Sec. 3.4, Eq. 12).

Every step is encoded by T5 on its own, so "the carrot" in step 4 knows nothing of "cut the
carrot into cubes" in step 1. CSCC encodes the *whole recipe* once, cuts out each step's
tokens from it ("contextual step tokens": they have attended to every other step), and adds
them to the step's own encoding:

    C^(n)[0 : t_n] = C^(n)[0 : t_n] + lam * C_recipe[b_n : b_n + t_n]        (12)

* ``C^(n)``   [L, D]   T5 encoding of step n alone (padded to L tokens)
* ``C_recipe`` [L_r, D] T5 encoding of the whole description (``whole_description``)
* ``b_n``             index of step n's first token inside the recipe encoding
* ``t_n``             number of step n's tokens (its own tokens, no ``</s>``, no padding)
* ``lam``             fusion weight; the paper uses 0.2 (too large, > 0.6, washes out the
                      step's own details); ``lam = 0`` switches CSCC off.

Finding ``b_n`` and ``t_n`` is the error-prone part. Here the step list is explicit: the
description is built from it (so each step's character span is known), and each token is
given to a step by the character offsets the fast tokenizer reports. Nothing is matched by
string or regular expression, and the appended ``</s>`` and padding (marked by the
tokenizer's special-tokens mask) never belong to a step. Each step is also tokenized alone,
and ``StepSpan.matches`` checks that the recipe tokens at the span are exactly the step's own
tokens, so the two encodings are added position by position. A step whose tokens differ
(a tokenizer that merges across the step boundary, say) is **not fused** (``fused_length ==
0``): adding the encodings of different tokens row by row is not what Eq. 12 means. The
pipeline warns and names such steps (``settings["cscc_unmatched_steps"]``), and the trace's
``canvas.spans`` / ``cscc_delta_norm`` show them with a zero delta.

A tokenizer that puts a start token before the text (CLIP's ``<|startoftext|>``, for CSCC on a
Stable Diffusion U-Net) shifts the step's rows by one: ``StepSpan.own_start`` is the row of the
step's first token in its own encoding (0 for T5), and Eq. 12 then reads
``C^(n)[o : o + t_n] += lam * C_recipe[b_n : b_n + t_n]`` with ``o = own_start``.

With a SentencePiece/Metaspace tokenizer (T5) the word-start marker "▁" of a step's first
word comes from the space *before* the step; its offset may point at that space. The gap
before a step therefore belongs to that step. When the recipe is cut at
``max_sequence_length`` the last steps lose tokens (``StepSpan.truncated``; a step wholly
beyond the limit has ``length == 0`` and is not fused).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import torch
from einops import rearrange

from ..errors import ConfigError

__all__ = ["RecipeSpans", "StepSpan", "cscc_fuse", "step_token_spans", "whole_description"]


def whole_description(steps: list[str], title: str | None = None) -> tuple[str, list[tuple[int, int]]]:
    """The text of the whole recipe and each step's (char_start, char_end) in it.

    The text is ``"{title}. "`` (no extra "." when the title already ends with ".", "!" or
    "?") followed by the steps joined by single spaces. Steps and title are stripped of
    surrounding whitespace; an empty step is an error. This is the text the base branch
    (Whole-Description Control) and CSCC both encode.
    """
    if not steps:
        raise ConfigError("whole_description needs at least one step")
    text = ""
    if title is not None and title.strip():
        title = title.strip()
        text = (title if title.endswith((".", "!", "?")) else title + ".") + " "
    char_spans = []
    for n, step in enumerate(steps):
        step = step.strip()
        if not step:
            raise ConfigError(f"step {n} is empty; remove it or give it text")
        if n > 0:
            text += " "
        char_spans.append((len(text), len(text) + len(step)))
        text += step
    return text, char_spans


@dataclass
class StepSpan:
    """Where step n's tokens are in the recipe encoding."""

    step: int  # n
    start: int  # b_n: index of the step's first token in the recipe encoding (end of the kept tokens if length == 0)
    length: int  # tokens of this step inside the recipe encoding, after truncation
    own_length: int  # t_n: tokens of the step encoded alone (no EOS, no padding), after its own truncation
    truncated: bool  # the recipe encoding was cut before the end of this step
    matches: bool  # recipe ids [start : start + length] == the step's own first `length` ids
    char_start: int  # the step's characters in RecipeSpans.text
    char_end: int
    own_start: int = 0  # row of the step's first token in its own encoding (1 after CLIP's start token)

    @property
    def fused_length(self) -> int:
        """The t of Eq. 12: rows of the step encoding that CSCC changes.

        ``min(own_length, length)`` when the recipe's tokens at the span are the step's own
        (``matches``); 0 otherwise, because Eq. 12 adds the two encodings position by position
        and that sum means something only where both positions hold the same token.
        """
        return min(self.own_length, self.length) if self.matches else 0


@dataclass
class RecipeSpans:
    """The whole description and the token span of every step in its encoding."""

    text: str
    spans: list[StepSpan]
    n_tokens: int  # non-padding tokens of the recipe encoding, including the final </s>

    @property
    def step_texts(self) -> list[str]:
        """The steps as tokenized alone (stripped): encode exactly these as the step prompts.

        A Metaspace tokenizer turns a trailing space into an extra "▁" token, so an unstripped
        step would not line up with its span.
        """
        return [self.text[span.char_start : span.char_end] for span in self.spans]

    @property
    def truncated_steps(self) -> list[int]:
        """Indices of the steps that lost tokens to ``max_sequence_length``."""
        return [span.step for span in self.spans if span.truncated]


def _text_tokens(tokenizer, text: str, max_length: int | None) -> tuple[list[int], list[int], list[int], int]:
    """Tokenize like FluxPipeline._get_t5_prompt_embeds; keep the tokens that come from the text.

    Returns (positions in the encoding, token ids, start character offsets, non-padding
    length). ``max_length=None`` tokenizes without truncation or padding.
    """
    options = dict(return_offsets_mapping=True, return_special_tokens_mask=True)
    if max_length is None:
        encoding = tokenizer(text, truncation=False, verbose=False, **options)  # verbose=False: no "too long" warning
    else:
        encoding = tokenizer(text, padding="max_length", max_length=max_length, truncation=True, **options)
    # special_tokens_mask is 1 for the </s> the post-processor appends and for padding; <unk> is a text token
    positions = [i for i, special in enumerate(encoding["special_tokens_mask"]) if not special]
    ids = [encoding["input_ids"][i] for i in positions]
    starts = [encoding["offset_mapping"][i][0] for i in positions]
    return positions, ids, starts, sum(encoding["attention_mask"])


def _positions_per_step(
    positions: list[int], starts: list[int], owner_start: int, char_ends: list[int]
) -> list[list[int]]:
    """Give each token to the step whose characters [previous end, own end) contain its start offset.

    Steps own the gap before them (the space whose "▁" starts their first word); tokens that
    start before ``owner_start`` belong to the title.
    """
    per_step: list[list[int]] = [[] for _ in char_ends]
    for position, start in zip(positions, starts):
        n = bisect.bisect_right(char_ends, start)  # first step that ends after this character
        if start >= owner_start and n < len(char_ends):
            per_step[n].append(position)
    return per_step


def step_token_spans(
    tokenizer, steps: list[str], title: str | None = None, max_sequence_length: int = 512
) -> RecipeSpans:
    """Find b_n and t_n of Eq. 12 for every step (see the module docstring).

    The recipe is tokenized as the Flux pipeline does (``padding="max_length"``,
    ``truncation=True`` at ``max_sequence_length``), each step alone the same way. Needs a
    fast tokenizer (character offsets); a start token (CLIP) is allowed and recorded as ``own_start``.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError(
            "step_token_spans needs character offsets, which only fast tokenizers give; got "
            f"{type(tokenizer).__name__}. "
            "Fix: pass a fast tokenizer, e.g. the FluxPipeline's tokenizer_2, T5TokenizerFast.from_pretrained(...) "
            "or AutoTokenizer.from_pretrained(..., use_fast=True)."
        )
    text, char_spans = whole_description(steps, title)
    char_ends = [end for _, end in char_spans]
    owner_start = len(text[: char_spans[0][0]].rstrip())  # end of the title (0 without one)

    positions, ids, starts, n_tokens = _text_tokens(tokenizer, text, max_sequence_length)
    kept = _positions_per_step(positions, starts, owner_start, char_ends)
    full_positions, _, full_starts, _ = _text_tokens(tokenizer, text, None)
    full = _positions_per_step(full_positions, full_starts, owner_start, char_ends)
    id_at = dict(zip(positions, ids))
    end_of_text = positions[-1] + 1 if positions else 0  # where a step cut off entirely would have started

    spans = []
    for n, (char_start, char_end) in enumerate(char_spans):
        own_positions, own_ids, _, _ = _text_tokens(tokenizer, text[char_start:char_end], max_sequence_length)
        span = kept[n]
        spans.append(
            StepSpan(
                step=n,
                start=span[0] if span else end_of_text,
                length=len(span),
                own_length=len(own_ids),
                truncated=len(span) < len(full[n]),
                matches=[id_at[p] for p in span] == own_ids[: len(span)],
                char_start=char_start,
                char_end=char_end,
                own_start=own_positions[0] if own_positions else 0,
            )
        )
    return RecipeSpans(text=text, spans=spans, n_tokens=n_tokens)


def cscc_fuse(
    step_embeds: torch.Tensor, recipe_embeds: torch.Tensor, spans: RecipeSpans, lam: float = 0.2
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 12 for all steps: returns (fused [N, L, D], delta [N, L, D]) with fused = step_embeds + delta.

    ``step_embeds`` [N, L, D]: step n encoded alone (row n); ``recipe_embeds`` [1, L_r, D] or
    [L_r, D]: the encoding of ``spans.text``. ``delta[n, :t]`` is ``lam * recipe[b_n : b_n + t]``
    with ``t = spans.spans[n].fused_length`` (rows ``o : o + t`` with ``o = own_start`` after a start
    token), and zero elsewhere -- so a step whose recipe tokens are not its own (``matches`` False,
    ``t = 0``) is left as it is. ``lam = 0`` returns an exact copy. The inputs are not modified.
    """
    if step_embeds.dim() != 3:
        raise ConfigError(f"step_embeds must be [N, L, D] (one row per step), got shape {tuple(step_embeds.shape)}")
    if recipe_embeds.dim() == 3 and recipe_embeds.shape[0] == 1:
        recipe_embeds = rearrange(recipe_embeds, "1 l_r d -> l_r d")
    if recipe_embeds.dim() != 2:
        raise ConfigError(
            f"recipe_embeds must be [1, L_r, D] or [L_r, D] (one recipe), got shape {tuple(recipe_embeds.shape)}"
        )
    n_steps, length, width = step_embeds.shape
    if recipe_embeds.shape[1] != width:
        raise ConfigError(
            f"step_embeds have width D={width} but recipe_embeds D={recipe_embeds.shape[1]}: encode both with the "
            "same T5"
        )
    if n_steps != len(spans.spans):
        raise ConfigError(
            f"step_embeds has {n_steps} steps but spans has {len(spans.spans)}: they must describe the same recipe"
        )

    recipe = recipe_embeds.to(device=step_embeds.device, dtype=step_embeds.dtype)  # [L_r, D]
    delta = torch.zeros_like(step_embeds)  # [N, L, D]
    for n, span in enumerate(spans.spans):
        t, o = span.fused_length, span.own_start
        if o + t > length:
            raise ConfigError(
                f"step {n} has {t} tokens from row {o} but step_embeds only {length} rows: encode the steps with "
                f"max_sequence_length >= {o + t}"
            )
        if span.start + t > recipe.shape[0]:
            raise ConfigError(
                f"step {n} spans recipe tokens {span.start}..{span.start + t - 1} but recipe_embeds has "
                f"{recipe.shape[0]}: "
                "encode the recipe with the max_sequence_length given to step_token_spans"
            )
        if lam != 0:  # skipping keeps lam = 0 exact even where the recipe encoding holds inf (fp16 T5)
            delta[n, o : o + t] = lam * recipe[span.start : span.start + t]  # [t, D]
    return step_embeds + delta, delta
