"""L2 distance of DINOv2 embeddings (Recipe Diffusion, Tables I-II): how far a frame moved from the one before.

With ``h(x)`` the DINOv2 CLS embedding (transformers ``Dinov2Model``, ``pooler_output``: the
CLS token after the final layer norm, not L2-normalised), for each frame pair (i, j)::

    DINO-L2 (i, j) = || h(x_i) - h(x_j) ||_2          value = mean over pairs (lower = more alike)

    masked DINO-L2 (i, j) = || h(M_i x_i) - h(M_j x_j) ||_2  over the pairs whose frames both have a mask

with pairs ``consecutive`` (default) or ``all``. Whole frames are resized (shortest side 256)
and centre-cropped to 224 like DINOv2's image processor. With ``masks`` (one ``[H, W]`` mask or
None per frame, e.g. the container masks Recipe Diffusion keeps), a frame is measured on its
masked object only: outside the mask set to the normalisation mean, cropped to the mask's
bounding box, padded square with the mean, resized to 224 (``cooklab.backbones.preprocess.prepare``). Pixels outside a
mask never reach the model, so changing them changes nothing. The distance's scale depends on
the backbone (compare numbers of one backbone only). ``dino_l2_masked`` is the object-only measure
of Recipe Diffusion's tables: it scores only pairs of two masked frames (a crop against a whole
frame would compare different things), and ``container_masks`` finds each frame's container
with a cooklab mask provider (the Toy Kitchen oracle, GroundingDINO + SAM, a box);
``crop="box"`` measures the mask's bounding box instead of the mask (``key_objects.box_mask``).

**Cross-image consistency** as the Illustrated Instructions reference computes it
(``clip_image_test.py``; CookAnything's "CSC", e.g. "44.12, 9.03 below ground truth")::

    CSC = mean over all pairs i < j of one sequence of || h(x_i) - h(x_j) ||_2

on DINOv2 ViT-L/14 (``DINOV2_LARGE``; torch hub ``dinov2_vitl14``, whose output is this CLS
token after the final norm), each frame resized to 256 x 256 (the aspect not kept), centre-cropped
to 224, ImageNet mean and std (``backbones.dino.square_preprocess``): ``cross_step_consistency_dino``.
A distance: lower = more alike; CookAnything reads it against the ground-truth pictures' value
(a baseline 9.03 below it repeats itself). Deviation: the reference takes the pairs within groups
of 4 consecutive frames of its flattened batch (with 6-step sequences a group can span two
sequences); cooklab takes every pair of one sequence.

The backbone is a ``cooklab.backbones.DinoBackbone`` (``dino_backbone(source)``: a hub id or
local folder, default ``"facebook/dinov2-base"``; ``tiny_random_dino()`` for tests).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..backbones.dino import DEFAULT_DINO, DINOV2_LARGE, DinoBackbone, dino_backbone, square_preprocess
from ..errors import ConfigError
from .key_objects import CROPS, box_mask
from .result import MetricResult, frame_pairs, mean_or_nan, provenance

__all__ = ["container_masks", "cross_step_consistency_dino", "dino_l2", "dino_l2_masked"]

#: the record's crop / mask entry for masked frames
MASKED_CROP = (
    "masked frames: outside the mask set to the mean colour, cropped to the mask's box, padded square, resized"
)


def dino_l2(images, masks=None, dino: str | DinoBackbone = DEFAULT_DINO, pairs: str = "consecutive") -> MetricResult:
    """DINO-L2: ``||h(x_i) - h(x_j)||_2`` of CLS embeddings per frame pair, averaged; ``masks`` restrict frames to
    their object."""
    dino = dino_backbone(dino)
    images = list(images)
    index = frame_pairs(len(images), pairs)
    h = dino.embeddings(images, masks)  # [N, D]
    per_item = [float((h[i] - h[j]).norm()) for i, j in index]
    masked = [False] * len(images) if masks is None else [m is not None for m in masks]
    crop = "whole frame, centre crop" if not any(masked) else MASKED_CROP
    return MetricResult(
        mean_or_nan(per_item),
        per_item,
        provenance(
            "dino_l2",
            dino.source,
            dino.preprocess,
            crop,
            masked=masked,
            pairs=pairs,
            pair_index=index,
            formula="||CLS(image_i) - CLS(image_j)||_2; mean over pairs",
        ),
    )


def dino_l2_masked(
    images, masks, dino: str | DinoBackbone = DEFAULT_DINO, pairs: str = "consecutive", crop: str = "mask"
) -> MetricResult:
    """DINO-L2 of the masked object regions: ``||h(M_i x_i) - h(M_j x_j)||_2`` per pair of frames that both have a
    mask.

    masks: one ``[H, W]`` mask or None per frame (``container_masks``). Pairs with an unmasked frame
    are left out (the record lists the pairs scored); none left gives ``nan`` and a note.
    crop: ``"mask"`` (the object's pixels) or ``"box"`` (its mask's bounding box).
    """
    images = list(images)
    if masks is None or len(masks) != len(images):
        raise ConfigError(
            f"dino_l2_masked needs one mask (or None) per frame: got {'none' if masks is None else len(masks)} for "
            f"{len(images)} frames. Fix: pass masks=cooklab.metrics.container_masks(images, phrases, provider)."
        )
    if crop not in CROPS:
        raise ConfigError(f"crop={crop!r}: choose one of {list(CROPS)}.")
    if crop == "box":
        masks = [None if m is None else box_mask(m) for m in masks]
    dino = dino_backbone(dino)
    masked = [m is not None for m in masks]
    index = [(i, j) for i, j in frame_pairs(len(images), pairs) if masked[i] and masked[j]]
    keep = sorted({k for pair in index for k in pair})  # frames in a scored pair
    h = (
        dict(zip(keep, dino.embeddings([images[k] for k in keep], [masks[k] for k in keep]))) if keep else {}
    )  # k -> [D]
    per_item = [float((h[i] - h[j]).norm()) for i, j in index]
    note = {} if index else {"note": "no pair of frames both have a mask: nothing to score (value nan)"}
    return MetricResult(
        mean_or_nan(per_item),
        per_item,
        provenance(
            "dino_l2_masked",
            dino.source,
            dino.preprocess,
            MASKED_CROP,
            masked=masked,
            crop=crop,
            pairs=pairs,
            pair_index=index,
            formula="||CLS(masked image_i) - CLS(masked image_j)||_2; mean over pairs of masked frames",
            **note,
        ),
    )


def cross_step_consistency_dino(
    images, dino: str | DinoBackbone = DINOV2_LARGE, square_resize: bool = True
) -> MetricResult:
    """Cross-image consistency of the Illustrated Instructions protocol: ``||h(x_i) - h(x_j)||_2`` over every pair
    i < j of the sequence, averaged (lower = more alike).

    square_resize: the reference's preprocessing (both sides to 256/224 of the crop, centre crop;
    ``square_preprocess``); False keeps the backbone's own (shortest side, centre crop).
    """
    dino = dino_backbone(dino)
    if square_resize:
        dino = replace(dino, preprocess=square_preprocess(dino.preprocess))
    images = list(images)
    index = frame_pairs(len(images), "all")
    h = dino.embeddings(images)  # [N, D]
    per_item = [float((h[i] - h[j]).norm()) for i, j in index]
    return MetricResult(
        mean_or_nan(per_item),
        per_item,
        provenance(
            "cross_step_consistency_dino",
            dino.source,
            dino.preprocess,
            "whole frame, both sides resized, centre crop" if square_resize else "whole frame, centre crop",
            pairs="all",
            pair_index=index,
            formula="||CLS(image_i) - CLS(image_j)||_2; mean over all pairs i < j of the sequence",
        ),
    )


def container_masks(images, phrases, provider) -> list[np.ndarray | None]:
    """Each frame's container mask: ``provider(frame, phrase)`` (a cooklab ``MaskProvider``), ``[H, W]`` bool or None.

    phrases: one container phrase or None per frame (None: no container, no mask). A provider that
    finds nothing gives None for that frame.
    """
    import PIL.Image

    from ..grounding.provider import as_mask_result

    images, phrases = list(images), list(phrases)
    if len(images) != len(phrases):
        raise ConfigError(f"{len(images)} images but {len(phrases)} container phrases: give one (or None) per frame.")
    out = []
    for image, phrase in zip(images, phrases):
        if phrase is None:
            out.append(None)
            continue
        picture = image if isinstance(image, PIL.Image.Image) else PIL.Image.fromarray(np.asarray(image))
        found = as_mask_result(provider(picture, phrase), (picture.height, picture.width), phrase)
        out.append(None if found is None else found.mask.numpy() > 0.5)
    return out
