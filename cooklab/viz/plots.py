"""Figures of what cooklab's mechanisms do, drawn from tensors and traces (never from a model).

Every function takes images, tensors or a ``cooklab.Trace`` (or a pipeline's output) and
returns a matplotlib ``Figure``; functions with an ``ax=`` argument draw into that axes
instead and return its figure. Nothing here runs a model, so a trace recorded on a GPU
can be plotted anywhere, and the notebooks' toy tensors use the same functions.

    fig = storyboard_from_output(out)                    # the frames with their step text
    fig = reference_share_figure(tr, frame=1)            # where frame 1 looked at its reference
    fig = self_attention_figure(tr, 1, layer, step, query=(3, 4))
    fig = cross_attention_figure(tr, 1, tokens=["jar", "milk"])
    fig = noise_map_figure(tr.noise[1])                  # Eq. 5-7 as maps on the latent grid

Conventions: images are PIL images, ``[H, W, 3]`` arrays or ``[3, H, W]`` tensors in
``[0, 1]`` (or uint8); maps are ``[h, w]`` tensors or arrays, drawn stretched over the
image they belong to (each cell covers ``H/h x W/w`` pixels). Close figures you no longer
need (``plt.close(fig)``): pyplot keeps every figure it made alive.
"""

from __future__ import annotations

import bisect
import textwrap

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from ..recipe_diffusion.pipeline import NoiseRecord
from ..recipe_diffusion.region_noise import RegionNoise

__all__ = [
    "attention_overlay",
    "base_contribution_figure",
    "canvas_note",
    "canvas_storyboard",
    "cross_attention_figure",
    "cscc_delta_figure",
    "cscc_lambda_figure",
    "cscc_spans_figure",
    "flux_layer_name",
    "frame_note",
    "group_mask_figure",
    "layout_figure",
    "noise_map_figure",
    "reference_share_curve_figure",
    "reference_share_figure",
    "rope_ids_figure",
    "rotary_figure",
    "self_attention_figure",
    "short_layer_name",
    "storyboard",
    "storyboard_from_output",
    "text_image_figure",
    "token_mask_figure",
    "toy_attention_figure",
]

_CAPTION_PT, _NOTE_PT, _LINE = 7.5, 7.0, 1.3  # storyboard font sizes (points) and line height (x font size)

SPECIAL_TOKENS = ("<|startoftext|>", "<|endoftext|>")
"""CLIP's begin/end tokens: present in every prompt, left out of default token lists."""


# ---- small converters --------------------------------------------------------------------


def _array(x) -> np.ndarray:
    """A tensor or array-like as a float numpy array on the CPU."""
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", torch.float32).numpy()
    return np.asarray(x, dtype=np.float32)


def _image_array(image) -> np.ndarray | None:
    """An image as an ``[H, W, 3]`` float array in [0, 1] (None stays None)."""
    if image is None:
        return None
    if isinstance(image, torch.Tensor) and image.ndim == 3 and image.shape[0] in (1, 3):
        image = image.permute(1, 2, 0)  # [C, H, W] -> [H, W, C]
    arr = np.asarray(image)
    arr = arr.astype(np.float32) / 255.0 if arr.dtype == np.uint8 else _array(arr)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    return np.clip(arr[..., :3], 0.0, 1.0)


def _blank(ax, text: str) -> None:
    """An empty panel that says why it is empty."""
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, fontsize=9, color="0.35", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def _show_image(ax, image, title: str | None = None) -> None:
    """Draw an image (or say there is none) with pixel extent and no ticks."""
    arr = _image_array(image)
    if arr is None:
        _blank(ax, "no image")
    else:
        ax.imshow(arr, extent=(0, arr.shape[1], arr.shape[0], 0))
        ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)


def _overlay(ax, image, heatmap, alpha: float, cmap: str, vmin, vmax, interpolation: str):
    """Image with a ``[h, w]`` heatmap stretched over it; returns the heatmap's AxesImage."""
    heat = _array(heatmap)
    if heat.ndim != 2:
        raise ValueError(f"heatmap must be 2-D [h, w], got shape {heat.shape}")
    arr = _image_array(image)
    if arr is None:
        extent = (0, heat.shape[1], heat.shape[0], 0)
        alpha = 1.0
    else:
        extent = (0, arr.shape[1], arr.shape[0], 0)
        ax.imshow(arr, extent=extent)
    mappable = ax.imshow(heat, extent=extent, cmap=cmap, alpha=alpha, vmin=vmin, vmax=vmax, interpolation=interpolation)
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    ax.set_axis_off()
    return mappable


def short_layer_name(name: str) -> str:
    """A processor key without its constant parts: ``up_blocks.1.attentions.0.attn1``."""
    return name.removesuffix(".processor").replace(".transformer_blocks.0.", ".")


def _token_label(token: str) -> str:
    return token.replace("</w>", "")


# ---- storyboards -------------------------------------------------------------------------


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
        _show_image(ax, images[k], title=f"step {k + 1}")
        ax.annotate(captions[k], (0.5, 0), xycoords="axes fraction", xytext=(0, -4), textcoords="offset points",
                    ha="center", va="top", fontsize=_CAPTION_PT)
        if notes[k]:
            below = 4 + _CAPTION_PT * _LINE * (captions[k].count("\n") + 1) + 2
            ax.annotate(notes[k], (0.5, 0), xycoords="axes fraction", xytext=(0, -below), textcoords="offset points",
                        ha="center", va="top", fontsize=_NOTE_PT, color="0.4")
    if title:
        fig.suptitle(title, y=1 - 0.12 / height, va="top")
    return fig


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


# ---- attention ---------------------------------------------------------------------------


def attention_overlay(image, heatmap, ax=None, alpha: float = 0.5, title: str | None = None, cmap: str = "inferno",
                      vmin: float | None = None, vmax: float | None = None, colorbar: bool = False,
                      interpolation: str = "nearest") -> Figure:
    """A ``[h, w]`` heatmap stretched over ``image`` (each cell covers its patch of pixels).

    image may be None (the heatmap alone). vmin/vmax fix the colour scale (default: the
    map's range); ``interpolation="bilinear"`` smooths the cells.
    """
    if ax is None:
        fig, ax = plt.subplots(figsize=(3.2, 3), layout="constrained")
    mappable = _overlay(ax, image, heatmap, alpha, cmap, vmin, vmax, interpolation)
    if title:
        ax.set_title(title, fontsize=9)
    if colorbar:
        ax.figure.colorbar(mappable, ax=ax, fraction=0.046, pad=0.04)
    return ax.figure


def _frame_image(trace, frame: int | None):
    return None if frame is None or frame not in trace.frames else trace.frames[frame].image


def _layers_label(layers) -> str:
    """Which layers a map averages, for titles."""
    if layers is None:
        return "all layers"
    return short_layer_name(layers) if isinstance(layers, str) else ", ".join(short_layer_name(x) for x in layers)


def _steps_label(steps) -> str:
    """Which denoising steps a map averages, for titles."""
    if steps is None:
        return "all steps"
    st = sorted(steps)
    return f"step {st[0]}" if len(st) == 1 else f"steps {st[0]}..{st[-1]}"


def reference_share_figure(trace, frame: int, layers=None, steps=None, vmin: float | None = 0.0, vmax: float | None = 1.0,
                           alpha: float = 0.6) -> Figure:
    """Where frame ``frame`` looked at its reference: reference image | frame | share over the frame.

    The share of a query is the attention mass it puts on the reference frame's keys
    (Eq. 3 summed over the reference half of ``K+``): 0 ignores the reference, 0.5 weighs
    it as much as the frame itself. layers/steps select what is averaged (None: all
    captured); vmin/vmax fix the colour scale (None: the map's range).
    """
    share = trace.reference_share_map(frame, layers=layers, steps=None if steps is None else set(steps))
    ref = trace.frames[frame].kv_reference  # the frame whose keys were attended to
    fig, axes = plt.subplots(1, 3, figsize=(9.6, 3.3), layout="constrained")
    _show_image(axes[0], _frame_image(trace, ref), title="reference (no reference)" if ref is None else f"reference: step {ref + 1}")
    _show_image(axes[1], _frame_image(trace, frame), title=f"frame: step {frame + 1}")
    mappable = _overlay(axes[2], _frame_image(trace, frame), share, alpha, "viridis", vmin, vmax, "nearest")
    s = _array(share)
    axes[2].set_title(f"reference share: mean {s.mean():.3f}\n(min {s.min():.3f}, max {s.max():.3f})", fontsize=9)
    fig.colorbar(mappable, ax=axes[2], fraction=0.046, pad=0.04)
    fig.suptitle(f"Attention on the reference frame's keys ({_layers_label(layers)}, {_steps_label(steps)})", fontsize=10)
    return fig


def reference_share_curve_figure(trace, frames=None, layers=None, ax=None) -> Figure:
    """Mean reference share against denoising step, one line per frame.

    frames: which frames (default: every frame with captured shares). The dashed line at
    0.5 is "the reference weighs as much as the frame's own tokens".
    """
    captured = sorted({k[0] for k in trace.reference_share})
    frames = captured if frames is None else list(frames)
    if ax is None:
        fig, ax = plt.subplots(figsize=(5.5, 3.3), layout="constrained")
    for f in frames:
        curve = trace.reference_share_curve(f, layers=layers)
        if curve:
            ref = trace.frames[f].kv_reference
            label = f"step {f + 1}" + ("" if ref is None else f" (ref {ref + 1})")
            ax.plot(list(curve), list(curve.values()), marker=".", label=label)
    ax.axhline(0.5, ls="--", lw=0.8, color="0.5")
    ax.text(0.01, 0.49, "0.5: reference as important as own frame", va="top", fontsize=7, color="0.4",
            transform=ax.get_yaxis_transform())
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("denoising step (position in the schedule)")
    ax.set_ylabel("attention share on reference")
    ax.set_ylim(0, 1)
    ax.set_title(f"Reference share per step ({_layers_label(layers)})", fontsize=10)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    return ax.figure


def self_attention_figure(trace, frame: int, layer: str, step: int, query: tuple[int, int], alpha: float = 0.6) -> Figure:
    """Where one query cell of ``frame`` looks: the cell, its attention on the reference, on itself.

    Panels: the frame with the query cell outlined; attention over the reference frame's
    keys on the reference image (only when the layer shared K/V); attention over the
    frame's own keys on the frame image. Both attention panels share one colour scale so
    their masses compare; the titles give each part's total (they sum to 1).
    """
    grid = tuple(trace.self_attention[(frame, layer, step)].shape[:2])  # the pooled query grid (Gh, Gw)
    if not (0 <= query[0] < grid[0] and 0 <= query[1] < grid[1]):
        raise ValueError(f"query {tuple(query)} is outside the {grid[0]}x{grid[1]} query grid of {short_layer_name(layer)}.")
    maps = trace.self_attention_map(frame, layer, step, query)  # [S, Gh, Gw]; S = 2: (reference, own)
    ref = trace.frames[frame].kv_reference  # the frame whose keys were attended to
    image = _frame_image(trace, frame)
    vmax = float(maps.max())
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.4), layout="constrained")

    _show_image(axes[0], image, title=f"query cell {tuple(query)} of step {frame + 1}")
    arr = _image_array(image)
    h, w = arr.shape[:2] if arr is not None else grid
    ch, cw = h / grid[0], w / grid[1]
    axes[0].add_patch(Rectangle((query[1] * cw, query[0] * ch), cw, ch, fill=False, ec="red", lw=2))
    if arr is None:
        axes[0].set_xlim(0, w)
        axes[0].set_ylim(h, 0)

    if maps.shape[0] == 2:
        _overlay(axes[1], _frame_image(trace, ref), maps[0], alpha, "inferno", 0.0, vmax, "nearest")
        who = "reference" if ref is None else f"reference (step {ref + 1})"
        axes[1].set_title(f"{who} keys: {float(maps[0].sum()):.1%} of attention", fontsize=9)
    else:
        _blank(axes[1], "this layer did not share K/V:\nno reference keys")
    mappable = _overlay(axes[2], image, maps[-1], alpha, "inferno", 0.0, vmax, "nearest")
    axes[2].set_title(f"own keys: {float(maps[-1].sum()):.1%} of attention", fontsize=9)
    fig.colorbar(mappable, ax=axes[2], fraction=0.046, pad=0.04)
    fig.suptitle(f"Self-attention, {short_layer_name(layer)}, step {step}", fontsize=10)
    return fig


def cross_attention_figure(trace, frame: int, tokens=None, layers=None, steps=None, ncols: int = 6, max_tokens: int = 12,
                           alpha: float = 0.6) -> Figure:
    """One overlay per prompt token: where the image attends to that word.

    tokens: words or indices into ``trace.frames[frame].tokens`` (default: the prompt's
    tokens without BOS/EOS, at most ``max_tokens``). All panels share one colour scale.
    """
    all_tokens = trace.frames[frame].tokens
    if tokens is None:
        idx = [i for i, t in enumerate(all_tokens) if t not in SPECIAL_TOKENS][:max_tokens]
    else:
        idx = [trace.token_index(frame, t) for t in tokens]
    if not idx:
        raise ValueError(f"frame {frame} has no tokens to show.")
    st = None if steps is None else set(steps)
    maps = [trace.cross_attention_map(frame, i, layers=layers, steps=st) for i in idx]
    vmax = max(float(m.max()) for m in maps)
    ncols = min(ncols, len(idx))
    nrows = -(-len(idx) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.1 * ncols + 0.6, 2.2 * nrows + 0.5), squeeze=False, layout="constrained")
    image = _frame_image(trace, frame)
    for ax, i, m in zip(axes.flat, idx, maps, strict=False):
        mappable = _overlay(ax, image, m, alpha, "inferno", 0.0, vmax, "nearest")
        ax.set_title(f"{i}: {_token_label(all_tokens[i])!r}", fontsize=9)
    for ax in list(axes.flat)[len(idx):]:
        ax.set_axis_off()
    fig.colorbar(mappable, ax=axes.ravel().tolist(), fraction=0.02, pad=0.02)
    fig.suptitle(f"Cross-attention of step {frame + 1} to its words ({_layers_label(layers)}, {_steps_label(steps)})", fontsize=10)
    return fig


def toy_attention_figure(weights, labels, query_labels=None, ax=None, title: str | None = None, annotate: bool = True) -> Figure:
    """A small attention matrix ``[Q, K]`` as a heatmap with key labels (columns) and query labels (rows)."""
    w = _array(weights)
    if w.ndim != 2 or w.shape[1] != len(labels):
        raise ValueError(f"weights must be [Q, K] with K = len(labels) = {len(labels)}; got shape {w.shape}.")
    if ax is None:
        fig, ax = plt.subplots(figsize=(0.55 * w.shape[1] + 1.6, 0.45 * w.shape[0] + 1.2), layout="constrained")
    ax.imshow(w, cmap="Blues", vmin=0, vmax=max(float(w.max()), 1e-9))
    ax.set_xticks(range(w.shape[1]), labels, rotation=45, ha="right", fontsize=8)
    rows = query_labels if query_labels is not None else [f"q{i}" for i in range(w.shape[0])]
    ax.set_yticks(range(w.shape[0]), rows, fontsize=8)
    ax.set_xlabel("keys")
    ax.set_ylabel("queries")
    if annotate:
        for (r, c), v in np.ndenumerate(w):
            ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=7, color="white" if v > 0.6 * w.max() else "black")
    if title:
        ax.set_title(title, fontsize=10)
    return ax.figure


# ---- noise -------------------------------------------------------------------------------


def _latent_picture(latent, view: str) -> tuple[np.ndarray, str]:
    """A ``[C, h, w]`` latent as something imshow can draw: 3 channels as RGB, or the channel mean."""
    x = _array(latent)
    if x.ndim == 4:
        x = x[0]
    if view == "rgb" and x.shape[0] >= 3:
        rgb = x[:3]
        lo, hi = rgb.min(axis=(1, 2), keepdims=True), rgb.max(axis=(1, 2), keepdims=True)
        return np.transpose((rgb - lo) / np.maximum(hi - lo, 1e-8), (1, 2, 0)), "channels 0-2 (each min-max scaled)"
    if view not in ("rgb", "mean"):
        raise ValueError(f"latent_view={view!r}: use 'rgb' or 'mean'.")
    return x.mean(0), "mean over channels"


def _in_out(values: np.ndarray, mask: np.ndarray | None) -> str:
    """Mean of a map inside and outside the mask, for titles."""
    if mask is None or not (mask > 0.5).any() or not (mask <= 0.5).any():
        return f"{values.mean():.3f} everywhere" if np.allclose(values, values.flat[0]) else f"mean {values.mean():.3f}"
    return f"{values[mask > 0.5].mean():.3f} in mask / {values[mask <= 0.5].mean():.3f} outside"


def _level_line(name: str, level, timestep) -> str | None:
    if level is None:
        return None
    return f"{name} {level:g} → t={timestep:g}" if timestep is not None else f"{name} {level:g}"


def noise_map_figure(record=None, *, mask=None, sigma_map=None, signal_map=None, noised=None, object_noise=None,
                     base_noise=None, object_timestep=None, base_timestep=None, title: str | None = None,
                     latent_view: str = "rgb") -> Figure:
    """Region-aware noise (Eq. 5-7) on the latent grid: mask | sigma map | signal map | noised latent.

    record: a ``NoiseRecord`` (``trace.noise[i]``) or a ``RegionNoise`` (what
    ``region_aware_noise`` returns); or give the tensors directly: mask ``[h, w]`` (None:
    uniform noise), sigma_map / signal_map ``[h, w]`` (``L = signal * L_ref + sigma *
    eps`` per cell), noised ``[C, h, w]``. Keyword arguments override the record's values;
    panels whose tensor is missing are left out. Levels and timesteps go in the title.
    """
    if isinstance(record, NoiseRecord):
        mask = mask if mask is not None else (record.region.mask if record.region is not None else None)
        sigma_map = sigma_map if sigma_map is not None else record.sigma_map
        signal_map = signal_map if signal_map is not None else record.signal_map
        noised = noised if noised is not None else record.noised
        object_noise = object_noise if object_noise is not None else record.object_noise
        base_noise = base_noise if base_noise is not None else record.base_noise
        object_timestep = object_timestep if object_timestep is not None else record.object_timestep
        base_timestep = base_timestep if base_timestep is not None else record.base_timestep
        title = title or f"Noise of step {record.frame + 1} (from step {record.reference + 1})"
    elif isinstance(record, RegionNoise):
        mask = mask if mask is not None else record.mask
        sigma_map = sigma_map if sigma_map is not None else record.sigma_map
        signal_map = signal_map if signal_map is not None else record.signal_map
        noised = noised if noised is not None else record.combined
    elif record is not None:
        raise TypeError(f"record must be a NoiseRecord, a RegionNoise or None, got {type(record).__name__}.")

    m = None if mask is None else _array(mask)
    panels = [("mask", m)]
    if sigma_map is not None:
        panels.append(("sigma", _array(sigma_map)))
    if signal_map is not None:
        panels.append(("signal", _array(signal_map)))
    if noised is not None:
        panels.append(("noised", noised))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.1 * len(panels), 3.4), squeeze=False, layout="constrained")
    for ax, (kind, value) in zip(axes[0], panels, strict=True):
        if kind == "mask":
            if value is None:
                _blank(ax, "no mask:\nuniform noise")
                ax.set_title("mask on latent grid", fontsize=9)
                continue
            im = ax.imshow(value, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_title(f"mask on latent grid {value.shape[0]}×{value.shape[1]}\n(covers {value.mean():.0%})", fontsize=9)
        elif kind in ("sigma", "signal"):
            im = ax.imshow(value, cmap="magma" if kind == "sigma" else "viridis", interpolation="nearest")
            name = "σ (noise)" if kind == "sigma" else "signal (reference)"
            ax.set_title(f"{name} coefficient\n{_in_out(value, m)}", fontsize=9)
        else:
            picture, how = _latent_picture(value, latent_view)
            im = ax.imshow(picture, cmap=None if picture.ndim == 3 else "coolwarm", interpolation="nearest")
            ax.set_title(f"noised latent\n{how}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        if kind != "noised" or latent_view == "mean":
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    levels = [x for x in (_level_line("object", object_noise, object_timestep), _level_line("base", base_noise, base_timestep)) if x]
    heading = " · ".join(x for x in (title, ", ".join(levels)) if x)
    if heading:
        fig.suptitle(heading, fontsize=10)
    return fig


# ---- CookAnything: one canvas, N regions ------------------------------------------------
#
# Conventions: steps and regions are numbered from 1 in titles and labels and from 0 in
# arguments (``steps=[0, 2]`` is steps 1 and 3), as everywhere in cooklab. "Denoising step"
# is always called ``t`` here, so it cannot be confused with a recipe step.


def _step_colors(n: int) -> np.ndarray:
    """[n, 3] one distinct RGB colour per step (tab10 up to 10 steps, then evenly spaced on turbo)."""
    if n <= 10:
        return np.asarray(plt.get_cmap("tab10").colors[:n], dtype=np.float32).reshape(n, 3)
    return np.asarray(plt.get_cmap("turbo")(np.linspace(0.05, 0.95, n))[:, :3], dtype=np.float32)


def _lighter(rgb, amount: float = 0.55) -> np.ndarray:
    """Blend a colour (or [.., 3] colours) towards white."""
    return np.asarray(rgb, dtype=np.float32) * (1 - amount) + amount


def _layout_of(obj):
    """A RegionLayout from a layout, a pipeline output, a Trace or a CanvasTrace."""
    for holder in (obj, getattr(obj, "canvas", None)):
        if holder is not None and hasattr(holder, "n_regions"):
            return holder
        layout = getattr(holder, "layout", None)
        if layout is not None and hasattr(layout, "n_regions"):
            return layout
    raise ValueError(f"no region layout in a {type(obj).__name__}: pass a RegionLayout, a CookAnything output or a trace "
                     "recorded with capture including 'layout'.")


def _canvas_of(trace):
    """The CanvasTrace of a Trace (or the argument itself when it already is one)."""
    canvas = getattr(trace, "canvas", None)
    if canvas is not None and hasattr(canvas, "texts"):
        return canvas
    if hasattr(trace, "texts") and hasattr(trace, "token_counts"):
        return trace
    raise ValueError("this trace holds no canvas: record a CookAnything call inside `with cooklab.trace(pipe) as tr:`.")


def flux_layer_name(name: str) -> str:
    """A Flux processor key as ``"double 3"`` / ``"single 12"`` (other names as ``short_layer_name``)."""
    parts = name.split(".")
    if len(parts) > 1 and parts[1].isdigit():
        if parts[0] == "transformer_blocks":
            return f"double {parts[1]}"
        if parts[0] == "single_transformer_blocks":
            return f"single {parts[1]}"
    return short_layer_name(name)


def _short(text: str, width: int) -> str:
    return textwrap.shorten(text, width, placeholder="…")


def group_mask_figure(n: int, image_attention: str = "region", ax=None, annotate: bool | None = None) -> Figure:
    """The paper's 2N x 2N Step-wise Regional Attention Mask (SRC), groups labelled.

    Groups 1..N are the step texts ``C_1..C_N``, groups N+1..2N the region images
    ``I_1..I_N``; ``M_ij = 1`` iff ``i = j`` or ``|i - j| = N``: each step's text and its
    region see only each other. Allowed cells are coloured by their step;
    ``image_attention="global"`` adds the image-image block in grey (Regional-Prompting-FLUX's
    choice, not the paper's). annotate: write 1/0 in the cells (default: N <= 6).
    """
    from ..cookanything.regional import group_mask

    n = int(n)
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    m = group_mask(n).numpy()  # [2N, 2N] bool
    extra = np.zeros_like(m)
    if image_attention == "global":
        extra[n:, n:] = ~m[n:, n:]
    elif image_attention != "region":
        raise ValueError(f"image_attention={image_attention!r}: use 'region' or 'global'.")
    colors = _step_colors(n)
    rgb = np.ones((2 * n, 2 * n, 3), np.float32)
    for i, j in zip(*np.nonzero(m)):
        rgb[i, j] = colors[i % n] if i >= n and j >= n else _lighter(colors[i % n], 0.35 if (i < n) == (j < n) else 0.2)
    rgb[extra] = 0.72
    if ax is None:
        side = min(7.0, 1.6 + 0.42 * 2 * n)
        fig, ax = plt.subplots(figsize=(side, side), layout="constrained")
    ax.imshow(rgb, interpolation="nearest")
    labels = [f"C{k + 1}" for k in range(n)] + [f"I{k + 1}" for k in range(n)]
    fs = 8 if n <= 8 else 6
    ax.set_xticks(range(2 * n), labels, fontsize=fs, rotation=90 if n > 8 else 0)
    ax.set_yticks(range(2 * n), labels, fontsize=fs)
    ax.set_xticks(np.arange(-0.5, 2 * n), minor=True)
    ax.set_yticks(np.arange(-0.5, 2 * n), minor=True)
    ax.grid(which="minor", color="0.85", lw=0.5)
    ax.tick_params(which="minor", length=0)
    ax.axhline(n - 0.5, color="k", lw=1.2)
    ax.axvline(n - 0.5, color="k", lw=1.2)
    ax.set_xlabel("keys (group j)")
    ax.set_ylabel("queries (group i)")
    if annotate if annotate is not None else n <= 6:
        allowed = m | extra
        for (i, j), v in np.ndenumerate(allowed):
            ax.text(j, i, "1" if v else "0", ha="center", va="center", fontsize=7, color="white" if m[i, j] and i >= n and j >= n else "0.25")
    rule = "i = j or |i − j| = N" + (", plus image↔image" if image_attention == "global" else "")
    ax.set_title(f"group mask M, N = {n}: 1 iff {rule}", fontsize=9)
    return ax.figure


def _token_groups(layout, downsample_to: int):
    """Bins over the regional-branch tokens and how many tokens of each (group, kind) fall in each bin.

    Returns (edges [B+1], counts [B, N, 2]) with kind 0 = text, 1 = image. Bins are single
    tokens when the sequence is short enough, else ``downsample_to`` equal runs of tokens.
    """
    n, L, P = layout.n_regions, layout.step_text_len, layout.region_tokens
    total = n * (L + P)
    bins = min(total, int(downsample_to))
    edges = np.linspace(0, total, bins + 1).round().astype(np.int64)
    # group boundaries in token order: C_1..C_N then I_1..I_N
    starts = np.concatenate([np.arange(n) * L, n * L + np.arange(n) * P])
    ends = np.concatenate([(np.arange(n) + 1) * L, n * L + (np.arange(n) + 1) * P])
    lo, hi = edges[:-1, None], edges[1:, None]  # [B, 1]
    overlap = np.clip(np.minimum(hi, ends[None]) - np.maximum(lo, starts[None]), 0, None).astype(np.float64)  # [B, 2N]
    counts = np.stack([overlap[:, :n], overlap[:, n:]], axis=-1)  # [B, N, 2]
    return edges, counts


def _mask_fractions(counts_q, counts_k, image_attention: str):
    """Per (query bin, key bin): fraction allowed per group [Bq, Bk, N] and through global image attention [Bq, Bk]."""
    tq, tk = counts_q.sum(-1), counts_k.sum(-1)  # [B, N] tokens of each group in each bin
    size_q, size_k = tq.sum(-1), tk.sum(-1)  # [B]
    norm = np.maximum(size_q[:, None] * size_k[None, :], 1.0)
    same = tq[:, None, :] * tk[None, :, :] / norm[..., None]  # [Bq, Bk, N]: pairs in the same group
    extra = np.zeros(norm.shape)
    if image_attention == "global":  # image pairs of different groups
        iq, ik = counts_q[..., 1], counts_k[..., 1]
        extra = (iq.sum(-1)[:, None] * ik.sum(-1)[None, :] - iq @ ik.T) / norm
    return same, extra


def token_mask_figure(layout, image_attention: str = "region", highlight=None, ax=None, max_pixels: int = 480) -> Figure:
    """The regional branch's token-level mask (``regional_token_mask``) with group boundaries.

    layout: a ``RegionLayout`` (or an output/trace holding one). Tokens run
    ``[C_1..C_N, I_1..I_N]`` (the base text is not in the regional branch); a coloured pixel
    is an allowed (query, key) pair, coloured by its step, white is masked out, grey is
    image↔image across regions (``image_attention="global"`` only). highlight: a step
    index or several (0-based): the others are drawn in light grey. Layouts longer than
    ``max_pixels`` tokens are shown downsampled: each pixel is the exact average over its
    block of tokens (the dense mask is never built). The title gives the allowed fraction,
    i.e. how much of full attention the mask keeps.
    """
    layout = _layout_of(layout)
    if image_attention not in ("region", "global"):
        raise ValueError(f"image_attention={image_attention!r}: use 'region' or 'global'.")
    n, L, P = layout.n_regions, layout.step_text_len, layout.region_tokens
    total = n * (L + P)
    edges, counts = _token_groups(layout, max_pixels)
    same, extra = _mask_fractions(counts, counts, image_attention)  # [B, B, N], [B, B]
    colors = _step_colors(n)
    if highlight is not None:
        keep = {int(h) % n for h in ([highlight] if np.isscalar(highlight) else highlight)}
        colors = np.array([c if k in keep else (0.8, 0.8, 0.8) for k, c in enumerate(colors)], np.float32)
    covered = same.sum(-1) + extra
    rgb = same @ colors + extra[..., None] * 0.55 + (1 - covered)[..., None] * 1.0  # white where masked
    if ax is None:
        fig, ax = plt.subplots(figsize=(5.6, 5.2), layout="constrained")
    ax.imshow(np.clip(rgb, 0, 1), extent=(0, total, total, 0), interpolation="nearest")
    for k in range(1, 2 * n):
        pos = k * L if k <= n else n * L + (k - n) * P
        lw, col = (1.2, "k") if k == n else (0.4, "0.5")
        ax.axhline(pos, color=col, lw=lw)
        ax.axvline(pos, color=col, lw=lw)
    centres = [(k + 0.5) * L for k in range(n)] + [n * L + (k + 0.5) * P for k in range(n)]
    labels = [f"C{k + 1}" for k in range(n)] + [f"I{k + 1}" for k in range(n)]
    fs = 7 if n <= 8 else 5.5
    ax.set_xticks(centres, labels, fontsize=fs, rotation=90)
    ax.set_yticks(centres, labels, fontsize=fs)
    ax.set_xlabel("keys")
    ax.set_ylabel("queries")
    allowed = float(((same.sum(-1) + extra) * np.outer(np.diff(edges), np.diff(edges))).sum()) / total**2
    shown = "" if len(edges) - 1 == total else f"\nshown at {len(edges) - 1}² pixels (≈{total / (len(edges) - 1):.0f} tokens each)"
    ax.set_title(f"regional-branch mask, {total}×{total} tokens ({image_attention}): "
                 f"{allowed:.1%} of pairs allowed{shown}", fontsize=9)
    return ax.figure


def layout_figure(layout, texts=None, token_counts=None, wrap: int = 90) -> Figure:
    """The joint sequence of one CookAnything call as a coloured bar, with token counts.

    ``[C_base | C_1 .. C_N | I_1 .. I_N]`` drawn to scale: the whole-description text (grey),
    each step's text (light) and each region's image tokens (dark, same hue). Underneath,
    one line per step: its text, its token counts and its region grid. layout: a
    ``RegionLayout``, a CookAnything output or a trace (texts and real-token counts are
    then taken from it). token_counts: real (non-padding) T5 tokens per step, EOS included.
    """
    lay = _layout_of(layout)
    canvas = getattr(layout, "canvas", None) if not hasattr(layout, "n_regions") else None
    if texts is None:
        if hasattr(canvas, "texts"):
            texts = canvas.texts
        elif hasattr(layout, "recipe"):
            texts = layout.recipe.texts
    if token_counts is None and hasattr(canvas, "token_counts"):
        token_counts = canvas.token_counts
    n, L, P, lb = lay.n_regions, lay.step_text_len, lay.region_tokens, lay.base_text_len
    texts = list(texts) if texts is not None else [""] * n
    if len(texts) != n:
        raise ValueError(f"layout has {n} regions but {len(texts)} texts were given.")
    colors = _step_colors(n)
    fig = plt.figure(figsize=(10, 1.6 + 0.22 * n))
    bar = fig.add_axes((0.04, 1 - 1.05 / fig.get_figheight(), 0.92, 0.45 / fig.get_figheight()))
    segments = ([("base", 0, lb, (0.6, 0.6, 0.6))] if lb else [])
    segments += [(f"C{k + 1}", lb + k * L, L, _lighter(colors[k])) for k in range(n)]
    segments += [(f"I{k + 1}", lay.text_len + k * P, P, colors[k]) for k in range(n)]
    for name, start, size, col in segments:
        bar.add_patch(Rectangle((start, 0), size, 1, fc=col, ec="white", lw=0.6))
        if size / lay.total > 0.022:
            bar.text(start + size / 2, 0.5, name, ha="center", va="center", fontsize=7)
        if token_counts is not None and name.startswith("C") and size / lay.total > 0.01:
            real = min(token_counts[int(name[1:]) - 1], L)
            bar.add_patch(Rectangle((start, 0), real, 0.12, fc="k", ec="none", alpha=0.5))
    bar.axvline(lay.text_len, color="k", lw=1)
    bar.set_xlim(0, lay.total)
    bar.set_ylim(0, 1)
    bar.set_yticks([])
    bar.tick_params(labelsize=7)
    base = f"C_base {lb} (whole description) + " if lb else "no base branch + "
    bar.set_title(f"joint sequence: {lay.total} tokens = {base}{n} × {L} step text + {n} × {P} image "
                  f"({lay.rows}×{lay.cols} per region)", fontsize=9, loc="left")
    lines = fig.add_axes((0.04, 0.02, 0.92, max(0.01, 1 - 1.55 / fig.get_figheight())))
    lines.set_axis_off()
    for k in range(n):
        y = 1 - (k + 0.5) / n
        real = "" if token_counts is None else f" ({min(token_counts[k], L)} real)"
        lines.add_patch(Rectangle((0, y - 0.3 / n), 0.012, 0.6 / n, fc=colors[k], transform=lines.transAxes))
        lines.text(0.018, y, f"step {k + 1}: C{k + 1} {L} tok{real} · I{k + 1} {P} tok — {_short(texts[k], wrap)}",
                   va="center", fontsize=7.5, transform=lines.transAxes)
    if token_counts is not None:
        lines.text(1, 1.02, "black tick under C_n: its real tokens (the rest is padding)", ha="right", va="bottom", fontsize=7,
                   color="0.4", transform=lines.transAxes)
    return fig


def text_image_figure(trace, steps=None, layers=None, t=None, alpha: float = 0.6, vmax: float | None = None,
                      panel_height: float = 5.0) -> Figure:
    """Per recipe step n: the canvas with the attention mass on step n's text overlaid.

    trace: recorded with capture including ``"text_image_attention"``. steps: which recipe
    steps get a panel (0-based; default all); layers: layer names or groups to average
    (None: all captured); t: denoising step indices to average (None: all). Region
    boundaries are drawn and step n's own region is outlined; each title gives the share of
    step n's mass that lands inside its own region (100 % with SRC, about 1/N if the text
    leaks everywhere). All panels share one colour scale (or ``vmax``).
    """
    if not getattr(trace, "text_image", None):
        raise ValueError("the trace holds no text->image maps: record with capture including 'text_image_attention'.")
    canvas = _canvas_of(trace)
    n = len(canvas.texts)
    steps = list(range(n)) if steps is None else [int(s) for s in ([steps] if np.isscalar(steps) else steps)]
    ts = None if t is None else {int(x) for x in ([t] if np.isscalar(t) else t)}
    maps = [_array(trace.text_image_map(s, layers=layers, steps=ts)) for s in steps]
    top = vmax if vmax is not None else max(float(m.max()) for m in maps) or 1.0
    image = canvas.canvas
    arr = _image_array(image)
    h_pix = arr.shape[0] if arr is not None else maps[0].shape[0]
    w_pix = arr.shape[1] if arr is not None else maps[0].shape[1]
    aspect = h_pix / w_pix
    ph = min(panel_height, 1.6 * aspect) if aspect > 1 else panel_height / 2
    pw = ph / aspect
    fig, axes = plt.subplots(1, len(steps), figsize=(max(3.0, len(steps) * (pw + 0.25) + 0.9), ph + 1.0), squeeze=False,
                             layout="constrained")
    colors = _step_colors(n)
    for ax, s, m in zip(axes[0], steps, maps, strict=True):
        mappable = _overlay(ax, image, m, alpha, "inferno", 0.0, top, "nearest")
        region = h_pix / n
        for k in range(1, n):
            ax.axhline(k * region, color="white", lw=0.6, alpha=0.8)
        ax.add_patch(Rectangle((0, s * region), w_pix, region, fill=False, ec=colors[s], lw=2))
        rows = m.shape[0] // n
        inside = float(m[s * rows : (s + 1) * rows].sum()) / max(float(m.sum()), 1e-12)
        ax.set_title(f"step {s + 1}'s text\n{inside:.0%} in region {s + 1}", fontsize=8)
    fig.colorbar(mappable, ax=axes.ravel().tolist(), fraction=0.03, pad=0.02, label="attention mass on the step's text")
    src = f"SRC on (α={canvas.alpha:g})" if canvas.regional else "SRC off (full attention)"
    fig.suptitle(f"Where the canvas attends to each step's text: {src}; {_layers_label(layers)}, "
                 f"{_steps_label(ts)}", fontsize=9)
    return fig


def _ids_grid(img_ids, layout) -> np.ndarray:
    """[N P, 3] image ids as the canvas grid [N rows, cols, 3]."""
    ids = _array(img_ids)
    if ids.ndim != 2 or ids.shape[1] != 3 or ids.shape[0] != layout.image_len:
        raise ValueError(f"img_ids must be [N P, 3] = [{layout.image_len}, 3] for this layout, got shape {ids.shape}.")
    return ids.reshape(layout.n_regions * layout.rows, layout.cols, 3)


def rope_ids_figure(img_ids, layout, labels=None, annotate: bool | None = None, panel_height: float = 4.5) -> Figure:
    """RoPE position ids of every image token over the canvas: the row id and the column id.

    img_ids: one ``[N P, 3]`` tensor (``tr.canvas.img_ids`` or ``canvas_image_ids(...)``), or
    several as a list or a ``{label: ids}`` dict, drawn side by side (e.g. flexible vs
    global). layout: the call's ``RegionLayout`` (or an output/trace). The step axis (axis 0)
    gets a panel when it is used (``rope_step_axis=True``). Each panel has its own colour
    scale; annotate writes the numbers (default: small grids).
    """
    lay = _layout_of(layout)
    if isinstance(img_ids, dict):
        sets = list(img_ids.items())
    elif isinstance(img_ids, (list, tuple)):
        labels = labels or [f"ids {k + 1}" for k in range(len(img_ids))]
        sets = list(zip(labels, img_ids))
    else:
        sets = [(labels[0] if labels else "ids", img_ids)]
    grids = [(label, _ids_grid(ids, lay)) for label, ids in sets]
    use_step_axis = any(np.abs(g[..., 0]).max() > 0 for _, g in grids)
    axes_shown = ([(0, "axis 0 (step)")] if use_step_axis else []) + [(1, "axis 1 (row)"), (2, "axis 2 (column)")]
    gh, gw = grids[0][1].shape[:2]
    if annotate is None:  # numbers only where there are few cells and room for them
        annotate = gh * gw <= 400 and panel_height / gh >= 0.1
    aspect = gh / gw
    ph = min(panel_height, 0.45 * gh) if annotate else panel_height
    pw = max(0.9, ph / aspect)
    ncols = len(grids) * len(axes_shown)
    fig, axes = plt.subplots(1, ncols, figsize=(ncols * (pw + 0.7) + 0.3, ph + 0.9), squeeze=False, layout="constrained")
    k = 0
    for label, grid in grids:
        for axis, name in axes_shown:
            ax = axes[0, k]
            k += 1
            values = grid[..., axis]
            im = ax.imshow(values, cmap="viridis", interpolation="nearest", aspect="auto")
            for r in range(1, lay.n_regions):
                ax.axhline(r * lay.rows - 0.5, color="white", lw=1)
            if annotate:
                top = max(float(values.max()), 1e-9)
                for (r, c), v in np.ndenumerate(values):
                    ax.text(c, r, f"{v:.0f}", ha="center", va="center", fontsize=6, color="k" if v > 0.6 * top else "white")
            ax.set_xticks([])
            ax.set_yticks([(r + 0.5) * lay.rows - 0.5 for r in range(lay.n_regions)],
                          [f"R{r + 1}" for r in range(lay.n_regions)], fontsize=6)
            ax.set_title(f"{label}\n{name}: {values.min():.0f}..{values.max():.0f}", fontsize=8)
            fig.colorbar(im, ax=ax, fraction=0.08, pad=0.03).ax.tick_params(labelsize=6)
    fig.suptitle(f"RoPE ids of the canvas: {lay.n_regions} regions of {lay.rows}×{lay.cols} tokens (text ids are all 0)", fontsize=9)
    return fig


def rotary_figure(freqs, layout, regions=(0, -1), labels=None) -> Figure:
    """The rotary cos of two regions' tokens, and their difference, for one or more id sets.

    freqs: ``(cos, sin)`` as returned by ``transformer.pos_embed(img_ids)`` (each
    ``[N P, D]``; only cos is drawn, sin differs by the same angles), or several as a list or
    a ``{label: (cos, sin)}`` dict. Rows: id sets; columns: region a, region b (token ×
    channel), ``|cos_a − cos_b|``. With Flexible RoPE the difference is zero: every region
    is rotated as if it were the only image.
    """
    lay = _layout_of(layout)
    if isinstance(freqs, dict):
        sets = list(freqs.items())
    elif isinstance(freqs, list):
        sets = list(zip(labels or [f"ids {k + 1}" for k in range(len(freqs))], freqs))
    else:
        sets = [(labels[0] if labels else "ids", freqs)]
    a, b = (r % lay.n_regions for r in regions)
    p = lay.region_tokens
    fig, axes = plt.subplots(len(sets), 3, figsize=(10, 2.6 * len(sets) + 0.5), squeeze=False, layout="constrained")
    for row, (label, f) in enumerate(sets):
        cos = _array(f[0] if isinstance(f, (tuple, list)) else f)
        if cos.shape[0] != lay.image_len:
            raise ValueError(f"{label}: expected cos for the {lay.image_len} image tokens, got {cos.shape[0]} rows "
                             "(call pos_embed on img_ids only, or slice off the text rows).")
        ca, cb = cos[a * p : (a + 1) * p], cos[b * p : (b + 1) * p]  # [P, D]
        for ax, m, title, cmap, lim in ((axes[row, 0], ca, f"region {a + 1}", "coolwarm", (-1, 1)),
                                        (axes[row, 1], cb, f"region {b + 1}", "coolwarm", (-1, 1)),
                                        (axes[row, 2], np.abs(ca - cb), f"|difference|: max {np.abs(ca - cb).max():.2f}", "magma", (0, 2))):
            im = ax.imshow(m, cmap=cmap, vmin=lim[0], vmax=lim[1], aspect="auto", interpolation="nearest")
            ax.set_title(f"{label}: {title}", fontsize=8)
            ax.set_xlabel("rotary channel", fontsize=7)
            ax.set_ylabel("token in region (row-major)", fontsize=7)
            ax.tick_params(labelsize=6)
        fig.colorbar(im, ax=axes[row, 2], fraction=0.05)
    fig.suptitle("cos of the RoPE rotation angles (id × frequency) per image token", fontsize=9)
    return fig


def _token_text(token: str) -> str:
    """A SentencePiece token for display: word-start marker dropped, a lone marker as '␣'."""
    if token == "▁":
        return "␣"
    return token.replace("▁", "")


def cscc_spans_figure(spans, tokenizer=None, per_row: int = 16, max_tokens: int = 640) -> Figure:
    """The recipe encoding's tokens coloured by the step that owns them (CSCC, Eq. 12's b_n and t_n).

    spans: a ``cscc.RecipeSpans`` (``out.spans`` or ``tr.canvas.spans``). Top: the encoding
    as a bar, one colour per step, the title grey, ``</s>`` black; steps cut by
    ``max_sequence_length`` continue hatched beyond the red limit line. With a
    tokenizer (``pipe.tokenizer_2``) the tokens themselves are listed underneath, coloured
    the same way; tokens beyond the limit are hatched and greyed.
    """
    items = spans.spans
    n = len(items)
    colors = _step_colors(n)
    cut = bool(spans.truncated_steps)
    kept_text = spans.n_tokens - 1  # the encoding's text tokens; the last kept token is </s>
    lost = [max(0, s.own_length - s.length) if s.truncated else 0 for s in items]
    full = kept_text + sum(lost)

    tokens = None
    if tokenizer is not None:
        enc = tokenizer(spans.text, truncation=False, return_offsets_mapping=True, return_special_tokens_mask=True, verbose=False)
        keep = [i for i, sp in enumerate(enc["special_tokens_mask"]) if not sp]
        names = tokenizer.convert_ids_to_tokens([enc["input_ids"][i] for i in keep])
        starts = [enc["offset_mapping"][i][0] for i in keep]
        ends = [s.char_end for s in items]
        owner_start = len(spans.text[: items[0].char_start].rstrip())
        owner = {}
        for s in items:
            for p in range(s.start, s.start + s.length):
                owner[p] = s.step
        tokens = []
        for pos, (name, start) in enumerate(zip(names, starts)):
            if pos < kept_text:
                step = owner.get(pos, -1)
            else:  # cut off: give it to the step whose characters hold it, as step_token_spans does
                k = bisect.bisect_right(ends, start)
                step = k if start >= owner_start and k < n else -1
            tokens.append((_token_text(name), step, pos >= kept_text and cut))
        full = len(tokens)

    n_rows = 0 if tokens is None else -(-min(len(tokens), max_tokens) // per_row)
    legend_lines = -(-n // 4)
    fig = plt.figure(figsize=(11, 1.75 + 0.2 * legend_lines + 0.3 * n_rows + (0.15 if tokens is not None else 0)))
    height = fig.get_figheight()
    bar = fig.add_axes((0.05, 1 - 0.95 / height, 0.9, 0.42 / height))
    if items[0].start > 0:
        bar.add_patch(Rectangle((0, 0), items[0].start, 1, fc="0.7", ec="white", lw=0.5))
    cursor = kept_text
    for s, col, gone in zip(items, colors, lost):
        if s.length:
            bar.add_patch(Rectangle((s.start, 0), s.length, 1, fc=col, ec="white", lw=0.5))
            if s.length / max(full, 1) > 0.03:
                bar.text(s.start + s.length / 2, 0.5, f"S{s.step + 1}", ha="center", va="center", fontsize=7, color="white")
        if gone:
            bar.add_patch(Rectangle((cursor + 1, 0), gone, 1, fc=_lighter(col, 0.6), ec=col, hatch="///", lw=0.5))
            cursor += gone
    bar.add_patch(Rectangle((kept_text, 0), 1, 1, fc="k"))
    if cut:
        bar.axvline(spans.n_tokens, color="red", lw=1.5)
        bar.text(spans.n_tokens, 1.05, f" max_sequence_length = {spans.n_tokens}", color="red", fontsize=7, va="bottom",
                 transform=bar.get_xaxis_transform())
    bar.set_xlim(0, max(full, kept_text) + 2)
    bar.set_ylim(0, 1)
    bar.set_yticks([])
    bar.tick_params(labelsize=7)
    bar.set_xlabel("token position in the recipe encoding", fontsize=7)
    state = f"{len(spans.truncated_steps)} of {n} steps cut" if cut else "nothing cut"
    bar.set_title(f"whole description: {spans.n_tokens} tokens kept ({state})", fontsize=9, loc="left", pad=12)

    info = [f"S{s.step + 1}: b={s.start}, t={s.fused_length}" + (f" (cut: {s.length}/{s.own_length})" if s.truncated else "")
            + ("" if s.matches else " ≠ own ids") for s in items]
    legend_y = 1 - 1.45 / height
    per_line = 4  # steps per legend line
    for k, line in enumerate(info):
        r, c = divmod(k, per_line)
        fig.text(0.05 + c * 0.225, legend_y - r * 0.2 / height, "■ ", color=colors[k], fontsize=8, va="top")
        fig.text(0.065 + c * 0.225, legend_y - r * 0.2 / height, line, fontsize=7, va="top",
                 color="#b00" if items[k].truncated else "k")

    if tokens is not None:
        top = legend_y - legend_lines * 0.2 / height - 0.1 / height
        grid = fig.add_axes((0.05, 0.02, 0.9, max(0.01, top - 0.02)))
        grid.set_xlim(0, per_row)
        grid.set_ylim(n_rows, 0)
        grid.set_axis_off()
        for pos, (text, step, gone) in enumerate(tokens[:max_tokens]):
            r, c = divmod(pos, per_row)
            col = (0.85, 0.85, 0.85) if step < 0 else _lighter(colors[step], 0.55 if not gone else 0.8)
            grid.add_patch(Rectangle((c + 0.03, r + 0.08), 0.94, 0.84, fc=col, ec=_lighter(colors[step], 0.4) if gone and step >= 0 else "none",
                                     hatch="///" if gone else None, lw=0.5))
            grid.text(c + 0.5, r + 0.5, _short(text, 9) or " ", ha="center", va="center", fontsize=6.5,
                      color="0.3" if gone else "k", bbox=dict(fc=col, ec="none", pad=0.5) if gone else None)
        if len(tokens) > max_tokens:
            grid.text(per_row, n_rows + 0.2, f"… {len(tokens) - max_tokens} more tokens not shown", ha="right", va="top", fontsize=7)
    return fig


def cscc_delta_figure(trace_or_delta_norm, texts=None, wrap: int = 40) -> Figure:
    """What CSCC added to each step's text encoding: ``|lam * C_recipe[b_n + i]|`` per token.

    trace_or_delta_norm: a trace recorded with capture including ``"cscc"`` (texts are taken
    from it), or the ``[N, L]`` norms themselves. Left: per step (row) and token position
    (column), cropped after the last fused token; right: the total per step
    (``||delta_n||``), with t_n, the number of fused tokens. A step cut off the recipe
    encoding gets nothing.
    """
    delta = trace_or_delta_norm
    if not isinstance(delta, (torch.Tensor, np.ndarray)):
        canvas = _canvas_of(delta)
        if canvas.cscc_delta_norm is None:
            raise ValueError("the trace holds no CSCC delta: the call ran with cscc=False, or capture lacked 'cscc'.")
        texts = canvas.texts if texts is None else texts
        delta = canvas.cscc_delta_norm
    d = _array(delta)
    if d.ndim != 2:
        raise ValueError(f"delta norms must be [N, L], got shape {d.shape}")
    n = d.shape[0]
    texts = [f"step {k + 1}" for k in range(n)] if texts is None else list(texts)
    fused = (d > 0).sum(1)
    last = int(np.nonzero(d.any(0))[0].max()) + 1 if d.any() else 1
    show = min(d.shape[1], last + max(2, last // 10))
    totals = np.sqrt((d**2).sum(1))
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 1.2 + 0.38 * n), width_ratios=[3, 1.2], layout="constrained")
    im = axes[0].imshow(d[:, :show], aspect="auto", cmap="magma", interpolation="nearest")
    axes[0].set_yticks(range(n), [f"{k + 1}: {_short(t, wrap)}" for k, t in enumerate(texts)], fontsize=7)
    axes[0].set_xlabel("token position in the step's own encoding", fontsize=8)
    axes[0].set_title(f"|Δ| per token (first {show} of {d.shape[1]} positions)", fontsize=9)
    fig.colorbar(im, ax=axes[0], fraction=0.03, pad=0.01)
    colors = _step_colors(n)
    axes[1].barh(range(n), totals, color=colors)
    axes[1].set_ylim(n - 0.5, -0.5)
    axes[1].set_yticks(range(n), [f"t={f}" for f in fused], fontsize=7)
    for k in range(n):
        if fused[k] == 0:
            axes[1].text(0, k, " not fused (cut off)", va="center", fontsize=7, color="#b00")
    axes[1].set_xlabel("‖Δ_n‖", fontsize=8)
    axes[1].tick_params(axis="x", labelsize=7)
    axes[1].set_title("total per step", fontsize=9)
    fig.suptitle("CSCC: C_n[0:t] += λ · C_recipe[b_n : b_n + t]  (Eq. 12)", fontsize=10)
    return fig


def base_contribution_figure(trace, ax=None) -> Figure:
    """How much the whole-description (base) branch moves the image output (Eq. 9), per layer and step.

    ``|alpha (z_base - z_regional)| / |z|`` averaged over image tokens (0 at alpha = 0; it can
    pass 1 near alpha = 1, where ``z`` is the base output and the regional one differs from it
    by more than its own size). trace: one trace
    (heatmap of layers × denoising steps, and the mean over layers) or a ``{label: trace}``
    dict (one line per trace of the mean over layers, e.g. one per alpha).
    """
    def curve(tr):
        if not tr.base_contribution:
            raise ValueError("the trace holds no base contribution: it needs capture 'base_contribution' and a call with "
                             "regional=True (there is no base branch without SRC).")
        steps = sorted({k[2] for k in tr.base_contribution})
        return steps, [float(np.mean([v for k, v in tr.base_contribution.items() if k[2] == s])) for s in steps]

    if isinstance(trace, dict):
        if ax is None:
            fig, ax = plt.subplots(figsize=(5.5, 3.4), layout="constrained")
        for label, tr in trace.items():
            if not tr.base_contribution:
                ax.plot([], [], label=f"{label} (none)")
                continue
            steps, values = curve(tr)
            ax.plot(steps, values, marker=".", label=str(label))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("denoising step")
        ax.set_ylabel("|α (z_base − z_regional)| / |z|")
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=8)
        ax.set_title("What the whole-description branch changes, mean over layers", fontsize=10)
        return ax.figure

    steps, values = curve(trace)
    layers = trace.layers("base_contribution")
    grid = np.array([[trace.base_contribution.get((0, name, s), np.nan) for s in steps] for name in layers])
    fig, axes = plt.subplots(1, 2, figsize=(10, 1.6 + 0.16 * len(layers) + 1.0), width_ratios=[2, 1.2], layout="constrained")
    im = axes[0].imshow(grid, aspect="auto", cmap="viridis", interpolation="nearest")
    axes[0].set_yticks(range(len(layers)), [flux_layer_name(x) for x in layers], fontsize=6 if len(layers) > 20 else 7)
    axes[0].set_xticks(range(len(steps)), steps, fontsize=7)
    axes[0].set_xlabel("denoising step")
    axes[0].set_title("per layer", fontsize=9)
    fig.colorbar(im, ax=axes[0], fraction=0.04)
    axes[1].plot(steps, values, marker=".")
    axes[1].set_ylim(bottom=0)
    axes[1].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[1].set_xlabel("denoising step")
    axes[1].set_title("mean over layers", fontsize=9)
    alpha = getattr(trace.canvas, "alpha", None)
    fig.suptitle("What the base branch changes in the image output, |α (z_base − z_regional)| / |z|" + ("" if alpha is None else f", α = {alpha:g}"),
                 fontsize=10)
    return fig


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


def cscc_lambda_figure(images, reference_images, lam: float, delta_norm=None, texts=None) -> Figure:
    """One lambda of CSCC: the step images, how far each moved from lambda = 0, and what was added.

    images / reference_images: the N step images at ``lam`` and at lambda = 0 (CSCC off).
    Row 1: the images; row 2: ``|image − image(λ=0)|`` (mean over colour channels); a third
    row the ``[N, L]`` delta norms' total per step when ``delta_norm`` is given.
    """
    images, reference_images = list(images), list(reference_images)
    n = len(images)
    if len(reference_images) != n:
        raise ValueError(f"{n} images but {len(reference_images)} reference images.")
    rows = 3 if delta_norm is not None else 2
    fig = plt.figure(figsize=(max(6.0, 1.7 * n + 0.8), 1.9 * 2 + (1.8 if rows == 3 else 0) + 0.6), layout="constrained")
    gs = fig.add_gridspec(rows, n, height_ratios=[1, 1] + ([0.9] if rows == 3 else []))
    diffs = [np.abs(_image_array(a) - _image_array(b)).mean(-1) for a, b in zip(images, reference_images)]
    top = max(max(float(d.max()) for d in diffs), 1e-6)
    for k in range(n):
        ax = fig.add_subplot(gs[0, k])
        _show_image(ax, images[k], title=f"step {k + 1}" + ("" if texts is None else f"\n{_short(texts[k], 22)}"))
        ax2 = fig.add_subplot(gs[1, k])
        mappable = ax2.imshow(diffs[k], cmap="magma", vmin=0, vmax=top, interpolation="nearest")
        ax2.set_axis_off()
        ax2.set_title(f"mean |Δ| {diffs[k].mean():.2g}", fontsize=8)
    fig.colorbar(mappable, ax=fig.axes[-1], fraction=0.05)
    if rows == 3:
        d = _array(delta_norm)
        ax = fig.add_subplot(gs[2, :])
        ax.bar(range(1, n + 1), np.sqrt((d**2).sum(1)), color=_step_colors(n))
        ax.set_xticks(range(1, n + 1))
        ax.set_xlabel("step", fontsize=8)
        ax.set_ylabel("‖Δ_n‖ added", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.suptitle(f"CSCC with λ = {lam:g}: the images (top) and how much each moved from λ = 0 (middle)", fontsize=10)
    return fig
