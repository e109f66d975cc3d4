"""Figures of cooklab's mechanisms and the ipywidgets built on them.

``cooklab.viz`` re-exports every figure function. They need matplotlib and torch only:
importing ``cooklab.viz`` loads neither diffusers nor ipywidgets, so a saved trace or output can
be plotted without a model. Modules:

* ``storyboard.py``: storyboards of both pipelines and their per-step notes; several runs side
  by side (``comparison_figure``);
* ``recipe_diffusion.py``: Recipe Diffusion's attention on the reference frame, self- and
  cross-attention, region-aware noise maps;
* ``cookanything.py``: CookAnything's SRC mask, joint sequence, text-to-canvas attention, base
  branch, Flexible RoPE ids;
* ``cross_step_consistency.py``: CSCC's token spans, deltas and lambda (CookAnything, Eq. 12);
* ``masks.py``: what a mask provider saw and returned: the detector's boxes, the mask on the
  image and on the latent grid;
* ``word_maps.py``: a word's heat map over its picture, scored against the truth, next to the
  centre prior;
* ``tables.py``: JSON (a plan, a config, a row of results) and a Cooking Agent's plan as HTML
  tables;
* ``training.py``: the loss of a LoRA run, as a figure and a live widget (import it in a
  notebook);
* ``plots.py``: every figure function of the modules above in one namespace;
* ``common.py``: what the figure modules share (images as arrays, panels, labels, colours,
  detached figures);
* ``widgets``: the ipywidgets explorers over these figures (``cooklab.viz.widgets``, import
  it in a notebook).

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
from .masks import detect_all
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
    detections_figure,
    flux_layer_name,
    frame_note,
    group_mask_figure,
    layout_figure,
    mask_figure,
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
    word_map_figure,
)
from .tables import json_rows, json_table, plan_table

__all__ = [
    # figures without pyplot state (what the widgets draw; for your own widget callbacks too)
    "detached_figures",
    "figure_png",
    # any run of either pipeline
    "comparison_figure",
    # JSON (a plan, a config, results) as a table
    "json_rows",
    "json_table",
    # the plan and the mask the pipeline asks for before it draws
    "detect_all",
    "detections_figure",
    "mask_figure",
    "plan_table",
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
    "word_map_figure",
]
