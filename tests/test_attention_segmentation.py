"""Segmentation measures of word maps (``cooklab.metrics.attention_segmentation``), pinned on designed maps.

Every expected number is counted by hand from the small maps written out below.
"""

import numpy as np
import pytest
import torch

from cooklab.metrics import attention_segmentation as S


def test_auroc_counts_pairs_with_ties_one_half():
    mask = np.array([[False, True, False, True]])
    # objects {0.4, 0.8} vs rest {0.1, 0.5}: 0.4>0.1, 0.4<0.5, 0.8>0.1, 0.8>0.5 -> 3 of 4 pairs
    assert S.auroc(np.array([[0.1, 0.4, 0.5, 0.8]]), mask) == pytest.approx(0.75)
    # objects {0.2, 0.1} vs rest {0.2, 0.5}: one tie (1/2), three losses -> 0.5 / 4
    tied = np.array([[0.2, 0.2, 0.5, 0.1]])
    assert S.auroc(tied, np.array([[True, False, False, True]])) == pytest.approx(0.125)


def test_a_map_equal_to_its_mask_scores_one_its_inverse_zero_a_constant_one_half():
    mask = np.zeros((8, 8), bool)
    mask[2:5, 3:7] = True
    exact = mask.astype(float)
    assert S.auroc(exact, mask) == 1.0
    assert S.auroc(1.0 - exact, mask) == 0.0
    assert S.auroc(np.full((8, 8), 0.3), mask) == 0.5
    assert S.segmentation_scores(exact, mask) == {
        "iou_area": 1.0,
        "iou@0.3": 1.0,
        "iou@0.4": 1.0,
        "iou@0.5": 1.0,
        "auroc": 1.0,
    }
    # a constant map ties everywhere: the area cut keeps every pixel, IoU = |mask| / all
    assert S.area_iou(np.full((8, 8), 0.3), mask) == pytest.approx(12 / 64)


def test_area_iou_keeps_the_masks_size_of_top_pixels():
    scores = np.array([[0.9, 0.8, 0.1, 0.0], [0.7, 0.2, 0.3, 0.0], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.05]])
    mask = np.zeros((4, 4), bool)
    mask[0, 0] = mask[1, 1] = mask[0, 1] = True  # scores 0.9, 0.2, 0.8
    # top 3 pixels: 0.9, 0.8, 0.7 -> two inside, one outside: IoU 2 / 4
    assert S.area_iou(scores, mask) == pytest.approx(0.5)


def test_threshold_iou_cuts_at_a_fraction_of_the_maximum_whatever_the_scale():
    mask = np.array([[False, True, True, True]])
    for scale in (1.0, 7.0):
        scores = scale * np.array([[0.2, 0.35, 0.45, 1.0]])
        assert S.threshold_iou(scores, mask, 0.3) == pytest.approx(1.0)  # keeps 0.35, 0.45, 1.0
        assert S.threshold_iou(scores, mask, 0.4) == pytest.approx(2 / 3)  # keeps 0.45, 1.0
        assert S.threshold_iou(scores, mask, 0.5) == pytest.approx(1 / 3)  # keeps 1.0
    assert S.DAAM_THRESHOLDS == (0.3, 0.4, 0.5)


def test_centre_prior_is_a_centred_gaussian_of_the_stated_width():
    prior = S.centre_prior((64, 64))
    assert prior.shape == (64, 64)
    assert prior[31, 31] == prior[32, 32] == prior[31, 32] == prior.max()  # the centre sits between 31 and 32
    wide = S.centre_prior((65, 65))  # odd side: the centre is pixel 32, one sigma is 16.25 pixels
    assert wide[32, 32] == 1.0
    assert S.centre_prior((64, 64), sigma=0.5)[31, 0] == pytest.approx(np.exp(-(31.5**2 + 0.5**2) / (2 * 32.0**2)))
    assert np.allclose(prior, prior[::-1, :]) and np.allclose(prior, prior.T)


def test_centre_prior_segments_a_centred_disc_perfectly_and_misses_a_corner():
    ys, xs = np.mgrid[:64, :64]
    disc = (ys - 31.5) ** 2 + (xs - 31.5) ** 2 <= 12**2
    prior = S.centre_prior((64, 64))
    assert S.auroc(prior, disc) == 1.0
    assert S.area_iou(prior, disc) == 1.0
    corner = np.zeros((64, 64), bool)
    corner[:10, :10] = True
    assert S.auroc(prior, corner) < 0.1  # only the other three corners lie as far out


def test_torch_maps_and_the_messages_that_name_the_fix():
    mask = torch.zeros(4, 4, dtype=torch.bool)
    mask[0, 0] = True
    assert S.auroc(torch.arange(16.0).flip(0).reshape(4, 4), mask) == 1.0
    with pytest.raises(ValueError, match="upsample the map"):
        S.auroc(np.zeros((2, 2)), mask)
    with pytest.raises(ValueError, match="both inside and outside"):
        S.auroc(np.zeros((4, 4)), torch.zeros(4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="positive map"):
        S.threshold_iou(np.zeros((4, 4)), mask, 0.4)
    with pytest.raises(ValueError, match="tau 1.5"):
        S.threshold_iou(np.ones((4, 4)), mask, 1.5)


def test_threshold_iou_edges_keep_pixels_at_the_cut_and_take_tau_one_not_zero():
    # tau = 1 is allowed (the cut at the maximum itself) and keeps exactly the pixels equal to it (>=, not >):
    # the two 1.0 pixels are the mask -> IoU 1; with ">" nothing would be kept (IoU 0).
    scores = np.array([[1.0, 0.5, 1.0, 0.0]])
    mask = np.array([[True, False, True, False]])
    assert S.threshold_iou(scores, mask, 1.0) == 1.0
    # a cut landing exactly on a pixel: 0.5 * 1.0 = 0.5 keeps 0.5 too -> 2 of 3 kept are in the mask
    assert S.threshold_iou(scores, mask, 0.5) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="tau 0"):
        S.threshold_iou(scores, mask, 0)  # tau in (0, 1]: 0 would keep every pixel of a non-negative map
    with pytest.raises(ValueError, match="sigma 0"):
        S.centre_prior((8, 8), sigma=0)  # a zero-width Gaussian divides by zero
