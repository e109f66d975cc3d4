"""The CSCC explorer (``cooklab.viz.widgets.lambda_explorer``): its toggle switches CSCC off (``cscc=False``), its
slider moves lambda, and what it draws is the shown run's pictures, their change from CSCC off and the fused tokens'
similarity computed by the pipeline's own ``cscc_fuse``."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import matplotlib  # noqa: E402

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import cooklab  # noqa: E402
from cooklab.models import TINY_T5_MAX_LENGTH  # noqa: E402
from cooklab.viz.common import image_array  # noqa: E402
from cooklab.viz.widgets import lambda_explorer, panels  # noqa: E402

STEPS = [
    "Dice two carrots on a wooden board.",
    "Fry the carrots in a black pan.",
    "Serve the carrots on a white plate.",
]
KW = dict(num_inference_steps=2, height=64, width=64, max_sequence_length=TINY_T5_MAX_LENGTH, seed=0)


def label(images) -> str:
    """A measure that names its pictures: the sum of their pixels."""
    return f"pixel sum {sum(float(image_array(x).sum()) for x in images):.3f}"


@pytest.fixture(scope="module")
def explored():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    pipe = cooklab.CookAnything.from_pipe(cooklab.models.tiny_flux(seed=0))
    shown = []
    keep = panels.show_figures
    panels.show_figures = lambda *figs: shown.append(figs)
    try:
        box = lambda_explorer(pipe, STEPS, lams=(0, 0.5, 2.0), measure=label, **KW)
        box.controls["mechanism"].value = False
        box.controls["mechanism"].value = True
        box.controls["lam"].value = 2.0
    finally:
        panels.show_figures = keep
        torch.set_num_threads(before)
    return pipe, box, shown


def pictures_of(fig, n: int) -> list[np.ndarray]:
    """The first row of the pictures figure: the n step images as drawn (the rows alternate per step)."""
    return [np.asarray(ax.images[0].get_array()) for ax in fig.axes[0 : 2 * n : 2]]


def differences_of(fig, n: int) -> list:
    """The second row: the n difference maps (their AxesImage)."""
    return [ax.images[0] for ax in fig.axes[1 : 2 * n : 2]]


def test_the_toggle_shows_the_run_without_cscc_and_its_measure(explored):
    pipe, box, shown = explored
    n = len(STEPS)
    on, off = box.results[0.5], box.off
    assert box.controls["mechanism"].value is True and sorted(box.results) == [0.5, 2.0]
    assert off.settings["cscc"] is False and on.settings["cscc"] is True and on.settings["lam"] == 0.5
    # on (first draw): the lambda run's pictures, its measure first, the off run's in brackets
    first = shown[0][0]
    assert all(np.allclose(a, image_array(b)) for a, b in zip(pictures_of(first, n), on.images))
    assert f"CSCC on (λ = 0.5): {label(on.images)}\n(off: {label(off.images)})" in first._suptitle.get_text()
    # off: the cscc=False run's pictures, its measure first, and no difference left to show
    second = shown[1][0]
    assert all(np.allclose(a, image_array(b)) for a, b in zip(pictures_of(second, n), off.images))
    assert f"CSCC off: {label(off.images)}\n(on, λ = 0.5: {label(on.images)})" in second._suptitle.get_text()
    assert all(np.asarray(im.get_array()).max() == 0 for im in differences_of(second, n))
    assert "seed 0" in second._suptitle.get_text()
    # the off run is the ablation's cscc=False, which lambda = 0 equals exactly
    zero = pipe(STEPS, cscc=True, lam=0.0, progress=False, **KW)
    assert all(np.array_equal(image_array(a), image_array(b)) for a, b in zip(zero.images, off.images))


def test_the_difference_maps_are_on_each_lambdas_own_scale(explored):
    _, box, shown = explored
    n = len(STEPS)
    scales = []
    for figs, lam in ((shown[0], 0.5), (shown[3], 2.0)):
        run = box.results[lam]
        diffs = [np.abs(image_array(a) - image_array(b)).mean(-1) for a, b in zip(run.images, box.off.images)]
        drawn = differences_of(figs[0], n)
        assert all(np.allclose(np.asarray(im.get_array()), d) for im, d in zip(drawn, diffs))
        top = max(float(np.percentile(np.stack(diffs), 98)), float(np.stack(diffs).max()) / 10)
        assert all(im.get_clim() == (0.0, pytest.approx(top)) for im in drawn)
        scales.append(top)
    assert scales[0] != scales[1]  # each lambda its own scale, not one fixed by the largest


def test_the_similarity_curves_come_from_the_pipelines_fusion(explored):
    pipe, box, shown = explored
    grid, to_first, to_recipe, steps = box.similarity
    spans = box.results[0.5].spans
    assert grid[0] == 0 and grid[-1] == 2.0 and 0.5 in grid and steps == [2, 3]
    texts, length = spans.step_texts, box.results[0.5].settings["max_sequence_length"]
    own, _, _ = pipe.pipe.encode_prompt(prompt=texts, prompt_2=texts, max_sequence_length=length)  # [N, L, D]
    whole, _, _ = pipe.pipe.encode_prompt(prompt=spans.text, prompt_2=spans.text, max_sequence_length=length)
    words_1 = own[0, : spans.spans[0].own_length].mean(0)
    recipe = whole[0, : spans.n_tokens].mean(0)
    k = int(np.flatnonzero(grid == 0.5)[0])
    for j, span in enumerate(spans.spans[1:]):  # Eq. 12 by hand at lambda = 0.5
        t, b = span.fused_length, span.start
        fused = (own[span.step, :t] + 0.5 * whole[0, b : b + t]).mean(0)
        assert to_first[k, j] == pytest.approx(F.cosine_similarity(fused, words_1, dim=0).item(), abs=1e-5)
        assert to_recipe[k, j] == pytest.approx(F.cosine_similarity(fused, recipe, dim=0).item(), abs=1e-5)
    assert np.ptp(to_first, axis=0).min() > 1e-3 and np.ptp(to_recipe, axis=0).min() > 1e-3  # they move with lambda
    # the second figure marks the shown lambda: 0.5 on, 0 off, 2 after the slider moved
    marked = [figs[1].axes[0].lines[-1].get_xdata()[0] for figs in shown]
    assert marked == [0.5, 0.0, 0.5, 2.0]


def test_the_explorer_needs_a_positive_lambda():
    with pytest.raises(ValueError, match="lams holds no lambda > 0"):
        lambda_explorer(None, STEPS, lams=(0,))
