"""The word-map explorer (``cooklab.viz.widgets.word_map_explorer``): what it draws is ``word_map`` over the chosen
layers and steps, scored against the given mask, next to the prior's score; its controls move the figure."""

import numpy as np
import pytest
import torch

import cooklab
from cooklab.instrument import word_map
from cooklab.metrics.attention_segmentation import centre_prior, segmentation_scores
from cooklab.viz.widgets import WordPicture, panels, word_map_explorer


@pytest.fixture(scope="module")
def pictures():
    torch.set_num_threads(1)
    rd = cooklab.RecipeDiffusion.from_pipe(cooklab.models.toy_sd())
    recipe = cooklab.load_recipe(cooklab.resources.shipped("toykitchen", "recipes", "toy_kitchen.yaml"))
    recipe = cooklab.Recipe.from_steps(recipe.steps[:2], title=recipe.title)
    with cooklab.trace(rd, capture=["cross_attention"], layers=("down", "mid", "up")) as tr:
        out = rd(recipe, seed=0, num_inference_steps=4, height=64, width=64, guidance_scale=3.0, progress=False)
    left = np.zeros((64, 64), bool)
    left[:, :32] = True  # a designed truth: the left half
    middle = np.zeros((64, 64), bool)
    middle[16:48, 16:48] = True
    return [
        WordPicture("toy SD", tr, 0, out.images[0], {"pot": left}, recipe.steps[0].text),
        WordPicture("toy SD", tr, 1, out.images[1], {"pot": middle, "broccoli": left}, recipe.steps[1].text),
    ]


def _title(scores) -> str:
    return f"IoU {scores['iou_area']:.2f} · AUROC {scores['auroc']:.2f}"


def test_the_explorer_draws_the_word_map_of_the_chosen_layers_and_steps(pictures, monkeypatch, capsys):
    shown = []
    monkeypatch.setattr(panels, "show_figures", lambda *figs: shown.extend(figs))
    prior = centre_prior((64, 64))
    box = word_map_explorer(pictures, score=segmentation_scores, prior=prior)
    tr = pictures[0].trace
    layers = tr.layers("cross_attention")  # diffusers' order: down, up, mid
    layers = [n for g in ("down_blocks.", "mid_block.", "up_blocks.") for n in layers if n.startswith(g)]
    assert box.controls["layers"].value == (0, len(layers) - 1)

    def expected(picture, word, chosen, steps=None):
        m = word_map(tr, word, frame=picture.index, layers=chosen, steps=steps, size=(64, 64)).numpy()
        return _title(segmentation_scores(m, picture.masks[word]))

    assert _title(segmentation_scores(prior, pictures[0].masks["pot"])) in shown[-1].axes[2].get_title()
    assert expected(pictures[0], "pot", layers) in shown[-1].axes[1].get_title()
    box.controls["layers"].value = (1, 2)  # in the data's order: the last down layer and the mid block
    assert expected(pictures[0], "pot", layers[1:3]) in shown[-1].axes[1].get_title()
    box.controls["steps"].value = (1, 1)
    assert (
        expected(pictures[0], "pot", layers[1:3], [tr.steps(0, "cross_attention")[1]]) in shown[-1].axes[1].get_title()
    )
    box.controls["picture"].value = 1  # the second frame: its own words and masks
    assert [o for o, _ in box.controls["word"].options] == ["pot", "broccoli"]
    box.controls["word"].value = "broccoli"
    assert _title(segmentation_scores(prior, pictures[1].masks["broccoli"])) in shown[-1].axes[2].get_title()
    assert "broccoli" in shown[-1].axes[1].get_title()
    assert "nothing to show" not in capsys.readouterr().out


def test_the_renormalise_toggle_draws_the_raw_mass_and_scores_both(pictures, monkeypatch, capsys):
    shown = []
    monkeypatch.setattr(panels, "show_figures", lambda *figs: shown.extend(figs))
    prior = centre_prior((64, 64))
    box = word_map_explorer(pictures, score=segmentation_scores, prior=prior, picture=1)
    picture, mask = pictures[1], pictures[1].masks["pot"]
    assert box.controls["mechanism"].value is True and box.controls["picture"].value == 1

    def drawn_map(renormalise: bool) -> np.ndarray:
        return word_map(picture.trace, "pot", frame=1, size=(64, 64), renormalise=renormalise).numpy()

    share, mass = drawn_map(True), drawn_map(False)
    on = segmentation_scores(share, mask)
    off = segmentation_scores(mass, mask)
    before = segmentation_scores(prior, mask)
    assert np.allclose(shown[-1].axes[1].images[-1].get_array(), share)
    assert "renormalised over the words" in shown[-1].axes[1].get_title()
    assert f"(raw: AUROC {off['auroc']:.2f})" in shown[-1].axes[1].get_title()
    box.controls["mechanism"].value = False  # the raw attention mass, its score, the renormalised one's in brackets
    title = shown[-1].axes[1].get_title()
    assert np.allclose(shown[-1].axes[1].images[-1].get_array(), mass) and not np.allclose(share, mass)
    assert "raw attention mass" in title and _title(off) in title
    assert f"(renormalised: AUROC {on['auroc']:.2f})" in title
    gap = before["auroc"] - off["auroc"]
    verb = "beats" if gap > 0 else "loses to"
    assert f"{verb} the map shown by {abs(gap):.2f} AUROC" in shown[-1].axes[2].get_title()
    assert _title(before) in shown[-1].axes[2].get_title()
    assert "nothing to show" not in capsys.readouterr().out
    with pytest.raises(ValueError, match="picture=2"):
        word_map_explorer(pictures, score=segmentation_scores, prior=prior, picture=2)


def test_the_explorer_needs_pictures():
    with pytest.raises(ValueError, match="pictures=\\[\\]"):
        word_map_explorer([], score=segmentation_scores, prior=centre_prior((64, 64)))
