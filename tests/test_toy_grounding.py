"""The Toy Kitchen's trained GroundingDINO + SAM: it finds the container, and it drives region-aware noise offline.

Each bound is also checked against the random ``tiny_detector`` / ``tiny_segmenter``, which must fail it.
"""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import cooklab
from cooklab.grounding.grounded_sam import DEFAULT_DETECTOR, GroundedSAM, named_grounded_sam
from cooklab.grounding.tiny import tiny_detector, tiny_segmenter
from cooklab.models import TOY_DIR, model_set_of
from cooklab.toykitchen import grounding_losses
from cooklab.toykitchen import grounding_training as detection
from cooklab.toykitchen.captions import WORDS
from cooklab.toykitchen.grounding_data import render_grounding
from cooklab.toykitchen.grounding_evaluation import evaluate_grounding
from cooklab.toykitchen.oracle import container_mask, iou
from cooklab.toykitchen.recipes import random_toy_recipe
from cooklab.toykitchen.world import Scene


@pytest.fixture(scope="module")
def toy():
    return GroundedSAM.toy()


@pytest.fixture(scope="module")
def random_pair():
    det, det_processor = tiny_detector(WORDS)
    sam, sam_processor = tiny_segmenter(64)
    return GroundedSAM.from_models(det, det_processor, sam, sam_processor)


def test_shipped_pair_loads_offline_from_its_folders(toy):
    assert toy.detector_id == str(TOY_DIR / "grounding" / "detector")
    assert toy.segmenter_id == str(TOY_DIR / "grounding" / "segmenter")
    assert len(toy.detector_processor.tokenizer) > 2 and toy.device == torch.device("cpu")
    assert sum(f.stat().st_size for f in (TOY_DIR / "grounding").rglob("*.safetensors")) < 8e6


def test_finds_the_container_in_held_out_renders(toy, random_pair):
    """Box and mask IoU against the renderer's exact box and mask, on 12 held-out scenes; the random pair fails the
    bounds."""
    trained = evaluate_grounding(toy, n=12, seed=7)
    floor = evaluate_grounding(random_pair, n=12, seed=7)
    for form in ("colour_and_kind", "kind"):
        assert trained[form]["detection_rate"] >= 0.8, trained
        assert trained[form]["box_iou"] >= 0.6 and trained[form]["mask_iou"] >= 0.8, trained
        assert floor[form]["box_iou"] < 0.5 and floor[form]["mask_iou"] < 0.5, floor


def test_grounded_sam_names_the_toy_pair_for_toy_pipelines_only(tiny_sd):
    assert model_set_of(cooklab.models.toy_sd()).name == "toy-sd" and model_set_of(tiny_sd) is None
    assert named_grounded_sam(toy=True).detector_id.endswith("detector")
    rd = cooklab.RecipeDiffusion.from_pipe(tiny_sd)  # a real checkpoint's path: the hub default, a clear error offline
    with pytest.raises(cooklab.CheckpointError, match=DEFAULT_DETECTOR):
        rd.prepare_mask_provider("grounded-sam")


def test_scoring_and_evaluation_name_the_toy_pair_for_toy_runs():
    """``--masks grounded-sam`` in ``cooklab score`` / ``cooklab evaluate``: the toy pair for the toy models'
    pictures."""
    from cooklab.evaluation.config import EvalConfig
    from cooklab.evaluation.run import _masks
    from cooklab.scoring import frame_masks

    data = render_grounding([Scene(container="pot", colour="teal", position=(34, 30))])
    recipe = cooklab.Recipe.from_steps(["Place a teal pot on the table"], plans=[{"container": "pot"}])
    run = SimpleNamespace(toy=None, settings={"model": "toy"}, images=[data.images[0].numpy()], recipe=recipe)
    (mask,) = frame_masks(run, "grounded-sam", None)
    assert iou(mask, data.masks[0].numpy()) >= 0.9
    run.settings = {"model": "tiny"}
    with pytest.raises(cooklab.CheckpointError, match=DEFAULT_DETECTOR):
        frame_masks(run, "grounded-sam", None)
    toy_config = EvalConfig.model_construct(model={"sd": "toy", "flux": "toy"}, masks="grounded-sam")
    assert _masks(toy_config, built=True).detector_id == str(TOY_DIR / "grounding" / "detector")
    with pytest.raises(cooklab.CheckpointError, match=DEFAULT_DETECTOR):
        _masks(EvalConfig.model_construct(model={"sd": "toy", "flux": "some/flux"}, masks="grounded-sam"), built=True)


@pytest.mark.slow
def test_toy_grounded_sam_drives_region_aware_noise():
    """Recipe Diffusion with the toy SD model and mask_provider="grounded-sam": the mask of frame 2 in frame 1 is the
    trained pair's, and it covers the container the oracle reads in frame 1."""
    toy = random_toy_recipe(3, n_steps=2)
    rd = cooklab.RecipeDiffusion.from_pipe(cooklab.models.toy_sd())
    out = rd(
        toy.to_recipe(),
        variant="region_aware_kv",
        num_inference_steps=12,
        guidance_scale=3.0,
        mask_provider="grounded-sam",
        progress=False,
    )
    frame = out.frames[1]
    assert frame.fallback is None and frame.region_aware and frame.mask_reference == 0
    assert frame.mask.source == "grounded-sam" and frame.mask.phrase == toy.to_recipe().steps[1].container
    truth = container_mask(out.images[0])
    assert truth.any() and iou(frame.mask.mask.numpy() > 0.5, truth) >= 0.9  # 0.98-0.99 measured (seeds 3, 5, 11)


def test_training_runs_resumes_and_saves_loadable_folders(tmp_path, monkeypatch):
    cfg = dataclasses.replace(detection.PRESETS["smoke"], segmenter_steps=3)
    data = detection.training_data(cfg)
    assert data.images.shape == (32, 64, 64, 3) and data.masks.shape == (32, 64, 64) and data.boxes.shape == (32, 4)
    calls = []
    batch = detection._segmenter_batch

    def interrupted(*args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return batch(*args)

    monkeypatch.setattr(detection, "_segmenter_batch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        detection.train_stage("segmenter", cfg, tmp_path, data)
    assert torch.load(tmp_path / "segmenter_checkpoint.pt", weights_only=False)["step"] == 2
    monkeypatch.setattr(detection, "_segmenter_batch", batch)
    resumed = detection.train_stage("segmenter", cfg, tmp_path, data)  # runs step 3 only
    assert resumed["steps_done"] == 3 and [row["step"] for row in resumed["losses"]] == [3]
    assert (tmp_path / "logs" / "segmenter_training.json").is_file() and not (
        tmp_path / "segmenter_checkpoint.pt"
    ).exists()
    detection.train_stage("detector", cfg, tmp_path, data)
    pair = GroundedSAM.toy(tmp_path / "grounding", box_threshold=0.0, text_threshold=0.0)
    result = pair(np.asarray(data.images[0]), "pot")
    assert result is not None and result.mask.shape == (64, 64)


def test_losses_are_lowest_at_the_truth():
    target = torch.tensor([[0.5, 0.5, 0.4, 0.3]])
    assert torch.allclose(
        grounding_losses.generalized_iou(
            grounding_losses.box_cxcywh_to_xyxy(target), grounding_losses.box_cxcywh_to_xyxy(target)
        ),
        torch.ones(1),
    )
    tokens = torch.tensor([[False, True, True, False]]), torch.tensor([[0.0, 1.0, 0.0, 0.0]])
    boxes = torch.stack([target[0], torch.tensor([0.2, 0.2, 0.1, 0.1])])[None]  # [1, 2 queries, 4]
    good = torch.tensor([[[-9.0, 9.0, -9.0, -9.0], [-9.0, -9.0, -9.0, -9.0]]])
    bad = torch.tensor([[[-9.0, -9.0, -9.0, -9.0], [-9.0, 9.0, -9.0, -9.0]]])
    low, _ = grounding_losses.one_object_detection_loss(good, boxes, *tokens, target, torch.tensor([True]))
    high, _ = grounding_losses.one_object_detection_loss(bad, boxes, *tokens, target, torch.tensor([True]))
    assert low < 0.01 < high
    mask = torch.zeros(1, 8, 8)
    mask[0, 2:6, 2:6] = 1
    logits = torch.stack([mask * 20 - 10, -mask * 20 + 10], 1)  # [1, 2 candidates, 8, 8]: right and inverted
    loss, parts = grounding_losses.segmentation_loss(logits, torch.tensor([[1.0, 0.0]]), mask)
    assert parts["best_iou"] == 1.0 and loss < 0.01
