"""The on/off explorers of notebooks 00 and 01: ``frame_scrubber(out, compare=...)`` (a variant vs independent frames)
and ``attention_explorer(tr, compare=...)`` (K/V sharing on vs off). What they draw must be the run the toggle names,
titled with that run's measure first, and every other control must change the figures at its first step."""

import warnings

import numpy as np
import pytest
import torch

import cooklab
from cooklab.viz.widgets import attention_explorer, frame_scrubber, oracle_consistency, panels

CALL = dict(seed=0, num_inference_steps=4, height=64, width=64, guidance_scale=3.0, progress=False)


def mean_measure(images) -> str:
    """A measure that tells any two runs apart: the mean pixel value of their pictures."""
    return f"mean {np.mean([np.asarray(i, dtype=np.float64) for i in images]):.4f}"


@pytest.fixture(scope="module")
def runs():
    """Three toy recipe steps: region_aware_kv (oracle masks), K/V sharing alone (traced), independent (traced)."""
    from cooklab.toykitchen.oracle import OracleMaskProvider

    torch.set_num_threads(1)
    rd = cooklab.RecipeDiffusion.from_pipe(cooklab.models.toy_sd())
    recipe = cooklab.load_recipe(cooklab.resources.shipped("toykitchen", "recipes", "toy_kitchen.yaml"))
    recipe = cooklab.Recipe.from_steps(recipe.steps[:3], title=recipe.title)
    with warnings.catch_warnings():  # at 4 steps both noise levels share a timestep: fine for what is tested here
        warnings.simplefilter("ignore", UserWarning)
        variant = rd(recipe, variant="region_aware_kv", mask_provider=OracleMaskProvider(), **CALL)
    capture = ["reference_share", "self_attention", "cross_attention"]
    with cooklab.trace(rd, capture=capture, layers=("mid", "up")) as tr:
        shared = rd(recipe, sequential=False, kv_sharing=True, region_aware=False, **CALL)
    with cooklab.trace(rd, capture=capture, layers=("mid", "up")) as tr_off:
        independent = rd(recipe, variant="independent", **CALL)
    return dict(variant=variant, shared=shared, tr=tr, independent=independent, tr_off=tr_off, recipe=recipe, rd=rd)


@pytest.fixture
def shown(monkeypatch):
    """The figures of each redraw, in order (``panels.show_figures`` replaced by a recorder)."""
    drawn = []
    monkeypatch.setattr(panels, "show_figures", lambda *figs: drawn.append(figs))
    return drawn


def same(ax, image) -> bool:
    """The axes shows ``image`` (its first image; drawn as uint8, or as floats in [0, 1])."""
    drawn = np.asarray(ax.images[0].get_array())[..., :3]
    expected = np.asarray(image)[..., :3]
    if drawn.dtype != np.uint8:
        return np.allclose(drawn, expected / 255, atol=1e-6)
    return np.array_equal(drawn, expected)


def strong_row(fig, n: int) -> int:
    """The row of a strip of runs drawn at full strength (the others are faded)."""
    alphas = [fig.axes[r * n].images[0].get_alpha() for r in range(len(fig.axes) // n)]
    assert sorted(alphas) == [0.3, 1.0], alphas
    return alphas.index(1.0)


# ---- 00: frame_scrubber, a variant vs independent frames ----------------------------------------


def test_frame_scrubber_toggle_shows_the_named_run_with_its_measure_first(runs, shown):
    out, ind = runs["variant"], runs["independent"]
    labels = mean_measure(out.images), mean_measure(ind.images)
    assert labels[0] != labels[1]
    box = frame_scrubber(out, compare=ind, measure=mean_measure)
    c = box.controls
    assert c["mechanism"].value is True and c["step"].value == 2  # starts on the first frame with a reference
    frame, strip = shown[-1]
    assert same(frame.axes[0], out.images[1]) and same(frame.axes[1], out.images[0])
    assert frame._suptitle.get_text() == (f"region_aware_kv: {labels[0]} (independent: {labels[1]}), seed 0")
    assert strong_row(strip, 3) == 0
    c["mechanism"].value = False
    frame, strip = shown[-1]
    assert same(frame.axes[0], ind.images[1]) and same(frame.axes[1], ind.images[0])
    assert "not used" in frame.axes[1].get_title()  # independent frames have no reference
    assert frame._suptitle.get_text() == f"independent: {labels[1]} (region_aware_kv: {labels[0]}), seed 0"
    assert strong_row(strip, 3) == 1
    assert "independent" in box.children[-1].children[1].value  # the table is the shown run's
    c["step"].value = 3  # the recipe step slider moves the frame in the run shown
    assert same(shown[-1][0].axes[0], ind.images[2])
    c["mechanism"].value = True
    assert same(shown[-1][0].axes[0], out.images[2])


def test_frame_scrubber_refuses_a_comparison_of_another_seed_or_recipe(runs):
    out = runs["variant"]
    other = runs["rd"](runs["recipe"], variant="independent", **(CALL | {"seed": 1, "num_inference_steps": 2}))
    with pytest.raises(ValueError, match="seed"):
        frame_scrubber(out, compare=other)
    with pytest.raises(ValueError, match="same recipe"):
        frame_scrubber(
            out, compare=runs["rd"](["a", "b"], variant="independent", **(CALL | {"num_inference_steps": 2}))
        )


def test_frame_scrubber_without_a_comparison_has_no_toggle(runs, shown):
    box = frame_scrubber(runs["variant"])
    assert "mechanism" not in box.controls and box.controls["step"].value == 1
    assert len(shown[-1]) == 1


# ---- 01: attention_explorer, K/V sharing on vs off ------------------------------------------------


def test_attention_explorer_toggle_switches_the_pictures_and_the_reference_share(runs, shown):
    tr, ind = runs["tr"], runs["independent"]
    on_images = runs["shared"].images
    labels = mean_measure(on_images), mean_measure(ind.images)
    box = attention_explorer(tr, compare=ind, measure=mean_measure, compare_trace=runs["tr_off"])
    c = box.controls
    assert c["mechanism"].value is True and c["view"].value == "reference_share" and c["frame"].value == 1
    pictures, view = shown[-1]
    assert pictures._suptitle.get_text() == f"K/V sharing on: {labels[0]} (K/V sharing off: {labels[1]}), seed 0"
    assert strong_row(pictures, 3) == 0 and same(pictures.axes[1], on_images[1])
    share = tr.reference_share_map(1).numpy()  # [G, G], all layers and steps
    heat = view.axes[2].images[-1]
    r = float(np.abs(share - 0.5).max())
    assert np.allclose(heat.get_array(), share - 0.5) and np.allclose(heat.get_clim(), (-r, r))  # s - 0.5, fitted
    c["mechanism"].value = False
    pictures, view = shown[-1]
    assert pictures._suptitle.get_text() == f"K/V sharing off: {labels[1]} (K/V sharing on: {labels[0]}), seed 0"
    assert strong_row(pictures, 3) == 1 and same(pictures.axes[4], ind.images[1])
    assert same(view.axes[0], ind.images[1])
    assert "no reference share" in view.axes[1].texts[0].get_text()
    c["view"].value = "self_attention"  # the off-run's own trace: its layers never shared K/V
    assert "no reference keys" in shown[-1][1].axes[1].texts[0].get_text()
    c["view"].value = "cross_attention"
    assert same(shown[-1][1].axes[0], runs["tr_off"].frames[1].image)


def test_attention_explorer_layer_step_and_frame_change_the_map_at_their_first_step(runs, shown):
    box = attention_explorer(runs["tr"], compare=runs["independent"], measure=oracle_consistency)
    c = box.controls
    assert "oracle consistency" in shown[-1][0]._suptitle.get_text()

    def share_map():
        return np.asarray(shown[-1][1].axes[2].images[-1].get_array()).copy()

    def differs(a, b) -> bool:  # one layer's map may have another grid than the average's
        return a.shape != b.shape or not np.allclose(a, b)

    before = share_map()
    c["step"].value = c["step"].options[1][1]  # the slider's first step: from "all" to the first denoising step
    moved = share_map()
    assert differs(moved, before)
    c["layer"].value = c["layer"].options[1][1]
    assert differs(share_map(), moved)
    moved = share_map()
    c["frame"].value = 2
    assert differs(share_map(), moved)
    c["mechanism"].value = False  # no trace of the off-run: the other views say so
    c["view"].value = "cross_attention"
    assert "compare_trace" in shown[-1][1].axes[1].texts[0].get_text()


def test_attention_explorer_without_a_comparison_has_no_toggle(runs, shown):
    box = attention_explorer(runs["tr"])
    assert "mechanism" not in box.controls and len(shown[-1]) == 1
