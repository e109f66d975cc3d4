"""Cross-frame K/V sharing processor (Eq. 1-4) against the stock processor and explicit attention."""

import pytest
import torch
from diffusers.models.attention_processor import AttnProcessor2_0

from cooklab.recipe_diffusion.kv_sharing import KVSharingAttnProcessor, KVSharingState

LAYER = "mid_block.attentions.0.transformer_blocks.0.attn1.processor"


@pytest.fixture
def attn(tiny_sd):
    return dict(tiny_sd.unet.named_modules())[LAYER.removesuffix(".processor")]


def state_with(reference_kv, frame=1, step=0):
    state = KVSharingState(frame=frame, step=step, reference=0)
    state.store[(0, LAYER, step)] = reference_kv
    return state


def test_sharing_with_itself_equals_the_stock_processor(attn):
    torch.manual_seed(0)
    h = torch.randn(2, 16, attn.to_q.in_features)  # [uncond, cond] x 16 tokens
    own = (attn.to_k(h), attn.to_v(h))
    shared = KVSharingAttnProcessor(LAYER, state_with(own))(attn, h)
    stock = AttnProcessor2_0()(attn, h)
    assert torch.allclose(shared, stock, atol=1e-5)


def test_output_is_eq_1_to_4(attn):
    torch.manual_seed(1)
    h, h_ref = torch.randn(1, 16, attn.to_q.in_features), torch.randn(1, 16, attn.to_q.in_features)
    k_ref, v_ref = attn.to_k(h_ref), attn.to_v(h_ref)
    out = KVSharingAttnProcessor(LAYER, state_with((k_ref, v_ref)))(attn, h)
    # explicit Eq. 1-4, head by head
    heads, d = attn.heads, attn.to_q.out_features // attn.heads
    split = lambda x: x.view(1, -1, heads, d).transpose(1, 2)  # noqa: E731
    q = split(attn.to_q(h))
    k_plus = split(torch.cat([k_ref, attn.to_k(h)], 1))  # (1)
    v_plus = split(torch.cat([v_ref, attn.to_v(h)], 1))  # (2)
    a_plus = torch.softmax(q @ k_plus.transpose(-1, -2) / d**0.5, dim=-1)  # (3)
    h_i = (a_plus @ v_plus).transpose(1, 2).reshape(1, -1, heads * d)  # (4)
    expected = attn.to_out[0](h_i)
    assert torch.allclose(out, expected, atol=1e-5)
    assert not torch.allclose(out, AttnProcessor2_0()(attn, h), atol=1e-3)


def test_cfg_halves_share_with_their_own_half(attn):
    torch.manual_seed(2)
    h, h_ref = torch.randn(2, 16, attn.to_q.in_features), torch.randn(2, 16, attn.to_q.in_features)
    kv = (attn.to_k(h_ref), attn.to_v(h_ref))
    both = KVSharingAttnProcessor(LAYER, state_with(kv))(attn, h)
    cond_only = KVSharingAttnProcessor(LAYER, state_with((kv[0][1:], kv[1][1:])))(attn, h[1:])
    assert torch.allclose(both[1:], cond_only, atol=1e-6)


def test_recording_and_release():
    state = KVSharingState(record_frames={0}, cache_device="cpu")
    k = torch.randn(2, 4, 8)
    for step in (0, 1):
        state.step = step
        state.record(LAYER, k, k)
    state.frame = 1  # frame 1 is not recorded
    state.record(LAYER, k, k)
    assert sorted(state.store) == [(0, LAYER, 0), (0, LAYER, 1)]
    assert state.nbytes() == 2 * 2 * k.numel() * 4
    state.release(0)
    assert state.store == {} and state.nbytes() == 0


def test_missing_step_reads_the_nearest_and_counts_it():
    state = KVSharingState(record_frames={0, 2})
    for frame, layer, step in ((0, LAYER, 0), (0, LAYER, 4), (0, LAYER, 9), (0, "other", 5), (2, LAYER, 5)):
        state.frame, state.step = frame, step
        state.record(layer, torch.full((1, 2, 4), float(100 * frame + step)), torch.zeros(1, 2, 4))
    state.frame, state.reference = 1, 0
    for step, nearest in ((5, 4), (7, 9), (3, 4)):  # the same layer of the same reference frame, nearest step
        state.step = step
        k, _ = state.lookup(LAYER, torch.device("cpu"))
        assert torch.equal(k, torch.full((1, 2, 4), float(nearest))), step
    assert state.fallback_steps == {1: 3}
    state.reference = None
    assert state.lookup(LAYER, torch.device("cpu")) is None


def test_the_cache_lives_on_the_cache_device():
    state = KVSharingState(record_frames={0}, cache_device="meta")
    state.record(LAYER, torch.ones(1, 2, 4), torch.ones(1, 2, 4))
    k, v = state.store[(0, LAYER, 0)]
    assert k.device.type == "meta" and v.device.type == "meta"


def test_reference_kv_of_another_batch_is_refused(attn):
    h = torch.randn(2, 16, attn.to_q.in_features)
    one = (attn.to_k(h[:1]), attn.to_v(h[:1]))  # recorded without CFG, read with CFG
    with pytest.raises(ValueError, match="same guidance setting"):
        KVSharingAttnProcessor(LAYER, state_with(one))(attn, h)


def test_cross_attention_is_refused(attn):
    with pytest.raises(ValueError, match="self-attention only"):
        KVSharingAttnProcessor(LAYER, KVSharingState())(
            attn, torch.randn(1, 4, attn.to_q.in_features), torch.randn(1, 3, 32)
        )


def test_cache_size_formula_matches_what_is_stored(tiny_sd):
    import cooklab
    from cooklab.recipe_diffusion.kv_sharing import kv_cache_bytes_per_step

    layers = cooklab.locate(tiny_sd, "mid", "up", kind="self")
    state = KVSharingState(record_frames={0})
    procs = {**tiny_sd.unet.attn_processors, **{n: KVSharingAttnProcessor(n, state) for n in layers}}
    tiny_sd.unet.set_attn_processor(procs)
    with torch.no_grad():
        tiny_sd.unet(torch.randn(2, 4, 8, 16), 500, encoder_hidden_states=torch.randn(2, 77, 32))
    assert state.nbytes() == kv_cache_bytes_per_step(tiny_sd.unet, layers, 64, 128, batch=2, bytes_per_element=4)


def test_every_step_reads_the_reference_kv_of_the_same_step():
    """K_ref/V_ref come from the reference's *own* step (not a neighbour): step-valued K/V looked up at every step."""
    state = KVSharingState(record_frames={0}, frame=0)
    for step in range(5):
        state.step = step
        state.record(LAYER, torch.full((1, 2, 4), float(step)), torch.full((1, 2, 4), -float(step)))
    state.frame, state.reference = 1, 0
    for step in range(5):
        state.step = step
        k, v = state.lookup(LAYER, torch.device("cpu"))
        assert torch.equal(k, torch.full((1, 2, 4), float(step))) and torch.equal(
            v, torch.full((1, 2, 4), -float(step))
        )
    assert state.fallback_steps == {}


def test_the_processor_shares_the_reference_kv_of_each_denoising_step(attn):
    """Through the processor: frame 1 at step s attends over frame 0's K/V recorded at step s (Eq. 1-4)."""
    torch.manual_seed(4)
    state = KVSharingState(record_frames={0})
    proc = KVSharingAttnProcessor(LAYER, state)
    width = attn.to_q.in_features
    h_ref = [torch.randn(1, 16, width) for _ in range(3)]
    for step, h in enumerate(h_ref):  # frame 0 records one K/V per step
        state.frame, state.step = 0, step
        proc(attn, h)
    state.frame, state.reference = 1, 0
    h = torch.randn(1, 16, width)
    heads, d = attn.heads, attn.to_q.out_features // attn.heads
    split = lambda x: x.view(1, -1, heads, d).transpose(1, 2)  # noqa: E731
    for step in (2, 0, 1):
        state.step = step
        k_plus = split(torch.cat([attn.to_k(h_ref[step]), attn.to_k(h)], 1))
        v_plus = split(torch.cat([attn.to_v(h_ref[step]), attn.to_v(h)], 1))
        a_plus = torch.softmax(split(attn.to_q(h)) @ k_plus.transpose(-1, -2) / d**0.5, dim=-1)
        expected = attn.to_out[0]((a_plus @ v_plus).transpose(1, 2).reshape(1, -1, heads * d))
        assert torch.allclose(proc(attn, h), expected, atol=1e-5), step
    assert state.fallback_steps == {}


def test_cache_size_formula_on_a_four_level_unet_like_sd():
    """SD 1.x/2.x have four resolution levels: the formula's per-layer downscale must hold beyond the tiny two."""
    from diffusers import UNet2DConditionModel

    import cooklab
    from cooklab.recipe_diffusion.kv_sharing import kv_cache_bytes_per_step

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=8,
        block_out_channels=(8, 8, 16, 16),
        layers_per_block=1,
        norm_num_groups=4,
        cross_attention_dim=8,
        attention_head_dim=2,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    )
    layers = cooklab.locate(unet, "down", "mid", "up", kind="self")
    state = KVSharingState(record_frames={0})
    unet.set_attn_processor({**unet.attn_processors, **{n: KVSharingAttnProcessor(n, state) for n in layers}})
    with torch.no_grad():
        unet(torch.randn(2, 4, 16, 32), 500, encoder_hidden_states=torch.randn(2, 7, 8))  # a 128 x 256 image
    assert state.nbytes() == kv_cache_bytes_per_step(unet, layers, 128, 256, batch=2, bytes_per_element=4)
    assert kv_cache_bytes_per_step(unet, layers, 128, 256) == state.nbytes() // 2  # defaults: CFG batch 2, fp16
