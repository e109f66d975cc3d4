"""CookAnything figures: one canvas of N regions -- the SRC mask, the joint sequence, Flexible RoPE.

Every function takes a ``RegionLayout``, tensors, a ``CookAnythingOutput`` or a
``cooklab.Trace`` recorded around a ``CookAnything`` call (layouts and texts are read from
whichever is given) and returns a matplotlib ``Figure``; nothing here runs a model.

    fig = group_mask_figure(4)                 # the paper's 2N x 2N group mask
    fig = token_mask_figure(out)               # the same mask over the real tokens
    fig = layout_figure(tr)                    # [C_base | C_1..C_N | I_1..I_N] to scale
    fig = text_image_figure(tr)                # where the canvas attends to each step's text
    fig = rope_ids_figure(tr.canvas.img_ids, tr)

The CSCC figures are in ``cross_step_consistency.py``, the canvas storyboard in ``storyboard.py``.
Conventions: steps and regions are numbered from 1 in titles and labels and from 0 in
arguments (``steps=[0, 2]`` is steps 1 and 3), as everywhere in cooklab. "Denoising step"
is always called ``t`` here, so it cannot be confused with a recipe step.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from .common import (
    LABEL_PT,
    SMALL_PT,
    TITLE_PT,
    draw_overlay,
    image_array,
    layers_label,
    lighter,
    new_figure,
    new_subplots,
    short_layer_name,
    shorten,
    step_colors,
    steps_label,
    to_array,
)

__all__ = [
    "base_contribution_figure",
    "canvas_of",
    "flux_layer_name",
    "group_mask_figure",
    "ids_grid",
    "ids_panel",
    "layout_figure",
    "layout_of",
    "mask_fractions",
    "rope_ids_figure",
    "rotary_figure",
    "text_image_figure",
    "token_groups",
    "token_mask_figure",
]


LEAK_RGB = (0.3, 0.3, 0.3)  # dark grey: the mask cells that SRC removes, drawn with SRC off (the leak paths)

# ---- reading layouts and canvases --------------------------------------------------------


def layout_of(obj):
    """A RegionLayout from a layout, a pipeline output, a Trace or a CanvasTrace."""
    for holder in (obj, getattr(obj, "canvas", None)):
        if holder is not None and hasattr(holder, "n_regions"):
            return holder
        layout = getattr(holder, "layout", None)
        if layout is not None and hasattr(layout, "n_regions"):
            return layout
    raise ValueError(
        f"no region layout in a {type(obj).__name__}: pass a RegionLayout, a CookAnything output or a trace "
        "recorded with capture including 'layout'."
    )


def canvas_of(trace):
    """The CanvasTrace of a Trace (or the argument itself when it already is one)."""
    canvas = getattr(trace, "canvas", None)
    if canvas is not None and hasattr(canvas, "texts"):
        return canvas
    if hasattr(trace, "texts") and hasattr(trace, "token_counts"):
        return trace
    raise ValueError(
        "this trace holds no canvas: record a CookAnything call inside `with cooklab.trace(pipe) as tr:`."
    )


def flux_layer_name(name: str) -> str:
    """A Flux processor key as ``"double 3"`` / ``"single 12"`` (other names as ``short_layer_name``)."""
    parts = name.split(".")
    if len(parts) > 1 and parts[1].isdigit():
        if parts[0] == "transformer_blocks":
            return f"double {parts[1]}"
        if parts[0] == "single_transformer_blocks":
            return f"single {parts[1]}"
    return short_layer_name(name)


# ---- Step-wise Regional Control: the mask, the sequence, the text ------------------------


def group_mask_figure(
    n: int, image_attention: str = "region", ax=None, annotate: bool | None = None, src: bool = True
) -> Figure:
    """The paper's 2N x 2N Step-wise Regional Attention Mask (SRC), groups labelled.

    Groups 1..N are the step texts ``C_1..C_N``, groups N+1..2N the region images
    ``I_1..I_N``; ``M_ij = 1`` iff ``i = j`` or ``|i - j| = N``: each step's text and its
    region see only each other. Allowed cells are coloured by their step;
    ``image_attention="global"`` adds the image-image block in grey (Regional-Prompting-FLUX's
    choice, not the paper's). annotate: write 1/0 in the cells (default: N <= 6).
    ``src=False`` draws SRC switched off (``regional=False``): full attention, every cell 1, the
    cells the mask would remove in dark grey (the leak paths).
    """
    from ..cookanything.regional import group_mask  # here, not at the top: cooklab.cookanything imports diffusers

    n = int(n)
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    m = group_mask(n).numpy()  # [2N, 2N] bool
    extra = np.zeros_like(m)
    if image_attention == "global":
        extra[n:, n:] = ~m[n:, n:]
    elif image_attention != "region":
        raise ValueError(f"image_attention={image_attention!r}: use 'region' or 'global'.")
    leak = ~m if not src else np.zeros_like(m)  # SRC off: what the mask removes is allowed again
    colors = step_colors(n)
    rgb = np.ones((2 * n, 2 * n, 3), np.float32)
    for i, j in zip(*np.nonzero(m)):
        rgb[i, j] = colors[i % n] if i >= n and j >= n else lighter(colors[i % n], 0.35 if (i < n) == (j < n) else 0.2)
    rgb[extra] = 0.72
    rgb[leak] = LEAK_RGB
    if ax is None:
        side = min(7.0, 1.6 + 0.42 * 2 * n)
        fig, ax = new_subplots(figsize=(side, side), layout="constrained")
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
        allowed = m | extra | leak
        for (i, j), v in np.ndenumerate(allowed):
            ax.text(
                j,
                i,
                "1" if v else "0",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if (m[i, j] and i >= n and j >= n) or leak[i, j] else "0.25",
            )
    rule = "i = j or |i − j| = N" + (", plus image↔image" if image_attention == "global" else "")
    if not src:
        rule = "always (SRC off); dark grey: what SRC removes"
    ax.set_title(f"group mask M, N = {n}: 1 iff {rule}", fontsize=LABEL_PT)
    return ax.figure


def token_groups(layout, downsample_to: int):
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


def mask_fractions(counts_q, counts_k, image_attention: str):
    """Per (query bin, key bin): fraction allowed per group [Bq, Bk, N] and through global image attention [Bq, Bk].

    ``image_attention="full"``: SRC off, every pair of different groups is allowed too (the second array).
    """
    tq, tk = counts_q.sum(-1), counts_k.sum(-1)  # [B, N] tokens of each group in each bin
    size_q, size_k = tq.sum(-1), tk.sum(-1)  # [B]
    norm = np.maximum(size_q[:, None] * size_k[None, :], 1.0)
    same = tq[:, None, :] * tk[None, :, :] / norm[..., None]  # [Bq, Bk, N]: pairs in the same group
    extra = np.zeros(norm.shape)
    if image_attention == "global":  # image pairs of different groups
        iq, ik = counts_q[..., 1], counts_k[..., 1]
        extra = (iq.sum(-1)[:, None] * ik.sum(-1)[None, :] - iq @ ik.T) / norm
    elif image_attention == "full":  # all pairs minus those in the same group
        extra = (size_q[:, None] * size_k[None, :] - tq @ tk.T) / norm
    return same, extra


def token_mask_figure(
    layout, image_attention: str = "region", highlight=None, ax=None, max_pixels: int = 480, src: bool = True
) -> Figure:
    """The regional branch's token-level mask (``regional_token_mask``) with group boundaries.

    layout: a ``RegionLayout`` (or an output/trace holding one). Tokens run
    ``[C_1..C_N, I_1..I_N]`` (the base text is not in the regional branch); a coloured pixel
    is an allowed (query, key) pair, coloured by its step, white is masked out, grey is
    image↔image across regions (``image_attention="global"`` only). highlight: a step
    index or several (0-based): the others are drawn in light grey. Layouts longer than
    ``max_pixels`` tokens are shown downsampled: each pixel is the exact average over its
    block of tokens (the dense mask is never built). The title gives the allowed fraction,
    i.e. how much of full attention the mask keeps. ``src=False``: SRC off (``regional=False``),
    full attention over the same tokens, the pairs SRC removes in dark grey (the leak paths).
    """
    layout = layout_of(layout)
    if image_attention not in ("region", "global"):
        raise ValueError(f"image_attention={image_attention!r}: use 'region' or 'global'.")
    image_attention = image_attention if src else "full"
    n, L, P = layout.n_regions, layout.step_text_len, layout.region_tokens
    total = n * (L + P)
    edges, counts = token_groups(layout, max_pixels)
    same, extra = mask_fractions(counts, counts, image_attention)  # [B, B, N], [B, B]
    colors = step_colors(n)
    if highlight is not None:
        keep = {int(h) % n for h in ([highlight] if np.isscalar(highlight) else highlight)}
        colors = np.array([c if k in keep else (0.8, 0.8, 0.8) for k, c in enumerate(colors)], np.float32)
    covered = same.sum(-1) + extra
    extra_rgb = np.asarray(LEAK_RGB if not src else (0.55, 0.55, 0.55), np.float32)
    rgb = same @ colors + extra[..., None] * extra_rgb + (1 - covered)[..., None] * 1.0  # white where masked
    if ax is None:
        fig, ax = new_subplots(figsize=(5.6, 5.2), layout="constrained")
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
    shown = (
        ""
        if len(edges) - 1 == total
        else f"\nshown at {len(edges) - 1}² pixels (≈{total / (len(edges) - 1):.0f} tokens each)"
    )
    ax.set_title(
        f"regional-branch mask, {total}×{total} tokens ({image_attention}): {allowed:.1%} of pairs allowed{shown}"
        if src
        else f"SRC off: full attention, {total}×{total} tokens, 100% of pairs allowed;\n"
        f"dark grey: the {1 - 1 / n:.0%} that SRC removes{shown}",
        fontsize=LABEL_PT,
    )
    return ax.figure


def layout_figure(layout, texts=None, token_counts=None, wrap: int = 90) -> Figure:
    """The joint sequence of one CookAnything call as a coloured bar, with token counts.

    ``[C_base | C_1 .. C_N | I_1 .. I_N]`` drawn to scale: the whole-description text (grey),
    each step's text (light) and each region's image tokens (dark, same hue). Underneath,
    one line per step: its text, its token counts and its region grid. layout: a
    ``RegionLayout``, a CookAnything output or a trace (texts and real-token counts are
    then taken from it). token_counts: real (non-padding) T5 tokens per step, EOS included.
    """
    lay = layout_of(layout)
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
    colors = step_colors(n)
    fig = new_figure(figsize=(10, 1.6 + 0.22 * n))
    bar = fig.add_axes((0.04, 1 - 1.05 / fig.get_figheight(), 0.92, 0.45 / fig.get_figheight()))
    segments = [("base", 0, lb, (0.6, 0.6, 0.6))] if lb else []
    segments += [(f"C{k + 1}", lb + k * L, L, lighter(colors[k])) for k in range(n)]
    segments += [(f"I{k + 1}", lay.text_len + k * P, P, colors[k]) for k in range(n)]
    for name, start, size, col in segments:
        bar.add_patch(Rectangle((start, 0), size, 1, fc=col, ec="white", lw=0.6))
        if size / lay.total > 0.022:
            bar.text(start + size / 2, 0.5, name, ha="center", va="center", fontsize=SMALL_PT)
        if token_counts is not None and name.startswith("C") and size / lay.total > 0.01:
            real = min(token_counts[int(name[1:]) - 1], L)
            bar.add_patch(Rectangle((start, 0), real, 0.12, fc="k", ec="none", alpha=0.5))
    bar.axvline(lay.text_len, color="k", lw=1)
    bar.set_xlim(0, lay.total)
    bar.set_ylim(0, 1)
    bar.set_yticks([])
    bar.tick_params(labelsize=SMALL_PT)
    base = f"C_base {lb} (whole description) + " if lb else "no base branch + "
    bar.set_title(
        f"joint sequence: {lay.total} tokens = {base}{n} × {L} step text + {n} × {P} image "
        f"({lay.rows}×{lay.cols} per region)",
        fontsize=LABEL_PT,
        loc="left",
    )
    lines = fig.add_axes((0.04, 0.02, 0.92, max(0.01, 1 - 1.55 / fig.get_figheight())))
    lines.set_axis_off()
    for k in range(n):
        y = 1 - (k + 0.5) / n
        real = "" if token_counts is None else f" ({min(token_counts[k], L)} real)"
        lines.add_patch(Rectangle((0, y - 0.3 / n), 0.012, 0.6 / n, fc=colors[k], transform=lines.transAxes))
        lines.text(
            0.018,
            y,
            f"step {k + 1}: C{k + 1} {L} tok{real} · I{k + 1} {P} tok — {shorten(texts[k], wrap)}",
            va="center",
            fontsize=SMALL_PT,
            transform=lines.transAxes,
        )
    if token_counts is not None:
        lines.text(
            1,
            1.02,
            "black tick under C_n: its real tokens (the rest is padding)",
            ha="right",
            va="bottom",
            fontsize=SMALL_PT,
            color="0.4",
            transform=lines.transAxes,
        )
    return fig


def text_image_figure(
    trace, steps=None, layers=None, t=None, alpha: float = 0.6, vmax: float | None = None, panel_height: float = 5.0
) -> Figure:
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
    canvas = canvas_of(trace)
    n = len(canvas.texts)
    steps = list(range(n)) if steps is None else [int(s) for s in ([steps] if np.isscalar(steps) else steps)]
    ts = None if t is None else {int(x) for x in ([t] if np.isscalar(t) else t)}
    maps = [to_array(trace.text_image_map(s, layers=layers, steps=ts)) for s in steps]
    top = vmax if vmax is not None else max(float(m.max()) for m in maps) or 1.0
    image = canvas.canvas
    arr = image_array(image)
    h_pix = arr.shape[0] if arr is not None else maps[0].shape[0]
    w_pix = arr.shape[1] if arr is not None else maps[0].shape[1]
    aspect = h_pix / w_pix
    ph = min(panel_height, 1.6 * aspect) if aspect > 1 else panel_height / 2
    pw = ph / aspect
    fig, axes = new_subplots(
        1,
        len(steps),
        figsize=(max(3.0, len(steps) * (pw + 0.25) + 0.9), ph + 1.0),
        squeeze=False,
        layout="constrained",
    )
    colors = step_colors(n)
    for ax, s, m in zip(axes[0], steps, maps, strict=True):
        mappable = draw_overlay(ax, image, m, alpha, "inferno", 0.0, top, "nearest")
        region = h_pix / n
        for k in range(1, n):
            ax.axhline(k * region, color="white", lw=0.6, alpha=0.8)
        ax.add_patch(Rectangle((0, s * region), w_pix, region, fill=False, ec=colors[s], lw=2))
        rows = m.shape[0] // n
        inside = float(m[s * rows : (s + 1) * rows].sum()) / max(float(m.sum()), 1e-12)
        ax.set_title(f"recipe step {s + 1}'s text\n{inside:.0%} in region {s + 1}", fontsize=SMALL_PT)
    label = "attention mass on the step's text" + ("" if vmax is None else f"\n(scale fixed at 0..{vmax:.2g})")
    bar = fig.colorbar(mappable, ax=axes.ravel().tolist(), fraction=0.03, pad=0.02)
    bar.set_label(label, fontsize=SMALL_PT)
    bar.ax.tick_params(labelsize=SMALL_PT)
    src = f"SRC on (α={canvas.alpha:g})" if canvas.regional else "SRC off (full attention)"
    fig.suptitle(
        f"Where the canvas attends to each step's text: {src}; {layers_label(layers)}, {steps_label(ts)}",
        fontsize=LABEL_PT,
    )
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
            raise ValueError(
                "the trace holds no base contribution: it needs capture 'base_contribution' and a call with "
                "regional=True (there is no base branch without SRC)."
            )
        steps = sorted({k[2] for k in tr.base_contribution})
        return steps, [float(np.mean([v for k, v in tr.base_contribution.items() if k[2] == s])) for s in steps]

    if isinstance(trace, dict):
        if ax is None:
            fig, ax = new_subplots(figsize=(5.5, 3.4), layout="constrained")
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
        ax.legend(fontsize=SMALL_PT)
        ax.set_title("What the whole-description branch changes, mean over layers", fontsize=TITLE_PT)
        return ax.figure

    steps, values = curve(trace)
    layers = trace.layers("base_contribution")
    grid = np.array([[trace.base_contribution.get((0, name, s), np.nan) for s in steps] for name in layers])
    fig, axes = new_subplots(
        1, 2, figsize=(10, 1.6 + 0.16 * len(layers) + 1.0), width_ratios=[2, 1.2], layout="constrained"
    )
    im = axes[0].imshow(grid, aspect="auto", cmap="viridis", interpolation="nearest")
    axes[0].set_yticks(range(len(layers)), [flux_layer_name(x) for x in layers], fontsize=SMALL_PT)
    axes[0].set_xticks(range(len(steps)), steps, fontsize=SMALL_PT)
    axes[0].set_xlabel("denoising step")
    axes[0].set_title("per layer", fontsize=LABEL_PT)
    fig.colorbar(im, ax=axes[0], fraction=0.04)
    axes[1].plot(steps, values, marker=".")
    axes[1].set_ylim(bottom=0)
    axes[1].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[1].set_xlabel("denoising step")
    axes[1].set_title("mean over layers", fontsize=LABEL_PT)
    alpha = getattr(trace.canvas, "alpha", None)
    fig.suptitle(
        "What the base branch changes in the image output, |α (z_base − z_regional)| / |z|"
        + ("" if alpha is None else f", α = {alpha:g}"),
        fontsize=TITLE_PT,
    )
    return fig


# ---- Flexible RoPE: position ids and rotations -------------------------------------------


def ids_grid(img_ids, layout) -> np.ndarray:
    """[N P, 3] image ids as the canvas grid [N rows, cols, 3]."""
    ids = to_array(img_ids)
    if ids.ndim != 2 or ids.shape[1] != 3 or ids.shape[0] != layout.image_len:
        raise ValueError(f"img_ids must be [N P, 3] = [{layout.image_len}, 3] for this layout, got shape {ids.shape}.")
    return ids.reshape(layout.n_regions * layout.rows, layout.cols, 3)


def ids_panel(ax, values, layout, title: str, annotate: bool, vmax: float | None = None) -> None:
    """One axis of the canvas's RoPE ids (``values`` [N rows, cols]) into ``ax``, regions marked, with a colour bar.

    vmax: the top of the colour scale (default: the largest id shown), so two id sets can share one scale.
    """
    lay = layout_of(layout)
    im = ax.imshow(values, cmap="viridis", interpolation="nearest", aspect="auto", vmin=0, vmax=vmax)
    for r in range(1, lay.n_regions):
        ax.axhline(r * lay.rows - 0.5, color="white", lw=1)
    if annotate:
        top = max(float(values.max() if vmax is None else vmax), 1e-9)
        for (r, c), v in np.ndenumerate(values):
            ax.text(c, r, f"{v:.0f}", ha="center", va="center", fontsize=6, color="k" if v > 0.6 * top else "white")
    ax.set_xticks([])
    ax.set_yticks(
        [(r + 0.5) * lay.rows - 0.5 for r in range(lay.n_regions)],
        [f"R{r + 1}" for r in range(lay.n_regions)],
        fontsize=SMALL_PT,
    )
    ax.set_title(f"{title}: {values.min():.0f}..{values.max():.0f}", fontsize=SMALL_PT)
    ax.figure.colorbar(im, ax=ax, fraction=0.08, pad=0.03).ax.tick_params(labelsize=SMALL_PT)


def rope_ids_figure(img_ids, layout, labels=None, annotate: bool | None = None, panel_height: float = 4.5) -> Figure:
    """RoPE position ids of every image token over the canvas: the row id and the column id.

    img_ids: one ``[N P, 3]`` tensor (``tr.canvas.img_ids`` or ``canvas_image_ids(...)``), or
    several as a list or a ``{label: ids}`` dict, drawn side by side (e.g. flexible vs
    global). layout: the call's ``RegionLayout`` (or an output/trace). The step axis (axis 0)
    gets a panel when it is used (``rope_step_axis=True``). Each panel has its own colour
    scale; annotate writes the numbers (default: small grids).
    """
    lay = layout_of(layout)
    if isinstance(img_ids, dict):
        sets = list(img_ids.items())
    elif isinstance(img_ids, (list, tuple)):
        labels = labels or [f"ids {k + 1}" for k in range(len(img_ids))]
        sets = list(zip(labels, img_ids))
    else:
        sets = [(labels[0] if labels else "ids", img_ids)]
    grids = [(label, ids_grid(ids, lay)) for label, ids in sets]
    use_step_axis = any(np.abs(g[..., 0]).max() > 0 for _, g in grids)
    axes_shown = ([(0, "axis 0 (step)")] if use_step_axis else []) + [(1, "axis 1 (row)"), (2, "axis 2 (column)")]
    gh, gw = grids[0][1].shape[:2]
    if annotate is None:  # numbers only where there are few cells and room for them
        annotate = gh * gw <= 400 and panel_height / gh >= 0.1
    aspect = gh / gw
    ph = min(panel_height, 0.45 * gh) if annotate else panel_height
    pw = max(0.9, ph / aspect)
    ncols = len(grids) * len(axes_shown)
    fig, axes = new_subplots(
        1, ncols, figsize=(ncols * (pw + 0.7) + 0.3, ph + 0.9), squeeze=False, layout="constrained"
    )
    k = 0
    for label, grid in grids:
        for axis, name in axes_shown:
            ids_panel(axes[0, k], grid[..., axis], lay, f"{label}\n{name}", annotate)
            k += 1
    fig.suptitle(
        f"RoPE ids of the canvas: {lay.n_regions} regions of {lay.rows}×{lay.cols} tokens (text ids are all 0)",
        fontsize=LABEL_PT,
    )
    return fig


def rotary_figure(freqs, layout, regions=(0, -1), labels=None) -> Figure:
    """The rotary cos of two regions' tokens, and their difference, for one or more id sets.

    freqs: ``(cos, sin)`` as returned by ``transformer.pos_embed(img_ids)`` (each
    ``[N P, D]``; only cos is drawn, sin differs by the same angles), or several as a list or
    a ``{label: (cos, sin)}`` dict. Rows: id sets; columns: region a, region b (token ×
    channel), ``|cos_a − cos_b|``. With Flexible RoPE the difference is zero: every region
    is rotated as if it were the only image.
    """
    lay = layout_of(layout)
    if isinstance(freqs, dict):
        sets = list(freqs.items())
    elif isinstance(freqs, list):
        sets = list(zip(labels or [f"ids {k + 1}" for k in range(len(freqs))], freqs))
    else:
        sets = [(labels[0] if labels else "ids", freqs)]
    a, b = (r % lay.n_regions for r in regions)
    p = lay.region_tokens
    fig, axes = new_subplots(len(sets), 3, figsize=(10, 2.6 * len(sets) + 0.5), squeeze=False, layout="constrained")
    for row, (label, f) in enumerate(sets):
        cos = to_array(f[0] if isinstance(f, (tuple, list)) else f)
        if cos.shape[0] != lay.image_len:
            raise ValueError(
                f"{label}: expected cos for the {lay.image_len} image tokens, got {cos.shape[0]} rows "
                "(call pos_embed on img_ids only, or slice off the text rows)."
            )
        ca, cb = cos[a * p : (a + 1) * p], cos[b * p : (b + 1) * p]  # [P, D]
        for ax, m, title, cmap, lim in (
            (axes[row, 0], ca, f"region {a + 1}", "coolwarm", (-1, 1)),
            (axes[row, 1], cb, f"region {b + 1}", "coolwarm", (-1, 1)),
            (axes[row, 2], np.abs(ca - cb), f"|difference|: max {np.abs(ca - cb).max():.2f}", "magma", (0, 2)),
        ):
            im = ax.imshow(m, cmap=cmap, vmin=lim[0], vmax=lim[1], aspect="auto", interpolation="nearest")
            ax.set_title(f"{label}: {title}", fontsize=SMALL_PT)
            ax.set_xlabel("rotary channel", fontsize=SMALL_PT)
            ax.set_ylabel("token in region (row-major)", fontsize=SMALL_PT)
            ax.tick_params(labelsize=SMALL_PT)
        fig.colorbar(im, ax=axes[row, 2], fraction=0.05)
    fig.suptitle("cos of the RoPE rotation angles (id × frequency) per image token", fontsize=LABEL_PT)
    return fig
