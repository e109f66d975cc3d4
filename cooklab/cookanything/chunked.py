"""Chunked generation: a recipe of any length as a row of canvases of at most K regions, joined by anchors.

CookAnything draws every step of a recipe on one canvas in one denoising pass, and the paper
claims recipes of arbitrary length. One canvas of N regions is a joint sequence of
``(N + 1) L + N P`` tokens whose attention grows as its square, so a long recipe does not fit one
GPU (``MAX_CANVAS_REGIONS`` = 12 regions at 512^2 pixels). This module cuts the recipe into chunks: each
chunk is one ordinary CookAnything canvas of at most ``K`` regions, and every chunk after the
first begins with ``A`` *anchor* regions -- the last ``A`` steps generated so far (the end of the
previous chunk), drawn again from the final latents of their frames -- so the next steps share a
canvas with the picture they continue:

    chunk 1:  [ s_1 ... s_k1 ]                              k1 <= K new steps
    chunk 2:  [ s_(k1-A+1) .. s_k1 | s_(k1+1) ... s_k2 ]    A anchors + (k2 - k1) <= K - A new steps
    ...

Every canvas is balanced: the regions ``R = N + (C - 1) A`` of the ``C = 1 + ceil((N - K) / (K - A))``
chunks are spread as evenly as ``divmod(R, C)`` allows, rather than K, K, ..., and a remainder
(a 13-step recipe at K = 12 is 7 + (1 + 6) regions, not 12 + (1 + 1)). With ``K >= N`` there is
one chunk, and the call is the one-canvas call, bit for bit. K defaults to ``MAX_CANVAS_REGIONS`` = 12, a
constant set by memory: 12 regions of 512^2 pixels with 512 T5 tokens per prompt are a joint
sequence of 13 * 512 + 12 * 1024 = 18,944 tokens, what the pipeline has always allowed on one GPU;
smaller regions fit more, so ``chunk_size`` may be set above it.

What every chunk reads of the text (``chunk_text``, recorded in ``settings["chunk_text"]``). Region
n's noise is drawn from ``seed + n`` with n the step's place in the recipe, whichever chunk it lands
in; the text stream of chunk k comes from one of two sources:

* ``chunk_text="window"`` (the default): chunk k is a canvas of its own regions (anchors and new
  steps). Its base (whole-description) prompt is the description of those regions,
  ``whole_description(texts[r_first .. r_last], title)``, and CSCC reads the encoding of a *window*
  of the recipe, the steps ``[w_k, e_k)`` with ``e_k`` = the chunk's last step + 1 and ``w_k`` the
  earliest step whose description ``whole_description(texts[w_k:e_k], title)`` still fits the T5
  limit (``max_sequence_length`` tokens, ``</s>`` included): the chunk's steps and as many of the
  steps before them as fit, never starting after the chunk's first region (``cscc_window``). For
  every region n of the chunk,

      C^(n)[0 : t^(n)] += lam * C_W[b^(n) : b^(n) + t^(n)]                           (12, windowed)

  with ``C_W`` the T5 encoding of the window's description and ``b^(n)`` the place of step n's
  first token in *that* encoding (relative to the window, not to the whole recipe). A chunk whose
  own regions fit the limit therefore keeps every step's tokens: no step is cut
  (``settings["truncated_steps"]`` empty; each chunk's record names its window, ``cscc_window``).
  One chunk (K >= N) is the one-canvas call: its window is the whole recipe.
* ``chunk_text="whole"`` (the behaviour before the switch): the text stream is encoded once for
  the WHOLE recipe -- the base prompt is the whole description and CSCC reads
  ``C_recipe[b_n : b_n + t_n]`` with ``b_n`` the step's place in the whole recipe's encoding -- and
  a chunk reads the rows of its steps from it. Cut at ``max_sequence_length`` (512 T5 tokens for
  FLUX.1), the whole description of a long recipe -- the recipes chunking exists for -- describes
  only its first steps to every chunk's base branch, and the later steps get no CSCC
  (``truncated_steps``).

An anchor region's latents follow the flow-matching path of the previous chunk's final latent
``z_0`` of that step, from its own starting noise ``eps`` (the draw of ``seed + n``):

    x_anchor(sigma) = (1 - sigma) z_0 + sigma eps                                   (A1)

(``FlowMatchEulerDiscreteScheduler.scale_noise``, FluxInpaintPipeline's known region). The input
of denoising step i is set to (A1) at ``sigma_i`` for every step up to and including the first
whose ``sigma_i <= strength`` (``last_pinned_step``); after it the region denoises freely:

* ``anchor="fixed"`` (strength 0, the default): pinned at every step and at the end, so the
  anchor is an in-context region that holds exactly the previous chunk's final latent; the new
  regions are denoised next to a picture that gradually appears, the one the reader sees.
* ``anchor="renoise"`` (strength s in (0, 1]): image-to-image -- the anchor is re-noised to
  ``sigma ~= s`` and then denoised again with its step's prompt on the new canvas, free to
  adapt to its neighbours; its re-drawn picture is thrown away (each frame is output once,
  from the chunk where its step is new).
* ``anchor="none"``: no anchor region; chunks are independent canvases sharing only the text.

The anchor acts on the new regions as any region of a canvas does: through the whole-description
base branch (weight alpha), through every image token under ``image_attention="global"`` or SRC
off, and through ``cross_region_kv`` when a new step's reference (by default the previous step) is
an anchor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

from ..errors import ConfigError
from .cscc import whole_description

__all__ = [
    "ANCHOR_MODES",
    "CHUNK_TEXT_MODES",
    "AnchorPin",
    "Chunk",
    "Chunking",
    "anchor_latents",
    "cscc_window",
    "last_pinned_step",
    "plan_chunks",
]

ANCHOR_MODES = ("fixed", "renoise", "none")
DEFAULT_ANCHOR = "fixed"
DEFAULT_RENOISE_STRENGTH = 0.5  # sigma the re-noised anchor restarts from (img2img strength)
CHUNK_TEXT_MODES = ("window", "whole")  # a chunk's base prompt and CSCC: its own steps and window, or the recipe's
DEFAULT_CHUNK_TEXT = "window"


@dataclass(frozen=True)
class Chunking:
    """How a call cuts its recipe: canvases of at most ``size`` regions, ``anchors`` of them carried over.

    Build it with ``Chunking.resolve`` (checks every value and fills the defaults).
    """

    size: int  # K: regions per canvas at most
    anchor: str  # one of ANCHOR_MODES
    anchors: int  # A: regions of the previous chunk at the start of the next (0 with anchor="none")
    strength: float  # sigma from which a re-noised anchor denoises freely (0 = fixed)
    text: str = DEFAULT_CHUNK_TEXT  # one of CHUNK_TEXT_MODES: what a chunk's base prompt and CSCC read

    @classmethod
    def resolve(
        cls,
        chunk_size: int | None,
        anchor: str,
        anchor_regions: int,
        anchor_strength: float | None,
        default_size: int,
        chunk_text: str = DEFAULT_CHUNK_TEXT,
    ) -> Chunking:
        """The chunking of one call, or ``ConfigError`` naming the fix.

        chunk_size: K, None for ``default_size`` (the pipeline's ``MAX_CANVAS_REGIONS``); anchor_regions: A,
        1 <= A < K (ignored, and recorded as 0, with ``anchor="none"``); anchor_strength: only for
        ``"renoise"`` (default ``DEFAULT_RENOISE_STRENGTH``); chunk_text: one of ``CHUNK_TEXT_MODES``.
        """
        if chunk_text not in CHUNK_TEXT_MODES:
            raise ConfigError(
                f"chunk_text={chunk_text!r}: choose 'window' (each chunk's own base prompt and CSCC window, the "
                "default) or 'whole' (every chunk reads the whole recipe's encoding, cut at max_sequence_length)."
            )
        return replace(
            cls._anchoring(chunk_size, anchor, anchor_regions, anchor_strength, default_size), text=chunk_text
        )

    @classmethod
    def _anchoring(
        cls, chunk_size: int | None, anchor: str, anchor_regions: int, anchor_strength: float | None, default_size: int
    ) -> Chunking:
        """``resolve`` without ``chunk_text``: the canvas size and the anchors."""
        size = default_size if chunk_size is None else chunk_size
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ConfigError(
                f"chunk_size={chunk_size!r}: give the most regions one canvas may hold, an integer >= 1 "
                f"(default: {default_size})."
            )
        if anchor not in ANCHOR_MODES:
            raise ConfigError(f"anchor={anchor!r}: choose one of {list(ANCHOR_MODES)} (default {DEFAULT_ANCHOR!r}).")
        if anchor == "none":
            if anchor_strength is not None:
                raise ConfigError(
                    "anchor_strength is the re-noising strength of anchor='renoise'; drop it with anchor='none'."
                )
            return cls(size, anchor, 0, 0.0)
        if isinstance(anchor_regions, bool) or not isinstance(anchor_regions, int) or anchor_regions < 1:
            raise ConfigError(
                f"anchor_regions={anchor_regions!r}: give 1 or more regions to carry over, or anchor='none'."
            )
        if anchor_regions >= size:
            fewer = f"anchor_regions <= {size - 1}" if size > 1 else "anchor='none'"
            raise ConfigError(
                f"anchor_regions={anchor_regions} with chunk_size={size}: the anchors would fill the canvas and "
                f"leave no region for a new step; use a chunk_size above {anchor_regions}, or {fewer}."
            )
        if anchor == "fixed":
            if anchor_strength not in (None, 0, 0.0):
                raise ConfigError(
                    f"anchor_strength needs anchor='renoise': a fixed anchor is never re-noised (anchor_strength="
                    f"{anchor_strength} with anchor='fixed'); use anchor='renoise' to give it a strength."
                )
            return cls(size, anchor, anchor_regions, 0.0)
        strength = DEFAULT_RENOISE_STRENGTH if anchor_strength is None else float(anchor_strength)
        if not 0.0 < strength <= 1.0:
            raise ConfigError(
                f"anchor_strength={strength:g}: give a noise level in (0, 1] for anchor='renoise' to restart the "
                "anchor from (1: from its pure starting noise); 0 is anchor='fixed'."
            )
        return cls(size, anchor, anchor_regions, strength)


@dataclass(frozen=True)
class Chunk:
    """One canvas of a chunked call: its anchor steps, then its new steps (0-based steps of the recipe)."""

    index: int  # 0-based, in the order they are generated
    anchors: tuple[int, ...]  # steps of the previous chunk drawn again first (empty for the first chunk)
    steps: tuple[int, ...]  # the steps this chunk illustrates (each step is new in exactly one chunk)

    @property
    def regions(self) -> tuple[int, ...]:
        """The recipe steps of the canvas's regions, top to bottom: anchors, then new steps (consecutive)."""
        return self.anchors + self.steps


def plan_chunks(n_steps: int, chunking: Chunking) -> list[Chunk]:
    """The chunks of a recipe of ``n_steps`` steps: as few canvases as fit, each of at most K regions, balanced.

    C = 1 when N <= K, else ``1 + ceil((N - K) / (K - A))``; the R = N + (C - 1) A regions are spread
    by ``divmod(R, C)`` (the first canvases take one more), so every canvas holds at least A + 1
    regions and each later chunk starts with the A steps that end the one before it.
    """
    if n_steps < 1:
        raise ConfigError(f"a recipe of {n_steps} steps: give at least one step.")
    k, a = chunking.size, chunking.anchors
    n_chunks = 1 if n_steps <= k else 1 + math.ceil((n_steps - k) / (k - a))
    base, extra = divmod(n_steps + (n_chunks - 1) * a, n_chunks)
    chunks, start = [], 0
    for c in range(n_chunks):
        regions = base + (c < extra)
        anchors = tuple(range(start - a, start)) if c else ()
        new = regions - len(anchors)
        chunks.append(Chunk(c, anchors, tuple(range(start, start + new))))
        start += new
    return chunks


def cscc_window(tokenizer, texts: list[str], title: str | None, regions: tuple[int, ...], max_length: int):
    """The steps ``(w, e)`` whose description CSCC encodes for a chunk of ``regions`` (``chunk_text="window"``).

    ``e`` is the chunk's last region + 1; ``w`` the earliest step ``<= regions[0]`` such that
    ``whole_description(texts[w:e], title)`` fits ``max_length`` T5 tokens (its ``</s>`` included),
    found by adding the steps before the chunk one at a time while they fit. When the chunk's own
    regions do not fit, ``w = regions[0]`` and their last tokens are cut (``StepSpan.truncated``).
    """
    end, start = regions[-1] + 1, regions[0]

    def fits(first: int) -> bool:
        text, _ = whole_description(texts[first:end], title)
        return len(tokenizer(text, truncation=False, verbose=False).input_ids) <= max_length

    while start > 0 and fits(start - 1):
        start -= 1
    return start, end


def last_pinned_step(sigmas: torch.Tensor, strength: float) -> int:
    """The last index i of ``sigmas`` [S + 1] (the schedule and its final 0) whose input is set to (A1).

    That is the first i with ``sigma_i <= strength``: strength 0 pins every step and the final
    latents (index S), strength s restarts the anchor, as image-to-image does, from ``sigma_i ~= s``.
    """
    below = (sigmas <= strength).nonzero()
    return int(below[0]) if below.numel() else sigmas.numel() - 1


def anchor_latents(z0: torch.Tensor, noise: torch.Tensor, sigma: float) -> torch.Tensor:
    """(A1): ``(1 - sigma) z0 + sigma noise``, the flow-matching path from ``noise`` (sigma 1) to ``z0`` (sigma 0).

    z0, noise: [1, A P, C 4] packed anchor tokens (the previous chunk's final latents, and the
    step's own starting noise). Exactly ``z0`` at sigma 0 and ``noise`` at sigma 1 (a product by 0 or 1 is exact).
    """
    return (1 - sigma) * z0 + sigma * noise  # [1, A P, C 4]


@dataclass
class AnchorPin:
    """The anchor regions of one chunk's canvas: the first ``tokens`` packed tokens, pinned to (A1) up to ``last``."""

    z0: torch.Tensor  # [1, A P, C 4] the previous chunk's final latents of the anchor steps
    noise: torch.Tensor  # [1, A P, C 4] the anchor steps' starting noise (this canvas's first A regions)
    sigmas: torch.Tensor  # [S + 1] the scheduler's sigmas of this canvas, ending in 0
    last: int  # last_pinned_step(sigmas, strength)

    @property
    def tokens(self) -> int:
        return self.z0.shape[1]

    def apply(self, latents: torch.Tensor, i: int) -> torch.Tensor:
        """``latents`` [1, N P, C 4] with the anchor tokens set to
        (A1) at ``sigma_i`` if step i is pinned, else as given.
        """
        if i > self.last:
            return latents
        pinned = anchor_latents(self.z0, self.noise, float(self.sigmas[i])).to(latents.dtype)
        return torch.cat([pinned, latents[:, self.tokens :]], dim=1)
