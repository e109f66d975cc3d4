"""An explorer of a LoRA adapter's scale (CookAnything's training-based mode): scale 0 beside a chosen scale.

    pipe.load_lora(path)
    box = lora_explorer(pipe, recipe, scales=(0.5, 1, 2, 3), seed=0, measure=oracle_consistency, **gen)

A loaded LoRA changes every weight it adapts by a scaled low-rank update, and ``lora_scale`` multiplies
that update for one call::

    W x  ->  W x + s * (alpha / r) * B A x        s = lora_scale; s = 0 is exactly the base model

so scale 0 is training-free CookAnything and scale 1 the adapter as trained. Every offered scale
and scale 0 are generated once, on the same seed, when the explorer is built (``box.outputs``);
the toggle and the slider only redraw. ipywidgets is imported inside the function.
"""

from __future__ import annotations

import html

import numpy as np
from matplotlib import colormaps

from ..common import image_array
from ..storyboard import comparison_figure
from . import panels
from .measures import Measure, measure_label

__all__ = ["lora_explorer"]

_HEAT = "magma"  # the difference maps' colours: black = no change, yellow = the largest change at this scale


def _difference(images, reference) -> list[np.ndarray]:
    """Per frame, ``|image - reference|`` averaged over R, G, B: N maps ``[H, W]`` in [0, 1]."""
    return [np.abs(image_array(a) - image_array(b)).mean(-1) for a, b in zip(images, reference)]


def _heat(maps: list[np.ndarray], vmax: float) -> list[np.ndarray]:
    """The maps as ``[H, W, 3]`` colour pictures on a square-root scale: colour = magma(sqrt(d / vmax)).

    0 is black and ``vmax`` (the top of the maps' own range) yellow; the square root lifts the many
    small changes next to the few large ones (a change of 1 % of ``vmax`` shows at 10 % of the scale).
    ``vmax = 0`` (nothing moved) draws black.
    """
    cmap = colormaps[_HEAT]
    return [cmap(np.sqrt(m / vmax) if vmax > 0 else np.zeros_like(m))[..., :3] for m in maps]  # [H, W, 3] each


def _check_scales(scales, scale) -> list[float]:
    """The offered scales other than 0, sorted; ``scale`` must be one of them."""
    offered = sorted({float(s) for s in scales} - {0.0})
    if not offered:
        raise ValueError(f"lora_explorer got scales={tuple(scales)}: offer at least one scale other than 0.")
    if float(scale) not in offered:
        raise ValueError(f"lora_explorer got scale={scale}, not among scales={tuple(offered)}: pick one of them.")
    return offered


def _rows(on: bool, scale: float, outputs: dict, labels: dict, changes: dict) -> list:
    """``comparison_figure``'s three rows: scale 0, the shown setting, where its pixels moved from scale 0."""
    base = outputs[0.0].images
    maps = _difference(outputs[scale].images, base)  # N x [H, W]
    top = max(float(m.max()) for m in maps)  # the chosen scale's own range
    if on:
        shown = (f"▶ shown, LoRA on: scale {scale:g}", outputs[scale].images, _caption(labels[scale], changes[scale]))
        where = (
            f"where the pixels moved: |scale {scale:g} − scale 0|, black 0 to yellow {top:.2f} (square root)"
            if top > 0
            else f"scale {scale:g} draws exactly the pictures of scale 0: no pixel moved",
            _heat(maps, top),
            None,
        )
    else:
        shown = ("▶ shown, LoRA off: scale 0, the pictures above", base, _caption(labels[0.0], 0.0))
        where = ("where the pixels moved: |scale 0 − scale 0| = 0 everywhere", _heat(maps, 0.0), None)
    first = ("scale 0: no adapter (training-free CookAnything)", base, labels[0.0] or None)
    return [first, shown, where]


def _caption(label: str, change: float) -> str:
    """A row's caption: its measure (if any) and its mean change from scale 0."""
    moved = f"mean |pixel change| from scale 0: {100 * change:.2f} % of the pixel range"
    return f"{label}; {moved}" if label else moved


def _table(offered: list[float], shown: float, labels: dict, changes: dict) -> str:
    """Every generated scale in an HTML table: its mean change from scale 0 and its measure; the shown one bold."""
    rows = []
    for s in [0.0, *offered]:
        cells = (f"{s:g}", f"{100 * changes[s]:.2f} %", labels[s] or "–")
        style = "font-weight:bold" if s == shown else ""
        rows.append(
            f"<tr style='{style}'>" + "".join(f"<td style='padding-right:1.5em'>{html.escape(c)}</td>" for c in cells)
        )
    names = ("LoRA scale", "mean |pixel change| from scale 0", "measure")
    head = "<tr>" + "".join(f"<th style='text-align:left;padding-right:1.5em'>{n}</th>" for n in names) + "</tr>"
    return f"<table>{head}{''.join(rows)}</table>"


def _title(on: bool, scale: float, labels: dict, seed: int) -> str:
    """The figure's title: the shown setting and its measure, then the other setting's, and the seed.

    e.g. "LoRA on, scale 1: oracle consistency 1/3 (off, scale 0: oracle consistency 1/3), seed 0".
    """
    lora_on, lora_off = ("on", scale), ("off", 0.0)
    (shown, shown_s), (other, other_s) = (lora_on, lora_off) if on else (lora_off, lora_on)
    if not labels[0.0]:  # no measure: the settings and the seed only
        return f"LoRA {shown}, scale {shown_s:g} ({other}: scale {other_s:g}), seed {seed}"
    return (
        f"LoRA {shown}, scale {shown_s:g}: {labels[shown_s]} ({other}, scale {other_s:g}: {labels[other_s]}), "
        f"seed {seed}"
    )


def lora_explorer(
    pipe,
    recipe,
    scales=(0.5, 1.0, 2.0, 3.0),
    scale: float = 1.0,
    seed: int = 0,
    measure: Measure | None = None,
    **call,
):
    """Scale 0 (no adapter) beside a chosen LoRA scale, on the same seed, pictures first.

    pipe: a ``cooklab.CookAnything`` with a LoRA loaded (``pipe.load_lora(path)``); recipe, seed and
    ``call`` go to every generation (``lora_scale`` is set here, ``progress`` defaults to False).
    scales: the scales the slider offers (0 is always generated as well); scale: the one shown
    first. measure: the label in the titles, from one run's pictures (e.g.
    ``measures.oracle_consistency`` for the Toy Kitchen; None for no label).

    The figure has three rows: scale 0 (training-free CookAnything), the shown setting and
    ``|shown − scale 0|`` per pixel (mean over RGB) on its own range, 0 black to the largest change
    yellow on a square-root scale. The toggle ``box.controls["mechanism"]`` ("LoRA") shows the
    chosen scale (on) or scale 0 (off: the shown row repeats scale 0 and the difference is black
    everywhere), so flipping it makes the moved pixels blink; the slider ``box.controls["scale"]``
    picks the chosen scale. A table under the figure lists every generated scale's mean change from
    scale 0 and its measure. ``box.outputs[s]`` holds the
    output of scale ``s``, ``box.changes[s]`` its mean |pixel change| from scale 0 (0-1).
    """
    import ipywidgets as widgets

    offered = _check_scales(scales, scale)
    kwargs = {"progress": False, **call}
    kwargs.pop("lora_scale", None)
    outputs = {s: pipe(recipe, seed=seed, lora_scale=s, **kwargs) for s in [0.0, *offered]}
    labels = {s: measure_label(measure, out.images) for s, out in outputs.items()}
    changes = {s: float(np.mean(_difference(out.images, outputs[0.0].images))) for s, out in outputs.items()}
    toggle = panels.mechanism_toggle(widgets, "LoRA", on="on: the chosen scale", off="off: scale 0")
    slider = widgets.SelectionSlider(
        options=[(f"{s:g}", s) for s in offered],
        value=float(scale),
        description="chosen LoRA scale",
        continuous_update=False,
        style={"description_width": "initial"},
    )
    info = widgets.HTML()
    out = widgets.Output()
    texts = outputs[0.0].recipe.texts

    def draw():
        on, chosen = toggle.value, slider.value
        info.value = _table(offered, chosen if on else 0.0, labels, changes)
        rows = _rows(on, chosen, outputs, labels, changes)
        panels.show_figures(comparison_figure(rows, texts, title=_title(on, chosen, labels, seed)))

    for control in (toggle, slider):
        control.observe(lambda _: panels.redraw(out, draw), names="value")
    panels.redraw(out, draw)
    box = panels.panel(widgets, [[toggle], [slider]], widgets.VBox([out, info]), dict(mechanism=toggle, scale=slider))
    box.outputs, box.changes = outputs, changes
    return box
