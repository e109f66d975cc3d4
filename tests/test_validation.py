"""Every number checked once, at the edge (``cooklab/checks.py``), and the size guard (``cooklab/size_guard.py``).

One test per finding of issue 25 it answers: 3 (non-finite guidance), 4 (non-finite ``lam``),
7 (a size without bound) and 10 (API types). Checks that need no generation run none: a refusal
is asserted before any denoiser runs (a forward hook that fails the test).
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import cooklab
from cooklab.cli import main
from cooklab.errors import ConfigError, RecipeError

RECIPES = Path(__file__).resolve().parent.parent / "data" / "recipes"
OATS = RECIPES / "overnight_oats.yaml"  # 3 steps
STEPS = ["Put a pot on the table.", "Add water to the pot."]
INF, NAN = float("inf"), float("nan")


def _no_denoising(module):
    """A forward pre-hook that fails the test: the call must be refused before the denoiser runs."""
    return module.register_forward_pre_hook(lambda *a: pytest.fail("the denoiser ran"))


def _generate(out: Path, *extra: str) -> int:
    return main(["generate", str(OATS), "--model", "tiny", "--steps", "2", "--out", str(out), *extra])


def _refused_before_loading(monkeypatch, capsys, tmp_path, *extra: str) -> str:
    """Run ``cooklab generate`` with ``extra``; assert exit 2 before any model loads; return the error output."""
    import cooklab.models

    for loader in ("tiny_sd", "tiny_flux"):
        monkeypatch.setattr(cooklab.models, loader, lambda *a, **k: pytest.fail("the model was loaded"))
    assert _generate(tmp_path / "run", *extra) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "Traceback" not in err
    return err


# ---- finding 3: --guidance inf / nan wrote black frames or turned CFG off silently ---------------------------
@pytest.mark.parametrize("value", [INF, NAN, -INF])
def test_finding_3_non_finite_guidance_is_refused_by_both_pipelines(rd, ca, value):
    hooks = [_no_denoising(rd.unet), _no_denoising(ca.transformer)]
    try:
        with pytest.raises(ConfigError, match="guidance_scale=.*finite number >= 0"):
            rd(STEPS, num_inference_steps=2, height=32, width=32, guidance_scale=value, progress=False)
        with pytest.raises(ConfigError, match="guidance_scale=.*finite number >= 0"):
            ca(STEPS, num_inference_steps=2, height=32, width=32, guidance_scale=value, progress=False)
        with pytest.raises(ConfigError, match="true_cfg_scale=.*finite number >= 0"):
            ca(STEPS, num_inference_steps=2, height=32, width=32, true_cfg_scale=value, progress=False)
    finally:
        for hook in hooks:
            hook.remove()
    for name in ("eta", "guidance_rescale"):  # Recipe Diffusion's other floats: same check
        with pytest.raises(ConfigError, match=f"{name}=.*in \\[0, 1\\]"):
            rd(STEPS, num_inference_steps=2, height=32, width=32, progress=False, **{name: value})
    from cooklab.baselines import InpaintingBaseline, RegionalSD

    for baseline in (InpaintingBaseline(rd), RegionalSD(rd.pipe)):  # the baselines share Recipe Diffusion's check
        with pytest.raises(ConfigError, match="guidance_scale=.*finite number >= 0"):
            baseline(STEPS, num_inference_steps=2, height=32, width=32, guidance_scale=value, progress=False)


@pytest.mark.parametrize("pipeline", ["recipe-diffusion", "cookanything"])
@pytest.mark.parametrize("value", ["inf", "nan"])
def test_finding_3_cli_refuses_non_finite_guidance_before_loading(tmp_path, capsys, monkeypatch, pipeline, value):
    err = _refused_before_loading(monkeypatch, capsys, tmp_path, "--pipeline", pipeline, "--guidance", value)
    assert f"--guidance {value}: use a finite number >= 0" in err


def test_finding_3_evaluation_config_refuses_infinite_guidance(tmp_path):
    from cooklab.evaluation.config import load_config

    body = (
        "name: t\nout: out\nrecipes: {toy: {count: 1}}\nmethods: [{name: independent}]\n"
        "metrics: [oracle_container_consistency]\n"
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text(body + "generation: {guidance: .inf}\n")
    with pytest.raises(ConfigError, match=r"generation\.guidance"):
        load_config(bad)
    grid = tmp_path / "grid.yaml"  # a method's grid reaches the pipeline only when units run: refused on reading
    grid.write_text(body.replace("{name: independent}", "{name: cookanything, grid: {lam: [0.2, .nan]}}"))
    with pytest.raises(ConfigError, match=r"grid\.lam=nan: use a finite number"):
        load_config(grid)


# ---- finding 4: --lam inf / nan wrote black frames, then crashed in the report --------------------------------
@pytest.mark.parametrize("value", [INF, NAN])
def test_finding_4_non_finite_lam_is_refused(ca, value):
    from cooklab.cookanything.settings import CookAnythingSettings

    with pytest.raises(ConfigError, match="lam=.*finite number >= 0"):
        CookAnythingSettings.build(lam=value)  # no model needed
    for name in ("alpha", "lam", "lora_scale"):
        with pytest.raises(ConfigError, match=f"{name}=.*finite number"):
            CookAnythingSettings.build(**{name: value})
    hook = _no_denoising(ca.transformer)
    try:
        with pytest.raises(ConfigError, match="lam="):
            ca(STEPS, num_inference_steps=2, height=32, width=32, lam=value, progress=False)
    finally:
        hook.remove()


@pytest.mark.parametrize("value", ["inf", "nan"])
def test_finding_4_cli_and_training_config_refuse_non_finite_lam(tmp_path, capsys, monkeypatch, value):
    err = _refused_before_loading(monkeypatch, capsys, tmp_path, "--pipeline", "cookanything", "--lam", value)
    assert f"--lam {value}: use a finite number >= 0" in err
    from cooklab.training.config import load_train_config

    config = tmp_path / "train.yaml"
    config.write_text(f"name: t\nout: out\ndata: {{toy: {{count: 1}}}}\ncanvas: {{lam: .{value}}}\n")
    with pytest.raises(ConfigError, match=r"canvas\.lam"):
        load_train_config(config)


# ---- finding 7: --height 10000 --width 10000 ran without bound ------------------------------------------------
def test_finding_7_a_size_too_large_for_the_device_is_refused_with_the_estimate(rd, ca):
    hooks = [_no_denoising(rd.unet), _no_denoising(ca.transformer)]
    try:
        for pipe in (rd, ca):
            with pytest.raises(ConfigError, match=r"GiB for attention.*GiB free.*allow_large=True.*--allow-large"):
                pipe(STEPS, num_inference_steps=2, height=10000, width=10000, progress=False)
    finally:
        for hook in hooks:
            hook.remove()


def test_finding_7_cli_refuses_a_huge_size_and_names_the_flag(tmp_path, capsys):
    assert _generate(tmp_path / "run", "--height", "10000", "--width", "10000") == 2
    err = capsys.readouterr().err
    assert "error:" in err and "GiB for attention" in err and "--allow-large" in err and "Traceback" not in err
    assert not (tmp_path / "run" / "settings.json").exists()


def test_finding_7_the_guard_passes_usual_sizes_and_allow_large(rd):
    from diffusers import FluxTransformer2DModel, UNet2DConditionModel

    from cooklab.size_guard import flux_estimate, guard_size, unet_estimate

    huge = unet_estimate(rd.pipe, torch.device("cpu"), 10000, 10000, 2, 2, cfg=True)
    guard_size(huge, "cpu", allow_large=True)  # the override: no refusal
    small = unet_estimate(rd.pipe, torch.device("cpu"), 64, 64, 30, 4, cfg=True)  # the demo's toy size
    assert small.memory < 2**26
    guard_size(small, "cpu", allow_large=False)
    with torch.device("meta"):  # real shapes, no weights: SD 2.1's U-Net and FLUX.1's attention width
        unet = UNet2DConditionModel(
            sample_size=96,
            block_out_channels=(320, 640, 1280, 1280),
            attention_head_dim=(5, 10, 20, 20),
            cross_attention_dim=1024,
            use_linear_projection=True,
        ).half()
        flux = FluxTransformer2DModel(
            in_channels=64, num_layers=1, num_single_layers=1, attention_head_dim=128, num_attention_heads=24
        ).to(torch.bfloat16)
    sd21 = unet_estimate(SimpleNamespace(unet=unet, vae_scale_factor=8), "cuda", 768, 768, 50, 8, cfg=True)
    guard_size(sd21, "cuda", allow_large=False, free=8 * 2**30)  # a GPU with 8 GiB free
    flux12 = flux_estimate(SimpleNamespace(transformer=flux), "cuda", 12, 64, 64, 13 * 512, 28)  # 1024^2 regions
    guard_size(flux12, "cuda", allow_large=False, free=40 * 2**30)  # an 80 GB GPU with FLUX.1 and T5 loaded
    with pytest.raises(ConfigError, match="allow_large=True"):
        guard_size(flux12, "cuda", allow_large=False, free=2**30)


# ---- finding 10: API types gave raw errors from deep inside ----------------------------------------------------
def test_finding_10_types_are_coerced_or_refused_clearly(rd, ca):
    from cooklab.cookanything.settings import CookAnythingSettings

    with pytest.raises(RecipeError, match=r"load_recipe\(None\): give the path of a recipe file"):
        cooklab.load_recipe(None)
    settings = CookAnythingSettings.build(seed="0", height="32", num_inference_steps=2.0)
    assert (settings.seed, settings.height, settings.num_inference_steps) == (0, 32, 2)
    hooks = [_no_denoising(rd.unet), _no_denoising(ca.transformer)]
    try:
        for pipe in (rd, ca):
            with pytest.raises(ConfigError, match=r"num_inference_steps=2\.5: use a whole number >= 1"):
                pipe(STEPS, num_inference_steps=2.5, height=32, width=32, progress=False)
            with pytest.raises(ConfigError, match="seed=None: give a whole number"):
                pipe(STEPS, seed=None, num_inference_steps=2, height=32, width=32, progress=False)
            with pytest.raises(ConfigError, match="seed='zero': use a whole number"):
                pipe(STEPS, seed="zero", num_inference_steps=2, height=32, width=32, progress=False)
            with pytest.raises(ConfigError, match="height='tall': use a whole number"):
                pipe(STEPS, num_inference_steps=2, height="tall", width=32, progress=False)
    finally:
        for hook in hooks:
            hook.remove()
    out = rd(STEPS[:1], seed="0", num_inference_steps=2, height="32", width=32, output_type="latent", progress=False)
    assert (out.settings["seed"], out.settings["height"]) == (0, 32)  # "64" is 64, not a formatting error


def test_finding_10_the_shared_checks_coerce_what_they_can():
    from cooklab.checks import finite_number, seed_value, whole_number

    assert (whole_number("height", "64"), whole_number("height", 64.0), seed_value("seed", "0")) == (64, 64, 0)
    assert finite_number("alpha", "0.5", low=0, high=1) == 0.5
    for bad in (2.5, True, "2.5", None, INF):
        with pytest.raises(ConfigError, match="num_inference_steps=.*use a whole number >= 1"):
            whole_number("num_inference_steps", bad, minimum=1)
    with pytest.raises(ConfigError, match=r"alpha=1\.5: use a finite number in \[0, 1\]"):
        finite_number("alpha", 1.5, low=0, high=1)
