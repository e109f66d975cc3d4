"""The tables' intervals resample recipes, seeds nested in them (issue 26, "Deliver 4"), on designed data.

``cooklab/evaluation/result_tables.py``: a cell's 95 % interval is the 2.5th and 97.5th percentile
of the mean over the pairs of |R| recipes drawn with replacement. The hand cases below have three
recipes, so the 27 equally likely draws can be enumerated and the exact distribution of the
resampled mean written down; 10,000 resamples put the percentiles on its atoms.
"""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest

from cooklab.evaluation.config import TableSpec
from cooklab.evaluation.result_tables import bootstrap, cell_rng, markdown, table

# recipe -> its seeds' values: A has three seeds, B and C one each
DESIGNED = {"A": [0.0, 0.0, 0.0], "B": [3.0], "C": [9.0]}


def _pairs(by_recipe: dict[str, list[float]]) -> dict[tuple[str, int], float]:
    return {(recipe, seed): v for recipe, vs in by_recipe.items() for seed, v in enumerate(vs)}


def _exact_quantile(by_recipe: dict[str, list[float]], q: float) -> float:
    """The q-quantile of the recipe-resampled mean, from all |R|^|R| equally likely draws (enumerated)."""
    recipes = list(by_recipe)
    means = sorted(
        sum(sum(by_recipe[c]) for c in draw) / sum(len(by_recipe[c]) for c in draw)
        for draw in itertools.product(recipes, repeat=len(recipes))
    )
    cumulative = np.arange(1, len(means) + 1) / len(means)
    return means[int(np.argmax(cumulative >= q))]  # the smallest mean whose CDF reaches q


def test_the_exact_cluster_interval_of_a_hand_case():
    # draws of 3 recipes: all C (1/27 = 3.7 %) -> 9; two C and B (3/27) -> 7; all A (1/27) -> 0
    assert _exact_quantile(DESIGNED, 0.975) == 9.0 and _exact_quantile(DESIGNED, 0.95) == 7.0
    assert _exact_quantile(DESIGNED, 0.025) == 0.0
    mean, lo, hi, recipes, pairs = bootstrap(_pairs(DESIGNED), np.random.default_rng(0))
    assert mean == pytest.approx(12 / 5)  # the mean over the 5 pairs, not over the 3 recipes (4.0)
    assert lo == pytest.approx(_exact_quantile(DESIGNED, 0.025)) and lo == 0.0
    assert hi == pytest.approx(_exact_quantile(DESIGNED, 0.975)) and hi == 9.0  # the 95th would be 7.0
    assert (recipes, pairs) == (3, 5)
    # resampling the 5 pairs as if independent: all five 9.0 has probability 5^-5, so its 97.5th is far below 9
    draws = np.random.default_rng(0).choice([0.0, 0.0, 0.0, 3.0, 9.0], size=(10_000, 5)).mean(axis=1)
    assert np.percentile(draws, 97.5) < 7.0


def test_paired_differences_are_matched_by_recipe_and_seed_and_resampled_by_recipe():
    base = {"A": [1.0, 2.0, 3.0, 4.0], "B": [5.0], "C": [6.0]}
    other = {"A": [1.0, 2.0, 3.0], "B": [8.0], "C": [15.0]}  # A's fourth seed is missing: 5 common pairs
    results = [
        dict(label=label, method="m", params={}, recipe=recipe, seed=seed, metrics={"x": {"value": v}})
        for label, by_recipe in (("base", base), ("other", other))
        for recipe, vs in by_recipe.items()
        for seed, v in enumerate(vs)
    ]
    t = table(results, TableSpec(name="T", baseline="base"), ["x"])
    d, lo, hi, recipes, pairs = t["rows"][1]["deltas"]["x"]
    # differences per common pair: A 0, 0, 0; B 3; C 9 -- the designed case
    assert (recipes, pairs) == (3, 5) and d == pytest.approx(12 / 5)
    assert lo == pytest.approx(_exact_quantile(DESIGNED, 0.025)) and hi == pytest.approx(
        _exact_quantile(DESIGNED, 0.975)
    )
    assert t["rows"][0]["recipes"] == 3 and t["rows"][0]["n"] == 6
    text = markdown(t)
    assert "| row | recipes | pairs |" in text and "| base | 3 | 6 |" in text
    assert "resamples of the recipes" in text


def test_many_seeds_of_one_recipe_do_not_shrink_the_interval():
    one_seed = {f"r{k}": [v] for k, v in enumerate([0.1, 0.5, 0.2, 0.9, 0.4, 0.7])}
    twenty_seeds = {recipe: vs * 20 for recipe, vs in one_seed.items()}  # the same value under 20 seeds
    few = bootstrap(_pairs(one_seed), cell_rng("T", "row", "x"))
    many = bootstrap(_pairs(twenty_seeds), cell_rng("T", "row", "x"))
    assert many[:3] == pytest.approx(few[:3]) and (many[3], many[4]) == (6, 120)
    # as if the 120 pairs were independent, the interval would be about sqrt(20) times narrower
    values = np.array(list(_pairs(twenty_seeds).values()))
    draws = values[np.random.default_rng(0).integers(len(values), size=(10_000, len(values)))].mean(axis=1)
    independent = np.percentile(draws, 97.5) - np.percentile(draws, 2.5)
    assert many[2] - many[1] > 3 * independent


def _random_results(order_seed: int) -> list[dict]:
    """Three rows x two metrics x 8 recipes x 2 seeds, values fixed, the list shuffled by ``order_seed``."""
    value_rng = np.random.default_rng(5)
    rows = [
        dict(
            label=label,
            method="m",
            params={},
            recipe=f"r{k}",
            seed=s,
            metrics={"x": {"value": float(value_rng.random())}, "y": {"value": float(value_rng.random())}},
        )
        for label in ("base", "one", "two")
        for k in range(8)
        for s in range(2)
    ]
    random.Random(order_seed).shuffle(rows)
    return rows


def test_a_cell_interval_does_not_depend_on_the_other_rows_and_columns_or_their_order():
    full = table(_random_results(0), TableSpec(name="T", baseline="base", metrics=["x", "y"]), ["x", "y"])
    reordered = table(
        _random_results(1),
        TableSpec(name="T", baseline="base", metrics=["y", "x"], methods=["two", "base"]),
        ["x", "y"],
    )
    two = next(r for r in full["rows"] if r["label"] == "two")
    two_again = next(r for r in reordered["rows"] if r["label"] == "two")
    for m in ("x", "y"):
        assert two_again["cells"][m] == two["cells"][m]
        assert two_again["deltas"][m] == two["deltas"][m]
    base = next(r for r in full["rows"] if r["label"] == "base")
    assert next(r for r in reordered["rows"] if r["label"] == "base")["cells"] == base["cells"]
