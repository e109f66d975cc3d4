"""DreamSim distance (Recipe Diffusion, Tables I-II), through the ``dreamsim`` package when it is there.

DreamSim (Fu et al., 2023) is a perceptual distance learned from human similarity judgements: an
ensemble of DINO, CLIP and OpenCLIP ViT-B/16 features with LoRA heads, ``d(x, y) = 1 - cos(e(x), e(y))``
of its embedding ``e``. For each frame pair (i, j)::

    DreamSim (i, j) = d(x_i, x_j)          value = mean over pairs (lower = more alike)

with pairs ``consecutive`` (default) or ``all``; the package's own preprocessing (224 x 224,
bicubic) is used.

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
from ..errors import CheckpointError
from ..images import rgb_array, uint8_array
from .result import MetricResult, frame_pairs, mean_or_nan, provenance

__all__ = ["dreamsim_distance"]

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
    model, preprocess = _load(cache_dir, dreamsim_type, torch.device(device))
    to_pil = [PIL.Image.fromarray(uint8_array(rgb_array(im))) for im in images]
    x = [preprocess(im).to(device) for im in to_pil]  # each [1, 3, 224, 224]
    per_item = [float(model(x[i], x[j])) for i, j in progress(index, "DreamSim pairs", unit="pair")]
    import dreamsim as package

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
            dreamsim_version=getattr(package, "__version__", "unknown"),
            formula="DreamSim distance d(image_i, image_j); mean over pairs",
        ),
    )
