"""Storyboards: every step's image in a grid with its text, for both pipelines.

    fig = storyboard(images, texts, notes=["from noise", "from 1 · KV 1", ...])
    fig = storyboard_from_output(out)     # a RecipeDiffusionOutput: one frame_note per frame
    fig = canvas_storyboard(out)          # a CookAnythingOutput: one canvas_note per region

The notes are the small grey line under each image: for Recipe Diffusion where the frame
started and what it shared (``frame_note``), for CookAnything its region and its CSCC
fusion (``canvas_note``). Outputs are read by attribute, so a saved or hand-made output
works as well.
"""

from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from .common import draw_image

__all__ = ["canvas_note", "canvas_storyboard", "frame_note", "storyboard", "storyboard_from_output"]

_CAPTION_PT, _NOTE_PT, _LINE = 7.5, 7.0, 1.3  # storyboard font sizes (points) and line height (x font size)


# ---- any images --------------------------------------------------------------------------


def storyboard(images, texts, title: str | None = None, ncols: int | None = None, notes=None, wrap: int = 28) -> Figure:
    """Frames in a grid, each with its (wrapped) step text underneath.

    images: one image per frame; texts: the step text of each frame; notes: optional
    small grey line per frame (e.g. ``"ref 1 · RA 0.9/0.999"``); ncols: frames per row
    (default: all in one row up to 5); wrap: characters per text line.
    """
    images, texts = list(images), list(texts)
    if len(images) != len(texts):
        raise ValueError(f"storyboard got {len(images)} images and {len(texts)} texts: give one text per image.")
    notes = [None] * len(images) if notes is None else list(notes)
    if len(notes) != len(images):
        raise ValueError(f"storyboard got {len(notes)} notes for {len(images)} images.")
    n = len(images)
    ncols = ncols or min(n, 5)
    nrows = -(-n // ncols)
    captions = [textwrap.fill(t, wrap) for t in texts]
    # Layout in inches (no layout engine: they ignore text below an axes).
    size, gap, head = 2.2, 0.2, (0.45 if title else 0.1)
    text_pts = 4 + _CAPTION_PT * _LINE * max(c.count("\n") + 1 for c in captions) + (_NOTE_PT * _LINE + 2 if any(notes) else 0)
    row_h = 0.25 + size + text_pts / 72 + gap
    fig = plt.figure(figsize=(ncols * (size + gap) + gap, head + nrows * row_h))
    width, height = fig.get_size_inches()
    for k in range(n):
        r, c = divmod(k, ncols)
        left, bottom = gap + c * (size + gap), height - head - r * row_h - 0.25 - size
        ax = fig.add_axes((left / width, bottom / height, size / width, size / height))
        draw_image(ax, images[k], title=f"step {k + 1}")
        ax.annotate(captions[k], (0.5, 0), xycoords="axes fraction", xytext=(0, -4), textcoords="offset points",
                    ha="center", va="top", fontsize=_CAPTION_PT)
        if notes[k]:
            below = 4 + _CAPTION_PT * _LINE * (captions[k].count("\n") + 1) + 2
            ax.annotate(notes[k], (0.5, 0), xycoords="axes fraction", xytext=(0, -below), textcoords="offset points",
                        ha="center", va="top", fontsize=_NOTE_PT, color="0.4")
    if title:
        fig.suptitle(title, y=1 - 0.12 / height, va="top")
    return fig


# ---- Recipe Diffusion: one frame per step ------------------------------------------------


def frame_note(info) -> str:
    """One short line for a ``FrameInfo``: where the frame started and what it shared.

    ``"from noise"`` for a frame from pure noise; otherwise the step it started from (1-based),
    ``KV`` with the step whose keys/values it attended to, and ``RA object/base`` when
    region-aware noise was applied or ``uniform base`` when it was not.
    """
    parts = []
    if info.reference is None:
        parts.append("from noise")
    else:
        parts.append(f"from {info.reference + 1}")
    if info.kv_reference is not None:
        parts.append(f"KV {info.kv_reference + 1}")
    if info.region_aware:
        parts.append(f"RA {info.object_noise:g}/{info.base_noise:g}")
    elif info.base_noise is not None:
        why = "" if not info.fallback else " (new container)" if "first appears" in info.fallback else " (no mask)"
        parts.append(f"uniform {info.base_noise:g}{why}")
    return " · ".join(parts)


def storyboard_from_output(out, title: str | None = None, ncols: int | None = None) -> Figure:
    """``storyboard`` of a ``RecipeDiffusionOutput``: step texts and a ``frame_note`` per frame."""
    if title is None:
        s = out.settings
        mode = s.get("variant", "custom")
        if mode == "custom":
            mode = ", ".join(k for k in ("sequential", "kv_sharing", "region_aware") if s.get(k)) or "nothing shared"
        title = f"{out.recipe.title} — {mode}"
    return storyboard(out.images, [f.text for f in out.frames], title=title, ncols=ncols, notes=[frame_note(f) for f in out.frames])


# ---- CookAnything: one region of the canvas per step -------------------------------------


def canvas_note(out, n: int) -> str:
    """One short line for step n of a CookAnything output: its region, its CSCC fusion."""
    parts = [f"region {n + 1}"]
    spans = getattr(out, "spans", None)
    if spans is not None:
        s = spans.spans[n]
        parts.append("CSCC: cut off" if s.fused_length == 0 else f"CSCC t={s.fused_length}" + (" (cut)" if s.truncated else ""))
    return " · ".join(parts)


def canvas_storyboard(out, title: str | None = None, ncols: int | None = None) -> Figure:
    """``storyboard`` of a ``CookAnythingOutput``: every step's region with its text.

    The title names the recipe and the mechanisms that were on (SRC with alpha, Flexible
    RoPE, CSCC with lambda); the grey line under each image its region and CSCC fusion.
    """
    s = out.settings
    if title is None:
        on = []
        if s.get("regional"):
            on.append(f"SRC α={s.get('alpha', 0):g}" + (" (global images)" if s.get("image_attention") == "global" else ""))
        if s.get("flexible_rope"):
            on.append("Flexible RoPE" + (" + step axis" if s.get("rope_step_axis") else ""))
        if s.get("cscc"):
            on.append(f"CSCC λ={s.get('lam', 0):g}")
        title = f"{out.recipe.title} — {', '.join(on) or 'plain Flux on the canvas'}"
    n = len(out.images)
    return storyboard(out.images, out.recipe.texts, title=title, ncols=ncols or min(n, 6),
                      notes=[canvas_note(out, k) for k in range(n)])
