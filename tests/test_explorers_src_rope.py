"""The SRC and Flexible RoPE explorers (notebooks 03 and 04): their mechanism toggle switches what is drawn.

Each test drives ``box.controls`` with ``panels.show_figures`` replaced by a recorder and checks that the
figures show the run the controls name: the pictures, the trace the attention is read from, the ids, and
the measure in the title computed on the shown run's own pictures (a measure that fingerprints the
pictures, so swapped runs or swapped labels fail).
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import matplotlib  # noqa: E402

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import cooklab  # noqa: E402
from cooklab.cookanything.flexible_rope import canvas_image_ids  # noqa: E402
from cooklab.instrument import text_image_region_shares, text_image_share_matrix  # noqa: E402
from cooklab.models import TINY_T5_MAX_LENGTH  # noqa: E402
from cooklab.viz.common import image_array  # noqa: E402
from cooklab.viz.cookanything import LEAK_RGB, ids_grid  # noqa: E402
from cooklab.viz.widgets import panels, region_mask_explorer, rope_explorer, text_image_explorer  # noqa: E402
from cooklab.viz.widgets.text_attention import SHOWN_EDGE  # noqa: E402

STEPS = ["Dice two carrots on a wooden board.", "Fry the carrots in a black pan.", "Serve the carrots on a plate."]
KW = dict(num_inference_steps=2, height=32, width=32, max_sequence_length=TINY_T5_MAX_LENGTH, progress=False)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def ca():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    pipe = cooklab.CookAnything.from_pipe(cooklab.models.tiny_flux(seed=0))
    yield pipe
    torch.set_num_threads(before)


@pytest.fixture
def shown(monkeypatch) -> list[list]:
    """Every redraw's figures, one list per ``show_figures`` call (nothing is rendered)."""
    calls = []
    monkeypatch.setattr(panels, "show_figures", lambda *figs: calls.append(list(figs)))
    return calls


def fingerprint(images) -> str:
    """A measure that names the pictures it was given (their mean pixel), so a label shows which run it read."""
    return f"fp {np.mean([image_array(im).mean() for im in images]):.6f}"


def drawn_pixels(ax) -> np.ndarray:
    return np.asarray(ax.images[0].get_array(), dtype=np.float32)


def same_pictures(axes, images) -> bool:
    return all(np.allclose(drawn_pixels(ax), image_array(im), atol=1e-6) for ax, im in zip(axes, images, strict=True))


def framed(ax) -> bool:
    return matplotlib.colors.same_color(ax.spines["top"].get_edgecolor(), SHOWN_EDGE)


# ---- notebook 03: the mask ------------------------------------------------------------------------------


def test_mask_explorer_with_src_off_allows_every_pair_and_marks_what_src_removes(shown):
    box = region_mask_explorer(3, step_text_len=2, region_side=2)
    on = shown[-1][0]
    token_on = np.asarray(on.axes[1].images[0].get_array())  # [T, T, 3]
    assert (token_on == 1.0).all(-1).mean() == pytest.approx(2 / 3)  # SRC keeps 1/N of the pairs: the rest is white
    box.controls["mechanism"].value = False
    off = shown[-1][0]
    group_off = np.asarray(off.axes[0].images[0].get_array())  # [2N, 2N, 3]
    token_off = np.asarray(off.axes[1].images[0].get_array())
    assert not (token_off == 1.0).all(-1).any()  # full attention: nothing masked
    leak = np.isclose(token_off, LEAK_RGB).all(-1)
    assert leak.mean() == pytest.approx(2 / 3)  # exactly the pairs SRC removes are drawn as leak paths
    assert np.array_equal(leak, (token_on == 1.0).all(-1))
    assert np.isclose(group_off, LEAK_RGB).all(-1).sum() == 36 - 12  # 2N x 2N cells minus the 3N that M allows
    assert "SRC off" in off.axes[1].get_title() and "SRC off" in box.children[4].children[0].value
    box.controls["mechanism"].value = True
    assert np.array_equal(np.asarray(shown[-1][0].axes[1].images[0].get_array()), token_on)


# ---- notebook 03: SRC on / off and alpha ------------------------------------------------------------------


@pytest.fixture(scope="module")
def src_box(ca):
    calls = []
    show = panels.show_figures
    panels.show_figures = lambda *figs: calls.append(list(figs))
    try:
        box = text_image_explorer(ca, STEPS, alphas=(0.0, 1.0), alpha=0.1, measure=fingerprint, seed=0, **KW)
    finally:
        panels.show_figures = show
    box.calls = calls
    return box


def check_src_figures(figs, box, on: bool, alpha: float) -> None:
    """The three figures show the run the controls name: pictures, framed row, measure labels, trace, shares."""
    canvases, maps, shares = figs
    (on_out, on_tr), (off_out, off_tr) = box.results[alpha], box.results["off"]
    n = len(STEPS)
    rows = canvases.axes[:n], canvases.axes[n : 2 * n]
    assert same_pictures(rows[0], on_out.images) and same_pictures(rows[1], off_out.images)
    assert framed(rows[0][0]) == on and framed(rows[1][0]) == (not on)
    title = canvases._suptitle.get_text()
    first, other = (on_out, off_out) if on else (off_out, on_out)
    start = f"SRC on, α = {alpha:g}" if on else "SRC off (full attention)"
    assert title.startswith(f"{start}: {fingerprint(first.images)}\n")
    assert f": {fingerprint(other.images)}), seed 0" in title
    tr = on_tr if on else off_tr
    assert ("SRC on" in maps._suptitle.get_text()) == on
    overlay = np.asarray(maps.axes[0].images[-1].get_array())
    assert np.allclose(overlay, tr.text_image_map(0).numpy(), atol=1e-6)  # step 1's text, read from the shown trace
    drawn = np.asarray(shares.axes[0].images[0].get_array())
    assert np.allclose(drawn, text_image_share_matrix(tr).numpy(), atol=1e-6)


def test_src_explorer_toggles_between_the_two_runs(src_box, shown):
    box = src_box
    assert set(box.results) == {0.1, "off"}  # the first alpha and SRC off, generated when built
    assert box.results[0.1][1].canvas.regional and box.results[0.1][1].canvas.alpha == 0.1
    assert not box.results["off"][1].canvas.regional
    check_src_figures(box.calls[-1], box, on=True, alpha=0.1)
    assert np.allclose(text_image_share_matrix(box.results[0.1][1]), torch.eye(3), atol=1e-5)
    box.controls["mechanism"].value = False
    check_src_figures(shown[-1], box, on=False, alpha=0.1)
    off_shares = text_image_share_matrix(box.results["off"][1])
    assert off_shares.diagonal().max() < 0.9  # without SRC a step's text is read outside its region too
    box.controls["mechanism"].value = True
    check_src_figures(shown[-1], box, on=True, alpha=0.1)
    assert plt.get_fignums() == []  # plain Figures: a redraw on a kernel subshell never meets pyplot's flush


def test_src_explorer_alpha_generates_and_shows_that_alpha(src_box, shown):
    box = src_box
    box.controls["alpha"].value = 1.0
    assert box.results[1.0][1].canvas.alpha == 1.0 and box.results[1.0][0].settings["alpha"] == 1.0
    check_src_figures(shown[-1], box, on=True, alpha=1.0)
    box.controls["mechanism"].value = False  # SRC off ignores alpha, the on row keeps the chosen one
    check_src_figures(shown[-1], box, on=False, alpha=1.0)
    box.controls["mechanism"].value = True
    box.controls["alpha"].value = 0.1


def test_share_matrix_rows_share_out_each_steps_text_and_hold_the_own_region_share(src_box):
    for key in (0.1, "off"):
        tr = src_box.results[key][1]
        shares = text_image_share_matrix(tr)  # [N steps, N regions]
        assert shares.shape == (3, 3) and torch.allclose(shares.sum(1), torch.ones(3), atol=1e-5)
        assert np.allclose(shares.diagonal().numpy(), text_image_region_shares(tr), atol=1e-6)
    mass = src_box.results["off"][1].text_image_map(1)  # [N * rows, cols]: step 2's text over the canvas
    rows = mass.shape[0] // 3
    assert text_image_share_matrix(src_box.results["off"][1])[1, 2] == pytest.approx(
        float(mass[2 * rows :].sum() / mass.sum()), abs=1e-6
    )  # region 3 is the third band of rows


# ---- notebook 04: Flexible RoPE on / off ------------------------------------------------------------------


@pytest.fixture(scope="module")
def rope_runs(ca):
    return {name: ca(STEPS, seed=0, flexible_rope=name == "flexible", **KW) for name in ("flexible", "global")}


def test_rope_explorer_toggles_canvas_ids_and_measure(ca, rope_runs, shown):
    flexible, global_ = rope_runs["flexible"], rope_runs["global"]
    box = rope_explorer(ca.transformer.pos_embed, flexible, global_, measure=fingerprint)
    lay = flexible.layout
    for on, out, other, flag in ((True, flexible, global_, True), (False, global_, flexible, False)):
        box.controls["mechanism"].value = on
        canvas_fig, rotary = shown[-1]
        axes = canvas_fig.axes
        assert np.allclose(drawn_pixels(axes[0]), image_array(flexible.canvas), atol=1e-6)
        assert np.allclose(drawn_pixels(axes[1]), image_array(global_.canvas), atol=1e-6)
        assert framed(axes[0]) == on and framed(axes[1]) == (not on)
        rows = ids_grid(canvas_image_ids(lay.n_regions, lay.rows, lay.cols, flexible=flag), lay)[..., 1]
        assert np.array_equal(drawn_pixels(axes[2]), rows)  # the shown setting's row ids beside the canvases
        title = canvas_fig._suptitle.get_text()
        assert title.startswith(f"Flexible RoPE {'on' if on else 'off'}")
        assert f": {fingerprint(out.images)} (" in title and f"ids: {fingerprint(other.images)})" in title
        titles = [ax.get_title() for ax in rotary.axes if ax.get_title()]
        assert "flexible: |difference|: max 0.00" in titles  # both id sets, whatever is shown: not all zeros
        assert any(t.startswith("global: |difference|") and not t.endswith("0.00") for t in titles)
    assert plt.get_fignums() == []


def test_rope_explorer_region_slider_picks_the_compared_region(ca, rope_runs, shown):
    box = rope_explorer(ca.transformer.pos_embed, rope_runs["flexible"], rope_runs["global"])
    assert "global: region 3" in [ax.get_title() for ax in shown[-1][1].axes]  # the last region by default
    box.controls["region"].value = 2
    canvas_fig, rotary = shown[-1]
    assert "global: region 2" in [ax.get_title() for ax in rotary.axes]
    assert "region 2 outlined" in canvas_fig._suptitle.get_text()


def test_rope_explorer_refuses_swapped_runs(ca, rope_runs):
    with pytest.raises(ValueError, match="flexible_out: pass the output of pipe"):
        rope_explorer(ca.transformer.pos_embed, rope_runs["global"], rope_runs["flexible"])
