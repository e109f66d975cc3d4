"""Figures of cooklab's mechanisms and the ipywidgets built on them.

``cooklab.viz`` re-exports every figure function (``cooklab.viz.plots`` gathers them from
``storyboard``, ``recipe_diffusion``, ``cookanything`` and ``cscc``). They need matplotlib
and torch only: importing ``cooklab.viz`` loads neither diffusers nor ipywidgets, so a
saved trace or output can be plotted without a model. The ipywidgets front ends live in
``cooklab.viz.widgets``, the plan, detection and mask figures in ``cooklab.viz.detection``,
the loss of a LoRA run (a live widget too) in ``cooklab.viz.training`` (import them in a notebook).
``json_table`` shows JSON (a plan, a config, a row of results) as an HTML table.

Outside a widget the figures are pyplot figures (a notebook shows them at the end of the cell).
Inside ``with detached_figures():`` they are plain ``matplotlib.figure.Figure`` objects that pyplot
never sees, to display yourself (``IPython.display.Image(figure_png(fig))``): what a widget
callback must do, since it may run on a kernel subshell while the cell's pyplot flush runs.

The modules: ``common`` (conversion, drawing into an axes, labels, ``detached_figures``),
``plots`` (every figure function in one namespace), ``storyboard``, ``recipe_diffusion``,
``cookanything``, ``cscc`` (the figures), ``detection`` (plans, detections, masks),
``training`` (the loss of a LoRA run), ``widgets`` (the ipywidgets), ``tables`` (JSON as a table).
"""

from .common import detached_figures, figure_png
from .plots import (
    attention_overlay,
    base_contribution_figure,
    canvas_note,
    canvas_storyboard,
    comparison_figure,
    cross_attention_figure,
    cscc_delta_figure,
    cscc_lambda_figure,
    cscc_spans_figure,
    flux_layer_name,
    frame_note,
    group_mask_figure,
    layout_figure,
    noise_map_figure,
    reference_share_curve_figure,
    reference_share_figure,
    rope_ids_figure,
    rotary_figure,
    self_attention_figure,
    short_layer_name,
    storyboard,
    storyboard_from_output,
    text_image_figure,
    token_mask_figure,
    toy_attention_figure,
)
from .tables import json_rows, json_table

__all__ = [
    # figures without pyplot state (what the widgets draw; for your own widget callbacks too)
    "detached_figures",
    "figure_png",
    # any run of either pipeline
    "comparison_figure",
    # JSON (a plan, a config, results) as a table
    "json_rows",
    "json_table",
    # Recipe Diffusion
    "attention_overlay",
    "cross_attention_figure",
    "frame_note",
    "noise_map_figure",
    "reference_share_curve_figure",
    "reference_share_figure",
    "self_attention_figure",
    "short_layer_name",
    "storyboard",
    "storyboard_from_output",
    "toy_attention_figure",
    # CookAnything
    "base_contribution_figure",
    "canvas_note",
    "canvas_storyboard",
    "cscc_delta_figure",
    "cscc_lambda_figure",
    "cscc_spans_figure",
    "flux_layer_name",
    "group_mask_figure",
    "layout_figure",
    "rope_ids_figure",
    "rotary_figure",
    "text_image_figure",
    "token_mask_figure",
]
