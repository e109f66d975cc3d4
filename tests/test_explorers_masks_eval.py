"""The mechanism toggles of notebook 06's and 07's explorers draw the setting they name (issue 27).

``threshold_explorer``: on = the pictures generated with the provider's mask, off = those generated
without a mask (and the mask panel says so), the measure of each in the title; past the chosen box's
score the provider finds nothing and "on" draws the no-mask pictures. ``frame_scrubber`` (notebook 06's
section 4): on = the run with masks, off = the run without, opening on the first frame where they differ.
``results_explorer``: on = the full row's values per recipe,
off = the ablation row's, with the paired difference in the title. The figures are kept by replacing
``panels.show_figures``.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import PIL.Image  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from cooklab.evaluation.explorer import results_explorer  # noqa: E402
from cooklab.evaluation.result_tables import bootstrap, cell_rng  # noqa: E402
from cooklab.grounding import MaskResult  # noqa: E402
from cooklab.grounding.grounded_sam import Detections  # noqa: E402
from cooklab.recipe_diffusion.records import FrameInfo  # noqa: E402
from cooklab.viz.widgets import frame_scrubber, panels, threshold_explorer  # noqa: E402

H = W = 32
SCORE = 0.45  # the one labelled box's score (and its label token's probability)


def solid(colour) -> PIL.Image.Image:
    return PIL.Image.new("RGB", (W, H), colour)


@pytest.fixture
def shown(monkeypatch) -> list[tuple]:
    """Every call of ``panels.show_figures``: the figures of one redraw."""
    calls: list[tuple] = []
    monkeypatch.setattr(panels, "show_figures", lambda *figs: calls.append(figs))
    return calls


class Provider:
    """A mask provider with one labelled box (score SCORE) and one unlabelled (0.2); "skillet" is unknown."""

    box = (4.0, 4.0, 20.0, 20.0)

    def __init__(self):
        self.box_threshold, self.text_threshold = 0.2, 0.15

    def detect(self, image, phrase):
        label = "" if phrase == "skillet" or self.text_threshold >= SCORE else phrase
        boxes, scores = [self.box, (0, 0, 8, 8)], [SCORE, 0.2]
        found = Detections.build(f"{phrase}.", boxes, scores, [label, ""], (H, W), 0.0, self.text_threshold)
        keep = found.scores > self.box_threshold
        return Detections(found.caption, found.boxes[keep], found.scores[keep],
                          [lb for lb, k in zip(found.labels, keep.tolist()) if k], found.image_hw,
                          self.box_threshold, self.text_threshold)  # fmt: skip

    def __call__(self, image, phrase):
        found = self.detect(image, phrase)
        k = found.best(phrase)
        if k is None:
            return None
        mask = torch.zeros(H, W)
        mask[4:20, 4:20] = 1
        return MaskResult(mask, phrase, self.box, float(found.scores[k]), "fake", {"label": found.labels[k]})


def generate(mask):
    """Two frames: grey, then red where a mask was applied, blue where uniform noise was."""
    return [solid((128, 128, 128)), solid((255, 0, 0) if mask is not None else (0, 0, 255))]


def colour_measure(pictures) -> str:
    return "red" if np.asarray(pictures[1])[0, 0, 0] == 255 else "blue"


def picture_arrays(fig) -> list[np.ndarray]:
    return [np.asarray(ax.images[0].get_array()) for ax in fig.axes if ax.images]


def test_threshold_explorer_toggle_draws_the_setting_it_names(shown):
    provider = Provider()
    box = threshold_explorer(
        provider, solid((90, 90, 90)), "frying pan", (8, 8), phrases=["skillet"], generate=generate,
        reference=0, measure=colour_measure,
    )  # fmt: skip
    c = box.controls
    assert (c["box_threshold"].min, c["box_threshold"].max) == (0.38, 0.52)  # SCORE ± PAD, on the STEP grid
    pictures, _, mask = shown[-1]
    assert picture_arrays(pictures)[1][0, 0].tolist() == [1.0, 0.0, 0.0]  # on: the masked run
    assert "on: from the provider's mask\nred (mask off: blue)" in pictures._suptitle.get_text()
    assert len(pictures.axes[0].collections) == 1  # the mask's outline on the reference
    assert "covers" in mask.axes[1].get_title()  # the mask on the latent grid
    c["mechanism"].value = False
    pictures, _, mask = shown[-1]
    assert picture_arrays(pictures)[1][0, 0].tolist() == [0.0, 0.0, 1.0]  # off: the uniform run
    assert "off: no mask, uniform noise\nblue (mask on: red)" in pictures._suptitle.get_text()
    assert not pictures.axes[0].collections and mask.axes[0].get_title() == "no mask: region-aware noise is off"
    assert box.last["result"] is not None  # the provider still finds the box; it is not used
    c["mechanism"].value = True
    c["box_threshold"].value = 0.46  # above the chosen box: the provider returns None, "on" is uniform noise
    pictures, _, mask = shown[-1]
    assert box.last["result"] is None and picture_arrays(pictures)[1][0, 0].tolist() == [0.0, 0.0, 1.0]
    assert "provider found nothing" in pictures._suptitle.get_text()
    c["box_threshold"].value = 0.38
    c["phrase"].value = "skillet"  # a word the detector does not know: no label names it
    assert box.last["result"] is None and "no label names &#x27;skillet" in box.children[2].children[0].value
    assert (provider.box_threshold, provider.text_threshold) == (0.2, 0.15)  # the provider was left alone


def test_threshold_explorer_generates_each_mask_once():
    calls = []
    box = threshold_explorer(Provider(), solid((90, 90, 90)), "pan", generate=lambda m: calls.append(m) or generate(m))
    box.controls["mechanism"].value = False
    box.controls["box_threshold"].value = 0.40  # the same mask
    box.controls["box_threshold"].value = 0.50  # no mask: the off-run, already generated
    assert [m is None for m in calls] == [False, True]


def frame(index: int, reference, mask=None) -> FrameInfo:
    return FrameInfo(index, f"step {index + 1}", "", 0, "pan", reference, reference, 0, 10, 999.0, 0.999 if reference
                     is not None else None, 0.9 if mask is not None else None, None, mask is not None, mask=mask,
                     mask_reference=reference if mask is not None else None)  # fmt: skip


class Run:
    def __init__(self, colours, masked: bool):
        mask = MaskResult(torch.ones(H, W), "pan", None, None, "fake") if masked else None
        self.images = [solid(c) for c in colours]
        self.frames = [frame(0, None), frame(1, 0), frame(2, 1, mask)]
        self.settings = dict(seed=0, variant="region_aware_kv")


def test_frame_scrubber_compares_the_run_with_masks_and_without(shown):
    # steps 1 and 2 are the same in both runs; step 3 (the one that used a mask) differs
    with_masks = Run([(128, 128, 128), (0, 128, 0), (255, 0, 0)], masked=True)
    without = Run([(128, 128, 128), (0, 128, 0), (0, 0, 255)], masked=False)
    labels = ("with masks", "without masks")
    box = frame_scrubber(
        with_masks,
        compare=without,
        labels=labels,
        measure=lambda pics: "red" if pics[2].getpixel((0, 0))[0] else "blue",
    )
    assert box.controls["step"].value == 3  # the first step where the two runs differ
    step, strip = shown[-1]
    assert picture_arrays(step)[0][0, 0].tolist() == [255, 0, 0]  # step 3 of the run with masks
    assert "with masks: red (without masks: blue)" in step._suptitle.get_text()
    box.controls["mechanism"].value = False
    step, strip = shown[-1]
    assert picture_arrays(step)[0][0, 0].tolist() == [0, 0, 255]  # step 3 of the run without masks
    assert "without masks: blue (with masks: red)" in step._suptitle.get_text()
    same = Run([(128, 128, 128), (0, 128, 0), (255, 0, 0)], masked=False)
    assert (
        frame_scrubber(with_masks, compare=same).controls["step"].value == 2
    )  # no difference: first with a reference


def study_rows() -> list[dict]:
    """Rows "full" and "ablation" over 3 recipes x 2 seeds: full = 0.8 + recipe/10, ablation = 0.2 + seed/10."""
    rows = []
    for r in range(3):
        for seed in (0, 1):
            for label, value in (("full", 0.8 + r / 10), ("ablation", 0.2 + seed / 10)):
                rows.append(dict(label=label, method=label, params={}, recipe=f"r{r}", seed=seed,
                                 metrics={"m": {"value": value}}))  # fmt: skip
    return rows


def bar_heights(fig) -> list[float]:
    return [round(p.get_height(), 6) for p in fig.axes[0].containers[0]]  # the BarContainer's bars


def test_results_explorer_toggle_shows_the_ablation_row(shown):
    rows = study_rows()
    box = results_explorer(rows, {"mechanism": ("full", "ablation")}, metric="m")
    (fig,) = shown[-1]
    assert bar_heights(fig) == [0.8, 0.9, 1.0]  # the full row per recipe
    delta = bootstrap({(f"r{r}", s): 0.6 + r / 10 - s / 10 for r in range(3) for s in (0, 1)},
                      cell_rng("explorer Δ", "full", "ablation", "m"))  # fmt: skip
    title = fig.axes[0].get_title()
    assert title.startswith("mechanism on: full 0.900") and "(off: ablation 0.250)" in title
    assert f"paired Δ on − off {delta[0]:+.3f} [{delta[1]:+.3f}, {delta[2]:+.3f}], 3 recipes, 6 pairs" in title
    box.controls["mechanism"].value = False
    (fig,) = shown[-1]
    assert bar_heights(fig) == [0.25, 0.25, 0.25]  # the ablation row: each recipe's mean over its two seeds
    title = fig.axes[0].get_title()
    assert title.startswith("mechanism off: ablation 0.250") and "(on: full 0.900)" in title


def test_results_explorer_names_a_missing_row():
    with pytest.raises(ValueError, match="do not have: \\['nope'\\]"):
        results_explorer(study_rows(), {"x": ("full", "nope")})
