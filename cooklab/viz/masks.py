"""What a mask provider saw and returned: the detector's boxes and the mask, on the image and the latent grid.

A GroundingDINO + SAM provider (``cooklab.grounding``) finds boxes for a phrase in a reference
image, keeps those above its ``box_threshold`` whose label names the phrase, and segments the
best one. These figures show each stage: every box with its score and label
(``detections_figure``), the mask it returned and that mask on the latent grid
(``mask_figure``), where Eq. 7 uses it.

    found = detect_all(provider, image, "frying pan")   # every box, not only those above box_threshold
    fig = detections_figure(image, found, box_threshold=provider.box_threshold)
    fig = mask_figure(image, provider(image, "frying pan"), latent_hw=(8, 8))

The figure functions take images (PIL, ``[H, W, 3]`` arrays or ``[3, H, W]`` tensors),
``Detections`` / ``MaskResult`` objects or plain tensors, and return a matplotlib
``Figure``; they run no model. ``detect_all`` calls the provider. Sliders for the two
thresholds: ``cooklab.viz.widgets.threshold_explorer``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from ..grounding.provider import to_mask_tensor
from ..recipe_diffusion.region_noise import resize_mask
from .common import LABEL_PT, SMALL_PT, image_array, new_figure, new_subplots

__all__ = [
    "DEGENERATE_BELOW",
    "DEGENERATE_ABOVE",
    "detect_all",
    "detections_figure",
    "mask_figure",
]

DEGENERATE_BELOW, DEGENERATE_ABOVE = 1e-3, 0.999
"""A mask covering less / more than this share of the latent grid makes ``RecipeDiffusion`` fall back to
uniform noise."""

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
    """The boxes to draw, from Detections, a MaskResult or a dict.

    Returns (boxes [N, 4], scores [N], labels, caption or None, box_threshold or None).
    """
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
            "detections must be a Detections, a MaskResult or a dict with boxes/scores/labels; "
            f"got {type(detections).__name__}"
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


@dataclass
class _DrawnBoxes:
    """The detections as drawn: what each box is and how it is coloured.

    boxes: [N, 4] pixels (x0, y0, x1, y1); scores: [N]; labels: N strings; kept: [N] bool, the
    score is above box_threshold; names: [N] bool, the label names the phrase; order: [N] box
    indices, best score first.
    """

    boxes: np.ndarray
    scores: np.ndarray
    labels: list[str]
    kept: np.ndarray
    names: np.ndarray
    order: np.ndarray

    def add(self, box, score) -> int:
        """Append a box that is not among the detections (drawn as chosen); returns its index."""
        self.boxes = np.vstack([self.boxes, np.asarray(box, np.float32)[None]])
        self.scores = np.append(self.scores, np.float32(score if score is not None else np.nan))
        self.kept, self.names = np.append(self.kept, True), np.append(self.names, True)
        k = len(self.scores) - 1
        self.order = np.append(self.order, k)
        return k


def _choose(table: _DrawnBoxes, chosen, phrase: str | None) -> int | None:
    """The index of the chosen box (see ``detections_figure``'s ``chosen``); a given box not
    among the detections is added to ``table``."""
    if chosen is False:
        return None
    if chosen is None:
        if not phrase:
            return None
        boxes = table.boxes
        return next(
            (
                int(i)
                for i in table.order
                if table.kept[i] and table.names[i] and boxes[i, 2] > boxes[i, 0] and boxes[i, 3] > boxes[i, 1]
            ),
            None,
        )
    if isinstance(chosen, (int, np.integer)) and not isinstance(chosen, bool):
        k = int(chosen)
        if not 0 <= k < len(table.scores):
            raise IndexError(f"chosen={k}, but there are {len(table.scores)} detections")
        return k
    chosen_box = getattr(chosen, "box", chosen)
    if chosen_box is None:
        return None
    k = _find_box(table.boxes, chosen_box)
    if k is None:  # a box that is not among the detections: draw it anyway
        table.labels.append(str(getattr(chosen, "extra", {}).get("label", "")))
        k = table.add(chosen_box, getattr(chosen, "score", None))
    return k


def _draw_boxes(ax, table: _DrawnBoxes, k: int | None, max_boxes: int, size: float) -> list[int]:
    """Draw the ``max_boxes`` best boxes and the chosen one ``k``, each with label and score;
    returns the indices drawn."""
    kept, names, scores = table.kept, table.names, table.scores
    shown = [int(i) for i in table.order[:max_boxes]]
    if k is not None and k not in shown:
        shown.append(k)
    for i in sorted(
        shown, key=lambda i: (i == k, kept[i], np.nan_to_num(scores[i], nan=1.0))
    ):  # best and chosen on top
        x0, y0, x1, y1 = table.boxes[i]
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
            f"{table.labels[i] or '∅'} {score}",
            fontsize=size,
            color="white" if kept[i] else "0.2",
            va="bottom",
            ha="left",
            bbox=dict(boxstyle="square,pad=0.1", facecolor=color, edgecolor="none", alpha=0.85 if kept[i] else 0.6),
            clip_on=True,
        )
    return shown


def _draw_box_legend(ax) -> None:
    """What the four box styles mean, under the image."""
    handles = [
        Line2D([], [], color=_CHOSEN, lw=2.6, label="chosen"),
        Line2D([], [], color=_KEPT, lw=1.4, label="passes, label names the phrase"),
        Line2D([], [], color=_UNNAMED, lw=1.4, label="passes, label does not (∅: empty)"),
        Line2D([], [], color=_BELOW, lw=1.0, ls="--", label="not above box_threshold"),
    ]
    ax.legend(
        handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.01), ncols=2, fontsize=SMALL_PT, frameon=False
    )


def _detections_title(table: _DrawnBoxes, n_found: int, n_shown: int, k, caption, threshold) -> str:
    """Two lines: how many boxes were found and passed, and which one was chosen."""
    n_kept = int(table.kept[:n_found].sum())
    head = f"{caption!r}: " if caption else ""
    line = f"{head}{n_found} boxes" + (
        f", {n_kept} above box_threshold={threshold:.2f}" if threshold is not None else ""
    )
    if n_shown < len(table.scores):
        line += f" ({n_shown} best drawn)"
    scores, labels = table.scores, table.labels
    pick = (
        f"chosen: {labels[k] or '∅'} {scores[k]:.2f}"
        if k is not None and not np.isnan(scores[k])
        else ("chosen: the given box" if k is not None else "nothing chosen: the provider returns None")
    )
    return f"{line}\n{pick}"


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
    chosen: the index of the chosen box, a pixel box, or a ``MaskResult`` (its box); None picks
    the box the provider would pick: the best-scoring box above the threshold whose label names
    the phrase (``phrase``, default the caption); False: none. It is drawn thick and green.
    Boxes above the threshold whose label does not name the phrase (e.g. no token above
    ``text_threshold``) are orange; the provider never chooses them. Only the ``max_boxes``
    best boxes are drawn.
    """
    arr = image_array(image)
    boxes, scores, labels, caption, known = _as_detection_table(detections)
    threshold = box_threshold if box_threshold is not None else known
    phrase = phrase if phrase is not None else caption
    table = _DrawnBoxes(
        boxes=boxes,
        scores=scores,
        labels=labels,
        kept=scores > threshold if threshold is not None else np.ones(len(scores), bool),
        names=np.array([bool(phrase) and _label_names_phrase(label, phrase) for label in labels], dtype=bool),
        order=np.argsort(-scores, kind="stable"),
    )
    n_found = len(scores)
    k = _choose(table, chosen, phrase)

    fig = (
        ax.figure
        if ax is not None
        else new_figure(figsize=(5.2, 5.6 * arr.shape[0] / arr.shape[1] + 0.9), layout="constrained")
    )
    ax = ax if ax is not None else fig.add_subplot()
    _show(ax, arr)
    shown = _draw_boxes(ax, table, k, max_boxes, size=6.5 if arr.shape[1] < 200 else 8)
    _draw_box_legend(ax)
    ax.set_title(title or _detections_title(table, n_found, len(shown), k, caption, threshold), fontsize=LABEL_PT)
    return fig


# ---- masks ---------------------------------------------------------------------------------


def _draw_no_mask(fig: Figure, axes, arr: np.ndarray, latent_hw, why: str) -> None:
    """The image alone (titled "no mask: ``why``"), and on the latent grid a note that the frame gets uniform noise."""
    _show(axes[0], arr)
    axes[0].set_title(f"no mask: {why}", fontsize=LABEL_PT)
    if latent_hw is not None:
        _note(
            axes[1],
            f"latent grid {latent_hw[0]}×{latent_hw[1]}:\nno mask, so the frame gets\n"
            "uniform noise (FrameInfo.fallback)",
        )
        axes[1].set_box_aspect(latent_hw[0] / latent_hw[1])


def _draw_mask_on_image(ax, arr: np.ndarray, m: np.ndarray, mask_result) -> None:
    """The mask ``m`` ([H, W]) in green over the image, its box, and phrase, score and IoU in the title."""
    h, w = arr.shape[:2]
    _show(ax, arr)
    overlay = np.zeros((h, w, 4), np.float32)
    overlay[..., :3] = _MASK_RGB
    overlay[..., 3] = 0.5 * m
    ax.imshow(overlay, extent=(0, w, h, 0), interpolation="nearest")
    box = getattr(mask_result, "box", None)
    if box is not None:
        x0, y0, x1, y1 = box
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=_CHOSEN, linewidth=2))
    parts = []
    phrase = getattr(mask_result, "phrase", "")
    score = getattr(mask_result, "score", None)
    extra = getattr(mask_result, "extra", {}) or {}
    if score is not None:
        parts.append(f"score {score:.2f}")
    if "iou" in extra:
        parts.append(f"IoU {extra['iou']:.2f}")
    head = f"{phrase!r}: " if phrase else ""
    ax.set_title(f"{head}{', '.join(parts) or 'mask'}\ncovers {float(m.mean()):.1%} of the image", fontsize=LABEL_PT)


def _draw_latent_mask(ax, mask: torch.Tensor, latent_hw, box) -> None:
    """The ``[H, W]`` mask area-resized to the latent grid, with cell values on a small grid and
    whether Eq. 7 can use it."""
    h, w = mask.shape
    small = resize_mask(mask, tuple(latent_hw), (h, w)).numpy()
    lh, lw = small.shape
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


def mask_figure(
    image,
    mask_result,
    latent_hw: tuple[int, int] | None = None,
    *,
    title: str | None = None,
    why: str = "nothing passed the thresholds",
) -> Figure:
    """The mask a provider returned, over the image, with its box, score and SAM's predicted IoU.

    mask_result: a ``MaskResult``, a bare ``[H, W]`` mask (tensor, array or PIL) or None (the
    provider found nothing; ``why`` says why in the image's title). latent_hw: also show the mask
    resized to the latent grid (``resize_mask``, area averaging), as the pipeline uses it in Eq. 7,
    with its coverage; the pipeline falls back to uniform noise when it covers less than 0.1 % or
    more than 99.9 %.
    """
    arr = image_array(image)
    h, w = arr.shape[:2]
    ncols = 2 if latent_hw is not None else 1
    fig, axes = new_subplots(1, ncols, figsize=(3.3 * ncols, 3.3 * h / w + 0.9), layout="constrained", squeeze=False)
    axes = axes[0]
    if mask_result is None:
        _draw_no_mask(fig, axes, arr, latent_hw, why)
    else:
        mask = to_mask_tensor(getattr(mask_result, "mask", mask_result))
        if tuple(mask.shape) != (h, w):
            raise ValueError(
                f"the mask is {tuple(mask.shape)} but the image is {(h, w)}: pass the image the mask was found in"
            )
        _draw_mask_on_image(axes[0], arr, mask.numpy(), mask_result)
        if latent_hw is not None:
            _draw_latent_mask(axes[1], mask, latent_hw, getattr(mask_result, "box", None))
    if title:
        fig.suptitle(title, fontsize=LABEL_PT)
    return fig
