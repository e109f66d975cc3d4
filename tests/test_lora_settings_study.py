"""The LoRA v3 groundwork (issue 30): training data from a recipe generator, held-out seeds never trained on, and the
LoRA settings study's rows, pairing and choice (``cooklab.training.settings_study``, ``benchmarks/
lora_settings_study.py``).

The generator tests use a *designed* generator whose texts and scenes no other generator makes; the study's choice is
pinned on designed rows whose gains and intervals are worked out by hand in each test.
"""

import importlib.util
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from pydantic import ValidationError

from cooklab import ConfigError
from cooklab.toykitchen import random_toy_recipe, render
from cooklab.training import settings_study as study
from cooklab.training.config import FIRST_TRAINING_SEED, DataSource, ToyData, load_train_config
from cooklab.training.data import RECIPE_GENERATORS, load_examples, write_toy_folder

ROOT = Path(__file__).resolve().parent.parent


def designed(seed: int, n_steps: int):
    """A recipe no other generator makes: the scenes of ``random_toy_recipe(seed + 1)``, texts naming the seed."""
    toy = random_toy_recipe(seed + 1, n_steps)
    return replace(toy, texts=tuple(f"Designed step {n} of recipe {seed}." for n in range(1, n_steps + 1)), seed=seed)


def pixels(image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))


# ---- training data from a recipe generator --------------------------------------------------------------------


def test_a_toy_folder_holds_the_generators_texts_and_its_true_scenes_rendered(tmp_path):
    root = write_toy_folder(tmp_path / "data", count=2, steps=3, first_seed=6000, size=32, recipes=designed)
    for seed in (6000, 6001):
        recipe = json.loads((root / f"toy-{seed}" / "recipe.json").read_text())
        assert [s["text"] for s in recipe["steps"]] == list(designed(seed, 3).texts)
        for n, scene in enumerate(designed(seed, 3).scenes, start=1):
            written = Image.open(root / f"toy-{seed}" / f"step_{n:02d}.png")
            assert np.array_equal(pixels(written), pixels(render(scene, 32).image))
    (example, _) = load_examples(DataSource(folder=root))  # read back as training examples: texts and pictures
    assert example.recipe.texts == list(designed(6000, 3).texts)
    assert all(
        np.array_equal(pixels(a), pixels(render(s, 32).image))
        for a, s in zip(example.images(), designed(6000, 3).scenes)
    )


def test_a_config_names_its_generator_and_the_examples_render_its_scenes(monkeypatch):
    monkeypatch.setitem(RECIPE_GENERATORS, "designed", designed)
    examples = load_examples(DataSource(toy={"count": 2, "steps": 3, "first_seed": 7000, "generator": "designed"}))
    assert [e.id for e in examples] == ["toy-7000", "toy-7001"]
    for example, seed in zip(examples, (7000, 7001)):
        assert example.recipe.texts == list(designed(seed, 3).texts)
        rendered = [pixels(render(s, 32).image) for s in designed(seed, 3).scenes]
        assert all(np.array_equal(pixels(a), b) for a, b in zip(example.images(32), rendered))


def test_an_unknown_generator_is_refused_naming_the_known_ones():
    with pytest.raises(
        ConfigError, match=r"'random_recipe_v9' is no recipe generator: choose from \['random_recipe_v3', 'random_toy"
    ):
        load_examples(DataSource(toy={"count": 1, "generator": "random_recipe_v9"}))


def test_world_v3_recipes_are_a_named_generator():
    from cooklab.toykitchen.recipes_v3 import random_recipe_v3

    (example,) = load_examples(DataSource(toy={"count": 1, "steps": 5, "generator": "random_recipe_v3"}))
    truth = random_recipe_v3(FIRST_TRAINING_SEED, 5)
    assert example.recipe.texts == list(truth.texts) and example.recipe.texts != list(
        random_toy_recipe(FIRST_TRAINING_SEED, 5).texts
    )


# ---- held-out seeds ---------------------------------------------------------------------------------------------


def test_training_seeds_below_the_held_out_line_are_refused(tmp_path):
    with pytest.raises(ValidationError, match="held out for evaluation"):
        ToyData(count=10, first_seed=FIRST_TRAINING_SEED - 1)
    with pytest.raises(ConfigError, match="held out for evaluation"):
        write_toy_folder(tmp_path / "data", count=1, first_seed=1000)
    assert not (tmp_path / "data").exists()
    assert ToyData(count=10).first_seed == FIRST_TRAINING_SEED


def test_no_evaluation_recipe_is_a_training_recipe():
    evaluation = study.evaluation_seeds()
    assert "toykitchen_study.yaml" in evaluation  # the configs are read, not assumed
    assert all(max(seeds) < FIRST_TRAINING_SEED for seeds in evaluation.values()), evaluation
    demo = yaml.safe_load((ROOT / "data" / "toykitchen" / "recipes" / "toy_kitchen.yaml").read_text())
    assert "seed 971" in demo["description"] and 971 < FIRST_TRAINING_SEED
    for config in ("data/toykitchen/lora/train.yaml", "data/toykitchen/lora_v3_train.yaml"):
        assert load_train_config(ROOT / config).data.toy.first_seed >= FIRST_TRAINING_SEED


def test_validation_recipes_are_held_out_and_apart_from_the_evaluations():
    evaluation = study.evaluation_seeds()
    seeds = study.check_validation_seeds(study.VALIDATION_FIRST_SEED, 25, evaluation)
    assert seeds == range(3000, 3025)
    with pytest.raises(ConfigError, match=r"share seeds with the evaluation config\(s\) \[.*toykitchen_study.yaml"):
        study.check_validation_seeds(1010, 25, evaluation)
    with pytest.raises(ConfigError, match="keep them in 0..4999"):
        study.check_validation_seeds(FIRST_TRAINING_SEED - 10, 25, evaluation)


# ---- the study's rows, pairing and choice -----------------------------------------------------------------------

GRID = study.StudyGrid(sigma=("uniform", "shifted"), learning_rates=(1e-3,), targets=("attention",), steps=(10, 20))
RECIPES = ["r0", "r1", "r2", "r3"]
PAIRS = [(r, s) for r in RECIPES for s in (0, 1)]


def rows_of(label, consistency, faithfulness, skip=()):
    """One row per pair: consistency(recipe) and faithfulness(recipe), designed below."""
    variant, steps = GRID.rows().get(label, (None, 0))
    return [
        study.result_row(
            label,
            r,
            s,
            {study.CONSISTENCY: consistency(r), study.FAITHFULNESS: faithfulness(r), "oracle_state_accuracy": None},
            variant,
            steps,
        )
        for r, s in PAIRS
        if (r, s) not in skip
    ]


def designed_rows():
    u10, u20, s10, s20 = GRID.rows()  # the labels, in grid order
    base = rows_of(study.BASELINE, lambda r: 0.1, lambda r: 0.5)
    rows = base
    rows += rows_of(u10, lambda r: 0.6, lambda r: 0.0)  # gain +0.5 everywhere, faithfulness -0.5: excluded
    rows += rows_of(u20, lambda r: 1.0 if r in ("r0", "r1") else 0.0, lambda r: 0.5)[::-1]  # +0.9 / -0.1: mean 0.4
    rows += rows_of(s10, lambda r: 0.35, lambda r: 0.5)  # +0.25 on every pair: interval [0.25, 0.25]
    rows += rows_of(s20, lambda r: 0.7, lambda r: 0.5, skip={("r3", 1)})  # +0.6 but a pair missing: incomplete
    return rows, (u10, u20, s10, s20)


def test_rows_pair_by_recipe_and_seed_and_the_intervals_resample_recipes():
    rows, (u10, u20, s10, s20) = designed_rows()
    t = study.study_table(rows, list(GRID.rows()))
    by = {row["label"]: row for row in t["rows"]}
    gain = lambda label: by[label]["deltas"][study.CONSISTENCY]  # noqa: E731
    assert gain(u20)[0] == pytest.approx(0.4) and gain(u20)[4] == 8  # rows written in reverse: paired by key
    # 4 recipes, two of them at -0.1: all four drawn from those has probability 1/16 > 2.5 %
    assert gain(u20)[1] == pytest.approx(-0.1)
    assert gain(s10)[:3] == pytest.approx((0.25, 0.25, 0.25))
    assert gain(s20)[0] == pytest.approx(0.6) and gain(s20)[4] == 7  # only the pairs both rows have
    assert by[u10]["deltas"][study.FAITHFULNESS][2] == pytest.approx(-0.5)


def test_the_choice_is_the_best_lower_bound_of_complete_rows_that_keep_faithfulness():
    rows, (u10, u20, s10, s20) = designed_rows()
    choice = study.choose(study.study_table(rows, list(GRID.rows())), GRID, planned_pairs=8)
    assert (choice.label, choice.steps, choice.variant.sigma) == (s10, 10, "shifted")
    assert choice.gain == pytest.approx((0.25, 0.25, 0.25)) and choice.backed


def test_a_gain_whose_interval_reaches_zero_is_not_backed():
    rows, (u10, u20, s10, s20) = designed_rows()
    kept = [r for r in rows if r["label"] in (study.BASELINE, u20)]
    choice = study.choose(study.study_table(kept, list(GRID.rows())), GRID, planned_pairs=8)
    assert choice.label == u20 and not choice.backed
    assert study.choose(study.study_table(kept[:8], list(GRID.rows())), GRID, planned_pairs=8) is None


def test_each_run_checkpoints_at_every_step_count_and_keeps_them():
    base = load_train_config(ROOT / "data" / "toykitchen" / "lora" / "train.yaml")
    variant = study.Variant("uniform", 2e-3, "attention+feed_forward")
    config = variant.train_config(base, Path("/tmp/run"), (4, 6))
    t = config.train
    assert (t.steps, t.checkpoint_every, t.keep_checkpoints) == (6, 2, 3)  # steps 2, 4, 6 kept: 4 and 6 among them
    assert (t.sigma_sampling, t.sigma_shift, t.learning_rate) == ("uniform", False, 2e-3)
    assert config.lora.target_modules == "attention+feed_forward" and config.data == base.data


def test_the_shipped_yaml_is_the_base_with_the_chosen_settings(tmp_path):
    base_file = ROOT / "data" / "toykitchen" / "lora" / "train.yaml"  # shifted logit-normal, attention, 1500 steps
    choice = study.Choice("x", study.Variant("uniform", 2e-3, "attention+feed_forward"), 750, (0.1, 0.05, 0.15),
                          (0.0, -0.1, 0.1), True)  # fmt: skip
    text = study.shipped_yaml(base_file, choice, {"generator": "random_toy_recipe", "count": 300})
    assert text.startswith("# chosen by") and "+0.100 [+0.050, +0.150] (clear of 0)" in text
    (tmp_path / "train.yaml").write_text(text)
    config = load_train_config(tmp_path / "train.yaml")
    assert (config.train.sigma_sampling, config.train.sigma_shift) == ("uniform", False)
    assert (config.train.steps, config.train.learning_rate) == (750, 2e-3)
    assert config.lora.target_modules == "attention+feed_forward" and config.data.toy.count == 300
    shifted = replace(choice, variant=study.Variant("shifted", 2e-3, "attention"))  # on a uniform, unshifted base
    (tmp_path / "v3.yaml").write_text(study.shipped_yaml(ROOT / "data" / "toykitchen" / "lora_v3_train.yaml", shifted))
    train = load_train_config(tmp_path / "v3.yaml").train
    assert (train.sigma_sampling, train.sigma_shift, train.logit_std) == ("logit_normal", True, 1.0)


# ---- the study end to end, on the tiny model --------------------------------------------------------------------


def load_script():
    spec = importlib.util.spec_from_file_location(
        "lora_settings_study", ROOT / "benchmarks" / "lora_settings_study.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


def tiny_config(tmp_path) -> Path:
    path = tmp_path / "train.yaml"
    path.write_text(
        "name: tiny\nout: run\nmodel: tiny\ndata: {toy: {count: 2, steps: 2}}\nlora: {rank: 2}\n"
        "canvas: {height: 32, width: 32}\ntrain: {steps: 2, warmup_steps: 0}\n"
    )
    return path


def test_the_smoke_study_runs_writes_its_rows_and_resumes_only_what_is_missing(tmp_path):
    script, out = load_script(), tmp_path / "study"
    args = ["--smoke", "--config", str(tiny_config(tmp_path)), "--out", str(out)]
    choice = script.main(args)
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    labels = [study.BASELINE, *script.SMOKE_GRID.rows()]
    assert sorted({r["label"] for r in rows}) == sorted(labels)
    assert sorted((r["label"], r["recipe"], r["seed"]) for r in rows) == sorted(
        (label, f"toy-{seed}", 0) for label in labels for seed in (3000, 3001)
    )
    summary = json.loads((out / "choice.json").read_text())
    assert summary["complete"] and summary["chosen"]["label"] == choice.label
    run = out / "runs" / choice.variant.name / "checkpoints" / f"step-{choice.steps:06d}" / "adapter"
    weights = "pytorch_lora_weights.safetensors"
    assert (out / "chosen" / "adapter" / weights).read_bytes() == (run / weights).read_bytes()
    assert load_train_config(out / "chosen" / "train.yaml").train.steps == choice.steps

    job = out / "rows" / f"{choice.variant.name}.jsonl"
    lines = job.read_text().splitlines()
    job.write_text("\n".join(lines[:-1]) + "\n")  # a job stopped before its last unit
    script.main(args)
    again = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert again == rows  # the missing unit drawn again, the same numbers; nothing else twice


def test_a_study_past_its_time_limit_stops_and_says_so(tmp_path):
    script, out = load_script(), tmp_path / "study"
    assert (
        script.main(["--smoke", "--config", str(tiny_config(tmp_path)), "--out", str(out), "--max-minutes", "0"])
        is None
    )
    assert json.loads((out / "choice.json").read_text()) == {
        "complete": False,
        "planned_pairs": 2,
        "rows": 0,
        "chosen": None,
    }


def test_a_checkpoint_written_before_the_generator_field_still_resumes(tmp_path):
    from cooklab.training import train_lora

    config = load_train_config(tiny_config(tmp_path))
    config = config.model_copy(update={"train": config.train.model_copy(update={"checkpoint_every": 1})})
    train_lora(config, progress=False)
    saved = tmp_path / "run" / "checkpoints" / "step-000002" / "config.json"
    old = json.loads(saved.read_text())
    del old["data"]["toy"]["generator"]  # as a run before issue 30 wrote it
    saved.write_text(json.dumps(old))
    longer = config.model_copy(update={"train": config.train.model_copy(update={"steps": 3})})
    assert train_lora(longer, progress=False).resumed_from == 2
