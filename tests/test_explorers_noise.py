"""The region-aware noise explorer (``cooklab.viz.widgets.noise_explorer``) on a real tiny generation.

Its toggle must show the uniform run's pictures when off and the region-aware run's at the slider's level when on,
both on the same seed as a plain pipeline call; the title must carry the measure of the shown pictures and of the
other setting; the second figure must be the shown run's start noise; and its level slider must offer only levels
on distinct timesteps.
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
from cooklab.recipe_diffusion import NoiseLevels  # noqa: E402
from cooklab.viz import widgets  # noqa: E402
from cooklab.viz.widgets import panels  # noqa: E402

STEPS = 12  # 0.5, 0.7 and 0.9 land on indices 6, 4 and 2; the base level 0.999 on index 1
BOX = (8, 8, 48, 40)  # x0, y0, x1, y1 in pixels: frame 2's container mask, given in frame 1
CALL = dict(seed=3, num_inference_steps=STEPS, height=64, width=64, guidance_scale=3.0, progress=False)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def pipe():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models gain nothing from threads
    yield cooklab.RecipeDiffusion.from_pipe(cooklab.models.tiny_sd())
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def recipe():
    return cooklab.Recipe.from_steps(["Pour oats into a jar.", "Add milk to the jar."])


def mean_pixel(images) -> str:
    """A measure that tells any two runs apart: the last picture's mean pixel value."""
    return f"mean pixel {np.asarray(images[-1], dtype=np.float64).mean():.4f}"


def plain_runs(pipe, recipe) -> dict:
    """The pictures the explorer must show, from plain pipeline calls: {None: uniform, level: region-aware}."""
    runs = {None: pipe(recipe, sequential=True, kv_sharing=False, region_aware=False, **CALL).images}
    for level in (0.5, 0.9):
        out = pipe(recipe, variant="region_aware", masks=[None, BOX], object_noise=level, **CALL)
        runs[level] = out.images
    return runs


def pictures(fig) -> list[np.ndarray]:
    """The pictures drawn in the explorer's first figure, as [H, W, 3] arrays in [0, 1]."""
    return [np.asarray(ax.images[0].get_array()) for ax in fig.axes if ax.images]


def panel_title(fig, start: str) -> str:
    """The title of the noise figure's panel whose title starts with ``start``."""
    return next(ax.get_title() for ax in fig.axes if ax.get_title().startswith(start))


def test_toggle_and_slider_show_the_right_runs_with_their_measures(pipe, recipe, monkeypatch):
    shown = []
    monkeypatch.setattr(panels, "show_figures", lambda *figs: shown.append(figs))
    box = widgets.noise_explorer(
        pipe, recipe, levels=(0.5, 0.9), object_noise=0.9, masks=[None, BOX], measure=mean_pixel, **CALL
    )
    expected = plain_runs(pipe, recipe)
    last = {level: np.asarray(images[-1]) for level, images in expected.items()}
    assert not np.array_equal(last[None], last[0.9]) and not np.array_equal(last[0.9], last[0.5])  # runs differ
    assert [level for _, level in box.controls["object_noise"].options] == [0.5, 0.9]

    def check(level_shown, other) -> str:
        """The pictures and the start noise drawn are those of ``level_shown``; returns the pictures' title."""
        pictures_fig, noise_fig = shown[-1]
        drawn = pictures(pictures_fig)
        assert len(drawn) == 2
        for got, image in zip(drawn, expected[level_shown], strict=True):
            want = np.asarray(image, dtype=np.float32) / 255  # the same seed as a plain call
            np.testing.assert_allclose(got, want, atol=1e-6)
        title = pictures_fig._suptitle.get_text()
        assert mean_pixel(expected[level_shown]) in title
        assert f"{mean_pixel(expected[other]).rsplit(' ', 1)[-1]}), seed 3" in title  # the other setting's measure
        signal = panel_title(noise_fig, "signal coefficient a (× L_ref)\n")
        if level_shown is None:
            assert "everywhere" in signal and "no mask" in noise_fig.axes[0].texts[0].get_text()
        else:  # the start noise drawn is the shown run's: inside the mask, the signal coefficient of its level
            pipe.scheduler.set_timesteps(STEPS)
            assert f"{NoiseLevels(pipe.scheduler, STEPS).coefficients(level_shown)[0]:.3f} in mask" in signal
        return title

    on = check(0.9, None)
    assert "region-aware noise on: object level 0.9 (t=" in on and "(uniform 0.999:" in on
    box.controls["mechanism"].value = False
    off = check(None, 0.9)
    assert "region-aware noise off: uniform noise 0.999 (t=" in off and "(object level 0.9:" in off
    box.controls["mechanism"].value = True
    box.controls["object_noise"].value = 0.5
    check(0.5, None)
    assert len(shown) == 4  # one redraw per change


def test_every_level_is_its_own_timestep(pipe, recipe):
    with pytest.raises(ValueError, match=r"levels: 0.7 and 0.71 both land on index 4"):
        widgets.noise_explorer(pipe, recipe, levels=(0.7, 0.71), masks=[None, BOX], **CALL)
    with pytest.raises(ValueError, match=r"levels: 0.95 lands on index 1, not after base_noise=0.999"):
        widgets.noise_explorer(pipe, recipe, levels=(0.5, 0.95), object_noise=0.5, masks=[None, BOX], **CALL)
    with pytest.raises(ValueError, match=r"object_noise=0.6: choose one of levels"):
        widgets.noise_explorer(pipe, recipe, levels=(0.5, 0.7), object_noise=0.6, masks=[None, BOX], **CALL)


def test_a_frame_without_a_mask_is_refused(pipe, recipe):
    with pytest.raises(ValueError, match=r"masks / mask_provider: frame 2 got no container mask"):
        widgets.noise_explorer(pipe, recipe, levels=(0.7,), **CALL)
