"""Where and in which precision models run: the best device here and the default dtype of each family."""

from __future__ import annotations

import torch

from ..errors import ConfigError

__all__ = ["default_device", "default_dtype"]


def default_device() -> torch.device:
    """The best device here: CUDA, else Apple MPS, else CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def default_dtype(device, family: str = "sd") -> torch.dtype:
    """float32 on the CPU; on an accelerator float16 for SD and bfloat16 for Flux.

    Flux was trained in bfloat16 and overflows in float16; SD 1.x/2.x run fine in float16.
    """
    if family not in ("sd", "flux"):
        raise ConfigError(f"default_dtype: family must be 'sd' or 'flux', got {family!r}")
    if torch.device(device).type == "cpu":
        return torch.float32
    return torch.float16 if family == "sd" else torch.bfloat16
