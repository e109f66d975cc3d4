"""``cooklab evaluate`` (cooklab/evaluation): configs, recipe sources, tables, resuming after a kill, several
processes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from cooklab.cli import main
from cooklab.errors import ConfigError
from cooklab.evaluation import evaluate, load_config, read_results
from cooklab.evaluation.config import RecipeSource, TableSpec
from cooklab.evaluation.recipe_sets import load_recipes
from cooklab.evaluation.result_tables import bootstrap, markdown, table
from cooklab.evaluation.run import units

ROOT = Path(__file__).resolve().parent.parent
SMALL = ROOT / "data" / "eval" / "toy_small.yaml"


def write_config(folder: Path, **changes) -> Path:
    """A small, fast toy config in ``folder`` (two Recipe Diffusion variants, oracle metrics), updated with
    ``changes``."""
    config = dict(
        name="t",
        out="out",
        generation=dict(num_inference_steps=2, guidance=3.0, true_cfg=3.0, height=64, width=64),
        recipes=dict(toy=dict(count=2, steps=2)),
        seeds=[0, 1],
        methods=[dict(name="independent"), dict(name="kv_sharing")],
        metrics=["oracle_container_consistency", "oracle_step_faithfulness"],
        tables=[dict(name="T", baseline="independent")],
    )
    config.update(changes)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


# ---- configs and recipes ------------------------------------------------------------------


def test_the_shipped_small_config_loads_and_expands():
    config = load_config(SMALL)
    recipes = load_recipes(config.recipes)
    todo = units(config, recipes)
    assert [r for r, _ in recipes] == ["toy-1000", "toy-1001"]
    assert len(todo) == 4 * 2 * 1  # rows (independent, region_aware_kv, cookanything at two lam) x recipes x seeds
    assert {u.label for u in todo} == {
        "independent",
        "region_aware_kv",
        "cookanything lam=0.0",
        "cookanything lam=0.5",
    }
    assert config.out.resolve() == (ROOT / "outputs" / "eval" / "toy-small").resolve()  # relative to the file's folder


@pytest.mark.parametrize("path", sorted((ROOT / "data" / "eval").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_is_valid(path):
    config = load_config(path)
    recipes = load_recipes(config.recipes)
    todo = units(config, recipes)
    assert len(todo) == len({u.folder(config.out) for u in todo})  # one folder per unit
    for spec in config.tables:
        assert spec.baseline is None or spec.baseline in {u.label for u in todo}
        assert spec.methods is None or set(spec.methods) <= {u.label for u in todo}


def test_every_method_runs_and_is_stored(tmp_path):
    from cooklab.evaluation import METHODS

    config = load_config(
        write_config(
            tmp_path,
            model=dict(sd="tiny", flux="tiny"),
            seeds=[0],
            recipes=dict(toy=dict(count=1, steps=2)),
            methods=[dict(name=n) for n in METHODS],
            tables=[],
        )
    )
    rows = read_results(evaluate(config, progress=False))
    assert [r["label"] for r in rows] == list(METHODS)
    for r in rows:
        folder = next((tmp_path / "out" / "units").glob(f"{r['label']}-*"))
        assert len(list(folder.rglob("frame_*.png"))) == 2


def test_a_lora_row_loads_its_adapter_and_the_next_row_runs_without(tmp_path):
    """``adapters`` + ``params: {lora: NAME}``: the training-based row; its key follows the weights, not the path."""
    import torch

    from cooklab.cookanything.lora import LoraSpec, add_lora, save_lora
    from cooklab.models import tiny_flux

    pipe = tiny_flux(seed=0)
    params = add_lora(pipe.transformer, LoraSpec(rank=2))
    with torch.no_grad():
        for p in params:
            p.normal_(0, 0.3, generator=torch.Generator().manual_seed(1))
    save_lora(pipe.transformer, tmp_path / "adapter", LoraSpec(rank=2))
    path = write_config(
        tmp_path,
        model=dict(sd="tiny", flux="tiny"),
        seeds=[0],
        recipes=dict(toy=dict(count=1, steps=2)),
        adapters=dict(mine="adapter"),
        methods=[
            dict(name="cookanything", label="with", params=dict(lora="mine")),
            dict(name="cookanything", label="without"),
            dict(name="cookanything", label="scale 0", params=dict(lora="mine", lora_scale=0.0)),
        ],
        tables=[],
    )
    config = load_config(path)
    assert config.adapters["mine"] == tmp_path / "adapter"
    evaluate(config, progress=False)
    frames = {
        label: np.asarray(
            Image.open(
                next((tmp_path / "out" / "units").glob(f"{label.replace(' ', '*')}-*")).rglob("frame_*.png").__next__()
            )
        )
        for label in ("with", "without", "scale 0")
    }
    assert not np.array_equal(frames["with"], frames["without"]) and np.array_equal(
        frames["scale 0"], frames["without"]
    )
    shutil.copytree(tmp_path / "adapter", tmp_path / "elsewhere")
    moved = config.model_copy(update={"adapters": {"mine": tmp_path / "elsewhere"}})
    assert [u.generation for u in units(moved, load_recipes(moved.recipes))] == [
        u.generation for u in units(config, load_recipes(config.recipes))
    ]
    with pytest.raises(ConfigError, match="not one of the config's adapters"):
        units(config.model_copy(update={"adapters": {}}), load_recipes(config.recipes))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(methods=[dict(name="magic")]), "unknown method 'magic'"),
        (dict(methods=[dict(name="independent", params=dict(lam=0.5))]), "takes no parameter(s) ['lam']"),
        (dict(methods=[dict(name="independent"), dict(name="independent")]), "give the methods distinct `label:`s"),
        (dict(recipes=dict(toy=dict(count=2), folder="x")), "exactly one recipe source"),
        (dict(metrics=["clip_scor"]), "unknown metric(s) ['clip_scor']"),
        (dict(seeds=[]), "seeds"),
        (dict(methods=[dict(name="cookanything", grid=dict(lam=[]))]), "empty lists"),
    ],
)
def test_config_errors_name_the_fix(tmp_path, change, message):
    with pytest.raises(
        ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[").replace("]", r"\]")
    ):
        config = load_config(write_config(tmp_path, **change))
        units(config, load_recipes(config.recipes))
        evaluate(config)


def test_oracle_metrics_need_toy_recipes(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "soup.txt").write_text("1. Boil water in a pot.\n2. Add the carrots.\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="need Toy Kitchen recipes"):
        evaluate(load_config(write_config(tmp_path, recipes=dict(folder="r"))))


def test_recipe_sources(tmp_path):
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "b.yaml").write_text("title: B\nsteps: [one, two]\n", encoding="utf-8")
    (tmp_path / "folder" / "a.txt").write_text("1. First.\n2. Second.\n", encoding="utf-8")
    got = load_recipes(RecipeSource(folder=tmp_path / "folder"))
    assert [i for i, _ in got] == ["a", "b"] and got[1][1].texts == ["one", "two"]

    (tmp_path / "r.jsonl").write_text(
        '{"id": "x", "title": "X", "steps": ["s1", "s2"]}\n\n{"title": "Y", "steps": ["t"]}\n', encoding="utf-8"
    )
    got = load_recipes(RecipeSource(jsonl=tmp_path / "r.jsonl"))
    assert [i for i, _ in got] == ["x", "line-3"] and got[0][1].title == "X"
    (tmp_path / "r.json").write_text(json.dumps([{"title": "Z", "steps": ["a", "b"]}]), encoding="utf-8")
    assert load_recipes(RecipeSource(jsonl=tmp_path / "r.json"))[0][0] == "line-1"
    (tmp_path / "bad.jsonl").write_text(
        '{"title": "X", "steps": ["a"]}\n{"title": "Y", "steps": []}\n', encoding="utf-8"
    )
    with pytest.raises(ConfigError, match="item 2"):
        load_recipes(RecipeSource(jsonl=tmp_path / "bad.jsonl"))

    gen = tmp_path / "recipegen"
    (gen / "pancakes").mkdir(parents=True)
    (gen / "pancakes" / "steps.json").write_text(
        json.dumps(["Mix flour and eggs.", "Fry the batter."]), encoding="utf-8"
    )
    (gen / "pancakes" / "title.txt").write_text("Pancakes\n", encoding="utf-8")
    (gen / "salad").mkdir()
    (gen / "salad" / "steps.txt").write_text("Wash the lettuce.\nToss with dressing.\n", encoding="utf-8")
    (gen / "empty").mkdir()
    with pytest.raises(ConfigError, match="holds no steps"):
        load_recipes(RecipeSource(recipegen=gen))
    (gen / "empty").rmdir()
    got = dict(load_recipes(RecipeSource(recipegen=gen, limit=5)))
    assert got["pancakes"].title == "Pancakes" and got["salad"].texts == ["Wash the lettuce.", "Toss with dressing."]
    assert got["salad"].title == "salad"


# ---- tables --------------------------------------------------------------------------------


def _results(offset: float) -> list[dict]:
    rng = np.random.default_rng(1)
    rows = []
    for k in range(20):
        v = float(rng.random())
        rows.append(dict(label="base", method="m", params={}, recipe=f"r{k}", seed=0, metrics={"x": {"value": v}}))
        rows.append(
            dict(label="other", method="m", params={}, recipe=f"r{k}", seed=0, metrics={"x": {"value": v + offset}})
        )
    return rows


def test_a_constant_offset_is_an_exact_paired_difference():
    t = table(_results(0.25), TableSpec(name="T", baseline="base"), ["x"])
    base, other = t["rows"]
    d, lo, hi, recipes, n = other["deltas"]["x"]
    assert n == recipes == 20 and d == pytest.approx(0.25) and lo == pytest.approx(0.25) and hi == pytest.approx(0.25)
    mean, lo, hi, _, _ = base["cells"]["x"]
    assert lo < mean < hi  # the recipes differ, so the mean's own interval has width
    text = markdown(t)
    assert "+0.250 [+0.250, +0.250]" in text and "(baseline)" in text


def test_a_sweep_leaves_out_rows_that_change_another_parameter():
    from cooklab.evaluation.result_tables import sweep_rows

    rows = [
        dict(method="cookanything", params=p, label=str(p))
        for p in (
            {"lam": 0.0},
            {"lam": 0.2},
            {"lam": 0.2, "lora": "toy"},
            {"lam": 0.2, "cross_region_kv": True},
            {"regional": False},
        )
    ]
    assert [r["params"] for r in sweep_rows(rows, "cookanything", "lam")] == [{"lam": 0.0}, {"lam": 0.2}]
    assert [r["params"] for r in sweep_rows(rows, "cookanything", "lam", {"lora": "toy"})] == [
        {"lam": 0.2, "lora": "toy"}
    ]


def test_bootstrap_is_seeded_and_covers_the_mean():
    x = {(f"r{k}", 0): float(k) for k in range(10)}
    a = bootstrap(x, np.random.default_rng(0))
    assert a == bootstrap(x, np.random.default_rng(0)) and a[1] < 4.5 < a[2] and a[0] == 4.5
    assert all(np.isnan(v) for v in bootstrap({}, np.random.default_rng(0))[:3])


# ---- running, resuming, splitting -----------------------------------------------------------------


@pytest.mark.slow
def test_evaluate_resumes_rescoring_without_regenerating(tmp_path):
    config = load_config(write_config(tmp_path))
    path = evaluate(config, progress=False)
    rows = read_results(path)
    assert len(rows) == 8 and len({(r["label"], r["recipe"], r["seed"]) for r in rows}) == 8
    frames = sorted((tmp_path / "out" / "units").rglob("frame_*.png"))
    assert len(frames) == 8 * 2
    stamps = [p.stat().st_mtime_ns for p in frames]
    assert "| independent |" in (tmp_path / "out" / "tables.md").read_text(encoding="utf-8")

    evaluate(config, progress=False)  # nothing to do
    assert read_results(path) == rows and [p.stat().st_mtime_ns for p in frames] == stamps

    more = load_config(
        write_config(
            tmp_path, metrics=["oracle_container_consistency", "oracle_step_faithfulness", "oracle_state_accuracy"]
        )
    )
    evaluate(more, progress=False)  # scored again from the saved frames, not generated again
    assert [p.stat().st_mtime_ns for p in frames] == stamps
    again = read_results(path)
    assert all("oracle_state_accuracy" in r["metrics"] for r in again)
    assert [r["metrics"]["oracle_step_faithfulness"] for r in again] == [
        r["metrics"]["oracle_step_faithfulness"] for r in rows
    ]

    changed = load_config(
        write_config(tmp_path, generation=dict(num_inference_steps=3, guidance=3.0, true_cfg=3.0, height=64, width=64))
    )
    with pytest.raises(ConfigError, match="another `out:` folder"):
        evaluate(changed, progress=False)


def _cli(*args, env=None):
    return subprocess.Popen(
        [sys.executable, "-m", "cooklab", "evaluate", *args],
        env={
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "TQDM_DISABLE": "1",
            "OMP_NUM_THREADS": "1",
            **(env or {}),
        },  # one thread: the suite runs beside it
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.slow
def test_a_killed_evaluation_resumes_to_the_same_results(tmp_path):
    slow = dict(
        generation=dict(num_inference_steps=4, guidance=3.0, true_cfg=3.0, height=64, width=64),
        recipes=dict(toy=dict(count=2, steps=2)),
    )
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    killed, whole = write_config(tmp_path / "a", **slow), write_config(tmp_path / "b", **slow)
    process = _cli(str(killed))
    units_dir = tmp_path / "a" / "out" / "units"
    deadline = time.time() + 300
    while time.time() < deadline and len(list(units_dir.rglob("unit.json"))) < 2 and process.poll() is None:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done = len(list(units_dir.rglob("unit.json")))
    assert 2 <= done < 8, f"the run was not stopped midway ({done} of 8 units done)"
    assert not (tmp_path / "a" / "out" / "results.jsonl").exists()

    resumed = _cli(str(killed))
    assert resumed.wait() == 0, resumed.stdout.read()
    evaluate(load_config(whole), progress=False)  # the same config, never stopped
    a = (tmp_path / "a" / "out" / "results.jsonl").read_text(encoding="utf-8")
    b = (tmp_path / "b" / "out" / "results.jsonl").read_text(encoding="utf-8")
    assert a == b and len(a.splitlines()) == 8  # 2 methods x 2 recipes x 2 seeds
    assert (
        len({(r["label"], r["recipe"], r["seed"]) for r in read_results(tmp_path / "a" / "out" / "results.jsonl")})
        == 8
    )
    assert not [p for p in (tmp_path / "a" / "out").rglob("*.tmp")]


@pytest.mark.slow
def test_two_processes_split_the_work_and_merge_the_same_rows(tmp_path):
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    one, two = write_config(tmp_path / "one"), write_config(tmp_path / "two")
    assert main(["evaluate", str(one)]) == 0
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "-m",
            "cooklab",
            "evaluate",
            str(two),
        ],
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    writers = [json.loads(p.read_text())["process"] for p in (tmp_path / "two" / "out" / "units").rglob("unit.json")]
    assert sorted(writers) == [0, 0, 0, 0, 1, 1, 1, 1]  # units p, p + 2, ... went to process p
    single = read_results(tmp_path / "one" / "out" / "results.jsonl")
    split = read_results(tmp_path / "two" / "out" / "results.jsonl")
    assert [(r["label"], r["recipe"], r["seed"]) for r in split] == [
        (r["label"], r["recipe"], r["seed"]) for r in single
    ]
    assert [r["metrics"] for r in split] == [r["metrics"] for r in single]
    assert run.stdout.count("wrote") == 1  # only the main process merges and reports
