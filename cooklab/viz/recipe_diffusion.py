"""Recipe Diffusion figures: where a frame looked (attention) and what it started from (noise).

Every function takes tensors or a ``cooklab.Trace`` recorded around a ``RecipeDiffusion``
call and returns a matplotlib ``Figure``; functions with an ``ax=`` argument draw into that
axes instead and return its figure. Nothing here runs a model, so a trace recorded on a GPU
can be plotted anywhere, and the notebooks' toy tensors use the same functions.

    fig = reference_share_figure(tr, frame=1)            # where frame 1 looked at its reference
    fig = self_attention_figure(tr, 1, layer, step, query=(3, 4))
    fig = cross_attention_figure(tr, 1, tokens=["jar", "milk"])
    fig = noise_map_figure(tr.noise[1])                  # Eq. 5-7 as maps on the latent grid

Frames are numbered from 0 in arguments and titled "recipe step frame + 1". Close figures you no
longer need (``plt.close(fig)``): pyplot keeps every figure it made alive.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from ..recipe_diffusion.records import NoiseRecord
from ..recipe_diffusion.region_noise import RegionNoise
from .common import (
    LABEL_PT,
    SMALL_PT,
    TITLE_PT,
    draw_image,
    draw_note,
    draw_outline,
    draw_overlay,
    image_array,
    layers_label,
    new_subplots,
    short_layer_name,
    steps_label,
    to_array,
)

__all__ = [
    "SPECIAL_TOKENS",
    "attention_overlay",
    "cross_attention_figure",
    "noise_map_figure",
    "reference_share_curve_figure",
    "reference_share_figure",
    "self_attention_figure",
    "toy_attention_figure",
]

SPECIAL_TOKENS = ("<|startoftext|>", "<|endoftext|>")
"""CLIP's begin/end tokens: present in every prompt, left out of default token lists."""


def _token_label(token: str) -> str:
    """A CLIP token for display, without its end-of-word marker."""
    return token.replace("</w>", "")


# ---- attention ---------------------------------------------------------------------------


def attention_overlay(
    image,
    heatmap,
    ax=None,
    alpha: float = 0.5,
    title: str | None = None,
    cmap: str = "inferno",
    vmin: float | None = None,
    vmax: float | None = None,
    colorbar: bool = False,
    interpolation: str = "nearest",
) -> Figure:
    """A ``[h, w]`` heatmap stretched over ``image`` (each cell covers its patch of pixels).

    image may be None (the heatmap alone). vmin/vmax fix the colour scale (default: the
    map's range); ``interpolation="bilinear"`` smooths the cells.
    """
    if ax is None:
        fig, ax = new_subplots(figsize=(3.2, 3), layout="constrained")
    mappable = draw_overlay(ax, image, heatmap, alpha, cmap, vmin, vmax, interpolation)
    if title:
        ax.set_title(title, fontsize=LABEL_PT)
    if colorbar:
        ax.figure.colorbar(mappable, ax=ax, fraction=0.046, pad=0.04)
    return ax.figure


def _frame_image(trace, frame: int | None):
    """The image of ``frame`` in the trace (None: no frame given, or none recorded)."""
    return None if frame is None or frame not in trace.frames else trace.frames[frame].image


def reference_share_figure(
    trace,
    frame: int,
    layers=None,
    steps=None,
    vmin: float | None = 0.0,
    vmax: float | None = 1.0,
    alpha: float = 0.6,
    centre: float | None = None,
) -> Figure:
    """Where frame ``frame`` looked at its reference: reference image | frame | share over the frame.

    The share of a query is the attention mass it puts on the reference frame's keys
    (Eq. 3 summed over the reference half of ``K+``): 0 ignores the reference, 0.5 weighs
    it as much as the frame itself. layers/steps select what is averaged (None: all
    captured); vmin/vmax fix the colour scale (None: the map's range). centre: show
    ``s - centre`` instead (e.g. 0.5: above 0.5 the frame leans on its reference more than on
    itself) on a diverging scale fitted to the map, ``[-r, r]`` with ``r = max |s - centre|``,
    so a map that stays close to ``centre`` still shows its structure (vmin/vmax are ignored).
    """
    share = trace.reference_share_map(frame, layers=layers, steps=None if steps is None else set(steps))
    ref = trace.frames[frame].kv_reference  # the frame whose keys were attended to
    fig, axes = new_subplots(1, 3, figsize=(9.6, 3.3), layout="constrained")
    draw_image(
        axes[0],
        _frame_image(trace, ref),
        title="reference (no reference)" if ref is None else f"reference: recipe step {ref + 1}",
    )
    draw_image(axes[1], _frame_image(trace, frame), title=f"frame: recipe step {frame + 1}")
    s = to_array(share)  # [G, G]
    if centre is None:
        mappable = draw_overlay(axes[2], _frame_image(trace, frame), s, alpha, "viridis", vmin, vmax, "nearest")
        axes[2].set_title(
            f"reference share: mean {s.mean():.3f}\n(min {s.min():.3f}, max {s.max():.3f})", fontsize=LABEL_PT
        )
    else:
        r = max(float(np.abs(s - centre).max()), 1e-6)  # the scale fitted to the map, symmetric around 0
        mappable = draw_overlay(axes[2], _frame_image(trace, frame), s - centre, alpha, "RdBu_r", -r, r, "nearest")
        axes[2].set_title(
            f"share − {centre:g}: mean {s.mean() - centre:+.3f}\n(share {s.min():.3f} to {s.max():.3f})",
            fontsize=LABEL_PT,
        )
    bar = fig.colorbar(mappable, ax=axes[2], fraction=0.046, pad=0.04)
    if centre is not None:
        bar.set_label(f"s − {centre:g} (red: more on the reference)", fontsize=SMALL_PT)
    fig.suptitle(
        f"Attention on the reference frame's keys ({layers_label(layers)}, {steps_label(steps)})", fontsize=TITLE_PT
    )
    return fig


def reference_share_curve_figure(trace, frames=None, layers=None, ax=None) -> Figure:
    """Mean reference share against denoising step, one line per frame.

    frames: which frames (default: every frame with captured shares). The dashed line at
    0.5 is "the reference weighs as much as the frame's own tokens".
    """
    captured = sorted({k[0] for k in trace.reference_share})
    frames = captured if frames is None else list(frames)
    if ax is None:
        fig, ax = new_subplots(figsize=(5.5, 3.3), layout="constrained")
    for f in frames:
        curve = trace.reference_share_curve(f, layers=layers)
        if curve:
            ref = trace.frames[f].kv_reference
            label = f"recipe step {f + 1}" + ("" if ref is None else f" (ref {ref + 1})")
            ax.plot(list(curve), list(curve.values()), marker=".", label=label)
    ax.axhline(0.5, ls="--", lw=0.8, color="0.5")
    ax.text(
        0.01,
        0.49,
        "0.5: reference as important as own frame",
        va="top",
        fontsize=SMALL_PT,
        color="0.4",
        transform=ax.get_yaxis_transform(),
    )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("denoising step (position in the schedule)")
    ax.set_ylabel("attention share on reference")
    ax.set_ylim(0, 1)
    ax.set_title(f"Reference share per denoising step ({layers_label(layers)})", fontsize=TITLE_PT)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=SMALL_PT)
    return ax.figure


def self_attention_figure(
    trace, frame: int, layer: str, step: int, query: tuple[int, int], alpha: float = 0.6, vmax: float | None = None
) -> Figure:
    """Where one query cell of ``frame`` looks: the cell, its attention on the reference, on itself.

    Panels: the frame with the query cell outlined; attention over the reference frame's
    keys on the reference image (only when the layer shared K/V); attention over the
    frame's own keys on the frame image. Both attention panels share one colour scale so
    their masses compare (its top: ``vmax``, or the largest weight shown); the titles give each
    part's total (they sum to 1).
    """
    grid = tuple(trace.self_attention[(frame, layer, step)].shape[:2])  # the pooled query grid (Gh, Gw)
    if not (0 <= query[0] < grid[0] and 0 <= query[1] < grid[1]):
        raise ValueError(
            f"query {tuple(query)} is outside the {grid[0]}x{grid[1]} query grid of {short_layer_name(layer)}."
        )
    maps = trace.self_attention_map(frame, layer, step, query)  # [S, Gh, Gw]; S = 2: (reference, own)
    ref = trace.frames[frame].kv_reference  # the frame whose keys were attended to
    image = _frame_image(trace, frame)
    fixed = vmax is not None
    vmax = vmax if fixed else float(maps.max())
    fig, axes = new_subplots(1, 3, figsize=(10, 3.4), layout="constrained")

    draw_image(axes[0], image, title=f"query cell {tuple(query)} of recipe step {frame + 1}")
    arr = image_array(image)
    h, w = arr.shape[:2] if arr is not None else grid
    ch, cw = h / grid[0], w / grid[1]
    axes[0].add_patch(Rectangle((query[1] * cw, query[0] * ch), cw, ch, fill=False, ec="red", lw=2))
    if arr is None:
        axes[0].set_xlim(0, w)
        axes[0].set_ylim(h, 0)

    if maps.shape[0] == 2:
        draw_overlay(axes[1], _frame_image(trace, ref), maps[0], alpha, "inferno", 0.0, vmax, "nearest")
        who = "reference" if ref is None else f"reference (recipe step {ref + 1})"
        axes[1].set_title(f"{who} keys: {float(maps[0].sum()):.1%} of attention", fontsize=LABEL_PT)
    else:
        draw_note(axes[1], "this layer did not share K/V:\nno reference keys")
    mappable = draw_overlay(axes[2], image, maps[-1], alpha, "inferno", 0.0, vmax, "nearest")
    axes[2].set_title(f"own keys: {float(maps[-1].sum()):.1%} of attention", fontsize=LABEL_PT)
    bar = fig.colorbar(mappable, ax=axes[2], fraction=0.046, pad=0.04)
    bar.ax.tick_params(labelsize=SMALL_PT)
    if fixed:
        bar.set_label("scale fixed over the denoising steps", fontsize=SMALL_PT)
    fig.suptitle(
        f"Self-attention of recipe step {frame + 1}, {short_layer_name(layer)}, {steps_label([step])}",
        fontsize=TITLE_PT,
    )
    return fig


def cross_attention_figure(
    trace, frame: int, tokens=None, layers=None, steps=None, ncols: int = 5, max_tokens: int = 12, alpha: float = 0.6
) -> Figure:
    """One overlay per prompt token: where the image attends to that word.

    tokens: words or indices into ``trace.frames[frame].tokens`` (default: the prompt's
    tokens without BOS/EOS, at most ``max_tokens``). All panels share one colour scale.
    """
    all_tokens = trace.frames[frame].tokens
    if tokens is None:
        kept = trace.token_rows[frame]  # all tokens, or those of the trace's words=
        idx = [i for i, t in enumerate(all_tokens) if t not in SPECIAL_TOKENS and i in kept][:max_tokens]
    else:
        idx = [trace.token_index(frame, t) for t in tokens]
    if not idx:
        raise ValueError(f"frame {frame} has no tokens to show.")
    st = None if steps is None else set(steps)
    maps = [trace.cross_attention_map(frame, i, layers=layers, steps=st) for i in idx]
    vmax = max(float(m.max()) for m in maps)
    ncols = min(ncols, len(idx))
    nrows = -(-len(idx) // ncols)
    fig, axes = new_subplots(
        nrows, ncols, figsize=(1.8 * ncols + 0.6, 1.9 * nrows + 0.6), squeeze=False, layout="constrained"
    )
    image = _frame_image(trace, frame)
    for ax, i, m in zip(axes.flat, idx, maps, strict=False):
        mappable = draw_overlay(ax, image, m, alpha, "inferno", 0.0, vmax, "nearest")
        ax.set_title(f"{i}: {_token_label(all_tokens[i])!r}", fontsize=LABEL_PT)
    for ax in list(axes.flat)[len(idx) :]:
        ax.set_axis_off()
    fig.colorbar(mappable, ax=axes.ravel().tolist(), fraction=0.02, pad=0.02)
    fig.suptitle(
        f"Cross-attention of recipe step {frame + 1} to its words ({layers_label(layers)}, {steps_label(steps)})",
        fontsize=TITLE_PT,
    )
    return fig


def toy_attention_figure(
    weights, labels, query_labels=None, ax=None, title: str | None = None, annotate: bool = True
) -> Figure:
    """A small attention matrix ``[Q, K]`` as a heatmap with key labels (columns) and query labels (rows)."""
    w = to_array(weights)
    if w.ndim != 2 or w.shape[1] != len(labels):
        raise ValueError(f"weights must be [Q, K] with K = len(labels) = {len(labels)}; got shape {w.shape}.")
    if ax is None:
        fig, ax = new_subplots(figsize=(0.55 * w.shape[1] + 1.6, 0.45 * w.shape[0] + 1.2), layout="constrained")
    ax.imshow(w, cmap="Blues", vmin=0, vmax=max(float(w.max()), 1e-9))
    ax.set_xticks(range(w.shape[1]), labels, rotation=45, ha="right", fontsize=SMALL_PT)
    rows = query_labels if query_labels is not None else [f"q{i}" for i in range(w.shape[0])]
    ax.set_yticks(range(w.shape[0]), rows, fontsize=SMALL_PT)
    ax.set_xlabel("keys")
    ax.set_ylabel("queries")
    if annotate:
        for (r, c), v in np.ndenumerate(w):
            ax.text(
                c, r, f"{v:.2f}", ha="center", va="center", fontsize=7, color="white" if v > 0.6 * w.max() else "black"
            )
    if title:
        ax.set_title(title, fontsize=TITLE_PT)
    return ax.figure


# ---- noise -------------------------------------------------------------------------------


def _latent_picture(latent, view: str) -> tuple[np.ndarray, str]:
    """A ``[C, h, w]`` latent as something imshow can draw: 3 channels as RGB, or the channel mean."""
    x = to_array(latent)
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
        return (
            f"{values.mean():.3f} everywhere" if np.allclose(values, values.flat[0]) else f"mean {values.mean():.3f}"
        )
    return f"{values[mask > 0.5].mean():.3f} in mask / {values[mask <= 0.5].mean():.3f} outside"


def _level_line(name: str, level, timestep) -> str | None:
    if level is None:
        return None
    return f"{name} level {level:g} → t={timestep:g}" if timestep is not None else f"{name} level {level:g}"


def _noise_values(record, given: dict) -> dict:
    """``noise_map_figure``'s values: those ``given`` (not None) first, the rest from ``record``.

    record: a ``NoiseRecord`` (its maps, levels and timesteps, and a title naming its frames), a
    ``RegionNoise`` (its maps) or None. Keys: mask, sigma_map, signal_map, noised, object_noise,
    base_noise, object_timestep, base_timestep, and title (None unless the record names one).
    """
    if isinstance(record, NoiseRecord):
        found = dict(
            mask=record.region.mask if record.region is not None else None,
            sigma_map=record.sigma_map,
            signal_map=record.signal_map,
            noised=record.noised,
            object_noise=record.object_noise,
            base_noise=record.base_noise,
            object_timestep=record.object_timestep,
            base_timestep=record.base_timestep,
            title=f"Noise of recipe step {record.frame + 1} (from recipe step {record.reference + 1})",
        )
    elif isinstance(record, RegionNoise):
        found = dict(
            mask=record.mask, sigma_map=record.sigma_map, signal_map=record.signal_map, noised=record.combined
        )
    elif record is not None:
        raise TypeError(f"record must be a NoiseRecord, a RegionNoise or None, got {type(record).__name__}.")
    else:
        found = {}
    values = {key: value if value is not None else found.get(key) for key, value in given.items()}
    values["title"] = found.get("title")
    return values


def _draw_noise_panel(ax, kind: str, value, m, latent_view: str, coefficient_max) -> None:
    """One panel of ``noise_map_figure``: the mask, a coefficient map (sigma, signal), the noised latent or its image.

    kind: "mask", "sigma", "signal", "noised" or "decoded"; value: its map (None for no mask), or
    the decoded picture; m: the mask as an array (for the coefficient maps' means inside and
    outside it, and the outline over the decoded picture), or None.
    """
    fig = ax.figure
    if kind == "decoded":
        picture = image_array(value)  # [H, W, 3]
        draw_image(ax, picture, "decoded by the VAE" + ("\n(red: the mask)" if m is not None else ""))
        if m is not None:
            draw_outline(ax, m, picture.shape[:2])
        return
    if kind == "mask":
        if value is None:
            draw_note(ax, "no mask:\nuniform noise")
            ax.set_title("mask on latent grid", fontsize=LABEL_PT)
            return
        im = ax.imshow(value, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(
            f"mask on latent grid {value.shape[0]}×{value.shape[1]}\n(covers {value.mean():.0%})",
            fontsize=LABEL_PT,
        )
    elif kind in ("sigma", "signal"):
        top = None if coefficient_max is None else coefficient_max[0 if kind == "sigma" else 1]
        im = ax.imshow(
            value,
            cmap="magma" if kind == "sigma" else "viridis",
            vmin=None if top is None else 0.0,
            vmax=top,
            interpolation="nearest",
        )
        name = "noise coefficient b (× ε)" if kind == "sigma" else "signal coefficient a (× L_ref)"
        ax.set_title(f"{name}\n{_in_out(value, m)}", fontsize=LABEL_PT)
    else:
        picture, how = _latent_picture(value, latent_view)
        im = ax.imshow(picture, cmap=None if picture.ndim == 3 else "coolwarm", interpolation="nearest")
        ax.set_title(f"noised latent\n{how}", fontsize=LABEL_PT)
    ax.set_xticks([])
    ax.set_yticks([])
    if kind != "noised" or latent_view == "mean":
        bar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        bar.ax.tick_params(labelsize=SMALL_PT)
        if kind in ("sigma", "signal") and coefficient_max is not None:
            bar.set_label(f"scale fixed at 0..{bar.vmax:.3g}", fontsize=SMALL_PT)


def noise_map_figure(
    record=None,
    *,
    mask=None,
    sigma_map=None,
    signal_map=None,
    noised=None,
    object_noise=None,
    base_noise=None,
    object_timestep=None,
    base_timestep=None,
    title: str | None = None,
    latent_view: str = "rgb",
    coefficient_max: tuple[float, float] | None = None,
    decoded=None,
) -> Figure:
    """Region-aware noise (Eq. 5-7) on the latent grid: mask | noise coefficient | signal coefficient | noised latent.

    The two coefficients are those of ``L = a * L_ref + b * eps`` per cell: ``b`` is the scheduler's
    factor of the noise at the level's timestep (``sqrt(1 - abar_t)`` for DDIM), not the level itself.
    decoded: the noised latent decoded by the VAE (a picture), drawn as a last panel with the mask's
    outline; None leaves it out.

    coefficient_max: ``(sigma_max, signal_max)``, fixed tops of the two coefficient maps'
    colour scales (from 0), for figures that are compared with each other (the noise
    explorer's sliders); None: each map's own range.

    record: a ``NoiseRecord`` (``trace.noise[i]``) or a ``RegionNoise`` (what
    ``region_aware_noise`` returns); or give the tensors directly: mask ``[h, w]`` (None:
    uniform noise), sigma_map / signal_map ``[h, w]`` (``L = signal * L_ref + sigma *
    eps`` per cell), noised ``[C, h, w]``. Keyword arguments override the record's values;
    panels whose tensor is missing are left out. Levels and timesteps go in the title.
    """
    given = dict(
        mask=mask,
        sigma_map=sigma_map,
        signal_map=signal_map,
        noised=noised,
        object_noise=object_noise,
        base_noise=base_noise,
        object_timestep=object_timestep,
        base_timestep=base_timestep,
    )
    v = _noise_values(record, given)
    title = title or v["title"]
    m = None if v["mask"] is None else to_array(v["mask"])
    panels = [("mask", m)]
    if v["sigma_map"] is not None:
        panels.append(("sigma", to_array(v["sigma_map"])))
    if v["signal_map"] is not None:
        panels.append(("signal", to_array(v["signal_map"])))
    if v["noised"] is not None:
        panels.append(("noised", v["noised"]))
    if decoded is not None:
        panels.append(("decoded", decoded))
    fig, axes = new_subplots(1, len(panels), figsize=(2.4 * len(panels), 3.0), squeeze=False, layout="constrained")
    for ax, (kind, value) in zip(axes[0], panels, strict=True):
        _draw_noise_panel(ax, kind, value, m, latent_view, coefficient_max)
    lines = (
        _level_line("object", v["object_noise"], v["object_timestep"]),
        _level_line("base", v["base_noise"], v["base_timestep"]),
    )
    levels = [x for x in lines if x]
    heading = " · ".join(x for x in (title, ", ".join(levels)) if x)
    if heading:
        fig.suptitle(heading, fontsize=TITLE_PT)
    return fig
