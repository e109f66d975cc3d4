"""Pictures between PIL, numpy and torch: the one place cooklab converts images.

A picture reaches cooklab as a PIL image, an ``[H, W]`` / ``[H, W, C]`` array or a
``[C, H, W]`` / ``[H, W, C]`` tensor (C = 1, 3 or 4: grey, RGB, RGBA), with uint8 values in
0..255 or float values in 0..1. Every reader turns it into one of these:

* ``rgb_array``  -- ``[H, W, 3]`` float32 in [0, 1] (figures; backbones through ``rgb_tensor``)::

      x = v / 255 for uint8 v,   x = clip(v, 0, 1) for float v;   grey repeated to RGB, alpha dropped

* ``rgb_tensor`` -- the same picture as a ``[3, H, W]`` float32 tensor (what a backbone's preprocessing reads);
* ``rgb_255``    -- ``[H, W, 3]`` float32 in 0..255 (the Toy Kitchen oracle's palette distances);
  float pictures in [0, 1] are scaled by 255, larger floats are taken as 0..255 already;
* ``pil_rgb``    -- a PIL RGB image from a PIL image or a uint8 array (the detectors' processors read PIL);
* ``uint8_array`` and ``png_bytes`` -- a picture as 0..255 bytes and as a PNG file's contents (run folders);
* ``read_picture`` -- a picture file as a PIL RGB image, a ``ConfigError`` naming the file and the fix when it is
  truncated, corrupt or not a picture.

Imports numpy, torch and PIL only (no matplotlib, no transformers), so any package may use it.
"""

from __future__ import annotations

import io
import os

import numpy as np
import PIL.Image
import torch

from .errors import ConfigError

__all__ = ["pil_rgb", "png_bytes", "read_picture", "rgb_255", "rgb_array", "rgb_tensor", "uint8_array"]

_CHANNELS = (1, 3, 4)  # grey, RGB, RGBA


def _channels_last(image: torch.Tensor) -> np.ndarray:
    """A tensor picture as a CPU array with the channels last (uint8 kept, anything else float32)."""
    if image.ndim == 3 and image.shape[0] in _CHANNELS and image.shape[-1] not in _CHANNELS:
        image = image.permute(1, 2, 0)  # [C, H, W] -> [H, W, C]
    image = image.detach().cpu()
    return (image if image.dtype == torch.uint8 else image.float()).numpy()


def rgb_array(image) -> np.ndarray:
    """One picture as an ``[H, W, 3]`` float32 array in [0, 1] (uint8 divided by 255, floats clipped).

    image: a PIL image (converted to RGB), an ``[H, W]`` / ``[H, W, C]`` array, or a ``[C, H, W]`` /
    ``[H, W, C]`` tensor, C = 1, 3 or 4 (grey becomes RGB, the alpha channel is dropped).
    """
    if isinstance(image, torch.Tensor):
        arr = _channels_last(image)
    else:
        arr = np.asarray(image.convert("RGB") if isinstance(image, PIL.Image.Image) else image)
    arr = arr.astype(np.float32) / 255.0 if arr.dtype == np.uint8 else arr.astype(np.float32)
    if arr.ndim == 2:
        arr = arr[..., None]  # [H, W] -> [H, W, 1]
    if arr.ndim != 3 or arr.shape[-1] not in _CHANNELS:
        raise ConfigError(
            f"an image must be [H, W], [H, W, C] or [C, H, W] with C = 1, 3 or 4; got shape {arr.shape}."
        )
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)  # grey -> RGB
    return np.clip(arr[..., :3], 0.0, 1.0)  # [H, W, 3]


def rgb_tensor(image) -> torch.Tensor:
    """One picture as a ``[3, H, W]`` float32 tensor in [0, 1] (``rgb_array``, channels first)."""
    return torch.from_numpy(rgb_array(image)).permute(2, 0, 1).contiguous()  # [3, H, W]


def rgb_255(image) -> np.ndarray:
    """One RGB picture as an ``[H, W, 3]`` float32 array in 0..255 (PIL, uint8 / float array, [3, H, W] tensor).

    A float picture whose largest value is at most 1 is read as 0..1 and scaled by 255; other floats
    are taken as 0..255 already.
    """
    if isinstance(image, PIL.Image.Image):
        return np.asarray(image.convert("RGB"), dtype=np.float32)
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().float().numpy()
        if image.ndim == 3 and image.shape[0] in (1, 3) and image.shape[-1] not in (1, 3):
            image = image.transpose(1, 2, 0)  # [3, H, W] -> [H, W, 3]
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise ValueError(f"expected an RGB picture [H, W, 3]; got shape {arr.shape}.")
    if arr.dtype != np.uint8 and arr.size and float(np.nanmax(arr)) <= 1.0:
        arr = arr * 255.0  # float in [0, 1]
    return arr.astype(np.float32)


def pil_rgb(image) -> PIL.Image.Image:
    """A PIL RGB image from a PIL image or an ``[H, W, 3]`` uint8 array."""
    if isinstance(image, np.ndarray):
        image = PIL.Image.fromarray(image)
    if not isinstance(image, PIL.Image.Image):
        raise ConfigError(f"image must be a PIL image or an [H, W, 3] uint8 array, got {type(image).__name__}.")
    return image if image.mode == "RGB" else image.convert("RGB")


def uint8_array(array: np.ndarray) -> np.ndarray:
    """An array picture as uint8: uint8 unchanged, floats in [0, 1] as ``round(clip(x, 0, 1) * 255)``."""
    if array.dtype == np.uint8:
        return array
    return (np.clip(array, 0, 1) * 255).round().astype(np.uint8)


def png_bytes(image) -> bytes:
    """The PNG file of a PIL image or a numpy array picture (uint8, or floats in [0, 1] through ``uint8_array``).

    Raises ``TypeError`` for anything else (a tensor: call the pipeline with ``output_type='pil'`` or ``'np'``).
    """
    if isinstance(image, np.ndarray):
        image = PIL.Image.fromarray(uint8_array(image))
    if not isinstance(image, PIL.Image.Image):
        raise TypeError(
            f"a PNG needs a PIL image or a numpy array (output_type='pil' or 'np'), got {type(image).__name__}."
        )
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def read_picture(path: str | os.PathLike[str], fix: str) -> PIL.Image.Image:
    """The picture file at ``path`` as a PIL RGB image, read in full.

    A file PIL cannot read to the end (truncated, corrupt, not a picture at all) raises a ``ConfigError`` that
    names the file, what PIL found, and ``fix`` (what the caller's user should do: write the run again,
    replace the picture ...), instead of PIL's ``OSError`` / ``UnidentifiedImageError`` from deep inside a run.
    """
    try:
        with PIL.Image.open(path) as image:
            return image.convert("RGB")  # convert() decodes every pixel: a truncated file fails here
    except (OSError, SyntaxError, ValueError) as error:  # PIL raises all three for broken files
        raise ConfigError(f"{str(path)!r} is not a readable picture ({error}). Fix: {fix}") from None
