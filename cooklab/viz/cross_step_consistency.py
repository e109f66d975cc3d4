"""CSCC figures (Cross-Step Consistency Control, Eq. 12): what each step borrows from the whole recipe.

    fig = cscc_spans_figure(out.spans, pipe.tokenizer_2)   # which recipe tokens belong to which step (b_n, t_n)
    fig = cscc_delta_figure(tr)                            # |lam * C_recipe[b_n + i]| added to each step's tokens
    fig = cscc_lambda_figure(images, images_at_0, lam=0.4) # how far the images moved from lambda = 0
    fig = cscc_similarity_figure(lams, to_first, to_recipe, shown=0.4)  # the fused tokens' cosine similarity vs lambda

Inputs are a ``cscc.RecipeSpans`` (``out.spans``), a trace recorded with capture
including ``"cscc"``, or plain tensors and images; nothing here runs a model.
"""

from __future__ import annotations

import bisect

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from .common import (
    LABEL_PT,
    SMALL_PT,
    TITLE_PT,
    draw_image,
    image_array,
    lighter,
    new_figure,
    new_subplots,
    shorten,
    step_colors,
    to_array,
)
from .cookanything import canvas_of

__all__ = ["cscc_delta_figure", "cscc_lambda_figure", "cscc_similarity_figure", "cscc_spans_figure"]


def _token_text(token: str) -> str:
    """A SentencePiece token for display: word-start marker dropped, a lone marker as '␣'."""
    if token == "▁":
        return "␣"
    return token.replace("▁", "")


def _owned_tokens(spans, tokenizer, kept_text: int, cut: bool) -> list[tuple[str, int, bool]]:
    """Every token of the whole encoding as ``(text, owning step or -1, cut off)``.

    Tokens up to ``kept_text`` belong to the step whose span holds them; a token beyond the
    limit goes to the step whose characters hold it, as ``step_token_spans`` does.
    """
    items = spans.spans
    n = len(items)
    enc = tokenizer(
        spans.text, truncation=False, return_offsets_mapping=True, return_special_tokens_mask=True, verbose=False
    )
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
    return tokens


def _draw_span_bar(fig: Figure, spans, colors, lost: list[int], kept_text: int, full: int) -> None:
    """The encoding as one bar: a colour per step, the title grey, ``</s>`` black, cut steps hatched."""
    items = spans.spans
    cut = bool(spans.truncated_steps)
    height = fig.get_figheight()
    bar = fig.add_axes((0.05, 1 - 0.95 / height, 0.9, 0.42 / height))
    if items[0].start > 0:
        bar.add_patch(Rectangle((0, 0), items[0].start, 1, fc="0.7", ec="white", lw=0.5))
    cursor = kept_text
    for s, col, gone in zip(items, colors, lost):
        if s.length:
            bar.add_patch(Rectangle((s.start, 0), s.length, 1, fc=col, ec="white", lw=0.5))
            if s.length / max(full, 1) > 0.03:
                bar.text(
                    s.start + s.length / 2,
                    0.5,
                    f"S{s.step + 1}",
                    ha="center",
                    va="center",
                    fontsize=SMALL_PT,
                    color="white",
                )
        if gone:
            bar.add_patch(Rectangle((cursor + 1, 0), gone, 1, fc=lighter(col, 0.6), ec=col, hatch="///", lw=0.5))
            cursor += gone
    bar.add_patch(Rectangle((kept_text, 0), 1, 1, fc="k"))
    if cut:
        bar.axvline(spans.n_tokens, color="red", lw=1.5)
        bar.text(
            spans.n_tokens,
            1.05,
            f" max_sequence_length = {spans.n_tokens}",
            color="red",
            fontsize=SMALL_PT,
            va="bottom",
            transform=bar.get_xaxis_transform(),
        )
    bar.set_xlim(0, max(full, kept_text) + 2)
    bar.set_ylim(0, 1)
    bar.set_yticks([])
    bar.tick_params(labelsize=SMALL_PT)
    bar.set_xlabel("token position in the recipe encoding", fontsize=SMALL_PT)
    state = f"{len(spans.truncated_steps)} of {len(items)} steps cut" if cut else "nothing cut"
    bar.set_title(f"whole description: {spans.n_tokens} tokens kept ({state})", fontsize=LABEL_PT, loc="left", pad=12)


def _draw_span_legend(fig: Figure, items, colors, legend_y: float) -> None:
    """One line per step under the bar: its start b and fused length t, in red when it was cut."""
    height = fig.get_figheight()
    info = [
        f"S{s.step + 1}: b={s.start}, t={s.fused_length}"
        + (f" (cut: {s.length}/{s.own_length})" if s.truncated else "")
        + ("" if s.matches else " ≠ own ids")
        for s in items
    ]
    per_line = 4  # steps per legend line
    for k, line in enumerate(info):
        r, c = divmod(k, per_line)
        fig.text(0.05 + c * 0.225, legend_y - r * 0.2 / height, "■ ", color=colors[k], fontsize=SMALL_PT, va="top")
        fig.text(
            0.065 + c * 0.225,
            legend_y - r * 0.2 / height,
            line,
            fontsize=SMALL_PT,
            va="top",
            color="#b00" if items[k].truncated else "k",
        )


def _draw_token_grid(fig: Figure, tokens, colors, top: float, per_row: int, max_tokens: int, n_rows: int) -> None:
    """The tokens themselves, ``per_row`` to a row below ``top``, coloured by their step; cut ones hatched."""
    grid = fig.add_axes((0.05, 0.02, 0.9, max(0.01, top - 0.02)))
    grid.set_xlim(0, per_row)
    grid.set_ylim(n_rows, 0)
    grid.set_axis_off()
    for pos, (text, step, gone) in enumerate(tokens[:max_tokens]):
        r, c = divmod(pos, per_row)
        col = (0.85, 0.85, 0.85) if step < 0 else lighter(colors[step], 0.55 if not gone else 0.8)
        grid.add_patch(
            Rectangle(
                (c + 0.03, r + 0.08),
                0.94,
                0.84,
                fc=col,
                ec=lighter(colors[step], 0.4) if gone and step >= 0 else "none",
                hatch="///" if gone else None,
                lw=0.5,
            )
        )
        grid.text(
            c + 0.5,
            r + 0.5,
            shorten(text, 9) or " ",
            ha="center",
            va="center",
            fontsize=6.5,
            color="0.3" if gone else "k",
            bbox=dict(fc=col, ec="none", pad=0.5) if gone else None,
        )
    if len(tokens) > max_tokens:
        grid.text(
            per_row,
            n_rows + 0.2,
            f"… {len(tokens) - max_tokens} more tokens not shown",
            ha="right",
            va="top",
            fontsize=SMALL_PT,
        )


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
    colors = step_colors(n)
    cut = bool(spans.truncated_steps)
    kept_text = spans.n_tokens - 1  # the encoding's text tokens; the last kept token is </s>
    lost = [max(0, s.own_length - s.length) if s.truncated else 0 for s in items]
    full = kept_text + sum(lost)
    tokens = None if tokenizer is None else _owned_tokens(spans, tokenizer, kept_text, cut)
    if tokens is not None:
        full = len(tokens)

    n_rows = 0 if tokens is None else -(-min(len(tokens), max_tokens) // per_row)
    legend_lines = -(-n // 4)
    fig = new_figure(figsize=(9.5, 1.75 + 0.2 * legend_lines + 0.3 * n_rows + (0.15 if tokens is not None else 0)))
    height = fig.get_figheight()
    _draw_span_bar(fig, spans, colors, lost, kept_text, full)
    legend_y = 1 - 1.45 / height
    _draw_span_legend(fig, items, colors, legend_y)
    if tokens is not None:
        top = legend_y - legend_lines * 0.2 / height - 0.1 / height
        _draw_token_grid(fig, tokens, colors, top, per_row, max_tokens, n_rows)
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
        canvas = canvas_of(delta)
        if canvas.cscc_delta_norm is None:
            raise ValueError("the trace holds no CSCC delta: the call ran with cscc=False, or capture lacked 'cscc'.")
        texts = canvas.texts if texts is None else texts
        delta = canvas.cscc_delta_norm
    d = to_array(delta)
    if d.ndim != 2:
        raise ValueError(f"delta norms must be [N, L], got shape {d.shape}")
    n = d.shape[0]
    texts = [f"recipe step {k + 1}" for k in range(n)] if texts is None else list(texts)
    fused = (d > 0).sum(1)
    last = int(np.nonzero(d.any(0))[0].max()) + 1 if d.any() else 1
    show = min(d.shape[1], last + max(2, last // 10))
    totals = np.sqrt((d**2).sum(1))
    fig, axes = new_subplots(1, 2, figsize=(9.5, 1.3 + 0.4 * n), width_ratios=[3, 1.2], layout="constrained")
    im = axes[0].imshow(d[:, :show], aspect="auto", cmap="magma", interpolation="nearest")
    axes[0].set_yticks(range(n), [f"{k + 1}: {shorten(t, wrap)}" for k, t in enumerate(texts)], fontsize=SMALL_PT)
    axes[0].set_xlabel("token position in the step's own encoding", fontsize=SMALL_PT)
    axes[0].set_title(f"|Δ| per token (first {show} of {d.shape[1]} positions)", fontsize=LABEL_PT)
    fig.colorbar(im, ax=axes[0], fraction=0.03, pad=0.01)
    colors = step_colors(n)
    axes[1].barh(range(n), totals, color=colors)
    axes[1].set_ylim(n - 0.5, -0.5)
    axes[1].set_yticks(range(n), [f"t={f}" for f in fused], fontsize=SMALL_PT)
    for k in range(n):
        if fused[k] == 0:
            axes[1].text(0, k, " not fused (cut off)", va="center", fontsize=SMALL_PT, color="#b00")
    axes[1].set_xlabel("‖Δ_n‖", fontsize=SMALL_PT)
    axes[1].tick_params(axis="x", labelsize=SMALL_PT)
    axes[1].set_title("total per recipe step", fontsize=LABEL_PT)
    fig.suptitle("CSCC: C_n[0:t] += λ · C_recipe[b_n : b_n + t]  (Eq. 12)", fontsize=TITLE_PT)
    return fig


def cscc_lambda_figure(
    images,
    reference_images,
    lam: float,
    delta_norm=None,
    texts=None,
    vmax: float | None = None,
    delta_max: float | None = None,
    scale_note: str | None = None,
    title: str | None = None,
) -> Figure:
    """One lambda of CSCC: the step images, how far each moved from lambda = 0, and what was added.

    images / reference_images: the N step images at ``lam`` and at lambda = 0 (CSCC off).
    Row 1: the images; row 2: ``|image − image(λ=0)|`` (mean over colour channels, values in
    [0, 1]); a third row the ``[N, L]`` delta norms' total per recipe step when ``delta_norm``
    is given. vmax fixes the top of row 2's colour scale and delta_max the top of row 3's axis
    (None: this figure's own largest value, so two figures do not compare by eye); larger values
    saturate (the colour bar's arrow). scale_note goes under the colour bar's label, e.g. where
    vmax came from; title replaces the figure's title (e.g. with the measure of each setting).
    """
    images, reference_images = list(images), list(reference_images)
    n = len(images)
    if len(reference_images) != n:
        raise ValueError(f"{n} images but {len(reference_images)} reference images.")
    rows = 3 if delta_norm is not None else 2
    fig = new_figure(
        figsize=(max(6.5, 1.9 * n + 1.2), 2.1 * 2 + (1.9 if rows == 3 else 0) + 0.7), layout="constrained"
    )
    gs = fig.add_gridspec(rows, n, height_ratios=[1, 1] + ([0.9] if rows == 3 else []))
    diffs = [np.abs(image_array(a) - image_array(b)).mean(-1) for a, b in zip(images, reference_images)]  # N x [H, W]
    top = vmax if vmax is not None else max(max(float(d.max()) for d in diffs), 1e-6)
    for k in range(n):
        ax = fig.add_subplot(gs[0, k])
        draw_image(
            ax, images[k], title=f"recipe step {k + 1}" + ("" if texts is None else f"\n{shorten(texts[k], 20)}")
        )
        ax2 = fig.add_subplot(gs[1, k])
        mappable = ax2.imshow(diffs[k], cmap="magma", vmin=0, vmax=top, interpolation="nearest")
        ax2.set_axis_off()
        ax2.set_title(f"mean |Δ| {diffs[k].mean():.2g}", fontsize=SMALL_PT)
    label = "|image − image(λ=0)|\n" + (
        scale_note or ("scale fixed" if vmax is not None else "scale: this λ's largest change")
    )
    bar = fig.colorbar(mappable, ax=fig.axes[-1], fraction=0.05, extend="max" if vmax is not None else "neither")
    bar.set_label(label, fontsize=SMALL_PT)
    bar.ax.tick_params(labelsize=SMALL_PT)
    if rows == 3:
        d = to_array(delta_norm)
        ax = fig.add_subplot(gs[2, :])
        ax.bar(range(1, n + 1), np.sqrt((d**2).sum(1)), color=step_colors(n))
        ax.set_xticks(range(1, n + 1))
        ax.set_xlabel("recipe step", fontsize=LABEL_PT)
        ax.set_ylabel("‖Δ_n‖ added", fontsize=LABEL_PT)
        if delta_max is not None:
            ax.set_ylim(0, delta_max)
        ax.tick_params(labelsize=SMALL_PT)
    fig.suptitle(
        title or f"CSCC with λ = {lam:g}: the images (top) and how much each moved from λ = 0 (middle)",
        fontsize=TITLE_PT,
    )
    return fig


def cscc_similarity_figure(lams, to_first, to_recipe, shown: float, marks=(), steps=None) -> Figure:
    """What lambda does to the text: cosine similarity of each later step's fused tokens, against lambda.

    lams [K]: the lambdas (0 first: CSCC off); to_first / to_recipe [K, M]: for each lambda and
    each of M later steps, the cosine similarity of the mean of the step's fused rows
    ``C_n[o : o + t_n] + lam * C_recipe[b_n : b_n + t_n]`` (Eq. 12) with the mean of step 1's own
    rows (left) and with the mean of the whole recipe's tokens (right). steps: the M steps'
    numbers (default 2 .. M + 1); shown: the lambda drawn now (0: CSCC off), marked by a vertical
    line and a dot on every curve; marks: the lambdas a slider offers, ticked on the x axis.
    """
    lams = np.asarray(lams, dtype=float)
    curves = [np.asarray(to_first, dtype=float), np.asarray(to_recipe, dtype=float)]
    m = curves[0].shape[1]
    steps = list(range(2, m + 2)) if steps is None else list(steps)
    colors = step_colors(max(steps, default=1))
    fig, axes = new_subplots(1, 2, figsize=(9.5, 3.3), layout="constrained")
    at = int(np.argmin(np.abs(lams - shown)))  # the row of the shown lambda
    names = ("… to step 1's own words", "… to the whole recipe's tokens")
    for ax, curve, name in zip(axes, curves, names):
        for j, step in enumerate(steps):
            ax.plot(lams, curve[:, j], color=colors[step - 1], lw=1.5, label=f"step {step}")
            ax.plot(lams[at], curve[at, j], "o", color=colors[step - 1], ms=7, mec="k")
        ax.axvline(lams[at], color="k", lw=1, ls="--")
        ax.set_xticks(sorted({0.0, *(float(x) for x in marks)}))
        ax.tick_params(labelsize=SMALL_PT)
        ax.set_xlabel("λ (0 = CSCC off)", fontsize=LABEL_PT)
        ax.set_ylabel("cosine similarity", fontsize=LABEL_PT)
        values = ", ".join(f"{v:.3f}" for v in curve[at])
        ax.set_title(f"{name}\nat λ = {lams[at]:g}: {values}", fontsize=LABEL_PT)
        ax.grid(alpha=0.3)
    if m:
        axes[0].legend(fontsize=SMALL_PT, loc="lower right")
    state = "CSCC off (λ = 0)" if shown == 0 else f"CSCC on, λ = {shown:g}"
    fig.suptitle(f"{state}: each later step's fused T5 tokens (Eq. 12), compared with …", fontsize=TITLE_PT)
    return fig
