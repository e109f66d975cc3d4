"""Build tiny offline pipelines and load real Stable Diffusion / Flux checkpoints.

Two kinds of models live here:

* ``tiny_sd`` and ``tiny_flux`` build the *real* diffusers pipeline classes
  (``StableDiffusionPipeline``, ``FluxPipeline``) from very small configs with
  random weights. They need no file and no network, run two denoising steps at
  64x64 on a CPU in a fraction of a second, and are what the tests and the
  quick notebook cells use. Their images are noise, but every tensor has the
  shape and the code path of the full-size model.
* ``load_sd`` and ``load_flux`` load real checkpoints (a Hugging Face Hub id
  or a local folder). They read ``model_index.json`` first, so a checkpoint of
  the wrong family fails at once with a ``CheckpointError`` that says what was
  found and what to call instead, and they turn hub and network failures into a
  ``CheckpointError`` that says how to get the files.

The tiny tokenizers are built in memory: a byte-level CLIP BPE tokenizer and a
unigram T5 tokenizer whose vocabularies contain a few hundred cooking words
(``COOKING_WORDS``) as single tokens and fall back to characters for
everything else.
"""

from __future__ import annotations

import json
import os
import pickle
import string
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
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
from huggingface_hub.errors import EntryNotFoundError, GatedRepoError, HFValidationError, RepositoryNotFoundError
from huggingface_hub.utils import validate_repo_id
from safetensors import SafetensorError, safe_open
from tokenizers import pre_tokenizers
from transformers import (
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTokenizer,
    T5Config,
    T5EncoderModel,
    T5Tokenizer,
)

from .errors import CheckpointError, ConfigError

__all__ = [
    "COOKING_WORDS",
    "TINY_T5_MAX_LENGTH",
    "default_device",
    "default_dtype",
    "describe",
    "load_flux",
    "load_sd",
    "tiny_clip_tokenizer",
    "tiny_flux",
    "tiny_sd",
    "tiny_t5_tokenizer",
    "toy_flux",
    "toy_sd",
]

# ---------------------------------------------------------------------------
# Vocabulary of the tiny tokenizers
# ---------------------------------------------------------------------------

_WORD_GROUPS = {
    "articles, prepositions, connectives": """
        a an the this that these those some any each every no of in on at to into onto
        from with without by for and or but next near beside behind under over above
        below between inside outside around through across along up down off out top
        bottom left right middle center side front back half full empty one two three
        four five six seven eight ten dozen many few more less very too is are it its
        then while after before until all other same another
    """,
    "containers and tools": """
        bowl plate dish pan pot skillet wok saucepan tray sheet oven stove grill kettle
        cup mug glass jar bottle can tin box bag basket board cutting knife fork spoon
        ladle whisk spatula tongs sieve strainer colander grater peeler mortar pestle
        rolling pin mold mould ramekin casserole platter saucer teapot pitcher jug
        blender mixer processor toaster microwave fridge freezer counter table napkin
        cloth towel lid rack skewer thermometer scale timer foil parchment wrap
    """,
    "ingredients": """
        water salt pepper sugar flour butter oil olive egg eggs milk cream cheese yogurt
        bread rice pasta noodle noodles dough crust bean beans lentil chickpea tofu meat
        beef pork lamb chicken duck turkey bacon ham sausage fish salmon tuna cod shrimp
        prawn crab lobster mussel clam squid tomato tomatoes potato potatoes onion onions
        garlic ginger carrot carrots celery pea peas corn cabbage lettuce spinach kale
        broccoli cauliflower cucumber zucchini eggplant pumpkin squash mushroom mushrooms
        leek radish beet avocado apple apples banana bananas orange oranges lemon lime
        grape grapes berry berries strawberry strawberries blueberry raspberry cherry
        cherries peach pear plum mango pineapple melon watermelon coconut fig date raisin
        nut nuts almond walnut peanut hazelnut pistachio seed seeds sesame honey syrup
        jam chocolate cocoa vanilla cinnamon nutmeg clove cumin paprika chili curry
        basil parsley cilantro mint thyme rosemary oregano sage dill bay leaf leaves herb
        herbs spice spices sauce soup stock broth gravy vinegar mustard ketchup mayonnaise
        soy wine beer juice coffee tea ice yeast baking soda powder starch oat oats cereal
        cake cookie cookies pie tart pastry muffin pancake pancakes waffle bun roll toast
        sandwich burger pizza salad stew curry omelette sushi taco dumpling dumplings
    """,
    "cooking verbs": """
        cook bake boil fry roast grill steam simmer stew poach saute sear toast melt mix
        stir whisk beat fold knead roll chop slice dice mince cut peel grate crush mash
        blend pour add put place set serve season sprinkle spread brush drizzle garnish
        top fill stuff wrap cover uncover heat warm cool chill freeze thaw rest drain
        rinse wash soak marinate coat dip dust sift measure weigh combine separate
        shape press squeeze zest strain whip cream reduce thicken taste plate remove take
        cooking baking boiling frying roasting stirring chopping slicing mixing pouring
        chopped sliced diced minced grated peeled mashed melted mixed boiled fried baked
        roasted grilled steamed toasted whipped beaten stuffed
    """,
    "colours": """
        red orange yellow green blue purple pink brown black white grey gray golden
        silver cream beige dark light pale bright
    """,
    "materials and textures": """
        wood wooden metal steel iron copper ceramic porcelain stone marble plastic paper
        linen cotton crispy crunchy soft hard smooth creamy fluffy juicy tender raw
        sticky thick thin flaky glossy shiny crumbly moist dry wet
    """,
    "adjectives": """
        hot cold fresh ripe sweet sour salty bitter spicy savory savoury delicious tasty
        big small large little tiny huge round square long short tall flat deep shallow
        whole clean dirty new old homemade rustic simple plain fancy beautiful neat messy
        steaming frozen cooked uncooked finished ready golden brown charred caramelized
        close view photo overhead kitchen food meal breakfast lunch dinner dessert recipe
        step ingredient
    """,
}

#: The words the tiny tokenizers keep as single tokens (lower case, letters only, no duplicates).
COOKING_WORDS: tuple[str, ...] = tuple(dict.fromkeys(word for group in _WORD_GROUPS.values() for word in group.split()))

#: Longest T5 prompt, in tokens, the tiny Flux text encoder is built for. Pass it as
#: ``max_sequence_length`` to a ``tiny_flux()`` pipeline (FluxPipeline defaults to 512).
#: T5 has no position table, only relative-position buckets, so longer sequences still
#: run; beyond this distance all positions share the last bucket.
TINY_T5_MAX_LENGTH = 64

_CLIP_MAX_LENGTH = 77  # CLIP's position table: 77 tokens incl. start and end tokens
_CLIP_BOS, _CLIP_EOS = "<|startoftext|>", "<|endoftext|>"
_END_OF_WORD = "</w>"  # CLIP's BPE marks the last symbol of every word with this suffix


def tiny_clip_tokenizer(words: Sequence[str] = COOKING_WORDS, max_length: int = _CLIP_MAX_LENGTH) -> CLIPTokenizer:
    """Build a CLIP byte-level BPE tokenizer in memory (no files).

    * Alphabet: the 256 byte-level symbols, each also in an end-of-word form
      (``"a</w>"``), so any UTF-8 text can be tokenized: an unknown word falls
      back to one token per byte.
    * Merges: every word of ``COOKING_WORDS`` is built from its end, one
      character at a time (``"l</w>"`` -> ``"wl</w>"`` -> ``"owl</w>"`` ->
      ``"bowl</w>"``). Each merge joins a single character to a token that ends
      a word, so a word has only one mergeable pair at any moment and the order
      of the merges never matters: vocabulary words always become one token,
      and unknown words keep their longest known ending (``"xbowl"`` ->
      ``"x"``, ``"bowl</w>"``).

    ``model_max_length`` is 77, like the real CLIP tokenizer. ``words`` and ``max_length``
    build another vocabulary the same way (the Toy Kitchen's tokenizers).
    """
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())  # 256 symbols
    vocab = {symbol: index for index, symbol in enumerate(alphabet)}
    for symbol in alphabet:
        vocab[symbol + _END_OF_WORD] = len(vocab)
    merges = []
    for word in words:
        ending = word[-1] + _END_OF_WORD
        for char in reversed(word[:-1]):
            merged = char + ending
            if merged not in vocab:
                vocab[merged] = len(vocab)
                merges.append((char, ending))
            ending = merged
    vocab[_CLIP_BOS] = len(vocab)
    vocab[_CLIP_EOS] = len(vocab)
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=max_length)
    assert len(tokenizer) > 2, "in-memory CLIP tokenizer came out empty"
    return tokenizer


def tiny_t5_tokenizer(words: Sequence[str] = COOKING_WORDS, max_length: int = TINY_T5_MAX_LENGTH) -> T5Tokenizer:
    """Build a T5 unigram tokenizer in memory (no files).

    Pieces are the three special tokens, the word-start marker ``"▁"``, single
    characters (ASCII letters of both cases, digits, punctuation, accented Latin
    letters) and ``"▁" + word`` for every word of ``COOKING_WORDS``. Unigram
    picks the segmentation with the highest total score, and a whole word
    (score -5) beats spelling it out (-3 for ``"▁"`` and -6 per character).
    Other characters (emoji, CJK ...) become ``<unk>``. Like the real T5
    tokenizer it is case sensitive and has no start token; it appends ``</s>``.
    """
    specials = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]  # ids 0, 1, 2 as in T5
    latin = [chr(code) for code in range(0xC0, 0x100) if chr(code) not in "×÷"]
    chars = string.ascii_letters + string.digits + string.punctuation + "".join(latin)
    pieces = specials + [("▁", -3.0)]
    pieces += [(char, -6.0) for char in chars]
    pieces += [("▁" + word, -5.0) for word in words]
    tokenizer = T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=max_length)
    assert len(tokenizer) > 2, "in-memory T5 tokenizer came out empty"
    return tokenizer


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
    max_position_embeddings=_CLIP_MAX_LENGTH,
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
    """A real ``StableDiffusionPipeline`` with tiny random weights (no file, no network).

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
    """A real ``FluxPipeline`` with tiny random weights (no file, no network).

    Same seeding rules as ``tiny_sd``. Default image size 64x64; height and
    width must be multiples of 16 (VAE factor 8 x 2x2 packing), and 64x64 gives
    4x4 = 16 image tokens. Pass ``max_sequence_length=TINY_T5_MAX_LENGTH`` when
    calling it (the pipeline's default, 512, also runs but is 8x more text).
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


def toy_sd(path=None, device=None, dtype=None) -> StableDiffusionPipeline:
    """The Toy Kitchen's trained SD-style pipeline (``data/toykitchen/sd``; see ``cooklab.toykitchen.models``)."""
    from .toykitchen.models import toy_sd as load

    return load(path, device, dtype)


def toy_flux(path=None, device=None, dtype=None) -> FluxPipeline:
    """The Toy Kitchen's trained Flux-style pipeline (``data/toykitchen/flux``; see ``cooklab.toykitchen.models``)."""
    from .toykitchen.models import toy_flux as load

    return load(path, device, dtype)


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


def _is_offline() -> bool:
    """True when HF_HUB_OFFLINE is set now or was set when huggingface_hub was imported."""
    flag = os.environ.get("HF_HUB_OFFLINE", "").strip().lower()
    return huggingface_hub.constants.HF_HUB_OFFLINE or flag in ("1", "true", "yes", "on")


def _is_repo_id(text: str) -> bool:
    try:
        validate_repo_id(text)
    except HFValidationError:
        return False
    return True


def _hub_error(repo_id: str, error: BaseException) -> CheckpointError:
    """Turn a hub / network failure into a CheckpointError that says how to fix it."""
    chain, cause = [], error
    while cause is not None and len(chain) < 10:  # diffusers re-raises hub errors as OSError
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    download = f"download it on a machine with hub access (`hf download {repo_id} --local-dir DIR`) and pass DIR instead of the id"
    if any(isinstance(e, GatedRepoError) for e in chain):
        problem = "is a gated repository and this machine has no access to it"
        fix = f"accept its license on https://huggingface.co/{repo_id} and run `hf auth login`, or {download}"
    elif any(isinstance(e, RepositoryNotFoundError) for e in chain):
        problem = "was not found on the Hugging Face Hub (misspelled, private, or gated)"
        fix = f"check the id; for a private or gated repo run `hf auth login`; or {download}"
    elif _is_offline():
        problem = "is not in the local Hugging Face cache, and HF_HUB_OFFLINE is set so the hub was not asked"
        fix = f"{download}, or unset HF_HUB_OFFLINE if this machine can reach the hub"
    else:
        problem = "could not be fetched: the Hugging Face Hub could not be reached or the repo is missing/gated"
        fix = f"{download}; for a gated repo run `hf auth login`"
    return CheckpointError(f"{repo_id!r} {problem} ({type(error).__name__}: {error}). Fix: {fix}.")


# Errors the hub, the network and diffusers raise for "cannot get these files"
# (huggingface_hub's errors and diffusers' EnvironmentError are OSError subclasses).
_HUB_ERRORS = (OSError, EntryNotFoundError, httpx.HTTPError)


def _read_model_index(id_or_path: str, loader: str, hub_kwargs: dict[str, Any]) -> tuple[str, bool]:
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
    if not _is_repo_id(id_or_path):
        raise CheckpointError(f"{id_or_path!r} is not an existing folder, nor a valid Hugging Face Hub id like 'org/name'.")
    try:  # fetch only model_index.json (a few hundred bytes) before any weights
        index = huggingface_hub.hf_hub_download(id_or_path, "model_index.json", **hub_kwargs)
    except _HUB_ERRORS as error:
        raise _hub_error(id_or_path, error) from error
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
    except _HUB_ERRORS as error:
        raise CheckpointError(
            f"{str(path)!r}: diffusers could not build the pipeline from this single file "
            f"({type(error).__name__}: {error}). It needs the SD component configs from the hub: "
            "pass config=<a local diffusers SD folder of the same version>, or convert the file "
            "on a machine with hub access and pass the saved folder."
        ) from error
    return pipe.to(device)


def _hub_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The from_pretrained keywords that also matter for fetching model_index.json."""
    names = ("cache_dir", "revision", "token", "local_files_only")
    hub = {name: kwargs[name] for name in names if name in kwargs}
    if _is_offline():
        hub["local_files_only"] = True  # answer from the cache at once, never retry the network
    return hub


def _load_pipeline(pipeline_class, id_or_path: str, device, dtype, family: str, kwargs: dict[str, Any]):
    """Shared body of load_sd / load_flux: check model_index.json, load, check tokenizers, move."""
    loader = f"load_{family}"
    device = torch.device(device) if device is not None else default_device()
    old_name = kwargs.pop("torch_dtype", None)  # diffusers' former name for dtype
    dtype = dtype or old_name or default_dtype(device, family)
    hub_kwargs = _hub_kwargs(kwargs)
    found, is_local = _read_model_index(id_or_path, loader, hub_kwargs)
    if found != pipeline_class.__name__:
        raise CheckpointError(f"{loader}({id_or_path!r}): {_advice(found)}.")
    source = str(Path(id_or_path).expanduser()) if is_local else id_or_path
    if not is_local:
        kwargs.update(hub_kwargs)
    try:
        pipe = pipeline_class.from_pretrained(source, dtype=dtype, **kwargs)
    except _HUB_ERRORS as error:
        if is_local:
            raise CheckpointError(f"{loader}: cannot load the folder {source!r} ({type(error).__name__}: {error})") from error
        raise _hub_error(id_or_path, error) from error
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
