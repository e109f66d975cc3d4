"""Cross-region K/V sharing on the CookAnything canvas: Eq. 1-4 as a mask, identity, backends, the pipeline switch."""

import math
import warnings

import numpy as np
import pytest
import torch

import cooklab
from cooklab import ConfigError
from cooklab.cookanything.cross_region_kv import canvas_references, group_mask_with_references
from cooklab.cookanything.regional import RegionLayout, group_mask, regional_attention, regional_token_mask
from cooklab.models import TINY_T5_MAX_LENGTH

LAYOUT = RegionLayout(n_regions=3, rows=2, cols=3, step_text_len=4, base_text_len=4)
REFS = (0, 0, 1)  # step 1 has no reference; step 2 keeps step 1's container, step 3 step 2's
STEPS = ["Dice two carrots on a wooden board", "Fry the carrots in a black pan", "Serve the carrots on a white plate"]
KW = dict(num_inference_steps=3, max_sequence_length=TINY_T5_MAX_LENGTH, progress=False, output_type="np")


def qkv(layout, seed=0, heads=2, dim=8):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(1, layout.total, heads, dim, generator=g) for _ in range(3)]


def test_sharing_a_region_with_itself_is_src_unchanged():
    q, k, v = qkv(LAYOUT)
    own = (0, 1, 2)
    assert torch.equal(regional_token_mask(LAYOUT, references=own), regional_token_mask(LAYOUT))
    assert torch.equal(group_mask_with_references(3, own), group_mask(3))
    a = regional_attention(q, k, v, LAYOUT, 0.3, "region", "masked", own).out
    b = regional_attention(q, k, v, LAYOUT, 0.3, "region", "masked").out
    assert torch.equal(a, b)


def test_the_mask_adds_only_image_to_reference_image_entries():
    n, L, P = 3, LAYOUT.step_text_len, LAYOUT.region_tokens
    groups = group_mask_with_references(n, REFS)
    added = groups & ~group_mask(n)
    assert added.nonzero().tolist() == [
        [n + 1, n + 0],
        [n + 2, n + 1],
    ]  # image group of step 2 -> image of step 1, 3 -> 2
    tokens = regional_token_mask(LAYOUT, references=REFS)
    kind = [("text", g) for g in range(n) for _ in range(L)] + [("image", g) for g in range(n) for _ in range(P)]
    for qi, (qk, qg) in enumerate(kind):  # the token mask is the group mask expanded
        for ki, (kk, kg) in enumerate(kind):
            assert bool(tokens[qi, ki]) == bool(groups[qg + n * (qk == "image"), kg + n * (kk == "image")])


def test_a_region_attends_as_over_the_concatenated_keys_of_eq_1_to_4():
    """Region n's image queries: softmax(Q_n [C_n; I_ref; I_n]^T / sqrt(d)) [V...], computed by concatenation."""
    q, k, v = qkv(LAYOUT, seed=3)
    lb = LAYOUT.base_text_len
    out = regional_attention(q, k, v, LAYOUT, 0.0, "region", "masked", REFS).out  # alpha 0: the regional branch alone
    plain = regional_attention(q, k, v, LAYOUT, 0.0, "region", "masked").out
    for n, j in enumerate(REFS):
        img, txt = LAYOUT.token_of("image", n), LAYOUT.token_of("text", n)
        parts = [txt, LAYOUT.token_of("image", j), img] if j != n else [txt, img]
        kp, vp = (torch.cat([x[:, s] for s in parts], dim=1) for x in (k, v))  # K+ = [C_n; K_ref; K_n]
        scores = torch.einsum("bqhd,bkhd->bhqk", q[:, img], kp) / math.sqrt(q.shape[-1])
        expected = torch.einsum("bhqk,bkhd->bqhd", scores.softmax(-1), vp)
        assert torch.allclose(out[:, img], expected, atol=1e-5)
        assert torch.equal(out[:, txt], plain[:, txt])  # text queries are not shared with
    assert torch.equal(out[:, :lb], plain[:, :lb])  # nor is the base prompt


def test_flex_and_masked_agree_with_references():
    q, k, v = qkv(LAYOUT, seed=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        flex = regional_attention(q, k, v, LAYOUT, 0.3, "region", "flex", REFS).out
    assert torch.allclose(flex, regional_attention(q, k, v, LAYOUT, 0.3, "region", "masked", REFS).out, atol=1e-5)
    with pytest.raises(ConfigError, match="masked"):
        regional_attention(q, k, v, LAYOUT, 0.3, "region", "batched", REFS)


def test_canvas_references_follow_the_recipe_and_refuse_later_steps():
    recipe = cooklab.Recipe(title="t", steps=[{"text": "a"}, {"text": "b"}, {"text": "c", "reference_step": 1}])
    assert canvas_references(recipe.reference_frames()) == (0, 0, 0)
    with pytest.raises(ConfigError, match="earlier step"):
        canvas_references([None, 2, 1])


def test_one_region_shares_nothing_and_the_switch_changes_a_canvas(ca):
    one = np.stack(ca(STEPS[:1], seed=0, attention_backend="masked", **KW).images)
    assert np.array_equal(one, np.stack(ca(STEPS[:1], seed=0, cross_region_kv=True, **KW).images))
    off = ca(STEPS, seed=0, attention_backend="masked", **KW)
    on = ca(STEPS, seed=0, cross_region_kv=True, **KW)
    assert on.settings["cross_region_kv"] == [1, 1, 2] and off.settings["cross_region_kv"] is None
    assert on.settings["attention_backend"] == "masked"
    assert not np.array_equal(np.stack(on.images[1:]), np.stack(off.images[1:]))


def test_the_reference_comes_from_the_recipe_or_the_plan(ca):
    from cooklab.agent import plan as make_plan

    recipe = cooklab.Recipe(
        title="t", steps=[{"text": STEPS[0]}, {"text": STEPS[1]}, {"text": STEPS[2], "reference_step": 1}]
    )
    assert ca(recipe, seed=0, cross_region_kv=True, **KW).settings["cross_region_kv"] == [1, 1, 1]
    plan = make_plan(recipe, "rules", cache_dir=False)
    planned = [n + 1 for n in canvas_references(recipe.with_plans(plan.step_plans()).reference_frames())]
    assert ca(recipe, plan=plan, seed=0, cross_region_kv=True, **KW).settings["cross_region_kv"] == planned


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(regional=False), "regional=True"),
        (dict(image_attention="global"), "image_attention='region'"),
        (dict(attention_backend="batched"), "'masked' or 'flex'"),
    ],
)
def test_impossible_combinations_are_refused(ca, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        ca(STEPS, seed=0, cross_region_kv=True, **KW, **kwargs)


def test_text_stays_in_its_region_with_sharing(ca):
    with cooklab.trace(ca, capture=["text_image_attention"], layers="double") as tr:
        ca(STEPS, seed=0, cross_region_kv=True, **KW)
    m = tr.text_image_map(1)  # mass on step 2's text over the canvas [3 G, G]
    rows = m.shape[0] // 3
    assert m[rows : 2 * rows].min() > 0
    assert m[:rows].abs().max() == 0 and m[2 * rows :].abs().max() == 0
