"""The pure helpers of cooklab/evaluation, pinned value by value: the store's names and keys, row labels, configs.

Fast (no model): what a unit's folder is called, how a row is labelled, which configs are refused.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cooklab.errors import ConfigError
from cooklab.evaluation import read_results
from cooklab.evaluation.config import EvalConfig, MethodSpec, RecipeSource
from cooklab.evaluation.run import rows, units
from cooklab.evaluation.store import Unit, frame_path, key, load_frames, load_unit, save_frames, save_unit, slug


def config(tmp_path, methods=({"name": "independent"},), **changes) -> EvalConfig:
    """A small config (two Toy Kitchen recipes, two seeds) with ``methods``, updated with ``changes``."""
    fields = dict(
        name="t",
        out=tmp_path / "out",
        recipes={"toy": {"count": 2, "first_seed": 7}},
        seeds=[0, 1],
        methods=list(methods),
        metrics=["oracle_step_faithfulness"],
    )
    return EvalConfig(**(fields | changes))


# ---- the store ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("cookanything lam=0.5", "cookanything_lam-0.5"),
        ("sd_regional alpha=0.3, lam=1.0", "sd_regional_alpha-0.3_lam-1.0"),
        ("a/b\\c:d", "a_b_c_d"),
        ("  x+y.z-1  ", "x+y.z-1"),
        ("///", "row"),
        ("Xmas Tree X", "Xmas_Tree_X"),  # capitals kept; only underscores are stripped from the ends
    ],
)
def test_slug_keeps_letters_digits_dots_plus_and_minus(label, expected):
    assert slug(label) == expected


def test_key_is_the_sha256_of_the_sorted_json_cut_to_16_hex_digits():
    by_hand = hashlib.sha256(b'{"a": 1, "b": [2, 3]}').hexdigest()[:16]
    assert key({"b": [2, 3], "a": 1}) == key({"a": 1, "b": [2, 3]}) == by_hand
    assert key({"a": 1, "b": [3, 2]}) != by_hand and len(key([])) == 16
    # what JSON cannot write is written as its str(): a path by its text
    assert key({"out": Path("/x/y")}) == hashlib.sha256(b'{"out": "/x/y"}').hexdigest()[:16]


def test_a_units_folder_and_frame_files(tmp_path):
    unit = Unit("cookanything lam=0.5", "cookanything", {"lam": 0.5}, "toy-1000", 3, "g")
    method_key = hashlib.sha256(b'["cookanything", {"lam": 0.5}]').hexdigest()[:6]
    assert unit.folder(tmp_path) == tmp_path / "units" / f"cookanything_lam-0.5-{method_key}" / "toy-1000" / "seed3"
    assert frame_path(tmp_path, 0) == tmp_path / "frame_00.png" and frame_path(tmp_path, 12).name == "frame_12.png"


def test_a_unit_is_finished_only_with_its_record_and_the_same_generation(tmp_path):
    unit = Unit("independent", "independent", {}, "toy-7", 0, "generation-a")
    assert load_unit(unit, tmp_path) is None and load_frames(unit, tmp_path, 2) is None
    pictures = [Image.new("RGB", (4, 4), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    save_frames(unit, tmp_path, pictures)
    assert [np.asarray(p).tolist() for p in load_frames(unit, tmp_path, 2)] == [
        np.asarray(p).tolist() for p in pictures
    ]
    assert load_frames(unit, tmp_path, 3) is None  # a frame missing: not there
    assert load_unit(unit, tmp_path) is None  # frames without unit.json: not finished
    save_unit(unit, tmp_path, {"generation": "generation-a", "metrics": {"x": {"value": math.nan}}})
    record = load_unit(unit, tmp_path)
    assert record["generation"] == "generation-a" and math.isnan(record["metrics"]["x"]["value"])
    other = Unit("independent", "independent", {}, "toy-7", 0, "generation-b")
    with pytest.raises(ConfigError, match="was generated with other settings"):
        load_unit(other, tmp_path)


def test_read_results_skips_blank_lines(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text('{"a": 1}\n\n  \n{"a": 2}\n', encoding="utf-8")
    assert read_results(path) == [{"a": 1}, {"a": 2}]


# ---- rows and units -----------------------------------------------------------------------------------


def test_rows_are_labelled_by_name_or_label_and_the_swept_keys_only(tmp_path):
    methods = [
        {"name": "independent"},
        {"name": "cookanything", "params": {"cscc": True}, "grid": {"lam": [0.0, 0.5], "alpha": [1, 2]}},
        {"name": "cookanything", "label": "no SRC", "params": {"regional": False}},
    ]
    found = rows(config(tmp_path, methods))
    assert [r.label for r in found] == [
        "independent",
        "cookanything lam=0.0, alpha=1",
        "cookanything lam=0.0, alpha=2",
        "cookanything lam=0.5, alpha=1",
        "cookanything lam=0.5, alpha=2",
        "no SRC",
    ]
    assert found[2].params == {"cscc": True, "lam": 0.0, "alpha": 2} and found[2].method == "cookanything"
    assert found[5].params == {"regional": False}


def test_units_are_rows_times_recipes_times_seeds_in_that_order(tmp_path):
    methods = [{"name": "independent"}, {"name": "kv_sharing"}]
    todo = units(config(tmp_path, methods), [("r1", None), ("r2", None)])
    assert [(u.label, u.recipe_id, u.seed) for u in todo] == [
        (label, recipe, seed) for label in ("independent", "kv_sharing") for recipe in ("r1", "r2") for seed in (0, 1)
    ]


@pytest.mark.parametrize(
    ("methods", "message"),
    [
        ([{"name": "independent"}, {"name": "independent"}], r"rows \['independent'\] appear twice"),
        ([{"name": "magic"}], "unknown method 'magic'"),
        ([{"name": "independent", "grid": {"lam": [0.5]}}], r"takes no parameter\(s\) \['lam'\]"),
    ],
)
def test_rows_refuse_twice_the_same_label_and_unknown_methods(tmp_path, methods, message):
    with pytest.raises(ConfigError, match=message):
        rows(config(tmp_path, methods))


# ---- configs -------------------------------------------------------------------------------------


def test_a_method_expands_its_grid_over_its_params_in_order():
    spec = MethodSpec(name="cookanything", params={"lam": 9, "cscc": True}, grid={"lam": [0, 1], "alpha": [2]})
    assert spec.points() == [{"lam": 0, "cscc": True, "alpha": 2}, {"lam": 1, "cscc": True, "alpha": 2}]
    assert MethodSpec(name="independent").points() == [{}]


def test_seeds_as_a_count_and_the_defaults(tmp_path):
    made = config(tmp_path, [{"name": "independent"}], seeds=3)
    assert made.seeds == [0, 1, 2] and made.clip == "toy" and made.masks == "oracle"
    assert made.model == {"sd": "toy", "flux": "toy"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"seeds": []}, "seeds"),
        ({"colour": "blue"}, "colour"),  # an unknown field: a typo is refused, not ignored
        ({"methods": [{"name": "cookanything", "params": {"lam": float("nan")}}]}, "params.lam"),
        ({"methods": [{"name": "cookanything", "grid": {"lam": [0.5, float("inf")]}}]}, "grid.lam"),
        ({"methods": [{"name": "cookanything", "grid": {"lam": []}}]}, r"\['lam'\] are empty lists"),
        ({"methods": []}, "methods"),
        ({"recipes": {"toy": {"count": 2}, "folder": "x"}}, "exactly one recipe source"),
        ({"recipes": {"limit": 3}}, "not none"),
    ],
)
def test_configs_refuse_what_cannot_run(tmp_path, change, message):
    with pytest.raises(ValueError, match=message):
        config(tmp_path, **change)


def test_a_recipe_source_names_exactly_one_of_the_four():
    assert RecipeSource(toy={"count": 1}).toy.steps == 4
    with pytest.raises(ValueError, match=r"not \['toy', 'jsonl'\]"):
        RecipeSource(toy={"count": 1}, jsonl="r.jsonl")


def test_a_damaged_frame_names_the_unit_folder_to_delete(tmp_path):
    unit = Unit("independent", "independent", {}, "toy-7", 0, "g")
    save_frames(unit, tmp_path, [Image.new("RGB", (4, 4))] * 2)
    frame_path(unit.folder(tmp_path), 1).write_bytes(b"not a png")
    with pytest.raises(ConfigError, match=r"delete the unit's folder '.*seed0' and run `cooklab evaluate` again"):
        load_frames(unit, tmp_path, 2)


def test_recipegen_folders_read_a_steps_object_and_any_recipe_file(tmp_path):
    from cooklab.evaluation.recipe_sets import read_recipegen

    (tmp_path / "omelette").mkdir()
    (tmp_path / "omelette" / "title.txt").write_text("Omelette\n", encoding="utf-8")
    steps = {"steps": [{"text": "Crack the eggs.", "ingredients": ["egg"]}, "Fry them."]}
    (tmp_path / "omelette" / "steps.json").write_text(json.dumps(steps), encoding="utf-8")
    (tmp_path / "soup").mkdir()
    (tmp_path / "soup" / "title.txt").write_text("Carrot soup", encoding="utf-8")
    (tmp_path / "soup" / "recipe.yaml").write_text("title: Ignored\nsteps: [Boil water., Add carrots.]\n", "utf-8")
    (tmp_path / "soup" / "step1.jpg").write_bytes(b"a picture of the dataset, left alone")
    (tmp_path / "salad").mkdir()
    (tmp_path / "salad" / "steps.txt").write_text("Wash.\n\nToss.\n", encoding="utf-8")
    got = dict(read_recipegen(tmp_path))
    assert list(got) == ["omelette", "salad", "soup"]  # sorted by folder name
    omelette, salad, soup = got["omelette"], got["salad"], got["soup"]
    assert omelette.title == "Omelette" and omelette.texts == ["Crack the eggs.", "Fry them."]
    assert omelette.steps[0].ingredients == ["egg"] and omelette.source == str(tmp_path / "omelette" / "steps.json")
    assert salad.texts == ["Wash.", "Toss."] and salad.source == str(tmp_path / "salad" / "steps.txt")
    assert soup.title == "Carrot soup" and soup.texts == ["Boil water.", "Add carrots."]  # title.txt names the dish


def test_toy_recipes_are_the_seeds_counted_from_first_seed_and_limit_cuts(tmp_path):
    from cooklab.evaluation.recipe_sets import load_recipes
    from cooklab.toykitchen import random_recipe_v3, random_toy_recipe

    got = load_recipes(RecipeSource(toy={"count": 3, "steps": 3, "first_seed": 5}))
    assert got == [(f"toy-{seed}", random_toy_recipe(seed, 3)) for seed in (5, 6, 7)]
    assert [i for i, _ in load_recipes(RecipeSource(toy={"count": 3, "first_seed": 5}, limit=2))] == ["toy-5", "toy-6"]
    v3 = load_recipes(RecipeSource(toy={"count": 2, "steps": 5, "first_seed": 5, "world": "v3"}))
    assert v3 == [(f"toy-v3-{seed}", random_recipe_v3(seed, 5)) for seed in (5, 6)]  # own ids: no cached old unit
    with pytest.raises(ValueError, match="set steps: 4 or more"):  # pydantic's ValidationError
        RecipeSource(toy={"count": 2, "steps": 3, "world": "v3"})
    (tmp_path / "r.jsonl").write_text(
        '{"id": "x", "title": "X", "steps": ["a"]}\n{"id": "x", "title": "Y", "steps": ["b"]}\n', encoding="utf-8"
    )
    with pytest.raises(ConfigError, match=r"recipe ids \['x'\] occur twice"):
        load_recipes(RecipeSource(jsonl=tmp_path / "r.jsonl"))


def test_a_configs_relative_paths_are_read_from_its_own_folder(tmp_path):
    from cooklab.evaluation import load_config

    folder = tmp_path / "configs"
    folder.mkdir()
    text = (
        "name: t\nout: results/t\nrecipes: {folder: recipes}\nmethods: [{name: independent}]\n"
        "metrics: [clip_score]\nadapters: {mine: adapters/mine, there: %s}\n" % (tmp_path / "abs")
    )
    (folder / "t.yaml").write_text(text, encoding="utf-8")
    config = load_config(folder / "t.yaml")
    assert config.out == folder / "results" / "t" and config.recipes.folder == folder / "recipes"
    assert config.adapters == {"mine": folder / "adapters" / "mine", "there": tmp_path / "abs"}
    (folder / "abs.yaml").write_text(text.replace("out: results/t", f"out: {tmp_path / 'o'}"), encoding="utf-8")
    assert load_config(folder / "abs.yaml").out == tmp_path / "o"
    (folder / "bad.yaml").write_text(text.replace("name: t", "name: t\nseeds: [a]"), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"is not a valid evaluation config:\n  seeds\.0: .*\nFix those fields"):
        load_config(folder / "bad.yaml")
