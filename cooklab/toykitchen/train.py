"""Training the Toy Kitchen model sets from scratch (``cooklab toykitchen train``).

Four stages, each a plain training loop over rendered scenes and freshly sampled captions:

1. **autoencoder** -- ``AutoencoderKL``: reconstruction MSE plus a small KL term,
   ``L = ||D(z) - x||^2 + beta KL(q(z|x) || N(0, I))``, ``z ~ q(z|x)``. Its latent mean and
   standard deviation give the pipelines' ``shift_factor`` / ``scaling_factor``.
2. **sd** -- ``UNet2DConditionModel`` and the CLIP text encoder together, v-prediction on the
   cosine schedule: ``z_t = sqrt(a_t) z_0 + sqrt(1 - a_t) eps``, target
   ``v = sqrt(a_t) eps - sqrt(1 - a_t) z_0``, ``L = ||v_theta(z_t, t, c) - v||^2``.
3. **flux** -- ``FluxTransformer2DModel`` with its CLIP and T5 encoders, rectified flow:
   ``z_s = (1 - s) z_0 + s eps``, target ``eps - z_0``, ``s`` logit-normal and shifted by the
   same ``mu`` the pipeline uses at 64x64.
4. **clip** -- the Toy Kitchen CLIP (``clip_model.py``, the metrics' backbone): image and text towers
   together, CLIP's symmetric InfoNCE with a learned temperature (``clip.contrastive_loss``);
   on renders and on frames the toy pipelines generated, captioned by what the oracle reads in them
   (``generated.py``; the pipelines of the ``sd`` / ``flux`` stages when ``<out>`` holds them, else the
   shipped ones). Saved to ``<out>/clip`` with its held-out retrieval accuracy.

Captions of the diffusion stages are dropped to "" 10 % of the time (classifier-free guidance). Weights are averaged
with an EMA (diffusers' ``EMAModel``) and the averages are what is saved, in float16, as
``save_pretrained`` folders ``<out>/sd`` and ``<out>/flux`` (the CLIP stage keeps its last weights,
no EMA, in ``<out>/clip``); each stage writes a JSON log
(``<out>/<stage>_training.json``: losses, steps, seconds, machine).

Each stage has its own module (``autoencoder_training``, ``diffusion_training``, ``clip_training``); they share
the settings (``training_config``), the loop, logs and float16 saving (``training_loop``) and the captions
and their token ids (``training_captions``).

**v3 switches** (``TrainConfig``): ``world`` picks the texts' world (``worlds.py``: the tokenizers' words,
the recipes of the context captions, the training set's scenes and their captions); ``context_share`` mixes
context captions into the ``sd`` / ``flux`` batches (``context_captions.py``: steps 1..k of a recipe, the picture
of step k); ``panel_share`` trains the ``flux`` stage on panel pictures at that share of its steps
(``panels.py``); ``resume`` continues a stage stopped by its time limit (``training_loop.resume_point``).
Their defaults (``"v2"``, 0, 0, off) train exactly as before.

Stages ``sd`` and ``flux`` read the autoencoder stage's output, so they can run as two processes at once on one
GPU. Everything is seeded; CUDA kernels are not bit-deterministic, so a rerun on
a GPU gives close, not identical, weights.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import torch

from ..models.toy import IMAGE_SIZE
from .autoencoder_training import train_autoencoder
from .clip_training import train_clip
from .context_captions import context_count, context_pool
from .dataset import render_dataset
from .diffusion_training import train_flux, train_sd
from .training_config import PRESETS, TrainConfig
from .worlds import get_world

STAGES = ("autoencoder", "sd", "flux", "clip")


def train(out, preset: str = "gpu", stages=STAGES, device=None, **overrides) -> TrainConfig:
    """Run the chosen stages into ``out``; returns the config used."""
    cfg = dataclasses.replace(PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None})
    out = Path(out)
    (out / "work").mkdir(parents=True, exist_ok=True)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.backends.cuda.matmul.allow_tf32 = True  # float32 matrix products on tensor cores (GPU only)
    world = get_world(cfg.world)  # an unknown world fails before anything is rendered
    t = time.perf_counter()
    data = render_dataset(cfg.images, cfg.seed, IMAGE_SIZE, workers=cfg.workers, world=world)
    print(f"rendered {len(data)} scenes in {time.perf_counter() - t:.1f} s", flush=True)
    context = None
    if context_count(cfg.batch, cfg.context_share) and {"sd", "flux"} & set(stages):
        t = time.perf_counter()
        context = context_pool(world, cfg.context_recipes, IMAGE_SIZE, workers=cfg.workers)
        print(f"rendered {len(context)} context pairs in {time.perf_counter() - t:.1f} s", flush=True)
    for stage in STAGES:
        if stage in stages:
            print(f"stage {stage} on {device}", flush=True)
            if stage in ("sd", "flux"):
                (train_sd if stage == "sd" else train_flux)(cfg, out, device, data, context)
            else:
                {"autoencoder": train_autoencoder, "clip": train_clip}[stage](cfg, out, device, data)
    return cfg
