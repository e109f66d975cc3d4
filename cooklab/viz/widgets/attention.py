"""An explorer of a trace's attention maps: Recipe Diffusion's frames.

    attention_explorer(tr)    # reference share, self-attention of one query, cross-attention
    attention_explorer(tr, compare=independent, measure=oracle_consistency)   # K/V sharing on vs off

It takes a ``cooklab.Trace`` recorded with the matching capture and draws the figures of
``cooklab.viz.recipe_diffusion``; ipywidgets is imported inside the function. CookAnything's
text->canvas attention is explored in ``text_attention.py`` (``text_image_explorer``). With
``compare`` (the same recipe and seed generated without K/V sharing), ``attention_explorer``
switches K/V sharing on and off: pictures of both runs first, then the attention view of the run
shown. The reference share is drawn as ``s - 0.5`` on a diverging scale fitted to the map: 0.5 is
"the reference weighs as much as the frame itself", and the toy model's shares stay within a few
hundredths of it.
"""

from __future__ import annotations

from ..common import TITLE_PT, draw_image, draw_note, new_subplots, short_layer_name
from ..recipe_diffusion import SPECIAL_TOKENS, cross_attention_figure, reference_share_figure, self_attention_figure
from . import panels
from .frames import comparison_title, runs_figure
from .measures import measure_label

__all__ = ["attention_explorer"]

_VIEWS = (
    ("reference share", "reference_share"),
    ("self-attention", "self_attention"),
    ("cross-attention", "cross_attention"),
)


def _attention_controls(widgets, views) -> dict:
    """The explorer's controls: view (one of ``views``), frame (recipe step), layer, step (denoising),
    row/col (query cell) and token."""
    wide = {"description_width": "initial"}
    return dict(
        view=widgets.Dropdown(options=views, description="view", style=wide),
        frame=widgets.Dropdown(description="recipe step", style=wide),
        layer=widgets.Dropdown(description="layer", style=wide, layout=widgets.Layout(width="380px")),
        step=widgets.SelectionSlider(
            options=[("all", panels.ALL)], description="denoising step", continuous_update=False, style=wide
        ),
        row=widgets.IntSlider(0, 0, 0, description="query row", continuous_update=False, style=wide),
        col=widgets.IntSlider(0, 0, 0, description="query col", continuous_update=False, style=wide),
        token=widgets.Dropdown(description="token", style=wide),
    )


def _frames_of(trace, table: str) -> list[int]:
    """The recipe steps (frames) a trace's attention table holds maps of."""
    return sorted({k[0] for k in getattr(trace, table)})


def _refresh_attention_options(trace, c: dict) -> None:
    """Offer the frames, layers, denoising steps, query cells and tokens of the chosen view and frame.

    c: the controls (``_attention_controls``); the view's own controls are shown, the others hidden.
    """
    table = c["view"].value
    panels.set_options(c["frame"], [(f"step {f + 1}", f) for f in _frames_of(trace, table)])
    f = c["frame"].value
    names = [n for n in trace.layers(table) if any(k[0] == f and k[1] == n for k in getattr(trace, table))]
    steps = trace.steps(f, table)
    averaged = table != "self_attention"  # self-attention of one query is shown per layer and step
    panels.set_options(
        c["layer"], ([("all layers", panels.ALL)] if averaged else []) + [(short_layer_name(n), n) for n in names]
    )
    panels.set_options(c["step"], ([("all", panels.ALL)] if averaged else []) + [(str(s), s) for s in steps])
    if table == "self_attention":
        gh, gw = next(v for k, v in trace.self_attention.items() if k[0] == f).shape[:2]
        c["row"].max, c["col"].max = gh - 1, gw - 1
    tokens = trace.frames[f].tokens
    kept = trace.token_rows.get(f, ())  # all tokens, or those of the trace's words=
    words = [
        (f"{i}: {t.replace('</w>', '')}", i) for i, t in enumerate(tokens) if t not in SPECIAL_TOKENS and i in kept
    ]
    panels.set_options(c["token"], [("all words", panels.ALL), *words])
    for w, shown in (
        (c["row"], table == "self_attention"),
        (c["col"], table == "self_attention"),
        (c["token"], table == "cross_attention"),
    ):
        w.layout.display = None if shown else "none"


def _attention_figure(trace, c: dict):
    """The chosen view's figure of ``trace`` for the controls' values ``c`` (reference share as s - 0.5)."""
    table, f = c["view"].value, c["frame"].value
    layer, step = c["layer"].value, c["step"].value
    layers = None if layer == panels.ALL else layer
    steps = None if step == panels.ALL else [step]
    if table == "reference_share":
        return reference_share_figure(trace, f, layers=layers, steps=steps, centre=0.5)
    if table == "self_attention":  # one colour scale for every denoising step of this query and layer
        query = (c["row"].value, c["col"].value)
        top = max(float(trace.self_attention_map(f, layer, s, query).max()) for s in trace.steps(f, table))
        return self_attention_figure(trace, f, layer, step, query, vmax=top)
    token = c["token"].value
    return cross_attention_figure(
        trace, f, tokens=None if token == panels.ALL else [token], layers=layers, steps=steps
    )


def _off_figure(compare, compare_trace, c: dict, name: str):
    """The attention view with the mechanism off: ``compare_trace``'s maps, or a panel saying why there are none.

    With K/V sharing off a frame attends only to its own keys: there is no reference share to show.
    """
    f = c["frame"].value
    if c["view"].value != "reference_share" and compare_trace is not None:
        return _attention_figure(compare_trace, c)
    fig, axes = new_subplots(1, 2, figsize=(7.2, 3.3), layout="constrained")
    draw_image(axes[0], compare.images[f], title=f"{name}: recipe step {f + 1}")
    if c["view"].value == "reference_share":
        why = "K/V sharing off:\nthe frame attends only to its own keys,\nso there is no reference share"
    else:
        why = "no trace of this run:\npass compare_trace= (a trace of the\ncompare call) to see its attention"
    draw_note(axes[1], why)
    fig.suptitle(f"{name}: nothing attended to another frame", fontsize=TITLE_PT)
    return fig


def attention_explorer(trace, compare=None, *, measure=None, compare_trace=None, labels=None):
    """Browse a trace's attention maps: reference share, self-attention of one query, cross-attention.

    Controls: ``view``, ``frame`` (the recipe step), ``layer`` and ``step`` (the denoising
    step; "all" averages where the view allows it; the self-attention view keeps one colour
    scale over the denoising steps of its query and layer), ``row``/``col`` (the query cell,
    self-attention view) and ``token`` (cross-attention view; "all words" shows one panel per
    word). The reference share is drawn as ``s - 0.5`` on a diverging scale fitted to the map.

    compare: the same recipe generated with the same seeds and K/V sharing off (a
    ``RecipeDiffusionOutput``, e.g. ``variant="independent"`` against ``sequential=False,
    kv_sharing=True``). Then the toggle ``box.controls["mechanism"]`` switches K/V sharing on
    (the trace's run) and off (``compare``): the first figure shows both runs' pictures, the shown
    one at full strength, titled with ``measure`` (pictures -> label, e.g. ``oracle_consistency``;
    None: none) of both; the second the view of the shown run. With sharing off the reference
    share view says there is none; the other views need ``compare_trace`` (a trace of the compare
    call). labels: the toggle's (on, off) names (default "K/V sharing on", "K/V sharing off").
    """
    import ipywidgets as widgets

    views = [(label, table) for label, table in _VIEWS if getattr(trace, table)]
    if not views:
        raise ValueError(
            "the trace holds no attention maps: trace with capture including 'reference_share', "
            "'self_attention' or 'cross_attention'."
        )
    c = _attention_controls(widgets, views)
    out = widgets.Output()
    busy = [False]  # True while options are being replaced: one redraw afterwards, not one per change
    pictures = _pictures(trace, compare, measure, labels, c, widgets)

    # start on the first frame that has a reference (frame 0 never does)
    first = _frames_of(trace, views[0][1])
    c["frame"].options = [(f"step {f + 1}", f) for f in first]
    c["frame"].value = next((f for f in first if trace.frames[f].kv_reference is not None), first[0])

    def draw():
        if pictures is None:
            panels.show_figures(_attention_figure(trace, c))
            return
        on = c["mechanism"].value
        view = _attention_figure(trace, c) if on else _off_figure(compare, compare_trace, c, pictures["names"][1])
        panels.show_figures(pictures["figure"](on, c["frame"].value), view)

    def on_structure(_):
        if busy[0]:  # the frame list changed along with the view
            return
        busy[0] = True
        try:
            _refresh_attention_options(trace, c)
        finally:
            busy[0] = False
        panels.redraw(out, draw)

    def on_value(_):
        if not busy[0]:
            panels.redraw(out, draw)

    c["view"].observe(on_structure, names="value")
    c["frame"].observe(on_structure, names="value")
    for key in ("layer", "step", "row", "col", "token", "mechanism"):
        if key in c:
            c[key].observe(on_value, names="value")
    on_structure(None)
    rows = [[c["view"], c["frame"], c["layer"]], [c["step"], c["token"]], [c["row"], c["col"]]]
    return panels.panel(widgets, ([[c["mechanism"]]] if "mechanism" in c else []) + rows, out, c)


def _pictures(trace, compare, measure, labels, c: dict, widgets) -> dict | None:
    """With a ``compare`` run: add the mechanism toggle to ``c`` and return the pictures of both runs.

    Returns None without ``compare``, else ``{"names": (on, off), "figure": figure(on, frame)}``, where
    ``figure`` draws both runs' frames (the shown run at full strength, ``frame`` outlined) titled
    with both runs' measures, computed once here.
    """
    if compare is None:
        return None
    on_images = [trace.frames[f].image for f in sorted(trace.frames)]  # the traced run, recipe order
    if len(on_images) != len(compare.images):
        raise ValueError(
            f"compare has {len(compare.images)} frames and the trace {len(on_images)}: generate compare from the "
            "same recipe as the traced call."
        )
    names = tuple(labels) if labels is not None else ("K/V sharing on", "K/V sharing off")
    measured = [measure_label(measure, on_images), measure_label(measure, compare.images)]
    rows = [(f"{n}\n{m}" if m else n, images) for n, m, images in zip(names, measured, (on_images, compare.images))]
    c["mechanism"] = panels.mechanism_toggle(widgets, "show", on=names[0], off=names[1])
    seed = compare.settings.get("seed")

    def figure(on: bool, frame: int):
        shown = 0 if on else 1
        return runs_figure(rows, shown, frame, title=comparison_title(names, measured, shown, seed))

    return {"names": names, "figure": figure}
