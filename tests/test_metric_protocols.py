"""The papers' metric protocols, pinned on DESIGNED features: every expected number is computed by hand below.

Hand-built backbones (``DesignedClip`` / ``DesignedDino``) return the feature vectors a test sets
for each picture and text, so each formula -- the softmax over images, the argmax and its ties,
the missing logit scale, the distractors of other goals, the pairs of the DINOv2 distance, the
square resize, the key-object crops -- gives a number that a wrong formula cannot give. The
protocols then run offline end to end on the Toy Kitchen backbones, and the reference backbones
loaded by name offline fail with the usual error naming the fix.
"""

import dataclasses
import math
import sys
import types
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from cooklab.backbones import (
    CLIP_MEAN,
    CLIP_STD,
    DINOV2_LARGE,
    OPENCLIP_VIT_H14,
    ClipBackbone,
    DinoBackbone,
    Preprocess,
    clip_backbone,
    dino_backbone,
    prepare,
    square_preprocess,
)
from cooklab.errors import CheckpointError, ConfigError
from cooklab.metrics import (
    DEFAULT_BACKBONES,
    clip_score,
    clip_similarity,
    cross_step_consistency_dino,
    dino_l2_masked,
    dreamsim_masked,
    goal_faithfulness_mc,
    key_object_crop,
    metric_backbones,
    multiple_choice_correct,
    score,
    step_faithfulness_mc,
    tiny_random_dino,
)
from cooklab.metrics.key_objects import box_mask
from cooklab.metrics.multiple_choice import draw_seed, goal_groups

PRE = Preprocess(resize=4, crop=4, mean=CLIP_MEAN, std=CLIP_STD)


@dataclass
class DesignedClip(ClipBackbone):
    """A CLIP whose features are set by hand: ``vectors[picture or text]`` (pictures are names)."""

    vectors: dict = field(default_factory=dict)

    @property
    def max_tokens(self) -> int:
        return 77

    def _rows(self, keys) -> torch.Tensor:
        return F.normalize(torch.tensor([self.vectors[k] for k in keys], dtype=torch.float32), dim=-1)

    def image_features(self, images) -> torch.Tensor:
        return self._rows(list(images))

    def text_features(self, texts, mode="chunk"):
        return self._rows(list(texts)), [{"tokens": 1, "windows": 1, "truncated": 0} for _ in texts]


@dataclass
class DesignedDino(DinoBackbone):
    """A DINOv2 whose embeddings are set by hand (not normalised)."""

    vectors: dict = field(default_factory=dict)

    def embeddings(self, images, masks=None) -> torch.Tensor:
        return torch.tensor([self.vectors[k] for k in images], dtype=torch.float32)


def designed_clip(vectors) -> DesignedClip:
    return DesignedClip(None, None, PRE, "designed", vectors=vectors)


def one_hot(k: int, n: int = 4) -> list[float]:
    return [float(i == k) for i in range(n)]


# ---- the multiple choice: S[m, n] = cos, softmax over the images, argmax, ties to the first ----------------


def test_orthogonal_features_answer_every_row():
    # S = I: in column n, P[n, n] = e / (e + 3) = 0.475 > 1 / (e + 3) = 0.175, so row m picks n = m
    eye = torch.eye(4)[None]  # [1, 4, 4]
    assert multiple_choice_correct(eye, eye).tolist() == [[True, True, True, True]]


def test_one_picture_repeated_is_chance_exactly():
    # every S[m, n] = cos(v, t_n) is the same down column n, so P[m, n] = 1/4 everywhere: each row ties and picks
    # n = 0; only row 0 is right -- 1/4, whatever the texts ("without SRC" repeats one picture)
    texts = torch.randn(1, 4, 8, generator=torch.Generator().manual_seed(0))
    images = torch.randn(1, 1, 8, generator=torch.Generator().manual_seed(1)).expand(1, 4, 8)
    assert multiple_choice_correct(images, texts).tolist() == [[True, False, False, False]]


def test_negative_cosines_are_not_clamped():
    # images = -texts: S = -I. Column n: P[n, n] = e^-1 / (e^-1 + 3) = 0.109 < P[m, n] = 1 / (e^-1 + 3) = 0.304,
    # so row m picks the first n != m: every row wrong (a clamp at 0 would make every S 0: ties, 1/4 right)
    eye = torch.eye(4)[None]
    assert multiple_choice_correct(-eye, eye).tolist() == [[False, False, False, False]]


def s_features(s: list[list[float]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Image and text features whose cosines are exactly ``s``: texts e_0..e_{K-1}, image m = (S[m], rest)."""
    k = len(s)
    texts = torch.eye(k + 1)[:k]  # [K, K + 1]
    images = torch.tensor([[*row, math.sqrt(1 - sum(v * v for v in row))] for row in s])  # [K, K + 1], unit rows
    return images[None], texts[None]


def test_the_softmax_runs_over_the_images_not_the_texts():
    # S = [[.6, .2], [.6, .3]]. Over the images (the reference): column 0 gives P = .5, .5; column 1 gives
    # e^.2 / (e^.2 + e^.3) = .475 and .525. Row 0: (.5, .475) -> 0, right; row 1: (.5, .525) -> 1, right.
    # Over the texts row 1 picks its larger cosine, .6 at n = 0: wrong.
    images, texts = s_features([[0.6, 0.2], [0.6, 0.3]])
    assert multiple_choice_correct(images, texts, "images").tolist() == [[True, True]]
    assert multiple_choice_correct(images, texts, "texts").tolist() == [[True, False]]


def test_there_is_no_logit_scale():
    # S = [[0, 0, 0], [0, 0, .9], [0, .2, .9]]. Scale 1: column 0 is 1/3 each; column 1: 1 / (2 + e^.2) = .310 for
    # rows 0, 1 and e^.2 / (2 + e^.2) = .379 for row 2; column 2: 1 / (1 + 2 e^.9) = .169, then .416, .416.
    # Row 0 (.333, .310, .169) -> 0 right; row 1 (.333, .310, .416) -> 2 wrong; row 2 (.333, .379, .416) -> 2 right.
    # Scale 100 (CLIP's logit scale) makes column 1 all row 2's (P ~ 1): row 2 (~0, ~1, .5) -> 1, wrong.
    images, texts = s_features([[0.0, 0.0, 0.0], [0.0, 0.0, 0.9], [0.0, 0.2, 0.9]])
    assert multiple_choice_correct(images, texts).tolist() == [[True, False, True]]
    assert multiple_choice_correct(images, texts, scale=100.0).tolist() == [[True, False, False]]


def test_the_core_refuses_wrong_shapes_and_axes():
    eye = torch.eye(4)[None]
    with pytest.raises(ConfigError, match="normalize='steps'"):
        multiple_choice_correct(eye, eye, "steps")
    with pytest.raises(ConfigError, match=r"\[groups, choices, dim\]"):
        multiple_choice_correct(eye[0], eye[0])


# ---- step faithfulness: 4 random distinct steps of one sequence ------------------------------------------------


STEPS = ["s0", "s1", "s2", "s3"]


def test_step_mc_faithful_frames_answer_every_row():
    clip = designed_clip({**{s: one_hot(k) for k, s in enumerate(STEPS)}, **{f"x{k}": one_hot(k) for k in range(4)}})
    result = step_faithfulness_mc(["x0", "x1", "x2", "x3"], STEPS, clip)
    assert result.per_item == [1.0, 1.0, 1.0, 1.0] and result.value == 1.0
    assert sorted(result.record["steps"]) == [1, 2, 3, 4] and result.record["chance"] == 0.25


def test_step_mc_hands_on_its_axis_and_text_mode_and_records_every_parameter():
    # two steps, texts s0 = e0, s1 = e1; x0 = (.6, .8) is nearer s1, x1 = e1 (the goal test's numbers): over the
    # images both rows are right, over the texts row x0 picks s1 and is wrong
    clip = ModeRecordingClip(None, None, PRE, "designed", vectors={"s0": [1, 0], "s1": [0, 1], "x0": [0.6, 0.8]})
    clip.vectors["x1"] = [0, 1]
    assert step_faithfulness_mc(["x0", "x1"], ["s0", "s1"], clip, text_mode="chunk").per_item == [1.0, 1.0]
    result = step_faithfulness_mc(["x0", "x1"], ["s0", "s1"], clip, normalize="texts")
    assert sorted(result.per_item) == [0.0, 1.0] and clip.modes == ["chunk", "truncate"]
    steps = result.record["steps"]  # the drawn order: row m is step steps[m]
    assert result.per_item == [float(step == 2) for step in steps]
    assert {k: v for k, v in result.record.items() if k not in ("versions", "steps")} == {
        "metric": "step_faithfulness_mc",
        "backbone": "designed",
        "input_resolution": dataclasses.asdict(PRE),
        "crop_mask": "whole frame, centre crop",
        "choices": 2,
        "chance": 0.5,
        "seed": 0,  # the default
        "draw_seed": draw_seed(0, ["s0", "s1"]),
        "normalize": "texts",
        "text": {"mode": "truncate", "max_tokens": 77, "per_text": [{"tokens": 1, "windows": 1, "truncated": 0}] * 2},
        "formula": "softmax over images of cos(image_m, text_n); correct if argmax_n = m; mean over rows",
    }


def test_draw_seed_is_63_bits_of_the_sha256_of_seed_and_texts_and_choices_are_whole_and_at_least_two():
    import hashlib

    digest = hashlib.sha256(b'[3, ["a", "b"]]').digest()  # json.dumps([3, ["a", "b"]])
    assert draw_seed(3, ["a", "b"]) == int.from_bytes(digest[:8], "big") // 2
    clip = designed_clip({"s0": [1, 0], "s1": [0, 1], "x0": [1, 0], "x1": [0, 1]})
    assert step_faithfulness_mc(["x0", "x1"], ["s0", "s1"], clip, choices=2).record["choices"] == 2
    for choices in (1, 2.5):
        with pytest.raises(ConfigError, match=f"choices={choices}"):
            step_faithfulness_mc(["x0", "x1"], ["s0", "s1"], clip, choices=choices)


def test_step_mc_two_swapped_frames_lose_their_two_rows():
    # frame 0 shows step 1 and frame 1 step 0: column s0 is row x1's (P = e / (e + 3) = .475, others .175), so row x1
    # picks s0, row x0 picks s1 (both unique maxima, any draw order): both wrong; the other two right -> 1/2
    clip = designed_clip({**{s: one_hot(k) for k, s in enumerate(STEPS)}, **{f"x{k}": one_hot(k) for k in range(4)}})
    result = step_faithfulness_mc(["x1", "x0", "x2", "x3"], STEPS, clip)
    assert sorted(result.per_item) == [0.0, 0.0, 1.0, 1.0] and result.value == 0.5


def test_step_mc_one_picture_repeated_is_chance():
    clip = designed_clip({**{s: one_hot(k) for k, s in enumerate(STEPS)}, "x": [1.0, 2.0, 3.0, 4.0]})
    assert step_faithfulness_mc(["x"] * 4, STEPS, clip).value == 0.25


def test_step_mc_draws_four_distinct_steps_from_six_seeded_by_seed_and_texts():
    texts = [f"s{k}" for k in range(6)]
    clip = designed_clip(
        {**{t: one_hot(k, 6) for k, t in enumerate(texts)}, **{f"x{k}": one_hot(k, 6) for k in range(6)}}
    )
    frames = [f"x{k}" for k in range(6)]
    first = step_faithfulness_mc(frames, texts, clip, seed=3)
    assert len(first.per_item) == 4 and len(set(first.record["steps"])) == 4
    assert set(first.record["steps"]) <= set(range(1, 7)) and first.value == 1.0
    assert step_faithfulness_mc(frames, texts, clip, seed=3).record["steps"] == first.record["steps"]
    drawn = {tuple(step_faithfulness_mc(frames, texts, clip, seed=s).record["steps"]) for s in range(8)}
    assert len(drawn) > 1  # the seed changes the draw
    short = step_faithfulness_mc(frames[:3], texts[:3], clip)
    assert short.record["choices"] == 3 and short.record["chance"] == pytest.approx(1 / 3)


# ---- goal faithfulness: an anchor and 3 frames of other goals from the whole set --------------------------------


GOALS = ["A", "B", "C", "D"]


def goal_clip(extra=None) -> DesignedClip:
    return designed_clip({**{g: one_hot(k) for k, g in enumerate(GOALS)}, **(extra or {})})


def test_goal_mc_one_frame_showing_another_goal_is_wrong_and_the_others_right():
    # 4 one-frame sequences of 4 goals: every group is all 4 frames (the anchor and the 3 other goals). D's picture
    # shows A: column A ties rows A and D at e / (2e + 2) = .366, column D is .25 everywhere. Row A picks A (.366 >
    # .25 > .175), right; row D picks A, wrong; rows B, C right. Each frame is in all 4 groups: A, B, C 1.0, D 0.0.
    clip = goal_clip({"xA": one_hot(0), "xB": one_hot(1), "xC": one_hot(2), "xD": one_hot(0)})
    results = goal_faithfulness_mc([(["xA"], "A"), (["xB"], "B"), (["xC"], "C"), (["xD"], "D")], clip)
    assert [r.per_item for r in results] == [[1.0] * 4, [1.0] * 4, [1.0] * 4, [0.0] * 4]
    assert [r.value for r in results] == [1.0, 1.0, 1.0, 0.0]
    assert results[3].record["goal"] == "D" and results[3].record["choices"] == 4


def test_goal_mc_distractors_have_other_goals_and_anchors_follow_the_stride():
    goals = [g for g in "ABCDE" for _ in range(3)]  # 5 sequences of 3 frames
    for stride in (1, 4):
        rows = goal_groups(goals, 4, seed=0, anchor_stride=stride)
        assert rows[:, 0].tolist() == list(range(0, 15, stride))
        for row in rows.tolist():
            assert len(set(row)) == 4 and all(goals[j] != goals[row[0]] for j in row[1:])
    assert torch.equal(goal_groups(goals, 4, 7, 1), goal_groups(goals, 4, 7, 1))
    assert not torch.equal(goal_groups(goals, 4, 7, 1), goal_groups(goals, 4, 8, 1))


def test_goal_mc_needs_two_goals_and_shrinks_k_to_what_there_is():
    clip = goal_clip({"xA": one_hot(0), "xB": one_hot(1)})
    with pytest.raises(ConfigError, match="at least 2 different recipes"):
        goal_faithfulness_mc([(["xA"], "A"), (["xA"], "A")], clip)
    results = goal_faithfulness_mc([(["xA"], "A"), (["xB"], "B")], clip)
    assert [r.value for r in results] == [1.0, 1.0] and results[0].record["choices"] == 2


def test_goal_mc_draws_with_seed_zero_by_default_and_refuses_a_stride_below_one_or_not_whole():
    clip = goal_clip({"xA": one_hot(0), "xB": one_hot(1), "xC": one_hot(2)})
    sequences = [(["x" + g] * 3, g) for g in "ABC"]
    default = goal_faithfulness_mc(sequences, clip)
    assert default[0].record["seed"] == 0  # the reference's draws are seeded; cooklab's default seed is 0
    # every frame anchors a group (stride 1): 9 groups of 4 (each anchor has 6 frames of other goals)
    assert default[0].record["groups"] == 9 and default[0].record["choices"] == 4
    for stride in (0, 1.5):
        with pytest.raises(ConfigError, match=f"anchor_stride={stride}"):
            goal_faithfulness_mc(sequences, clip, anchor_stride=stride)


@dataclass
class ModeRecordingClip(DesignedClip):
    """A designed CLIP that also records the text mode it was asked for."""

    modes: list = field(default_factory=list)

    def text_features(self, texts, mode="chunk"):
        self.modes.append(mode)
        return super().text_features(texts, mode)


def test_goal_mc_hands_on_its_axis_and_text_mode_and_records_every_parameter():
    # texts A = e0, B = e1; picture xA = (.6, .8): nearer text B (.8 > .6), xB = e1. Groups (stride 1): [xA, xB]
    # with texts [A, B], and (sequence B has two frames xB) [xB, xA] with [B, A] twice.
    # softmax over the images: column A (.6, 0) -> P[xA, A] = e^.6 / (e^.6 + 1) = .646, column B (.8, 1) ->
    # P[xA, B] = e^.8 / (e^.8 + e) = .450: row xA picks A, right; row xB picks B (.550 > .354), right.
    # softmax over the texts (argmax of the row's cosines): row xA picks B (.8 > .6), wrong; row xB right.
    clip = ModeRecordingClip(None, None, PRE, "designed", vectors={**goal_clip().vectors, "xA": [0.6, 0.8, 0, 0]})
    clip.vectors["xB"] = one_hot(1)
    sequences = [(["xA"], "A"), (["xB", "xB"], "B")]
    images = goal_faithfulness_mc(sequences, clip, text_mode="chunk")
    assert [r.per_item for r in images] == [[1.0] * 3, [1.0] * 3] and clip.modes == ["chunk"]
    texts = goal_faithfulness_mc(sequences, clip, seed=5, normalize="texts")
    assert [r.per_item for r in texts] == [[0.0] * 3, [1.0] * 3] and clip.modes == ["chunk", "truncate"]
    record = texts[0].record
    assert {k: v for k, v in record.items() if k != "versions"} == {
        "metric": "goal_faithfulness_mc",
        "backbone": "designed",
        "input_resolution": dataclasses.asdict(PRE),
        "crop_mask": "whole frame, centre crop",
        "goal": "A",
        "choices": 2,  # each anchor has one frame of another goal: K = 2
        "chance": 0.5,
        "seed": 5,
        "anchor_stride": 1,
        "groups": 3,  # one per frame
        "sequences": 2,
        "normalize": "texts",
        "text": {"mode": "truncate", "max_tokens": 77, "per_text": [{"tokens": 1, "windows": 1, "truncated": 0}]},
        "formula": "softmax over images of cos(image_m, text_n); correct if argmax_n = m; mean over rows",
    }


def test_goal_mc_a_sequence_no_row_fell_on_is_nan_with_a_note():
    # one anchor (stride 4 over 4 frames) and 1 distractor (choices 2): two of the four sequences get no row
    results = goal_faithfulness_mc([([g], g) for g in GOALS], goal_clip(), choices=2, anchor_stride=4)
    assert [math.isnan(r.value) for r in results].count(True) == 2
    assert all(("note" in r.record) == math.isnan(r.value) for r in results)


# ---- cross-image consistency: DINOv2 L2 over all pairs, the reference's square resize ----------------------------


def test_dino_consistency_averages_every_pair():
    # embeddings (0, 0), (3, 4), (6, 8): pairs (1,2) 5, (1,3) 10, (2,3) 5 -> 20 / 3 (consecutive pairs would give 5)
    dino = DesignedDino(None, PRE, "designed", vectors={"a": [0, 0], "b": [3, 4], "c": [6, 8]})
    result = cross_step_consistency_dino(["a", "b", "c"], dino)
    assert result.per_item == [5.0, 10.0, 5.0] and result.value == pytest.approx(20 / 3)
    assert result.record["input_resolution"]["square"] is True and result.record["input_resolution"]["resize"] == 5


def test_the_reference_dino_preprocessing_resizes_both_sides():
    # a 50 x 100 picture, red in its left quarter (columns 0-24). Square: 256 x 256, red columns 0-63, centre crop
    # from column 16: columns 0-47 of 224 red (21 %). Shortest side: 256 x 512, red columns 0-127, crop from column
    # 144: no red.
    picture = np.zeros((50, 100, 3), dtype=np.uint8)
    picture[..., 2] = 255
    picture[:, :25] = (255, 0, 0)
    base = Preprocess(resize=256, crop=224, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    square = square_preprocess(base)
    assert (square.resize, square.crop, square.square) == (256, 224, True)
    red = lambda pre: float((prepare([picture], pre)[0, 0] > 0.5).float().mean(dim=0).gt(0.5).float().mean())  # noqa: E731
    assert red(square) == pytest.approx(48 / 224, abs=2 / 224)
    assert red(base) == 0.0


# ---- Recipe Diffusion: CLIP similarity on its scale, key-object crops ------------------------------------------


def test_clip_similarity_is_the_raw_cosine():
    # cos = .5 and -.2: CLIP similarity (.5 - .2) / 2 = .15; CLIP-T 100 * (max(.5, 0) + max(-.2, 0)) / 2 = 25
    clip = designed_clip({"x0": [0.5, math.sqrt(0.75)], "x1": [-0.2, math.sqrt(0.96)], "t0": [1, 0], "t1": [1, 0]})
    assert clip_similarity(["x0", "x1"], ["t0", "t1"], clip).per_item == pytest.approx([0.5, -0.2])
    assert clip_similarity(["x0", "x1"], ["t0", "t1"], clip).value == pytest.approx(0.15)
    assert clip_score(["x0", "x1"], ["t0", "t1"], clip).value == pytest.approx(25.0)


def test_clip_similarity_records_its_name_and_chunks_long_texts_by_default():
    clip = designed_clip({"x0": [1, 0], "t0": [1, 0]})
    record = clip_similarity(["x0"], ["t0"], clip).record
    assert record["metric"] == "clip_similarity" and record["text"]["mode"] == "chunk"


def picture_with_background(colour) -> np.ndarray:
    x = np.zeros((20, 30, 3), dtype=np.uint8)
    x[:] = colour
    x[5:15, 10:16] = (200, 30, 30)  # the object
    x[8, 12] = (0, 0, 0)
    return x


def object_mask() -> np.ndarray:
    m = np.zeros((20, 30), dtype=bool)
    m[5:15, 10:16] = True
    m[5, 10] = False  # inside the box, outside the mask
    return m


def test_the_mask_crop_ignores_pixels_outside_the_mask_and_the_box_crop_keeps_its_box():
    a, b = picture_with_background((0, 255, 0)), picture_with_background((0, 0, 255))
    mask = object_mask()
    crop_a = np.asarray(key_object_crop(a, mask))
    assert crop_a.shape == (10, 10, 3)  # the 10 x 6 box, padded square
    assert np.array_equal(crop_a, np.asarray(key_object_crop(b, mask)))  # background differs only outside the mask
    assert tuple(crop_a[0, 0]) == (124, 116, 104)  # the padding: the fill colour
    assert tuple(crop_a[0, 2]) == (124, 116, 104)  # pixel (5, 10): in the box, outside the mask
    a[5, 10] = (255, 255, 255)  # inside the box, outside the mask
    assert np.array_equal(np.asarray(key_object_crop(a, mask)), crop_a)
    assert tuple(np.asarray(key_object_crop(a, mask, "box"))[0, 2]) == (255, 255, 255)
    with pytest.raises(ConfigError, match="mask is empty"):
        key_object_crop(a, np.zeros((20, 30)))
    with pytest.raises(ConfigError, match="crop='circle'"):
        key_object_crop(a, mask, "circle")


def test_a_wide_crop_is_centred_vertically_and_a_half_weight_pixel_is_outside_the_mask():
    x = np.zeros((6, 6, 3), dtype=np.uint8)
    x[2:4, 1:5] = (255, 0, 0)  # the object: 2 rows x 4 columns, red
    mask = np.zeros((6, 6), dtype=np.float32)
    mask[2:4, 1:5] = 1.0
    mask[0, 0] = 0.5  # not above 0.5: outside the mask (">= 0.5" would stretch the box to (0, 0))
    crop = np.asarray(key_object_crop(x, mask))
    assert crop.shape == (4, 4, 3)  # the 2 x 4 box, padded square
    fill, red = (124, 116, 104), (255, 0, 0)
    # side 4, height 2: (4 - 2) // 2 = 1 row of fill above and one below the object
    assert [tuple(crop[r, 0]) for r in range(4)] == [fill, red, red, fill]


def test_box_mask_is_the_box_of_the_pixels_above_one_half():
    soft = np.zeros((5, 5), dtype=np.float32)
    soft[1, 1], soft[2, 3] = 0.9, 0.6  # above 0.5: the box rows 1-2, columns 1-3
    soft[4, 4] = 0.5  # not above 0.5 (">= 0.5" would stretch the box to row 4, column 4)
    expected = np.zeros((5, 5), dtype=bool)
    expected[1:3, 1:4] = True
    assert np.array_equal(box_mask(soft), expected)


def fake_dreamsim(monkeypatch):
    """A ``dreamsim`` package whose distance is the mean absolute pixel difference of its inputs."""
    fake = types.ModuleType("dreamsim")

    def load(pretrained, device, cache_dir, dreamsim_type):
        preprocess = lambda im: torch.tensor(np.asarray(im), dtype=torch.float32)[None] / 255  # noqa: E731
        return (lambda x, y: (x - y).abs().mean()), preprocess

    fake.dreamsim = load
    monkeypatch.setitem(sys.modules, "dreamsim", fake)


def test_dreamsim_masked_compares_the_objects_of_masked_pairs(monkeypatch, tmp_path):
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "weights.pt").write_bytes(b"x")
    fake_dreamsim(monkeypatch)
    frames = [picture_with_background(c) for c in ((0, 255, 0), (0, 0, 255), (9, 9, 9))]
    whole = dreamsim_masked(frames, [None] * 3, tmp_path / "w")
    assert math.isnan(whole.value) and "note" in whole.record
    result = dreamsim_masked(frames, [object_mask(), object_mask(), None], tmp_path / "w", pairs="all")
    assert result.record["pair_index"] == [(0, 1)] and result.per_item == [0.0]  # same object, other background


def test_dreamsim_is_loaded_pretrained_from_the_cache_on_the_device_with_its_type(monkeypatch, tmp_path):
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "weights.pt").write_bytes(b"x")
    loads, moves = [], []

    class Moved:  # a preprocessed picture that records where it is sent
        def __init__(self, im):
            self.x = torch.tensor(np.asarray(im), dtype=torch.float32)[None] / 255

        def to(self, device):
            moves.append(device)
            return self.x

    def load(**kwargs):
        loads.append(kwargs)
        return (lambda x, y: (x - y).abs().mean()), Moved

    fake = types.ModuleType("dreamsim")
    fake.dreamsim, fake.__version__ = load, "9.9"
    monkeypatch.setitem(sys.modules, "dreamsim", fake)
    frames = [picture_with_background(c) for c in ((0, 255, 0), (0, 0, 255))]
    result = dreamsim_masked(frames, [object_mask()] * 2, tmp_path / "w", dreamsim_type="dino_vitb16", device="cpu")
    assert loads == [dict(pretrained=True, device="cpu", cache_dir=str(tmp_path / "w"), dreamsim_type="dino_vitb16")]
    assert moves == ["cpu", "cpu"]  # both crops sent to the device asked for
    assert result.record["dreamsim_version"] == "9.9"


def test_dreamsim_masked_checks_the_crops_before_it_needs_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "dreamsim", None)
    frames = [picture_with_background((0, 0, 0))] * 2
    with pytest.raises(ConfigError, match="mask is empty"):
        dreamsim_masked(frames, [np.zeros((20, 30)), object_mask()])
    with pytest.raises(CheckpointError, match="pip install dreamsim"):
        dreamsim_masked(frames, [object_mask(), object_mask()])


def test_dino_l2_masked_box_crop_is_the_mask_of_its_box():
    dino = tiny_random_dino()
    frames = [picture_with_background((0, 255, 0)), picture_with_background((0, 0, 255))]
    for frame in frames:
        frame[5, 10] = (255, 255, 255)
    box = np.zeros((20, 30), dtype=bool)
    box[5:15, 10:16] = True
    by_box = dino_l2_masked(frames, [object_mask()] * 2, dino, crop="box")
    assert by_box.per_item == pytest.approx(dino_l2_masked(frames, [box] * 2, dino).per_item)
    assert by_box.record["crop"] == "box"


# ---- score, the backbones by name, the Toy Kitchen --------------------------------------------------------------


def test_score_runs_the_protocols_on_the_given_backbones_and_refuses_the_set_metric(toy_recipe_frames):
    toy, frames = toy_recipe_frames
    from cooklab.models import toy_clip, toy_dino

    clip, dino = toy_clip(), toy_dino()
    results = score(
        frames, toy, ["clip_similarity", "step_faithfulness_mc", "cross_step_consistency_dino"], clip=clip, dino=dino
    )
    assert results["step_faithfulness_mc"].record["backbone"].startswith("toy_clip")
    assert (
        set(results["step_faithfulness_mc"].per_item) <= {0.0, 1.0}
        and len(results["step_faithfulness_mc"].per_item) == 4
    )
    assert -1 <= results["clip_similarity"].value <= 1
    assert "not DINOv2" in results["cross_step_consistency_dino"].record["backbone"]
    assert len(results["cross_step_consistency_dino"].per_item) == 6  # every pair of 4 frames
    repeated = score([frames[0]] * 4, toy, ["step_faithfulness_mc"], clip=clip)["step_faithfulness_mc"]
    assert repeated.value == 0.25  # one picture four times: chance, by construction
    with pytest.raises(ConfigError, match="goal_faithfulness_mc"):
        score(frames, toy, ["goal_faithfulness_mc"], clip=clip)


def test_goal_mc_runs_on_the_toy_clip_over_toy_recipes():
    from cooklab.models import toy_clip
    from cooklab.toykitchen import random_toy_recipe, render

    sequences = []
    for seed in (1000, 1001, 1002):
        toy = random_toy_recipe(seed, 2)
        sequences.append(([render(scene, 64).image for scene in toy.scenes], toy.to_recipe().title))
    results = goal_faithfulness_mc(sequences, toy_clip())
    assert len(results) == 3 and all(0 <= r.value <= 1 for r in results)
    # 6 frames, each an anchor; each anchor has 4 frames of the 2 other goals, so K = 4: 6 groups x 4 rows
    assert sum(len(r.per_item) for r in results) == 6 * 4 and results[0].record["choices"] == 4


def test_a_metric_reads_its_own_backbone_else_the_kind_given_else_the_reference():
    a, b = designed_clip({}), designed_clip({})
    d = DesignedDino(None, PRE, "designed")
    chosen = metric_backbones(
        [
            "clip_score",
            "clip_similarity",
            "step_faithfulness_mc",
            "cross_step_consistency_dino",
            "oracle_state_accuracy",
        ],
        clip=a,
        dino=d,
        backbones={"clip_similarity": b},
        device=None,
    )
    assert chosen["clip_score"] is a and chosen["step_faithfulness_mc"] is a and chosen["clip_similarity"] is b
    assert chosen["cross_step_consistency_dino"] is d and "oracle_state_accuracy" not in chosen


def test_the_protocols_default_to_the_reference_backbones_and_fail_offline_with_the_fix(monkeypatch):
    assert DEFAULT_BACKBONES["step_faithfulness_mc"] == OPENCLIP_VIT_H14 == "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"
    assert DEFAULT_BACKBONES["goal_faithfulness_mc"] == OPENCLIP_VIT_H14
    assert DEFAULT_BACKBONES["cross_step_consistency_dino"] == DINOV2_LARGE == "facebook/dinov2-large"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError, match="Fix:"):
        clip_backbone(OPENCLIP_VIT_H14)
    with pytest.raises(CheckpointError, match="Fix:"):
        dino_backbone(DINOV2_LARGE)
    frames = [np.zeros((8, 8, 3), dtype=np.uint8)] * 2
    with pytest.raises(CheckpointError, match="CLIP-ViT-H-14"):
        score(frames, ["a", "b"], ["step_faithfulness_mc"])


@pytest.fixture(scope="module")
def toy_recipe_frames():
    from cooklab.toykitchen import random_toy_recipe, render

    toy = random_toy_recipe(1000, 4)
    return toy, [render(scene, 64).image for scene in toy.scenes]


# ---- cooklab evaluate: per-metric backbones, the set metric scored per row from the saved frames -------------------


def eval_config(folder, **changes):
    config = dict(
        name="p",
        out="out",
        generation=dict(num_inference_steps=2, guidance=3.0, true_cfg=3.0, height=64, width=64),
        recipes=dict(toy=dict(count=3, steps=2)),
        seeds=[0],
        methods=[dict(name="independent")],
        metrics=["goal_faithfulness_mc", "step_faithfulness_mc", "cross_step_consistency_dino"],
        dino="toy",
        tables=[dict(name="T", layout="cookanything")],
    )
    config.update(changes)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def test_the_backbones_field_names_listed_metrics_only(tmp_path):
    from cooklab.evaluation.config import load_config

    config = load_config(eval_config(tmp_path, backbones={"step_faithfulness_mc": OPENCLIP_VIT_H14}))
    assert config.backbone_for("step_faithfulness_mc") == OPENCLIP_VIT_H14
    assert config.backbone_for("goal_faithfulness_mc") == "toy"  # clip: toy
    assert config.backbone_for("cross_step_consistency_dino") == "toy"
    for wrong in ({"clip_score": "x/y"}, {"oracle_step_faithfulness": "x/y"}):
        with pytest.raises(ConfigError, match="backbones"):
            load_config(eval_config(tmp_path, backbones=wrong))


def test_the_set_metric_needs_two_recipe_titles(tmp_path):
    from cooklab.evaluation import evaluate
    from cooklab.evaluation.config import load_config

    config = load_config(eval_config(tmp_path, recipes=dict(toy=dict(count=1, steps=2))))
    with pytest.raises(ConfigError, match="at least 2 recipes with different titles"):
        evaluate(config, progress=False)


def test_evaluate_scores_the_set_metric_per_row_from_the_saved_frames(tmp_path):
    from cooklab.evaluation import evaluate, store
    from cooklab.evaluation.config import load_config
    from cooklab.evaluation.recipe_sets import load_recipes
    from cooklab.evaluation.run import units
    from cooklab.models import toy_clip

    config = load_config(eval_config(tmp_path))
    rows = store.read_results(evaluate(config, progress=False))
    assert all(set(r["metrics"]) == set(config.metrics) for r in rows)
    recipes = load_recipes(config.recipes)
    todo = units(config, recipes)
    saved = [store.load_unit(u, config.out) for u in todo]
    assert all("goal_faithfulness_mc" not in s["metrics"] for s in saved)  # never stored per unit: never stale
    by_id = dict(recipes)
    sequences = [(store.load_frames(u, config.out, 2), by_id[u.recipe_id].to_recipe().title) for u in todo]
    direct = goal_faithfulness_mc(sequences, toy_clip(), seed=0)
    assert [r["metrics"]["goal_faithfulness_mc"]["per_item"] for r in rows] == [d.per_item for d in direct]
    stamps = [(u.folder(config.out) / store.UNIT_FILE).stat().st_mtime_ns for u in todo]
    again = store.read_results(evaluate(config, progress=False))  # resumed: nothing generated, the same numbers
    assert again == rows
    assert [(u.folder(config.out) / store.UNIT_FILE).stat().st_mtime_ns for u in todo] == stamps  # nor rescored
    assert "goal faithfulness (4-way)" in (config.out / "tables.md").read_text(encoding="utf-8")


def test_the_set_metric_loads_its_backbone_on_the_evaluations_device(tmp_path, monkeypatch):
    from cooklab.evaluation import set_scoring
    from cooklab.evaluation.config import load_config

    config = load_config(eval_config(tmp_path))
    calls = []
    monkeypatch.setattr(set_scoring, "metric_backbones", lambda *args: calls.append(args) or {})
    set_scoring.add_set_metrics(config, [], [], {}, device="cuda:1")  # no unit yet: only the backbones are loaded
    assert calls == [(config, ["goal_faithfulness_mc"], "cuda:1")]
