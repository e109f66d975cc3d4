"""CookAnything pipeline: stock equivalence, switches, fresh layouts, tracing, errors."""

import numpy as np
import pytest
import torch

import cooklab
from cooklab import ConfigError
from cooklab.models import TINY_T5_MAX_LENGTH

STEPS = ["Dice two carrots on a wooden board", "Fry the carrots in a black pan", "Serve the carrots on a white plate"]
KW = dict(num_inference_steps=3, max_sequence_length=TINY_T5_MAX_LENGTH, progress=False, output_type="np")
OFF = dict(regional=False, flexible_rope=False, cscc=False)


def test_one_step_with_everything_off_equals_stock_flux(ca, tiny_flux):
    out = ca([STEPS[0]], seed=5, **OFF, **KW)
    stock = tiny_flux(
        STEPS[0],
        num_inference_steps=3,
        max_sequence_length=TINY_T5_MAX_LENGTH,
        generator=torch.Generator().manual_seed(5),
        output_type="np",
    ).images[0]
    assert out.images[0].shape == stock.shape
    assert np.abs(out.images[0] - stock).max() <= 1e-5
    assert np.array_equal(out.canvas, out.images[0])


def test_region_noise_is_the_stock_draw(ca, tiny_flux):
    canvas = ca._noise(3, 64, 64, seed=7, dtype=torch.float32, device=torch.device("cpu"))
    p = canvas.shape[1] // 3
    for n in range(3):
        stock, _ = tiny_flux.prepare_latents(1, 4, 64, 64, torch.float32, "cpu", torch.Generator().manual_seed(7 + n))
        assert torch.equal(canvas[:, n * p : (n + 1) * p], stock)


def test_a_canvas_of_n_regions(ca):
    out = ca(STEPS, seed=0, **KW)
    assert len(out.images) == 3 and out.canvas.shape == (3 * 64, 64, 3)
    assert out.layout.n_regions == 3 and out.layout.base_text_len == out.layout.step_text_len
    again = ca(STEPS, seed=0, **KW)
    assert all(np.array_equal(a, b) for a, b in zip(out.images, again.images))
    assert out.settings["attention_backend"] == "batched" and out.settings["regional_layers"]


def test_lambda_zero_equals_cscc_off(ca):
    a = ca(STEPS, seed=0, cscc=True, lam=0.0, **KW)
    b = ca(STEPS, seed=0, cscc=False, **KW)
    assert all(np.array_equal(x, y) for x, y in zip(a.images, b.images))
    c = ca(STEPS, seed=0, cscc=True, lam=0.5, **KW)
    assert not np.array_equal(a.canvas, c.canvas)


def test_switches_change_the_result(ca):
    base = ca(STEPS, seed=0, **KW)
    for change in (dict(regional=False), dict(flexible_rope=False), dict(alpha=0.9)):
        assert not np.array_equal(base.canvas, ca(STEPS, seed=0, **change, **KW).canvas), change
    region = ca(
        STEPS, seed=0, image_attention="region", attention_backend="masked", **KW
    )  # same path: only the mask differs
    world = ca(STEPS, seed=0, image_attention="global", attention_backend="masked", **KW)
    assert np.abs(region.canvas - world.canvas).max() > 1e-3
    assert (
        ca(STEPS[:1], seed=0, image_attention="global", **KW).settings["attention_backend"] == "masked"
    )  # auto on a CPU


def test_the_pil_canvas_is_the_regions_stacked_top_to_bottom(ca):
    for steps in (STEPS[:1], STEPS):
        out = ca(steps, seed=0, **{**KW, "output_type": "pil"})
        assert out.canvas.size == (64, 64 * len(steps))
        assert np.array_equal(np.asarray(out.canvas), np.concatenate([np.asarray(im) for im in out.images], axis=0))


def test_backends_give_the_same_images(ca):
    batched = ca(STEPS, seed=0, attention_backend="batched", **KW)
    masked = ca(STEPS, seed=0, attention_backend="masked", **KW)
    assert np.abs(batched.canvas - masked.canvas).max() < 1e-4


def test_a_new_call_builds_a_new_layout(ca, tiny_flux):
    ca(STEPS, seed=0, **KW)
    second = ca(STEPS[:2], seed=0, **KW)
    fresh = cooklab.CookAnything.from_pipe(cooklab.models.tiny_flux(seed=0))(STEPS[:2], seed=0, **KW)
    assert second.layout.n_regions == 2
    assert all(np.array_equal(a, b) for a, b in zip(second.images, fresh.images))


def test_processors_restored_and_trace_changes_no_pixel(ca, tiny_flux):
    before = dict(tiny_flux.transformer.attn_processors)
    plain = ca(STEPS, seed=0, **KW)
    assert dict(tiny_flux.transformer.attn_processors) == before
    with cooklab.trace(ca) as tr:
        traced = ca(STEPS, seed=0, **KW)
    assert all(np.array_equal(a, b) for a, b in zip(plain.images, traced.images))
    assert dict(tiny_flux.transformer.attn_processors) == before
    assert tr.text_image and tr.base_contribution and tr.canvas.img_ids.shape == (3 * 16, 3)
    with pytest.raises(ConfigError):
        ca(STEPS, seed=0, alpha=2.0, **KW)
    assert dict(tiny_flux.transformer.attn_processors) == before


def test_step_text_attention_stays_in_its_region_with_src(ca):
    with cooklab.trace(ca, capture=["text_image_attention"], layers="double") as tr:
        ca(STEPS, seed=0, **KW)
    m = tr.text_image_map(1)  # attention mass on step 2's text, over the canvas [3 G, G]
    rows = m.shape[0] // 3
    assert m[rows : 2 * rows].min() > 0
    assert m[:rows].abs().max() == 0 and m[2 * rows :].abs().max() == 0
    with cooklab.trace(ca, capture=["text_image_attention"], layers="double") as tr:
        ca(STEPS, seed=0, regional=False, **KW)
    assert tr.text_image_map(1)[:rows].min() > 0  # without SRC the step's text leaks into other regions


def test_flexible_rope_ids_restart_per_region(ca):
    from cooklab.cookanything.flexible_rope import single_image_ids

    with cooklab.trace(ca, capture=["rope_ids"]) as tr:
        ca(STEPS, seed=0, **KW)
    ids = tr.canvas.img_ids.reshape(3, -1, 3)
    for n in range(3):
        assert torch.equal(ids[n], single_image_ids(4, 4))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(height=72), "multiples of 16"),
        (dict(alpha=-0.1), "between 0 and 1"),
        (dict(lam=-1.0), ">= 0"),
        (dict(image_attention="everywhere"), "image_attention"),
        (dict(image_attention="global", attention_backend="batched"), "image_attention='region' and no cross-region"),
        (dict(attention_backend="fast"), "attention_backend"),
        (dict(flexible_rope=False, rope_step_axis=True), "rope_step_axis"),
    ],
)
def test_bad_inputs(ca, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        ca(STEPS, seed=0, **{**KW, **kwargs})


def test_more_than_twelve_steps_are_chunked_by_default_and_wrong_pipelines(ca, tiny_sd):
    out = ca(
        [f"step {i}" for i in range(13)], seed=0, **{**KW, "output_type": "latent"}
    )  # MAX_CANVAS_REGIONS = 12 regions per canvas
    assert len(out.images) == 13 and [c.steps[0] for c in out.chunks] == [0, 7] and out.settings["chunk_size"] == 12
    with pytest.raises(cooklab.CheckpointError, match="FluxPipeline"):
        cooklab.CookAnything.from_pipe(tiny_sd)


def test_enriched_prompts_from_a_plan(ca):
    from cooklab.agent import plan

    p = plan(cooklab.Recipe.from_steps(STEPS, title="Carrots"), agent="rules", cache_dir=False)
    enriched = ca(STEPS, plan=p, seed=0, **KW)
    plain = ca(STEPS, seed=0, **KW)
    assert enriched.spans.step_texts == p.prompts()
    assert not np.array_equal(enriched.canvas, plain.canvas)


def test_sequence_length_is_checked(ca):
    with pytest.raises(ConfigError, match="1 to 512"):
        ca(STEPS, **{**KW, "max_sequence_length": 600})


def test_a_cut_whole_description_is_reported(ca):
    long_steps = [
        f"Step number {i} stirs the thick tomato sauce slowly with a long wooden spoon in the big pot"
        for i in range(4)
    ]
    with pytest.warns(UserWarning, match="whole description is cut"):
        out = ca(long_steps, seed=0, **{**KW, "max_sequence_length": 32})
    assert out.settings["truncated_steps"] and out.settings["truncated_steps"][-1] == 4


def test_global_position_ids_stay_distinct_in_bf16_at_twelve_regions():
    """Global ids reach 12 * rows - 1 > 256: built in float32, none collide although the model runs in bf16."""
    pipe = cooklab.CookAnything.from_pipe(cooklab.models.tiny_flux(seed=0, dtype=torch.bfloat16))
    seen = {}
    handle = pipe.transformer.register_forward_pre_hook(
        lambda m, a, kw: seen.update(img=kw["img_ids"], txt=kw["txt_ids"]), with_kwargs=True
    )
    try:
        out = pipe(
            [f"Step {i}: stir the carrots" for i in range(12)],
            seed=0,
            height=352,
            width=16,  # 22 x 1 tokens per region
            regional=False,
            flexible_rope=False,
            cscc=False,
            num_inference_steps=1,
            max_sequence_length=TINY_T5_MAX_LENGTH,
            progress=False,
            output_type="latent",
        )
    finally:
        handle.remove()
    rows = seen["img"][:, 1]
    assert seen["img"].dtype == torch.float32 and seen["txt"].dtype == torch.float32
    assert rows.max() == 12 * 22 - 1 and rows.unique().numel() == 12 * 22  # 257 and 256 are two rows, not one
    assert out.canvas.dtype == torch.bfloat16


@pytest.mark.parametrize(
    "where", ["trace setup", "calculate_shift", "retrieve_timesteps", "set_begin_index", "first step"]
)
def test_stock_processors_are_back_after_a_failure_anywhere_after_installing(ca, tiny_flux, monkeypatch, where):
    import cooklab.cookanything.denoising as denoising
    import cooklab.cookanything.flow_matching as flow_matching

    def boom(*args, **kwargs):
        raise RuntimeError(f"injected failure in {where}")

    if where == "trace setup":
        monkeypatch.setattr(cooklab.Trace, "begin_canvas", boom)
    elif where == "set_begin_index":
        monkeypatch.setattr(type(tiny_flux.scheduler), "set_begin_index", boom)
    elif where == "first step":
        monkeypatch.setattr(type(tiny_flux.scheduler), "step", boom)
    else:
        monkeypatch.setattr(flow_matching if where == "calculate_shift" else denoising, where, boom)
    before = dict(tiny_flux.transformer.attn_processors)
    with pytest.raises(RuntimeError, match="injected failure"):
        if where == "trace setup":
            with cooklab.trace(ca, capture=["layout"]):
                ca(STEPS, seed=0, **KW)
        else:
            ca(STEPS, seed=0, **KW)
    assert dict(tiny_flux.transformer.attn_processors) == before


def test_cscc_leaves_steps_whose_tokens_differ_unfused_and_says_so(ca, monkeypatch):
    import cooklab.cookanything.canvas as module

    real = module.step_token_spans

    def second_step_mismatched(*args, **kwargs):
        spans = real(*args, **kwargs)
        spans.spans[1].matches = False  # as if the tokenizer had merged across the step boundary
        return spans

    monkeypatch.setattr(module, "step_token_spans", second_step_mismatched)
    with (
        pytest.warns(UserWarning, match=r"CSCC leaves steps \[2\] unfused"),
        cooklab.trace(ca, capture=["cscc"]) as tr,
    ):
        out = ca(STEPS, seed=0, lam=0.5, **KW)
    assert out.settings["cscc_unmatched_steps"] == [2] and out.spans.spans[1].fused_length == 0
    norms = tr.canvas.cscc_delta_norm  # [N, L]
    assert norms[1].abs().max() == 0 and norms[0].max() > 0 and norms[2].max() > 0


def test_pipelines_accept_a_pathlib_recipe(ca, rd, tmp_path):
    from pathlib import Path

    path = tmp_path / "two.yaml"
    path.write_text("title: Two\nsteps:\n  - Dice two carrots on a wooden board\n  - Fry the carrots in a black pan\n")
    assert isinstance(path, Path)
    assert len(ca(path, seed=0, **KW).images) == 2
    assert len(rd(path, seed=0, num_inference_steps=2, progress=False).images) == 2


def test_regional_layers_and_steps_select_where_src_runs(ca, tiny_flux):
    full = ca(STEPS, seed=0, **KW)
    every_step = ca(STEPS, seed=0, regional_steps=KW["num_inference_steps"], **KW)  # the first 3 of 3 steps = all
    assert all(np.array_equal(a, b) for a, b in zip(full.images, every_step.images))
    double = cooklab.locate(tiny_flux, "double")
    with cooklab.trace(ca, capture=["base_contribution"]) as tr:
        some = ca(STEPS, seed=0, regional_steps=[1], regional_blocks="double", **KW)
    assert {step for (_, _, step) in tr.base_contribution} == {1}  # SRC ran at step 1 only ...
    assert {layer for (_, layer, _) in tr.base_contribution} == set(double)  # ... in the double blocks only
    assert some.settings["regional_layers"] == sorted(double) and some.settings["regional_steps"] == [1]
    assert not np.array_equal(some.canvas, full.canvas)
    every_other = ca(STEPS, seed=0, regional_every=2, **KW)
    assert every_other.settings["regional_layers"] == sorted(cooklab.locate(tiny_flux, "double", "single")[::2])


def test_guidance_embedding_and_a_dynamic_shift_from_the_canvas_length_as_flux_dev():
    """FLUX.1-dev-like: guidance embedding on and a shift schedule whose settings all differ from diffusers' defaults.

    N = 1 with everything off equals FluxPipeline; for N regions mu comes from the canvas's N P tokens.
    """
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel
    from diffusers.pipelines.flux.pipeline_flux import calculate_shift

    from cooklab.models.tiny import _TINY_FLUX_TRANSFORMER

    pipe = cooklab.models.tiny_flux(seed=0)
    torch.manual_seed(1)
    pipe.transformer = FluxTransformer2DModel(**{**_TINY_FLUX_TRANSFORMER, "guidance_embeds": True}).eval()
    shift = dict(base_image_seq_len=8, max_image_seq_len=64, base_shift=0.3, max_shift=1.4)
    pipe.scheduler = FlowMatchEulerDiscreteScheduler(
        num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True, **shift
    )
    ca = cooklab.CookAnything.from_pipe(pipe)
    kw = {**KW, "guidance_scale": 4.0}
    out = ca([STEPS[0]], seed=5, **OFF, **kw)
    stock = pipe(
        STEPS[0],
        num_inference_steps=3,
        max_sequence_length=TINY_T5_MAX_LENGTH,
        guidance_scale=4.0,
        generator=torch.Generator().manual_seed(5),
        output_type="np",
    ).images[0]
    assert np.abs(out.images[0] - stock).max() <= 1e-5
    assert not np.array_equal(out.images[0], ca([STEPS[0]], seed=5, **OFF, **{**kw, "guidance_scale": 1.0}).images[0])
    canvas = ca(STEPS, seed=0, **kw)
    expected = calculate_shift(
        3 * 16, shift["base_image_seq_len"], shift["max_image_seq_len"], shift["base_shift"], shift["max_shift"]
    )
    assert canvas.settings["mu"] == pytest.approx(expected) and expected > calculate_shift(16, *shift.values())
