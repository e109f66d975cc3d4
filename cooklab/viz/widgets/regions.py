"""Explorers of CookAnything's canvas regions: who attends to whom (the SRC mask) and where each region sits
(Flexible RoPE).

    region_mask_explorer(4)                    # the SRC mask, groups and tokens, for a toy layout
    region_mask_explorer(out)                  # the layout of a CookAnything output
    rope_explorer(pipe.transformer.pos_embed)  # Flexible RoPE vs global ids

They draw the figures of ``cooklab.viz.cookanything``; ipywidgets is imported inside the
functions, and ``cooklab.cookanything`` (which imports diffusers) on the first call.
"""

from __future__ import annotations

from ..common import new_subplots
from ..cookanything import group_mask_figure, layout_of, rope_ids_figure, rotary_figure, token_mask_figure
from . import panels

__all__ = ["region_mask_explorer", "rope_explorer"]


def _region_controls(widgets, image_attention: str, n: int, step_text_len: int, region_side: int, sizes: bool):
    """The mask explorer's controls: ``image_attention`` and the toy layout's three sizes (hidden unless ``sizes``)."""
    wide = {"description_width": "initial"}
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
    return dict(image_attention=mode, n=n, step_text_len=length, region_side=side)


def region_mask_explorer(
    layout_or_n=4, step_text_len: int = 8, region_side: int = 3, image_attention: str = "region", max_pixels: int = 480
):
    """The SRC mask, at group level (2N x 2N) and at token level, with switches.

    layout_or_n: a ``RegionLayout`` (or an output/trace holding one) to show as it is, or a
    number of steps N for a toy layout whose sizes can be changed: ``n`` (steps),
    ``step_text_len`` (L, text tokens per step) and ``region_side`` (a region of side x
    side image tokens). Controls: ``image_attention`` ("region", the paper, or "global") and
    one checkbox per region (``region_1`` ...): unticked regions are drawn in grey, so one
    step's text and image can be followed through the mask.
    """
    import ipywidgets as widgets

    # here, not at the top: cooklab.cookanything imports diffusers
    from ...cookanything.regional import RegionLayout

    fixed = None if isinstance(layout_or_n, int) else layout_of(layout_or_n)
    n0 = fixed.n_regions if fixed is not None else int(layout_or_n)
    controls = _region_controls(widgets, image_attention, n0, step_text_len, region_side, sizes=fixed is None)
    mode, n, length, side = (controls[k] for k in ("image_attention", "n", "step_text_len", "region_side"))
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
        info.value = (
            f"regional branch: {lay.n_regions} × ({lay.step_text_len} text + {lay.region_tokens} image) = "
            f"{lay.n_regions * (lay.step_text_len + lay.region_tokens)} tokens; the whole-description text "
            f"({lay.base_text_len} tokens) runs in the base branch with full attention."
        )
        fig, axes = new_subplots(1, 2, figsize=(9.5, 4.6), width_ratios=[1, 1.15], layout="constrained")
        group_mask_figure(lay.n_regions, image_attention=mode.value, ax=axes[0], annotate=lay.n_regions <= 6)
        token_mask_figure(lay, image_attention=mode.value, highlight=highlight, ax=axes[1], max_pixels=max_pixels)
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

    mode.observe(on_change, names="value")
    length.observe(on_change, names="value")
    side.observe(on_change, names="value")
    n.observe(on_size, names="value")
    on_size(None)
    return panels.panel(widgets, [[mode], [n, length, side], [checks], [info]], out, controls)


_ROPE_KINDS = (("flexible", (True, False)), ("flexible + step axis", (True, True)), ("global", (False, False)))


def rope_explorer(pos_embed, n_regions: int = 10, rows: int = 4, cols: int = 4):
    """Flexible RoPE vs global ids: the canvas's position ids and the rotation of two regions.

    pos_embed: the transformer's ``FluxPosEmbed`` (``pipe.transformer.pos_embed``); the ids
    are built here with ``canvas_image_ids(n_regions, rows, cols, ...)`` (``rows x cols``:
    the packed token grid of one region). Controls: ``ids`` ("flexible", "flexible + step
    axis", "global"), ``region_a`` and ``region_b`` (1-based) whose rotary cos are compared.
    """
    import ipywidgets as widgets

    # here, not at the top: cooklab.cookanything imports diffusers
    from ...cookanything.flexible_rope import canvas_image_ids
    from ...cookanything.regional import RegionLayout

    layout = RegionLayout(n_regions, rows, cols, 1, 1)
    wide = {"description_width": "initial"}
    kind = widgets.ToggleButtons(options=[name for name, _ in _ROPE_KINDS], description="ids", style=wide)
    a = widgets.IntSlider(1, 1, n_regions, description="region a", continuous_update=False, style=wide)
    b = widgets.IntSlider(n_regions, 1, n_regions, description="region b", continuous_update=False, style=wide)
    out = widgets.Output()

    def draw():
        flexible, step_axis = dict(_ROPE_KINDS)[kind.value]
        ids = canvas_image_ids(n_regions, rows, cols, flexible=flexible, step_axis=step_axis)
        freqs = pos_embed(ids)  # FluxPosEmbed holds no weights: it computes on the ids' device (the CPU here)
        panels.show_figures(
            rope_ids_figure({kind.value: ids}, layout, panel_height=3.2),  # both finished, then both displayed
            rotary_figure({kind.value: freqs}, layout, regions=(a.value - 1, b.value - 1)),
        )

    for w in (kind, a, b):
        w.observe(lambda _: panels.redraw(out, draw), names="value")
    panels.redraw(out, draw)
    return panels.panel(widgets, [[kind], [a, b]], out, dict(ids=kind, region_a=a, region_b=b))
