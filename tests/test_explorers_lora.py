"""The LoRA explorer (notebook 08): scale 0 beside a chosen scale, its toggle and slider, drawn from the
canvases generated once when it is built."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import matplotlib  # noqa: E402

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib import colormaps  # noqa: E402

from cooklab.cookanything.lora import LoraSpec, add_lora  # noqa: E402
from cooklab.models import TINY_T5_MAX_LENGTH  # noqa: E402
from cooklab.viz.common import image_array  # noqa: E402
from cooklab.viz.widgets import lora_explorer, panels  # noqa: E402

STEPS = ["Dice two carrots on a wooden board", "Fry the carrots in a black pan", "Serve the carrots on a plate"]
KW = dict(num_inference_steps=2, height=32, width=32, max_sequence_length=TINY_T5_MAX_LENGTH)
N = len(STEPS)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture
def adapted(ca):
    """The tiny CookAnything with a random LoRA (B != 0, so every scale draws other pictures), counting its calls."""
    params = add_lora(ca.pipe.transformer, LoraSpec(rank=4))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in params:
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    calls = []

    def pipe(recipe, **kwargs):
        calls.append(kwargs["lora_scale"])
        return ca(recipe, **kwargs)

    pipe.calls = calls
    return pipe


def mean_label(images) -> str:
    """A measure that tells every run apart: the mean of its pictures."""
    return f"mean {np.mean([image_array(im).mean() for im in images]):.6f}"


def row(fig, r: int) -> list[np.ndarray]:
    """The N pictures drawn in row ``r`` of the explorer's figure (0: scale 0, 1: shown, 2: difference)."""
    return [np.asarray(ax.images[0].get_array()) for ax in fig.axes[r * N : (r + 1) * N]]


def same(drawn, images) -> bool:
    return all(np.allclose(d, image_array(im)) for d, im in zip(drawn, images, strict=True))


def heat(shown, base) -> list[np.ndarray]:
    """What the difference row must hold: magma(sqrt(d / max d)), d = |shown - base| averaged over RGB."""
    maps = [np.abs(image_array(a) - image_array(b)).mean(-1) for a, b in zip(shown, base)]
    top = max(float(m.max()) for m in maps)
    return [colormaps["magma"](np.sqrt(m / top))[..., :3] for m in maps]


def test_the_toggle_shows_the_chosen_scale_or_scale_0_and_the_slider_picks_the_scale(adapted, monkeypatch):
    shown = []
    monkeypatch.setattr(panels, "show_figures", lambda *figs: shown.extend(figs))
    box = lora_explorer(adapted, STEPS, scales=(0.5, 1.0), scale=1.0, seed=0, measure=mean_label, **KW)
    assert len(shown) == 1
    assert sorted(adapted.calls) == [0.0, 0.5, 1.0]  # every scale generated once, when the explorer is built
    outs = box.outputs
    assert {out.settings["seed"] for out in outs.values()} == {0}  # the same seed for every scale
    assert not same([image_array(im) for im in outs[1.0].images], outs[0.0].images)  # the adapter moves pixels
    label = {s: mean_label(out.images) for s, out in outs.items()}

    box.controls["mechanism"].value = False
    box.controls["mechanism"].value = True
    box.controls["scale"].value = 0.5
    assert len(shown) == 4 and len(adapted.calls) == 3  # redrawn from the canvases, nothing generated again
    on, off, on_again, half = shown

    for fig in (on, off, on_again, half):
        assert same(row(fig, 0), outs[0.0].images)  # the first row is always scale 0
    assert same(row(on, 1), outs[1.0].images) and same(row(half, 1), outs[0.5].images)
    assert same(row(off, 1), outs[0.0].images)  # off: the shown row is scale 0
    for fig, s in ((on, 1.0), (half, 0.5)):
        assert all(np.allclose(d, h) for d, h in zip(row(fig, 2), heat(outs[s].images, outs[0.0].images)))
    black = colormaps["magma"](0.0)[:3]
    assert all(np.allclose(d, black) for d in row(off, 2))  # off: nothing moved

    title = on._suptitle.get_text()
    assert title.startswith(f"LoRA on, scale 1: {label[1.0]} (off, scale 0: {label[0.0]})") and "seed 0" in title
    assert off._suptitle.get_text().startswith(f"LoRA off, scale 0: {label[0.0]} (on, scale 1: {label[1.0]})")
    assert half._suptitle.get_text().startswith(f"LoRA on, scale 0.5: {label[0.5]}")
    assert box.changes[0.0] == 0.0 and 0 < box.changes[0.5] and 0 < box.changes[1.0]
    assert plt.get_fignums() == []  # plain Figures: pyplot never held one


def test_the_scales_are_checked(adapted):
    with pytest.raises(ValueError, match="scales=.*other than 0"):
        lora_explorer(adapted, STEPS, scales=(0,), scale=0, **KW)
    with pytest.raises(ValueError, match="scale=2.*pick one of them"):
        lora_explorer(adapted, STEPS, scales=(0.5, 1.0), scale=2.0, **KW)
    assert adapted.calls == []  # refused before any generation


def test_without_a_measure_the_titles_name_the_settings_only(adapted, monkeypatch):
    shown = []
    monkeypatch.setattr(panels, "show_figures", lambda *figs: shown.extend(figs))
    box = lora_explorer(adapted, STEPS, scales=(1.0,), seed=3, **KW)  # a real checkpoint: measure=None
    box.controls["mechanism"].value = False
    assert [fig._suptitle.get_text() for fig in shown] == [
        "LoRA on, scale 1 (off: scale 0), seed 3",
        "LoRA off, scale 0 (on: scale 1), seed 3",
    ]
    table = box.children[-1].children[1].value  # the HTML under the figure
    assert table.count(">–</td>") == 2  # no measure for scale 0 and scale 1
