"""Explorers of CookAnything's canvas regions: who attends to whom (the SRC mask) and where each region sits
(Flexible RoPE).

    region_mask_explorer(4)                    # the SRC mask on and off, groups and tokens, for a toy layout
    region_mask_explorer(out)                  # the layout of a CookAnything output
    rope_explorer(pipe.transformer.pos_embed, out_flexible, out_global, measure=oracle_consistency)

They draw the figures of ``cooklab.viz.cookanything``; ipywidgets is imported inside the
functions, and ``cooklab.cookanything`` (which imports diffusers) on the first call.
"""

from __future__ import annotations

from matplotlib.patches import Rectangle

from ..common import SMALL_PT, TITLE_PT, draw_image, new_subplots
from ..cookanything import group_mask_figure, ids_grid, ids_panel, layout_of, rotary_figure, token_mask_figure
from . import panels
from .measures import measure_label

__all__ = ["region_mask_explorer", "rope_explorer"]


def _region_controls(widgets, image_attention: str, n: int, step_text_len: int, region_side: int, sizes: bool):
    """The mask explorer's controls: SRC on/off, ``image_attention`` and the toy layout's three sizes (hidden
    unless ``sizes``)."""
    wide = {"description_width": "initial"}
    src = panels.mechanism_toggle(widgets, "Step-wise Regional Control", "SRC mask on", "SRC off (full attention)")
    mode = widgets.ToggleButtons(
        options=[("region (paper)", "region"), ("global images", "global")],
        value=image_attention,
        description="image_attention",
        style=wide,
    )
    n = widgets.IntSlider(n, 1, 12, description="steps N", continuous_update=False, style=wide)
    length = widgets.IntSlider(step_text_len, 1, 64, description="text tokens L", continuous_update=False, style=wide)
    side = widgets.IntSlider(region_side, 1, 16, description="region side", continuous_update=False, style=wide)
    for w in (n, length, side):
        w.layout.display = "none" if not sizes else None
    return dict(mechanism=src, image_attention=mode, n=n, step_text_len=length, region_side=side)


def region_mask_explorer(
    layout_or_n=4, step_text_len: int = 8, region_side: int = 3, image_attention: str = "region", max_pixels: int = 480
):
    """The SRC mask, at group level (2N x 2N) and at token level, with switches.

    layout_or_n: a ``RegionLayout`` (or an output/trace holding one) to show as it is, or a
    number of steps N for a toy layout whose sizes can be changed: ``n`` (steps),
    ``step_text_len`` (L, text tokens per step) and ``region_side`` (a region of side x
    side image tokens). Controls: ``mechanism`` (SRC on; off: ``regional=False``'s full
    attention over the same tokens, the pairs SRC removes drawn in dark grey), ``image_attention``
    ("region", the paper, or "global"; SRC on only) and one checkbox per region
    (``region_1`` ...): unticked regions are drawn in grey, so one step's text and image can
    be followed through the mask.
    """
    import ipywidgets as widgets

    # here, not at the top: cooklab.cookanything imports diffusers
    from ...cookanything.regional import RegionLayout

    fixed = None if isinstance(layout_or_n, int) else layout_of(layout_or_n)
    n0 = fixed.n_regions if fixed is not None else int(layout_or_n)
    controls = _region_controls(widgets, image_attention, n0, step_text_len, region_side, sizes=fixed is None)
    src, mode, n, length, side = (
        controls[k] for k in ("mechanism", "image_attention", "n", "step_text_len", "region_side")
    )
    checks = widgets.HBox()
    info = widgets.HTML()
    out = widgets.Output()
    busy = [False]

    def layout():
        if fixed is not None:
            return fixed
        return RegionLayout(n.value, side.value, side.value, length.value, length.value)

    def rebuild_checks():
        for k in range(20):
            controls.pop(f"region_{k + 1}", None)
        boxes = []
        for k in range(n.value):
            box = widgets.Checkbox(
                value=True, description=f"region {k + 1}", indent=False, layout=widgets.Layout(width="90px")
            )
            box.observe(on_change, names="value")
            controls[f"region_{k + 1}"] = box
            boxes.append(box)
        checks.children = boxes

    def draw():
        lay = layout()
        chosen = [k for k in range(lay.n_regions) if controls[f"region_{k + 1}"].value]
        highlight = None if len(chosen) == lay.n_regions else chosen
        tokens = f"{lay.n_regions} × ({lay.step_text_len} text + {lay.region_tokens} image) = "
        tokens += f"{lay.n_regions * (lay.step_text_len + lay.region_tokens)} tokens"
        info.value = (
            f"regional branch: {tokens}; the whole-description text ({lay.base_text_len} tokens) runs in the base "
            "branch with full attention."
            if src.value
            else f"SRC off (regional=False): one full attention over the step texts and all regions, {tokens}; "
            "no base branch. Every image token can read every step's words."
        )
        fig, axes = new_subplots(1, 2, figsize=(9.5, 4.6), width_ratios=[1, 1.15], layout="constrained")
        group_mask_figure(
            lay.n_regions, image_attention=mode.value, ax=axes[0], annotate=lay.n_regions <= 6, src=src.value
        )
        token_mask_figure(
            lay, image_attention=mode.value, highlight=highlight, ax=axes[1], max_pixels=max_pixels, src=src.value
        )
        panels.show_figures(fig)

    def on_change(_):
        if not busy[0]:
            panels.redraw(out, draw)

    def on_size(_):
        busy[0] = True
        try:
            rebuild_checks()
        finally:
            busy[0] = False
        panels.redraw(out, draw)

    src.observe(on_change, names="value")
    mode.observe(on_change, names="value")
    length.observe(on_change, names="value")
    side.observe(on_change, names="value")
    n.observe(on_size, names="value")
    on_size(None)
    return panels.panel(widgets, [[src], [mode], [n, length, side], [checks], [info]], out, controls)


OUTLINE = "#ff7f0e"  # the chosen region, outlined on the canvases and the ids


def _rope_runs(flexible_out, global_out) -> dict:
    """``{"flexible": output, "global": output}``, checked: the ids each was made with, the same seed and layout."""
    runs = {"flexible": flexible_out, "global": global_out}
    for (name, out), flexible in zip(runs.items(), (True, False), strict=True):
        if out.settings.get("flexible_rope", flexible) != flexible:
            raise ValueError(f"{name}_out: pass the output of pipe(recipe, flexible_rope={flexible}, ...).")
    seeds = {out.settings.get("seed") for out in runs.values()}
    if len(seeds) > 1 or flexible_out.layout != global_out.layout:
        raise ValueError(
            f"flexible_out and global_out differ in seed ({sorted(seeds, key=str)}) or layout: make both with the "
            "same recipe, seed and size, only flexible_rope changed."
        )
    return runs


def _rope_canvas_figure(runs: dict, ids: dict, shown: str, labels: dict, region: int):
    """Both canvases (regions stacked as the model sees them), the shown one framed, beside its row and column ids.

    runs / ids / labels: ``{"flexible" | "global": output / [N P, 3] ids / measure label}``; shown: the
    key the toggle picks; region: the region (0-based) outlined everywhere.
    """
    lay = runs[shown].layout
    n, seed = lay.n_regions, runs[shown].settings.get("seed", 0)
    fig, axes = new_subplots(
        1, 4, figsize=(10.5, 1.0 + min(1.6 * n, 7.0)), width_ratios=[1, 1, 1.25, 1.25], layout="constrained"
    )
    for ax, (name, out) in zip(axes[:2], runs.items()):
        draw_image(ax, out.canvas)
        height = ax.get_ylim()[0] + 0.5  # canvas pixels, regions stacked top to bottom
        for k in range(1, n):
            ax.axhline(k * height / n - 0.5, color="white", lw=0.8)
        ax.add_patch(
            Rectangle(
                (0, region * height / n - 0.5), ax.get_xlim()[1], height / n, fill=False, ec=OUTLINE, lw=2.5, ls="--"
            )
        )
        ax.set_axis_on()
        ax.set_xticks([])
        ax.set_yticks([(k + 0.5) * height / n for k in range(n)], [f"R{k + 1}" for k in range(n)], fontsize=SMALL_PT)
        for spine in ax.spines.values():
            spine.set(color="#d62728" if name == shown else "0.8", linewidth=4 if name == shown else 0.8)
        on = "Flexible RoPE on" if name == "flexible" else "Flexible RoPE off"
        ax.set_title(
            f"{name} ids ({on})\n{labels[name]}", fontsize=SMALL_PT, fontweight="bold" if name == shown else None
        )
    grid = ids_grid(ids[shown], lay)  # [N rows, cols, 3]
    for ax, axis, name, top in ((axes[2], 1, "row id", n * lay.rows - 1), (axes[3], 2, "column id", lay.cols - 1)):
        ids_panel(ax, grid[..., axis], lay, f"{shown} ids, {name}", annotate=grid.shape[0] <= 40, vmax=top)
        ax.add_patch(
            Rectangle((-0.5, region * lay.rows - 0.5), lay.cols, lay.rows, fill=False, ec=OUTLINE, lw=2.5, ls="--")
        )
    state = "on (flexible ids)" if shown == "flexible" else "off (global ids)"
    other = "global" if shown == "flexible" else "flexible"
    fig.suptitle(
        f"Flexible RoPE {state}: {labels[shown] or 'no measure'} ({other} ids: {labels[other] or 'no measure'}), "
        f"seed {seed}; region {region + 1} outlined",
        fontsize=TITLE_PT,
    )
    return fig


def rope_explorer(pos_embed, flexible_out, global_out, measure=None):
    """Flexible RoPE on and off on the same seed: both canvases, the shown one's position ids, two regions' rotations.

    pos_embed: the transformer's ``FluxPosEmbed`` (``pipe.transformer.pos_embed``); flexible_out /
    global_out: the outputs of ``pipe(recipe, flexible_rope=True / False, ...)``, same recipe, seed
    and size. measure: pictures -> title label (e.g. ``oracle_consistency``) or None. The ids are
    rebuilt with ``canvas_image_ids`` from each output's layout and settings. Controls:
    ``mechanism`` (Flexible RoPE on / off: which canvas is framed and whose ids are drawn) and
    ``region`` (1-based): outlined on the canvases and ids, and compared with region 1 in the
    rotary figure, which shows both id sets (flexible: no difference; global: region n's row
    channels turned further).
    """
    import ipywidgets as widgets

    # here, not at the top: cooklab.cookanything imports diffusers
    from ...cookanything.flexible_rope import canvas_image_ids

    runs = _rope_runs(flexible_out, global_out)
    lay = flexible_out.layout
    ids = {
        name: canvas_image_ids(
            lay.n_regions,
            lay.rows,
            lay.cols,
            flexible=name == "flexible",
            step_axis=out.settings.get("rope_step_axis", False),
        )
        for name, out in runs.items()
    }
    freqs = {name: pos_embed(x) for name, x in ids.items()}  # FluxPosEmbed holds no weights: it runs on the CPU here
    labels = {name: measure_label(measure, out.images) for name, out in runs.items()}
    wide = {"description_width": "initial"}
    c = dict(
        mechanism=panels.mechanism_toggle(widgets, "Flexible RoPE", "on (flexible ids)", "off (global ids)"),
        region=widgets.IntSlider(
            lay.n_regions, 1, lay.n_regions, description="region (vs region 1)", continuous_update=False, style=wide
        ),
    )
    out = widgets.Output()

    def draw():
        shown, region = ("flexible" if c["mechanism"].value else "global"), c["region"].value - 1
        panels.show_figures(
            _rope_canvas_figure(runs, ids, shown, labels, region),
            rotary_figure(freqs, lay, regions=(0, region)),  # both id sets: flexible's difference is 0 by design
        )

    for w in c.values():
        w.observe(lambda _: panels.redraw(out, draw), names="value")
    panels.redraw(out, draw)
    return panels.panel(widgets, [[c["mechanism"]], [c["region"]]], out, c)
