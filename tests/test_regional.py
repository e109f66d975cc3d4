"""Step-wise Regional Control: mask, attention paths, isolation, and the processor against the stock one."""

import warnings

import pytest
import torch
from diffusers.models.transformers.transformer_flux import FluxAttnProcessor

from cooklab.cookanything.regional import (
    RegionalFluxAttnProcessor,
    RegionalState,
    RegionLayout,
    group_mask,
    regional_attention,
    regional_token_mask,
)

LAYOUT = RegionLayout(n_regions=3, rows=2, cols=4, step_text_len=5, base_text_len=5)


def qkv(layout, seed=0, heads=2, dim=8):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(1, layout.total, heads, dim, generator=g) for _ in range(3)]


def test_layout_slices_tile_the_joint_sequence_in_order():
    parts = (
        [LAYOUT.token_of("base", 0)]
        + [LAYOUT.token_of("text", n) for n in range(3)]
        + [LAYOUT.token_of("image", n) for n in range(3)]
    )
    assert [(p.start, p.stop) for p in parts] == [(0, 5), (5, 10), (10, 15), (15, 20), (20, 28), (28, 36), (36, 44)]
    assert LAYOUT.total == 44 and LAYOUT.text_len == 20 and LAYOUT.image_len == 24


def test_group_mask_is_the_papers():
    m = group_mask(4)
    assert m.shape == (8, 8)
    for i in range(8):
        for j in range(8):
            assert bool(m[i, j]) == (i == j or abs(i - j) == 4)


def test_token_mask_expands_the_group_mask():
    tm = regional_token_mask(LAYOUT)
    L, P, n = 5, 8, 3
    assert tm.shape == (n * L + n * P,) * 2
    assert tm[0, n * L].item() and not tm[0, n * L + P].item()  # text 1 sees image 1, not image 2
    glob = regional_token_mask(LAYOUT, "global")
    assert glob[n * L, n * L + P].item() and not glob[0, n * L + P].item()  # images see images; texts stay in group


@pytest.mark.parametrize("image_attention", ["region", "global"])
def test_backends_agree(image_attention):
    q, k, v = qkv(LAYOUT)
    ref = regional_attention(q, k, v, LAYOUT, 0.3, image_attention, "masked").out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        flex = regional_attention(q, k, v, LAYOUT, 0.3, image_attention, "flex").out
    assert torch.allclose(ref, flex, atol=1e-5)
    if image_attention == "region":
        assert torch.allclose(ref, regional_attention(q, k, v, LAYOUT, 0.3, image_attention, "batched").out, atol=1e-5)


def test_single_group_without_base_is_full_attention():
    layout = RegionLayout(1, 2, 4, 5, 0)  # the mask is all ones
    q, k, v = qkv(layout)
    full = torch.nn.functional.scaled_dot_product_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    ).transpose(1, 2)
    for backend in ("batched", "masked"):
        assert torch.allclose(regional_attention(q, k, v, layout, 0.1, "region", backend).out, full, atol=1e-6)


@pytest.mark.parametrize("backend", ["batched", "masked"])
def test_groups_are_isolated_with_alpha_zero(backend):
    q, k, v = qkv(LAYOUT)
    out = regional_attention(q, k, v, LAYOUT, 0.0, "region", backend).out
    k2, v2 = k.clone(), v.clone()
    for part in (LAYOUT.token_of("text", 1), LAYOUT.token_of("image", 1)):  # perturb group 2
        k2[:, part] += 5 * torch.randn_like(k2[:, part])
        v2[:, part] += 5 * torch.randn_like(v2[:, part])
    out2 = regional_attention(q, k2, v2, LAYOUT, 0.0, "region", backend).out
    for part in (
        LAYOUT.token_of("text", 0),
        LAYOUT.token_of("image", 0),
        LAYOUT.token_of("text", 2),
        LAYOUT.token_of("image", 2),
    ):
        assert torch.allclose(out[:, part], out2[:, part], atol=1e-6)
    assert not torch.allclose(out[:, LAYOUT.token_of("image", 1)], out2[:, LAYOUT.token_of("image", 1)])


def test_alpha_blends_base_and_regional():
    q, k, v = qkv(LAYOUT)
    a0 = regional_attention(q, k, v, LAYOUT, 0.0).out
    a1 = regional_attention(q, k, v, LAYOUT, 1.0).out
    mid = regional_attention(q, k, v, LAYOUT, 0.25)
    img = slice(LAYOUT.text_len, LAYOUT.total)
    assert torch.allclose(mid.out[:, img], 0.25 * a1[:, img] + 0.75 * a0[:, img], atol=1e-6)
    assert torch.allclose(mid.image_base, a1[:, img], atol=1e-6) and torch.allclose(
        mid.image_regional, a0[:, img], atol=1e-6
    )


@pytest.fixture
def flux():
    from cooklab.models import tiny_flux

    return tiny_flux(seed=0)


@pytest.mark.parametrize("block", ["transformer_blocks.0.attn", "single_transformer_blocks.0.attn"])
def test_processor_equals_stock_when_the_mask_is_all_ones(flux, block):
    attn = dict(flux.transformer.named_modules())[block]
    layout = RegionLayout(1, 2, 4, 6, 0)
    state = RegionalState(layout, layers=frozenset({block + ".processor"}))
    proc = RegionalFluxAttnProcessor(block + ".processor", state)
    g = torch.Generator().manual_seed(0)
    dim = attn.query_dim
    img, txt = torch.randn(1, 8, dim, generator=g), torch.randn(1, 6, dim, generator=g)
    ids = torch.cat([torch.zeros(6, 3), torch.randn(8, 3, generator=g)])
    rope = flux.transformer.pos_embed(ids)
    if block.startswith("single"):
        args = (torch.cat([txt, img], dim=1), None)
    else:
        args = (img, txt)
    ours = proc(attn, *args, image_rotary_emb=rope)
    stock = FluxAttnProcessor()(attn, *args, image_rotary_emb=rope)
    for a, b in zip(ours if isinstance(ours, tuple) else (ours,), stock if isinstance(stock, tuple) else (stock,)):
        assert torch.allclose(a, b, atol=1e-5)
    state.layers = frozenset()  # inactive: literally the stock computation
    ours = proc(attn, *args, image_rotary_emb=rope)
    for a, b in zip(ours if isinstance(ours, tuple) else (ours,), stock if isinstance(stock, tuple) else (stock,)):
        assert torch.equal(a, b)
