"""Tests for cooklab.viz.masks and plan_table: plan tables, detection and mask figures, and the threshold widget.

The figures are checked on synthetic boxes and masks, and on what a real GroundedSAM returns when
it is built from tiny random GroundingDINO and SAM models (no file, no network). Random weights
detect nothing meaningful; these tests cover the drawing and the plumbing only.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import matplotlib  # noqa: E402

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import PIL.Image  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

import cooklab  # noqa: E402
from cooklab.agent import plan  # noqa: E402
from cooklab.grounding import MaskResult, box_to_mask  # noqa: E402
from cooklab.grounding.grounded_sam import Detections  # noqa: E402
from cooklab.viz import detect_all, detections_figure, mask_figure, plan_table  # noqa: E402
from cooklab.viz.widgets import threshold_explorer  # noqa: E402

H, W = 48, 64
PHRASE = "frying pan"
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "a", "bowl", "frying", "pan", "plate", "white"]


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(1)
    return PIL.Image.fromarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def provider():
    """GroundedSAM on tiny random models, every box kept by default (thresholds 0)."""
    from cooklab.grounding import GroundedSAM
    from cooklab.grounding.tiny import tiny_detector, tiny_segmenter

    return GroundedSAM.from_models(
        *tiny_detector(VOCAB, num_queries=8), *tiny_segmenter(), box_threshold=0.0, text_threshold=0.0
    )


def synthetic_detections() -> Detections:
    boxes = [[4, 6, 30, 40], [10, 10, 60, 44], [0, 0, 8, 8], [20, 5, 50, 25]]
    return Detections.build(
        "frying pan.",
        boxes,
        [0.8, 0.6, 0.2, 0.7],
        ["frying pan", "pan", "", ""],
        (H, W),
        box_threshold=0.0,
        text_threshold=0.25,
    )


def rectangles(fig: Figure) -> list[Rectangle]:
    return [p for p in fig.axes[0].patches if isinstance(p, Rectangle)]


def widths(fig: Figure) -> list[float]:
    return sorted(p.get_linewidth() for p in rectangles(fig))


# ---- detections ------------------------------------------------------------------------------


def test_detections_figure_marks_threshold_and_choice():
    found = synthetic_detections()
    fig = detections_figure(np.zeros((H, W, 3), np.uint8), found, box_threshold=0.5)
    assert isinstance(fig, Figure) and len(rectangles(fig)) == 4
    dashed = [p for p in rectangles(fig) if p.get_linestyle() == "--"]
    assert len(dashed) == 1 and dashed[0].get_xy() == (0.0, 0.0)  # the 0.2 box is under 0.5
    thick = max(rectangles(fig), key=lambda p: p.get_linewidth())
    assert thick.get_xy() == (4.0, 6.0)  # the best box whose label names the phrase
    title = fig.axes[0].get_title()
    assert "4 boxes, 3 above box_threshold=0.50" in title and "chosen: frying pan 0.80" in title
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "frying pan 0.80" in texts and "∅ 0.70" in texts


def test_detections_figure_choices_and_inputs():
    found = synthetic_detections()
    image = torch.rand(3, H, W)  # a [3, H, W] tensor
    assert found.labels == ["frying pan", "", "pan", ""]  # Detections are sorted by score; chosen= indexes that order
    assert "chosen: pan 0.60" in detections_figure(image, found, chosen=2).axes[0].get_title()
    assert "nothing chosen" in detections_figure(image, found, chosen=False).axes[0].get_title()
    assert "nothing chosen" in detections_figure(image, found, box_threshold=0.9).axes[0].get_title()
    # a MaskResult whose box is not among the detections is drawn as an extra, chosen box
    result = MaskResult(mask=torch.zeros(H, W), box=(1.0, 2.0, 3.0, 4.0), score=0.5)
    fig = detections_figure(image, found, chosen=result)
    assert len(rectangles(fig)) == 5 and max(rectangles(fig), key=lambda p: p.get_linewidth()).get_xy() == (1.0, 2.0)
    # a plain dict, and max_boxes keeps the chosen box
    fig = detections_figure(
        PIL.Image.new("RGB", (W, H)),
        dict(boxes=found.boxes, scores=found.scores, labels=found.labels),
        chosen=3,
        max_boxes=1,
    )
    assert len(rectangles(fig)) == 2 and "(2 best drawn)" in fig.axes[0].get_title()
    _, ax = plt.subplots()
    assert detections_figure(image, found, ax=ax) is ax.figure
    empty = Detections.build("pan.", torch.zeros(0, 4), torch.zeros(0), [], (H, W), box_threshold=0.35)
    title = detections_figure(image, empty).axes[0].get_title()
    assert "0 boxes, 0 above box_threshold=0.35" in title and "nothing chosen" in title
    with pytest.raises(IndexError):
        detections_figure(image, found, chosen=9)
    with pytest.raises(TypeError):
        detections_figure(image, [1, 2, 3])


# ---- masks -------------------------------------------------------------------------------------


def test_mask_figure_with_and_without_a_mask():
    mask = box_to_mask((8, 8, 40, 40), (H, W))
    result = MaskResult(
        mask=mask, phrase="bowl", box=(8, 8, 40, 40), score=0.71, source="grounded-sam", extra={"iou": 0.93}
    )
    fig = mask_figure(np.ones((H, W, 3), np.float32), result, latent_hw=(H // 8, W // 8))
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert "score 0.71" in fig.axes[0].get_title() and "IoU 0.93" in fig.axes[0].get_title()
    assert "latent grid 6×8" in fig.axes[1].get_title() and "usable" in fig.axes[1].get_title()
    assert len(mask_figure(np.ones((H, W, 3)), mask).axes) == 1  # a bare mask, no latent panel
    tiny = torch.zeros(H, W)
    tiny[0, 0] = 1.0
    assert "degenerate" in mask_figure(np.ones((H, W, 3)), tiny, latent_hw=(6, 8)).axes[1].get_title()
    fig = mask_figure(np.ones((H, W, 3)), None, latent_hw=(6, 8))
    assert "no mask" in fig.axes[0].get_title() and "uniform noise" in fig.axes[1].texts[0].get_text()
    with pytest.raises(ValueError, match="image"):
        mask_figure(np.ones((H, W, 3)), torch.zeros(10, 10))


# ---- the plan ----------------------------------------------------------------------------------


def test_plan_table_in_html_and_text():
    recipe = cooklab.load_recipe(
        os.path.join(os.path.dirname(__file__), "..", "data", "recipes", "scrambled_eggs.yaml")
    )
    p = plan(recipe, agent="rules")
    text = plan_table(p, format="text")
    assert (
        text.count("\nstep ") == len(recipe) and "frying pan" in text and "butter (melted)" in text and "≠" not in text
    )
    compared = plan_table(p, recipe, format="text")
    assert "≠ hand-written: small mixing bowl" in compared  # the one naming difference in this recipe
    page = plan_table(p, recipe)
    assert page.startswith("<table>") and page.count("<tr>") == len(recipe) + 1 and "≠ hand-written" in page
    odd = plan(["Put the <b>bread</b> on a plate."], agent="rules")
    assert "<b>bread</b>" not in plan_table(odd)  # escaped
    with pytest.raises(ValueError, match="format"):
        plan_table(p, format="markdown")
    with pytest.raises(cooklab.ConfigError):
        plan_table(p, cooklab.Recipe.from_steps(["one step"]))


# ---- a real (tiny) provider ----------------------------------------------------------------------


def test_figures_from_a_real_provider(provider, image):
    found = detect_all(provider, image, PHRASE, text_threshold=0.0)
    assert len(found) == 8 and provider.box_threshold == 0.0
    result = provider(image, PHRASE)
    assert result is not None
    fig = detections_figure(image, found, box_threshold=float(found.scores.median()), chosen=result)
    assert len(rectangles(fig)) == 8 and any(p.get_linestyle() == "--" for p in rectangles(fig))
    assert isinstance(detections_figure(image, result), Figure)  # from the MaskResult's own record of the boxes
    fig = mask_figure(image, result, latent_hw=(H // 8, W // 8))
    assert len(fig.axes) == 2 and f"'{PHRASE}'" in fig.axes[0].get_title()


def test_detect_all_restores_the_thresholds(provider, image):
    provider.box_threshold, provider.text_threshold = 0.9, 0.3
    try:
        found = detect_all(provider, image, PHRASE)
        assert len(found) == 8 and found.text_threshold == 0.3
        assert (provider.box_threshold, provider.text_threshold) == (0.9, 0.3)
    finally:
        provider.box_threshold, provider.text_threshold = 0.0, 0.0


def test_threshold_explorer_redraws(provider, image, capsys):
    box = threshold_explorer(provider, image, PHRASE, latent_hw=(H // 8, W // 8))
    info, c = box.children[2].children[0], box.controls
    assert box.last["result"] is not None and "MaskResult" in info.value
    assert len(box.last["detections"]) == 8
    best = box.last["result"].score  # the sliders span the best labelled box's score ± PAD
    assert c["box_threshold"].min < best < c["box_threshold"].max
    c["box_threshold"].value = c["box_threshold"].max  # above every labelled box: the provider returns None
    assert box.last["result"] is None and "provider → None" in info.value
    c["box_threshold"].value = c["box_threshold"].min
    c["text_threshold"].value = c["text_threshold"].max  # above the best box's label token: labels empty out
    assert box.last["result"] is None
    assert (provider.box_threshold, provider.text_threshold) == (0.0, 0.0)  # the provider was left alone
    printed = capsys.readouterr().out
    assert printed.count("display.Image object") % 2 == 0  # two PNGs per draw: the boxes and the mask
    assert "nothing to show" not in printed and plt.get_fignums() == []


def test_detection_module_does_not_import_ipywidgets():
    import subprocess
    import sys

    code = "import sys, cooklab.viz.masks; assert 'ipywidgets' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
