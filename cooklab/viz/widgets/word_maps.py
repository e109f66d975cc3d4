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

_MAPS = {
    "renormalised over the words": dict(renormalise=True),
    "raw attention mass": dict(renormalise=False),
    "ConceptAttention (Flux)": dict(method="concept"),
}


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
        kind=widgets.Dropdown(options=list(_MAPS)[:2], description="map", style=wide),
        layers=widgets.IntRangeSlider(value=(0, 0), min=0, max=0, description="layers", **slider),
        steps=widgets.IntRangeSlider(value=(0, 0), min=0, max=0, description="denoising steps", **slider),
    )


def _refresh(pictures: list[WordPicture], c: dict) -> list[WordPicture]:
    """Offer the chosen model's pictures, the picture's words, its layers and steps; return the model's pictures."""
    mine = [p for p in pictures if p.model == c["model"].value]
    c["picture"].max = len(mine) - 1
    picture = mine[min(c["picture"].value, len(mine) - 1)]
    panels.set_options(c["word"], [(w, w) for w in picture.masks])
    kinds = list(_MAPS) if picture.trace.flux and picture.trace.concept else list(_MAPS)[:2]
    panels.set_options(c["kind"], [(k, k) for k in kinds])
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
    heat = word_map(
        trace,
        word,
        frame=picture.index,
        layers=names[lo : hi + 1],
        steps=steps[first : last + 1],
        size=mask.shape,
        **_MAPS[c["kind"].value],
    ).numpy()  # [H, W]
    info.value = html.escape(
        f"{picture.model}, “{picture.text}”: layers {short_layer_name(names[lo])} … {short_layer_name(names[hi])} "
        f"({hi - lo + 1} of {len(names)}), denoising steps {steps[first]}-{steps[last]}"
    )
    truth = mask if mask.any() and not mask.all() else None
    scores = None if truth is None else score(heat, truth)
    prior_scores = None if truth is None else score(prior, truth)
    panels.show_figures(word_map_figure(picture.image, heat, mask, scores, prior, prior_scores, word))


def word_map_explorer(pictures: list[WordPicture], score, prior):
    """Browse the word maps of ``pictures`` with their scores next to ``prior``'s (see the module doc).

    Controls (``box.controls``): ``picture`` (of the chosen model), ``model``, ``word``, ``kind``
    (renormalised, raw mass, ConceptAttention where the trace holds it), ``layers`` and ``steps``
    (index ranges over the trace's layers in the order the data passes them -- U-Net down, mid, up; Flux
    double, single -- and over its denoising steps).
    """
    import ipywidgets as widgets

    if not pictures:
        raise ValueError("pictures=[]: give at least one WordPicture (a traced picture and its words' masks).")
    c = _controls(widgets, list(dict.fromkeys(p.model for p in pictures)))
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
    rows = [[c["picture"], c["word"], c["kind"]], [c["model"]], [c["layers"], c["steps"]], [info]]
    return panels.panel(widgets, rows, out, c)
