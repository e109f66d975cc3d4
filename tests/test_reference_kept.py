"""``oracle_reference_kept``: the world-v3 measure of "ingredient and state kept across steps that refer back".

Designed inputs: the rendered true scenes of v3 recipes whose references the oracle reads right, and the same
scenes with one denoted ingredient taken out or drawn in another state or cut; every expected number is counted
by hand from the recipe's texts below.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from cooklab.errors import ConfigError
from cooklab.metrics import oracle_reference_kept, score
from cooklab.toykitchen import random_recipe_v3, random_toy_recipe
from cooklab.toykitchen.world import Ingredient, render

# seed 1: "Place a dotted pink pan ...", "Add diced tomatoes.", "Add sliced carrots.", "Pour in the onions.",
#         "Fry the mixture in the pan." -> step 4 refers to tomato, carrot, onion (cooked, cuts diced / sliced / mixed)
FRY = random_recipe_v3(1)
# seed 2: "... teal cutting board ...", "Pour the onions ...", "Add diced meat ...", "Fry everything.",
#         "Stir everything together." -> steps 3 and 4 each refer to onion and meat
STIR = random_recipe_v3(2)


def _pictures(recipe, scenes=None):
    return [render(s).image for s in (scenes or recipe.scenes)]


def _with_step(recipe, n, ingredients):
    """The recipe's true scenes with step ``n``'s food replaced by ``ingredients`` (same layout seed)."""
    scenes = list(recipe.scenes)
    scenes[n] = replace(scenes[n], ingredients=tuple(ingredients))
    return scenes


def test_the_designed_recipes_refer_back_as_described():
    assert FRY.texts[4] == "Fry the mixture in the pan." and STIR.texts[3:] == (
        "Fry everything.",
        "Stir everything together.",
    )
    assert FRY.scenes[4].ingredients == (
        Ingredient("tomato", "cooked", cut="diced"),
        Ingredient("carrot", "cooked", cut="sliced"),
        Ingredient("onion", "cooked", cut="mixed"),
    )


def test_rendered_truth_keeps_every_referred_ingredient():
    for recipe, items in ((FRY, [[4, "tomato"], [4, "carrot"], [4, "onion"]]), (STIR, [[3, "onion"], [3, "meat"]])):
        result = oracle_reference_kept(_pictures(recipe), recipe)
        assert result.value == 1.0 and result.record["items"][: len(items)] == items
    assert len(oracle_reference_kept(_pictures(STIR), STIR).per_item) == 4  # steps 3 and 4, onion and meat each


def test_a_referred_ingredient_left_out_scores_zero_for_that_item():
    tomato, _, onion = FRY.scenes[4].ingredients
    result = oracle_reference_kept(_pictures(FRY, _with_step(FRY, 4, [tomato, onion])), FRY)
    assert result.per_item == [1.0, 0.0, 1.0] and result.value == pytest.approx(2 / 3)
    # steps 3 and 4 of STIR: the meat missing at step 4 only -> 1 of 4 items lost
    onion, _ = STIR.scenes[4].ingredients
    result = oracle_reference_kept(_pictures(STIR, _with_step(STIR, 4, [onion])), STIR)
    assert result.per_item == [1.0, 1.0, 1.0, 0.0] and result.value == 0.75


def test_a_referred_ingredient_in_the_wrong_cut_or_state_scores_zero_for_that_item():
    tomato, carrot, onion = FRY.scenes[4].ingredients
    recut = [tomato, Ingredient("carrot", "cooked", cut="diced"), onion]  # cooked, but cubes instead of slices
    result = oracle_reference_kept(_pictures(FRY, _with_step(FRY, 4, recut)), FRY)
    assert result.per_item == [1.0, 0.0, 1.0] and result.value == pytest.approx(2 / 3)
    raw = [Ingredient("tomato", "diced"), carrot, onion]  # the right cubes, not fried
    result = oracle_reference_kept(_pictures(FRY, _with_step(FRY, 4, raw)), FRY)
    assert result.per_item == [0.0, 1.0, 1.0] and result.value == pytest.approx(2 / 3)


def test_an_old_world_recipe_refers_back_nowhere_and_gives_nan():
    old = random_toy_recipe(0)
    result = oracle_reference_kept(_pictures(old), old)
    assert math.isnan(result.value) and result.per_item == [] and result.record["items"] == []


def test_score_passes_the_toy_recipe_and_a_plain_recipe_is_refused():
    pictures = _pictures(FRY, _with_step(FRY, 4, FRY.scenes[4].ingredients[:2]))
    assert score(pictures, FRY, ["oracle_reference_kept"])["oracle_reference_kept"].per_item == [1.0, 1.0, 0.0]
    with pytest.raises(ConfigError, match="pass the ToyRecipe"):
        score(pictures, FRY.to_recipe(), ["oracle_reference_kept"])
    with pytest.raises(ConfigError, match="give one picture per step"):
        oracle_reference_kept(pictures[:4], FRY)
