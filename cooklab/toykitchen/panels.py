"""Panel pictures for the Flux-style set: canvases of 2-4 world scenes, laid out as CookAnything lays its regions.

FLUX.1 has seen many pictures made of panels (comic strips, step-by-step photo grids) and training-free
CookAnything relies on it: it draws N steps as N regions of one canvas. The toy Flux model had only seen single
64 x 64 scenes. At a share of its training steps (``TrainConfig.panel_share``) the ``flux`` stage trains on
panel pictures instead:

* **layout** -- as ``CookAnything`` stacks its regions: ``n`` panels one above the other, top to bottom
  (``cookanything.denoising`` joins its decoded regions ``"n h w rgb -> (n h) w rgb"``). Each panel is one
  training scene's latent, so the canvas latent is ``"n c h w -> c (n h) w"`` ([C, 16 n, 16]) and its packed
  tokens are region-major: tokens ``64 k .. 64 k + 63`` are panel ``k``'s, as in a CookAnything canvas.
* **positions** -- as FLUX.1 sees such a picture: one tall image, RoPE ids running over the whole canvas
  (``canvas_image_ids(n, 8, 8, flexible=False)``); the time shift ``mu`` is that of ``64 n`` image tokens.
* **caption** -- one caption listing the panels, as a captioner describes a panel picture to FLUX.1:
  ``"three panels from top to bottom: a blue bowl with diced carrots; fried eggs in a pan; an empty red pot"``
  (``panel_caption``; each panel's part is a fresh ``data.caption``: the world's single-scene caption).
* **scenes** -- generic world scenes, not recipe sequences: the training set's own renders
  (``dataset.render_dataset``), so no panel holds a ``dataset.HELD_OUT`` triple nor an evaluation recipe's scene
  (those are recipes' scenes; ``panel_batch`` checks the triples again).

A panel step trains on ``batch // n`` canvases, as many image tokens as a single-scene step: memory stays that of
a single-scene batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from einops import rearrange

from .dataset import holds_held_out

MIN_PANELS, MAX_PANELS = 2, 4
_COUNT = {2: "two", 3: "three", 4: "four"}

#: the words of a panel caption's head (``vocabulary`` appends those a world lacks)
PANEL_WORDS: tuple[str, ...] = ("two", "three", "four", "panels", "from", "top", "to", "bottom")


def panel_caption(parts: list[str]) -> str:
    """One caption of a panel picture: ``"<n> panels from top to bottom: <part 1>; <part 2>; ..."``."""
    if not MIN_PANELS <= len(parts) <= MAX_PANELS:
        raise ValueError(f"parts: {len(parts)} panel captions; a panel picture has {MIN_PANELS} to {MAX_PANELS}.")
    return f"{_COUNT[len(parts)]} panels from top to bottom: " + "; ".join(parts)


def panel_canvas(panels: torch.Tensor) -> torch.Tensor:
    """Panels stacked top to bottom, as CookAnything's regions: [B, n, C, H, W] -> [B, C, n H, W]."""
    return rearrange(panels, "b n c h w -> b c (n h) w")


@dataclass
class PanelBatch:
    """One panel step's pictures and captions."""

    latents: torch.Tensor  # [B', C, 16 n, 16] canvases, B' = batch // n
    captions: list[str]  # one per canvas ("" when dropped for classifier-free guidance)
    panels: int  # n, the same for every canvas of the batch
    indices: torch.Tensor  # [B', n] training-set index of each panel, top to bottom


def panel_batch(
    data, latents: torch.Tensor, gen: torch.Generator, rng: np.random.Generator, batch: int, dropout: float
):
    """A batch of panel canvases from the training set ``data`` and its latents ([N, C, 16, 16]).

    ``n`` is drawn from 2-4 (``rng``), then ``batch // n`` canvases of ``n`` random pictures (``gen``), each
    captioned by ``panel_caption`` (dropped to "" with probability ``dropout``).
    """
    n = int(rng.integers(MIN_PANELS, MAX_PANELS + 1))
    idx = torch.randint(len(latents), (max(1, batch // n), n), generator=gen)  # [B', n]
    captions = []
    for row in idx.tolist():
        scenes = [data.scenes[i] for i in row]
        if any(holds_held_out(s) for s in scenes):
            raise ValueError("panel_batch: the training set holds a held-out triple; render it with render_dataset.")
        parts = [data.caption(s, rng) for s in scenes]
        captions.append("" if rng.random() < dropout else panel_caption(parts))
    canvas = panel_canvas(latents[idx.to(latents.device)])  # [B', C, 16 n, 16]
    return PanelBatch(canvas, captions, n, idx)
