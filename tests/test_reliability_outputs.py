"""Nothing lost, nothing silently wrong (issue 25): output folders, atomic adapter swaps, honest training logs,
evaluation folders and their lock. One test per finding (1, 2, 5, 6, 8, 14); fast: tiny models, few steps, CPU."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import PIL.Image
import pytest
import yaml

import cooklab
from cooklab.cli import main
from cooklab.errors import ConfigError
from cooklab.evaluation import evaluate, load_config
from cooklab.evaluation.recipe_sets import load_recipes
from cooklab.evaluation.run import units
from cooklab.report import write_run
from cooklab.training import TrainLoraConfig, train_lora

RECIPES = Path(__file__).resolve().parent.parent / "data" / "recipes"
OATS = RECIPES / "overnight_oats.yaml"  # 3 steps
STEPS = ["Put a white bowl on the table", "Crack two eggs into the bowl"]


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _no_model(monkeypatch, *where: str) -> None:
    """Make loading a model fail loudly: a refusal must come before it."""

    def load(*args, **kwargs):
        raise AssertionError("a model was loaded before the output path was checked")

    for name in where:
        monkeypatch.setattr(name, load)


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


# ---- finding 1: output folders are never clobbered ------------------------------------------


def test_finding_1_generate_never_clobbers_a_folder_and_overwrites_only_its_own_run(tmp_path, monkeypatch, capsys):
    others = tmp_path / "others"
    others.mkdir()
    (others / "frame_00.png").write_bytes(b"my own picture")
    (others / "settings.json").write_text('{"mine": true}')
    before = _files(others)
    with monkeypatch.context() as m:
        _no_model(m, "cooklab.cli.generate.load_pipeline")
        assert main(["generate", str(OATS), "--model", "tiny", "--steps", "2", "--out", str(others)]) == 2
    assert "not an earlier run of cooklab" in capsys.readouterr().err and _files(others) == before

    run = tmp_path / "run"
    assert main(["generate", str(OATS), "--model", "tiny", "--steps", "2", "--out", str(run)]) == 0
    assert sorted(p.name for p in run.glob("frame_*.png")) == ["frame_00.png", "frame_01.png", "frame_02.png"]
    (run / "mine.txt").write_text("notes")
    (run / "frame_07.png").write_bytes(b"not cooklab's")  # a frame name the run's settings.json does not list
    (run / "metrics.json").write_text("{}")  # as cooklab score writes it: it measured the earlier frames
    first = _files(run)
    with monkeypatch.context() as m:
        _no_model(m, "cooklab.cli.generate.load_pipeline")
        assert main(["generate", str(OATS), "--model", "tiny", "--steps", "2", "--out", str(run)]) == 2
    assert "pass --overwrite" in capsys.readouterr().err and _files(run) == first

    two = tmp_path / "two.yaml"
    cooklab.Recipe.from_steps(STEPS).save(two)
    assert main(["generate", str(two), "--model", "tiny", "--steps", "2", "--out", str(run), "--overwrite"]) == 0
    assert sorted(p.name for p in run.glob("frame_*.png")) == ["frame_00.png", "frame_01.png", "frame_07.png"]
    assert (run / "mine.txt").read_text() == "notes" and (run / "frame_07.png").read_bytes() == b"not cooklab's"
    assert not (run / "metrics.json").exists()
    assert json.loads((run / "settings.json").read_text())["recipe"]["steps"] == 2


def test_finding_1_write_run_refuses_an_earlier_run_without_overwrite(rd, tmp_path):
    out = rd(STEPS, seed=0, num_inference_steps=2, height=64, width=64, progress=False)
    folder = tmp_path / "run"
    write_run(out, folder, model="tiny", pipeline="recipe-diffusion")
    (folder / "index.html").write_text("edited")
    with pytest.raises(ConfigError, match=r"overwrite=True"):
        write_run(out, folder, model="tiny", pipeline="recipe-diffusion")
    assert (folder / "index.html").read_text() == "edited"
    write_run(out, folder, model="tiny", pipeline="recipe-diffusion", overwrite=True)
    assert (folder / "index.html").read_text() != "edited"
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("x")
    with pytest.raises(ConfigError, match="not an earlier run"):
        write_run(out, tmp_path / "notes", model="tiny", pipeline="recipe-diffusion", overwrite=True)
    assert sorted(p.name for p in (tmp_path / "notes").iterdir()) == ["todo.txt"]


def test_finding_1_gallery_and_demo_replace_only_their_own_earlier_output(tmp_path, monkeypatch):
    from cooklab.gallery import GalleryConfig, write_gallery

    _no_model(monkeypatch, "cooklab.gallery._ablation_rows", "cooklab.demo.load_pipeline")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "gallery.md").write_text("# My gallery\n")  # not cooklab's
    with pytest.raises(ConfigError, match="not a gallery page of cooklab"):
        write_gallery(GalleryConfig(out=docs, screenshots=None, overwrite=True))
    (docs / "gallery.md").write_text("# Gallery\n\n... then `cooklab gallery` writes this page ...\n")
    with pytest.raises(ConfigError, match="earlier gallery of cooklab: pass overwrite=True"):
        write_gallery(GalleryConfig(out=docs, screenshots=None))
    assert sorted(p.name for p in docs.iterdir()) == ["gallery.md"]

    monkeypatch.setattr(  # ablation rows without the models: one grey frame per step
        "cooklab.gallery._ablation_rows",
        lambda pipeline, recipe, config, device: [("row", [PIL.Image.new("RGB", (32, 32))] * len(recipe), "c")],
    )
    shots = tmp_path / "shots" / "04_flexible_rope"
    shots.mkdir(parents=True)
    PIL.Image.new("RGB", (40, 20)).save(shots / "explorer0_after.png")
    write_gallery(GalleryConfig(out=docs, screenshots=tmp_path / "shots", overwrite=True))
    images = docs / "img" / "gallery"
    (images / "mine.png").write_bytes(b"not the gallery's")
    write_gallery(GalleryConfig(out=docs, screenshots=None, overwrite=True))  # no screenshots this time
    assert sorted(p.name for p in images.iterdir()) == [
        "ablations_cookanything.png",
        "ablations_recipe_diffusion.png",
        "mine.png",
    ]

    demo = tmp_path / "demo"
    demo.mkdir()
    (demo / "index.html").write_text("my page")
    assert main(["demo", "--out", str(demo), "--overwrite"]) == 2
    assert (demo / "index.html").read_text() == "my page"


# ---- finding 8: output paths of the wrong kind, refused before any model loads ---------------


def test_finding_8_paths_of_the_wrong_kind_are_refused_before_any_model(tmp_path, monkeypatch, capsys):
    afile = tmp_path / "afile"
    afile.write_text("mine")
    _no_model(monkeypatch, "cooklab.cli.generate.load_pipeline", "cooklab.demo.load_pipeline")
    assert main(["generate", str(OATS), "--model", "tiny", "--out", str(afile)]) == 2
    assert f"{afile} is a file" in capsys.readouterr().err
    assert main(["demo", "--out", str(afile)]) == 2
    assert f"{afile} is a file" in capsys.readouterr().err
    assert main(["plan", str(OATS), "--agent", "rules", "--out", str(tmp_path)]) == 2
    assert f"--out {tmp_path} is a folder" in capsys.readouterr().err
    assert main(["plan", str(OATS), "--agent", "rules", "--recipe-out", str(tmp_path)]) == 2
    assert "--recipe-out" in capsys.readouterr().err
    config = load_config(_eval_config(tmp_path, out="afile"))
    with pytest.raises(ConfigError, match="is a file"):
        evaluate(config, progress=False)
    assert afile.read_text() == "mine"


# ---- finding 2: the adapter is swapped in by renames, the old one kept until then -------------


def _train_config(tmp_path: Path, **train) -> TrainLoraConfig:
    return TrainLoraConfig(
        name="t",
        out=tmp_path / "run",
        model="tiny",
        data={"toy": {"count": 2, "steps": 2}},
        lora={"rank": 2},
        canvas={"height": 32, "width": 32},
        train={"steps": 2, "checkpoint_every": 1, "learning_rate": 1e-3, **train},
    )


def test_finding_2_an_adapter_is_at_hand_at_every_moment_of_the_swap(tmp_path, monkeypatch):
    import shutil

    from cooklab.cookanything.lora import WEIGHT_NAME

    cfg = _train_config(tmp_path)
    train_lora(cfg, progress=False)
    out = Path(cfg.out)
    gaps = []

    def watched(function):
        def call(*args, **kwargs):
            result = function(*args, **kwargs)
            if not any((out / name / WEIGHT_NAME).is_file() for name in ("adapter", "adapter.old")):
                gaps.append((function.__name__, [str(a) for a in args]))
            return result

        return call

    monkeypatch.setattr(shutil, "rmtree", watched(shutil.rmtree))
    monkeypatch.setattr(os, "replace", watched(os.replace))
    train_lora(cfg, resume=False, progress=False)
    monkeypatch.undo()
    assert gaps == [] and (out / "adapter" / WEIGHT_NAME).is_file() and not (out / "adapter.old").exists()

    os.replace(out / "adapter", out / "adapter.old")  # as if killed between the swap's two renames
    train_lora(cfg, progress=False)  # resumes at step 2 = train.steps: only the adapter is written again
    assert (out / "adapter" / WEIGHT_NAME).is_file() and not (out / "adapter.old").exists()


# ---- finding 6: loss.jsonl holds each step once; --steps below a checkpoint is refused -------


class _Killed(Exception):
    """A run stopped from its callback, as a kill would stop it."""


def _logged(out: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (out / "loss.jsonl").read_text().splitlines()]


def test_finding_6_the_loss_log_never_repeats_a_step_and_a_run_is_never_trained_backwards(tmp_path):
    cfg = _train_config(tmp_path, steps=3, checkpoint_every=3)
    out = Path(cfg.out)

    def stop_at_2(step, loss):
        if step == 2:
            raise _Killed  # killed before the first checkpoint (step 3)

    with pytest.raises(_Killed):
        train_lora(cfg, progress=False, callback=stop_at_2)
    assert _logged(out) == [1, 2] and not (out / "checkpoints").exists()
    train_lora(cfg, progress=False)  # no checkpoint: a fresh start, and a fresh log
    assert _logged(out) == [1, 2, 3]
    train_lora(cfg, resume=False, progress=False)  # --no-resume over a finished run
    assert _logged(out) == [1, 2, 3]

    info = (out / "training.json").read_text()
    fewer = cfg.model_copy(update={"train": cfg.train.model_copy(update={"steps": 2})})
    with pytest.raises(ConfigError, match=r"at step 3, past train.steps=2.*--steps 3 or more.*--no-resume"):
        train_lora(fewer, progress=False)
    assert (out / "training.json").read_text() == info and _logged(out) == [1, 2, 3]
    assert json.loads(info)["steps"] == json.loads(info)["config"]["train"]["steps"] == 3


# ---- findings 5 and 14: evaluate checks its units before config.json, and holds a lock -------


def _eval_config(folder: Path, **changes) -> Path:
    """A one-unit toy evaluation config in ``folder`` (out: folder/out), updated with ``changes``."""
    config = dict(
        name="t",
        out="out",
        generation=dict(num_inference_steps=1, guidance=3.0, true_cfg=3.0, height=64, width=64),
        recipes=dict(toy=dict(count=1, steps=2)),
        seeds=[0],
        methods=[dict(name="independent")],
        metrics=["oracle_container_consistency"],
        tables=[dict(name="T", baseline="independent")],
    )
    config.update(changes)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def test_finding_5_evaluate_refuses_other_units_before_it_writes_config_json(tmp_path, monkeypatch):
    config = load_config(_eval_config(tmp_path))
    (unit,) = units(config, load_recipes(config.recipes))
    unit.folder(config.out).mkdir(parents=True)
    (unit.folder(config.out) / "unit.json").write_text(json.dumps({"generation": "made with other settings"}))
    _no_model(monkeypatch, "cooklab.runs.load_pipeline")
    with pytest.raises(ConfigError, match="another `out:` folder"):
        evaluate(config, progress=False)
    assert not (config.out / "config.json").exists()  # it would describe settings no unit was made with
    assert main(["evaluate", str(tmp_path / "config.yaml"), "--tables-only"]) == 2


class _Generating(Exception):
    """Raised where an evaluation would load its first model: it got past its checks and its lock."""


def test_finding_14_a_second_evaluate_on_one_out_is_refused_and_a_stale_lock_taken_over(tmp_path, monkeypatch):
    config = load_config(_eval_config(tmp_path))
    lock = config.out / "evaluate.lock"
    lock.parent.mkdir()
    lock.write_text(f"{socket.gethostname()} {os.getppid()}\n")  # a running process holds it

    def generating(*args, **kwargs):
        raise _Generating

    monkeypatch.setattr("cooklab.evaluation.run._pipelines", generating)
    with pytest.raises(ConfigError, match=rf"another cooklab evaluate .*process {os.getppid()}.*delete {lock}"):
        evaluate(config, progress=False)
    assert sorted(p.name for p in config.out.iterdir()) == ["evaluate.lock"]

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    lock.write_text(f"{socket.gethostname()} {gone.pid}\n")  # left by a run killed with kill -9
    with pytest.raises(_Generating):
        evaluate(config, progress=False)
    assert not lock.exists() and (config.out / "config.json").is_file()
