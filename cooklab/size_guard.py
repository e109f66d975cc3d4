"""Before generating: the memory and time a requested size needs on this device, and a refusal past what it has.

At large sizes a diffusion denoiser's cost is dominated by self-attention over its image tokens
(Stable Diffusion: the ``H/8 x W/8`` latent pixels at the U-Net's finest attention level, a quarter
of them one level down ...; Flux: every region's ``H/16 x W/16`` packed tokens plus the text tokens
of the canvas, in every block). For a layer ``a`` with ``h_a`` heads of total width ``d_a`` over
``N_a`` tokens, a batch of ``B`` (2 with Stable Diffusion's classifier-free guidance) in a dtype of
``s`` bytes::

    scores_a = B * h_a * N_a^2 * s          the attention matrix, when it is materialised (CPU, MPS)
    stream_a = B * N_a * d_a * s * 8        queries, keys, values, output and a 4x MLP (CUDA's fused
                                            attention kernels keep no N x N matrix)
    memory   = max_a scores_a (or stream_a on CUDA)   layers run one after another
    flops    = passes * steps * B * sum_a (4 N_a^2 d_a + 24 N_a d_a^2)
    time     = flops / (5e10 FLOP/s on a CPU, 1e14 FLOP/s on a GPU)   (rough)

The rule (``guard_size``): a call whose estimated memory exceeds the memory free on its device
(CUDA: ``torch.cuda.mem_get_info``; otherwise the RAM available) is refused with the estimate and
the override (``allow_large=True``, ``cooklab generate --allow-large``); the time is only reported.
The weights already loaded are not counted (they are resident). At the usual sizes nothing is
refused: the tests' and the demo's 32-128 px toy frames take kilobytes to megabytes; SD 2.1 at
768 x 768 on a GPU about 0.1 GB; FLUX.1 at 1024 x 1024 per region with 12 regions (55,808 tokens)
about 2.7 GB of a GPU's 80.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass

import torch

from .errors import ConfigError

__all__ = ["SizeEstimate", "estimate", "flux_estimate", "free_memory", "guard_size", "unet_estimate"]

FLOPS_PER_SECOND = {"cuda": 1e14, "cpu": 5e10}  # rough sustained throughput; other devices count as a CPU


@dataclass(frozen=True)
class SizeEstimate:
    """What one call needs: ``memory`` (bytes, the largest attention layer's working set) and ``seconds``."""

    memory: int
    seconds: float
    tokens: int  # the most tokens one attention layer sees
    what: str  # the size in words, e.g. "3 frames of 512x512 (4096 latent tokens)"

    def describe(self) -> str:
        return (
            f"{self.what}: about {self.memory / 2**30:.1f} GiB for attention and {_duration(self.seconds)} of "
            "attention compute (rough)"
        )


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 3600 else f"{seconds / 3600:.1f} h"


def estimate(layers, device: torch.device, dtype_bytes: int, batch: int, steps: int, what: str) -> SizeEstimate:
    """The estimate of the module docstring for ``layers``: ``(heads, width d_a, tokens N_a)`` per attention layer.

    steps: every denoiser pass of the call (denoising steps x frames x passes per step).
    """
    fused = torch.device(device).type == "cuda"
    memory = max(
        batch * n * d * dtype_bytes * 8 if fused else batch * h * n * n * dtype_bytes for h, d, n in layers
    )  # bytes
    flops = steps * batch * sum(4 * n * n * d + 24 * n * d * d for _, d, n in layers)
    rate = FLOPS_PER_SECOND["cuda" if fused else "cpu"]
    return SizeEstimate(int(memory), flops / rate, max(n for _, _, n in layers), what)


def _attention_modules(denoiser):
    """(name, module) of every attention module with a processor (the layers ``cooklab.locate`` lists)."""
    names = {name.removesuffix(".processor") for name in denoiser.attn_processors}
    return [(name, module) for name, module in denoiser.named_modules() if name in names]


def _width(module) -> int:
    return int(getattr(module, "inner_dim", None) or module.heads * module.head_dim)


def unet_estimate(pipe, device, height: int, width: int, steps: int, frames: int, cfg: bool) -> SizeEstimate:
    """A Stable Diffusion call on ``device`` of ``frames`` frames of ``height x width`` px: the U-Net's
    self-attention layers.

    A layer in ``down_blocks.i`` works at level ``i`` (``up_blocks.i`` at ``L - 1 - i``, the mid block at
    ``L - 1``), over ``ceil(h / 2^level) * ceil(w / 2^level)`` tokens of the ``h x w`` latent.
    """
    unet = pipe.unet
    levels = len(unet.config.block_out_channels)
    h, w = height // pipe.vae_scale_factor, width // pipe.vae_scale_factor
    layers = []
    for name, module in _attention_modules(unet):
        if not name.endswith("attn1"):  # cross-attention: N x 77 scores, small
            continue
        found = re.match(r"(down|up)_blocks\.(\d+)", name)
        level = levels - 1 if found is None else int(found[2]) if found[1] == "down" else levels - 1 - int(found[2])
        tokens = math.ceil(h / 2**level) * math.ceil(w / 2**level)
        layers.append((module.heads, _width(module), tokens))
    dtype_bytes = unet.dtype.itemsize
    what = f"{frames} frame(s) of {height}x{width} px ({h * w} latent tokens)"
    return estimate(layers, device, dtype_bytes, 2 if cfg else 1, steps * frames, what)


def flux_estimate(pipe, device, regions: int, rows: int, cols: int, text_tokens: int, steps: int) -> SizeEstimate:
    """A Flux canvas on ``device`` of ``regions`` regions of ``rows x cols`` tokens and ``text_tokens`` text tokens.

    Every block attends over all of them; ``steps`` counts every pass (steps x canvases, x 2 with true CFG).
    """
    transformer = pipe.transformer
    tokens = regions * rows * cols + text_tokens
    layers = [(module.heads, _width(module), tokens) for _, module in _attention_modules(transformer)]
    what = f"a canvas of {regions} region(s) of {rows * 16}x{cols * 16} px ({tokens} tokens with the text)"
    return estimate(layers, device, transformer.dtype.itemsize, 1, steps, what)


def free_memory(device: torch.device) -> int | None:
    """Bytes free on ``device`` (CUDA: ``mem_get_info``; else the RAM available), None when it cannot be read."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not a POSIX system
        return None


def guard_size(size: SizeEstimate, device: torch.device, allow_large: bool, free: int | None = None) -> None:
    """Refuse a call whose estimated memory exceeds what ``device`` has free (``free``: bytes, None: read it).

    ``allow_large=True`` runs it anyway. The message states the estimate and the override.
    """
    if allow_large:
        return
    free = free_memory(device) if free is None else free
    if free is not None and size.memory > free:
        raise ConfigError(
            f"{size.describe()}, and {torch.device(device).type} has {free / 2**30:.1f} GiB free: "
            "use a smaller height and width (or fewer regions per canvas), or pass allow_large=True "
            "(cooklab generate --allow-large) to run it anyway."
        )
