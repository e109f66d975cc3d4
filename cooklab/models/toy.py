"""The trained Toy Kitchen models shipped in ``data/toykitchen/``: their folder and their loaders.

``toy_sd`` and ``toy_flux`` are **trained** pipelines (the stock ``StableDiffusionPipeline`` /
``FluxPipeline``) that draw recognisable pictures of the Toy Kitchen's world; they are the
offline default of the demo, ``cooklab generate`` and the notebooks. ``toy_clip`` is the CLIP
trained on the same world (a ``cooklab.backbones.ClipBackbone``, the offline backbone of the CLIP
metrics), ``toy_dino`` its vision tower standing in for DINOv2 (there is no toy DINOv2) and
``toy_autoencoder`` the autoencoder the next Toy Kitchen model sets are trained on.
The GroundingDINO + SAM trained on the same world (``TOY_DIR / "grounding"``) load with
``cooklab.grounding.GroundedSAM.toy()``. All are ordinary ``save_pretrained`` folders in float16,
loaded offline; ``cooklab toykitchen train`` reproduces them (``cooklab.toykitchen``; model card
``docs/toykitchen.md``). The SD and Flux sets are registered as the model sets ``"toy-sd"`` and
``"toy-flux"`` (``sets.py``), each with the grounding pair trained on their pictures.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import AutoencoderKL, FluxPipeline, StableDiffusionPipeline

from ..backbones.clip import clip_backbone
from ..backbones.dino import DinoBackbone, dino_backbone
from ..backbones.preprocess import Preprocess
from ..errors import CheckpointError
from ..resources import shipped
from .sets import ModelSet, register_model_set

__all__ = [
    "CLIP_MAX_LENGTH",
    "IMAGE_SIZE",
    "T5_MAX_LENGTH",
    "TOY_DIR",
    "TOY_FLUX",
    "TOY_SD",
    "toy_autoencoder",
    "toy_clip",
    "toy_dino",
    "toy_flux",
    "toy_sd",
]

#: where the trained model sets live in a checkout
TOY_DIR = shipped("toykitchen")
IMAGE_SIZE = 64  # training resolution (pixels)
CLIP_MAX_LENGTH = 32  # toy captions are short; CLIP's position table has this many rows
T5_MAX_LENGTH = 64  # pass as max_sequence_length to the toy Flux pipeline

#: the shipped SD-style and Flux-style sets, with the grounding pair trained on their pictures
TOY_SD = register_model_set(ModelSet("toy-sd", TOY_DIR / "sd", grounding=TOY_DIR / "grounding"))
TOY_FLUX = register_model_set(ModelSet("toy-flux", TOY_DIR / "flux", grounding=TOY_DIR / "grounding"))


def _load_pipeline(cls, kind: str, path, device, dtype):
    """A shipped Toy Kitchen pipeline folder loaded offline, without a progress bar, moved if asked."""
    folder = Path(path) if path is not None else TOY_DIR / kind
    if not (folder / "model_index.json").is_file():
        raise CheckpointError(
            f"no trained Toy Kitchen {kind} model in {folder}: a checkout ships it in data/toykitchen/{kind}; "
            f"rebuild it with `cooklab toykitchen train --out {folder.parent}`."
        )
    pipe = cls.from_pretrained(folder, dtype=dtype or torch.float32, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    if device is not None:
        pipe.to(torch.device(device))
    return pipe


def toy_sd(path=None, device=None, dtype=None) -> StableDiffusionPipeline:
    """The trained SD-style Toy Kitchen pipeline (64x64, DDIM, v-prediction). Offline; float32 unless ``dtype``."""
    return _load_pipeline(StableDiffusionPipeline, "sd", path, device, dtype)


def toy_flux(path=None, device=None, dtype=None) -> FluxPipeline:
    """The trained Flux-style Toy Kitchen pipeline (64x64 per image). Call it with
    ``max_sequence_length=T5_MAX_LENGTH`` (``CookAnything`` takes it from the T5 tokenizer by default) and
    ``true_cfg_scale`` > 1 with a ``negative_prompt`` (it has no guidance embedding)."""
    pipe = _load_pipeline(FluxPipeline, "flux", path, device, dtype)
    pipe.default_sample_size = IMAGE_SIZE // 4
    return pipe


def toy_autoencoder(path=None, device=None) -> AutoencoderKL:
    """The Toy Kitchen autoencoder the next model sets are trained on (``data/toykitchen/autoencoder``), float32,
    offline.

    Its config carries the latent statistics (``shift_factor`` = mean, ``scaling_factor`` = 1 / std); its model card
    is ``data/toykitchen/autoencoder/README.md``. ``evaluate.autoencoder_ceiling`` measures what it keeps of the food.
    """
    folder = Path(path) if path is not None else TOY_DIR / "autoencoder"
    if not (folder / "config.json").is_file():
        raise CheckpointError(
            f"no Toy Kitchen autoencoder in {folder}: a checkout ships it in data/toykitchen/autoencoder; "
            f"rebuild it with `cooklab toykitchen train --stages autoencoder --out {folder.parent}`."
        )
    vae = AutoencoderKL.from_pretrained(folder, torch_dtype=torch.float32, local_files_only=True).eval()
    return vae.to(torch.device(device)) if device is not None else vae


def toy_clip(path=None, device=None):
    """The trained Toy Kitchen CLIP (``data/toykitchen/clip``) as a ``cooklab.backbones.ClipBackbone``: pass it as
    ``clip=`` to any CLIP metric. A ``CLIPModel`` trained on the toy world's renders and captions
    (``cooklab.toykitchen.clip_model``), loaded offline in float32."""
    folder = Path(path) if path is not None else TOY_DIR / "clip"
    if not (folder / "config.json").is_file():
        raise CheckpointError(
            f"no trained Toy Kitchen CLIP in {folder}: a checkout ships it in data/toykitchen/clip; "
            f"rebuild it with `cooklab toykitchen train --stages clip --out {folder.parent}`."
        )
    backbone = clip_backbone(folder, device=device, dtype=torch.float32, local_files_only=True)
    backbone.source = f"toy_clip ({folder})"
    return backbone


def toy_dino(path=None, device=None) -> DinoBackbone:
    """The Toy Kitchen's stand-in for DINOv2 (``dino: toy``): the Toy Kitchen CLIP's vision tower as a
    ``cooklab.backbones.DinoBackbone``. **Not DINOv2.**

    Its embedding is the tower's CLS token after the final layer norm (``CLIPVisionModel``'s
    ``pooler_output``, before the projection, not normalised) -- the same place DINOv2's
    ``pooler_output`` is taken -- so the DINOv2 measures (``dino_l2``, ``dino_l2_masked``,
    ``cross_step_consistency_dino``) run offline in the toy world; their numbers are on this
    tower's scale, recorded in ``source``, and not comparable with a DINOv2's.
    """
    from transformers import CLIPImageProcessor, CLIPVisionModel
    from transformers.utils import logging

    folder = Path(path) if path is not None else TOY_DIR / "clip"
    if not (folder / "config.json").is_file():
        raise CheckpointError(
            f"no trained Toy Kitchen CLIP in {folder} (toy_dino is its vision tower): a checkout ships it in "
            f"data/toykitchen/clip; rebuild it with `cooklab toykitchen train --stages clip --out {folder.parent}`."
        )
    verbosity = logging.get_verbosity()
    logging.set_verbosity_error()  # the text tower's weights in the folder are expected to go unused
    try:
        tower = CLIPVisionModel.from_pretrained(folder, torch_dtype=torch.float32, local_files_only=True).eval()
    finally:
        logging.set_verbosity(verbosity)
    preprocess = Preprocess.from_processor(CLIPImageProcessor.from_pretrained(folder, local_files_only=True))
    source = f"toy_dino: the Toy Kitchen CLIP's vision tower, CLS after the final norm, not DINOv2 ({folder})"
    return dino_backbone(DinoBackbone(tower, preprocess, source), device=device)  # on ``device`` (None: the CPU)
