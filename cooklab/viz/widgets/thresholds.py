"""An explorer of a mask provider's two thresholds: what GroundingDINO + SAM find and return as they move.

    box = threshold_explorer(provider, image, "frying pan", latent_hw=(8, 8))
    provider.box_threshold = box.controls["box_threshold"].value   # keep the values you like

Each change detects and segments again and draws ``detections_figure`` and ``mask_figure``
(``cooklab.viz.masks``); a line above them says what the provider returned, or why it returned
None. ipywidgets is imported inside the function.
"""

from __future__ import annotations

import html

from ..common import detached_figures
from ..masks import detect_all, detections_figure, mask_figure
from . import panels

__all__ = ["threshold_explorer"]


def _result_at(provider, image, phrase: str, box_threshold: float, text_threshold: float):
    """What ``provider(image, phrase)`` returns with these thresholds; the provider's own are restored."""
    saved = provider.box_threshold, provider.text_threshold
    try:
        provider.box_threshold, provider.text_threshold = box_threshold, text_threshold
        return provider(image, phrase)
    finally:
        provider.box_threshold, provider.text_threshold = saved


def _result_html(result, found, box_threshold: float, phrase: str) -> str:
    """One line of HTML: the ``MaskResult`` the provider returned, or in red why it returned None."""
    if result is not None:
        return html.escape(
            f"provider → MaskResult: box {tuple(round(v, 1) for v in result.box)}, score {result.score:.3f}, "
            f"label {result.extra.get('label', '')!r}, covers {result.area:.1%} of the image"
        )
    n_above = int((found.scores > box_threshold).sum())
    why = (
        "no box scores above box_threshold"
        if n_above == 0
        else f"{n_above} boxes pass box_threshold, but no label names {phrase!r} (raise text_threshold → empty labels)"
    )
    return (
        f"<span style='color:#b00'>provider → None: {html.escape(why)}. In the pipeline this frame falls back to "
        "uniform noise (FrameInfo.fallback).</span>"
    )


def threshold_explorer(provider, image, phrase: str, latent_hw: tuple[int, int] | None = None, max_boxes: int = 12):
    """Sliders for a provider's ``box_threshold`` and ``text_threshold``; every change detects and segments again.

    Draws every proposed box (those not above ``box_threshold`` grey and dashed) and the mask the
    provider returns with the slider values (or why it returns None), with the mask on the latent
    grid if ``latent_hw`` is given. The provider's own thresholds are left as they were; copy the
    values you like with ``provider.box_threshold = box.controls["box_threshold"].value``.
    Returns a ``VBox``; ``box.controls`` holds the sliders and ``box.last`` the latest
    ``{"detections", "result"}``.
    """
    import ipywidgets as widgets

    style = {"description_width": "initial"}
    common = dict(min=0.0, max=1.0, step=0.01, readout_format=".2f", continuous_update=False, style=style)
    box_slider = widgets.FloatSlider(value=provider.box_threshold, description="box_threshold", **common)
    text_slider = widgets.FloatSlider(value=provider.text_threshold, description="text_threshold", **common)
    info = widgets.HTML()
    out = widgets.Output()
    last: dict = {}
    # text_threshold -> every box at box_threshold 0 (the box slider needs no new detection for the picture)
    candidates: dict = {}

    def draw():
        box_t, text_t = float(box_slider.value), float(text_slider.value)
        if text_t not in candidates:
            candidates.clear()
            candidates[text_t] = detect_all(provider, image, phrase, text_threshold=text_t)
        result = _result_at(provider, image, phrase, box_t, text_t)
        found = candidates[text_t]
        last.update(detections=found, result=result)
        info.value = _result_html(result, found, box_t, phrase)
        with detached_figures():
            figs = (
                detections_figure(
                    image,
                    found,
                    box_threshold=box_t,
                    chosen=result if result is not None else False,
                    phrase=phrase,
                    max_boxes=max_boxes,
                ),
                mask_figure(image, result, latent_hw),
            )
        panels.show_figures(*figs)

    def redraw(_=None):
        with out:
            out.clear_output(wait=True)
            try:
                draw()
            except Exception as err:  # shown in the widget: an error in a callback is otherwise lost
                print(f"nothing to show: {type(err).__name__}: {err}")

    for slider in (box_slider, text_slider):
        slider.observe(redraw, names="value")
    redraw()
    box = widgets.VBox([widgets.HBox([box_slider, text_slider]), info, out])
    box.controls = dict(box_threshold=box_slider, text_threshold=text_slider)
    box.last = last
    return box
