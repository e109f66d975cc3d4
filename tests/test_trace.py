"""cooklab.trace: observing changes no pixel, restores processors, records bounded, correct maps."""

import math

import numpy as np
import pytest
import torch

import cooklab
from cooklab import ConfigError
from cooklab.instrument.observer import observed as TracingAttnProcessor
from cooklab.recipe_diffusion.kv_sharing import KVSharingAttnProcessor, KVSharingState

STEPS = ["Put a white bowl on the table", "Crack two eggs into the bowl", "Whisk the eggs in the bowl"]
PLANS = [{"container": "bowl"}, {"container": "bowl", "reference_step": 1}, {"container": "bowl", "reference_step": 2}]
BOX = (8, 8, 48, 40)
KW = dict(seed=0, num_inference_steps=20, masks=[None, BOX, BOX], progress=False, output_type="np")


def recipe():
    return cooklab.Recipe.from_steps(STEPS, plans=PLANS)


@pytest.mark.parametrize("scheduler", [None, "euler", "dpm"])
def test_trace_changes_no_pixel(rd, tiny_sd, scheduler):
    from diffusers import DPMSolverMultistepScheduler, EulerDiscreteScheduler

    if scheduler is not None:  # schedulers that keep a step index: the trace's noise record must not move it
        cls = EulerDiscreteScheduler if scheduler == "euler" else DPMSolverMultistepScheduler
        tiny_sd.scheduler = cls.from_config(tiny_sd.scheduler.config)
    plain = rd(recipe(), **KW)
    with cooklab.trace(rd, layers=("down", "mid", "up")) as tr:
        traced = rd(recipe(), **KW)
    for a, b in zip(plain.images, traced.images, strict=False):
        assert np.array_equal(a, b)
    assert tr.self_attention and tr.reference_share and tr.cross_attention and set(tr.noise) == {1, 2}
    for f in traced.frames:
        frame = tr.frames[f.index]
        assert (frame.prompt, frame.reference, frame.kv_reference) == (f.prompt, f.reference, f.kv_reference)
        assert tr.noise.get(f.index) is None or tr.noise[f.index].reference == f.reference


def test_traced_tokens_stop_at_clips_77(rd):
    long = "Whisk the eggs in the white bowl " * 20  # far beyond CLIP's 77 tokens
    with cooklab.trace(rd, capture=["cross_attention"], layers="mid") as tr:
        rd([long], **{**KW, "num_inference_steps": 2, "masks": None})
    tokens = tr.frames[0].tokens
    assert len(tokens) == rd.tokenizer.model_max_length == 77 and tokens[-1] == "<|endoftext|>"
    assert next(iter(tr.cross_attention.values())).shape[0] == 77


def test_processors_restored_on_exit_and_on_error(rd):
    before = dict(rd.unet.attn_processors)
    with pytest.raises(RuntimeError, match="boom"), cooklab.trace(rd):
        rd(recipe(), **{**KW, "num_inference_steps": 2, "masks": None})
        raise RuntimeError("boom")
    assert dict(rd.unet.attn_processors) == before
    assert rd._trace is None


def test_one_trace_at_a_time(rd):
    with cooklab.trace(rd), pytest.raises(RuntimeError, match="already being traced"):
        with cooklab.trace(rd):
            pass
    with cooklab.trace(rd):  # usable again afterwards
        pass


def test_trace_needs_a_cooklab_pipeline_and_known_captures(tiny_sd, rd):
    with pytest.raises(ConfigError, match="RecipeDiffusion.from_pipe"):
        cooklab.trace(tiny_sd)
    with pytest.raises(ConfigError, match="this pipeline records"):
        cooklab.trace(rd, capture=["attention"])
    with pytest.raises(ConfigError, match="matches no"):
        cooklab.trace(rd, layers=("middle",))


def test_maps_are_normalised_and_shaped(rd):
    with cooklab.trace(rd, layers="up", timesteps=[1, 5]) as tr:
        rd(recipe(), **KW)
    assert tr.steps(1) == [1, 5] and tr.steps(0) == [1, 5]
    for (frame, layer, _step), a in tr.self_attention.items():
        assert layer.startswith("up_blocks.") and a.shape[2] == (1 if frame == 0 else 2)
        assert torch.allclose(a.sum(dim=(2, 3, 4)), torch.ones(a.shape[:2]), atol=1e-4)  # rows sum to 1
    for (frame, _, _), share in tr.reference_share.items():
        assert share.min() >= 0 and share.max() <= 1
        assert (share.max() == 0) == (frame == 0)  # frame 0 has no reference
    tokens = tr.frames[1].tokens
    assert tokens[0] == "<|startoftext|>" and tokens[-1] == "<|endoftext|>"
    cross = next(v for k, v in tr.cross_attention.items() if k[0] == 1)
    assert cross.shape[0] == len(tokens) and float(cross.sum(0).max()) <= 1 + 1e-5
    assert tr.cross_attention_map(1, "eggs").shape == cross.shape[1:]
    assert set(tr.reference_share_curve(2)) == {1, 5}
    assert "reference_share" in tr.summary()


def test_reference_share_is_one_half_when_sharing_with_itself(attn_layer):
    name, attn = attn_layer
    h = torch.randn(1, 16, attn.to_q.in_features)
    state = KVSharingState(frame=1, step=0, reference=0)
    state.store[(0, name, 0)] = (attn.to_k(h), attn.to_v(h))

    tr = cooklab.trace(_FakePipe(attn_layer), capture=["reference_share", "self_attention"], layers=(name,))
    tr.begin_frame(cooklab.instrument.FrameTrace(1, "x", ["a"], 0, (4, 4)))
    tr.set_step(0, 999.0)
    TracingAttnProcessor(KVSharingAttnProcessor(name, state), name, tr)(attn, h)
    share = tr.reference_share[(1, name, 0)]
    assert torch.allclose(share, torch.full((4, 4), 0.5), atol=1e-5)
    a = tr.self_attention[(1, name, 0)]
    assert torch.allclose(a[:, :, 0], a[:, :, 1], atol=1e-6)  # reference and own halves identical


def test_max_bytes_truncates_with_a_warning(rd):
    with pytest.warns(UserWarning, match="max_bytes"), cooklab.trace(rd, max_bytes=4096) as tr:
        rd(recipe(), **{**KW, "num_inference_steps": 4})
    assert tr.truncated and tr.nbytes() <= 4096


class _FakePipe:
    """Exposes one attention layer under its real name, as a pipeline would."""

    def __init__(self, attn_layer):
        name, attn = attn_layer
        self.denoiser = self
        self.attn_processors = {name: attn.processor}

    def attach_trace(self, trace):
        pass


@pytest.fixture
def attn_layer(tiny_sd):
    name = "mid_block.attentions.0.transformer_blocks.0.attn1.processor"
    return name, dict(tiny_sd.unet.named_modules())[name.removesuffix(".processor")]


def test_means_over_layers_use_the_finest_grid(rd):
    with cooklab.trace(rd, layers=("mid", "up"), timesteps=[3]) as tr:
        rd(recipe(), **{**KW, "num_inference_steps": 4})
    sizes = {tuple(v.shape) for v in tr.reference_share.values()}
    assert sizes == {(4, 4), (8, 8)}  # mid block 4x4, up block 8x8
    assert tr.reference_share_map(1).shape == (8, 8) and tr.cross_attention_map(1, "eggs").shape == (8, 8)
    assert tr.frames[2].kv_reference == 1
    mid = next(k for k in tr.self_attention if k[1].startswith("mid") and k[0] == 1)
    with pytest.raises(IndexError, match="outside"):
        tr.self_attention_map(*mid, query=(5, 0))


def test_traced_maps_equal_an_explicit_softmax_with_the_1_over_sqrt_d_scale(rd, tiny_sd):
    """reference_share and cross_attention are softmax(Q K^T / sqrt(d)) computed beside the run (frame 1 vs a
    different frame 0)."""
    self_name = "mid_block.attentions.0.transformer_blocks.0.attn1"
    cross_name = "mid_block.attentions.0.transformer_blocks.0.attn2"
    modules = dict(tiny_sd.unet.named_modules())
    seen = {}

    def keep(name):
        def hook(module, args, kwargs):
            h = args[0] if args else kwargs["hidden_states"]
            seen[(name, tr._frame, tr._step)] = (h.detach().clone(), kwargs.get("encoder_hidden_states"))

        return hook

    handles = [modules[n].register_forward_pre_hook(keep(n), with_kwargs=True) for n in (self_name, cross_name)]
    try:
        with cooklab.trace(rd, capture=["reference_share", "cross_attention"], layers="mid", map_size=64) as tr:
            rd(recipe(), **{**KW, "num_inference_steps": 4, "masks": None})
    finally:
        for handle in handles:
            handle.remove()

    def heads(x, attn):  # [P, C] -> [heads, P, d]
        return x.reshape(x.shape[0], attn.heads, -1).transpose(0, 1)

    attn = modules[self_name]
    d = attn.to_q.out_features // attn.heads
    for step in (1, 2, 3):  # frame 1 starts at step 1 (base_noise 0.999 of 4 steps)
        h_cur = seen[(self_name, 1, step)][0][-1]  # [P, C] conditional half
        h_ref = seen[(self_name, 0, step)][0][-1]  # frame 0 at the SAME step
        assert not torch.equal(h_cur, h_ref)
        with torch.no_grad():
            q = heads(attn.to_q(h_cur), attn)
            k = heads(torch.cat([attn.to_k(h_ref), attn.to_k(h_cur)]), attn)
            a = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(d), dim=-1).mean(0)  # [P, 2P]
        share = a[:, : h_ref.shape[0]].sum(-1).reshape(tr.reference_share[(1, self_name + ".processor", step)].shape)
        assert torch.allclose(tr.reference_share[(1, self_name + ".processor", step)], share, atol=1e-5)
        assert (share - 0.5).abs().max() > 1e-3  # a reference that differs from the frame: not the 1/2 of self-sharing

        cross = modules[cross_name]
        h, text = seen[(cross_name, 1, step)]
        with torch.no_grad():
            q = heads(cross.to_q(h[-1]), cross)
            k = heads(cross.to_k(text[-1]), cross)
            a = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(q.shape[-1]), dim=-1).mean(0)  # [P, 77]
        stored = tr.cross_attention[(1, cross_name + ".processor", step)]  # [T, rows, cols]
        expected = a[:, : stored.shape[0]].T.reshape(stored.shape)
        assert torch.allclose(stored, expected, atol=1e-5)


@pytest.mark.parametrize(("regional", "image_attention"), [(False, "region"), (True, "region"), (True, "global")])
def test_flux_text_image_mass_equals_an_explicit_softmax_with_the_1_over_sqrt_d_scale(ca, regional, image_attention):
    """observe_regional's mass on each step's real text tokens is softmax(Q K^T / sqrt(d)) (masked with SRC), not
    another scale;
    its base contribution is |alpha (z_base - z_regional)| / |z|."""
    from cooklab.cookanything.regional import RegionalState, RegionLayout, regional_attention, regional_token_mask

    layout = RegionLayout(n_regions=2, rows=2, cols=3, step_text_len=4, base_text_len=4)
    counts = [3, 4]  # real tokens (EOS included) of each step
    tr = cooklab.trace(ca, capture=["text_image_attention", "base_contribution"], layers="double")
    tr.begin_canvas(
        layout=layout,
        texts=["a", "b"],
        img_ids=torch.zeros(12, 3),
        txt_ids=torch.zeros(12, 3),
        spans=None,
        cscc_delta=None,
        regional=regional,
        alpha=0.1,
        token_counts=counts,
    )
    tr.set_step(0, 1.0)
    torch.manual_seed(5)
    q, k, v = (torch.randn(1, layout.total, 2, 16) for _ in range(3))  # [B, S, H, D], |q.k| ~ 4: the scale matters
    state = RegionalState(layout, 0.1, image_attention, "masked", frozenset({"x"}))
    result = regional_attention(q, k, v, layout, 0.1, image_attention, "masked") if regional else None
    tr.observe_regional("x", None, q, k, state, result)

    n, L, lb = layout.n_regions, layout.step_text_len, layout.base_text_len
    qi = q[0, layout.text_len :].transpose(0, 1)  # [H, N P, D]
    if regional:
        kk = k[0, lb:].transpose(0, 1)  # [H, N L + N P, D]
        scores = qi @ kk.transpose(1, 2) / math.sqrt(16)
        scores = scores.masked_fill(~regional_token_mask(layout, image_attention)[n * L :], float("-inf"))
        first = 0
    else:
        scores = qi @ k[0].transpose(0, 1).transpose(1, 2) / math.sqrt(16)
        first = lb
    a = torch.softmax(scores, dim=-1).mean(0)  # [N P, K]
    mass = torch.stack([a[:, first + s * L : first + s * L + counts[s]].sum(-1) for s in range(n)])  # [N, N P]
    expected = mass.reshape(n, n * layout.rows, layout.cols)
    assert torch.allclose(tr.text_image[(0, "x", 0)], expected, atol=1e-5)
    if regional:
        assert expected[0, layout.rows :].abs().max() == 0  # step 1's text is read in region 1 only
        z = result.out[0, layout.text_len :]  # [N P, H, D]
        ratio = (0.1 * (result.image_base[0] - result.image_regional[0])).norm(dim=-1) / z.norm(dim=-1)  # [N P, H]
        assert tr.base_contribution[(0, "x", 0)] == pytest.approx(float(ratio.mean()), rel=1e-5)
    else:
        assert tr.base_contribution == {}  # no SRC in this layer: no base branch to measure


def test_pooled_self_attention_equals_explicit_pooling_on_a_wide_frame(rd, tiny_sd):
    """Non-square grid, pooled: queries averaged and keys summed per block, reference keys first (S = 2)."""
    name = "mid_block.attentions.0.transformer_blocks.0.attn1"
    attn = dict(tiny_sd.unet.named_modules())[name]
    seen = {}

    def keep(module, args, kwargs):
        seen.setdefault((tr._frame, tr._step), (args[0] if args else kwargs["hidden_states"]).clone())

    handle = attn.register_forward_pre_hook(keep, with_kwargs=True)
    try:
        with cooklab.trace(rd, capture=["self_attention"], layers="mid", timesteps=[2], attention_map_size=8) as tr:
            rd(recipe().steps[:2], **{**KW, "num_inference_steps": 4, "masks": None, "width": 256})
    finally:
        handle.remove()
    stored = tr.self_attention[(1, name + ".processor", 2)]
    assert stored.shape == (4, 8, 2, 4, 8)  # mid grid 4 x 16 pooled to 4 x 8; S = (reference, own)
    heads, d = attn.heads, attn.to_q.out_features // attn.heads
    h_cur, h_ref = seen[(1, 2)][-1], seen[(0, 2)][-1]  # [64, C] conditional half
    with torch.no_grad():
        q = attn.to_q(h_cur).reshape(64, heads, d).transpose(0, 1)
        k = torch.cat([attn.to_k(h_ref), attn.to_k(h_cur)]).reshape(128, heads, d).transpose(0, 1)
        a = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(d), dim=-1).mean(0)  # [64, 128]
    a = a.reshape(4, 8, 2, 2, 4, 8, 2)  # [q rows, q col pairs, pair, S, k rows, k col pairs, pair]
    expected = a.mean(2).sum(-1)  # queries averaged, keys summed per block -> [4, 8, 2, 4, 8]
    assert torch.allclose(stored, expected, atol=1e-5)
    assert torch.allclose(stored.sum(dim=(2, 3, 4)), torch.ones(4, 8), atol=1e-5)


def test_a_trace_wraps_only_the_layers_its_captures_need(rd, ca):
    with cooklab.trace(rd, capture=["noise"]) as tr:
        assert tr.layers_to_wrap() == [] and not tr.wants(tr.self_layers[0], False)
    with cooklab.trace(rd, capture=["reference_share"], layers="mid") as tr:
        assert tr.layers_to_wrap() == tr.self_layers == cooklab.locate(rd, "mid", kind="self")
        assert tr.cross_layers == [] and not tr.wants(cooklab.locate(rd, "mid", kind="cross")[0], True)
    with cooklab.trace(rd, capture=["cross_attention"], layers="mid") as tr:
        assert tr.layers_to_wrap() == tr.cross_layers == cooklab.locate(rd, "mid", kind="cross")
        assert tr.wants(tr.cross_layers[0], True) and not tr.wants(tr.self_layers[0], False)
    with cooklab.trace(ca, capture=["layout", "rope_ids", "cscc"]) as tr:
        assert tr.layers_to_wrap() == []
    with cooklab.trace(ca, capture=["base_contribution"], layers="single") as tr:
        assert tr.layers_to_wrap() == cooklab.locate(ca, "single") and tr.wants(tr.self_layers[0], False)


def _text_image_mass_by_explicit_softmax(
    query, key, layout, image_attention, regional, counts, chunk_elements=2**26, references=None
):
    """The computation observe_regional used before the fused one: chunked softmax(Q K^T / sqrt(d)), masked rows, head
    mean."""
    n, L, P = layout.n_regions, layout.step_text_len, layout.region_tokens
    d = query.shape[-1]
    q = query[0, layout.text_len :].transpose(0, 1).float()  # [H, N P, D]
    if not regional:
        k, first = key[0].transpose(0, 1).float(), layout.base_text_len
    else:
        k, first = key[0, layout.base_text_len :].transpose(0, 1).float(), 0
        groups, is_image = layout.group_ids(), layout.is_image()
        query_groups = groups[n * L :]
    real = torch.zeros(n, L, dtype=torch.bool)
    for i, c in enumerate(counts):
        real[i, : min(c, L)] = True
    chunk = max(1, chunk_elements // (q.shape[0] * k.shape[1]))
    mass = []
    for s in range(0, n * P, chunk):
        scores = q[:, s : s + chunk] @ k.transpose(1, 2) / math.sqrt(d)
        if regional:
            allowed = query_groups[s : s + chunk, None] == groups[None, :]
            if image_attention == "global":
                allowed = allowed | is_image[None, :]
            if references is not None:  # cross-region K/V sharing: image keys of the reference region too
                ref = torch.tensor(references)[query_groups[s : s + chunk]]
                allowed = allowed | (is_image[None, :] & (groups[None, :] == ref[:, None]))
            scores = scores.masked_fill(~allowed, float("-inf"))
        a = torch.softmax(scores, dim=-1).mean(0)
        mass.append((a[:, first : first + n * L].reshape(-1, n, L) * real).sum(-1))
    return torch.cat(mass).T.reshape(n, n, layout.rows, layout.cols)


@pytest.mark.parametrize(
    ("regional", "image_attention", "base", "references"),
    [
        (False, "region", 0, None),
        (False, "region", 5, None),
        (True, "region", 5, None),
        (True, "global", 5, None),
        (True, "region", 5, (0, 0, 1)),
    ],
)
def test_fused_text_image_mass_equals_the_explicit_softmax_it_replaced(regional, image_attention, base, references):
    """flux_capture.text_image_mass (an attention call with indicator values) records the values of the old explicit
    softmax.

    base = 0: a call with regional=False (no base prompt); base = 5: SRC's layout, in layers where it runs or not;
    references: cross-region K/V sharing (regions 2 and 3 also see the image keys of regions 1 and 2)."""
    from cooklab.cookanything.regional import RegionLayout
    from cooklab.instrument.flux_capture import text_image_mass

    layout = RegionLayout(n_regions=3, rows=2, cols=5, step_text_len=6, base_text_len=base)
    counts = [2, 6, 9]  # padding after 2 tokens, none, and a count beyond L (truncated to L)
    torch.manual_seed(11)
    q, k = (3 * torch.randn(2, layout.total, 4, 8) for _ in range(2))  # batch of 2: the first element is read
    fused = text_image_mass(
        q, k, layout, image_attention, regional, counts, chunk_elements=4 * layout.total * 7, references=references
    )  # 7-query chunks
    explicit = _text_image_mass_by_explicit_softmax(
        q, k, layout, image_attention, regional, counts, chunk_elements=4 * layout.total * 7, references=references
    )
    assert fused.shape == explicit.shape == (3, 3, 2, 5)
    assert torch.allclose(fused, explicit, atol=1e-6, rtol=1e-5)
    if regional:  # region n never sees another step's text: exact zeros off the diagonal, as before
        off = ~torch.eye(3, dtype=torch.bool)
        assert fused[off].abs().max() == 0 and explicit[off].abs().max() == 0


def test_observing_a_kv_layer_reads_the_reference_once(attn_layer):
    """The hook sees the K+ the layer built: a traced call looks the reference up once, so fallback counts are
    unchanged."""
    from cooklab.instrument.observer import observed

    name, attn = attn_layer
    h = torch.randn(1, 16, attn.to_q.in_features)
    counts = []
    for traced in (False, True):
        state = KVSharingState(frame=1, step=0, reference=0)
        state.store[(0, name, 3)] = (attn.to_k(h), attn.to_v(h))  # the reference ran step 3 only: step 0 falls back
        proc = KVSharingAttnProcessor(name, state)
        if traced:
            tr = cooklab.trace(_FakePipe(attn_layer), capture=["reference_share"], layers=(name,))
            tr.begin_frame(cooklab.instrument.FrameTrace(1, "x", ["a"], 0, (4, 4)))
            tr.set_step(0, 999.0)
            proc = observed(proc, name, tr)
        with torch.no_grad():
            proc(attn, h)
        counts.append(state.fallback_steps)
    assert counts == [{1: 1}, {1: 1}]
    assert torch.allclose(tr.reference_share[(1, name, 0)], torch.full((4, 4), 0.5), atol=1e-5)


def test_observed_stock_processor_is_the_stock_maths_bit_for_bit(rd, tiny_sd):
    """ObservedAttnProcessor (AttnProcessor2_0 copied, plus the hook) returns exactly what AttnProcessor2_0 returns."""
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    from cooklab.instrument.observer import ObservedAttnProcessor, observed

    modules = dict(tiny_sd.unet.named_modules())
    torch.manual_seed(2)
    for layer in (
        "mid_block.attentions.0.transformer_blocks.0.attn1",
        "mid_block.attentions.0.transformer_blocks.0.attn2",
    ):
        attn = modules[layer]
        name = layer + ".processor"
        tr = cooklab.trace(
            rd, capture=["cross_attention", "reference_share"], layers="mid"
        )  # not entered: nothing attached
        tr.begin_frame(cooklab.instrument.FrameTrace(0, "x", ["a", "b"], None, (4, 4)))
        tr.set_step(0, 999.0)
        h = torch.randn(2, 16, attn.to_q.in_features)
        text = torch.randn(2, 77, attn.to_k.in_features) if attn.is_cross_attention else None
        proc = observed(AttnProcessor2_0(), name, tr)
        assert type(proc) is ObservedAttnProcessor
        with torch.no_grad():
            assert torch.equal(proc(attn, h, text), AttnProcessor2_0()(attn, h, text))
        assert tr.cross_attention if attn.is_cross_attention else tr.reference_share  # the hook reported
    with pytest.raises(ConfigError, match="no hook point"):
        observed(AttnProcessor(), name, tr)
