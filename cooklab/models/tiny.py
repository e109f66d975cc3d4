"""Tiny random pipelines built in code: the real diffusers classes from very small configs (tests, benchmarks).

``tiny_sd`` and ``tiny_flux`` are **tiny, random weights, built in code** (like the
``tiny-random-*`` test models on the Hugging Face Hub): the real ``StableDiffusionPipeline`` and
``FluxPipeline`` from very small configs; no file, no network, two denoising steps at 64x64 on a
CPU in a fraction of a second. Their images are noise, but every tensor has the shape and the
code path of the full-size model: the tests, the equivalence checks and the benchmarks use them.
Read each config next to the real one to see what each number does. The tokenizers are built in
memory by ``cooklab.word_tokenizers``.
"""

from __future__ import annotations

import torch
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    DiffusionPipeline,
    FlowMatchEulerDiscreteScheduler,
    FluxPipeline,
    FluxTransformer2DModel,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer, T5Config, T5EncoderModel

from ..word_tokenizers import TINY_CLIP_MAX_LENGTH, TINY_T5_MAX_LENGTH, tiny_clip_tokenizer, tiny_t5_tokenizer

__all__ = ["TINY_T5_MAX_LENGTH", "tiny_flux", "tiny_sd"]


# CLIP text encoder: real SD 1.x uses hidden 768, 12 layers, 12 heads.
# vocab_size and the special token ids come from the tokenizer at build time.
_TINY_CLIP_TEXT = dict(
    hidden_size=32,  # token embedding width = U-Net cross_attention_dim = Flux pooled_projection_dim
    intermediate_size=64,  # MLP width inside each layer
    num_hidden_layers=2,
    num_attention_heads=4,  # 4 heads x 8 dims
    max_position_embeddings=TINY_CLIP_MAX_LENGTH,
    projection_dim=32,
    hidden_act="quick_gelu",
)

# SD U-Net: real SD 1.x has block_out_channels (320, 640, 1280, 1280) and sample_size 64.
_TINY_UNET = dict(
    sample_size=8,  # latent 8x8 -> image 64x64
    in_channels=4,  # latent channels of the VAE
    out_channels=4,  # predicted noise, same shape as the latent
    block_out_channels=(32, 64),  # level 0: 8x8 latent, level 1: 4x4
    layers_per_block=1,
    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
    mid_block_type="UNetMidBlock2DCrossAttn",  # attention on the 4x4 latent
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=32,  # = CLIP hidden size
    # Despite its name this is the number of heads (diffusers keeps the old SD naming):
    # 8 heads of 32 / 8 = 4 dims at level 0 and of 64 / 8 = 8 dims at level 1.
    attention_head_dim=8,
    norm_num_groups=8,  # GroupNorm groups; must divide every channel count
)

# SD VAE: real SD has block_out_channels (128, 256, 512, 512). Four blocks means three
# 2x downsamplings, so vae_scale_factor = 2 ** 3 = 8 as in real SD.
_TINY_SD_VAE = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    block_out_channels=(8, 16, 16, 16),  # image 64x64 -> 32 -> 16 -> 8x8 latent
    layers_per_block=1,
    latent_channels=4,
    norm_num_groups=8,
    sample_size=64,
    scaling_factor=0.18215,  # SD's value: latents are multiplied by it before the U-Net
)

# Scheduler: exactly the Stable Diffusion 1.x / 2.x DDIM settings.
_SD_SCHEDULER = dict(
    num_train_timesteps=1000,
    beta_schedule="scaled_linear",
    beta_start=0.00085,
    beta_end=0.012,
    clip_sample=False,
    set_alpha_to_one=False,
    steps_offset=1,
)

# Flux transformer: real FLUX.1 has in_channels 64, 19 double + 38 single blocks,
# 24 heads x 128, joint_attention_dim 4096, pooled_projection_dim 768, axes (16, 56, 56).
_TINY_FLUX_TRANSFORMER = dict(
    patch_size=1,
    in_channels=16,  # 4 latent channels x 2x2 packed patch
    num_layers=1,  # double-stream blocks (separate text and image weights)
    num_single_layers=1,  # single-stream blocks (text and image concatenated)
    attention_head_dim=16,  # must equal sum(axes_dims_rope)
    num_attention_heads=2,  # width 2 x 16 = 32
    joint_attention_dim=32,  # = T5 d_model
    pooled_projection_dim=32,  # = CLIP hidden size (the pooled CLIP embedding)
    guidance_embeds=True,  # like FLUX.1-dev: guidance_scale is an input of the model
    axes_dims_rope=(4, 6, 6),  # rotary dims for (unused, row, column) position ids
)

# Flux VAE: real Flux has 16 latent channels; 4 here keeps packed latents at 16 channels.
_TINY_FLUX_VAE = dict(
    _TINY_SD_VAE,
    scaling_factor=0.3611,  # FLUX.1's values: latents = (z - shift) * scale
    shift_factor=0.1159,
    use_quant_conv=False,  # the Flux VAE has no 1x1 convs around the latent
    use_post_quant_conv=False,
)

# T5 encoder: real Flux uses T5-v1.1-XXL (d_model 4096, 24 layers, 64 heads).
# vocab_size comes from the tokenizer at build time.
_TINY_T5 = dict(
    d_model=32,
    d_kv=8,  # per-head width: 4 heads x 8
    d_ff=64,
    num_layers=2,
    num_heads=4,
    relative_attention_num_buckets=8,
    relative_attention_max_distance=TINY_T5_MAX_LENGTH,
    feed_forward_proj="gated-gelu",  # as in T5 v1.1
    dropout_rate=0.0,
    pad_token_id=0,
    eos_token_id=1,
    decoder_start_token_id=0,
)

# Scheduler: FLUX.1-dev's flow-matching settings (the shift grows with image size).
_FLUX_SCHEDULER = dict(
    num_train_timesteps=1000,
    shift=3.0,
    use_dynamic_shifting=True,
    base_shift=0.5,
    max_shift=1.15,
    base_image_seq_len=256,
    max_image_seq_len=4096,
)


def _tiny_clip_text_model(tokenizer: CLIPTokenizer) -> CLIPTextModel:
    config = CLIPTextConfig(
        **_TINY_CLIP_TEXT,
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,  # the pooled output is read at this token
        pad_token_id=tokenizer.pad_token_id,
    )
    return CLIPTextModel(config)


def _finish_tiny(pipe: DiffusionPipeline, name: str, device, dtype) -> DiffusionPipeline:
    """Eval mode (as from_pretrained leaves models), a name for ``describe``, no progress bar, move if asked."""
    for component in pipe.components.values():
        if isinstance(component, torch.nn.Module):
            component.eval()
    pipe.register_to_config(_name_or_path=name)
    pipe.set_progress_bar_config(disable=True)
    if device is not None:
        pipe.to(device=torch.device(device))
    if dtype is not None:
        pipe.to(dtype=dtype)  # diffusers 0.42 logs a harmless "kept in float32: []" warning here
    return pipe


def tiny_sd(seed: int = 0, device=None, dtype=None) -> StableDiffusionPipeline:
    """A real ``StableDiffusionPipeline`` with tiny random weights (no file, no network): its images are noise.

    For a trained model that draws pictures offline, use ``toy_sd()``.

    The weights depend only on ``seed`` and the global torch RNG is left as it
    was. Default image size 64x64 (latent 4x8x8); the VAE downsamples by 8 as in
    real SD. Self-attention layers (``...attn1.processor``) sit in
    ``down_blocks.0``, ``mid_block`` and ``up_blocks.1``. No safety checker.
    Built on the CPU in float32, then moved to ``device`` / ``dtype`` if given.
    """
    tokenizer = tiny_clip_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        text_encoder = _tiny_clip_text_model(tokenizer)
        unet = UNet2DConditionModel(**_TINY_UNET)
        vae = AutoencoderKL(**_TINY_SD_VAE)
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=DDIMScheduler(**_SD_SCHEDULER),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    return _finish_tiny(pipe, f"cooklab.models.tiny_sd(seed={seed})", device, dtype)


def tiny_flux(seed: int = 0, device=None, dtype=None) -> FluxPipeline:
    """A real ``FluxPipeline`` with tiny random weights (no file, no network): its images are noise.

    For a trained model that draws pictures offline, use ``toy_flux()``.

    Same seeding rules as ``tiny_sd``. Default image size 64x64; height and
    width must be multiples of 16 (VAE factor 8 x 2x2 packing), and 64x64 gives
    4x4 = 16 image tokens. Pass ``max_sequence_length=TINY_T5_MAX_LENGTH`` when
    calling it (the pipeline's default, 512, also runs but is 8x more text);
    ``CookAnything`` takes it from the T5 tokenizer by default.
    """
    clip_tokenizer = tiny_clip_tokenizer()
    t5_tokenizer = tiny_t5_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        text_encoder = _tiny_clip_text_model(clip_tokenizer)
        text_encoder_2 = T5EncoderModel(T5Config(**_TINY_T5, vocab_size=len(t5_tokenizer)))
        transformer = FluxTransformer2DModel(**_TINY_FLUX_TRANSFORMER)
        vae = AutoencoderKL(**_TINY_FLUX_VAE)
    pipe = FluxPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(**_FLUX_SCHEDULER),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=clip_tokenizer,
        text_encoder_2=text_encoder_2,
        tokenizer_2=t5_tokenizer,
        transformer=transformer,
    )
    # FluxPipeline hard-codes a default of 128 latent pixels (1024x1024 images) instead of reading a config;
    # make the default 8 (64x64) as for tiny_sd. An attribute only: save_pretrained does not keep it.
    pipe.default_sample_size = 8
    return _finish_tiny(pipe, f"cooklab.models.tiny_flux(seed={seed})", device, dtype)
