"""Figures and a widget for the two things the pipeline asks for before it draws: the plan and the mask.

* The Cooking Agent's plan (``cooklab.agent.RecipePlan``) as a table: ``plan_table``.
* What a GroundingDINO + SAM provider (``cooklab.grounding``) saw in a reference image:
  its boxes, scores and labels (``detections_figure``), the mask it returned and that
  mask on the latent grid (``mask_figure``), and sliders for its two thresholds
  (``threshold_explorer``).

    found = detect_all(provider, image, "frying pan")        # every box, not only those above box_threshold
    fig = detections_figure(image, found, box_threshold=provider.box_threshold)
    fig = mask_figure(image, provider(image, "frying pan"), latent_hw=(8, 8))
    display(HTML(plan_table(plan, recipe)))                   # the plan, checked against hand-written metadata
    threshold_explorer(provider, image, "frying pan", latent_hw=(8, 8))

The figure functions take images (PIL, ``[H, W, 3]`` arrays or ``[3, H, W]`` tensors),
``Detections`` / ``MaskResult`` objects or plain tensors, and return a matplotlib
``Figure``; they run no model. ``detect_all`` and ``threshold_explorer`` call the provider.
ipywidgets is imported inside ``threshold_explorer`` only.
"""

from __future__ import annotations

import html
import textwrap

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from ..grounding.base import to_mask_tensor
from ..recipe_diffusion.region_noise import resize_mask
from .common import LABEL_PT, SMALL_PT, detached_figures, figure_png, image_array, new_figure, new_subplots

__all__ = [
    "DEGENERATE_BELOW",
    "DEGENERATE_ABOVE",
    "detect_all",
    "detections_figure",
    "mask_figure",
    "plan_table",
    "threshold_explorer",
]

DEGENERATE_BELOW, DEGENERATE_ABOVE = 1e-3, 0.999
"""A mask covering less / more than this share of the latent grid makes ``RecipeDiffusion`` fall back to uniform noise."""

_CHOSEN, _KEPT, _UNNAMED, _BELOW = "#1a9e3f", "#1f77b4", "#ff7f0e", "0.55"  # box colours
_MASK_RGB = (0.1, 0.85, 0.3)


# ---- small helpers -----------------------------------------------------------------------


def _show(ax, arr: np.ndarray) -> None:
    """Draw an image in pixel coordinates (x right, y down), without ticks."""
    h, w = arr.shape[:2]
    ax.imshow(arr, extent=(0, w, h, 0), interpolation="nearest")
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    ax.set_xticks([])
    ax.set_yticks([])


def _note(ax, text: str) -> None:
    """An empty panel that says why it is empty."""
    ax.text(
        0.5, 0.5, text, ha="center", va="center", wrap=True, fontsize=LABEL_PT, color="0.35", transform=ax.transAxes
    )
    ax.set_xticks([])
    ax.set_yticks([])


def _label_names_phrase(label: str, phrase: str) -> bool:
    """The provider's own rule (``label_matches``), imported on first use."""
    from ..grounding.grounded_sam import label_matches

    return label_matches(label, phrase)


def _as_detection_table(detections):
    """(boxes [N, 4], scores [N], labels, caption or None, box_threshold or None) from Detections, a MaskResult or a dict."""
    if isinstance(detections, dict):
        get = detections.get
    elif hasattr(detections, "boxes"):  # Detections (or anything shaped like it)

        def get(key, default=None):
            return getattr(detections, key, default)
    elif hasattr(detections, "extra"):  # a MaskResult from a detector provider keeps every box it saw
        extra = detections.extra

        def get(key, default=None):
            alias = {"boxes": "all_boxes"}.get(key, key)
            return extra.get(alias, default)
    else:
        raise TypeError(
            f"detections must be a Detections, a MaskResult or a dict with boxes/scores/labels; got {type(detections).__name__}"
        )
    boxes = np.asarray(torch.as_tensor(get("boxes", []), dtype=torch.float32).reshape(-1, 4))
    scores = np.asarray(torch.as_tensor(get("scores", []), dtype=torch.float32).reshape(-1))
    labels = list(get("labels", None) or [""] * len(scores))
    if not len(boxes) == len(scores) == len(labels):
        raise ValueError(
            f"detections have {len(boxes)} boxes, {len(scores)} scores and {len(labels)} labels; they must match"
        )
    threshold = get("box_threshold", None)
    return boxes, scores, [str(label) for label in labels], get("caption", None), threshold


def _find_box(boxes: np.ndarray, box, tol: float = 1e-3) -> int | None:
    """Index of the row of ``boxes`` equal to ``box`` (within ``tol`` pixels), or None."""
    if not len(boxes):
        return None
    distance = np.abs(boxes - np.asarray(box, dtype=np.float32)[None]).max(axis=1)
    k = int(distance.argmin())
    return k if distance[k] <= tol else None


# ---- detections ---------------------------------------------------------------------------


def detect_all(provider, image, phrase: str, text_threshold: float | None = None):
    """Every box the detector proposes for ``phrase`` (``box_threshold`` 0), with the provider's text_threshold.

    ``provider.detect`` keeps only boxes above the provider's ``box_threshold``; to *see* what a
    threshold removes, detect with 0 and draw with ``detections_figure(..., box_threshold=t)``.
    The provider's thresholds are restored afterwards. Works with ``GroundedSAM`` and
    ``OriginalGroundedSAM`` (anything with ``detect`` and the two threshold attributes).
    """
    saved = provider.box_threshold, provider.text_threshold
    try:
        provider.box_threshold = 0.0
        if text_threshold is not None:
            provider.text_threshold = text_threshold
        return provider.detect(image, phrase)
    finally:
        provider.box_threshold, provider.text_threshold = saved


def detections_figure(
    image,
    detections,
    box_threshold: float | None = None,
    chosen=None,
    *,
    phrase: str | None = None,
    max_boxes: int = 12,
    ax=None,
    title: str | None = None,
) -> Figure:
    """The detector's boxes on the image, each with its label and score.

    detections: a ``Detections`` (``provider.detect`` / ``detect_all``), a ``MaskResult`` from a
    detector provider (its ``extra`` keeps every box), or a dict with ``boxes`` ([N, 4] pixels
    x0, y0, x1, y1), ``scores`` and ``labels``. box_threshold: boxes with a score not above it
    are drawn grey and dashed (default: the threshold the detections were made with, if known).
    chosen: the index of the chosen box, a pixel box, or a ``MaskResult`` (its box); None picks the
    box the provider would pick: the best-scoring box above the threshold whose label names the
    phrase (``phrase``, default the caption); False: none. It is drawn thick and green. Boxes above the
    threshold whose label does not name the phrase (e.g. no token above ``text_threshold``) are
    orange; the provider never chooses them. Only the ``max_boxes`` best boxes are drawn.
    """
    arr = image_array(image)
    boxes, scores, labels, caption, known = _as_detection_table(detections)
    threshold = box_threshold if box_threshold is not None else known
    phrase = phrase if phrase is not None else caption
    order = np.argsort(-scores, kind="stable")
    kept = scores > threshold if threshold is not None else np.ones(len(scores), bool)
    names = np.array([bool(phrase) and _label_names_phrase(label, phrase) for label in labels], dtype=bool)

    n_found = len(scores)
    k = None
    if chosen is False:
        pass
    elif chosen is None:
        if phrase:
            k = next(
                (
                    int(i)
                    for i in order
                    if kept[i] and names[i] and boxes[i, 2] > boxes[i, 0] and boxes[i, 3] > boxes[i, 1]
                ),
                None,
            )
    elif isinstance(chosen, (int, np.integer)) and not isinstance(chosen, bool):
        k = int(chosen)
        if not 0 <= k < len(scores):
            raise IndexError(f"chosen={k}, but there are {len(scores)} detections")
    else:
        chosen_box = getattr(chosen, "box", chosen)
        if chosen_box is not None:
            k = _find_box(boxes, chosen_box)
            if k is None:  # a box that is not among the detections: draw it anyway
                boxes = np.vstack([boxes, np.asarray(chosen_box, np.float32)[None]])
                score = getattr(chosen, "score", None)
                scores = np.append(scores, np.float32(score if score is not None else np.nan))
                labels.append(str(getattr(chosen, "extra", {}).get("label", "")))
                kept, names = np.append(kept, True), np.append(names, True)
                k = len(scores) - 1
                order = np.append(order, k)

    fig = (
        ax.figure
        if ax is not None
        else new_figure(figsize=(5.2, 5.6 * arr.shape[0] / arr.shape[1] + 0.9), layout="constrained")
    )
    ax = ax if ax is not None else fig.add_subplot()
    _show(ax, arr)
    shown = [int(i) for i in order[:max_boxes]]
    if k is not None and k not in shown:
        shown.append(k)
    size = 6.5 if arr.shape[1] < 200 else 8
    for i in sorted(
        shown, key=lambda i: (i == k, kept[i], np.nan_to_num(scores[i], nan=1.0))
    ):  # best and chosen on top
        x0, y0, x1, y1 = boxes[i]
        if i == k:
            color, style, width = _CHOSEN, "-", 2.6
        elif not kept[i]:
            color, style, width = _BELOW, "--", 1.0
        else:
            color, style, width = (_KEPT if names[i] else _UNNAMED), "-", 1.4
        ax.add_patch(
            Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=color, linestyle=style, linewidth=width)
        )
        score = "?" if np.isnan(scores[i]) else f"{scores[i]:.2f}"
        ax.text(
            x0,
            y0,
            f"{labels[i] or '∅'} {score}",
            fontsize=size,
            color="white" if kept[i] else "0.2",
            va="bottom",
            ha="left",
            bbox=dict(boxstyle="square,pad=0.1", facecolor=color, edgecolor="none", alpha=0.85 if kept[i] else 0.6),
            clip_on=True,
        )

    handles = [
        Line2D([], [], color=_CHOSEN, lw=2.6, label="chosen"),
        Line2D([], [], color=_KEPT, lw=1.4, label="passes, label names the phrase"),
        Line2D([], [], color=_UNNAMED, lw=1.4, label="passes, label does not (∅: empty)"),
        Line2D([], [], color=_BELOW, lw=1.0, ls="--", label="not above box_threshold"),
    ]
    ax.legend(
        handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.01), ncols=2, fontsize=SMALL_PT, frameon=False
    )
    n_kept = int(kept[:n_found].sum())
    head = f"{caption!r}: " if caption else ""
    line = f"{head}{n_found} boxes" + (
        f", {n_kept} above box_threshold={threshold:.2f}" if threshold is not None else ""
    )
    if len(shown) < len(scores):
        line += f" ({len(shown)} best drawn)"
    pick = (
        f"chosen: {labels[k] or '∅'} {scores[k]:.2f}"
        if k is not None and not np.isnan(scores[k])
        else ("chosen: the given box" if k is not None else "nothing chosen: the provider returns None")
    )
    ax.set_title(title or f"{line}\n{pick}", fontsize=LABEL_PT)
    return fig


# ---- masks ---------------------------------------------------------------------------------


def mask_figure(image, mask_result, latent_hw: tuple[int, int] | None = None, *, title: str | None = None) -> Figure:
    """The mask a provider returned, over the image, with its box, score and SAM's predicted IoU.

    mask_result: a ``MaskResult``, a bare ``[H, W]`` mask (tensor, array or PIL) or None (the
    provider found nothing). latent_hw: also show the mask resized to the latent grid
    (``resize_mask``, area averaging), as the pipeline uses it in Eq. 7, with its coverage; the
    pipeline falls back to uniform noise when it covers less than 0.1 % or more than 99.9 %.
    """
    arr = image_array(image)
    h, w = arr.shape[:2]
    ncols = 2 if latent_hw is not None else 1
    fig, axes = new_subplots(1, ncols, figsize=(3.3 * ncols, 3.3 * h / w + 0.9), layout="constrained", squeeze=False)
    axes = axes[0]
    if mask_result is None:
        _show(axes[0], arr)
        axes[0].set_title("no mask: nothing passed the thresholds", fontsize=LABEL_PT)
        if latent_hw is not None:
            _note(
                axes[1],
                f"latent grid {latent_hw[0]}×{latent_hw[1]}:\nno mask, so the frame gets\nuniform noise (FrameInfo.fallback)",
            )
            axes[1].set_box_aspect(latent_hw[0] / latent_hw[1])
        if title:
            fig.suptitle(title, fontsize=LABEL_PT)
        return fig

    mask = to_mask_tensor(getattr(mask_result, "mask", mask_result))
    if tuple(mask.shape) != (h, w):
        raise ValueError(
            f"the mask is {tuple(mask.shape)} but the image is {(h, w)}: pass the image the mask was found in"
        )
    m = mask.numpy()
    _show(axes[0], arr)
    overlay = np.zeros((h, w, 4), np.float32)
    overlay[..., :3] = _MASK_RGB
    overlay[..., 3] = 0.5 * m
    axes[0].imshow(overlay, extent=(0, w, h, 0), interpolation="nearest")
    box = getattr(mask_result, "box", None)
    if box is not None:
        x0, y0, x1, y1 = box
        axes[0].add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=_CHOSEN, linewidth=2))
    parts = []
    phrase = getattr(mask_result, "phrase", "")
    score = getattr(mask_result, "score", None)
    extra = getattr(mask_result, "extra", {}) or {}
    if score is not None:
        parts.append(f"score {score:.2f}")
    if "iou" in extra:
        parts.append(f"IoU {extra['iou']:.2f}")
    head = f"{phrase!r}: " if phrase else ""
    axes[0].set_title(
        f"{head}{', '.join(parts) or 'mask'}\ncovers {float(m.mean()):.1%} of the image", fontsize=LABEL_PT
    )

    if latent_hw is not None:
        small = resize_mask(mask, tuple(latent_hw), (h, w)).numpy()
        lh, lw = small.shape
        ax = axes[1]
        ax.imshow(small, cmap="gray", vmin=0, vmax=1, extent=(0, lw, lh, 0), interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        if lh * lw <= 400:  # a small grid: draw the cells and write each cell's value
            for x in range(1, lw):
                ax.axvline(x, color="tab:red", linewidth=0.5, alpha=0.6)
            for y in range(1, lh):
                ax.axhline(y, color="tab:red", linewidth=0.5, alpha=0.6)
            if lh * lw <= 256:
                for (y, x), value in np.ndenumerate(small):
                    ax.text(
                        x + 0.5,
                        y + 0.5,
                        f"{value:.2f}".lstrip("0") if value < 1 else "1",
                        ha="center",
                        va="center",
                        fontsize=5.5,
                        color="black" if value > 0.5 else "white",
                    )
        if box is not None:
            sx, sy = lw / w, lh / h
            ax.add_patch(
                Rectangle(
                    (box[0] * sx, box[1] * sy),
                    (box[2] - box[0]) * sx,
                    (box[3] - box[1]) * sy,
                    fill=False,
                    edgecolor=_CHOSEN,
                    linewidth=1.5,
                )
            )
        area = float(small.mean())
        verdict = "usable for Eq. 7" if DEGENERATE_BELOW <= area <= DEGENERATE_ABOVE else "degenerate: uniform noise"
        ax.set_title(f"latent grid {lh}×{lw}: covers {area:.1%}\n{verdict}", fontsize=LABEL_PT)
    if title:
        fig.suptitle(title, fontsize=LABEL_PT)
    return fig


# ---- the plan --------------------------------------------------------------------------------


def _container(step) -> str:
    if step.container is None:
        return "—"
    look = ", ".join(step.container_attributes)
    return f"{step.container} [{look}]" if look else step.container


def _ingredients(step) -> str:
    return ", ".join(f"{i.name} ({i.state})" if i.state else i.name for i in step.ingredients) or "—"


def _reference(value) -> str:
    return "—" if value is None else str(value)


def plan_table(plan, recipe=None, format: str = "html", wrap: int = 70) -> str:
    """A ``RecipePlan`` as a table: step, container and its look, reference step, ingredients with state, prompt.

    recipe: a ``Recipe`` with hand-written metadata to compare with; where the plan's container
    (case-insensitive) or reference step differs, the hand-written value is shown beside it
    (marked ≠). format: ``"html"`` (for ``IPython.display.HTML``) or ``"text"`` (for print;
    long prompts wrapped at ``wrap`` characters).
    """
    if format not in ("html", "text"):
        raise ValueError(f"format={format!r}: use 'html' or 'text'")
    if recipe is not None:
        plan.check(recipe)
    hand = list(recipe.steps) if recipe is not None else [None] * len(plan.steps)

    rows = []
    for step, written in zip(plan.steps, hand):
        container, reference = _container(step), _reference(step.reference_step)
        container_differs = reference_differs = False
        if written is not None:
            container_differs = (step.container or "").strip().lower() != (written.container or "").strip().lower()
            reference_differs = step.reference_step != written.reference_step
        rows.append(
            dict(
                step=step.step,
                container=container,
                reference=reference,
                ingredients=_ingredients(step),
                prompt=step.prompt,
                written_container=written.container if container_differs else None,
                written_reference=_reference(written.reference_step) if reference_differs else None,
                container_differs=container_differs,
                reference_differs=reference_differs,
            )
        )

    dish = f" · {plan.context.dish}" if plan.context.dish.strip().lower() != plan.title.strip().lower() else ""
    head = f"{plan.title}{dish} · planned by {plan.agent}"
    if format == "text":
        lines = [head, f"style: {plan.context.style}"]
        for r in rows:
            container = r["container"] + (
                f"   ≠ hand-written: {r['written_container'] or '—'}" if r["container_differs"] else ""
            )
            reference = r["reference"] + (
                f"   ≠ hand-written: {r['written_reference']}" if r["reference_differs"] else ""
            )
            lines += [
                f"step {r['step']}",
                f"  container:   {container}",
                f"  reference:   {reference}",
                f"  ingredients: {r['ingredients']}",
            ]
            lines += textwrap.wrap(r["prompt"], wrap, initial_indent="  prompt:      ", subsequent_indent=" " * 15)
        return "\n".join(lines)

    def cell(text, differs=False, written=None):
        body = html.escape(str(text))
        if differs:
            body += f"<br><span style='color:#b00'>≠ hand-written: {html.escape(str(written or '—'))}</span>"
        return f"<td style='text-align:left;vertical-align:top;padding:2px 8px'>{body}</td>"

    header = "".join(
        f"<th style='text-align:left;padding:2px 8px'>{name}</th>"
        for name in ("step", "container [look]", "reference step", "ingredients (state)", "prompt")
    )
    body = "".join(
        "<tr>"
        + cell(r["step"])
        + cell(r["container"], r["container_differs"], r["written_container"])
        + cell(r["reference"], r["reference_differs"], r["written_reference"])
        + cell(r["ingredients"])
        + f"<td style='text-align:left;vertical-align:top;padding:2px 8px;font-size:90%'>{html.escape(r['prompt'])}</td></tr>"
        for r in rows
    )
    caption = f"<caption style='caption-side:top;text-align:left'><b>{html.escape(head)}</b> · style: {html.escape(plan.context.style)}</caption>"
    return f"<table>{caption}<tr>{header}</tr>{body}</table>"


# ---- the widget ------------------------------------------------------------------------------


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
    from IPython.display import Image, display

    style = {"description_width": "initial"}
    common = dict(min=0.0, max=1.0, step=0.01, readout_format=".2f", continuous_update=False, style=style)
    box_slider = widgets.FloatSlider(value=provider.box_threshold, description="box_threshold", **common)
    text_slider = widgets.FloatSlider(value=provider.text_threshold, description="text_threshold", **common)
    info = widgets.HTML()
    out = widgets.Output()
    last: dict = {}
    candidates: dict = {}  # text_threshold -> every box at box_threshold 0 (the box slider needs no new detection for the picture)

    def draw():
        box_t, text_t = float(box_slider.value), float(text_slider.value)
        if text_t not in candidates:
            candidates.clear()
            candidates[text_t] = detect_all(provider, image, phrase, text_threshold=text_t)
        saved = provider.box_threshold, provider.text_threshold
        try:
            provider.box_threshold, provider.text_threshold = box_t, text_t
            result = provider(image, phrase)
        finally:
            provider.box_threshold, provider.text_threshold = saved
        found = candidates[text_t]
        last.update(detections=found, result=result)
        n_above = int((found.scores > box_t).sum())
        if result is None:
            why = (
                "no box scores above box_threshold"
                if n_above == 0
                else f"{n_above} boxes pass box_threshold, but no label names {phrase!r} (raise text_threshold → empty labels)"
            )
            info.value = (
                f"<span style='color:#b00'>provider → None: {html.escape(why)}. In the pipeline this frame falls back to "
                "uniform noise (FrameInfo.fallback).</span>"
            )
        else:
            info.value = html.escape(
                f"provider → MaskResult: box {tuple(round(v, 1) for v in result.box)}, score {result.score:.3f}, "
                f"label {result.extra.get('label', '')!r}, covers {result.area:.1%} of the image"
            )
        # plain Figures (no pyplot state: the callback may run on a kernel subshell while a pyplot flush runs),
        # both rendered before either is displayed
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
        pngs = [figure_png(fig) for fig in figs]
        for png in pngs:
            display(Image(data=png))

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
    panel = widgets.VBox([widgets.HBox([box_slider, text_slider]), info, out])
    panel.controls = dict(box_threshold=box_slider, text_threshold=text_slider)
    panel.last = last
    return panel
