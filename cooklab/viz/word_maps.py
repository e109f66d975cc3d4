"""A word's heat map over its picture, scored against the object's true mask, next to the centre prior.

    fig = word_map_figure(image, heat, mask, {"iou_area": 0.4, "auroc": 0.8}, prior, prior_scores, word="pot")

Three panels: the picture with the truth outlined (the Toy Kitchen oracle's mask of the object the
word names), the word's map over the picture, and the centre prior (a map that knows no word) with
the same outline. Each map is coloured from its own minimum to its maximum: the two scores in its
title (``cooklab.metrics.attention_segmentation``: IoU at the mask's area and AUROC) depend only on
how the map ranks its pixels, not on its scale. The word map is always read next to a baseline
that needs no model. The figure draws plain arrays; the scores are computed by the caller.
"""

from __future__ import annotations

import numpy as np

from .common import LABEL_PT, SMALL_PT, draw_image, draw_overlay, new_subplots, to_array

__all__ = ["word_map_figure"]


def _outline(ax, mask: np.ndarray) -> None:
    """The mask's edge as a white contour (pixel centres on a pixel grid)."""
    if mask.any() and not mask.all():
        ax.contour(mask.astype(float), levels=[0.5], colors="white", linewidths=1.2)


def _title(name: str, scores: dict | None) -> str:
    if scores is None:
        return f"{name}\n(no truth to score)"
    return f"{name}\nIoU {scores['iou_area']:.2f} · AUROC {scores['auroc']:.2f}"


def _versus(scores: dict | None, prior_scores: dict | None) -> str:
    """The prior's AUROC against the word map's, as a line of the prior's title."""
    if scores is None or prior_scores is None:
        return ""
    gap = prior_scores["auroc"] - scores["auroc"]
    return f"\n{'beats' if gap > 0 else 'loses to'} the map shown by {abs(gap):.2f} AUROC"


def word_map_figure(
    image,
    heat,
    mask,
    scores: dict | None,
    prior,
    prior_scores: dict | None,
    word: str,
    subtitle: str = "",
    kind: str = "",
    other: tuple[str, dict | None] | None = None,
):
    """[picture + truth | word map | centre prior] for one word; ``heat`` and ``prior`` are [H, W] like ``mask``.

    scores / prior_scores: ``{"iou_area": ..., "auroc": ...}`` of the word map and of the prior
    against ``mask`` (None: the picture shows no such object, nothing is scored). kind names the
    map (e.g. "renormalised over the words"); other: ``(name, scores)`` of the same word's map made
    the other way (e.g. "raw"), whose AUROC the word map's title adds in brackets. The
    prior's title says by how much it beats (or loses to) the word map shown.
    """
    heat, prior = to_array(heat), to_array(prior)
    truth = np.asarray(mask, dtype=bool)
    fig, axes = new_subplots(1, 3, figsize=(10.0, 3.8))
    draw_image(axes[0], image, title=f"the picture · truth of {word!r}")
    _outline(axes[0], truth)
    name = f"word map of {word!r}" + (f"\n{kind}" if kind else "")
    title = _title(name, scores)
    if other is not None and other[1] is not None:
        title += f"\n({other[0]}: AUROC {other[1]['auroc']:.2f})"
    for ax, m, text in (
        (axes[1], heat, title),
        (axes[2], prior, _title("centre prior (no model)", prior_scores) + _versus(scores, prior_scores)),
    ):
        low, high = float(m.min()), float(m.max())  # each map on its own range: a flat map still shows its shape
        mappable = draw_overlay(ax, image, m, 0.6, "inferno", low, max(high, low + 1e-12), "nearest")
        _outline(ax, truth)
        ax.set_title(text, fontsize=LABEL_PT)
        fig.colorbar(mappable, ax=ax, fraction=0.046, pad=0.02).ax.tick_params(labelsize=SMALL_PT)
    if subtitle:
        fig.suptitle(subtitle, fontsize=SMALL_PT)
    return fig
