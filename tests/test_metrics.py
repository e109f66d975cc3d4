"""cooklab.metrics with tiny random backbones built from configs in code (offline, seconds).

Random weights make the numbers meaningless, but not the properties every metric must have:
identical frames give zero distance / maximal similarity, image-image measures are symmetric,
a frame's score does not depend on the batch around it, masks are honoured, long texts are
chunked or truncated as recorded, and the oracle's measures equal the oracle's functions.
"""

import os
import subprocess
import sys
import types

import numpy as np
import pytest
import torch

from cooklab.errors import CheckpointError, ConfigError
from cooklab.images import rgb_tensor as image_tensor
from cooklab.metrics import (
    MetricResult,
    clip_backbone,
    clip_image_score,
    clip_score,
    container_masks,
    cross_step_consistency,
    dino_l2,
    dino_l2_masked,
    dreamsim_distance,
    goal_faithfulness,
    ingredient_accuracy,
    oracle_container_consistency,
    oracle_state_accuracy,
    oracle_step_faithfulness,
    score,
    step_faithfulness,
    tiny_random_clip,
    tiny_random_dino,
)
from cooklab.toykitchen import oracle, random_toy_recipe, render

TEXTS = ["place the tomato in the bowl", "chop the onion", "stir the pot"]


@pytest.fixture(scope="module")
def clip():
    return tiny_random_clip(seed=0)


@pytest.fixture(scope="module")
def dino():
    return tiny_random_dino(seed=0)


@pytest.fixture(scope="module")
def frames():
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (40, 48, 3), dtype=np.uint8) for _ in range(3)]


def test_identical_frames_give_maximal_similarity_and_zero_distance(clip, dino, frames):
    same = [frames[0]] * 3
    assert clip_image_score(same, clip).per_item == pytest.approx([100.0, 100.0], abs=1e-3)
    assert cross_step_consistency(same, clip, pairs="all").per_item == pytest.approx([1.0] * 3, abs=1e-5)
    assert dino_l2(same, dino=dino).per_item == pytest.approx([0.0, 0.0], abs=1e-4)
    different = dino_l2(frames, dino=dino)
    assert all(d > 1e-3 for d in different.per_item)


def test_image_image_measures_are_symmetric(clip, dino, frames):
    a, b = frames[0], frames[1]
    assert clip_image_score([a, b], clip).value == pytest.approx(clip_image_score([b, a], clip).value, abs=1e-4)
    assert cross_step_consistency([a, b], clip).value == pytest.approx(
        cross_step_consistency([b, a], clip).value, abs=1e-6
    )
    assert dino_l2([a, b], dino=dino).value == pytest.approx(dino_l2([b, a], dino=dino).value, abs=1e-5)


def test_permuting_frames_permutes_per_item(clip, frames):
    order = [2, 0, 1]
    for metric in (clip_score, step_faithfulness):
        forward = metric(frames, TEXTS, clip).per_item
        permuted = metric([frames[k] for k in order], [TEXTS[k] for k in order], clip).per_item
        assert permuted == pytest.approx([forward[k] for k in order], abs=1e-5)
    goal = goal_faithfulness(frames, "tomato soup", clip).per_item
    assert goal_faithfulness([frames[k] for k in order], "tomato soup", clip).per_item == pytest.approx(
        [goal[k] for k in order], abs=1e-6
    )
    alone = [clip_score([f], [t], clip).per_item[0] for f, t in zip(frames, TEXTS)]  # each frame in a batch of one
    assert clip_score(frames, TEXTS, clip).per_item == pytest.approx(alone, abs=1e-4)


def test_pairs_consecutive_and_all(dino, frames):
    consecutive = dino_l2(frames, dino=dino)
    every = dino_l2(frames, dino=dino, pairs="all")
    assert consecutive.record["pair_index"] == [(0, 1), (1, 2)]
    assert every.record["pair_index"] == [(0, 1), (0, 2), (1, 2)]
    assert every.per_item[0] == pytest.approx(consecutive.per_item[0]) and every.per_item[2] == pytest.approx(
        consecutive.per_item[1]
    )
    assert consecutive.value == pytest.approx(np.mean(consecutive.per_item))
    with pytest.raises(ConfigError, match="choose one of"):
        dino_l2(frames, dino=dino, pairs="next")
    with pytest.raises(ConfigError, match="at least 2"):
        dino_l2(frames[:1], dino=dino)


def test_masked_dino_distance_ignores_pixels_outside_the_mask(dino, frames):
    mask = np.zeros((40, 48), dtype=bool)
    mask[8:30, 10:26] = True
    masks = [mask, mask, None]
    before = dino_l2(frames, masks=masks, dino=dino)
    changed = [f.copy() for f in frames]
    changed[1][~mask] = 255 - changed[1][~mask]  # every pixel outside frame 2's mask
    after = dino_l2(changed, masks=masks, dino=dino)
    assert after.per_item == pytest.approx(before.per_item, abs=1e-5)
    assert dino_l2(changed, dino=dino).per_item[0] != pytest.approx(dino_l2(frames, dino=dino).per_item[0], abs=1e-4)
    assert before.record["masked"] == [True, True, False]
    assert "mask" in before.record["crop_mask"]
    with pytest.raises(ConfigError, match="empty"):
        dino_l2(frames, masks=[np.zeros((40, 48)), None, None], dino=dino)
    with pytest.raises(ConfigError, match="size of its image"):
        dino_l2(frames, masks=[np.ones((8, 8)), None, None], dino=dino)


def test_masked_dino_scores_pairs_of_masked_frames_only(dino, frames):
    mask = np.zeros((40, 48), dtype=bool)
    mask[8:30, 10:26] = True
    masks = [mask, mask, None]
    masked = dino_l2_masked(frames, masks, dino=dino, pairs="all")
    assert masked.record["pair_index"] == [(0, 1)]  # (0, 2) and (1, 2) hold the unmasked frame
    assert masked.per_item == pytest.approx(dino_l2(frames, masks=masks, dino=dino).per_item[:1], abs=1e-6)
    assert masked.record["metric"] == "dino_l2_masked" and masked.record["masked"] == [True, True, False]
    nothing = dino_l2_masked(frames, [mask, None, mask], dino=dino)  # consecutive pairs: none has two masks
    assert np.isnan(nothing.value) and nothing.per_item == [] and "nothing to score" in nothing.record["note"]
    with pytest.raises(ConfigError, match="container_masks"):
        dino_l2_masked(frames, [mask], dino=dino)
    with pytest.raises(ConfigError, match="pass masks="):
        score(frames, TEXTS, ["dino_l2_masked"], dino=dino)
    both = score(frames, TEXTS, ["dino_l2", "dino_l2_masked"], dino=dino, masks=masks, device=None)
    assert both["dino_l2"].per_item == pytest.approx(dino_l2(frames, dino=dino).per_item)  # dino_l2 stays whole-frame
    assert both["dino_l2_masked"].per_item == pytest.approx(dino_l2_masked(frames, masks, dino=dino).per_item)


def test_container_masks_ask_the_provider_for_each_step_container():
    from cooklab.grounding import BoxMaskProvider

    images = [render(s).image for s in random_toy_recipe(971, 4).scenes]  # [64, 64] PIL renders
    boxed = container_masks(images, ["pot", None, "pot", "pot"], BoxMaskProvider((8, 8, 40, 32)))
    assert boxed[1] is None and all(m.shape == (64, 64) and m.dtype == bool for m in (boxed[0], boxed[2], boxed[3]))
    assert boxed[0][8:32, 8:40].all() and boxed[0].sum() == 24 * 32
    read = container_masks(images, ["pot"] * 4, oracle.OracleMaskProvider())
    for image, mask in zip(images, read):
        assert np.array_equal(mask, oracle.container_mask(image))
    with pytest.raises(ConfigError, match=r"one \(or None\) per frame"):
        container_masks(images, ["pot"], BoxMaskProvider((8, 8, 40, 32)))


def test_provenance_is_recorded(clip, dino, frames):
    for result in (clip_score(frames, TEXTS, clip), dino_l2(frames, dino=dino), cross_step_consistency(frames, clip)):
        assert isinstance(result, MetricResult)
        record = result.record
        assert {"metric", "backbone", "input_resolution", "crop_mask", "formula", "versions"} <= set(record)
        assert set(record["versions"]) == {"torch", "transformers", "cooklab"}
        assert record["backbone"].startswith("tiny_random_")
    assert clip_score(frames, TEXTS, clip).record["input_resolution"]["crop"] == 32
    assert dino_l2(frames, dino=dino).record["input_resolution"]["crop"] == 28


def test_short_text_is_one_window_and_mode_changes_nothing(clip, frames):
    chunked = clip_score(frames, TEXTS, clip, text_mode="chunk")
    truncated = clip_score(frames, TEXTS, clip, text_mode="truncate")
    assert chunked.per_item == pytest.approx(truncated.per_item, abs=1e-6)
    assert [t["windows"] for t in chunked.record["text"]["per_text"]] == [1, 1, 1]
    assert chunked.record["text"]["mode"] == "chunk" and chunked.record["text"]["max_tokens"] == 77


def test_a_200_token_text_is_chunked_or_truncated_as_recorded(clip, frames):
    long = " ".join(["tomato"] * 200)  # one token per word with cooklab's tokenizer
    chunked = clip_score(frames[:1], [long], clip, text_mode="chunk").record["text"]["per_text"][0]
    truncated = clip_score(frames[:1], [long], clip, text_mode="truncate").record["text"]["per_text"][0]
    assert chunked == {"tokens": 200, "windows": 3, "truncated": 0}  # 75 + 75 + 50
    assert truncated == {"tokens": 200, "windows": 1, "truncated": 125}
    # the chunked text feature is the normalised mean of its windows' normalised features
    _, windows = clip.windows(long, "chunk")
    parts = torch.cat([clip.text_features([" ".join(["tomato"] * len(w))], "chunk")[0] for w in windows])  # [3, D]
    expected = torch.nn.functional.normalize(parts.mean(0), dim=-1)
    assert torch.allclose(clip.text_features([long], "chunk")[0][0], expected, atol=1e-5)
    with pytest.raises(ConfigError, match="text_mode"):
        clip_score(frames[:1], [long], clip, text_mode="cut")


def test_ingredient_accuracy_is_zero_shot_against_the_neutral_prompt(clip, frames):
    result = ingredient_accuracy(frames, [["tomato", "onion"], [], ["rice"]], clip)
    assert result.record["scored"] == [(0, "tomato"), (0, "onion"), (2, "rice")]
    f = clip.image_features(frames)
    g, _ = clip.text_features(["a photo", "a photo of tomato", "a photo of onion", "a photo of rice"])
    expected = [float(f[0] @ g[1] > f[0] @ g[0]), float(f[0] @ g[2] > f[0] @ g[0]), float(f[2] @ g[3] > f[2] @ g[0])]
    assert result.per_item == expected
    assert np.isnan(ingredient_accuracy(frames, [[], [], []], clip).value)
    with pytest.raises(ConfigError, match="one list"):
        ingredient_accuracy(frames, [["tomato"]], clip)


def test_dreamsim_without_the_package_names_the_fix(monkeypatch, frames):
    monkeypatch.setitem(sys.modules, "dreamsim", None)  # `import dreamsim` now raises ImportError
    with pytest.raises(CheckpointError, match="pip install dreamsim"):
        dreamsim_distance(frames)


def test_dreamsim_without_its_weights_names_the_download(monkeypatch, tmp_path, frames):
    fake = types.ModuleType("dreamsim")
    fake.dreamsim = lambda **kwargs: pytest.fail("must not be called without weights")
    monkeypatch.setitem(sys.modules, "dreamsim", fake)
    with pytest.raises(CheckpointError, match="weights are not in .*dreamsim\\(pretrained=True"):
        dreamsim_distance(frames, cache_dir=tmp_path / "empty")


def test_hub_backbones_offline_give_a_checkpoint_error_with_the_fix(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError, match="Fix:"):
        clip_backbone("cooklab-tests/no-such-clip")
    with pytest.raises(CheckpointError, match="not an existing folder"):
        clip_backbone("no/such/folder")


def test_oracle_metrics_equal_the_oracle_functions():
    toy = random_toy_recipe(3, 4)
    images = [render(scene, 64).image for scene in toy.scenes]
    images[2] = render(random_toy_recipe(4, 4).scenes[2], 64).image  # a frame from another recipe: some checks fail
    expectations = list(toy.expectations)
    consistency = oracle_container_consistency(images)
    assert consistency.per_item == [float(ok) for ok in oracle.container_consistency(images)] == [1.0, 0.0, 1.0]
    faithful = oracle_step_faithfulness(images, expectations)
    assert faithful.per_item == [float(ok) for ok in oracle.step_faithfulness(images, expectations)] == [1.0, 0.0, 1.0]
    assert faithful.value == pytest.approx(2 / 3) and faithful.record["steps"] == [1, 2, 3]
    states = oracle_state_accuracy(images, expectations)
    direct = oracle.state_accuracy(images, expectations)
    assert (np.isnan(states.value) and direct is None) or states.value == pytest.approx(direct)
    assert consistency.record["thresholds"]["CONSISTENCY_IOU"] == oracle.CONSISTENCY_IOU


def test_score_runs_the_asked_metrics_once_per_backbone(clip, dino):
    toy = random_toy_recipe(3, 3)
    images = [render(scene, 64).image for scene in toy.scenes]
    names = ("clip_score", "goal_faithfulness", "ingredient_accuracy", "dino_l2", "oracle_step_faithfulness")
    results = score(images, toy, names, clip=clip, dino=dino)
    assert list(results) == list(names)
    assert results["goal_faithfulness"].record["goal"] == toy.title
    recipe = toy.to_recipe()
    assert len(results["ingredient_accuracy"].per_item) == sum(len(step.ingredients) for step in recipe.steps)
    assert results["clip_score"].per_item == pytest.approx(
        clip_score(images, [s.text for s in recipe.steps], clip).per_item
    )
    with pytest.raises(ConfigError, match="unknown metric"):
        score(images, toy, ("fid",), clip=clip)
    with pytest.raises(ConfigError, match="ToyRecipe"):
        score(images, recipe, ("oracle_step_faithfulness",))
    with pytest.raises(ConfigError, match="one picture per step"):
        score(images[:2], toy, ("clip_score",), clip=clip)


def test_score_computes_the_frames_clip_features_once_with_the_same_numbers(clip, monkeypatch):
    toy = random_toy_recipe(3, 3)
    images = [render(scene, 64).image for scene in toy.scenes]
    texts = [step.text for step in toy.to_recipe().steps]
    alone = {
        "clip_score": clip_score(images, texts, clip),
        "step_faithfulness": step_faithfulness(images, texts, clip),
        "cross_step_consistency": cross_step_consistency(images, clip),
    }
    calls = {"image": 0, "text": 0}
    image_forward, text_forward = clip.model.get_image_features, clip.model.get_text_features

    def count(kind, forward):
        def wrapped(*args, **kwargs):
            calls[kind] += 1
            return forward(*args, **kwargs)

        return wrapped

    monkeypatch.setattr(clip.model, "get_image_features", count("image", image_forward))
    monkeypatch.setattr(clip.model, "get_text_features", count("text", text_forward))
    results = score(images, toy, tuple(alone), clip=clip)
    assert calls == {"image": 1, "text": len(texts)}  # one batch of frames; each step text once, not once per metric
    for name, result in alone.items():
        assert results[name].per_item == result.per_item
    assert clip._kept is None  # nothing kept after the call


def test_images_of_every_kind_convert_alike():
    rng = np.random.default_rng(1)
    u8 = rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)
    as_float = u8.astype(np.float32) / 255
    import PIL.Image

    for image in (
        PIL.Image.fromarray(u8),
        as_float,
        torch.from_numpy(as_float).permute(2, 0, 1),
        torch.from_numpy(as_float),
    ):
        assert torch.allclose(image_tensor(image), image_tensor(u8), atol=1e-6)
    assert image_tensor(u8[..., 0]).shape == (3, 6, 5)  # grey -> RGB
    with pytest.raises(ConfigError, match="image must be"):
        image_tensor(np.zeros((2, 3, 4, 5)))


def test_preprocess_reads_the_model_processors_and_built_models_need_their_tokenizer(clip):
    from transformers import BitImageProcessor, CLIPImageProcessor

    from cooklab.metrics import Preprocess, dino_backbone

    default = CLIPImageProcessor()
    assert Preprocess.from_processor(default) == Preprocess(
        224, 224, tuple(default.image_mean), tuple(default.image_std)
    )
    dinov2 = BitImageProcessor(
        size={"shortest_edge": 256},
        crop_size={"height": 224, "width": 224},
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
    )
    assert Preprocess.from_processor(dinov2) == Preprocess(256, 224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    with pytest.raises(ConfigError, match="tokenizer="):
        clip_backbone(clip.model)
    rebuilt = clip_backbone(clip.model, tokenizer=clip.tokenizer)
    assert rebuilt.preprocess == clip.preprocess and rebuilt.source.startswith("in memory")
    assert dino_backbone(tiny_random_dino().model).preprocess.crop == 28


def test_importing_metrics_loads_neither_diffusers_nor_matplotlib():
    code = (
        "import sys, cooklab; cooklab.metrics; "
        "assert 'diffusers' not in sys.modules and 'matplotlib' not in sys.modules, "
        "'cooklab.metrics imported too much'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env=os.environ.copy())
