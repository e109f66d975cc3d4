"""The settings of one ``cooklab toykitchen train`` run of the autoencoder, sd, flux and clip stages (``train.py``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TrainConfig:
    """One training run. ``PRESETS`` holds the GPU run that made the shipped weights and a reduced CPU run."""

    seed: int = 0
    images: int = 120_000  # rendered scenes (each gets a new random caption every time it is drawn)
    batch: int = 256
    vae_steps: int = 3000
    sd_steps: int = 8000
    flux_steps: int = 8000
    clip_steps: int = 4000
    vae_lr: float = 1e-3
    lr: float = 4e-4
    clip_lr: float = 1e-3
    clip_batch: int = 256  # pictures per contrastive batch (each one's negatives are the other B - 1 captions)
    clip_generated: int = 2000  # frames each toy pipeline generates for the CLIP stage (generated.py); 0: renders only
    clip_generated_share: float = 0.5  # share of each CLIP batch drawn from those frames
    clip_generation_steps: int = 20  # sampling steps of those frames
    clip_hard_negatives: bool = (
        True  # one caption per picture with one fact changed (clip.caption_pair, NegCLIP's loss)
    )
    vae_latent_channels: int = 4  # latent channels of the autoencoder (16 x 16 x C latents)
    vae_food_weight: float = 1.0  # loss weight of food pixels (``food_weighted_mse``); 1: plain MSE
    vae_batch: int | None = None  # pictures per autoencoder step (default: ``batch``)
    vae_init: str | None = (
        None  # continue from this autoencoder folder (widened by ``widen_latent``) instead of from scratch
    )
    init_from: str | None = None  # continue the sd / flux stages from the sets in this folder (<init_from>/sd, /flux)
    warmup: int = 250
    kl_weight: float = 1e-5
    caption_dropout: float = 0.1
    ema_decay: float = 0.9995
    max_minutes: float | None = None  # stop a stage early after this long (the log records the steps done)
    stop_after: int | None = None  # stop each stage after this many steps (its schedule still spans *_steps)
    workers: int = 1  # processes rendering the dataset
    flux_bf16: bool = False  # bf16 autocast for the Flux stage (float32 + TF32 made the shipped weights)
    world: str = "v2"  # the texts' world (worlds.WORLDS): the tokenizers' words and the context recipes
    context_share: float = 0.0  # share of each sd / flux batch that is context pairs (context_captions.py); 0: none
    context_recipes: int = 6000  # recipes of the context pool (each gives its steps 2..n as pairs)
    panel_share: float = 0.0  # share of flux steps trained on panel pictures (panels.py); 0: none
    resume: bool = False  # continue a stage stopped by its time limit from <out>/<stage> (training_loop.resume_point)


PRESETS = {
    "gpu": TrainConfig(),
    "cpu": TrainConfig(
        images=8000,
        batch=32,
        vae_steps=600,
        sd_steps=2000,
        flux_steps=2000,
        clip_batch=128,
        clip_steps=3000,
        clip_generated=1200,
        context_recipes=600,
    ),
    "smoke": TrainConfig(
        images=48,
        batch=4,
        vae_steps=2,
        sd_steps=2,
        flux_steps=2,
        clip_batch=4,
        clip_steps=2,
        warmup=1,
        clip_generated=2,
        clip_generation_steps=2,
        context_recipes=6,
    ),
}
