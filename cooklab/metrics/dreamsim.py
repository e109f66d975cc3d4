"""DreamSim distance (Recipe Diffusion, Tables I-II), through the ``dreamsim`` package when it is there.

DreamSim (Fu et al., 2023) is a perceptual distance learned from human similarity judgements: an
ensemble of DINO, CLIP and OpenCLIP ViT-B/16 features with LoRA heads, ``d(x, y) = 1 - cos(e(x), e(y))``
of its embedding ``e``. For each frame pair (i, j)::

    DreamSim (i, j) = d(x_i, x_j)          value = mean over pairs (lower = more alike)

with pairs ``consecutive`` (default) or ``all``; the package's own preprocessing (224 x 224,
bicubic) is used.

Recipe Diffusion's Tables I-II measure DreamSim "on key objects": ``dreamsim_masked`` compares
each frame's container region instead (``key_objects.key_object_crop``: the mask crop, or the
box crop with ``crop="box"``), over the pairs whose frames both have a mask, as ``dino_l2_masked``.

cooklab does not depend on ``dreamsim`` (it pins its own torch stack and downloads its weights
from GitHub). ``dreamsim_distance`` imports it on use and raises a ``CheckpointError`` naming the
fix when the package is missing (``pip install dreamsim``) or its weights are not in
``cache_dir`` (download them once on a machine with network access).
"""

from __future__ import annotations

from pathlib import Path

import PIL.Image
import torch

from ..backbones.preprocess import progress
from ..errors import CheckpointError, ConfigError
from ..images import rgb_array, uint8_array
from .key_objects import key_object_crop
from .result import MetricResult, frame_pairs, mean_or_nan, provenance

__all__ = ["dreamsim_distance", "dreamsim_masked"]

#: dreamsim's own default folder for its weights
DEFAULT_CACHE_DIR = "./models"


def _load(cache_dir: Path, dreamsim_type: str, device: torch.device):
    try:
        from dreamsim import dreamsim
    except ImportError as error:
        raise CheckpointError(
            "DreamSim needs the `dreamsim` package, which cooklab does not install. "
            "Fix: `pip install dreamsim` (then download its weights, see below)."
        ) from error
    download = (
        f'download them once on a machine with network access: `python -c "from dreamsim import dreamsim; '
        f"dreamsim(pretrained=True, dreamsim_type='{dreamsim_type}', cache_dir='{cache_dir}')\"`, then copy "
        f"{str(cache_dir)!r} here"
    )
    if not cache_dir.is_dir() or not any(cache_dir.iterdir()):
        raise CheckpointError(
            f"DreamSim's weights are not in {str(cache_dir)!r}. Fix: {download}, or pass cache_dir= the folder "
            "holding them."
        )
    try:
        return dreamsim(pretrained=True, device=str(device), cache_dir=str(cache_dir), dreamsim_type=dreamsim_type)
    except OSError as error:  # a missing file it then tried to download (URLError is an OSError)
        raise CheckpointError(
            f"DreamSim could not load its weights from {str(cache_dir)!r} ({type(error).__name__}: {error}). "
            f"Fix: {download}."
        ) from error


def _pair_distances(pictures: dict, index, cache_dir: Path, dreamsim_type: str, device) -> tuple[list[float], str]:
    """DreamSim ``d`` of each (i, j) in ``index`` between ``pictures[i]`` and ``pictures[j]`` (PIL), and the
    package's version."""
    model, preprocess = _load(cache_dir, dreamsim_type, torch.device(device))
    x = {k: preprocess(im).to(device) for k, im in pictures.items()}  # each [1, 3, 224, 224]
    per_item = [float(model(x[i], x[j])) for i, j in progress(index, "DreamSim pairs", unit="pair")]
    import dreamsim as package

    return per_item, getattr(package, "__version__", "unknown")


@torch.no_grad()
def dreamsim_distance(
    images,
    cache_dir: str | Path = DEFAULT_CACHE_DIR,
    dreamsim_type: str = "ensemble",
    pairs: str = "consecutive",
    device: str | torch.device = "cpu",
) -> MetricResult:
    """DreamSim ``d(x_i, x_j)`` per frame pair, averaged (needs ``pip install dreamsim`` and its weights in
    ``cache_dir``)."""
    images = list(images)
    index = frame_pairs(len(images), pairs)
    cache_dir = Path(cache_dir).expanduser()
    pictures = {k: PIL.Image.fromarray(uint8_array(rgb_array(im))) for k, im in enumerate(images)}
    per_item, version = _pair_distances(pictures, index, cache_dir, dreamsim_type, device)
    return MetricResult(
        mean_or_nan(per_item),
        per_item,
        provenance(
            "dreamsim",
            f"dreamsim {dreamsim_type} ({cache_dir})",
            "224 x 224 (dreamsim's preprocessing, bicubic)",
            "whole frame",
            pairs=pairs,
            pair_index=index,
            dreamsim_version=version,
            formula="DreamSim distance d(image_i, image_j); mean over pairs",
        ),
    )


@torch.no_grad()
def dreamsim_masked(
    images,
    masks,
    cache_dir: str | Path = DEFAULT_CACHE_DIR,
    crop: str = "mask",
    dreamsim_type: str = "ensemble",
    pairs: str = "consecutive",
    device: str | torch.device = "cpu",
) -> MetricResult:
    """DreamSim of the key objects: ``d(crop(x_i, M_i), crop(x_j, M_j))`` per pair of frames that both have a mask,
    averaged.

    masks: one ``[H, W]`` mask or None per frame (``container_masks``); crop: ``"mask"`` or ``"box"``
    (``key_objects``). The crops are made (and checked) before the package is loaded; no pair of
    masked frames gives nan and a note.
    """
    images = list(images)
    if masks is None or len(masks) != len(images):
        raise ConfigError(
            f"dreamsim_masked needs one mask (or None) per frame: got {'none' if masks is None else len(masks)} for "
            f"{len(images)} frames. Fix: pass masks=cooklab.metrics.container_masks(images, phrases, provider)."
        )
    masked = [m is not None for m in masks]
    index = [(i, j) for i, j in frame_pairs(len(images), pairs) if masked[i] and masked[j]]
    keep = sorted({k for pair in index for k in pair})
    pictures = {k: key_object_crop(images[k], masks[k], crop) for k in keep}  # k -> the object, square
    cache_dir = Path(cache_dir).expanduser()
    per_item, version = _pair_distances(pictures, index, cache_dir, dreamsim_type, device) if index else ([], None)
    note = {} if index else {"note": "no pair of frames both have a mask: nothing to score (value nan)"}
    return MetricResult(
        mean_or_nan(per_item),
        per_item,
        provenance(
            "dreamsim_masked",
            f"dreamsim {dreamsim_type} ({cache_dir})",
            "224 x 224 (dreamsim's preprocessing, bicubic)",
            f"key object: {crop} crop (outside the {crop} the fill colour), bounding box padded square",
            masked=masked,
            crop=crop,
            pairs=pairs,
            pair_index=index,
            dreamsim_version=version,
            formula="DreamSim d(object_i, object_j); mean over pairs of masked frames",
            **note,
        ),
    )
