"""The LoRA training's switches (issue 26, finding 6): how sigma is drawn, which modules get a LoRA, and whether x_0
is the VAE posterior's mode or a sample. Expected values are computed here from the formulas, not read from the
code: the statistical checks draw 200,000 seeded sigmas and allow a few standard errors."""

import json
import math
from pathlib import Path

import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler
from safetensors import safe_open

from cooklab import ConfigError
from cooklab.cookanything.lora import LoraSpec, add_lora, target_modules_of
from cooklab.training import LoraTrainer, TrainLoraConfig, load_train_config, train_lora
from cooklab.training.config import TrainSettings
from cooklab.training.noise_levels import noise_level_summary, sample_sigmas

ROOT = Path(__file__).resolve().parents[1]
# FLUX.1-dev's scheduler/scheduler_config.json (the reference script's noise_scheduler)
FLUX_DEV_SCHEDULER = dict(
    num_train_timesteps=1000,
    shift=3.0,
    use_dynamic_shifting=True,
    base_shift=0.5,
    max_shift=1.15,
    base_image_seq_len=256,
    max_image_seq_len=4096,
)
DRAWS = 200_000


def draw(settings, tokens, seed=0):
    return sample_sigmas(settings, FLUX_DEV_SCHEDULER, tokens, torch.Generator().manual_seed(seed), DRAWS).double()


def tokens_of(regions, side=512):
    return regions * (side // 16) ** 2  # 8x VAE, 2 x 2 latent pixels per token


def hand_mu(tokens):
    """FLUX.1's dynamic shift mu: linear from (256 tokens, 0.5) to (4096 tokens, 1.15)."""
    return 0.5 + (tokens - 256) / (4096 - 256) * (1.15 - 0.5)


def normal_cdf(x):
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def test_the_default_is_uniform_and_unshifted_as_diffusers_flux_lora_script():
    train = TrainSettings()
    assert (train.sigma_sampling, train.sigma_shift, train.latents) == ("uniform", False, "sample")
    sigma = draw(train, tokens_of(4))
    assert abs(sigma.median().item() - 0.5) < 0.01
    assert abs((sigma < 0.3).double().mean().item() - 0.3) < 0.01  # shifted logit-normal: 0.023
    assert 0 <= sigma.min() and sigma.max() < 1
    # the reference: u uniform, timestep index floor(1000 u) into the training table of FLUX.1's scheduler (never
    # set_timesteps'd, dynamic shifting: unshifted); its sigmas have the same quantiles (mirrored draw by draw)
    scheduler = FlowMatchEulerDiscreteScheduler(**FLUX_DEV_SCHEDULER)
    u = torch.rand(DRAWS, generator=torch.Generator().manual_seed(1))
    reference = scheduler.sigmas[(u * 1000).long()].double()
    q = torch.tensor([0.05, 0.1, 0.3, 0.5, 0.7, 0.9, 0.95], dtype=torch.float64)
    assert torch.allclose(torch.quantile(sigma, q), torch.quantile(reference, q), atol=0.01)


@pytest.mark.parametrize("regions", [4, 10])
def test_shifted_logit_normal_has_the_issues_median(regions):
    """Issue 26: median 0.76 for 4 regions at 512 x 512, 0.90 for 10; the median of sigmoid(N(0, 1)) is 1/2, and the
    shift maps it to sigmoid(mu); P(sigma < 0.3) = Phi(logit(0.3) - mu)."""
    tokens = tokens_of(regions)
    mu = hand_mu(tokens)
    median = 1 / (1 + math.exp(-mu))
    below = normal_cdf(math.log(0.3 / 0.7) - mu)
    assert round(median, 2) == {4: 0.76, 10: 0.90}[regions]
    train = TrainSettings(sigma_sampling="logit_normal", sigma_shift=True)
    sigma = draw(train, tokens)
    assert abs(sigma.median().item() - median) < 0.005
    assert abs((sigma < 0.3).double().mean().item() - below) < 0.003  # 0.0229 for 4 regions, 0.0012 for 10
    unshifted = draw(train.model_copy(update={"sigma_shift": False}), tokens)
    assert abs(unshifted.median().item() - 0.5) < 0.005
    summary = noise_level_summary(train, FLUX_DEV_SCHEDULER, [tokens])
    assert summary["sampling"] == "logit_normal" and summary["shift"] is True
    assert abs(summary["canvases"][0]["median"] - median) < 0.005 and summary["canvases"][0]["image_tokens"] == tokens


def test_mode_sampling_is_sd3s_mode_with_heavy_tails():
    """f(v) = 1 - v - s (cos^2(pi v / 2) - 1 + v) decreases in v, so the 10th percentile of sigma is f(0.9)."""
    s = 1.29
    p10 = 1 - 0.9 - s * (math.cos(math.pi * 0.9 / 2) ** 2 - 1 + 0.9)  # 0.197 (uniform: 0.1)
    sigma = draw(TrainSettings(sigma_sampling="mode", mode_scale=s), tokens_of(4))
    assert abs(torch.quantile(sigma, 0.1).item() - p10) < 0.005
    assert abs(sigma.median().item() - 0.5) < 0.005  # f(1/2) = 1/2 for every s


def config(tmp_path, count=1, **train):
    return TrainLoraConfig(
        name="t",
        out=tmp_path / "run",
        model="tiny",
        data={"toy": {"count": count, "steps": 2}},
        lora={"rank": 2},
        canvas={"height": 32, "width": 32},
        train={"steps": 3, "checkpoint_every": 10, **train},
    )


def reaching_the_loss(trainer, monkeypatch, steps=3, **train):
    """(x_0, noise, sigma) that reach the loss in ``steps`` micro steps under the switches ``train``, from the
    trainer's own generator seeded afresh (the one example every time)."""
    import cooklab.training.trainer as module

    seen = []

    def loss(ca, canvas, x0, noise, sigma, guidance, model=None):
        seen.append((x0.clone(), noise.clone(), sigma.clone()))
        return sum((p * 0).sum() for p in trainer.params)

    monkeypatch.setattr(module, "flow_matching_loss", loss)
    trainer.config = trainer.config.model_copy(update={"train": trainer.config.train.model_copy(update=train)})
    trainer.generator.manual_seed(0)
    for _ in range(steps):
        trainer._micro_step()
    return seen


def test_each_switch_changes_what_reaches_the_loss(tmp_path, monkeypatch):
    trainer = LoraTrainer(config(tmp_path), progress=False)
    tokens = trainer.canvas_of(0)[0].layout.image_len
    scheduler = trainer.ca.pipe.scheduler.config

    uniform = reaching_the_loss(trainer, monkeypatch)
    logit = reaching_the_loss(trainer, monkeypatch, sigma_sampling="logit_normal")
    shifted = reaching_the_loss(trainer, monkeypatch, sigma_sampling="logit_normal", sigma_shift=True)
    mode = reaching_the_loss(trainer, monkeypatch, sigma_sampling="mode")
    for other in (logit, mode):
        assert all(a[2] != b[2] for a, b in zip(uniform, other))
    for (*_, u), (*_, s) in zip(logit, shifted):  # the same u, shifted by the canvas's mu
        mu = hand_mu(tokens)
        assert s != u and math.isclose(s.item(), math.exp(mu) / (math.exp(mu) + 1 / u.item() - 1), rel_tol=1e-5)

    # the old trainer (the shipped adapter's settings): noise first, then sigmoid of one normal, shifted; the mode
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(uniform[0][1].shape, generator=g)
    u = torch.sigmoid(torch.randn(1, generator=g))[0]
    assert scheduler["use_dynamic_shifting"]
    old = reaching_the_loss(
        trainer, monkeypatch, steps=1, sigma_sampling="logit_normal", sigma_shift=True, latents="mode"
    )
    assert torch.equal(old[0][1], noise)
    assert math.isclose(old[0][2].item(), math.exp(mu) / (math.exp(mu) + 1 / u.item() - 1), rel_tol=1e-6)

    modes = reaching_the_loss(trainer, monkeypatch, latents="mode")
    samples = reaching_the_loss(trainer, monkeypatch, latents="sample")
    assert all(torch.equal(m[0], modes[0][0]) for m in modes)  # the mode: the same x_0 at every step
    assert all(not torch.equal(s[0], modes[0][0]) for s in samples)  # a sample: another x_0 at every step
    assert not torch.equal(samples[0][0], samples[1][0])
    posterior = trainer.canvas_of(0)[1]
    scale = trainer.ca.pipe.vae.config.scaling_factor
    from cooklab.cookanything.flow_matching import pack_latents

    spread = pack_latents(posterior.std) * scale  # x_0 = mode + scale std eps, eps ~ N(0, 1)
    eps = torch.cat([(s[0] - modes[0][0]) / spread for s in samples]).flatten()
    assert abs(eps.mean().item()) < 0.2 and abs(eps.std().item() - 1) < 0.2
    again = reaching_the_loss(trainer, monkeypatch, latents="sample")  # seeded: the same draws again
    assert all(torch.equal(a[0], b[0]) for a, b in zip(again, samples))


REFERENCE_LORA_LAYERS = [  # diffusers' train_dreambooth_lora_flux.py, target_modules when --lora_layers is not given
    "attn.to_k",
    "attn.to_q",
    "attn.to_v",
    "attn.to_out.0",
    "attn.add_k_proj",
    "attn.add_q_proj",
    "attn.add_v_proj",
    "attn.to_add_out",
    "ff.net.0.proj",
    "ff.net.2",
    "ff_context.net.0.proj",
    "ff_context.net.2",
]


def with_lora(transformer):
    return {name for name, module in transformer.named_modules() if hasattr(module, "lora_A")}


def test_the_feed_forward_preset_puts_lora_layers_on_the_feed_forward_modules(tiny_flux):
    from cooklab.models import tiny_flux as fresh

    transformer = tiny_flux.transformer
    add_lora(transformer, LoraSpec(rank=2, target_modules=target_modules_of("attention+feed_forward")))
    adapted = with_lora(transformer)
    blocks = len(transformer.transformer_blocks)
    for part in ("ff.net.0.proj", "ff.net.2", "ff_context.net.0.proj", "ff_context.net.2"):
        assert {f"transformer_blocks.{b}.{part}" for b in range(blocks)} <= adapted
    reference = fresh(seed=0).transformer
    reference.add_adapter(LoraSpec(rank=2, target_modules=tuple(REFERENCE_LORA_LAYERS)).peft_config())
    assert adapted == with_lora(reference)  # the same modules as diffusers' script adapts
    attention = fresh(seed=0).transformer
    add_lora(attention, LoraSpec(rank=2, target_modules=target_modules_of("attention")))
    assert not any(".ff" in name for name in with_lora(attention)) and with_lora(attention) < adapted
    assert TrainLoraConfig(name="x", out="o", data={"toy": {"count": 1}}).lora.spec().target_modules == (
        target_modules_of("attention+feed_forward")
    )


def test_target_names_that_match_no_module_are_refused(tiny_flux):
    with pytest.raises(ConfigError, match=r"\['ff.net.9'\] match no module.*attention\+feed_forward"):
        add_lora(tiny_flux.transformer, LoraSpec(rank=2, target_modules=("to_q", "ff.net.9")))
    assert with_lora(tiny_flux.transformer) == set()
    with pytest.raises(ConfigError, match="not a preset"):
        target_modules_of("feed_forward")
    with pytest.raises(ValueError, match="at least one module name"):
        TrainLoraConfig(name="x", out="o", data={"toy": {"count": 1}}, lora={"target_modules": []})


def test_the_shipped_adapter_states_the_settings_it_was_trained_with():
    config = load_train_config(ROOT / "data" / "toykitchen" / "lora" / "train.yaml")
    t = config.train
    assert (t.sigma_sampling, t.logit_mean, t.logit_std, t.sigma_shift, t.latents) == (
        "logit_normal",
        0.0,
        1.0,
        True,
        "mode",
    )
    with safe_open(ROOT / "data" / "toykitchen" / "lora" / "adapter" / "pytorch_lora_weights.safetensors", "pt") as f:
        metadata = json.loads(f.metadata()["lora_adapter_metadata"])
    assert sorted(metadata["transformer.target_modules"]) == sorted(config.lora.spec().target_modules)
    card = (ROOT / "data" / "toykitchen" / "lora" / "README.md").read_text(encoding="utf-8")
    for words in ("logit-normal", "shifted", "posterior mode", "attention projections"):
        assert words in card


def test_the_run_log_records_the_noise_levels(tmp_path):
    result = train_lora(config(tmp_path, steps=1, sigma_sampling="logit_normal", sigma_shift=True), progress=False)
    info = json.loads((result.adapter.parent / "training.json").read_text())
    levels = info["noise_levels"]
    tokens = 2 * (32 // 16) ** 2  # 2 regions of 32 x 32 on the tiny model: VAE factor 8, 2 x 2 latent pixels a token
    assert levels["sampling"] == "logit_normal" and levels["shift"] is True and info["latents"] == "sample"
    assert [c["image_tokens"] for c in levels["canvases"]] == [tokens]
    assert abs(levels["canvases"][0]["median"] - 1 / (1 + math.exp(-hand_mu(tokens)))) < 0.01
    assert info["target_modules"] == list(target_modules_of("attention+feed_forward"))


def test_the_shipped_adapter_still_loads_on_the_toy_model():
    import cooklab
    from cooklab.models import toy_flux

    ca = cooklab.CookAnything.from_pipe(toy_flux()).load_lora(ROOT / "data" / "toykitchen" / "lora" / "adapter")
    assert list(ca.lora) == ["cookanything"]


def test_a_run_made_with_names_resumes_under_the_preset_of_the_same_names(tmp_path):
    """A checkpoint's config from before the presets lists the attention names; the same spec as a preset resumes."""
    from cooklab.cookanything.lora import FLUX_ATTENTION_PROJECTIONS

    named = config(tmp_path, steps=2, checkpoint_every=1)
    named = named.model_copy(
        update={"lora": named.lora.model_copy(update={"target_modules": list(FLUX_ATTENTION_PROJECTIONS)})}
    )
    train_lora(named, progress=False)
    preset = named.model_copy(update={"lora": named.lora.model_copy(update={"target_modules": "attention"})})
    preset = preset.model_copy(update={"train": preset.train.model_copy(update={"steps": 3})})
    assert train_lora(preset, progress=False).resumed_from == 2
    other = preset.model_copy(
        update={"lora": preset.lora.model_copy(update={"target_modules": "attention+feed_forward"})}
    )
    with pytest.raises(ConfigError, match="another lora"):
        train_lora(other.model_copy(update={"train": other.train.model_copy(update={"steps": 4})}), progress=False)
