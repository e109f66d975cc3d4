"""``cooklab score RUN_FOLDER`` (cooklab.scoring) and batched backbone features.

Fast: one tiny run, tiny random backbones, offline.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from openai_stub import FakeOpenAI

from cooklab import metrics
from cooklab.backbones import DEFAULT_BATCH_SIZE
from cooklab.cli import main
from cooklab.cli.options import SCORE_DEFAULTS
from cooklab.errors import ConfigError
from cooklab.grounding import BoxMaskProvider
from cooklab.metrics import (
    CLIP_METRICS,
    ORACLE_METRICS,
    clip_backbone,
    container_masks,
    dino_backbone,
    dino_l2_masked,
    score,
    tiny_random_clip,
    tiny_random_dino,
)
from cooklab.recipe import load_recipe
from cooklab.scoring import frame_masks, read_run, toy_recipe, toy_run
from cooklab.toykitchen import random_toy_recipe

TOY = (
    Path(__file__).resolve().parent.parent / "data" / "toykitchen" / "recipes" / "toy_kitchen.yaml"
)  # seed 971, 4 steps


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    """A run of the Toy Kitchen demo recipe with the tiny model (noise pictures), written once."""
    out = tmp_path_factory.mktemp("made") / "run"
    assert main(["generate", str(TOY), "--model", "tiny", "--steps", "2", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def toy_made(tmp_path_factory) -> Path:
    """A run of the Toy Kitchen demo recipe drawn by the Toy Kitchen models (settings.json model: toy), written
    once."""
    out = tmp_path_factory.mktemp("toy_made") / "run"
    assert main(["generate", str(TOY), "--model", "toy", "--steps", "2", "--out", str(out)]) == 0
    return out


@pytest.fixture
def run(made, tmp_path) -> Path:
    """A fresh copy of the run for one test (scoring writes into it)."""
    return Path(shutil.copytree(made, tmp_path / "run"))


@pytest.fixture(scope="module")
def backbones(tmp_path_factory) -> dict[str, Path]:
    """tiny_random_clip() and tiny_random_dino() saved as folders, as `hf download` would leave real ones."""
    from transformers import BitImageProcessor, CLIPImageProcessor

    root = tmp_path_factory.mktemp("backbones")
    clip, dino = tiny_random_clip(), tiny_random_dino()
    clip.model.save_pretrained(root / "clip")
    clip.tokenizer.save_pretrained(root / "clip")
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(
        root / "clip"
    )
    dino.model.save_pretrained(root / "dino")
    BitImageProcessor(
        size={"shortest_edge": 28},
        crop_size={"height": 28, "width": 28},
        image_mean=list(dino.preprocess.mean),
        image_std=list(dino.preprocess.std),
    ).save_pretrained(root / "dino")
    return {"clip": root / "clip", "dino": root / "dino"}


def _metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text(encoding="utf-8"))


# ---- the run folder ------------------------------------------------------------------


def test_a_run_records_its_recipe_and_knows_its_toy_recipe(run):
    assert load_recipe(run / "recipe.yaml") == load_recipe(TOY)
    found = read_run(run)
    assert len(found.images) == 4 and found.images[0].size == (64, 64)
    assert found.toy == random_toy_recipe(971, 4)
    changed = load_recipe(TOY).model_copy(update={"title": "Another title"})
    assert toy_recipe(changed) is None  # the seed's recipe must be the run's


# ---- cooklab score -------------------------------------------------------------------


def test_score_a_toy_run_offline_runs_the_oracle_and_says_what_it_skipped(run, capsys):
    assert main(["score", str(run)]) == 0
    out = capsys.readouterr().out
    data = _metrics(run)
    assert list(data["metrics"]) == list(ORACLE_METRICS)
    expected = score(read_run(run).images, random_toy_recipe(971, 4), ORACLE_METRICS)
    for name, result in expected.items():
        assert data["metrics"][name]["per_item"] == result.per_item
        assert data["metrics"][name]["record"]["metric"] == name
    assert (
        set(data["skipped"]) == {"clip", "dino"}
        and "hf download openai/clip-vit-base-patch32" in data["skipped"]["clip"]
    )
    assert "--clip ID_OR_FOLDER" in out and "oracle_step_faithfulness" in out
    page = (run / "index.html").read_text(encoding="utf-8")
    assert "<h2>Metrics</h2>" in page and "oracle_state_accuracy" in page and 'href="metrics.json"' in page
    assert "<h2>Frames</h2>" in page  # the page is the run's page, written again with the table
    assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp")]


def test_score_with_backbone_folders_matches_the_metrics(run, backbones, capsys):
    code = main(
        [
            "score",
            str(run),
            "--clip",
            str(backbones["clip"]),
            "--dino",
            str(backbones["dino"]),
            "--device",
            "cpu",
            "--batch-size",
            "3",
            "--pairs",
            "all",
            "--masks",
            "box:8,8,40,32",
        ]
    )
    assert code == 0, capsys.readouterr().err
    data = _metrics(run)
    assert list(data["metrics"]) == [*ORACLE_METRICS, *CLIP_METRICS, "dino_l2", "dino_l2_masked"]
    assert data["skipped"] == {} and data["device"] == "cpu" and data["batch_size"] == 3
    assert data["metrics"]["dino_l2"]["record"]["pairs"] == "all" and len(data["metrics"]["dino_l2"]["per_item"]) == 6
    assert data["metrics"]["clip_score"]["record"]["backbone"] == str(backbones["clip"])
    images = read_run(run).images
    masks = container_masks(
        images, ["pot"] * 4, BoxMaskProvider((8, 8, 40, 32))
    )  # every step of the toy recipe shows the pot
    expected = score(
        images,
        load_recipe(TOY),
        [*CLIP_METRICS, "dino_l2", "dino_l2_masked"],
        clip=tiny_random_clip(),
        dino=tiny_random_dino(),
        masks=masks,
        pairs="all",
        device="cpu",
    )
    for name, result in expected.items():
        np.testing.assert_allclose(data["metrics"][name]["per_item"], result.per_item, atol=1e-4)


def test_a_toy_run_gets_masked_dino_from_the_oracle(run, backbones, capsys):
    from cooklab.toykitchen import oracle, render

    images = [render(scene).image for scene in random_toy_recipe(971, 4).scenes]  # pictures the oracle can read
    for k, image in enumerate(images):
        image.save(run / f"frame_{k:02d}.png")
    assert main(["score", str(run), "--dino", str(backbones["dino"]), "--clip", str(backbones["clip"])]) == 0
    data = _metrics(run)
    assert "dino_l2_masked" in data["metrics"] and "dino_l2_masked" not in data["skipped"]
    masks = [oracle.container_mask(image) for image in images]
    expected = dino_l2_masked(images, masks, dino=tiny_random_dino())
    np.testing.assert_allclose(data["metrics"]["dino_l2_masked"]["per_item"], expected.per_item, atol=1e-4)
    assert (
        main(
            ["score", str(run), "--dino", str(backbones["dino"]), "--clip", str(backbones["clip"]), "--masks", "none"]
        )
        == 0
    )
    assert "dino_l2_masked" not in _metrics(run)["metrics"]
    assert (
        main(["score", str(run), "--metrics", "dino_l2_masked", "--dino", str(backbones["dino"]), "--masks", "none"])
        == 2
    )
    assert "leave out --masks none" in capsys.readouterr().err


def test_masked_dino_on_frames_without_a_container_is_skipped_or_refused(run, backbones, capsys):
    import PIL.Image

    for k in range(4):  # grey frames: no container colour anywhere
        PIL.Image.new("RGB", (64, 64), (128, 128, 128)).save(run / f"frame_{k:02d}.png")
    assert main(["score", str(run), "--dino", str(backbones["dino"]), "--clip", str(backbones["clip"])]) == 0
    data = _metrics(run)
    assert "dino_l2" in data["metrics"] and "dino_l2_masked" not in data["metrics"]
    assert "--masks grounded-sam" in data["skipped"]["dino_l2_masked"]
    assert main(["score", str(run), "--metrics", "dino_l2_masked", "--dino", str(backbones["dino"])]) == 2
    assert "no container was found" in capsys.readouterr().err


def test_explicit_metrics_only(run, backbones):
    assert (
        main(["score", str(run), "--metrics", "clip_score,oracle_step_faithfulness", "--clip", str(backbones["clip"])])
        == 0
    )
    assert list(_metrics(run)["metrics"]) == ["clip_score", "oracle_step_faithfulness"]


def test_a_run_without_a_toy_recipe_and_no_backbone_names_the_fix(run, capsys):
    recipe = load_recipe(run / "recipe.yaml")
    recipe.model_copy(update={"description": "my own recipe"}).save(run / "recipe.yaml")
    assert main(["score", str(run)]) == 2
    err = capsys.readouterr().err
    assert (
        "no metric can run" in err
        and "hf download openai/clip-vit-base-patch32" in err
        and "--dino ID_OR_FOLDER" in err
    )
    assert main(["score", str(run), "--metrics", "oracle_step_faithfulness"]) == 2
    assert "need a Toy Kitchen run" in capsys.readouterr().err
    assert not (run / "metrics.json").exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("empty", "is not a run folder (no settings.json)"),
        ("parent", "It holds the runs run: score each"),
        ("missing frame", "lacks frame_02.png: it is incomplete"),
        ("unknown metric", "unknown metric(s) ['clip_scor']"),
        ("clip offline", "hf download openai/clip-vit-base-patch32"),
        ("named clip missing", "is not an existing folder, nor a valid Hugging Face Hub id"),
        ("judge without model", "pass --judge MODEL"),
    ],
)
def test_errors_name_the_fix(run, tmp_path, capsys, change, message):
    argv = ["score", str(run)]
    if change == "empty":
        argv = ["score", str(tmp_path / "nothing")]
    elif change == "parent":
        argv = ["score", str(tmp_path)]
    elif change == "missing frame":
        (run / "frame_02.png").unlink()
    elif change == "named clip missing":
        argv += ["--clip", str(tmp_path / "no-such-clip")]
    else:
        argv += [
            "--metrics",
            {
                "unknown metric": "clip_scor",
                "clip offline": "clip_score",
                "judge without model": "judge_step_faithfulness",
            }[change],
        ]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_a_folder_from_before_recipe_yaml_reads_the_texts_of_settings(run):
    (run / "recipe.yaml").unlink()
    found = read_run(run)
    assert found.recipe.texts == load_recipe(TOY).texts and found.toy is not None
    assert main(["score", str(run)]) == 0


def test_generating_again_removes_the_old_metrics(run):
    assert main(["score", str(run)]) == 0
    again = ["generate", str(TOY), "--model", "tiny", "--steps", "2", "--seed", "1", "--out", str(run), "--overwrite"]
    assert main(again) == 0
    assert not (run / "metrics.json").exists() and "<h2>Metrics</h2>" not in (run / "index.html").read_text(
        encoding="utf-8"
    )


def test_judge_from_the_command_line(run):
    server = FakeOpenAI()
    try:
        server.script = [
            ("content", json.dumps({"reason": "noise", "step_shown": False, "ingredients": []})),
            *[
                (
                    "content",
                    json.dumps(
                        {"reason": "noise", "step_shown": True, "ingredients": [{"name": "broccoli", "visible": True}]}
                    ),
                )
            ]
            * 3,
        ]
        assert (
            main(
                [
                    "score",
                    str(run),
                    "--metrics",
                    "judge_step_faithfulness,judge_ingredient_presence",
                    "--judge",
                    "stub-vision",
                    "--judge-base-url",
                    server.url,
                    "--judge-prompt",
                    "told",  # the scripted answers are the told prompt's (one per frame)
                ]
            )
            == 0
        )
    finally:
        server.close()
    data = _metrics(run)["metrics"]
    assert data["judge_step_faithfulness"]["per_item"] == [0.0, 1.0, 1.0, 1.0]
    assert data["judge_ingredient_presence"]["record"]["model"] == "stub-vision"
    assert data["judge_ingredient_presence"]["record"]["prompt"] == "told"


# ---- runs of the Toy Kitchen models ---------------------------------------------------------------


def test_a_run_of_the_toy_models_is_scored_with_the_toy_kitchen_clip_and_the_oracle(toy_made, tmp_path, backbones):
    from cooklab.models import toy_clip

    run = Path(shutil.copytree(toy_made, tmp_path / "run"))
    assert main(["score", str(run)]) == 0
    data = _metrics(run)
    assert list(data["metrics"]) == [*ORACLE_METRICS, *CLIP_METRICS]
    assert set(data["skipped"]) == {"dino"}  # DINOv2 is not shipped; nothing is skipped for CLIP
    found = read_run(run)
    expected = score(found.images, found.toy, CLIP_METRICS, clip=toy_clip(), device="cpu")
    for name, result in expected.items():
        record = data["metrics"][name]["record"]
        assert record["backbone"] == result.record["backbone"] and record["backbone"].startswith("toy_clip")
        np.testing.assert_allclose(data["metrics"][name]["per_item"], result.per_item, atol=1e-6)
    assert main(["score", str(run), "--clip", str(backbones["clip"])]) == 0  # an explicit --clip wins
    assert {m["record"]["backbone"] for n, m in _metrics(run)["metrics"].items() if n in CLIP_METRICS} == {
        str(backbones["clip"])
    }


def test_clip_toy_names_the_toy_kitchen_clip_for_any_run(run):
    assert main(["score", str(run), "--metrics", "clip_score", "--clip", "toy"]) == 0  # a run of the tiny models
    assert _metrics(run)["metrics"]["clip_score"]["record"]["backbone"].startswith("toy_clip")


def test_a_run_of_the_toy_models_finds_its_container_masks_with_the_oracle(toy_made, tmp_path):
    run = Path(shutil.copytree(toy_made, tmp_path / "run"))
    recipe = load_recipe(run / "recipe.yaml")
    recipe.model_copy(update={"description": "my own recipe"}).save(run / "recipe.yaml")  # no Toy Kitchen recipe
    found = read_run(run)
    assert found.toy is None and toy_run(found)
    masks = frame_masks(found, None, "cpu")  # the default: the oracle reads the toy models' pictures
    explicit = frame_masks(found, "oracle", "cpu")
    assert any(m is not None for m in masks) and all(
        (m is None and e is None) or np.array_equal(m, e) for m, e in zip(masks, explicit)
    )
    found.settings["model"] = "tiny"  # the same frames said to be drawn by another model: no masks by default
    assert frame_masks(found, None, "cpu") is None and not toy_run(found)


def test_cli_defaults_match_the_metrics():
    assert SCORE_DEFAULTS == {
        "clip": metrics.DEFAULT_CLIP,
        "dino": metrics.DEFAULT_DINO,
        "batch_size": DEFAULT_BATCH_SIZE,
    }


# ---- batching ------------------------------------------------------------------------


def _pictures(n: int = 5) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (40, 48, 3), dtype=np.uint8) for _ in range(n)]


def test_batched_features_equal_unbatched_on_the_cpu():
    images, clip, dino = _pictures(), tiny_random_clip(), tiny_random_dino()
    masks = [None, np.ones((40, 48)), None, np.eye(40, 48), None]
    one = clip_backbone(clip, batch_size=1, device="cpu").image_features(images)
    for size in (2, 5, 32):
        # CLIP's matrix products of another batch shape may round the last bit differently; DINOv2's do not here
        torch.testing.assert_close(clip_backbone(clip, batch_size=size).image_features(images), one, rtol=0, atol=1e-6)
    one = dino_backbone(dino, batch_size=1, device="cpu").embeddings(images, masks)
    for size in (2, 5):
        torch.testing.assert_close(
            dino_backbone(dino, batch_size=size).embeddings(images, masks), one, rtol=0, atol=1e-6
        )
    one = score(
        images, [f"step {i}" for i in range(5)], ["clip_image_score", "dino_l2"], clip=clip, dino=dino, batch_size=1
    )
    batched = score(
        images, [f"step {i}" for i in range(5)], ["clip_image_score", "dino_l2"], clip=clip, dino=dino, batch_size=4
    )
    for name in one:
        np.testing.assert_allclose(batched[name].per_item, one[name].per_item, rtol=0, atol=1e-4)


def test_device_auto_and_bad_batch_sizes():
    clip = clip_backbone(tiny_random_clip(), device="auto")
    assert clip.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match="positive number"):
        clip_backbone(tiny_random_clip(), batch_size=0).image_features(_pictures(1))
