"""The Toy Kitchen's model architectures: the configs of its two model sets and how to build them untrained.

Two sets of real diffusers / transformers classes, small enough to train in minutes on one GPU
and to run in seconds on a laptop CPU:

* **SD-style** (for Recipe Diffusion): ``AutoencoderKL`` (64x64x3 image <-> 16x16x4 latent),
  ``UNet2DConditionModel`` (v-prediction, cosine schedule), ``CLIPTextModel`` with the world's
  tokenizer (one token per word of ``captions.WORDS``), ``DDIMScheduler``.
* **Flux-style** (for CookAnything): the same autoencoder (with Flux's shift and scale),
  ``FluxTransformer2DModel`` (rectified flow, no guidance embedding: use true CFG), a CLIP text
  encoder for the pooled vector and a ``T5EncoderModel`` for the token sequence,
  ``FlowMatchEulerDiscreteScheduler``.

The tokenizers are ``cooklab.word_tokenizers``' in-memory ones with the world's vocabulary
(``captions.WORDS``; a training run of another world passes its own, ``worlds.vocabulary``).
``build_sd`` / ``build_flux`` put an untrained set around a trained autoencoder; ``cooklab toykitchen train``
trains them (``train.py``). The trained sets ship in ``data/toykitchen/`` and load with ``cooklab.models.toy_sd()`` /
``toy_flux()`` (``docs/toykitchen.md`` is their model card). Not to be confused with ``cooklab.models.tiny_sd`` /
``tiny_flux``: those have random weights and draw noise.
"""

from __future__ import annotations

from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    FlowMatchEulerDiscreteScheduler,
    FluxPipeline,
    FluxTransformer2DModel,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

from ..models.toy import CLIP_MAX_LENGTH, IMAGE_SIZE, T5_MAX_LENGTH
from ..word_tokenizers import tiny_clip_tokenizer, tiny_t5_tokenizer
from .captions import WORDS

# Autoencoder: three blocks, two 2x downsamplings -> vae_scale_factor 4: 64x64 image, 16x16 latent.
VAE = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D",) * 3,
    up_block_types=("UpDecoderBlock2D",) * 3,
    block_out_channels=(32, 64, 64),
    layers_per_block=1,
    latent_channels=4,
    norm_num_groups=16,
    sample_size=IMAGE_SIZE,
    use_quant_conv=False,  # as in Flux's autoencoder
    use_post_quant_conv=False,
)

# CLIP text encoder (both sets): one token per world word, 32 positions.
CLIP_TEXT = dict(
    hidden_size=128,
    intermediate_size=256,
    num_hidden_layers=3,
    num_attention_heads=4,
    max_position_embeddings=CLIP_MAX_LENGTH,
    projection_dim=128,
    hidden_act="quick_gelu",
)

# U-Net on the 16x16 latent: attention at 16x16 and 8x8 and in the middle (4x4).
UNET = dict(
    sample_size=IMAGE_SIZE // 4,
    in_channels=4,
    out_channels=4,
    block_out_channels=(64, 128, 192),
    layers_per_block=1,
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    mid_block_type="UNetMidBlock2DCrossAttn",
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=128,  # = CLIP hidden size
    attention_head_dim=8,  # number of heads (diffusers' SD naming)
    norm_num_groups=16,
)

SD_SCHEDULER = dict(
    num_train_timesteps=1000,
    beta_schedule="squaredcos_cap_v2",
    prediction_type="v_prediction",
    clip_sample=False,
    set_alpha_to_one=False,
    steps_offset=1,
    timestep_spacing="trailing",
)

# Flux transformer: 3 double-stream + 6 single-stream blocks, 6 heads x 32; latent 16x16x4 packed to 8x8 tokens of 16.
FLUX = dict(
    patch_size=1,
    in_channels=16,
    num_layers=3,
    num_single_layers=6,
    attention_head_dim=32,  # = sum(axes_dims_rope)
    num_attention_heads=6,
    joint_attention_dim=128,  # = T5 d_model
    pooled_projection_dim=128,  # = CLIP hidden size
    guidance_embeds=False,  # trained from scratch, not guidance-distilled: use true CFG
    axes_dims_rope=(8, 12, 12),
)

T5 = dict(
    d_model=128,
    d_kv=32,
    d_ff=256,
    num_layers=3,
    num_heads=4,
    relative_attention_num_buckets=16,
    relative_attention_max_distance=T5_MAX_LENGTH,
    feed_forward_proj="gated-gelu",
    dropout_rate=0.0,
    pad_token_id=0,
    eos_token_id=1,
    decoder_start_token_id=0,
)

FLUX_SCHEDULER = dict(
    num_train_timesteps=1000,
    shift=1.0,
    use_dynamic_shifting=True,
    base_shift=0.5,
    max_shift=1.15,
    base_image_seq_len=256,
    max_image_seq_len=4096,
)


def clip_tokenizer(words: tuple[str, ...] = WORDS):
    """The world's CLIP tokenizer: one token per word of ``words``, ``CLIP_MAX_LENGTH`` positions."""
    return tiny_clip_tokenizer(words, CLIP_MAX_LENGTH)


def t5_tokenizer(words: tuple[str, ...] = WORDS):
    """The world's T5 tokenizer: each word of ``words`` and its capitalised form one token, ``T5_MAX_LENGTH``.

    T5 is case sensitive, so each word comes twice: the words, then their capitalised forms. When ``words``
    extends ``WORDS`` (a later world's), the pieces are ``WORDS``, their capitalised forms, then the new words and
    theirs: every old piece keeps its id.
    """
    blocks = (WORDS, words[len(WORDS) :]) if words[: len(WORDS)] == WORDS else (words,)
    return tiny_t5_tokenizer(tuple(p for b in blocks for p in b + tuple(w.capitalize() for w in b)), T5_MAX_LENGTH)


def clip_text_model(tokenizer) -> CLIPTextModel:
    """An untrained ``CLIPTextModel`` of the sets' size (``CLIP_TEXT``) for ``tokenizer``'s vocabulary and tokens."""
    return CLIPTextModel(
        CLIPTextConfig(
            **CLIP_TEXT,
            vocab_size=len(tokenizer),
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )


def build_vae(latent_channels: int = VAE["latent_channels"]) -> AutoencoderKL:
    """An untrained autoencoder (``VAE``) with ``latent_channels`` latent channels."""
    return AutoencoderKL(**{**VAE, "latent_channels": latent_channels})


def _unet_config(vae: AutoencoderKL) -> dict:
    """``UNET`` for the autoencoder's latent: as many input and output channels as it has latent channels."""
    c = vae.config.latent_channels
    return {**UNET, "in_channels": c, "out_channels": c}


def _flux_config(vae: AutoencoderKL) -> dict:
    """``FLUX`` for the autoencoder's latent: 2x2 patches packed into tokens of 4 x latent channels."""
    return {**FLUX, "in_channels": 4 * vae.config.latent_channels}


def build_sd(vae: AutoencoderKL, scaling_factor: float, words: tuple[str, ...] = WORDS) -> StableDiffusionPipeline:
    """An untrained SD-style toy pipeline around a trained autoencoder (latents multiplied by ``scaling_factor``),
    its tokenizer keeping each of ``words`` whole."""
    tokenizer = clip_tokenizer(words)
    vae.register_to_config(scaling_factor=scaling_factor, shift_factor=None)
    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=clip_text_model(tokenizer),
        tokenizer=tokenizer,
        unet=UNet2DConditionModel(**_unet_config(vae)),
        scheduler=DDIMScheduler(**SD_SCHEDULER),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def build_flux(
    vae: AutoencoderKL, scaling_factor: float, shift_factor: float, words: tuple[str, ...] = WORDS
) -> FluxPipeline:
    """An untrained Flux-style toy pipeline around a trained autoencoder (latents ``(z - shift) * scale``), its
    tokenizers keeping each of ``words`` whole."""
    clip_tok, t5_tok = clip_tokenizer(words), t5_tokenizer(words)
    vae.register_to_config(scaling_factor=scaling_factor, shift_factor=shift_factor)
    pipe = FluxPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(**FLUX_SCHEDULER),
        vae=vae,
        text_encoder=clip_text_model(clip_tok),
        tokenizer=clip_tok,
        text_encoder_2=T5EncoderModel(T5Config(**T5, vocab_size=len(t5_tok))),
        tokenizer_2=t5_tok,
        transformer=FluxTransformer2DModel(**_flux_config(vae)),
    )
    pipe.default_sample_size = IMAGE_SIZE // 4
    return pipe
