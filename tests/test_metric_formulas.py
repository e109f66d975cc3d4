"""Every formula of cooklab/metrics on designed features: the expected numbers are computed by hand below.

The backbones are ``tests/designed_backbones.py``: each frame and text has a feature vector chosen so
that a wrong formula gives a different number. Three frames and a goal in four dimensions
(e1..e4 the unit axes)::

    f(x1) = e1                 g("crack the eggs") = e1       g("Omelette") = -0.8 e1 + 0.6 e4
    f(x2) = 0.6 e1 + 0.8 e2    g("whisk them")     = -e2      g("a photo")  =  0.6 e1 + 0.8 e4
    f(x3) = -0.6 e1 + 0.8 e3   g("pour in a pan")  = e3

so the cosines (dot products of unit vectors) are::

              t1     t2     t3     goal    neutral | x1     x2     x3
        x1    1      0      0     -0.8     0.6     | 1      0.6   -0.6
        x2    0.6   -0.8    0     -0.48    0.36    | 0.6    1     -0.36
        x3   -0.6    0      0.8    0.48   -0.36    | -0.6  -0.36   1

Frame i against its own step text (the diagonal) is 1, -0.8, 0.8: one negative cosine (the clamp
matters) and off-diagonal values that differ from the diagonal (a shifted pairing gives another number).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from designed_backbones import DesignedClip, DesignedDino, unit

from cooklab.errors import ConfigError
from cooklab.metrics import (
    clip_image_score,
    clip_score,
    cross_step_consistency,
    dino_l2,
    dino_l2_masked,
    goal_faithfulness,
    ingredient_accuracy,
    oracle_container_consistency,
    oracle_state_accuracy,
    oracle_step_faithfulness,
    score,
    step_faithfulness,
)
from cooklab.metrics.result import frame_pairs, mean_or_nan
from cooklab.recipe import Recipe
from cooklab.toykitchen.recipes import Expectation
from cooklab.toykitchen.world import Ingredient, Scene, render

FRAMES = ["x1", "x2", "x3"]
STEPS = ["crack the eggs", "whisk them", "pour in a pan"]
GOAL = "Omelette"
INGREDIENT_TEXTS = {
    "a photo": unit(0.6, 0, 0, 0.8),
    "a photo of carrot": unit(1, 0, 0, 0),
    "a photo of tomato": unit(0, 1, 0, 0),
    "a photo of onion": unit(0, 0, 1, 0),
}
EXACT = 1e-12  # the designed vectors are float64: only rounding separates the code's number from the hand's


def designed_clip() -> DesignedClip:
    return DesignedClip(
        images={"x1": unit(1, 0, 0, 0), "x2": unit(0.6, 0.8, 0, 0), "x3": unit(-0.6, 0, 0.8, 0)},
        texts={
            "crack the eggs": unit(1, 0, 0, 0),
            "whisk them": unit(0, -1, 0, 0),
            "pour in a pan": unit(0, 0, 1, 0),
            GOAL: unit(-0.8, 0, 0, 0.6),
            **INGREDIENT_TEXTS,
        },
    )


def close(got: list[float], expected: list[float]) -> bool:
    return len(got) == len(expected) and all(math.isclose(a, b, abs_tol=EXACT) for a, b in zip(got, expected))


# ---- CLIP-T and CLIP-I (Recipe Diffusion) -------------------------------------------------------


def test_clip_t_is_100_times_the_clamped_cosine_of_each_frame_with_its_own_step():
    clip = designed_clip()
    result = clip_score(FRAMES, STEPS, clip)
    # diagonal 1, -0.8, 0.8 -> 100 * max(., 0) = 100, 0, 80. Without the clamp: 100, -80, 80 (mean 33.3);
    # frame i with step i-1's text: 0, 60, 0 (mean 20); without the factor 100: 0.6.
    assert close(result.per_item, [100.0, 0.0, 80.0])
    assert result.value == pytest.approx(60.0, abs=EXACT)
    assert clip.text_calls == [(STEPS, "chunk")]


def test_clip_t_passes_the_text_mode_and_records_the_texts():
    clip = designed_clip()
    result = clip_score(FRAMES, STEPS, clip, text_mode="truncate")
    assert clip.text_calls == [(STEPS, "truncate")]
    text = result.record["text"]
    assert text["mode"] == "truncate" and text["max_tokens"] == 77
    assert [t["tokens"] for t in text["per_text"]] == [3, 2, 4]
    assert result.record["metric"] == "clip_score" and result.record["backbone"] == clip.source


def test_clip_i_is_100_times_the_clamped_cosine_over_consecutive_or_all_pairs():
    clip = designed_clip()
    # consecutive (x1,x2) 0.6, (x2,x3) -0.36 -> 60, 0: mean 30 (unclamped 12)
    consecutive = clip_image_score(FRAMES, clip)
    assert close(consecutive.per_item, [60.0, 0.0]) and consecutive.value == pytest.approx(30.0, abs=EXACT)
    assert consecutive.record["pair_index"] == [(0, 1), (1, 2)]
    # all: (x1,x2) 60, (x1,x3) max(-60, 0) = 0, (x2,x3) 0: mean 20 (unclamped -12)
    every = clip_image_score(FRAMES, clip, pairs="all")
    assert close(every.per_item, [60.0, 0.0, 0.0]) and every.value == pytest.approx(20.0, abs=EXACT)
    assert every.record["pair_index"] == [(0, 1), (0, 2), (1, 2)] and every.record["pairs"] == "all"


def test_a_frame_count_that_differs_from_the_text_count_is_refused():
    with pytest.raises(ConfigError, match="3 images but 2 texts"):
        clip_score(FRAMES, STEPS[:2], designed_clip())
    with pytest.raises(ConfigError, match="3 images but 2 texts"):
        step_faithfulness(FRAMES, STEPS[:2], designed_clip())


# ---- CookAnything's measures -----------------------------------------------------------------------


def test_step_faithfulness_is_the_raw_cosine_of_each_frame_with_its_own_step():
    clip = designed_clip()
    result = step_faithfulness(FRAMES, STEPS, clip, text_mode="truncate")
    # diagonal 1, -0.8, 0.8: mean 1/3. Frame i with step i-1 (x1 with t3): 0, 0.6, 0 (mean 0.2);
    # with step i+1: 0, 0, -0.6; clamped: 1, 0, 0.8 (mean 0.6).
    assert close(result.per_item, [1.0, -0.8, 0.8]) and result.value == pytest.approx(1 / 3, abs=EXACT)
    assert clip.text_calls == [(STEPS, "truncate")] and result.record["text"]["mode"] == "truncate"


def test_goal_faithfulness_compares_every_frame_with_the_goal_not_the_steps():
    clip = designed_clip()
    result = goal_faithfulness(FRAMES, GOAL, clip, text_mode="truncate")
    # goal column -0.8, -0.48, 0.48: mean -0.8 / 3. The first step's text instead: 1, 0.6, -0.6 (mean 1/3);
    # clamped: 0, 0, 0.48.
    assert close(result.per_item, [-0.8, -0.48, 0.48]) and result.value == pytest.approx(-0.8 / 3, abs=EXACT)
    assert clip.text_calls == [([GOAL], "truncate")] and result.record["goal"] == GOAL


def test_cross_step_consistency_is_the_raw_cosine_over_consecutive_or_all_pairs():
    clip = designed_clip()
    consecutive = cross_step_consistency(FRAMES, clip)
    assert close(consecutive.per_item, [0.6, -0.36]) and consecutive.value == pytest.approx(0.12, abs=EXACT)
    every = cross_step_consistency(FRAMES, clip, pairs="all")
    assert close(every.per_item, [0.6, -0.6, -0.36]) and every.value == pytest.approx(-0.12, abs=EXACT)
    assert every.record["pair_index"] == [(0, 1), (0, 2), (1, 2)]


def test_ingredient_accuracy_compares_each_ingredient_with_the_neutral_prompt_in_its_own_frame():
    clip = designed_clip()
    lists = [["onion", "carrot"], ["carrot"], ["tomato", "onion"]]
    result = ingredient_accuracy(FRAMES, lists, clip)
    # neutral "a photo": x1 0.6, x2 0.36, x3 -0.36. Per (step, ingredient):
    #   x1 onion 0 > 0.6 no; x1 carrot 1 > 0.6 yes; x2 carrot 0.6 > 0.36 yes;
    #   x3 tomato 0 > -0.36 yes (below zero is not the bar: the neutral prompt is); x3 onion 0.8 > -0.36 yes
    # -> 1 0 ... mean 4/5. Every ingredient against the first prompt (carrot): 1, 1, 1, 0, 0 (3/5);
    # against 0 instead of the neutral prompt: 0, 1, 1, 0, 1 (3/5).
    assert result.per_item == [0.0, 1.0, 1.0, 1.0, 1.0] and result.value == pytest.approx(0.8, abs=EXACT)
    assert result.record["scored"] == [(0, "onion"), (0, "carrot"), (1, "carrot"), (2, "tomato"), (2, "onion")]
    assert clip.text_calls == [(["a photo", "a photo of carrot", "a photo of onion", "a photo of tomato"], "chunk")]


def test_ingredient_accuracy_needs_strictly_more_than_the_neutral_prompt():
    clip = designed_clip()
    # the template "{}" makes ingredient "a photo" the neutral prompt itself: a tie in every frame, never a hit
    tie = ingredient_accuracy(FRAMES, [["a photo"], ["a photo"], []], clip, template="{}", neutral="a photo")
    assert tie.per_item == [0.0, 0.0] and tie.value == 0.0
    assert tie.record["template"] == "{}" and tie.record["neutral"] == "a photo"


def test_ingredient_accuracy_template_and_neutral_are_the_prompts_asked():
    clip = designed_clip()
    clip.texts["a plate"] = clip.texts["a photo"]
    clip.texts["carrot on a plate"] = clip.texts["a photo of carrot"]
    result = ingredient_accuracy(
        FRAMES, [["carrot"], [], ["carrot"]], clip, template="{} on a plate", neutral="a plate"
    )
    # x1 carrot 1 > 0.6 yes; x3 carrot -0.6 > -0.36 no; the empty list of step 2 scores nothing
    assert result.per_item == [1.0, 0.0] and result.value == 0.5
    assert clip.text_calls == [(["a plate", "carrot on a plate"], "chunk")]
    empty = ingredient_accuracy(FRAMES, [[], [], []], clip)
    assert math.isnan(empty.value) and empty.per_item == [] and "nothing to score" in empty.record["note"]
    assert clip.text_calls[-1] == (["a plate", "carrot on a plate"], "chunk")  # nothing asked for no ingredient
    with pytest.raises(ConfigError, match="has no"):
        ingredient_accuracy(FRAMES, [["carrot"], [], []], clip, template="a photo of carrot")
    with pytest.raises(ConfigError, match="3 images but 2 ingredient lists"):
        ingredient_accuracy(FRAMES, [["carrot"], []], clip)


# ---- DINO-L2 ------------------------------------------------------------------------------------------

#: whole-frame CLS embeddings on 3-4-5 triangles: |x1 x2| = 5, |x2 x3| = 4, |x3 x4| = 5, |x1 x3| = 3, |x1 x4| = 4,
#: |x2 x4| = 3; a masked frame's embedding is twice its whole one
WHOLE = {"x1": [0, 0], "x2": [3, 4], "x3": [3, 0], "x4": [0, 4]}
MASKED = {name: [2 * c for c in v] for name, v in WHOLE.items()}
FOUR = ["x1", "x2", "x3", "x4"]
MASK = np.ones((4, 4), dtype=bool)


def test_dino_l2_is_the_euclidean_norm_not_its_square_over_consecutive_or_all_pairs():
    dino = DesignedDino(WHOLE, MASKED)
    consecutive = dino_l2(FOUR, dino=dino)
    # 5, 4, 5: mean 14/3 (squared: 25, 16, 25; L1: 7, 4, 7)
    assert close(consecutive.per_item, [5.0, 4.0, 5.0]) and consecutive.value == pytest.approx(14 / 3, abs=EXACT)
    every = dino_l2(FOUR, dino=dino, pairs="all")
    # (1,2) 5, (1,3) 3, (1,4) 4, (2,3) 4, (2,4) 3, (3,4) 5: mean 4
    assert close(every.per_item, [5.0, 3.0, 4.0, 4.0, 3.0, 5.0]) and every.value == pytest.approx(4.0, abs=EXACT)
    assert consecutive.record["masked"] == [False] * 4 and consecutive.record["crop_mask"].startswith("whole frame")


def test_dino_l2_with_masks_measures_each_masked_frame_on_its_object():
    dino = DesignedDino(WHOLE, MASKED)
    result = dino_l2(FOUR, [MASK, None, MASK, MASK], dino)
    # |2 x1 - x2| = |(0,0) - (3,4)| = 5, |x2 - 2 x3| = |(3,4) - (6,0)| = 5, |2 x3 - 2 x4| = |(6,0) - (0,8)| = 10
    assert close(result.per_item, [5.0, 5.0, 10.0]) and result.value == pytest.approx(20 / 3, abs=EXACT)
    assert dino.calls == [[("x1", True), ("x2", False), ("x3", True), ("x4", True)]]
    assert result.record["masked"] == [True, False, True, True] and "masked frames" in result.record["crop_mask"]


def test_dino_l2_masked_scores_only_pairs_of_two_masked_frames():
    dino = DesignedDino(WHOLE, MASKED)
    consecutive = dino_l2_masked(FOUR, [MASK, None, MASK, MASK], dino)
    # (x1,x2) and (x2,x3) have an unmasked frame: left out; |2 x3 - 2 x4| = 10
    assert close(consecutive.per_item, [10.0]) and consecutive.value == pytest.approx(10.0, abs=EXACT)
    assert consecutive.record["pair_index"] == [(2, 3)]
    assert dino.calls == [[("x3", True), ("x4", True)]]  # the unmasked frames never reach the backbone
    every = dino_l2_masked(FOUR, [MASK, None, MASK, MASK], dino, pairs="all")
    # (x1,x3) |(0,0) - (6,0)| = 6, (x1,x4) |(0,0) - (0,8)| = 8, (x3,x4) 10: mean 8
    assert close(every.per_item, [6.0, 8.0, 10.0]) and every.value == pytest.approx(8.0, abs=EXACT)
    assert every.record["pair_index"] == [(0, 2), (0, 3), (2, 3)]
    none = dino_l2_masked(FOUR, [MASK, None, MASK, None], dino)  # no consecutive pair of masked frames
    assert math.isnan(none.value) and none.per_item == [] and "nothing to score" in none.record["note"]
    with pytest.raises(ConfigError, match="one mask \\(or None\\) per frame: got 3 for 4 frames"):
        dino_l2_masked(FOUR, [MASK, None, MASK], dino)
    with pytest.raises(ConfigError, match="got none for 4 frames. Fix: pass masks=cooklab.metrics.container_masks"):
        dino_l2_masked(FOUR, None, dino)


# ---- what the metrics share ------------------------------------------------------------------------


def test_frame_pairs_and_the_mean():
    assert frame_pairs(4, "consecutive") == [(0, 1), (1, 2), (2, 3)]
    assert frame_pairs(4, "all") == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    assert frame_pairs(2, "consecutive") == frame_pairs(2, "all") == [(0, 1)]
    with pytest.raises(ConfigError, match="pairs='next'"):
        frame_pairs(3, "next")
    with pytest.raises(ConfigError, match="1 image\\(s\\): a sequence metric compares frames, give at least 2"):
        frame_pairs(1, "all")
    assert mean_or_nan([1.0, 2.0, 6.0]) == 3.0 and math.isnan(mean_or_nan([]))


def test_score_measures_the_recipes_goal_steps_and_ingredients():
    recipe = Recipe(
        title=GOAL,
        steps=[
            {"text": STEPS[0], "ingredients": ["onion", "carrot"]},
            {"text": STEPS[1], "ingredients": ["carrot"]},
            {"text": STEPS[2], "ingredients": ["tomato", "onion"]},
        ],
    )
    results = score(
        FRAMES,
        recipe,
        ["goal_faithfulness", "step_faithfulness", "ingredient_accuracy", "clip_score", "dino_l2"],
        clip=designed_clip(),
        dino=DesignedDino(WHOLE),
        pairs="all",
        device=None,
    )
    assert results["goal_faithfulness"].value == pytest.approx(-0.8 / 3, abs=EXACT)
    assert results["step_faithfulness"].value == pytest.approx(1 / 3, abs=EXACT)
    assert results["ingredient_accuracy"].value == pytest.approx(0.8, abs=EXACT)
    assert results["clip_score"].value == pytest.approx(60.0, abs=EXACT)
    assert close(results["dino_l2"].per_item, [5.0, 3.0, 4.0])  # pairs="all" reaches DINO: (1,2), (1,3), (2,3)


def test_score_hands_its_settings_to_every_metric_and_backbone():
    import torch

    clip, dino = designed_clip(), DesignedDino(WHOLE, MASKED)
    recipe = Recipe(title=GOAL, steps=STEPS)
    names = ["clip_score", "clip_image_score", "cross_step_consistency", "step_faithfulness", "goal_faithfulness"]
    names += ["dino_l2_masked"]
    masks = [MASK, MASK, MASK]
    results = score(FRAMES, recipe, names, clip=clip, dino=dino, masks=masks, text_mode="truncate", pairs="all",
                    device="cpu", batch_size=3)  # fmt: skip
    assert list(results) == names
    # CLIP-T, step and goal faithfulness, each in the mode asked
    assert clip.text_calls == [(STEPS, "truncate"), (STEPS, "truncate"), ([GOAL], "truncate")]
    assert results["clip_image_score"].value == pytest.approx(20.0, abs=EXACT)  # all pairs (consecutive: 30)
    assert results["cross_step_consistency"].value == pytest.approx(-0.12, abs=EXACT)  # all pairs (consecutive: 0.12)
    # masked: (x1,x2) |(0,0) - (6,8)| = 10, (x1,x3) |(0,0) - (6,0)| = 6, (x2,x3) |(6,8) - (6,0)| = 8
    assert close(results["dino_l2_masked"].per_item, [10.0, 6.0, 8.0])
    assert clip.batch_size == dino.batch_size == 3
    assert clip.model.placed == dino.model.placed == [torch.device("cpu")]
    with pytest.raises(ConfigError, match=r"\['dino_l2_masked'\] measure the frames' container regions: pass masks="):
        score(FRAMES, recipe, ["dino_l2_masked"], dino=dino, masks=[None, None, None], device=None)


# ---- the Toy Kitchen oracle ---------------------------------------------------------------------------


def _frames() -> list:
    """Five designed Toy Kitchen frames: a blue bowl, moved, then a pink one (the truth is the scene)."""
    left, right = (22, 32), (42, 32)  # bowl radius 20: circles 20 apart overlap with IoU ~ 0.24 < 0.5
    diced = (Ingredient("carrot", "diced"),)
    scenes = [
        Scene(colour="blue", position=left),
        Scene(colour="blue", position=left, ingredients=diced),
        Scene(colour="blue", position=right, ingredients=diced),
        Scene(colour="blue", position=right, ingredients=diced),
        Scene(colour="pink", position=left, ingredients=diced),
    ]
    return [render(scene, 64) for scene in scenes]


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_oracle_consistency_compares_every_frame_with_the_first():
    frames = _frames()
    truth = [f.mask("container") for f in frames]
    assert _iou(truth[0], truth[1]) == 1.0 and _iou(truth[0], truth[2]) < 0.5 and _iou(truth[2], truth[3]) == 1.0
    result = oracle_container_consistency([f.image for f in frames])
    # frame 2: same bowl; 3: moved (IoU < 0.5); 4: where 3 was (the same as frame 3, not frame 1); 5: pink.
    # Against the previous frame instead of the first, frame 4 would count.
    assert result.per_item == [1.0, 0.0, 0.0, 0.0] and result.value == 0.25
    assert result.record["frames"] == [1, 2, 3, 4]
    with pytest.raises(ConfigError, match="give at least 2"):
        oracle_container_consistency([frames[0].image])


def test_oracle_faithfulness_and_state_score_the_steps_that_name_them():
    images = [f.image for f in _frames()]
    expectations = [
        Expectation("bowl", "blue"),  # names no ingredient: not scored
        Expectation("bowl", "blue", "carrot", "diced"),  # shown: present, right state
        Expectation("bowl", "blue", "onion", "whole"),  # no onion: absent, no state
        Expectation("bowl", "blue", "carrot", "sliced"),  # carrot shown diced: present, wrong state
        Expectation("bowl", "pink", "carrot"),  # present; no state asked
    ]
    faithful = oracle_step_faithfulness(images, expectations)
    assert (
        faithful.per_item == [1.0, 0.0, 1.0, 1.0]
        and faithful.value == 0.75
        and faithful.record["steps"] == [1, 2, 3, 4]
    )
    states = oracle_state_accuracy(images, expectations)
    assert (
        states.per_item == [1.0, 0.0, 0.0]
        and states.value == pytest.approx(1 / 3)
        and states.record["steps"] == [1, 2, 3]
    )
    with pytest.raises(ConfigError, match="5 images but 4 expectations"):
        oracle_step_faithfulness(images, expectations[:4])


# ---- what every record says -------------------------------------------------------------------------

DESIGNED_RESOLUTION = {"resize": 4, "crop": 4, "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5), "square": False}
WHOLE_FRAME = "whole frame, centre crop"


def record_of(result) -> dict:
    """The record without its package versions (checked to name torch, transformers and cooklab)."""
    record = dict(result.record)
    assert set(record.pop("versions")) == {"torch", "transformers", "cooklab"}
    return record


def test_every_clip_metric_records_its_backbone_crop_pairs_texts_and_formula():
    clip = designed_clip()
    source = clip.source
    texts = {
        "mode": "chunk",
        "max_tokens": 77,
        "per_text": [{"tokens": n, "windows": 1, "truncated": 0} for n in (3, 2, 4)],
    }
    base = {"backbone": source, "input_resolution": DESIGNED_RESOLUTION, "crop_mask": WHOLE_FRAME}
    assert record_of(clip_score(FRAMES, STEPS, clip)) == base | {
        "metric": "clip_score",
        "text": texts,
        "formula": "100 * max(cos(image_i, text_i), 0); mean over frames",
    }
    assert record_of(clip_image_score(FRAMES, clip, "all")) == base | {
        "metric": "clip_image_score",
        "pairs": "all",
        "pair_index": [(0, 1), (0, 2), (1, 2)],
        "formula": "100 * max(cos(image_i, image_j), 0); mean over pairs",
    }
    assert record_of(step_faithfulness(FRAMES, STEPS, clip)) == base | {
        "metric": "step_faithfulness",
        "text": texts,
        "formula": "cos(image_i, step_text_i); mean over frames",
    }
    assert record_of(goal_faithfulness(FRAMES, GOAL, clip)) == base | {
        "metric": "goal_faithfulness",
        "goal": GOAL,
        "text": {"mode": "chunk", "max_tokens": 77, "per_text": [{"tokens": 1, "windows": 1, "truncated": 0}]},
        "formula": "cos(image_i, goal); mean over frames",
    }
    assert record_of(cross_step_consistency(FRAMES, clip)) == base | {
        "metric": "cross_step_consistency",
        "pairs": "consecutive",
        "pair_index": [(0, 1), (1, 2)],
        "formula": "cos(image_i, image_j); mean over pairs",
    }
    assert record_of(ingredient_accuracy(FRAMES, [["carrot"], [], []], clip)) == base | {
        "metric": "ingredient_accuracy",
        "scored": [(0, "carrot")],
        "template": "a photo of {}",
        "neutral": "a photo",
        "formula": "1[cos(image_i, template(k)) > cos(image_i, neutral)]; mean over (step, ingredient)",
    }


def test_every_dino_metric_records_its_backbone_masks_pairs_and_formula():
    dino = DesignedDino(WHOLE, MASKED)
    base = {"backbone": dino.source, "input_resolution": DESIGNED_RESOLUTION}
    masked_crop = (
        "masked frames: outside the mask set to the mean colour, cropped to the mask's box, padded square, resized"
    )
    assert record_of(dino_l2(FOUR, dino=dino)) == base | {
        "metric": "dino_l2",
        "crop_mask": WHOLE_FRAME,
        "masked": [False] * 4,
        "pairs": "consecutive",
        "pair_index": [(0, 1), (1, 2), (2, 3)],
        "formula": "||CLS(image_i) - CLS(image_j)||_2; mean over pairs",
    }
    assert record_of(dino_l2_masked(FOUR, [MASK, None, MASK, MASK], dino, "all")) == base | {
        "metric": "dino_l2_masked",
        "crop_mask": masked_crop,
        "crop": "mask",
        "masked": [True, False, True, True],
        "pairs": "all",
        "pair_index": [(0, 2), (0, 3), (2, 3)],
        "formula": "||CLS(masked image_i) - CLS(masked image_j)||_2; mean over pairs of masked frames",
    }
    assert "note" not in dino_l2_masked(FOUR, [MASK, None, MASK, MASK], dino).record  # a note only for nothing scored


def test_score_runs_the_oracle_on_a_toy_recipes_expectations():
    from cooklab.toykitchen import random_toy_recipe

    toy = random_toy_recipe(3, 4)
    images = [f.image for f in _frames()[:4]]  # not the recipe's scenes: some checks fail
    results = score(images, toy, ["oracle_container_consistency", "oracle_step_faithfulness", "oracle_state_accuracy"])
    expectations = list(toy.expectations)
    assert results["oracle_container_consistency"].per_item == oracle_container_consistency(images).per_item
    assert results["oracle_step_faithfulness"].per_item == oracle_step_faithfulness(images, expectations).per_item
    assert results["oracle_state_accuracy"].per_item == oracle_state_accuracy(images, expectations).per_item
    assert results["oracle_state_accuracy"].record["metric"] == "oracle_state_accuracy"


def test_every_oracle_metric_records_the_palette_its_thresholds_and_formula():
    from cooklab.toykitchen import oracle

    images = [f.image for f in _frames()]
    expectations = [Expectation("bowl", "blue"), *[Expectation("bowl", "blue", "carrot", "diced")] * 4]
    base = {
        "backbone": "Toy Kitchen oracle (renderer palette, cooklab.toykitchen.oracle)",
        "input_resolution": "native (each picture at its own size; ingredient states on the 64 x 64 grid)",
        "thresholds": {
            "MAX_DISTANCE": oracle.MAX_DISTANCE,
            "MIN_CONTAINER_FRACTION": oracle.MIN_CONTAINER_FRACTION,
            "MIN_INGREDIENT_PIXELS": oracle.MIN_INGREDIENT_PIXELS,
            "CONSISTENCY_IOU": oracle.CONSISTENCY_IOU,
        },
    }
    food = "food region inside the container mask"
    assert record_of(oracle_container_consistency(images)) == base | {
        "metric": "oracle_container_consistency",
        "crop_mask": "container mask read from the palette",
        "frames": [1, 2, 3, 4],
        "formula": "1[same colour as frame 1 and mask IoU >= CONSISTENCY_IOU]; mean over frames 2..N",
    }
    assert record_of(oracle_step_faithfulness(images, expectations)) == base | {
        "metric": "oracle_step_faithfulness",
        "crop_mask": food,
        "steps": [1, 2, 3, 4],
        "formula": "1[the step's ingredient is present]; mean over steps naming one",
    }
    assert record_of(oracle_state_accuracy(images, expectations)) == base | {
        "metric": "oracle_state_accuracy",
        "crop_mask": food,
        "steps": [1, 2, 3, 4],
        "formula": "1[guessed state == expected state]; mean over steps naming an ingredient and a state",
    }


def test_container_masks_turn_boxes_and_soft_masks_into_strict_majority_masks():
    import PIL.Image

    from cooklab.metrics import container_masks

    asked = []

    def provider(picture, phrase):
        asked.append((isinstance(picture, PIL.Image.Image), picture.size, phrase))
        soft = np.full((4, 6), 0.75)
        soft[0, 0] = 0.5  # exactly half: not inside
        return {"box": (1, 0, 3.5, 2), "soft": soft, "nothing": None}[phrase]

    frames = [np.zeros((4, 6, 3), dtype=np.uint8)] * 4  # arrays, handed to the provider as 6 x 4 PIL pictures
    box, soft, nothing, skipped = container_masks(frames, ["box", "soft", "nothing", None], provider)
    # the box covers columns 1 and 2 fully and half of column 3 (x from 3 to 3.5), rows 0 and 1
    expected_box = np.zeros((4, 6), dtype=bool)
    expected_box[0:2, 1:3] = True
    assert box.dtype == bool and np.array_equal(box, expected_box)
    assert soft.sum() == 23 and not soft[0, 0]
    assert nothing is None and skipped is None
    assert asked == [(True, (6, 4), "box"), (True, (6, 4), "soft"), (True, (6, 4), "nothing")]  # None: not asked
