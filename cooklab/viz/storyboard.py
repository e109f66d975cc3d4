"""Storyboards: every step's image in a grid with its text, for both pipelines.

    fig = storyboard(images, texts, notes=["from noise", "from 1 · KV 1", ...])
    fig = storyboard_from_output(out)     # a RecipeDiffusionOutput: one frame_note per frame
    fig = canvas_storyboard(out)          # a CookAnythingOutput: one canvas_note per region
    fig = comparison_figure([("independent", images_a, "kept 1 of 3"), ("K/V", images_b, "kept 3 of 3")], texts,
                            group_titles={0: "Recipe Diffusion: independent vs K/V sharing"})

The notes are the small grey line under each image: for Recipe Diffusion where the frame
started and what it shared (``frame_note``), for CookAnything its region and its CSCC
fusion (``canvas_note``). Outputs are read by attribute, so a saved or hand-made output
works as well. ``comparison_figure`` puts several runs of one recipe under each other, one
row per run (``cooklab demo``'s ``compare.png``).
"""

from __future__ import annotations

import textwrap

from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .common import LABEL_PT, SMALL_PT, TITLE_PT, draw_image, new_figure

__all__ = [
    "canvas_note",
    "canvas_storyboard",
    "comparison_figure",
    "frame_note",
    "storyboard",
    "storyboard_from_output",
]

_CAPTION_PT, _NOTE_PT, _LINE = SMALL_PT, SMALL_PT, 1.3  # storyboard font sizes (points) and line height (x font size)


# ---- any images --------------------------------------------------------------------------


def storyboard(
    images, texts, title: str | None = None, ncols: int | None = None, notes=None, wrap: int = 28
) -> Figure:
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
    text_pts = (
        4
        + _CAPTION_PT * _LINE * max(c.count("\n") + 1 for c in captions)
        + (_NOTE_PT * _LINE + 2 if any(notes) else 0)
    )
    row_h = 0.25 + size + text_pts / 72 + gap
    fig = new_figure(figsize=(ncols * (size + gap) + gap, head + nrows * row_h))
    width, height = fig.get_size_inches()
    for k in range(n):
        r, c = divmod(k, ncols)
        left, bottom = gap + c * (size + gap), height - head - r * row_h - 0.25 - size
        ax = fig.add_axes((left / width, bottom / height, size / width, size / height))
        draw_image(ax, images[k], title=f"step {k + 1}")
        ax.annotate(
            captions[k],
            (0.5, 0),
            xycoords="axes fraction",
            xytext=(0, -4),
            textcoords="offset points",
            ha="center",
            va="top",
            fontsize=_CAPTION_PT,
        )
        if notes[k]:
            below = 4 + _CAPTION_PT * _LINE * (captions[k].count("\n") + 1) + 2
            ax.annotate(
                notes[k],
                (0.5, 0),
                xycoords="axes fraction",
                xytext=(0, -below),
                textcoords="offset points",
                ha="center",
                va="top",
                fontsize=_NOTE_PT,
                color="0.4",
            )
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
    return storyboard(
        out.images, [f.text for f in out.frames], title=title, ncols=ncols, notes=[frame_note(f) for f in out.frames]
    )


# ---- CookAnything: one region of the canvas per step -------------------------------------


def canvas_note(out, n: int) -> str:
    """One short line for step n of a CookAnything output: its region, its CSCC fusion."""
    parts = [f"region {n + 1}"]
    spans = getattr(out, "spans", None)
    if spans is not None:
        s = spans.spans[n]
        parts.append(
            "CSCC: cut off" if s.fused_length == 0 else f"CSCC t={s.fused_length}" + (" (cut)" if s.truncated else "")
        )
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
            on.append(
                f"SRC α={s.get('alpha', 0):g}" + (" (global images)" if s.get("image_attention") == "global" else "")
            )
        if s.get("flexible_rope"):
            on.append("Flexible RoPE" + (" + step axis" if s.get("rope_step_axis") else ""))
        if s.get("cscc"):
            on.append(f"CSCC λ={s.get('lam', 0):g}")
        title = f"{out.recipe.title} — {', '.join(on) or 'plain Flux on the canvas'}"
    n = len(out.images)
    return storyboard(
        out.images,
        out.recipe.texts,
        title=title,
        ncols=ncols or min(n, 6),
        notes=[canvas_note(out, k) for k in range(n)],
    )


# ---- several runs of one recipe, one row each --------------------------------------------


def _comparison_rows(rows, texts: list) -> list[tuple[str, list, object]]:
    """``comparison_figure``'s rows checked: one ``(label, [N images], caption)`` per run, N = len(texts)."""
    if not texts:
        raise ValueError("comparison_figure got no step texts: give one text per step.")
    rows = list(rows)
    if not rows:
        raise ValueError("comparison_figure got no rows: give one (label, images, caption) triple per run.")
    parsed = []
    for r, row in enumerate(rows):
        try:
            if isinstance(row, (str, bytes)):
                raise TypeError
            label, images, caption = row
            images = list(images)
        except (TypeError, ValueError):
            raise ValueError(
                f"comparison_figure row {r} is {str(row)[:60]!r}: give a (label, images, caption) triple."
            ) from None
        if len(images) != len(texts):
            raise ValueError(
                f"comparison_figure row {r} ({label!r}) has {len(images)} images for {len(texts)} step texts: "
                "give every row one image per step."
            )
        parsed.append((str(label), images, caption))
    return parsed


def _group_titles(group_titles, n_rows: int) -> dict:
    """``comparison_figure``'s ``{row index: heading}`` checked: every index names one of ``n_rows`` rows."""
    group_titles = dict(group_titles or {})
    outside = sorted(k for k in group_titles if not (isinstance(k, int) and 0 <= k < n_rows))
    if outside:
        raise ValueError(f"comparison_figure group_titles {outside} name no row: use row indices 0..{n_rows - 1}.")
    return group_titles


def comparison_figure(rows, texts, group_titles=None, title: str | None = None, wrap: int = 21) -> Figure:
    """Several runs of one recipe side by side: one row of frames per run, the step texts once at the top.

    rows: one ``(label, images, caption)`` triple per run, drawn top to bottom:

    * label: the run's name, drawn above its frames (e.g. ``"independent frames"``);
    * images: its N frames, one per step (PIL images, ``[H, W, 3]`` arrays or ``[3, H, W]``
      tensors, as ``storyboard`` takes; None draws an empty panel);
    * caption: a line under its frames (e.g. a metric), or None.

    texts: the N step texts, drawn once above the first row (every row shows the same steps).
    group_titles: ``{row index: heading}``, a bold heading above that row that starts a group,
    e.g. ``{0: "Recipe Diffusion: ...", 2: "CookAnything: ..."}`` for two pairs of rows.
    title: the figure's title; wrap: characters per line of a step text.

    A plain ``matplotlib.figure.Figure`` (no pyplot state): a notebook shows it as the cell's
    value, ``fig.savefig(path)`` writes it. Raises ``ValueError`` when a row is not a triple,
    a row's frame count differs from the number of texts, or a group index names no row.
    """
    texts = list(texts)
    parsed = _comparison_rows(rows, texts)  # one (label, [N images], caption) per row
    group_titles = _group_titles(group_titles, len(parsed))

    n = len(texts)
    headers = [f"step {k + 1}\n" + textwrap.fill(t, wrap) for k, t in enumerate(texts)]  # drawn above the columns
    # Layout in inches, top to bottom (no layout engine: they ignore text outside the axes).
    size, gap, margin = 1.5, 0.15, 0.15  # frame side, space between frames, left/right margin
    width = 2 * margin + n * size + (n - 1) * gap
    caption_pt = LABEL_PT  # the captions carry the comparison's numbers: a little larger than the step texts
    caption_chars = int(width * 10)  # about 10 characters of 10 pt text per inch
    captions = [textwrap.fill(str(c), caption_chars) if c else "" for _, _, c in parsed]
    title_h = 0.45 if title else 0.1
    header_h = (_CAPTION_PT * _LINE * max(h.count("\n") + 1 for h in headers) + 6) / 72
    group_h, label_h = 0.4, 0.25
    caption_h = [(4 + caption_pt * _LINE * (c.count("\n") + 1)) / 72 + gap if c else gap for c in captions]
    height = title_h + header_h + len(group_titles) * group_h + len(parsed) * (label_h + size) + sum(caption_h)
    fig = Figure(figsize=(width, height))

    def y(inches_from_top: float) -> float:  # figure fraction of a height measured from the top
        return 1 - inches_from_top / height

    if title:
        fig.suptitle(title, y=y(0.12), va="top")
    top = title_h
    for k, header in enumerate(headers):
        fig.text(
            (margin + k * (size + gap) + size / 2) / width, y(top), header, ha="center", va="top", fontsize=_CAPTION_PT
        )
    top += header_h
    for r, (label, images, _) in enumerate(parsed):
        if r in group_titles:
            fig.add_artist(
                Line2D([margin / width, 1 - margin / width], [y(top + 0.08)] * 2, color="0.6", linewidth=0.8)
            )
            fig.text(
                margin / width,
                y(top + 0.14),
                group_titles[r],
                ha="left",
                va="top",
                fontsize=TITLE_PT,
                fontweight="bold",
            )
            top += group_h
        fig.text(margin / width, y(top + label_h - 0.05), label, ha="left", va="bottom", fontsize=LABEL_PT)
        top += label_h
        for k, image in enumerate(images):
            left = margin + k * (size + gap)
            ax = fig.add_axes((left / width, y(top + size), size / width, size / height))
            draw_image(ax, image)
        top += size
        if captions[r]:
            fig.text(
                margin / width, y(top + 4 / 72), captions[r], ha="left", va="top", fontsize=caption_pt, color="0.2"
            )
        top += caption_h[r]
    return fig
