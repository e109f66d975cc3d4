"""Word heat maps from a trace: where one word of a prompt is attended to, aggregated as DAAM does.

A trace stores per-token maps for every captured (layer, denoising step): Recipe Diffusion's
``"cross_attention"`` (``trace.cross_attention``, rows ``trace.token_rows[frame]``) and
CookAnything's ``"text_token_attention"`` / ``"concept_attention"`` (``trace.text_tokens`` /
``trace.concept``, rows ``trace.canvas.token_keys``). This module turns them into one map per
word, following DAAM (Tang et al. 2023, "What the DAAM: Interpreting Stable Diffusion Using
Cross Attention", ACL): aggregate a word's attention over layers and time steps, then upsample
to the picture. Every choice is a parameter:

    M_w(x) = sum_{(l, s) in layers x steps} w_l  sum_{t in tokens(w)} A_{l,s}[t](x)  /  sum_{(l, s)} w_l

* ``tokens(w)``: the word's token positions (``cooklab.instrument.words``: multi-token words,
  every occurrence or the ``occurrence``-th, case-insensitive, phrases); a word's map is the
  *sum* over its tokens, its attention mass;
* ``layers``: names or groups (``"down"``/``"mid"``/``"up"``; ``"double"``/``"single"``), None:
  all captured; ``steps``: denoising step positions (e.g. ``range(0, 10)``), None: all captured;
* ``weighting``: ``"equal"`` (``w_l = 1``, every captured map counts alike) or
  ``"resolution"`` (``w_l = rows_l * cols_l``, the layer's native token grid: a 32x32 layer
  weighs 4 times a 16x16 one; every Flux layer has the same grid, so there the two agree). Maps
  of coarser layers are first brought to the finest stored grid (nearest neighbour, as
  ``Trace`` does);
* ``renormalise=True``: divide by the aggregated mass on all the prompt's words at the same
  pixel, ``R_w(x) = M_w(x) / sum_{t in content} M_t(x)`` (start/end tokens -- CLIP's
  ``<|startoftext|>`` / ``<|endoftext|>``, T5's ``</s>`` -- excluded), so a pixel's values over
  the prompt's words sum to 1 and a sink token cannot dim every word alike (0 where the words get
  no mass); ``False``: the raw attention mass ``M_w``;
* ``size``: ``"image"`` (the picture's height and width), a ``(H, W)``, or None (the stored
  grid): bilinear upsampling (``pooling.upsample``) of the aggregated (and renormalised) map.

Where this differs from DAAM, and why it does not change a renormalised map's shape: DAAM
upsamples every head's map of every layer to the latent size (bicubic) and *sums* over heads,
layers and steps; here heads are averaged when the trace records (memory), coarse layers are
brought to the finest stored grid by nearest neighbour, the aggregate is a weighted *mean* (a
constant factor, gone after renormalisation), and only the aggregate is upsampled (bilinear).

Pictures: for Recipe Diffusion ``frame`` is the frame; for CookAnything it is the recipe step
n (0-based) -- the map of region n of the canvas for a word of step n's text (``text="step"``)
or of the base prompt (``text="base"``).

``method="concept"`` (CookAnything, capture ``"concept_attention"``) reads ConceptAttention's
output-space scores instead (Helbling et al. 2025, "ConceptAttention: Diffusion Transformers Learn
Highly Interpretable Features", ICML, Sec. 4): per (layer, step), the saliency of concept c at
image token x is ``softmax_c(o_x . o_c)``, the softmax over the concepts of the dot product of
x's attention output with the concept's; the maps are then averaged over layers and steps as
above. The paper adds a separate stream of concept tokens that attend without being attended;
here the concepts are words of the prompt itself (the trace's ``words=``, else every word of the
text), ``o_c`` the mean output of the word's tokens, so nothing is added to the model's
computation. ``renormalise`` does not apply (the softmax already sums to 1 over the concepts).

``token_maps`` returns the aggregated ``[K, G, G]`` stack of the kept tokens with their token
strings, the input of any other reduction.
"""

from __future__ import annotations

import torch

from .pooling import upsample
from .words import content_positions, prompt_words, word_occurrences, word_positions

__all__ = ["WEIGHTINGS", "token_maps", "word_map"]

WEIGHTINGS = ("equal", "resolution")


def _aggregate(trace, maps: list[tuple[str, torch.Tensor]], weighting: str) -> torch.Tensor:
    """sum_l w_l M_l / sum_l w_l over the chosen maps, each on the finest stored grid."""
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting={weighting!r}: choose one of {list(WEIGHTINGS)}.")
    size = (max(v.shape[-2] for _, v in maps), max(v.shape[-1] for _, v in maps))
    total, weights = 0.0, 0.0
    for layer, value in maps:
        rows, cols = trace.layer_grid[layer]
        w = float(rows * cols) if weighting == "resolution" else 1.0
        total = total + w * upsample(value, size)
        weights += w
    return total / weights


def _flux_rows(trace, frame: int, text: str) -> tuple[list[str], list[int], int]:
    """(the text's tokens, the trace's map rows holding them, its row in ``trace.text_content``)."""
    canvas = trace.canvas
    if canvas is None or canvas.token_keys is None:
        raise KeyError("no per-token maps: trace a CookAnything call with capture=['text_token_attention'].")
    if text not in ("step", "base"):
        raise ValueError(f"text={text!r}: 'step' (step n's own text) or 'base' (the whole description).")
    if text == "base" and not canvas.base_tokens:
        raise KeyError("this call had no base prompt (regional=False): use text='step'.")
    source = frame if text == "step" else None
    tokens = canvas.tokens[frame] if text == "step" else canvas.base_tokens
    rows = [i for i, (s, _) in enumerate(canvas.token_keys) if s == source]
    content_row = frame if text == "step" else len(canvas.tokens)
    return tokens, rows, content_row


def _region(trace, stack: torch.Tensor, frame: int) -> torch.Tensor:
    """Region ``frame``'s rows of a canvas map [..., N G, G]."""
    g = stack.shape[-2] // len(trace.canvas.tokens)
    return stack[..., frame * g : (frame + 1) * g, :]


def token_maps(
    trace, frame: int = 0, layers=None, steps=None, weighting: str = "equal", text: str = "step"
) -> tuple[torch.Tensor, list[str]]:
    """([K, G, G] the kept tokens' attention aggregated over layers and steps, their K token strings).

    Recipe Diffusion: frame ``frame``'s prompt tokens (BOS/EOS included when kept);
    CookAnything: the tokens of step ``frame``'s text (``text="base"``: the base prompt's) over
    region ``frame``. No renormalisation, no upsampling: the raw head-mean attention mass.
    """
    if trace.flux:
        tokens, rows, _ = _flux_rows(trace, frame, text)
        stack = _region(
            trace, _aggregate(trace, trace.captured(trace.text_tokens, 0, layers, steps), weighting), frame
        )
        return stack[rows], [tokens[trace.canvas.token_keys[r][1]] for r in rows]
    stack = _aggregate(trace, trace.captured(trace.cross_attention, frame, layers, steps), weighting)
    return stack, [trace.frames[frame].tokens[p] for p in trace.token_rows[frame]]


def word_map(
    trace,
    word: str,
    frame: int = 0,
    occurrence: int | None = None,
    layers=None,
    steps=None,
    weighting: str = "equal",
    renormalise: bool = True,
    size="image",
    text: str = "step",
    method: str = "attention",
) -> torch.Tensor:
    """[H, W] where ``word`` (a word or a phrase) is attended to in picture ``frame`` (see the module doc).

    method: ``"attention"`` (cross-attention / joint attention over the text keys) or
    ``"concept"`` (CookAnything: ConceptAttention's output-space saliency).
    """
    if method == "concept":
        m = _concept_map(trace, word, frame, occurrence, layers, steps, weighting, text)
    elif method == "attention":
        m = _attention_map(trace, word, frame, occurrence, layers, steps, weighting, renormalise, text)
    else:
        raise ValueError(f"method={method!r}: choose 'attention' or 'concept'.")
    return m if size is None else upsample(m, _picture_size(trace, frame) if size == "image" else size, "bilinear")


def _attention_map(trace, word, frame, occurrence, layers, steps, weighting, renormalise, text) -> torch.Tensor:
    """[G, G] the word's aggregated attention mass, renormalised over the prompt's words if asked."""
    if trace.flux:
        tokens, rows, content_row = _flux_rows(trace, frame, text)
        kept = [trace.canvas.token_keys[r][1] for r in rows]
        table, content_table, key = trace.text_tokens, trace.text_content, 0
    else:
        tokens, kept, key = trace.frames[frame].tokens, trace.token_rows[frame], frame
        rows, table, content_table = list(range(len(kept))), trace.cross_attention, trace.cross_content
    positions = word_positions(tokens, word, occurrence)
    missing = [p for p in positions if p not in kept]
    if missing:
        raise KeyError(f"the tokens of {word!r} were not kept by the trace (words={trace.words}): name it in words=.")
    stack = _aggregate(trace, trace.captured(table, key, layers, steps), weighting)  # [K, G, G]
    m = stack[[rows[kept.index(p)] for p in positions]].sum(0)  # the word's mass
    if renormalise:
        content = _aggregate(trace, trace.captured(content_table, key, layers, steps), weighting)
        content = content[content_row] if trace.flux else content  # [G, G] mass on all the prompt's words
        m = torch.where(content > 0, m / content.clamp_min(1e-30), torch.zeros_like(m))
    return _region(trace, m, frame) if trace.flux else m


def _concept_map(trace, word, frame, occurrence, layers, steps, weighting, text) -> torch.Tensor:
    """[G, G] ConceptAttention: softmax over the concepts of o_x . o_c per (layer, step), then aggregated.

    The concepts: the trace's ``words`` found in this text (else every word of the text), and ``word``.
    """
    if not trace.flux or not trace.concept:
        raise KeyError("method='concept' needs a CookAnything trace with capture=['concept_attention'].")
    tokens, rows, _ = _flux_rows(trace, frame, text)
    kept = [trace.canvas.token_keys[r][1] for r in rows]
    content = set(content_positions(tokens))

    def concept_rows(positions):  # map rows of a concept's tokens (start/end tokens have no word of their own)
        positions = [p for p in positions if p in content]
        if any(p not in kept for p in positions):
            raise KeyError(f"the tokens of {word!r} or another concept were not kept (words={trace.words}).")
        return [rows[kept.index(p)] for p in positions]

    target = concept_rows(word_positions(tokens, word, occurrence))
    others = [w for w in dict.fromkeys(trace.words or prompt_words(tokens)) if w.lower() != word.lower()]
    chosen = [target] + [r for r in (concept_rows(word_positions(tokens, w)) for w in others if _in(tokens, w)) if r]
    maps = [
        (layer, torch.softmax(torch.stack([value[r].mean(0) for r in chosen]), dim=0)[0])
        for layer, value in trace.captured(trace.concept, 0, layers, steps)
    ]  # softmax over the concepts at every image token; the word is concept 0
    return _region(trace, _aggregate(trace, maps, weighting), frame)


def _in(tokens: list[str], word: str) -> bool:
    return bool(word_occurrences(tokens, word))


def _picture_size(trace, frame: int) -> tuple[int, int]:
    """(H, W) of picture ``frame``: a frame's image, or step ``frame``'s image of a CookAnything canvas."""
    image = trace.canvas.images[frame] if trace.flux and trace.canvas.images else trace.frames[frame].image
    if image is None:
        raise ValueError(f"picture {frame} has no image in the trace yet: pass size=(H, W) or size=None.")
    if hasattr(image, "shape"):  # numpy [H, W, C]
        return tuple(image.shape[-3:-1]) if image.ndim >= 3 else tuple(image.shape[-2:])
    return image.size[1], image.size[0]  # PIL: (width, height)
