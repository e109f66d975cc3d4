"""ipywidgets front ends for the figures in ``cooklab.viz``, one module per family of explorers.

    from cooklab.viz.widgets import attention_explorer, noise_explorer, frame_scrubber
    attention_explorer(tr, compare=independent, measure=oracle_consistency)   # K/V sharing on vs off
    noise_explorer(pipe, two_steps, mask_provider=provider)   # Eq. 5-7 on vs uniform noise, cached levels
    frame_scrubber(out, compare=independent)   # the frames of a generation against another run

    region_mask_explorer(4)                    # CookAnything: the SRC mask, groups and tokens
    text_image_explorer(pipe, recipe, seed=0)  # SRC on/off and alpha: canvases, where each step's text is read
    lambda_explorer(pipe, recipe, height=64, width=64)   # CSCC on/off and its lambda
    rope_explorer(pipe.transformer.pos_embed, out_flexible, out_global)   # Flexible RoPE vs global ids
    threshold_explorer(provider, image, "frying pan", latent_hw=(8, 8))   # a mask provider's thresholds
    lora_explorer(pipe, recipe, scales=(0.5, 1, 2), measure=oracle_consistency)   # LoRA scale 0 vs a chosen one
    word_map_explorer(pictures, score=segmentation_scores, prior=centre_prior((64, 64)))   # word maps vs truth

Modules:

* ``attention.py``: a trace's attention maps, K/V sharing on and off (``attention_explorer``);
* ``text_attention.py``: Step-wise Regional Control on and off, its alpha, and where each step's text is
  read (``text_image_explorer``);
* ``noise.py``: region-aware noise vs uniform noise on a real generation, the object level on a slider
  (``noise_explorer``);
* ``frames.py``: a Recipe Diffusion output frame by frame, against a second run (``frame_scrubber``);
* ``regions.py``: CookAnything's canvas regions, the SRC mask and Flexible RoPE
  (``region_mask_explorer``, ``rope_explorer``);
* ``consistency.py``: CSCC on and off and its lambda (``lambda_explorer``);
* ``thresholds.py``: a mask provider's two thresholds and its phrase, and the frame its mask draws
  (``threshold_explorer``);
* ``lora.py``: a LoRA adapter's scale, scale 0 beside a chosen scale (``lora_explorer``);
* ``word_maps.py``: a word's heat map over its picture, scored against the truth next to the centre prior
  (``word_map_explorer``, ``WordPicture``);
* ``measures.py``: the measures in the explorers' titles (``oracle_consistency``, ``oracle_faithfulness``);
* ``panels.py``: what they share: an output redrawn with detached figures, a box of controls, the on/off
  toggle of the explorer's mechanism (``mechanism_toggle``).

Each function returns a ``VBox`` (the last expression of a cell displays it). The controls are also
reachable as ``box.controls[name]``, so code can drive them (``box.controls["step"].value = 5``).
Every explorer compares its mechanism switched on and off on the same seed, pictures first: its
toggle is ``box.controls["mechanism"]`` (``True`` on, ``False`` off) and its figures' titles carry
the measure that tells the two apart. Every change redraws the figures into an ``Output`` widget as
PNG images. The figures are plain ``matplotlib.figure.Figure`` objects (built under
``detached_figures()``, no pyplot state) and all of them are rendered before any is displayed: a
callback may run on a kernel subshell (JupyterLab 4.6's default ``commsOverSubshells``) while
matplotlib-inline's end-of-cell flush closes pyplot's figures, so a figure pyplot knew of could be
blanked or sent to JupyterLab's Log Console. ipywidgets is imported inside the functions, so the
figure modules work without it.
"""

from ..common import detached_figures
from .attention import attention_explorer
from .consistency import lambda_explorer
from .frames import frame_scrubber
from .lora import lora_explorer
from .measures import oracle_consistency, oracle_faithfulness
from .noise import noise_explorer
from .panels import mechanism_toggle
from .regions import region_mask_explorer, rope_explorer
from .text_attention import text_image_explorer
from .thresholds import threshold_explorer
from .word_maps import WordPicture, word_map_explorer

__all__ = [
    "WordPicture",
    "attention_explorer",
    "detached_figures",
    "frame_scrubber",
    "lambda_explorer",
    "lora_explorer",
    "mechanism_toggle",
    "noise_explorer",
    "oracle_consistency",
    "oracle_faithfulness",
    "region_mask_explorer",
    "rope_explorer",
    "text_image_explorer",
    "threshold_explorer",
    "word_map_explorer",
]
