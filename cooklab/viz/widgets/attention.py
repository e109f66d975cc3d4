"""An explorer of a trace's attention maps: Recipe Diffusion's frames.

    attention_explorer(tr)    # reference share, self-attention of one query, cross-attention

It takes a ``cooklab.Trace`` recorded with the matching capture and draws the figures of
``cooklab.viz.recipe_diffusion``; ipywidgets is imported inside the function. CookAnything's
text->canvas attention is explored in ``text_attention.py`` (``text_image_explorer``).
"""

from __future__ import annotations

from ..common import short_layer_name
from ..recipe_diffusion import SPECIAL_TOKENS, cross_attention_figure, reference_share_figure, self_attention_figure
from . import panels

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


def _draw_attention(trace, c: dict) -> None:
    """The chosen view's figure for the controls' values ``c``."""
    table, f = c["view"].value, c["frame"].value
    layer, step = c["layer"].value, c["step"].value
    layers = None if layer == panels.ALL else layer
    steps = None if step == panels.ALL else [step]
    if table == "reference_share":
        fig = reference_share_figure(trace, f, layers=layers, steps=steps)
    elif table == "self_attention":  # one colour scale for every denoising step of this query and layer
        query = (c["row"].value, c["col"].value)
        top = max(float(trace.self_attention_map(f, layer, s, query).max()) for s in trace.steps(f, table))
        fig = self_attention_figure(trace, f, layer, step, query, vmax=top)
    else:
        token = c["token"].value
        fig = cross_attention_figure(
            trace, f, tokens=None if token == panels.ALL else [token], layers=layers, steps=steps
        )
    panels.show_figures(fig)


def attention_explorer(trace):
    """Browse a trace's attention maps: reference share, self-attention of one query, cross-attention.

    Controls: ``view``, ``frame`` (the recipe step), ``layer`` and ``step`` (the denoising
    step; "all" averages where the view allows it; the self-attention view keeps one colour
    scale over the denoising steps of its query and layer), ``row``/``col`` (the query cell,
    self-attention view) and ``token`` (cross-attention view; "all words" shows one panel per
    word).
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

    # start on the first frame that has a reference (frame 0 never does)
    first = _frames_of(trace, views[0][1])
    c["frame"].options = [(f"step {f + 1}", f) for f in first]
    c["frame"].value = next((f for f in first if trace.frames[f].kv_reference is not None), first[0])

    def draw():
        _draw_attention(trace, c)

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
    for key in ("layer", "step", "row", "col", "token"):
        c[key].observe(on_value, names="value")
    on_structure(None)
    rows = [[c["view"], c["frame"], c["layer"]], [c["step"], c["token"]], [c["row"], c["col"]]]
    return panels.panel(widgets, rows, out, c)
