"""``cooklab evaluate``'s results cache cannot serve stale numbers (issue 26, "Deliver 2").

Each metric of a unit is stored with its scoring key (``cooklab/evaluation/scoring_keys.py``: the
backbone's name and weights digest, the masks used, the protocol). These tests change one scoring
input under the same ``out`` and check that the metric is scored again from the saved frames with
the new input -- compared with the metric computed directly on those frames, not with the cache's
own output -- that the frames are not generated again, and that a backbone that cannot load is an
error instead of the old number.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import pytest
from transformers import BitImageProcessor, CLIPImageProcessor

from cooklab.backbones import clip_backbone, dino_backbone, tiny_random_clip, tiny_random_dino, weights_digest
from cooklab.errors import ConfigError
from cooklab.evaluation import evaluate, load_config, read_results
from cooklab.evaluation import methods as eval_methods
from cooklab.evaluation.recipe_sets import load_recipes
from cooklab.grounding import BoxMaskProvider
from cooklab.metrics import clip_score, container_masks, dino_l2_masked

sys.path.insert(0, str(Path(__file__).parent))
from test_evaluation import write_config  # noqa: E402


def _config(folder: Path, **changes):
    """Two units (one method, two 2-step toy recipes, one seed), updated with ``changes``."""
    changes = {"methods": [dict(name="independent")], "seeds": [0], "tables": [], **changes}
    return load_config(write_config(folder, **changes))


def _save_clip(folder: Path, seed: int) -> Path:
    """A tiny random CLIP written like a hub snapshot (model, tokenizer, image processor)."""
    clip = tiny_random_clip(seed=seed, image_size=32)
    clip.model.save_pretrained(folder)
    clip.tokenizer.save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def _save_dino(folder: Path) -> Path:
    dino = tiny_random_dino(seed=0, image_size=28)
    dino.model.save_pretrained(folder)
    BitImageProcessor(
        size={"shortest_edge": 28},
        crop_size={"height": 28, "width": 28},
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
    ).save_pretrained(folder)
    return folder


def _frames(out: Path) -> dict[Path, int]:
    """Every saved frame and its modification time (ns)."""
    return {p: p.stat().st_mtime_ns for p in sorted((out / "units").rglob("frame_*.png"))}


def _unit_frames(out: Path, recipe_id: str) -> list:
    from PIL import Image

    folder = next(p for p in (out / "units").rglob(recipe_id) if p.is_dir()) / "seed0"
    return [Image.open(p).convert("RGB") for p in sorted(folder.glob("frame_*.png"))]


@pytest.fixture
def no_generation(monkeypatch):
    """After this fixture is asked for, generating a unit fails the test (frames must be reused)."""

    def refuse(*args, **kwargs):
        raise AssertionError("a unit was generated again: its saved frames should have been scored")

    def install():
        for name, m in list(eval_methods.METHODS.items()):
            monkeypatch.setitem(eval_methods.METHODS, name, dataclasses.replace(m, run=refuse))

    return install


def test_swapping_the_clip_backbone_rescores_from_the_saved_frames(tmp_path, no_generation):
    config = _config(tmp_path, metrics=["clip_score", "oracle_step_faithfulness"])
    recipes = dict(load_recipes(config.recipes))
    first = evaluate(config, progress=False)
    before, stamps = read_results(first), _frames(tmp_path / "out")
    assert len(before) == 2 and len(stamps) == 4
    # the oracle's number is kept as stored (its key did not change): mark it to see that it is not recomputed
    for path in (tmp_path / "out" / "units").rglob("unit.json"):
        record = json.loads(path.read_text())
        record["metrics"]["oracle_step_faithfulness"]["value"] = -7.0
        path.write_text(json.dumps(record))

    no_generation()
    folder = _save_clip(tmp_path / "clip_a", seed=2)
    after = read_results(evaluate(config.model_copy(update={"clip": str(folder)}), progress=False))

    assert _frames(tmp_path / "out") == stamps  # scored from the frames, not generated again
    other = clip_backbone(folder)
    for old, new in zip(before, after):
        recipe = recipes[new["recipe"]].to_recipe()
        expected = clip_score(_unit_frames(tmp_path / "out", new["recipe"]), recipe.texts, other).value
        assert new["metrics"]["clip_score"]["value"] == pytest.approx(expected, abs=1e-4)
        assert new["metrics"]["clip_score"]["value"] != pytest.approx(old["metrics"]["clip_score"]["value"])
        assert new["metrics"]["oracle_step_faithfulness"]["value"] == -7.0  # not stale, not rescored
    unit = json.loads(next((tmp_path / "out" / "units").rglob("unit.json")).read_text())
    assert unit["scoring"]["clip_score"]["backbone"] == {"name": str(folder), "weights": weights_digest(other.model)}


def test_new_weights_under_the_same_name_rescore(tmp_path, no_generation):
    folder = _save_clip(tmp_path / "clip", seed=1)
    config = _config(tmp_path, clip=str(folder), metrics=["clip_score"])
    recipes = dict(load_recipes(config.recipes))
    before = read_results(evaluate(config, progress=False))
    _save_clip(folder, seed=2)  # retrained in place: same `clip:`, other weights
    no_generation()
    after = read_results(evaluate(config, progress=False))
    retrained = clip_backbone(folder)
    for old, new in zip(before, after):
        recipe = recipes[new["recipe"]].to_recipe()
        expected = clip_score(_unit_frames(tmp_path / "out", new["recipe"]), recipe.texts, retrained).value
        assert new["metrics"]["clip_score"]["value"] == pytest.approx(expected, abs=1e-4)
        assert new["metrics"]["clip_score"]["value"] != pytest.approx(old["metrics"]["clip_score"]["value"])


def test_a_backbone_that_cannot_load_is_an_error_not_the_old_number(tmp_path, monkeypatch):
    evaluate(_config(tmp_path, metrics=["clip_score"]), progress=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(
        ConfigError, match=r"(?s)clip_score: 'openai/clip-vit-large-patch14'.*cannot be loaded.*hf download.*toy"
    ):
        evaluate(_config(tmp_path, clip="openai/clip-vit-large-patch14", metrics=["clip_score"]), progress=False)


def test_a_unit_stored_without_scoring_keys_is_rescored(tmp_path, no_generation):
    config = _config(tmp_path, metrics=["oracle_step_faithfulness"])
    before = read_results(evaluate(config, progress=False))
    for path in (tmp_path / "out" / "units").rglob("unit.json"):  # as an older cooklab wrote it: no keys
        record = json.loads(path.read_text())
        record.pop("scoring", None)
        record["metrics"]["oracle_step_faithfulness"]["value"] = -7.0
        path.write_text(json.dumps(record))
    no_generation()
    after = read_results(evaluate(config, progress=False))
    assert after == before  # the marked numbers were scored again, to the same values


def test_changed_masks_rescore_dino_l2_masked(tmp_path, monkeypatch, no_generation):
    dino = _save_dino(tmp_path / "dino")
    config = _config(tmp_path, dino=str(dino), metrics=["dino_l2_masked", "oracle_step_faithfulness"])
    recipes = dict(load_recipes(config.recipes))
    before = read_results(evaluate(config, progress=False))
    stamps = _frames(tmp_path / "out")
    for path in (tmp_path / "out" / "units").rglob("unit.json"):  # the same masks again: the stored number stands
        record = json.loads(path.read_text())
        record["metrics"]["dino_l2_masked"]["value"] = -7.0
        path.write_text(json.dumps(record))
    assert all(r["metrics"]["dino_l2_masked"]["value"] == -7.0 for r in read_results(evaluate(config, progress=False)))

    box = BoxMaskProvider((0, 0, 40, 24))  # the masks behind dino_l2_masked change, the config's text does not
    monkeypatch.setattr("cooklab.runs.mask_provider", lambda spec: box)
    no_generation()
    after = read_results(evaluate(config, progress=False))

    assert _frames(tmp_path / "out") == stamps
    backbone = dino_backbone(dino)
    for old, new in zip(before, after):
        recipe = recipes[new["recipe"]].to_recipe()
        frames = _unit_frames(tmp_path / "out", new["recipe"])
        masks = container_masks(frames, [s.container for s in recipe.steps], box)
        expected = dino_l2_masked(frames, masks, backbone).value
        assert new["metrics"]["dino_l2_masked"]["value"] == pytest.approx(expected, abs=1e-4)
        assert new["metrics"]["dino_l2_masked"]["value"] != pytest.approx(old["metrics"]["dino_l2_masked"]["value"])
        assert new["metrics"]["oracle_step_faithfulness"] == old["metrics"]["oracle_step_faithfulness"]


def test_every_metric_evaluate_stores_has_a_scoring_key():
    """Every metric stored in a unit.json has a key; the set-level ones are never stored (scored at each merge)."""
    from cooklab.evaluation.scoring_keys import SCORING_INPUTS
    from cooklab.metrics import JUDGE_METRICS, METRICS, SET_METRICS

    assert sorted(SCORING_INPUTS) == sorted(m for m in METRICS if m not in (*JUDGE_METRICS, *SET_METRICS))


def test_the_weights_digest_changes_with_any_weight_and_only_with_the_weights():
    import copy

    import torch

    torch.manual_seed(0)
    a = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Linear(2, 1))
    b = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Linear(2, 1))
    b.load_state_dict(a.state_dict())
    assert weights_digest(a) == weights_digest(b)  # another object, the same weights
    with torch.no_grad():
        b[1].bias += 1e-6  # one number
    assert weights_digest(a) != weights_digest(b)
    assert weights_digest(a) != weights_digest(copy.deepcopy(a).to(torch.bfloat16))  # another dtype: other weights


def test_the_masks_digest_is_16_hex_of_the_masks_as_booleans_in_frame_order():
    import hashlib

    import numpy as np

    from cooklab.evaluation.scoring_keys import masks_digest

    assert masks_digest(None) is None
    diagonal = np.array([[True, False], [False, True]])
    # by hand: shape "(2, 2)|", the bits 1 0 0 1 packed into one byte 0b10010000 = 0x90, then "none|" for frame 2
    expected = hashlib.sha256(b"(2, 2)|" + bytes([0x90]) + b"none|").hexdigest()[:16]
    assert masks_digest([diagonal, None]) == expected and len(expected) == 16
    assert masks_digest([diagonal.astype(np.float32), None]) == expected  # a 0/1 float mask is the same mask
    assert masks_digest([None, diagonal]) != expected  # frame order counts


def test_every_backbone_is_loaded_on_the_evaluations_device(monkeypatch):
    import cooklab.backbones
    import cooklab.models
    from cooklab.evaluation.scoring_backbones import load_backbone

    calls = []
    for module, name in [(cooklab.models, "toy_clip"), (cooklab.models, "toy_dino")]:
        monkeypatch.setattr(module, name, lambda device=None, name=name: calls.append((name, device)) or name)
    for name in ("clip_backbone", "dino_backbone"):
        fake = lambda source, device=None, name=name: calls.append((name, source, device)) or name  # noqa: E731
        monkeypatch.setattr(cooklab.backbones, name, fake)
    assert load_backbone("clip", "toy", device="cuda:1") == "toy_clip"
    assert load_backbone("dino", "toy", device="cuda:1") == "toy_dino"
    assert load_backbone("clip", "some/clip", device="cuda:1") == "clip_backbone"
    assert load_backbone("dino", "some/dino", device="cuda:1") == "dino_backbone"
    assert calls == [
        ("toy_clip", "cuda:1"),
        ("toy_dino", "cuda:1"),
        ("clip_backbone", "some/clip", "cuda:1"),
        ("dino_backbone", "some/dino", "cuda:1"),
    ]
