"""An explorer of a mask provider's two thresholds and its phrase, and of what its mask does to the next frame.

    box = threshold_explorer(provider, image, "frying pan", latent_hw=(16, 16), phrases=["frying pan", "skillet"],
                             generate=frames_from, measure=oracle_consistency)
    provider.box_threshold = box.controls["box_threshold"].value   # keep the values you like

The mechanism is region-aware noise (Eq. 5-7, notebook 02): the frame drawn from the reference frame
starts from the reference's latent noised at ``object_noise`` inside the container's mask and at
``base_noise`` outside it. The mask comes from the provider: the best box scoring above
``box_threshold`` whose label (the caption's tokens above ``text_threshold``) names the phrase, segmented.
When no box passes both, the provider returns None and the frame gets uniform noise (``base_noise``
everywhere), exactly as with no mask at all.

The toggle ``box.controls["mechanism"]`` picks the mask Eq. 7 gets: the provider's (on) or none
(off, uniform noise). The first figure shows the pictures ``generate(mask)`` draws with the shown
setting (the run's frames, the mask's outline on the reference frame), both settings on one seed,
the ``measure`` of each in its title; then every box the detector proposed (grey and
dashed: not above ``box_threshold``) and the mask with its latent grid (``cooklab.viz.masks``).
The sliders span the scores where the outcome changes: the best box naming each phrase offered,
``± PAD``, in steps of ``STEP``. ipywidgets is imported inside the function.
"""

from __future__ import annotations

import hashlib
import html
import math

from ..common import LABEL_PT, draw_image, new_subplots, to_array
from ..masks import detect_all, detections_figure, mask_figure
from . import panels
from .measures import measure_label

__all__ = ["PAD", "STEP", "threshold_explorer"]

PAD, STEP = 0.06, 0.02  # the sliders span the best labelled scores ± PAD, in steps of STEP
MASK_OUTLINE = "#0a0"  # the mask's outline on the reference frame (the green of the chosen box)


def _result_at(provider, image, phrase: str, box_threshold: float, text_threshold: float):
    """What ``provider(image, phrase)`` returns with these thresholds; the provider's own are restored."""
    saved = provider.box_threshold, provider.text_threshold
    try:
        provider.box_threshold, provider.text_threshold = box_threshold, text_threshold
        return provider(image, phrase)
    finally:
        provider.box_threshold, provider.text_threshold = saved


def _slider_range(provider, image, phrases) -> tuple[float, float]:
    """(low, high): the best labelled box's score of each phrase (box_threshold 0) ± PAD, on the STEP grid.

    (0, 1) when no phrase finds a labelled box at all.
    """
    best = [_result_at(provider, image, phrase, 0.0, provider.text_threshold) for phrase in phrases]
    scores = [result.score for result in best if result is not None]
    if not scores:
        return 0.0, 1.0
    low = max(0.0, math.floor((min(scores) - PAD) / STEP) * STEP)
    high = min(1.0, math.ceil((max(scores) + PAD) / STEP) * STEP)
    return round(low, 2), round(high, 2)


def _mask_key(result) -> str | None:
    """A key of the mask a result carries (None: no mask), so each distinct mask is generated once."""
    return None if result is None else hashlib.sha1(to_array(result.mask).tobytes()).hexdigest()


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
        else f"{n_above} boxes pass box_threshold, but no label names {phrase!r} (raise text_threshold → empty labels;"
        " a word the tokenizer does not know is [UNK] and names nothing)"
    )
    return (
        f"<span style='color:#b00'>provider → None: {html.escape(why)}. In the pipeline this frame falls back to "
        "uniform noise (FrameInfo.fallback).</span>"
    )


def _pictures_title(on: bool, found_mask: bool, labels: dict[bool, str]) -> str:
    """What the pictures show, and the measure of the shown setting and of the other one (same seed)."""
    if not on:
        head = "region-aware noise off: no mask, uniform noise"
    elif found_mask:
        head = "region-aware noise on: from the provider's mask"
    else:
        head = "region-aware noise on, but the provider found nothing: uniform noise"
    if not labels[on]:
        return f"{head}\nsame seed for both settings"
    return f"{head}\n{labels[on]} (mask {'off' if on else 'on'}: {labels[not on]}), same seed"


def _pictures_figure(pictures, reference: int, mask_result, title: str):
    """The run's frames in recipe order, the reference frame's title saying so, with the mask's outline if applied."""
    n = len(pictures)
    fig, axes = new_subplots(1, n, figsize=(1.9 * n + 0.4, 3.1), layout="constrained", squeeze=False)
    for k, (ax, picture) in enumerate(zip(axes[0], pictures)):
        draw_image(ax, picture, f"step {k + 1}" + ("\n(the mask's image)" if k == reference else ""))
    if mask_result is not None:
        mask = to_array(mask_result.mask)  # [H, W] in the reference frame's pixels
        axes[0][reference].contour(mask, levels=[0.5], colors=MASK_OUTLINE, linewidths=1.5)
    fig.suptitle(title, fontsize=LABEL_PT)
    return fig


def _controls(widgets, provider, image, phrase: str, phrases):
    """The mechanism toggle, the two threshold sliders (over ``_slider_range``) and, with ``phrases``, a dropdown."""
    offered = list(dict.fromkeys([phrase, *phrases]))
    low, high = _slider_range(provider, image, offered)
    style = {"description_width": "initial"}
    common = dict(min=low, max=high, step=STEP, readout_format=".2f", continuous_update=False, style=style)
    controls = dict(
        mechanism=panels.mechanism_toggle(
            widgets, "region-aware noise from", on="the provider's mask", off="no mask (uniform noise)"
        ),
        box_threshold=widgets.FloatSlider(
            value=min(max(provider.box_threshold, low), high), description="box_threshold", **common
        ),
        text_threshold=widgets.FloatSlider(
            value=min(max(provider.text_threshold, low), high), description="text_threshold", **common
        ),
    )
    if len(offered) > 1:
        controls["phrase"] = widgets.Dropdown(options=offered, value=phrase, description="phrase", style=style)
    return controls


def threshold_explorer(
    provider,
    image,
    phrase: str,
    latent_hw: tuple[int, int] | None = None,
    max_boxes: int = 12,
    *,
    phrases=(),
    generate=None,
    reference: int = 0,
    measure=None,
):
    """Toggle the provider's mask on and off; sliders for its two thresholds; a dropdown of phrases.

    image: the reference frame the provider looks in. phrases: other phrases to offer (a dropdown).
    generate: ``mask -> pictures``, the frames of a run (recipe order, one seed) whose frame after
    ``image`` starts from region-aware noise with ``mask`` (a ``MaskResult``; None: uniform noise);
    ``image`` is its frame number ``reference`` (0-based). Each distinct mask is generated once.
    Without ``generate`` the explorer shows the detections and the mask only.
    measure: pictures -> a label for the title (``oracle_consistency``), or None.
    Every change detects and segments again (the provider's own thresholds are left as they were;
    copy the values you like with ``provider.box_threshold = box.controls["box_threshold"].value``).
    Returns a ``VBox``; ``box.controls`` holds the toggle, sliders and dropdown, ``box.last`` the latest
    ``{"detections", "result", "pictures"}``.
    """
    import ipywidgets as widgets

    controls = _controls(widgets, provider, image, phrase, phrases)
    info, out = widgets.HTML(), widgets.Output()
    last: dict = {}
    found_for: dict = {}  # (phrase, text_threshold) -> every box at box_threshold 0
    drawn: dict = {}  # mask key -> pictures

    def pictures(result) -> list:
        key = _mask_key(result)
        if key not in drawn:
            drawn[key] = list(generate(result))
        return drawn[key]

    def draw():
        box_t, text_t = round(controls["box_threshold"].value, 2), round(controls["text_threshold"].value, 2)
        on = bool(controls["mechanism"].value)
        shown_phrase = controls["phrase"].value if "phrase" in controls else phrase
        if (shown_phrase, text_t) not in found_for:
            found_for[shown_phrase, text_t] = detect_all(provider, image, shown_phrase, text_threshold=text_t)
        found = found_for[shown_phrase, text_t]
        result = _result_at(provider, image, shown_phrase, box_t, text_t)
        applied = result if on else None  # the mask Eq. 7 gets
        info.value = _result_html(result, found, box_t, shown_phrase)
        figs = []
        if generate is not None:
            runs = {True: pictures(result), False: pictures(None)}
            labels = {flag: measure_label(measure, shown) for flag, shown in runs.items()}
            figs.append(
                _pictures_figure(runs[on], reference, applied, _pictures_title(on, result is not None, labels))
            )
        last.update(detections=found, result=result, pictures=runs[on] if generate is not None else None)
        figs.append(
            detections_figure(
                image,
                found,
                box_threshold=box_t,
                chosen=result if result is not None else False,
                phrase=shown_phrase,
                max_boxes=max_boxes,
            )
        )
        why = "region-aware noise is off" if result is not None and not on else "nothing passed the thresholds"
        figs.append(mask_figure(image, applied, latent_hw, why=why))
        panels.show_figures(*figs)

    for control in controls.values():
        control.observe(lambda _: panels.redraw(out, draw), names="value")
    panels.redraw(out, draw)
    rows = [[controls["mechanism"]], [c for name, c in controls.items() if name != "mechanism"]]
    box = panels.panel(widgets, rows, widgets.VBox([info, out]), controls)
    box.last = last
    return box
