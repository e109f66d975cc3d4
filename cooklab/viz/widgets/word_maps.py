"""An explorer of word heat maps: pick a picture, a word, a layer range and denoising steps; see the map and its score.

    pictures = [WordPicture("toy SD", tr, 0, out.images[0], {"pot": pot_mask, "carrots": carrot_mask}), ...]
    word_map_explorer(pictures, score=segmentation_scores, prior=centre_prior((64, 64)))

Each ``WordPicture`` is one generated picture with its trace (``cooklab.trace``: Recipe Diffusion's
``"cross_attention"``, CookAnything's ``"text_token_attention"``, and ``"concept_attention"`` for
ConceptAttention's maps), the picture's index in it (the frame, or the recipe step of the canvas)
and the true mask of each word's object. The map is ``cooklab.instrument.word_maps.word_map``
over the chosen layers (a range in the order the data passes them) and denoising steps; ``score(map, mask)`` returns
its ``{"iou_area", "auroc"}`` (``cooklab.metrics.attention_segmentation.segmentation_scores``, passed
in by the caller), and the same score of ``prior`` is drawn next to it (``word_map_figure``).

The explorer's mechanism toggle is the per-pixel renormalisation over the prompt's words (start and
end tokens left out, ``word_map``'s ``renormalise``)::

    on:  R_w(x) = D_w(x) / sum over the prompt's words v of D_v(x)    the word's share of the words' attention
    off: D_w(x)                                                        the raw mass, the start token's sink and all

Its title gives the shown map's IoU and AUROC, the other setting's AUROC in brackets, and the
prior's title by how much the prior beats (or loses to) the map shown. In the toy SD the start
token takes most of the attention on the container, so the raw map of the container word ranks
the container last (AUROC near 0) and the renormalised one near the top (``docs/attention_maps.md``).
ipywidgets is imported inside the function.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

import numpy as np

from ...instrument.word_maps import word_map
from ..common import short_layer_name
from ..word_maps import word_map_figure
from . import panels

__all__ = ["WordPicture", "word_map_explorer"]

#: the map's method (``word_map``'s ``method``); ConceptAttention only where the trace holds it (Flux)
_METHODS = {"attention (DAAM)": "attention", "ConceptAttention (Flux)": "concept"}
#: the mechanism toggle's two settings of an attention map: its name in a title, and the other's short name
_RENORMALISE = {True: ("renormalised over the words", "raw"), False: ("raw attention mass", "renormalised")}


@dataclass
class WordPicture:
    """One generated picture: its model's name, its trace, its index there, the image, each word's true mask."""

    model: str
    trace: object  # cooklab.Trace of the call that drew it
    index: int  # the frame (Recipe Diffusion) or the recipe step (CookAnything) in the trace
    image: object  # PIL image or [H, W, 3] array
    masks: dict[str, np.ndarray] = field(default_factory=dict)  # word -> [H, W] bool truth
    text: str = ""  # the prompt of this picture


def _table(picture: WordPicture) -> str:
    return "text_tokens" if picture.trace.flux else "cross_attention"


#: where a layer sits in the data's path (diffusers lists a U-Net's processors down, up, mid)
_DEPTH = ("down_blocks.", "mid_block.", "up_blocks.", "transformer_blocks.", "single_transformer_blocks.")


def _layers(picture: WordPicture) -> list[str]:
    """The trace's layers of this picture in the order the data passes them: U-Net down, mid, up; Flux double,
    single."""
    names = picture.trace.layers(_table(picture))
    return sorted(names, key=lambda n: next(i for i, p in enumerate(_DEPTH) if n.startswith(p)))


def _controls(widgets, models: list[str]) -> dict:
    wide = {"description_width": "initial"}
    slider = dict(continuous_update=False, style=wide, layout=widgets.Layout(width="340px"))
    return dict(
        picture=widgets.IntSlider(0, 0, 0, description="picture", **slider),
        model=widgets.ToggleButtons(options=models, description="model", style=wide),
        word=widgets.Dropdown(description="word", style=wide),
        mechanism=panels.mechanism_toggle(
            widgets, "renormalise", on="on: share of the words' attention", off="off: raw attention mass"
        ),
        method=widgets.Dropdown(options=list(_METHODS)[:1], description="map", style=wide),
        layers=widgets.IntRangeSlider(value=(0, 0), min=0, max=0, description="layers", **slider),
        steps=widgets.IntRangeSlider(value=(0, 0), min=0, max=0, description="denoising steps", **slider),
    )


def _refresh(pictures: list[WordPicture], c: dict) -> list[WordPicture]:
    """Offer the chosen model's pictures, the picture's words, its layers and steps; return the model's pictures."""
    mine = [p for p in pictures if p.model == c["model"].value]
    c["picture"].max = len(mine) - 1
    picture = mine[min(c["picture"].value, len(mine) - 1)]
    panels.set_options(c["word"], [(w, w) for w in picture.masks])
    methods = list(_METHODS) if picture.trace.flux and picture.trace.concept else list(_METHODS)[:1]
    panels.set_options(c["method"], [(k, k) for k in methods])
    c["mechanism"].disabled = _METHODS[c["method"].value] == "concept"  # ConceptAttention: its own softmax
    n_layers = len(_layers(picture))
    n_steps = len(picture.trace.steps(0 if picture.trace.flux else picture.index, _table(picture)))
    for name, n in (("layers", n_layers), ("steps", n_steps)):
        if c[name].max != n - 1:
            c[name].max = n - 1
            c[name].value = (0, n - 1)
    return mine


def _draw(picture: WordPicture, c: dict, score, prior, info) -> None:
    trace, word = picture.trace, c["word"].value
    names = _layers(picture)
    lo, hi = c["layers"].value
    steps = trace.steps(0 if trace.flux else picture.index, _table(picture))
    first, last = c["steps"].value
    mask = picture.masks[word]
    method, renormalise = _METHODS[c["method"].value], c["mechanism"].value

    def heat(renormalise: bool) -> np.ndarray:  # [H, W]
        chosen = dict(layers=names[lo : hi + 1], steps=steps[first : last + 1], size=mask.shape, method=method)
        return word_map(trace, word, frame=picture.index, renormalise=renormalise, **chosen).numpy()

    shown = heat(renormalise)
    info.value = html.escape(
        f"{picture.model}, “{picture.text}”: layers {short_layer_name(names[lo])} … {short_layer_name(names[hi])} "
        f"({hi - lo + 1} of {len(names)}), denoising steps {steps[first]}-{steps[last]}"
        + (
            " · ConceptAttention: a softmax over the concepts, renormalise does not apply"
            if method == "concept"
            else ""
        )
    )
    truth = mask if mask.any() and not mask.all() else None
    scores = None if truth is None else score(shown, truth)
    prior_scores = None if truth is None else score(prior, truth)
    if method == "concept":
        kind, other = "ConceptAttention", None
    else:
        kind, short = _RENORMALISE[renormalise]
        other = (short, None if truth is None else score(heat(not renormalise), truth))
    panels.show_figures(
        word_map_figure(picture.image, shown, mask, scores, prior, prior_scores, word, kind=kind, other=other)
    )


def word_map_explorer(pictures: list[WordPicture], score, prior, picture: int = 0):
    """Browse the word maps of ``pictures`` with their scores next to ``prior``'s (see the module doc).

    Controls (``box.controls``): ``mechanism`` (renormalise on: the word's share of the attention on
    the prompt's words at each pixel; off: the raw attention mass, start token and all), ``picture``
    (of the chosen model), ``model``, ``word``, ``method`` (attention, or ConceptAttention where the
    trace holds it; renormalise then does not apply and is disabled), ``layers`` and ``steps``
    (index ranges over the trace's layers in the order the data passes them -- U-Net down, mid, up; Flux
    double, single -- and over its denoising steps). picture: the one shown first, counted among
    the first model's pictures.
    """
    import ipywidgets as widgets

    if not pictures:
        raise ValueError("pictures=[]: give at least one WordPicture (a traced picture and its words' masks).")
    models = list(dict.fromkeys(p.model for p in pictures))
    c = _controls(widgets, models)
    c["picture"].max = sum(p.model == models[0] for p in pictures) - 1
    if not 0 <= picture <= c["picture"].max:
        raise ValueError(f"picture={picture}: the first model has pictures 0 to {c['picture'].max}.")
    c["picture"].value = picture
    info, out = widgets.HTML(), widgets.Output()
    busy = [False]  # True while options are replaced: one redraw afterwards

    def update(_=None):
        if busy[0]:
            return
        busy[0] = True
        try:
            mine = _refresh(pictures, c)
        finally:
            busy[0] = False
        picture = mine[c["picture"].value]
        panels.redraw(out, lambda: _draw(picture, c, score, prior, info))

    for control in c.values():
        control.observe(update, names="value")
    update()
    rows = [[c["mechanism"]], [c["picture"], c["word"], c["method"]], [c["model"]], [c["layers"], c["steps"]], [info]]
    return panels.panel(widgets, rows, out, c)
