"""CookAnything true classifier-free guidance (``true_cfg_scale``, ``negative_prompt``)."""

import json
import math

import numpy as np
import pytest
import torch

import cooklab
from cooklab import ConfigError
from cooklab.models import TINY_T5_MAX_LENGTH

STEPS = ["Dice two carrots on a wooden board", "Fry the carrots in a black pan", "Serve the carrots on a white plate"]
KW = dict(num_inference_steps=3, max_sequence_length=TINY_T5_MAX_LENGTH, progress=False, output_type="np")
OFF = dict(regional=False, flexible_rope=False, cscc=False)


def _stock(tiny_flux, seed, **kwargs):
    return tiny_flux(
        STEPS[0],
        num_inference_steps=3,
        max_sequence_length=TINY_T5_MAX_LENGTH,
        generator=torch.Generator().manual_seed(seed),
        output_type="np",
        **kwargs,
    ).images[0]


@pytest.mark.parametrize(("ours", "theirs"), [("blurry", "blurry"), (None, "")])
def test_one_step_true_cfg_equals_stock_flux(ca, tiny_flux, ours, theirs):
    out = ca([STEPS[0]], seed=5, true_cfg_scale=2.0, negative_prompt=ours, **OFF, **KW)
    stock = _stock(tiny_flux, 5, true_cfg_scale=2.0, negative_prompt=theirs)
    assert out.images[0].shape == stock.shape
    assert np.abs(out.images[0] - stock).max() <= 1e-5
    assert not np.array_equal(stock, _stock(tiny_flux, 5))  # true CFG really acts on this model
    assert out.settings["true_cfg_scale"] == 2.0 and out.settings["negative_prompt"] == theirs


def test_true_cfg_scale_one_is_bit_identical_to_off(ca):
    for switches in (OFF, {}):  # plain Flux on the canvas, and every mechanism on
        n = 1 if switches else 3
        plain = ca(STEPS[:n], seed=2, **switches, **KW)
        one = ca(STEPS[:n], seed=2, true_cfg_scale=1.0, **switches, **KW)
        assert all(np.array_equal(a, b) for a, b in zip(plain.images, one.images, strict=True))
        assert plain.settings["true_cfg_scale"] == 1.0 and plain.settings["negative_prompt"] is None
    with pytest.warns(UserWarning, match="negative_prompt='blurry' is ignored"):
        ignored = ca(STEPS, seed=2, true_cfg_scale=0.5, negative_prompt="blurry", **KW)
    assert all(np.array_equal(a, b) for a, b in zip(plain.images, ignored.images, strict=True))
    assert ignored.settings["negative_prompt"] is None


def test_true_cfg_on_the_regional_canvas(ca, tiny_flux):
    before = dict(tiny_flux.transformer.attn_processors)
    off = ca(STEPS, seed=0, **KW)
    cfg = ca(STEPS, seed=0, true_cfg_scale=3.0, negative_prompt="blurry", **KW)
    assert not np.array_equal(off.canvas, cfg.canvas)
    again = ca(STEPS, seed=0, true_cfg_scale=3.0, negative_prompt="blurry", **KW)
    assert all(np.array_equal(a, b) for a, b in zip(cfg.images, again.images, strict=True))
    other = ca(STEPS, seed=0, true_cfg_scale=3.0, negative_prompt="a red car", **KW)
    assert not np.array_equal(cfg.canvas, other.canvas)  # the negative prompt is used
    assert dict(tiny_flux.transformer.attn_processors) == before

    with cooklab.trace(ca) as plain_trace:
        ca(STEPS, seed=0, **KW)
    with cooklab.trace(ca) as tr:
        traced = ca(STEPS, seed=0, true_cfg_scale=3.0, negative_prompt="blurry", **KW)
    assert all(np.array_equal(a, b) for a, b in zip(cfg.images, traced.images, strict=True))
    assert dict(tiny_flux.transformer.attn_processors) == before
    assert len(tr.frames[0].timesteps) == len(plain_trace.frames[0].timesteps) == KW["num_inference_steps"]
    assert tr.steps(0, "text_image") == plain_trace.steps(0, "text_image") == list(range(KW["num_inference_steps"]))
    assert set(tr.text_image) == set(
        plain_trace.text_image
    )  # one map per (layer, step): the negative pass is not recorded
    assert set(tr.base_contribution) == set(plain_trace.base_contribution)


@pytest.mark.parametrize("scale", [-1.0, math.nan, math.inf])
def test_bad_true_cfg_scale(ca, scale):
    with pytest.raises(ConfigError, match="true_cfg_scale=.*finite number >= 0"):
        ca(STEPS, seed=0, true_cfg_scale=scale, **KW)


def test_bad_negative_prompt(ca):
    with pytest.raises(ConfigError, match="negative_prompt=.*one string"):
        ca(STEPS, seed=0, true_cfg_scale=2.0, negative_prompt=["a", "b"], **KW)


def test_cli_true_cfg(tmp_path, capsys, monkeypatch):
    from cooklab.cli import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    recipe = tmp_path / "r.yaml"
    recipe.write_text("title: Carrots\nsteps:\n" + "".join(f"  - {s}\n" for s in STEPS[:2]))
    base = ["generate", str(recipe), "--model", "tiny", "--steps", "2", "--pipeline", "cookanything"]
    out = tmp_path / "run"
    assert main([*base, "--out", str(out), "--true-cfg-scale", "2.5", "--negative-prompt", "blurry"]) == 0
    s = json.loads((out / "settings.json").read_text(encoding="utf-8"))["settings"]
    assert s["true_cfg_scale"] == 2.5 and s["negative_prompt"] == "blurry"
    assert "true CFG 2.5" in capsys.readouterr().out
    assert main([*base, "--out", str(tmp_path / "bad"), "--true-cfg-scale", "-1"]) == 2
    assert "--true-cfg-scale -1" in capsys.readouterr().err
    assert (
        main(["generate", str(recipe), "--model", "tiny", "--out", str(tmp_path / "rd"), "--true-cfg-scale", "2"]) == 2
    )
    assert "--true-cfg-scale: an option of CookAnything" in capsys.readouterr().err
