"""Benchmark scripts, run from the checkout (``python benchmarks/<name>.py --help``); results in ``results/``.

Speed and memory:

* ``regional_attention.py``: one attention call of CookAnything's Step-wise Regional Control, per
  attention path (dense mask, batched regions, FlexAttention);
* ``cookanything_step.py``: one CookAnything denoiser forward against plain Flux on the same canvas;
* ``kv_sharing.py``: cross-frame K/V sharing in one U-Net forward, and the K/V store's size;
* ``recipe_diffusion.py``: one whole Recipe Diffusion generation per variant, and how it grows with
  the number of frames;
* ``trace_cost.py``: what ``cooklab.trace`` costs on a CookAnything call;
* ``plot_scaling.py``: the scaling plots from the JSON results of the two step and frame benchmarks.

Quality and exactness:

* ``metric_agreement.py``: how far the CLIP metrics agree with the Toy Kitchen oracle;
* ``chunked_consistency.py``: whether the container survives a chunk boundary of a long recipe;
* ``autoencoder_options.py``: which change lets the Toy Kitchen autoencoder keep the food;
* ``lora_settings_study.py``: which LoRA settings (sigma sampling, steps, learning rate, targets) make training-based
  CookAnything more consistent than training-free, on held-out recipes (``gpu_lora_study.sh``: its GPU part);
* ``gpu_checks.py``: GPU-only exactness checks (K/V on the host against K/V on the GPU).

``common.py`` holds what they share: device names, synchronisation, interleaved timing, profiles
and JSON results.
"""
