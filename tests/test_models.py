"""Tests for cooklab.models: tiny offline pipelines and checked checkpoint loaders (CPU, no network)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import json  # noqa: E402
import time  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
from diffusers import FluxPipeline, StableDiffusionPipeline, UNet2DConditionModel  # noqa: E402
from PIL import Image  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import CLIPTextModel, T5EncoderModel  # noqa: E402

from cooklab.errors import CheckpointError, ConfigError  # noqa: E402
from cooklab.models import (  # noqa: E402
    TINY_T5_MAX_LENGTH,
    default_device,
    default_dtype,
    describe,
    load_flux,
    load_sd,
    tiny_flux,
    tiny_sd,
)
from cooklab.word_tokenizers import COOKING_WORDS, tiny_clip_tokenizer, tiny_t5_tokenizer  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def one_cpu_thread():
    # Tiny models gain nothing from threads, and on a busy 2-core machine two
    # torch threads made a 2-step generation ~100x slower.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def sd():
    return tiny_sd()


@pytest.fixture(scope="module")
def flux():
    return tiny_flux()


@pytest.fixture(scope="module")
def sd_folder(sd, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-sd")
    sd.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def flux_folder(flux, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-flux")
    flux.save_pretrained(folder)
    return folder


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# --- tiny pipelines ----------------------------------------------------------


def test_tiny_pipelines_are_the_real_diffusers_classes(sd, flux):
    assert type(sd) is StableDiffusionPipeline
    assert isinstance(sd.unet, UNet2DConditionModel)
    assert isinstance(sd.text_encoder, CLIPTextModel)
    assert sd.safety_checker is None and sd.feature_extractor is None
    assert not sd.unet.training and not flux.transformer.training
    assert type(flux) is FluxPipeline
    assert isinstance(flux.text_encoder_2, T5EncoderModel)
    assert sd.scheduler.config.beta_schedule == "scaled_linear"
    assert flux.scheduler.config.use_dynamic_shifting


@pytest.mark.parametrize("build", [tiny_sd, tiny_flux])
def test_weights_depend_only_on_seed_and_leave_global_rng_alone(build):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a, b, c = build(seed=0), build(seed=0), build(seed=1)
    assert torch.equal(torch.rand(3), expected)  # global RNG untouched
    main = "unet" if isinstance(a, StableDiffusionPipeline) else "transformer"
    for name in (main, "vae", "text_encoder"):
        assert _same_weights(getattr(a, name), getattr(b, name)), name
        assert not _same_weights(getattr(a, name), getattr(c, name)), name


def test_vae_scale_factor_is_8_and_default_size_is_64(sd, flux):
    assert sd.vae_scale_factor == 8 and flux.vae_scale_factor == 8
    assert sd.unet.config.sample_size * sd.vae_scale_factor == 64
    assert flux.default_sample_size * flux.vae_scale_factor == 64


def test_device_and_dtype_arguments_move_the_pipeline():
    pipe = tiny_flux(device="cpu", dtype=torch.bfloat16)
    assert pipe.dtype == torch.bfloat16 and pipe.device.type == "cpu"


def test_sd_has_self_attention_in_down_mid_and_up_blocks(sd):
    self_attn = [name for name in sd.unet.attn_processors if name.endswith("attn1.processor")]
    assert "down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor" in self_attn
    assert "mid_block.attentions.0.transformer_blocks.0.attn1.processor" in self_attn
    assert any(name.startswith("up_blocks.1.attentions.") for name in self_attn)


def test_two_step_generation_gives_64px_images(sd, flux):
    out = sd("a bowl of red tomatoes", num_inference_steps=2, generator=torch.Generator().manual_seed(0))
    assert isinstance(out.images[0], Image.Image) and out.images[0].size == (64, 64)
    out = flux(
        "a bowl",
        num_inference_steps=2,
        height=64,
        width=64,
        max_sequence_length=TINY_T5_MAX_LENGTH,
        generator=torch.Generator().manual_seed(0),
    )
    assert isinstance(out.images[0], Image.Image) and out.images[0].size == (64, 64)


def test_describe(sd):
    info = describe(sd)
    assert info["class"] == "StableDiffusionPipeline"
    assert info["name_or_path"] == "cooklab.models.tiny_sd(seed=0)"
    assert info["device"] == "cpu" and info["dtype"] == "float32"
    params = info["parameters"]
    assert params["total"] == params["unet"] + params["vae"] + params["text_encoder"] > 0


# --- tokenizers --------------------------------------------------------------


def test_clip_tokenizer_keeps_cooking_words_whole():
    tokenizer = tiny_clip_tokenizer()
    assert len(tokenizer) > 2 and tokenizer.model_max_length == 77
    for word in COOKING_WORDS:
        assert tokenizer.tokenize(word) == [word + "</w>"], word
    assert tokenizer.tokenize("xbowl") == ["x", "bowl</w>"]  # unknown word: characters + known ending


@pytest.mark.parametrize("text", ["crème brûlée 🍰 日本の料理", "Ünïcödé ÑANDÚ", "", "3 eggs & 200g flour!"])
def test_clip_tokenizer_handles_any_text(text):
    tokenizer = tiny_clip_tokenizer()
    ids = tokenizer(text).input_ids
    assert ids[0] == tokenizer.bos_token_id and ids[-1] == tokenizer.eos_token_id
    assert tokenizer.unk_token_id not in ids[1:-1]  # byte-level: every character is known


def test_clip_tokenizer_is_lossless_on_unicode_words():
    tokenizer = tiny_clip_tokenizer()
    text = "crème brûlée 🍰 日本の料理"
    assert tokenizer.decode(tokenizer(text).input_ids, skip_special_tokens=True) == text


def test_clip_tokenizer_truncates_long_text_to_77():
    tokenizer = tiny_clip_tokenizer()
    ids = tokenizer("stir the soup " * 100, padding="max_length", truncation=True, return_tensors="pt").input_ids
    assert ids.shape == (1, 77)


def test_t5_tokenizer_keeps_cooking_words_whole_and_spells_the_rest():
    tokenizer = tiny_t5_tokenizer()
    assert len(tokenizer) > 2 and tokenizer.model_max_length == TINY_T5_MAX_LENGTH
    for word in COOKING_WORDS:
        assert tokenizer.tokenize(word) == ["▁" + word], word
    assert tokenizer.decode(tokenizer("Crème brûlée in a bowl").input_ids, skip_special_tokens=True) == (
        "Crème brûlée in a bowl"
    )
    ids = tokenizer("x " * 500, padding="max_length", truncation=True).input_ids
    assert len(ids) == TINY_T5_MAX_LENGTH


# --- devices -----------------------------------------------------------------


def test_default_device_and_dtype():
    assert isinstance(default_device(), torch.device)
    assert default_dtype("cpu") == torch.float32 and default_dtype("cpu", "flux") == torch.float32
    assert default_dtype("cuda", "sd") == torch.float16
    assert default_dtype("cuda", "flux") == torch.bfloat16
    with pytest.raises(ConfigError):
        default_dtype("cpu", "sdxl")


# --- loaders -----------------------------------------------------------------


def test_load_sd_from_saved_folder_matches(sd, sd_folder):
    loaded = load_sd(str(sd_folder), device="cpu")
    assert type(loaded) is StableDiffusionPipeline and loaded.safety_checker is None
    assert loaded.dtype == torch.float32  # default dtype on the CPU
    for name in ("unet", "vae", "text_encoder"):
        assert _same_weights(getattr(sd, name), getattr(loaded, name)), name
    assert loaded.tokenizer("a bowl").input_ids == sd.tokenizer("a bowl").input_ids


def test_load_flux_from_saved_folder_matches(flux, flux_folder):
    loaded = load_flux(flux_folder, device="cpu")
    assert type(loaded) is FluxPipeline
    assert _same_weights(flux.transformer, loaded.transformer)


def test_load_sd_refuses_a_flux_folder(flux_folder):
    with pytest.raises(CheckpointError, match="Flux.*load_flux"):
        load_sd(str(flux_folder), device="cpu")


def test_load_flux_refuses_an_sd_folder(sd_folder):
    with pytest.raises(CheckpointError, match="StableDiffusionPipeline.*load_sd"):
        load_flux(str(sd_folder), device="cpu")


def test_load_sd_refuses_sdxl(tmp_path):
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionXLPipeline"}))
    with pytest.raises(CheckpointError, match="SDXL is not supported"):
        load_sd(str(tmp_path), device="cpu")


def test_empty_or_missing_folder_raises(tmp_path):
    with pytest.raises(CheckpointError, match="model_index.json"):
        load_sd(str(tmp_path), device="cpu")
    with pytest.raises(CheckpointError, match="not an existing folder"):
        load_flux(str(tmp_path / "missing" / "deeper"), device="cpu")


@pytest.mark.parametrize(
    ("key", "message"),
    [("double_blocks.0.img_attn.qkv.weight", "Flux"), ("conditioner.embedders.1.model.x", "SDXL")],
)
def test_load_sd_checks_the_kind_of_a_single_file(tmp_path, key, message):
    path = tmp_path / "model.safetensors"
    save_file({key: torch.zeros(1)}, str(path))
    with pytest.raises(CheckpointError, match=message):
        load_sd(str(path), device="cpu")


def test_single_file_problems_raise_checkpoint_error(tmp_path):
    torch.save({"state_dict": {"model.double_blocks.0.x": torch.zeros(1)}}, tmp_path / "flux.ckpt")
    with pytest.raises(CheckpointError, match="Flux"):
        load_sd(str(tmp_path / "flux.ckpt"), device="cpu")
    (tmp_path / "broken.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_sd(str(tmp_path / "broken.safetensors"), device="cpu")
    save_file(
        {"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(8, 4, 3, 3)}, str(tmp_path / "sd.safetensors")
    )
    with pytest.raises(CheckpointError, match="config="):  # offline: diffusers cannot fetch the SD configs
        load_sd(str(tmp_path / "sd.safetensors"), device="cpu")
    with pytest.raises(CheckpointError, match="single-file Flux"):
        load_flux(str(tmp_path / "sd.safetensors"), device="cpu")


def test_unreachable_hub_fails_fast_with_the_fix():
    start = time.perf_counter()
    with pytest.raises(CheckpointError) as info:
        load_sd("no-such-org/no-such-model", device="cpu")
    assert time.perf_counter() - start < 5
    message = str(info.value)
    assert "no-such-org/no-such-model" in message
    assert "hf download no-such-org/no-such-model --local-dir" in message
