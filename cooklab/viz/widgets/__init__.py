"""ipywidgets front ends for the figures in ``cooklab.viz``.

    from cooklab.viz.widgets import attention_explorer, noise_explorer, frame_scrubber
    attention_explorer(tr)                     # browse a trace's attention maps
    noise_explorer(None, mask, pipe.scheduler, 20)   # Eq. 5-7 with sliders
    frame_scrubber(out)                        # the frames of a generation, one at a time

    region_mask_explorer(4)                    # CookAnything: the SRC mask, groups and tokens
    text_image_explorer(tr)                    # where the canvas attends to each step's text
    lambda_explorer(pipe, recipe, height=64, width=64)   # CSCC's lambda with a slider
    rope_explorer(pipe.transformer.pos_embed)  # Flexible RoPE vs global ids

Each function returns a ``VBox`` (the last expression of a cell displays it). The
controls are also reachable as ``box.controls[name]``, so code can drive them
(``box.controls["step"].value = 5``). Every change redraws the figures into an ``Output``
widget as PNG images. The figures are plain ``matplotlib.figure.Figure`` objects (built under
``detached_figures()``, no pyplot state) and all of them are rendered before any is displayed:
a callback may run on a kernel subshell (JupyterLab 4.6's default ``commsOverSubshells``) while
matplotlib-inline's end-of-cell flush closes pyplot's figures, which used to blank an
explorer's second figure and send it to JupyterLab's Log Console. ipywidgets is imported
inside the functions, so the figure modules work without it.
"""

from __future__ import annotations

import html

import numpy as np
import torch

from ..grounding import to_mask_tensor
from ..instrument.trace import trace as make_trace
from ..recipe_diffusion.noise_levels import NoiseLevels
from ..recipe_diffusion.region_noise import region_aware_noise, resize_mask
from .common import (
    LABEL_PT,
    detached_figures,
    figure_png,
    image_array,
    new_subplots,
    short_layer_name,
    shorten,
    to_array,
)
from .cookanything import (
    canvas_of,
    flux_layer_name,
    group_mask_figure,
    layout_of,
    rope_ids_figure,
    rotary_figure,
    text_image_figure,
    token_mask_figure,
)
from .cscc import cscc_lambda_figure
from .recipe_diffusion import (
    SPECIAL_TOKENS,
    cross_attention_figure,
    noise_map_figure,
    reference_share_figure,
    self_attention_figure,
)
from .storyboard import frame_note

__all__ = [
    "attention_explorer",
    "detached_figures",
    "frame_scrubber",
    "lambda_explorer",
    "noise_explorer",
    "region_mask_explorer",
    "rope_explorer",
    "text_image_explorer",
]

ALL = "all"  # option value meaning "average over all" (ipywidgets selections cannot hold None)
_VIEWS = (
    ("reference share", "reference_share"),
    ("self-attention", "self_attention"),
    ("cross-attention", "cross_attention"),
)


def _show(*figs) -> None:
    """Display finished figures in the current output (e.g. inside ``with out:``) as PNG images.

    Every figure is rendered before the first is displayed, so the output never holds half of a
    redraw; the figures are plain ``Figure`` objects (``_redraw`` builds them detached), which no
    pyplot flush can close or show elsewhere.
    """
    from IPython.display import Image, display

    pngs = [figure_png(fig) for fig in figs]
    for png in pngs:
        display(Image(data=png))


def _redraw(out, draw) -> None:
    """Clear ``out`` and run ``draw()`` inside it, with detached figures; errors are shown there instead of lost in a callback."""
    with out:
        out.clear_output(wait=True)
        try:
            with detached_figures():
                draw()
        except (KeyError, ValueError) as err:
            print(f"nothing to show: {err}")


def _panel(widgets, rows, out, controls: dict):
    box = widgets.VBox([*(widgets.HBox(r) for r in rows), out])
    box.controls = controls
    return box


def _set_options(dropdown, options) -> None:
    """Replace a selection widget's options, keeping the current value when it is still offered (else the first)."""
    old = dropdown.value
    dropdown.options = options
    values = [v for _, v in options]
    dropdown.value = old if old in values else values[0]


def attention_explorer(trace):
    """Browse a trace's attention maps: reference share, self-attention of one query, cross-attention.

    Controls: ``view``, ``frame`` (the recipe step), ``layer`` and ``step`` (the denoising
    step; "all" averages where the view allows it; the self-attention view keeps one colour
    scale over the denoising steps of its query and layer), ``row``/``col`` (the query cell, self-attention view) and ``token``
    (cross-attention view; "all words" shows one panel per word).
    """
    import ipywidgets as widgets

    views = [(label, table) for label, table in _VIEWS if getattr(trace, table)]
    if not views:
        raise ValueError(
            "the trace holds no attention maps: trace with capture including 'reference_share', "
            "'self_attention' or 'cross_attention'."
        )
    wide = {"description_width": "initial"}
    view = widgets.Dropdown(options=views, description="view", style=wide)
    frame = widgets.Dropdown(description="recipe step", style=wide)
    layer = widgets.Dropdown(description="layer", style=wide, layout=widgets.Layout(width="380px"))
    step = widgets.SelectionSlider(
        options=[("all", ALL)], description="denoising step", continuous_update=False, style=wide
    )
    row = widgets.IntSlider(0, 0, 0, description="query row", continuous_update=False, style=wide)
    col = widgets.IntSlider(0, 0, 0, description="query col", continuous_update=False, style=wide)
    token = widgets.Dropdown(description="token", style=wide)
    out = widgets.Output()
    busy = [False]  # True while options are being replaced: one redraw afterwards, not one per change

    def frames_of(table):
        return sorted({k[0] for k in getattr(trace, table)})

    # start on the first frame that has a reference (frame 0 never does)
    first = frames_of(views[0][1])
    frame.options = [(f"step {f + 1}", f) for f in first]
    frame.value = next((f for f in first if trace.frames[f].kv_reference is not None), first[0])

    def refresh_options():
        table = view.value
        _set_options(frame, [(f"step {f + 1}", f) for f in frames_of(table)])
        f = frame.value
        names = [n for n in trace.layers(table) if any(k[0] == f and k[1] == n for k in getattr(trace, table))]
        steps = trace.steps(f, table)
        averaged = table != "self_attention"  # self-attention of one query is shown per layer and step
        _set_options(layer, ([("all layers", ALL)] if averaged else []) + [(short_layer_name(n), n) for n in names])
        _set_options(step, ([("all", ALL)] if averaged else []) + [(str(s), s) for s in steps])
        if table == "self_attention":
            gh, gw = next(v for k, v in trace.self_attention.items() if k[0] == f).shape[:2]
            row.max, col.max = gh - 1, gw - 1
        tokens = trace.frames[f].tokens
        words = [(f"{i}: {t.replace('</w>', '')}", i) for i, t in enumerate(tokens) if t not in SPECIAL_TOKENS]
        _set_options(token, [("all words", ALL), *words])
        for w, shown in (
            (row, table == "self_attention"),
            (col, table == "self_attention"),
            (token, table == "cross_attention"),
        ):
            w.layout.display = None if shown else "none"

    def draw():
        table, f = view.value, frame.value
        layers = None if layer.value == ALL else layer.value
        steps = None if step.value == ALL else [step.value]
        if table == "reference_share":
            fig = reference_share_figure(trace, f, layers=layers, steps=steps)
        elif table == "self_attention":  # one colour scale for every denoising step of this query and layer
            query = (row.value, col.value)
            top = max(float(trace.self_attention_map(f, layer.value, s, query).max()) for s in trace.steps(f, table))
            fig = self_attention_figure(trace, f, layer.value, step.value, query, vmax=top)
        else:
            fig = cross_attention_figure(
                trace, f, tokens=None if token.value == ALL else [token.value], layers=layers, steps=steps
            )
        _show(fig)

    def on_structure(_):
        if busy[0]:  # the frame list changed along with the view
            return
        busy[0] = True
        try:
            refresh_options()
        finally:
            busy[0] = False
        _redraw(out, draw)

    def on_value(_):
        if not busy[0]:
            _redraw(out, draw)

    view.observe(on_structure, names="value")
    frame.observe(on_structure, names="value")
    for w in (layer, step, row, col, token):
        w.observe(on_value, names="value")
    on_structure(None)
    controls = dict(view=view, frame=frame, layer=layer, step=step, row=row, col=col, token=token)
    return _panel(widgets, [[view, frame, layer], [step, token], [row, col]], out, controls)


def _toy_latent(latent_hw: tuple[int, int], channels: int = 4) -> torch.Tensor:
    """A smooth stand-in for a reference latent ([1, C, h, w]): a few waves, unit scale."""
    h, w = latent_hw
    y = torch.linspace(-1, 1, h)[:, None]
    x = torch.linspace(-1, 1, w)[None, :]
    waves = [torch.sin(3 * x + k) * torch.cos(2 * y - k) for k in range(channels)]
    return torch.stack(waves)[None]


def noise_explorer(
    reference_latent,
    mask,
    scheduler,
    num_inference_steps: int = 20,
    object_noise: float = 0.9,
    base_noise: float = 0.999,
    seed: int = 0,
):
    """Region-aware noise (Eq. 5-7) with sliders for the two levels and the number of steps.

    reference_latent: ``[1, C, h, w]`` (e.g. ``out.latents[0]``) or None for a smooth toy
    latent on the mask's grid. mask: ``[h, w]`` on the latent grid or an image-sized mask
    (area-resized to the grid). scheduler: any diffusers scheduler; a copy is made from its
    config, so the pipeline's own scheduler is left alone. Shows the timestep index each
    level lands on and warns when both land on the same one (then Eq. 7 is uniform noise).
    """
    import ipywidgets as widgets

    mask = to_mask_tensor(mask)
    latent_hw = tuple(reference_latent.shape[-2:]) if reference_latent is not None else tuple(mask.shape)
    mask = resize_mask(mask, latent_hw)  # [h, w]
    reference = _toy_latent(latent_hw) if reference_latent is None else reference_latent.detach().float().cpu()
    noise = torch.randn(reference.shape, generator=torch.Generator().manual_seed(seed))
    sched = type(scheduler).from_config(scheduler.config)
    sched.set_timesteps(num_inference_steps)
    # fixed colour scales while the sliders move: the signal coefficient is at most 1, sigma at most its value at level 1
    coefficient_max = (max(1.0, NoiseLevels(sched, num_inference_steps).coefficients(1.0)[1]), 1.0)

    slider = dict(
        min=0.0,
        max=1.0,
        step=0.001,
        readout_format=".3f",
        continuous_update=False,
        style={"description_width": "initial"},
    )
    obj = widgets.FloatSlider(value=object_noise, description="object_noise (in mask)", **slider)
    base = widgets.FloatSlider(value=base_noise, description="base_noise (outside)", **slider)
    steps = widgets.IntSlider(
        value=num_inference_steps,
        min=1,
        max=100,
        description="num_inference_steps",
        continuous_update=False,
        style={"description_width": "initial"},
    )
    info = widgets.HTML()
    out = widgets.Output()

    def draw():
        n = steps.value
        sched.set_timesteps(n)
        levels = NoiseLevels(sched, n)
        region = region_aware_noise(reference, noise, mask, obj.value, base.value, levels.add_noise)
        i_obj, i_base = levels.index(obj.value), levels.index(base.value)
        t_obj, t_base = levels.timestep(obj.value), levels.timestep(base.value)
        info.value = _levels_html(obj.value, base.value, n, i_obj, i_base, t_obj, t_base, levels.steps_run(base.value))
        _show(
            noise_map_figure(
                mask=mask,
                sigma_map=region.sigma_map,
                signal_map=region.signal_map,
                noised=region.combined[0],
                object_noise=obj.value,
                base_noise=base.value,
                object_timestep=t_obj,
                base_timestep=t_base,
                title=f"{type(sched).__name__}, N={n}",
                coefficient_max=coefficient_max,
            )
        )

    for w in (obj, base, steps):
        w.observe(lambda _: _redraw(out, draw), names="value")
    _redraw(out, draw)
    return _panel(
        widgets,
        [[obj, base], [steps], [info]],
        out,
        dict(object_noise=obj, base_noise=base, num_inference_steps=steps),
    )


def _levels_html(obj, base, n, i_obj, i_base, t_obj, t_base, base_steps) -> str:
    """The level -> (index, timestep) mapping as a line of HTML, with warnings."""

    def where(level, i, t):
        return f"{level:.3f} → index {i}, t = {t:g}" if t is not None else f"{level:.3f} → no noise (index {i} = end)"

    lines = [
        f"object: {where(obj, i_obj, t_obj)} &nbsp;|&nbsp; base: {where(base, i_base, t_base)} "
        f"&nbsp;|&nbsp; denoising runs {base_steps} of {n} steps from index {i_base}"
    ]
    warn = []
    if i_obj == i_base:
        warn.append(
            f"both levels land on index {i_obj} with N={n}: region-aware noise equals uniform noise here "
            "(use more steps or levels further apart)."
        )
    if obj > base:
        warn.append(
            "object_noise is above base_noise: the container gets more noise than the background (the paper uses object < base)."
        )
    if base_steps == 0:
        warn.append("base_noise runs no denoising step at this N: the pipeline refuses this setting.")
    lines += [f"<span style='color:#b00'>⚠ {html.escape(w)}</span>" for w in warn]
    return "<br>".join(lines)


def _settings_html(info, settings: dict) -> str:
    """A FrameInfo and the call's main settings as a small HTML table."""
    rows = [
        ("text", info.text),
        ("note", frame_note(info)),
        ("seed", info.seed),
        (
            "starts from (latent)",
            _step_or_none(info.reference)
            + (f" ({info.start_from}, {info.reference_latent})" if info.start_from else ""),
        ),
        ("mask / K/V reference", f"{_step_or_none(info.mask_reference)} / {_step_or_none(info.kv_reference)}"),
        ("start index / steps run", f"{info.start_index} / {info.steps_run}"),
        ("start timestep", f"{info.start_timestep:g}"),
        ("base_noise", info.base_noise),
        ("object_noise", info.object_noise),
        ("object timestep", info.object_timestep),
        ("region-aware noise", info.region_aware),
        ("fallback", info.fallback),
    ]
    if info.mask is not None:
        rows.append(
            (
                "mask",
                f"{info.mask.source}, covers {info.mask.area:.1%}"
                + (f", box {info.mask.box}" if info.mask.box else ""),
            )
        )
    if info.kv_fallback_steps:
        rows.append(("K/V read from a neighbouring step", f"{info.kv_fallback_steps} steps"))
    keys = ("num_inference_steps", "guidance_scale", "scheduler", "model")
    rows.append(("call", ", ".join(f"{k}={settings[k]}" for k in keys if k in settings)))
    cells = "".join(
        f"<tr><td style='text-align:left;padding-right:1em'><b>{html.escape(k)}</b></td>"
        f"<td style='text-align:left'>{html.escape(str(v))}</td></tr>"
        for k, v in rows
    )
    return f"<table>{cells}</table>"


def _step_or_none(frame: int | None) -> str:
    return "none" if frame is None else f"step {frame + 1}"


def frame_scrubber(out):
    """Step through a ``RecipeDiffusionOutput``: each frame beside its reference, with its settings."""
    import ipywidgets as widgets

    n = len(out.frames)
    step = widgets.IntSlider(
        value=1,
        min=1,
        max=n,
        description="recipe step",
        continuous_update=False,
        style={"description_width": "initial"},
    )
    table = widgets.HTML()
    view = widgets.Output()

    def draw():
        info = out.frames[step.value - 1]
        table.value = _settings_html(info, out.settings)
        ref = next(
            (r for r in (info.mask_reference, info.kv_reference, info.reference) if r is not None), None
        )  # the reference frame j
        fig, axes = new_subplots(1, 2, figsize=(6, 3.2), layout="constrained")
        axes[0].imshow(out.images[info.index])
        axes[0].set_title(f"recipe step {info.index + 1}", fontsize=LABEL_PT)
        if ref is None:
            axes[1].text(
                0.5,
                0.5,
                "from pure noise:\nno reference",
                ha="center",
                va="center",
                color="0.35",
                fontsize=LABEL_PT,
                transform=axes[1].transAxes,
            )
        else:
            axes[1].imshow(out.images[ref])
            axes[1].set_title(f"its reference: recipe step {ref + 1}", fontsize=LABEL_PT)
        for ax in axes:
            ax.set_axis_off()
        _show(fig)

    step.observe(lambda _: _redraw(out=view, draw=draw), names="value")
    _redraw(view, draw)
    return _panel(widgets, [[step]], widgets.VBox([view, table]), dict(step=step))


# ---- CookAnything ------------------------------------------------------------------------


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

    from ..cookanything.regional import RegionLayout  # here, not at the top: cooklab.cookanything imports diffusers

    fixed = None if isinstance(layout_or_n, int) else layout_of(layout_or_n)
    wide = {"description_width": "initial"}
    mode = widgets.ToggleButtons(
        options=[("region (paper)", "region"), ("global images", "global")],
        value=image_attention,
        description="image_attention",
        style=wide,
    )
    n0 = fixed.n_regions if fixed is not None else int(layout_or_n)
    n = widgets.IntSlider(n0, 1, 12, description="steps N", continuous_update=False, style=wide)
    length = widgets.IntSlider(step_text_len, 1, 64, description="text tokens L", continuous_update=False, style=wide)
    side = widgets.IntSlider(region_side, 1, 16, description="region side", continuous_update=False, style=wide)
    for w in (n, length, side):
        w.layout.display = "none" if fixed is not None else None
    checks = widgets.HBox()
    info = widgets.HTML()
    out = widgets.Output()
    controls = dict(image_attention=mode, n=n, step_text_len=length, region_side=side)
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
        _show(fig)

    def on_change(_):
        if not busy[0]:
            _redraw(out, draw)

    def on_size(_):
        busy[0] = True
        try:
            rebuild_checks()
        finally:
            busy[0] = False
        _redraw(out, draw)

    mode.observe(on_change, names="value")
    length.observe(on_change, names="value")
    side.observe(on_change, names="value")
    n.observe(on_size, names="value")
    on_size(None)
    return _panel(widgets, [[mode], [n, length, side], [checks], [info]], out, controls)


def text_image_explorer(trace):
    """Browse where the canvas attends to each step's text: recipe step, layer, denoising step.

    trace: recorded around a CookAnything call with capture including
    ``"text_image_attention"``. Controls: ``step`` ("all" shows every step side by side),
    ``layer`` ("all" averages) and ``t`` (the denoising step; "all" averages). The colour scale
    is fixed at the largest value of any single layer and denoising step (an average never
    exceeds it), so maps compare by eye while the controls move.
    """
    import ipywidgets as widgets

    if not getattr(trace, "text_image", None):
        raise ValueError("the trace holds no text->image maps: record with capture including 'text_image_attention'.")
    canvas = canvas_of(trace)
    top = max(float(m.max()) for m in trace.text_image.values())  # every recipe step's map, any single layer and t
    wide = {"description_width": "initial"}
    step = widgets.Dropdown(
        options=[("all recipe steps", ALL)] + [(f"{k + 1}: {shorten(t, 40)}", k) for k, t in enumerate(canvas.texts)],
        description="recipe step",
        style=wide,
        layout=widgets.Layout(width="420px"),
    )
    layer = widgets.Dropdown(
        options=[("all layers", ALL)] + [(flux_layer_name(x), x) for x in trace.layers("text_image")],
        description="layer",
        style=wide,
    )
    t = widgets.SelectionSlider(
        options=[("all", ALL)] + [(str(s), s) for s in trace.steps(0, "text_image")],
        description="denoising step",
        continuous_update=False,
        style=wide,
    )
    out = widgets.Output()

    def draw():
        _show(
            text_image_figure(
                trace,
                steps=None if step.value == ALL else [step.value],
                layers=None if layer.value == ALL else layer.value,
                t=None if t.value == ALL else [t.value],
                vmax=top,
            )
        )

    for w in (step, layer, t):
        w.observe(lambda _: _redraw(out, draw), names="value")
    _redraw(out, draw)
    return _panel(widgets, [[step, layer], [t]], out, dict(step=step, layer=layer, t=t))


def lambda_explorer(pipe, recipe, lams=(0, 0.2, 0.4, 0.6, 0.8, 1.0), precompute: bool = False, **call_kwargs):
    """CSCC's lambda (Eq. 12) with a slider: the step images, their change from lambda = 0, the delta norms.

    pipe: a ``cooklab.CookAnything``; recipe and call_kwargs go to every call (``lam`` and
    ``cscc`` are set here; ``progress`` defaults to False). Each lambda is generated the first
    time the slider reaches it (all of them at once with ``precompute=True``) and kept in
    ``box.results[lam] = (output, delta_norm [N, L])``. Two lambdas are always generated:
    0 (CSCC off), the reference the others are compared with, and the largest one, which fixes
    the scales: the colour scale of ``|image − image(λ=0)|`` and the axis of the added norms
    stay the same while the slider moves (``box.scale = (vmax, delta_max)``), so the figures
    compare by eye.
    """
    import ipywidgets as widgets

    lams = sorted({float(x) for x in lams} | {0.0})
    kwargs = {"progress": False, **call_kwargs}
    kwargs.pop("lam", None)
    kwargs.pop("cscc", None)
    results: dict[float, tuple] = {}

    def run(lam: float):
        if lam not in results:
            with make_trace(pipe, capture=["cscc"]) as tr:
                out = pipe(recipe, cscc=True, lam=lam, **kwargs)
            results[lam] = (out, tr.canvas.cscc_delta_norm)
        return results[lam]

    for lam in lams if precompute else [0.0, lams[-1]]:
        run(lam)
    (largest, largest_delta), (reference, _) = run(lams[-1]), run(0.0)
    # the fixed scales: the largest pixel change and the largest ||Delta_n|| (1.05x, room above the bar) at the largest lambda
    vmax = max(
        [
            float(np.abs(image_array(x) - image_array(y)).mean(-1).max())
            for x, y in zip(largest.images, reference.images)
        ]
        + [1e-6]
    )
    delta_max = 1.05 * max(float(np.sqrt((to_array(largest_delta) ** 2).sum(1)).max()), 1e-6)
    note = f"scale fixed at λ = {lams[-1]:g}"
    slider = widgets.SelectionSlider(
        options=[(f"{x:g}", x) for x in lams],
        value=0.2 if 0.2 in lams else lams[0],
        description="λ",
        continuous_update=False,
        style={"description_width": "initial"},
    )
    info = widgets.HTML()
    out = widgets.Output()

    def draw():
        lam = slider.value
        result, delta = run(lam)
        moved = [
            float(np.abs(image_array(a) - image_array(b)).mean()) for a, b in zip(result.images, reference.images)
        ]
        info.value = (
            f"λ = {lam:g}: mean pixel change from λ = 0, per recipe step: {', '.join(f'{m:.2g}' for m in moved)}"
            + (" (λ = 0 is CSCC off: nothing is added)" if lam == 0 else "")
        )
        _show(
            cscc_lambda_figure(
                result.images,
                reference.images,
                lam,
                delta_norm=delta,
                texts=result.recipe.texts,
                vmax=vmax,
                delta_max=delta_max,
                scale_note=note,
            )
        )

    slider.observe(lambda _: _redraw(out, draw), names="value")
    _redraw(out, draw)
    box = _panel(widgets, [[slider], [info]], out, dict(lam=slider))
    box.results = results
    box.scale = (vmax, delta_max)
    return box


_ROPE_KINDS = (("flexible", (True, False)), ("flexible + step axis", (True, True)), ("global", (False, False)))


def rope_explorer(pos_embed, n_regions: int = 10, rows: int = 4, cols: int = 4):
    """Flexible RoPE vs global ids: the canvas's position ids and the rotation of two regions.

    pos_embed: the transformer's ``FluxPosEmbed`` (``pipe.transformer.pos_embed``); the ids
    are built here with ``canvas_image_ids(n_regions, rows, cols, ...)`` (``rows x cols``:
    the packed token grid of one region). Controls: ``ids`` ("flexible", "flexible + step
    axis", "global"), ``region_a`` and ``region_b`` (1-based) whose rotary cos are compared.
    """
    import ipywidgets as widgets

    from ..cookanything.flexible_rope import (
        canvas_image_ids,
    )  # here, not at the top: cooklab.cookanything imports diffusers
    from ..cookanything.regional import RegionLayout

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
        _show(
            rope_ids_figure({kind.value: ids}, layout, panel_height=3.2),  # both finished, then both displayed
            rotary_figure({kind.value: freqs}, layout, regions=(a.value - 1, b.value - 1)),
        )

    for w in (kind, a, b):
        w.observe(lambda _: _redraw(out, draw), names="value")
    _redraw(out, draw)
    return _panel(widgets, [[kind], [a, b]], out, dict(ids=kind, region_a=a, region_b=b))
