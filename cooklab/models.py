"""Where cooklab's models come from: tiny random pipelines, the trained Toy Kitchen models, real checkpoints.

Three kinds of models, all returned as the stock diffusers pipelines
(``StableDiffusionPipeline``, ``FluxPipeline``):

* ``tiny_sd`` and ``tiny_flux``: **tiny, random weights, built in code** (like the
  ``tiny-random-*`` test models on the Hugging Face Hub). The real pipeline classes from very
  small configs; no file, no network, two denoising steps at 64x64 on a CPU in a fraction of a
  second. Their images are noise, but every tensor has the shape and the code path of the
  full-size model: the tests, the equivalence checks and the benchmarks use them.
* ``toy_sd`` and ``toy_flux``: **trained**, the Toy Kitchen models shipped in
  ``data/toykitchen/`` (defined in ``cooklab.toykitchen.models``, re-exported here). They draw
  recognisable pictures of the Toy Kitchen's world and are the offline default of the demo,
  ``cooklab generate`` and the notebooks. ``toy_clip`` is the CLIP trained on the same world,
  the offline backbone of ``cooklab.metrics``' CLIP measures; ``toy_autoencoder`` the autoencoder
  the next Toy Kitchen model sets are trained on (``docs/toykitchen.md``). The GroundingDINO + SAM
  trained on the same world load with ``cooklab.grounding.GroundedSAM.toy()``.
* ``load_sd`` and ``load_flux``: real checkpoints (a Hugging Face Hub id or a local folder).
  They read ``model_index.json`` first, so a checkpoint of the wrong family fails at once with
  a ``CheckpointError`` that says what was found and what to call instead, and they turn hub
  and network failures into a ``CheckpointError`` that says how to get the files
  (``cooklab.hub``).

The naming rule for models: ``tiny_*`` means random weights from a config in code (as in
``cooklab.grounding.tiny``), ``toy_*`` the trained Toy Kitchen models. The tiny pipelines'
tokenizers are built in memory by ``cooklab.word_tokenizers``.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import huggingface_hub
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
from safetensors import SafetensorError, safe_open
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer, T5Config, T5EncoderModel

from .errors import CheckpointError, ConfigError
from .hub import HUB_ERRORS, explain_hub_error, hub_kwargs, is_repo_id
from .toykitchen.models import toy_autoencoder, toy_clip, toy_flux, toy_sd
from .word_tokenizers import TINY_CLIP_MAX_LENGTH, TINY_T5_MAX_LENGTH, tiny_clip_tokenizer, tiny_t5_tokenizer

__all__ = [
    "TINY_T5_MAX_LENGTH",
    "default_device",
    "default_dtype",
    "describe",
    "load_flux",
    "load_sd",
    "tiny_flux",
    "tiny_sd",
    "toy_autoencoder",
    "toy_clip",
    "toy_flux",
    "toy_sd",
]

# ---------------------------------------------------------------------------
# Tiny configs (read these next to the real ones to see what each number does)
# ---------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------
# Devices and dtypes
# ---------------------------------------------------------------------------


def default_device() -> torch.device:
    """The best device here: CUDA, else Apple MPS, else CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def default_dtype(device, family: str = "sd") -> torch.dtype:
    """float32 on the CPU; on an accelerator float16 for SD and bfloat16 for Flux.

    Flux was trained in bfloat16 and overflows in float16; SD 1.x/2.x run fine in float16.
    """
    if family not in ("sd", "flux"):
        raise ConfigError(f"default_dtype: family must be 'sd' or 'flux', got {family!r}")
    if torch.device(device).type == "cpu":
        return torch.float32
    return torch.float16 if family == "sd" else torch.bfloat16


# ---------------------------------------------------------------------------
# Loading real checkpoints
# ---------------------------------------------------------------------------

_SD_HELP = "use cooklab.models.load_sd / cooklab.RecipeDiffusion with an SD 1.x/2.x checkpoint"
_FLUX_HELP = "use cooklab.models.load_flux / cooklab.CookAnything"


def _advice(found: str) -> str:
    """What to do with a checkpoint whose pipeline class is ``found``."""
    if found.startswith("Flux"):
        return f"this is a {found} checkpoint; {_FLUX_HELP}"
    if found.startswith("StableDiffusionXL"):
        return (
            f"this is a {found} (SDXL) checkpoint; SDXL is not supported by RecipeDiffusion yet, "
            "use an SD 1.x/2.x checkpoint such as stable-diffusion-v1-5/stable-diffusion-v1-5"
        )
    if found.startswith("StableDiffusion3"):
        return f"this is a {found} (SD3) checkpoint; SD3 is not supported, {_SD_HELP} or a FLUX.1 one"
    if found == "StableDiffusionPipeline":
        return f"this is a StableDiffusionPipeline checkpoint; {_SD_HELP}"
    return (
        f"this is a {found} checkpoint; cooklab supports plain text-to-image "
        "StableDiffusionPipeline (load_sd) and FluxPipeline (load_flux) checkpoints"
    )


def _read_model_index(id_or_path: str, loader: str, hub: dict[str, Any]) -> tuple[str, bool]:
    """Return (pipeline class in model_index.json, is_local) or raise CheckpointError."""
    path = Path(id_or_path).expanduser()
    if path.is_dir():
        index = path / "model_index.json"
        if not index.is_file():
            raise CheckpointError(
                f"{str(path)!r} has no model_index.json, so it is not a diffusers pipeline folder. "
                f"Pass a folder saved with pipe.save_pretrained(DIR) or downloaded with "
                f"`hf download <repo id> --local-dir DIR`, or a hub id, to {loader}."
            )
        try:
            config = json.loads(index.read_text())
        except (OSError, ValueError) as error:
            raise CheckpointError(f"cannot read {str(index)!r}: {error}") from error
        return str(config.get("_class_name")), True
    if path.exists():
        raise CheckpointError(
            f"{id_or_path!r} is a file, not a diffusers pipeline folder; pass the folder that holds "
            f"model_index.json (load_sd also takes a single .safetensors/.ckpt file) to {loader}."
        )
    if not is_repo_id(id_or_path):
        raise CheckpointError(
            f"{id_or_path!r} is not an existing folder, nor a valid Hugging Face Hub id like 'org/name'."
        )
    try:  # fetch only model_index.json (a few hundred bytes) before any weights
        index = huggingface_hub.hf_hub_download(id_or_path, "model_index.json", **hub)
    except HUB_ERRORS as error:
        raise explain_hub_error(id_or_path, error) from error
    return str(json.loads(Path(index).read_text()).get("_class_name")), False


def _single_file_kind(path: Path) -> str:
    """Guess the family of an original-format .safetensors/.ckpt file from its key names."""
    try:
        if path.suffix == ".safetensors":
            with safe_open(str(path), framework="pt") as file:  # reads the header only
                keys = list(file.keys())
        else:
            state = torch.load(str(path), map_location="cpu", mmap=True, weights_only=True)
            keys = list(state.get("state_dict", state))
    except (OSError, RuntimeError, pickle.UnpicklingError, SafetensorError) as error:
        raise CheckpointError(f"cannot read the checkpoint file {str(path)!r}: {error}") from error
    if any("double_blocks." in key for key in keys):
        return "FluxPipeline"
    if any("joint_blocks." in key for key in keys):
        return "StableDiffusion3Pipeline"
    if any(key.startswith("conditioner.embedders.") for key in keys):
        return "StableDiffusionXLPipeline"
    if any(key.startswith("model.diffusion_model.input_blocks.") for key in keys):
        return "StableDiffusionPipeline"
    return "unknown"


def _load_sd_single_file(path: Path, device, dtype, kwargs: dict[str, Any]) -> StableDiffusionPipeline:
    """load_sd for one original-format SD file (as published on Civitai or in the SD repos)."""
    device = torch.device(device) if device is not None else default_device()
    dtype = dtype or kwargs.pop("torch_dtype", None) or default_dtype(device, "sd")
    kind = _single_file_kind(path)
    if kind == "unknown":
        raise CheckpointError(
            f"{str(path)!r} does not look like a Stable Diffusion checkpoint (no "
            "'model.diffusion_model.input_blocks.*' weights); pass an SD 1.x/2.x file or a diffusers folder."
        )
    if kind != "StableDiffusionPipeline":
        raise CheckpointError(f"{str(path)!r}: {_advice(kind)}.")
    try:
        # The component configs come from the hub unless config=<local diffusers SD folder> is passed.
        pipe = StableDiffusionPipeline.from_single_file(str(path), dtype=dtype, **kwargs)
    except HUB_ERRORS as error:
        raise CheckpointError(
            f"{str(path)!r}: diffusers could not build the pipeline from this single file "
            f"({type(error).__name__}: {error}). It needs the SD component configs from the hub: "
            "pass config=<a local diffusers SD folder of the same version>, or convert the file "
            "on a machine with hub access and pass the saved folder."
        ) from error
    return pipe.to(device)


def _load_pipeline(pipeline_class, id_or_path: str, device, dtype, family: str, kwargs: dict[str, Any]):
    """Shared body of load_sd / load_flux: check model_index.json, load, check tokenizers, move."""
    loader = f"load_{family}"
    device = torch.device(device) if device is not None else default_device()
    old_name = kwargs.pop("torch_dtype", None)  # diffusers' former name for dtype
    dtype = dtype or old_name or default_dtype(device, family)
    hub = hub_kwargs(kwargs)
    found, is_local = _read_model_index(id_or_path, loader, hub)
    if found != pipeline_class.__name__:
        raise CheckpointError(f"{loader}({id_or_path!r}): {_advice(found)}.")
    source = str(Path(id_or_path).expanduser()) if is_local else id_or_path
    if not is_local:
        kwargs.update(hub)
    try:
        pipe = pipeline_class.from_pretrained(source, dtype=dtype, **kwargs)
    except HUB_ERRORS as error:
        if is_local:
            raise CheckpointError(
                f"{loader}: cannot load the folder {source!r} ({type(error).__name__}: {error})"
            ) from error
        raise explain_hub_error(id_or_path, error) from error
    for name in ("tokenizer", "tokenizer_2"):  # offline loads can give a 2-token tokenizer without an error
        tokenizer = getattr(pipe, name, None)
        if tokenizer is not None and len(tokenizer) <= 2:
            raise CheckpointError(
                f"{loader}({id_or_path!r}): {name} loaded with only {len(tokenizer)} tokens, so its files are "
                f"missing or incomplete; download the whole repo (`hf download <id> --local-dir DIR`) and pass DIR."
            )
    return pipe.to(device)


def load_sd(id_or_path: str, device=None, dtype=None, **from_pretrained_kwargs) -> StableDiffusionPipeline:
    """Load an SD 1.x / 2.x ``StableDiffusionPipeline`` from a hub id or a local folder.

    ``id_or_path`` is a hub id (``"stable-diffusion-v1-5/stable-diffusion-v1-5"``,
    ``"stabilityai/stable-diffusion-2-1-base"``), a folder written by
    ``save_pretrained`` / ``hf download``, or a single original-format
    ``.safetensors`` / ``.ckpt`` file (needs the hub for the component configs,
    or ``config=<local SD folder>``).

    The safety checker is disabled (``safety_checker=None,
    requires_safety_checker=False``): it needs an extra 1.2 GB model and blacks
    out images on false positives; apply your own filter if you publish images.

    ``device`` defaults to ``default_device()`` and ``dtype`` to
    ``default_dtype(device, "sd")`` (float16 on a GPU, float32 on the CPU).
    Other keywords go to ``StableDiffusionPipeline.from_pretrained``.

    Raises ``CheckpointError`` for a missing folder, a folder without
    ``model_index.json``, a checkpoint of another family (Flux, SDXL, SD3 ...),
    or a hub that cannot be reached (with the fix in the message).
    """
    kwargs = {"safety_checker": None, "requires_safety_checker": False, **from_pretrained_kwargs}
    path = Path(id_or_path).expanduser()
    if path.is_file() and path.suffix in (".safetensors", ".ckpt"):
        return _load_sd_single_file(path, device, dtype, kwargs)
    return _load_pipeline(StableDiffusionPipeline, id_or_path, device, dtype, "sd", kwargs)


def load_flux(id_or_path: str, device=None, dtype=None, **from_pretrained_kwargs) -> FluxPipeline:
    """Load a FLUX.1 ``FluxPipeline`` (dev or schnell) from a hub id or a local folder.

    ``id_or_path`` is ``"black-forest-labs/FLUX.1-dev"`` (gated: accept the
    license on its page and ``hf auth login``), ``"black-forest-labs/FLUX.1-schnell"``,
    or a folder written by ``save_pretrained`` / ``hf download``.

    ``device`` defaults to ``default_device()`` and ``dtype`` to
    ``default_dtype(device, "flux")`` (bfloat16 on a GPU, float32 on the CPU).
    The full model needs about 33 GB in bfloat16; on a smaller GPU pass
    ``device="cpu"`` and call ``pipe.enable_model_cpu_offload()``.
    Other keywords go to ``FluxPipeline.from_pretrained``.

    Raises ``CheckpointError`` like ``load_sd`` does.
    """
    if Path(id_or_path).expanduser().is_file():
        raise CheckpointError(
            f"load_flux({id_or_path!r}): single-file Flux checkpoints are not supported; pass a "
            "diffusers folder (`hf download black-forest-labs/FLUX.1-dev --local-dir DIR`) or a hub id."
        )
    return _load_pipeline(FluxPipeline, id_or_path, device, dtype, "flux", dict(from_pretrained_kwargs))


def describe(pipe: DiffusionPipeline) -> dict[str, Any]:
    """Summarise a pipeline for notebooks and for recording next to results.

    Returns ``{"class", "name_or_path", "device", "dtype", "parameters"}`` where
    ``parameters`` maps each model component to its parameter count and has a
    ``"total"`` entry.
    """
    counts = {
        name: sum(p.numel() for p in component.parameters())
        for name, component in pipe.components.items()
        if isinstance(component, torch.nn.Module)
    }
    counts["total"] = sum(counts.values())
    return {
        "class": type(pipe).__name__,
        "name_or_path": pipe.name_or_path,
        "device": str(pipe.device),
        "dtype": str(pipe.dtype).removeprefix("torch."),
        "parameters": counts,
    }
