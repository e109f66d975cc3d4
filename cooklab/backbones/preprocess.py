"""What every feature backbone shares: pictures turned into normalised batches, batched forward passes, loading.

A backbone (``ClipBackbone``, ``DinoBackbone``) sees pictures through a ``Preprocess``, the numbers
of a transformers image processor. Pictures are anything ``cooklab.images.rgb_tensor`` reads:

* whole frames: shortest side resized to ``resize`` (bicubic, antialiased), centre crop
  ``crop x crop``, then ``(x - mean) / std`` per channel -- what the CLIP and DINOv2 image
  processors of transformers do; with ``square=True`` both sides are resized to ``resize``
  (the aspect is not kept), as the Illustrated Instructions reference does before DINOv2;
* a frame with a mask (``prepare(..., masks=)``): every pixel outside the mask is set to the
  normalisation mean (so it is exactly 0 after normalising: no signal), the picture is cropped
  to the mask's bounding box, padded to a square with the same mean colour, and resized to
  ``crop x crop`` (no centre crop, which could cut the object). Pixels outside the mask never
  reach the backbone.

``batched_features`` runs a backbone's forward pass over many pictures, ``load_pretrained`` loads
its weights from a hub id or a folder (offline-aware), ``resolve_device`` picks where it runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..console import ProgressBar
from ..errors import CheckpointError, ConfigError
from ..hub import HUB_ERRORS, explain_hub_error, hub_kwargs, is_repo_id
from ..images import rgb_tensor

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "Preprocess",
    "batched_features",
    "load_pretrained",
    "prepare",
    "progress",
    "resolve_device",
]

#: how many pictures a backbone reads at once
DEFAULT_BATCH_SIZE = 32


@dataclass(frozen=True)
class Preprocess:
    """How a picture becomes a backbone's input (the numbers of a transformers image processor)."""

    resize: int  # shortest side resized to this many pixels (both sides with ``square``)
    crop: int  # then a centre crop of crop x crop pixels
    mean: tuple[float, float, float]  # per-channel normalisation, in [0, 1] units
    std: tuple[float, float, float]
    square: bool = False  # resize both sides to ``resize`` (aspect not kept: torchvision's Resize((s, s)))

    @classmethod
    def from_processor(cls, processor) -> Preprocess:
        """The numbers of a ``CLIPImageProcessor`` / ``BitImageProcessor`` (DINOv2) loaded with a model.

        A processor that resizes to a fixed (height, width) instead of a shortest side is read as its shorter side.
        """
        size, crop = processor.size, processor.crop_size
        resize = size["shortest_edge"] if "shortest_edge" in size else min(size["height"], size["width"])
        return cls(
            resize=int(resize),
            crop=int(min(crop["height"], crop["width"])),
            mean=tuple(float(m) for m in processor.image_mean),
            std=tuple(float(s) for s in processor.image_std),
        )


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """[3, H, W] -> [3, h, w], bicubic with antialiasing (what PIL does in the transformers processors)."""
    return F.interpolate(x[None], size=size, mode="bicubic", antialias=True, align_corners=False)[0]


def _whole(x: torch.Tensor, pre: Preprocess) -> torch.Tensor:
    """[3, H, W] -> [3, crop, crop]: shortest side (both sides when ``pre.square``) to ``pre.resize``, centre crop."""
    h, w = x.shape[-2:]
    scale = pre.resize / min(h, w)
    size = (pre.resize, pre.resize) if pre.square else (round(h * scale), round(w * scale))
    x = _resize(x, (max(pre.crop, size[0]), max(pre.crop, size[1])))
    top, left = (x.shape[-2] - pre.crop) // 2, (x.shape[-1] - pre.crop) // 2
    return x[:, top : top + pre.crop, left : left + pre.crop]


def _masked(x: torch.Tensor, mask, pre: Preprocess) -> torch.Tensor:
    """[3, H, W] -> [3, crop, crop]: outside the mask set to the mean colour, bounding box, padded square, resized."""
    m = torch.as_tensor(np.asarray(mask, dtype=np.float32)) > 0.5  # [H, W] bool
    if m.shape != x.shape[-2:]:
        raise ConfigError(
            f"a mask of shape {tuple(m.shape)} for an image of {tuple(x.shape[-2:])}: give each mask the size of its "
            "image."
        )
    if not m.any():
        raise ConfigError("a mask is empty (no pixel above 0.5): pass None for that frame to use the whole frame.")
    fill = torch.tensor(pre.mean).view(3, 1, 1)  # [3, 1, 1]
    x = torch.where(m, x, fill)  # [3, H, W]
    ys, xs = torch.nonzero(m, as_tuple=True)
    x = x[:, int(ys.min()) : int(ys.max()) + 1, int(xs.min()) : int(xs.max()) + 1]  # [3, h, w] bounding box
    h, w = x.shape[-2:]
    side = max(h, w)
    square = fill.expand(3, side, side).clone()  # [3, side, side]
    top, left = (side - h) // 2, (side - w) // 2
    square[:, top : top + h, left : left + w] = x
    return _resize(square, (pre.crop, pre.crop))


def prepare(images, pre: Preprocess, masks=None) -> torch.Tensor:
    """Pictures -> a normalised ``[N, 3, crop, crop]`` batch; ``masks``: one ``[H, W]`` mask or None per picture."""
    images = list(images)
    if not images:
        raise ConfigError("no images were given: pass a list of at least one picture.")
    if masks is None:
        masks = [None] * len(images)
    masks = list(masks)
    if len(masks) != len(images):
        raise ConfigError(f"{len(images)} images but {len(masks)} masks: give one mask (or None) per image.")
    frames = [
        _whole(rgb_tensor(im), pre) if m is None else _masked(rgb_tensor(im), m, pre) for im, m in zip(images, masks)
    ]
    batch = torch.stack(frames)  # [N, 3, crop, crop] in [0, 1]
    mean, std = torch.tensor(pre.mean).view(1, 3, 1, 1), torch.tensor(pre.std).view(1, 3, 1, 1)
    return (batch - mean) / std


def progress(iterable, desc: str, total: int | None = None, unit: str = "it"):
    """``iterable`` with a progress bar (``cooklab.console.ProgressBar``) that goes away when done (off inside a
    command that has its own bar).

    Set the environment variable ``TQDM_DISABLE=1`` to hide every bar.
    """
    return ProgressBar(iterable, desc=desc, total=total, unit=unit, leave=False)


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"``: CUDA when available, else the CPU; anything else as ``torch.device``."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={str(device)!r}: no CUDA device is available here; use device='cpu' or 'auto'.")
    return device


@torch.no_grad()
def batched_features(
    forward,
    images,
    pre: Preprocess,
    masks=None,
    *,
    batch_size: int,
    device: torch.device,
    dtype: torch.dtype,
    desc: str,
) -> torch.Tensor:
    """``forward(pixels)`` over the pictures, ``batch_size`` at a time on ``device``: ``[N, D]`` float32 on ``device``.

    Each batch is preprocessed (``prepare``) just before it runs, so memory holds one batch of
    pixels, not all of them. Every picture is preprocessed on its own, so the features do not
    depend on the batch size (tested: batch 1 and batch N agree).
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size={batch_size}: use a positive number of pictures per batch.")
    images = list(images)
    masks = [None] * len(images) if masks is None else list(masks)
    if len(masks) != len(images):
        raise ConfigError(f"{len(images)} images but {len(masks)} masks: give one mask (or None) per image.")
    if not images:
        raise ConfigError("no images were given: pass a list of at least one picture.")
    out = []
    with progress(None, desc, total=len(images), unit="img") as bar:
        for start in range(0, len(images), batch_size):
            pixels = prepare(
                images[start : start + batch_size], pre, masks[start : start + batch_size]
            )  # [B, 3, crop, crop]
            out.append(forward(pixels.to(device, dtype)).float())  # [B, D]
            bar.update(len(pixels))
    return torch.cat(out)  # [N, D]


def load_pretrained(cls, source: str | Path, **kwargs):
    """``cls.from_pretrained(source)`` for a hub id or a local folder, offline-aware, failures as ``CheckpointError``
    with the fix."""
    path = Path(source).expanduser()
    if path.is_dir():
        try:
            return cls.from_pretrained(str(path), **kwargs)
        except HUB_ERRORS as error:
            raise CheckpointError(
                f"cannot load {cls.__name__} from the folder {str(path)!r} ({type(error).__name__}: {error}). "
                f"Fix: pass a folder written by save_pretrained or `hf download`."
            ) from error
    if not is_repo_id(str(source)):
        raise CheckpointError(
            f"{str(source)!r} is not an existing folder, nor a valid Hugging Face Hub id like 'org/name'."
        )
    try:
        return cls.from_pretrained(str(source), **{**kwargs, **hub_kwargs(kwargs)})  # local_files_only when offline
    except HUB_ERRORS as error:
        raise explain_hub_error(str(source), error) from error
