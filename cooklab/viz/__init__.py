"""Figures of cooklab's mechanisms (``plots``) and the widgets built on them (``widgets``).

``cooklab.viz`` re-exports the plotting functions; they need only matplotlib. The
ipywidgets front ends live in ``cooklab.viz.widgets`` (import it in a notebook).
"""

from .plots import (
    attention_overlay,
    cross_attention_figure,
    frame_note,
    noise_map_figure,
    reference_share_curve_figure,
    reference_share_figure,
    self_attention_figure,
    short_layer_name,
    storyboard,
    storyboard_from_output,
    toy_attention_figure,
)

__all__ = [
    "attention_overlay", "cross_attention_figure", "frame_note", "noise_map_figure", "reference_share_curve_figure",
    "reference_share_figure", "self_attention_figure", "short_layer_name", "storyboard", "storyboard_from_output",
    "toy_attention_figure",
]
