"""How well a word's attention map segments the object the word names: IoU at thresholds, AUROC, a centre prior.

A word map ``A`` (``[H, W]``, any non-negative score per pixel, upsampled to the picture) is compared with
the truth ``M`` (``[H, W]`` bool: the pixels of the object, e.g. the Toy Kitchen oracle's ``container_mask`` or
``food_mask`` read from the same picture):

* **IoU at the mask's area** (``area_iou``): the map is cut at the value of its ``k``-th largest pixel,
  ``k = |M|``, so that the prediction ``P = {A >= A_(k)}`` has the truth's size (more only where pixels tie
  with ``A_(k)``); ``IoU = |P ∩ M| / |P ∪ M|``. It asks "are the map's top pixels the object's?" without a
  free threshold.
* **IoU at a fraction of the maximum** (``threshold_iou``): ``P = {A >= tau * max A}``, the binarisation of
  DAAM (Tang et al., 2023, "What the DAAM", ACL, Sec. 3: heat maps normalised to [0, 1] and thresholded;
  DAAM-0.3 / 0.4 / 0.5 reported, 0.4 the best), ``DAAM_THRESHOLDS``.
* **AUROC** (``auroc``): the probability that a pixel of the object scores higher than a pixel outside it,
  ties counted one half -- the Mann-Whitney statistic
  ``AUROC = (R+ - n+ (n+ + 1) / 2) / (n+ n-)``, ``R+`` the sum of the object pixels' ranks among all pixels
  (tied scores get their average rank). 1 ranks the object first, 0.5 is chance (and a constant map), 0 ranks
  it last. No threshold at all.
* **centre prior** (``centre_prior``): a baseline with no model -- the centred Gaussian
  ``exp(-((y - cy)^2 + (x - cx)^2) / (2 (s min(H, W))^2))``, ``cy = (H - 1) / 2``, ``cx = (W - 1) / 2``,
  ``s = CENTRE_PRIOR_SIGMA``. It ranks pixels by their distance from the centre, so its AUROC and its
  ``area_iou`` do not depend on ``s`` (any centred isotropic bump gives the same); only the fixed-threshold
  IoUs do. A word map is only informative where it beats this.

``segmentation_scores`` returns all of them for one map. Every function takes numpy arrays or torch tensors.
"""

from __future__ import annotations

import numpy as np
import torch

#: DAAM's thresholds on the max-normalised map (DAAM-0.3 / 0.4 / 0.5)
DAAM_THRESHOLDS = (0.3, 0.4, 0.5)

#: the centre prior's standard deviation, as a fraction of the picture's shorter side
CENTRE_PRIOR_SIGMA = 0.25


def _arrays(score_map, mask) -> tuple[np.ndarray, np.ndarray]:
    """(scores [H, W] float64, truth [H, W] bool), checked: same shape, the truth neither empty nor everything."""
    scores = score_map.detach().cpu().numpy() if isinstance(score_map, torch.Tensor) else np.asarray(score_map)
    truth = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    scores, truth = scores.astype(np.float64), truth.astype(bool)
    if scores.shape != truth.shape:
        raise ValueError(
            f"map of shape {scores.shape} but mask of shape {truth.shape}: upsample the map to the picture first."
        )
    if not truth.any() or truth.all():
        raise ValueError(
            f"the mask covers {int(truth.sum())} of {truth.size} pixels: a segmentation score needs pixels both "
            "inside and outside it (leave out words whose object the picture does not show)."
        )
    return scores, truth


def _iou(predicted: np.ndarray, truth: np.ndarray) -> float:
    return float((predicted & truth).sum() / (predicted | truth).sum())


def area_iou(score_map, mask) -> float:
    """IoU of the mask with the map cut at its ``|mask|``-th largest value (``A >= A_(k)``, ties kept)."""
    scores, truth = _arrays(score_map, mask)
    cut = np.sort(scores.ravel())[::-1][int(truth.sum()) - 1]  # the k-th largest score
    return _iou(scores >= cut, truth)


def threshold_iou(score_map, mask, tau: float) -> float:
    """IoU of the mask with ``A >= tau * max A`` (DAAM's binarisation); ``tau`` in (0, 1]."""
    if not 0 < tau <= 1:
        raise ValueError(f"tau {tau}: give a fraction of the map's maximum in (0, 1], such as 0.4.")
    scores, truth = _arrays(score_map, mask)
    peak = scores.max()
    if peak <= 0:
        raise ValueError(f"the map's maximum is {peak}: a threshold at a fraction of it needs a positive map.")
    return _iou(scores >= tau * peak, truth)


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..N of ``values`` (flat), tied values sharing the mean of the ranks they span."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])  # [G] first position of each tie group
    ends = np.r_[starts[1:], len(values)]  # [G] one past the last
    group_rank = (starts + ends + 1) / 2.0  # [G] mean of ranks starts+1 .. ends
    ranks = np.empty(len(values))
    ranks[order] = np.repeat(group_rank, ends - starts)
    return ranks


def auroc(score_map, mask) -> float:
    """Mann-Whitney AUROC of the map's scores for the mask's pixels against the rest, ties counted one half."""
    scores, truth = _arrays(score_map, mask)
    ranks = average_ranks(scores.ravel())
    positives = truth.ravel()
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def centre_prior(shape: tuple[int, int], sigma: float = CENTRE_PRIOR_SIGMA) -> np.ndarray:
    """[H, W] float: the centred Gaussian baseline, 1 at the centre, ``sigma`` a fraction of the shorter side."""
    if sigma <= 0:
        raise ValueError(f"sigma {sigma}: give a positive fraction of the picture's side, such as 0.25.")
    height, width = shape
    ys = np.arange(height)[:, None] - (height - 1) / 2  # [H, 1]
    xs = np.arange(width)[None, :] - (width - 1) / 2  # [1, W]
    spread = sigma * min(height, width)
    return np.exp(-(ys**2 + xs**2) / (2 * spread**2))


def segmentation_scores(score_map, mask, thresholds=DAAM_THRESHOLDS) -> dict[str, float]:
    """``{"iou_area": ..., "iou@0.3": ..., ..., "auroc": ...}`` of one map against one mask."""
    scores = {"iou_area": area_iou(score_map, mask)}
    scores.update({f"iou@{tau:g}": threshold_iou(score_map, mask, tau) for tau in thresholds})
    scores["auroc"] = auroc(score_map, mask)
    return scores
