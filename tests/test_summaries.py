"""cooklab.instrument.summaries: the numbers a trace adds up to, checked against the maps they come from."""

import math

import pytest
import torch

import cooklab
from cooklab.instrument import (
    base_contribution_curve,
    cscc_delta_means,
    own_region_share,
    reference_share_means,
    text_image_region_shares,
)

STEPS = ["Put a white bowl on the table", "Crack two eggs into the bowl", "Whisk the eggs in the bowl"]
PLANS = [{"container": "bowl"}, {"container": "bowl", "reference_step": 1}, {"container": "bowl", "reference_step": 2}]


def test_own_region_share_of_a_hand_made_map():
    m = torch.zeros(4, 3)  # 2 regions of 2 rows, stacked
    m[0, 0], m[1, 2], m[3, 1] = 1.0, 2.0, 1.0  # 3 in region 1, 1 in region 2
    assert own_region_share(m, 0, 2) == pytest.approx(0.75)
    assert own_region_share(m, 1, 2) == pytest.approx(0.25)
    assert math.isnan(own_region_share(torch.zeros(4, 3), 0, 2))


def _canvas_trace(ca, regional: bool):
    """A trace fed one Flux attention call by hand (no model run): 2 regions of 2x3 tokens, 4 text tokens per step."""
    from cooklab.cookanything.regional import RegionalState, RegionLayout, regional_attention

    layout = RegionLayout(n_regions=2, rows=2, cols=3, step_text_len=4, base_text_len=4)
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
        token_counts=[3, 4],
    )
    torch.manual_seed(5)
    q, k, v = (torch.randn(1, layout.total, 2, 16) for _ in range(3))
    state = RegionalState(layout, 0.1, "region", "masked", frozenset({"x", "y"}))
    for step in (0, 1):
        tr.set_step(step, 1.0 - step / 2)
        for layer in ("x", "y"):
            result = regional_attention(q * (1 + step), k, v, layout, 0.1, "region", "masked") if regional else None
            tr.observe_regional(layer, None, q * (1 + step), k, state, result)
    return tr


def test_text_image_shares_are_one_with_src_and_the_maps_share_without(ca):
    assert text_image_region_shares(_canvas_trace(ca, regional=True)) == pytest.approx(
        [1.0, 1.0]
    )  # each text is read by its region only
    tr = _canvas_trace(ca, regional=False)
    shares = text_image_region_shares(tr)
    for step, share in enumerate(shares):
        m = tr.text_image_map(step)  # [2 * rows, cols]
        assert share == pytest.approx(
            float(m[step * (m.shape[0] // 2) : (step + 1) * (m.shape[0] // 2)].sum() / m.sum())
        )
        assert 0 < share < 1
    assert text_image_region_shares(tr, layers="single") == [None, None]  # nothing captured there


def test_base_contribution_curve_is_the_mean_over_layers_per_step(ca):
    tr = _canvas_trace(ca, regional=True)
    curve = base_contribution_curve(tr)
    assert list(curve) == [0, 1]
    for step, value in curve.items():
        assert value == pytest.approx(
            (tr.base_contribution[(0, "x", step)] + tr.base_contribution[(0, "y", step)]) / 2
        )
    assert base_contribution_curve(_canvas_trace(ca, regional=False)) == {}  # no base branch without SRC


def test_canvas_summaries_need_a_canvas(rd):
    with cooklab.trace(rd, capture=["noise"]) as tr:
        pass
    with pytest.raises(ValueError, match="no CookAnything canvas"):
        text_image_region_shares(tr)
    with pytest.raises(ValueError, match="no CSCC deltas"):
        cscc_delta_means(tr)


def test_cscc_delta_means_follow_the_fused_spans(ca):
    recipe = cooklab.Recipe.from_steps(STEPS[:2], title="Eggs")
    with cooklab.trace(ca, capture=["cscc"]) as tr:
        out = ca(recipe, num_inference_steps=1, progress=False, output_type="np")
    norms = tr.canvas.cscc_delta_norm  # [N, L]
    expected = [float(norms[s.step, : s.fused_length].mean()) for s in out.spans.spans]
    assert cscc_delta_means(tr) == pytest.approx(expected) and all(v > 0 for v in expected)
    with pytest.warns(UserWarning, match="cut"), cooklab.trace(ca, capture=["cscc"]) as tr:
        out = ca(recipe, num_inference_steps=1, max_sequence_length=10, progress=False, output_type="np")
    assert [s.fused_length for s in out.spans.spans][1] == 0
    assert cscc_delta_means(tr)[1] is None  # step 2 was cut off: no token to fuse


def test_reference_share_means_average_each_frames_curve(rd):
    recipe = cooklab.Recipe.from_steps(STEPS, plans=PLANS)
    with cooklab.trace(rd, capture=["reference_share"], layers="mid") as tr:
        rd(recipe, seed=0, num_inference_steps=3, progress=False, output_type="np")
    means = reference_share_means(tr)
    assert list(means) == [1, 2]  # frame 0 has no reference
    for frame, mean in means.items():
        curve = tr.reference_share_curve(frame)
        assert curve and mean == pytest.approx(sum(curve.values()) / len(curve)) and 0 < mean < 1
