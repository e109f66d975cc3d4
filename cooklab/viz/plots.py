"""Every figure function of ``cooklab.viz`` in one namespace (``from cooklab.viz import plots``).

The functions live by what they draw; this module only gathers them:

* ``storyboard.py``: storyboards of both pipelines (``storyboard``, ``storyboard_from_output``,
  ``canvas_storyboard``) and their per-step notes; several runs side by side (``comparison_figure``);
* ``recipe_diffusion.py``: attention on the reference frame, self- and cross-attention,
  region-aware noise maps;
* ``cookanything.py``: the SRC mask, the joint sequence, text-to-canvas attention, the base
  branch, Flexible RoPE ids;
* ``cross_step_consistency.py``: CSCC spans, deltas and lambda;
* ``masks.py``: a mask provider's boxes and the mask it returned;
* ``word_maps.py``: a word's heat map over its picture, scored against the truth, next to the centre prior;
* ``common.py``: what they share (images as arrays, panels, labels, colours).

Every function returns a matplotlib ``Figure`` and runs no model; see each module for examples.
"""

from .common import short_layer_name
from .cookanything import (
    base_contribution_figure,
    flux_layer_name,
    group_mask_figure,
    layout_figure,
    rope_ids_figure,
    rotary_figure,
    text_image_figure,
    token_mask_figure,
)
from .cross_step_consistency import cscc_delta_figure, cscc_lambda_figure, cscc_spans_figure
from .masks import detections_figure, mask_figure
from .recipe_diffusion import (
    SPECIAL_TOKENS,
    attention_overlay,
    cross_attention_figure,
    noise_map_figure,
    reference_share_curve_figure,
    reference_share_figure,
    self_attention_figure,
    toy_attention_figure,
)
from .storyboard import (
    canvas_note,
    canvas_storyboard,
    comparison_figure,
    frame_note,
    storyboard,
    storyboard_from_output,
)
from .word_maps import word_map_figure

__all__ = [
    "SPECIAL_TOKENS",
    "attention_overlay",
    "base_contribution_figure",
    "canvas_note",
    "canvas_storyboard",
    "comparison_figure",
    "cross_attention_figure",
    "cscc_delta_figure",
    "cscc_lambda_figure",
    "cscc_spans_figure",
    "detections_figure",
    "flux_layer_name",
    "frame_note",
    "group_mask_figure",
    "layout_figure",
    "mask_figure",
    "noise_map_figure",
    "reference_share_curve_figure",
    "reference_share_figure",
    "rope_ids_figure",
    "rotary_figure",
    "self_attention_figure",
    "short_layer_name",
    "storyboard",
    "storyboard_from_output",
    "text_image_figure",
    "token_mask_figure",
    "toy_attention_figure",
    "word_map_figure",
]
