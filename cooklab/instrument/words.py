"""Word -> token positions: which of a prompt's tokens spell a word or phrase, for CLIP and T5 tokens.

A trace records every prompt as the token strings its tokenizer produced
(``Trace.frames[f].tokens`` for Recipe Diffusion's CLIP prompts, ``Trace.canvas.tokens[n]`` and
``Trace.canvas.base_tokens`` for CookAnything's T5 texts). A word map needs the *positions* of
a word among them, and the two tokenizers mark word boundaries differently:

* CLIP byte-level BPE (Stable Diffusion): a token that ends a word ends in ``</w>``
  (``['<|startoftext|>', 'put</w>', 'car', 'rots</w>', ',</w>', '<|endoftext|>']``);
* T5 sentencepiece (Flux): a token that starts a word starts with ``▁``
  (``['▁put', '▁car', 'rots', ',', '</s>']``).

Both are read the same way: the tokens are joined into the prompt's text, a space at every
word boundary (none before punctuation, so both spell ``"pot, then"``), remembering which
token each character came from. A word or phrase (several words separated by spaces) is then
searched in that text, case-insensitively, at word boundaries only (``"carrot"`` does not
match ``"carrots"``; punctuation next to a word counts as a boundary). Its positions are the
tokens holding its characters: a word split into several tokens gives them all (with T5, also
a bare ``▁`` token right before it, which opens the word: ``['▁', 'C', 'a', 'r', ...]``).

Start/end tokens (``SPECIAL_TOKENS``: CLIP's ``<|startoftext|>`` / ``<|endoftext|>``, T5's
``</s>``, padding) spell no word: ``content_positions`` lists every other token, the set a
word map is renormalised over.

::

    tokens = ['<|startoftext|>', 'put</w>', 'the</w>', 'pot</w>', 'on</w>', 'the</w>', 'pot</w>', '<|endoftext|>']
    word_occurrences(tokens, "pot")          # [[3], [6]]   every occurrence
    word_positions(tokens, "POT")            # [3, 6]       all of them (case-insensitive)
    word_positions(tokens, "pot", occurrence=1)   # [6]    the second one
    word_positions(tokens, "the pot")        # [2, 3, 5, 6] a phrase
    word_positions(tokens, "lid")            # KeyError naming the prompt's words
"""

from __future__ import annotations

import re

__all__ = [
    "SPECIAL_TOKENS",
    "content_positions",
    "kept_positions",
    "prompt_words",
    "word_occurrences",
    "word_positions",
]

SPECIAL_TOKENS = frozenset({"<|startoftext|>", "<|endoftext|>", "</s>", "<s>", "<pad>"})
_CLIP_END, _T5_START = "</w>", "\u2581"  # "</w>" ends a CLIP word; "▁" starts a T5 word


def content_positions(tokens: list[str]) -> list[int]:
    """Positions of the tokens that spell the prompt (start/end and padding tokens left out)."""
    return [i for i, t in enumerate(tokens) if t not in SPECIAL_TOKENS]


def _spelled(tokens: list[str]) -> tuple[str, list[int]]:
    """(the prompt's text in lower case, one space per word boundary; the token position of every character).

    Spaces belong to no token (position -1).
    """
    clip = any(t.endswith(_CLIP_END) for t in tokens)
    chars: list[tuple[str, int]] = []  # (character, token position)
    pending = False  # a word boundary before the next character
    for i, token in enumerate(tokens):
        if token in SPECIAL_TOKENS:
            pending = True
            continue
        if clip:
            piece, starts, ends = token.removesuffix(_CLIP_END), False, token.endswith(_CLIP_END)
        else:
            piece, starts, ends = token.removeprefix(_T5_START), token.startswith(_T5_START), False
        pending = pending or starts
        if piece and pending and chars and piece[0].isalnum():  # no space before punctuation: "pot, then"
            chars.append((" ", -1))
        if piece:
            pending = False
        chars.extend((c, i) for c in piece.lower())
        pending = pending or ends
    return "".join(c for c, _ in chars), [i for _, i in chars]


def prompt_words(tokens: list[str]) -> list[str]:
    """The prompt's words as its tokens spell them (lower case, punctuation kept), start/end tokens left out."""
    return _spelled(tokens)[0].split()


def word_occurrences(tokens: list[str], word: str) -> list[list[int]]:
    """Token positions of every occurrence of ``word`` (a word or a phrase), in prompt order; [] when absent.

    Case-insensitive; a match must start and end at a word boundary (a space, punctuation or
    the text's ends), so a word never matches inside a longer one.
    """
    text, owner = _spelled(tokens)
    needle = re.sub(r" ([^\w\s])", r"\1", " ".join(word.lower().split()))  # spelled as _spelled spells it
    if not needle:
        raise ValueError("word='': give a word or a phrase of the prompt.")
    found, start = [], text.find(needle)
    while start >= 0:
        end = start + len(needle)
        before_ok = start == 0 or not (text[start - 1].isalnum() and needle[0].isalnum())
        after_ok = end == len(text) or not (text[end].isalnum() and needle[-1].isalnum())
        if before_ok and after_ok:
            positions = sorted({owner[c] for c in range(start, end) if owner[c] >= 0})
            if positions[0] > 0 and tokens[positions[0] - 1] == _T5_START:  # a bare "▁" opens the word
                positions.insert(0, positions[0] - 1)
            found.append(positions)
        start = text.find(needle, start + 1)
    return found


def word_positions(tokens: list[str], word: str, occurrence: int | None = None) -> list[int]:
    """Token positions of ``word`` in ``tokens``: every occurrence (``occurrence=None``) or the n-th (0-based).

    Raises KeyError naming the prompt's words when the word is not in the prompt, IndexError
    when it occurs fewer than ``occurrence + 1`` times.
    """
    found = word_occurrences(tokens, word)
    if not found:
        raise KeyError(f"{word!r} is not a word of the prompt; its words are {prompt_words(tokens)}.")
    if occurrence is None:
        return sorted({p for positions in found for p in positions})
    if not -len(found) <= occurrence < len(found):
        raise IndexError(f"occurrence={occurrence}: {word!r} occurs {len(found)} time(s) in the prompt.")
    return found[occurrence]


def kept_positions(tokens: list[str], words: list[str] | None) -> list[int]:
    """The positions a trace keeps maps for: every token (``words=None``) or those spelling any of ``words``.

    A word absent from this prompt keeps nothing here (another prompt of the call may hold it).
    """
    if words is None:
        return list(range(len(tokens)))
    return sorted({p for word in words for positions in word_occurrences(tokens, word) for p in positions})
