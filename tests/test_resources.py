"""cooklab.resources: the shipped files found from any folder, outputs never written into an installed package."""

from pathlib import Path

import pytest

from cooklab import resources
from cooklab.evaluation import load_config
from cooklab.training.config import load_train_config

ROOT = Path(__file__).resolve().parents[1]
SMALL = ROOT / "data" / "eval" / "toy_small.yaml"


def test_the_shipped_folders_are_the_repository_ones():
    assert resources.data_dir() == ROOT / "data" and resources.course_dir() == ROOT / "notebooks"
    assert resources.shipped("toykitchen", "lora", "adapter").is_dir()
    assert not resources.installed_data()  # a checkout: cooklab/data links to data/


@pytest.mark.parametrize(
    "name", ["toy_small", "toy_small.yaml", "data/eval/toy_small.yaml", "../data/eval/toy_small.yaml"]
)
def test_an_evaluation_config_by_name_from_another_folder(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resources.find_shipped(name, "eval") == SMALL
    assert load_config(name).name == "toy-small"


def test_a_name_that_is_not_shipped_stays_as_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resources.find_shipped("nope", "eval") == Path("nope")
    assert resources.find_shipped("mine/toy_small.yaml", "eval") == Path("mine/toy_small.yaml")
    (tmp_path / "toy_small.yaml").write_text("name: mine\n")
    assert resources.find_shipped("toy_small.yaml", "eval") == Path("toy_small.yaml")  # the user's file first


def test_the_shipped_training_config_from_another_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_train_config("data/toykitchen/lora/train.yaml")
    assert config.out == ROOT / "outputs" / "lora" / "toykitchen"  # the checkout's outputs/, as the file says


def test_a_config_read_from_an_installed_wheel_writes_under_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(resources, "installed_data", lambda: True)
    assert load_config("toy_small").out == tmp_path / "outputs" / "eval" / "toy-small"
    assert load_train_config("data/toykitchen/lora/train.yaml").out == tmp_path / "outputs" / "lora" / "toykitchen"
    own = tmp_path / "mine.yaml"
    own.write_text(SMALL.read_text(encoding="utf-8").replace("../../outputs/eval/toy-small", "out"))
    assert load_config(own).out == tmp_path / "out"  # a user's config: relative to its own folder, as always


def test_the_shipped_study_is_the_benchmark_run():
    """Notebooks 07 and 08 read the study through cooklab.resources (inside the wheel); it must be the run that
    docs/results.md reports, byte for byte."""
    shipped = resources.shipped("eval", "results", "toykitchen_study.jsonl")
    assert shipped.read_bytes() == (ROOT / "benchmarks" / "results" / "toykitchen_study.jsonl").read_bytes(), (
        "data/eval/results/toykitchen_study.jsonl differs from benchmarks/results/toykitchen_study.jsonl: copy the "
        "benchmark's file over it after a new run"
    )
