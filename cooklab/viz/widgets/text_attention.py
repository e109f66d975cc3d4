"""An explorer of Step-wise Regional Control (CookAnything, §3.2): SRC on and off, α, where each step's text is read.

    box = text_image_explorer(pipe, recipe, measure=oracle_faithfulness(expectations), seed=0, height=64, width=64)

The recipe is generated with SRC (``regional=True``) at each α of Eq. 9,

    z = α z_base + (1 − α) z_regional,

and once without it (``regional=False``: full attention over the concatenated step texts and all
regions), on the same seed, each call traced for ``"text_image_attention"``. The first figure
shows both canvases, region by region (the setting the toggle picks is framed, its measure first
in the title); the second where the shown canvas's image tokens put their attention on each
step's text; the third the same as numbers, the share of step n's text mass that lands in
region m. With SRC the share matrix is the identity (region n alone can see step n's words);
without it every step is read about evenly everywhere (1/N): the leak. ipywidgets is imported
inside the function.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Sequence

import numpy as np

from ...instrument.summaries import text_image_share_matrix
from ...instrument.trace import trace as make_trace
from ..common import LABEL_PT, SMALL_PT, TITLE_PT, draw_image, new_subplots
from ..cookanything import flux_layer_name, text_image_figure
from . import panels
from .measures import measure_label

__all__ = ["text_image_explorer"]

OFF = "off"  # the results key of the run without SRC
SHOWN_EDGE = "#d62728"  # the frame around the setting the toggle shows


def _canvases_figure(on_out, off_out, alpha: float, shown_on: bool, labels: tuple[str, str], seed):
    """Both canvases region by region: SRC on at ``alpha`` (row 1) and off (row 2); the shown row framed in red.

    labels: the measure of (on, off), written under each row's name; the title starts with the shown setting's.
    """
    n = len(on_out.images)
    fig, axes = new_subplots(2, n, figsize=(1.8 * n + 1.4, 5.2), squeeze=False, layout="constrained")
    rows = ((f"SRC on, α = {alpha:g}", on_out, labels[0]), ("SRC off (full attention)", off_out, labels[1]))
    for r, (name, out, label) in enumerate(rows):
        shown = (r == 0) == shown_on
        for k, ax in enumerate(axes[r]):
            header = textwrap.fill(f"{k + 1}. {out.recipe.texts[k]}", 24) if r == 0 else None
            draw_image(ax, out.images[k], title=header)
            ax.title.set_fontsize(SMALL_PT)
            ax.set_axis_on()
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set(color=SHOWN_EDGE if shown else "0.8", linewidth=4 if shown else 0.8)
        lines = [name + (" (shown)" if shown else ""), *label.split(", ")]
        axes[r, 0].set_ylabel("\n".join(lines), fontsize=SMALL_PT, fontweight="bold" if shown else "normal")
    first, second = (rows[0], rows[1]) if shown_on else (rows[1], rows[0])
    title = f"{first[0]}: {first[2] or 'no measure'}\n({second[0]}: {second[2] or 'no measure'}), seed {seed}"
    fig.suptitle(title, fontsize=TITLE_PT)
    return fig


def _share_matrix_figure(shares: np.ndarray, title: str):
    """``shares[n, m]``: the share of step n's text mass read in region m, as a heat map with the numbers."""
    n = shares.shape[0]
    fig, ax = new_subplots(figsize=(1.6 + 0.55 * n, 1.2 + 0.45 * n), layout="constrained")
    ax.imshow(shares, cmap="Greens", vmin=0, vmax=1)
    for (i, j), v in np.ndenumerate(shares):
        ax.text(j, i, f"{v:.0%}", ha="center", va="center", fontsize=SMALL_PT, color="white" if v > 0.6 else "k")
    ax.set_xticks(range(n), [f"region {m + 1}" for m in range(n)], fontsize=SMALL_PT, rotation=30)
    ax.set_yticks(range(n), [f"step {k + 1}'s text" for k in range(n)], fontsize=SMALL_PT)
    ax.set_title(title, fontsize=LABEL_PT)
    return fig


def text_image_explorer(
    pipe,
    recipe,
    alphas: Sequence[float] = (0.0, 0.1, 0.3, 0.6, 1.0),
    alpha: float = 0.1,
    measure: Callable | Sequence[Callable] | None = None,
    layers=None,
    timesteps=None,
    precompute: bool = False,
    **call_kwargs,
):
    """SRC on (at α) and off on the same seed: both canvases, where each step's text is read, with a toggle.

    pipe: a ``cooklab.CookAnything``; recipe and call_kwargs (``seed``, ``height``, ...) go to
    every call (``regional`` and ``alpha`` are set here, ``progress`` defaults to False).
    alphas: the α of Eq. 9 the slider offers (``alpha``, the paper's 0.1, first shown).
    measure: pictures -> title label (e.g. ``oracle_faithfulness(expectations)``), several
    (their labels joined), or None (a real checkpoint without one). layers / timesteps: what
    the trace records (``cooklab.trace``; None: every layer and step). The SRC-off run and the
    first α are generated now, each other α when the slider first reaches it (all at once with
    ``precompute=True``); ``box.results[α]`` and ``box.results["off"]`` hold ``(output, trace)``.

    Controls: ``mechanism`` (SRC on / off: which canvas is framed and whose attention is
    drawn), ``alpha``, ``layer`` and ``t`` (the denoising step; "all" averages). The attention
    maps' colour scale is the shown trace's largest value of any single layer and step.
    """
    import ipywidgets as widgets

    alphas = sorted({float(a) for a in alphas} | {float(alpha)})
    kwargs = {"progress": False, **call_kwargs}
    for key in ("regional", "alpha"):
        kwargs.pop(key, None)
    results: dict = {}

    def run(key):
        if key not in results:
            with make_trace(
                pipe, capture=["text_image_attention", "layout"], layers=layers, timesteps=timesteps
            ) as tr:
                if key == OFF:
                    out = pipe(recipe, regional=False, **kwargs)
                else:
                    out = pipe(recipe, regional=True, alpha=key, **kwargs)
            results[key] = (out, tr)
        return results[key]

    for key in [OFF, *(alphas if precompute else [float(alpha)])]:
        run(key)
    first = results[float(alpha)][1]
    wide = {"description_width": "initial"}
    c = dict(
        mechanism=panels.mechanism_toggle(widgets, "Step-wise Regional Control", "SRC on", "SRC off (full attention)"),
        alpha=widgets.SelectionSlider(
            options=[(f"{a:g}", a) for a in alphas],
            value=float(alpha),
            description="α (Eq. 9, SRC on)",
            continuous_update=False,
            style=wide,
        ),
        layer=widgets.Dropdown(
            options=[("all layers", panels.ALL)] + [(flux_layer_name(x), x) for x in first.layers("text_image")],
            description="layer",
            style=wide,
        ),
        t=widgets.SelectionSlider(
            options=[("all", panels.ALL)] + [(str(s), s) for s in first.steps(0, "text_image")],
            description="denoising step",
            continuous_update=False,
            style=wide,
        ),
    )
    out = widgets.Output()

    def draw():
        _draw(run, c, measure)

    for w in c.values():
        w.observe(lambda _: panels.redraw(out, draw), names="value")
    panels.redraw(out, draw)
    box = panels.panel(widgets, [[c["mechanism"]], [c["alpha"], c["layer"]], [c["t"]]], out, c)
    box.results = results
    return box


def _draw(run, c: dict, measure) -> None:
    """The explorer's three figures for the controls ``c``: canvases, attention maps, share matrix."""
    on = c["mechanism"].value
    alpha = c["alpha"].value
    (on_out, on_tr), (off_out, off_tr) = run(alpha), run(OFF)
    labels = (measure_label(measure, on_out.images), measure_label(measure, off_out.images))
    tr = on_tr if on else off_tr
    layers = None if c["layer"].value == panels.ALL else c["layer"].value
    t = None if c["t"].value == panels.ALL else [c["t"].value]
    top = max(float(m.max()) for m in tr.text_image.values())  # any single layer and t: an average never exceeds it
    shares = text_image_share_matrix(tr, layers=layers, steps=t)  # [N steps, N regions]
    setting = f"SRC on (α = {alpha:g})" if on else "SRC off"
    panels.show_figures(
        _canvases_figure(on_out, off_out, alpha, on, labels, on_out.settings.get("seed")),
        text_image_figure(tr, layers=layers, t=t, vmax=top),
        _share_matrix_figure(
            shares, f"{setting}: where each step's text is read\n(share of its attention mass per region)"
        ),
    )
