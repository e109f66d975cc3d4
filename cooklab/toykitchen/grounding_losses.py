"""The losses of the toy GroundingDINO and SAM (``grounding_training.py``): pure functions of outputs and targets.

**Detector.** With one object per picture Hungarian matching reduces to picking, per
picture, the query ``q*`` of least matching cost (DETR's cost:
``focal_cost + 5 L1 + 2 (1 - GIoU)``), and the loss is

    L_det = sum_{q, t} focal(logit[q, t], y[q, t]) / n_pos + 5 |b_q* - b| + 2 (1 - GIoU(b_q*, b))

over the valid caption tokens ``t``, with ``y[q*, t] = 1`` on the phrase's word tokens of a
positive picture and 0 elsewhere (all 0 for a negative), on the decoder's last layer and on the
encoder's proposals. (transformers' own GroundingDINO loss needs scipy's Hungarian solver.)

**Segmenter.** SAM prompted with the container box, three candidate masks; as in SAM, only the best
candidate is trained, and the IoU head learns each candidate's real IoU:

    L_seg = min_k [BCE(m_k, M) + dice(m_k, M)] + mean_k (iou_k - IoU(m_k > 0, M))^2
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.ops import box_convert, generalized_box_iou_loss, sigmoid_focal_loss


def box_cxcywh_to_xyxy(b: torch.Tensor) -> torch.Tensor:
    """(cx, cy, w, h) boxes [..., 4] as (x0, y0, x1, y1) (``torchvision.ops.box_convert``)."""
    return box_convert(b, "cxcywh", "xyxy")


def generalized_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Elementwise GIoU of (x0, y0, x1, y1) boxes [..., 4] and [..., 4]: IoU - (hull - union) / hull
    (``torchvision.ops.generalized_box_iou_loss`` is 1 - GIoU)."""
    return 1 - generalized_box_iou_loss(a, b, reduction="none")


def focal_loss(logits: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0) -> torch.Tensor:
    """Elementwise sigmoid focal loss ``-alpha_t (1 - p_t)^gamma log p_t`` (RetinaNet; GroundingDINO's class loss;
    ``torchvision.ops.sigmoid_focal_loss``)."""
    return sigmoid_focal_loss(logits, targets, alpha=alpha, gamma=gamma, reduction="none")


def one_object_detection_loss(
    logits, boxes, token_mask, positive_tokens, target_box, positive
) -> tuple[torch.Tensor, dict]:
    """GroundingDINO's set loss for at most one object per picture (matching = the cheapest query).

    logits: [B, Q, T] query x caption-token logits (-inf past the caption); boxes: [B, Q, 4] (cx, cy, w, h) in [0, 1];
    token_mask: [B, T] bool, the caption's tokens; positive_tokens: [B, T] float, 1 on the phrase's words;
    target_box: [B, 4] (cx, cy, w, h); positive: [B] bool (False: nothing to find, every query is a negative).
    Returns (loss, parts) with ``loss = class + 5 L1 + 2 (1 - GIoU)`` as in the module docstring.
    """
    logits = logits[..., : token_mask.shape[1]]
    valid = token_mask[:, None, :].expand_as(logits)  # [B, Q, T]
    safe = torch.where(valid, logits, torch.zeros_like(logits))
    with torch.no_grad():  # matching cost of each query [B, Q]
        p = safe.sigmoid()
        pos_cost = 0.25 * (1 - p) ** 2 * -(p + 1e-8).log()
        neg_cost = 0.75 * p**2 * -(1 - p + 1e-8).log()
        n_tok = positive_tokens.sum(-1, keepdim=True).clamp(min=1)  # [B, 1]
        class_cost = ((pos_cost - neg_cost) * positive_tokens[:, None, :]).sum(-1) / n_tok
        l1_cost = (boxes - target_box[:, None]).abs().sum(-1)
        giou_cost = -generalized_iou(
            box_cxcywh_to_xyxy(boxes), box_cxcywh_to_xyxy(target_box)[:, None].expand_as(boxes)
        )
        best = (class_cost + 5 * l1_cost + 2 * giou_cost).argmin(-1)  # [B]
    rows = torch.arange(logits.shape[0])
    y = torch.zeros_like(safe)  # [B, Q, T]
    y[rows, best] = positive_tokens * positive[:, None].to(y.dtype)
    n_pos = max(int(positive.sum()), 1)
    cls = (focal_loss(safe, y) * valid).sum() / n_pos
    if positive.any():
        matched = boxes[rows, best][positive]  # [P, 4]
        target = target_box[positive]
        l1 = (matched - target).abs().sum(-1).mean()
        giou = (1 - generalized_iou(box_cxcywh_to_xyxy(matched), box_cxcywh_to_xyxy(target))).mean()
    else:
        l1 = giou = safe.sum() * 0
    return cls + 5 * l1 + 2 * giou, {"class": cls.item(), "l1": l1.item(), "giou": giou.item()}


def segmentation_loss(
    mask_logits: torch.Tensor, iou_pred: torch.Tensor, target: torch.Tensor
) -> tuple[torch.Tensor, dict]:
    """SAM's multi-mask loss: the best of K candidates' BCE + dice, plus the IoU head's MSE.

    mask_logits: [B, K, h, w]; iou_pred: [B, K]; target: [B, h, w] float in {0, 1}.
    """
    t = target[:, None].expand_as(mask_logits)
    bce = F.binary_cross_entropy_with_logits(mask_logits, t, reduction="none").mean((-2, -1))  # [B, K]
    p = mask_logits.sigmoid()
    dice = 1 - (2 * (p * t).sum((-2, -1)) + 1) / (p.sum((-2, -1)) + t.sum((-2, -1)) + 1)  # [B, K]
    per_mask = bce + dice
    best = per_mask.min(-1).values.mean()
    with torch.no_grad():
        hard = mask_logits > 0
        inter = (hard & (t > 0.5)).sum((-2, -1)).float()
        union = (hard | (t > 0.5)).sum((-2, -1)).float()
        true_iou = inter / union.clamp(min=1)  # [B, K]
    iou_loss = F.mse_loss(iou_pred, true_iou)
    return best + iou_loss, {
        "mask": best.item(),
        "iou_head": iou_loss.item(),
        "best_iou": true_iou.max(-1).values.mean().item(),
    }
