"""Tests for cooklab.recipe: the shipped data, the loaders and the error messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cooklab.errors import RecipeError
from cooklab.recipe import MAX_RECIPE_STEPS, Recipe, Step, StepPlan, load_recipe

ROOT = Path(__file__).resolve().parents[1]
RECIPE_DIR = ROOT / "data" / "recipes"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SHIPPED = sorted(RECIPE_DIR.glob("*.yaml"))


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load_error(tmp_path: Path, name: str, text: str) -> str:
    """Write a bad recipe file, load it, and return the error message."""
    path = write(tmp_path, name, text)
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    message = str(info.value)
    assert name in message
    return message


# --- the shipped recipes --------------------------------------------------------


def test_enough_recipes_with_spread_lengths():
    assert len(SHIPPED) >= 9
    lengths = {len(load_recipe(path)) for path in SHIPPED}
    assert 3 in lengths
    assert lengths & {10, 11, 12}
    assert (RECIPE_DIR / "README.md").is_file()


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_recipe_is_valid_and_consistent(path):
    recipe = load_recipe(path)
    assert 3 <= len(recipe) <= 12
    assert recipe.title and recipe.source == str(path)

    last_seen: dict[str, int] = {}  # container -> number of the last step showing it
    for number, step in enumerate(recipe.steps, start=1):
        assert step.container, f"step {number} has no container"
        assert step.container_attributes, f"step {number} has no container attributes"
        assert step.ingredients is not None
        expected = last_seen.get(step.container)
        assert step.reference_step == expected, (
            f"{path.name} step {number}: reference_step should be {expected}, the last earlier step with the "
            f"{step.container}"
        )
        if step.reference_step is not None:
            referenced = recipe[step.reference_step - 1]
            assert 1 <= step.reference_step < number
            assert referenced.container == step.container
            assert referenced.container_attributes == step.container_attributes
        last_seen[step.container] = number
    # containers persist: at least one step refers back
    assert any(index is not None for index in recipe.reference_indices())


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_round_trip(path, suffix, tmp_path):
    recipe = load_recipe(path)
    target = tmp_path / f"copy{suffix}"
    recipe.save(target)
    again = load_recipe(target)
    assert again == recipe
    assert again.model_dump() == recipe.model_dump()
    assert again.source == str(target)


# --- fixtures and the text format ------------------------------------------------


def test_json_fixture_with_bare_string_step():
    recipe = load_recipe(FIXTURES / "hummus.json")
    assert recipe.title == "Hummus"
    assert len(recipe) == 4
    assert recipe[3].text.startswith("Drizzle olive oil")
    assert recipe[3].plan() == StepPlan()
    assert recipe.reference_indices() == [None, 0, None, None]


def test_text_fixture():
    recipe = load_recipe(FIXTURES / "lemonade.txt")
    assert recipe.title == "Fresh lemonade"
    assert recipe.description == "Makes one jug."
    assert recipe.texts == [
        "Squeeze six lemons into a glass jug, catching the pips in a small strainer.",
        "Stir in sugar until it dissolves.",
        "Top up the jug with cold water and add a handful of ice cubes.",
        "Pour into tall glasses and add a slice of lemon to each.",
    ]
    assert recipe.plans() == [StepPlan()] * 4


def test_text_round_trip_through_yaml(tmp_path):
    recipe = load_recipe(FIXTURES / "lemonade.txt")
    recipe.save(tmp_path / "lemonade.yaml")
    saved = (tmp_path / "lemonade.yaml").read_text()
    assert "- Stir in sugar until it dissolves." in saved  # steps without metadata stay bare strings
    assert load_recipe(tmp_path / "lemonade.yaml") == recipe


@pytest.mark.parametrize(
    ("first_line", "title"),
    [("Title: Quick toast", "Quick toast"), ("## Quick toast", "Quick toast"), ("Quick toast", "Quick toast")],
)
def test_text_title_lines(tmp_path, first_line, title):
    path = write(tmp_path, "toast.txt", f"{first_line}\n1. Toast the bread.\n2. Butter it.\n")
    recipe = load_recipe(path)
    assert recipe.title == title
    assert recipe.texts == ["Toast the bread.", "Butter it."]


def test_text_title_from_file_name(tmp_path):
    path = write(tmp_path, "cheese_on_toast.txt", "\n1) Toast the bread.\n\n2) Lay cheese on it.\n")
    assert load_recipe(path).title == "Cheese on toast"


def test_yaml_title_from_file_name(tmp_path):
    path = write(tmp_path, "quick_toast.yaml", "steps: [Toast the bread., Butter it.]\n")
    assert load_recipe(path).title == "Quick toast"


def test_text_continuation_is_not_mistaken_for_a_step(tmp_path):
    text = "1. Whisk together\n1.5 cups of flour\n2 eggs\nSTEP 2: Bake.\n"
    recipe = load_recipe(write(tmp_path, "mix.txt", text))
    assert recipe.texts == ["Whisk together 1.5 cups of flour 2 eggs", "Bake."]


def test_text_step_number_out_of_order(tmp_path):
    message = load_error(tmp_path, "gap.txt", "Title: Gap\n1. One.\n3. Three.\n")
    assert "line 3" in message
    assert "step 2 was expected" in message
    assert "number the steps 1, 2, 3" in message


def test_text_first_step_must_be_one(tmp_path):
    message = load_error(tmp_path, "late.txt", "2. Two.\n")
    assert "line 1" in message and "step 1 was expected" in message


def test_text_without_steps(tmp_path):
    message = load_error(tmp_path, "notes.txt", "Just some notes\nabout cooking\n")
    assert "steps" in message
    assert "no numbered steps" in message
    assert "'1. " in message


def test_text_step_without_text(tmp_path):
    message = load_error(tmp_path, "blank.txt", "1. Boil water.\n2.\n")
    assert "steps[2].text" in message
    assert "step 2 has no text" in message


# --- building recipes in code -----------------------------------------------------


def test_from_steps_with_strings_dicts_and_steps():
    recipe = Recipe.from_steps(
        [
            "Crack two eggs into a bowl.",
            {"text": "Whisk them.", "container": "bowl", "reference_step": 1},
            Step(text="Pour them into a pan.", container="pan"),
        ]
    )
    assert recipe.title == "Untitled recipe"
    assert recipe.description is None
    assert len(recipe) == 3
    assert recipe[1].container == "bowl"
    assert recipe.reference_indices() == [None, 0, None]
    assert recipe.texts[0] == "Crack two eggs into a bowl."


def test_from_steps_with_plans():
    plans = [
        StepPlan(container="bowl", container_attributes=["white"]),
        {"container": "bowl", "container_attributes": ["white"], "reference_step": 1},
        None,
    ]
    recipe = Recipe.from_steps(["Add flour.", "Add milk.", "Rest."], title="Batter", plans=plans)
    assert recipe.title == "Batter"
    assert recipe.plans()[1] == StepPlan(container="bowl", container_attributes=["white"], reference_step=1)
    assert recipe[2].plan() == StepPlan()


def test_from_steps_errors():
    with pytest.raises(RecipeError, match="plans"):
        Recipe.from_steps(["One.", "Two."], plans=[None])
    with pytest.raises(RecipeError, match="single string"):
        Recipe.from_steps("Boil water.")
    with pytest.raises(RecipeError, match="no steps"):
        Recipe.from_steps([])


def test_step_text_is_stripped_and_plan_excludes_text():
    step = Step(text="  Stir.  ", container="pot", ingredients=["salt"])
    assert step.text == "Stir."
    assert step.plan() == StepPlan(container="pot", ingredients=["salt"])
    assert "text" not in step.plan().model_dump()


def test_with_plans_replaces_and_keeps():
    recipe = load_recipe(RECIPE_DIR / "pancakes.yaml")
    new_plans: list[StepPlan | dict | None] = [None] * len(recipe)
    new_plans[0] = {"container": "mixing bowl", "container_attributes": ["small", "red"]}
    new_plans[1] = StepPlan()
    changed = recipe.with_plans(new_plans)
    assert changed.texts == recipe.texts
    assert changed[0].container_attributes == ["small", "red"]
    assert changed[0].ingredients == []  # the plan replaces all metadata of the step
    assert changed[1].plan() == StepPlan()
    assert changed.steps[2:] == recipe.steps[2:]
    assert recipe[0].container_attributes == ["large", "round", "clear glass"]  # original untouched
    assert changed.source == recipe.source


def test_with_plans_round_trip_of_plans():
    recipe = load_recipe(RECIPE_DIR / "tomato_soup.yaml")
    bare = Recipe.from_steps(recipe.texts, title=recipe.title)
    assert bare.with_plans(recipe.plans()).steps == recipe.steps


def test_with_plans_errors():
    recipe = load_recipe(RECIPE_DIR / "guacamole.yaml")
    with pytest.raises(RecipeError) as info:
        recipe.with_plans([None])
    assert "guacamole.yaml" in str(info.value) and "one plan per step" in str(info.value)

    with pytest.raises(RecipeError) as info:
        recipe.with_plans([None, {"contaner": "bowl"}, None, None])
    message = str(info.value)
    assert "plans[2].contaner" in message and "did you mean 'container'" in message

    with pytest.raises(RecipeError) as info:
        recipe.with_plans([{"reference_step": 2}, None, None, None])
    assert "steps[1].reference_step" in str(info.value)


def test_reference_indices():
    recipe = load_recipe(RECIPE_DIR / "fried_rice.yaml")
    assert recipe.reference_indices() == [None, None, 0, 1, 3, 4, 5, 6, None]


def test_sequence_helpers_and_equality():
    recipe = load_recipe(RECIPE_DIR / "overnight_oats.yaml")
    assert len(recipe) == 3
    assert recipe[-1] is recipe.steps[-1]
    assert [step.text for step in recipe.steps] == recipe.texts
    assert recipe == Recipe(title=recipe.title, description=recipe.description, steps=recipe.steps)
    assert recipe != recipe.with_plans([StepPlan(), None, None])


def test_to_yaml_layout():
    text = load_recipe(RECIPE_DIR / "overnight_oats.yaml").to_yaml()
    assert text.startswith("title: Overnight oats\n")
    assert "- text: Pour rolled oats" in text
    assert "reference_step: null" in text
    assert "source" not in text


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path):
    recipe = load_recipe(RECIPE_DIR / "greek_salad.yaml")
    target = tmp_path / "sub" / "salad.json"
    target.parent.mkdir()
    target.write_text("old content")
    recipe.save(target)
    assert json.loads(target.read_text())["title"] == "Greek salad"
    assert [p.name for p in target.parent.iterdir()] == ["salad.json"]


def test_save_unknown_suffix(tmp_path):
    recipe = load_recipe(RECIPE_DIR / "greek_salad.yaml")
    with pytest.raises(RecipeError) as info:
        recipe.save(tmp_path / "salad.toml")
    message = str(info.value)
    assert "salad.toml" in message and ".yaml" in message and ".json" in message


# --- readable errors for bad input ----------------------------------------------


def test_errors_are_value_errors():
    assert issubclass(RecipeError, ValueError)
    with pytest.raises(ValueError):
        Recipe(title="Empty", steps=[])


def test_missing_file(tmp_path):
    with pytest.raises(RecipeError) as info:
        load_recipe(tmp_path / "nowhere.yaml")
    message = str(info.value)
    assert "nowhere.yaml" in message and "not found" in message and "check the path" in message


def test_unknown_suffix(tmp_path):
    message = load_error(tmp_path, "recipe.md", "# Toast\n1. Toast.\n")
    assert "'.md'" in message
    for suffix in (".yaml", ".yml", ".json", ".txt"):
        assert suffix in message


def test_yaml_syntax_error_has_line(tmp_path):
    text = "title: Toast\nsteps:\n  - text: Toast the bread\n   container: [toaster\n"
    message = load_error(tmp_path, "broken.yaml", text)
    assert "YAML syntax error" in message
    assert "line 4" in message
    assert "indentation" in message


def test_json_syntax_error_has_line(tmp_path):
    text = '{\n  "title": "Toast",\n  "steps": ["Toast the bread.",]\n}\n'
    message = load_error(tmp_path, "broken.json", text)
    assert "JSON syntax error" in message and "line 3" in message and "comma" in message


@pytest.mark.parametrize(
    ("text", "problem"),
    [("- Toast the bread.\n- Butter it.\n", "is a list, not a mapping"), ("", "the file is empty")],
)
def test_top_level_not_a_mapping(tmp_path, text, problem):
    message = load_error(tmp_path, "toast.yaml", text)
    assert problem in message and "'title:'" in message


def test_missing_steps(tmp_path):
    message = load_error(tmp_path, "toast.yaml", "title: Toast\n")
    assert "steps: is missing" in message and "add the field 'steps'" in message


def test_zero_steps(tmp_path):
    message = load_error(tmp_path, "toast.json", '{"title": "Toast", "steps": []}')
    assert "steps: the recipe has no steps" in message and "add at least one step" in message


def test_too_many_steps(tmp_path):
    steps = [f"Stir {n}." for n in range(MAX_RECIPE_STEPS + 1)]
    message = load_error(tmp_path, "long.json", json.dumps({"title": "Long", "steps": steps}))
    assert "steps:" in message and f"{MAX_RECIPE_STEPS + 1} steps" in message
    assert f"limit of {MAX_RECIPE_STEPS}" in message and "split" in message


@pytest.mark.parametrize("step", ["{container: pot}", '{text: "  "}', "{text: null}"])
def test_step_without_text(tmp_path, step):
    message = load_error(tmp_path, "soup.yaml", f"title: Soup\nsteps:\n  - Boil water.\n  - {step}\n")
    assert "steps[2].text" in message
    assert "step 2 has no text" in message
    assert "text: " in message  # the fix shows how to write it


def test_empty_step(tmp_path):
    message = load_error(tmp_path, "soup.yaml", "title: Soup\nsteps:\n  - Boil water.\n  -\n")
    assert "steps[2]" in message and "step 2 is empty" in message and "mapping with at least 'text:'" in message


@pytest.mark.parametrize(
    ("reference", "problem"),
    [
        (3, "step 3 refers to itself"),
        (4, "step 3 refers to step 4, which comes later"),
        (0, "step numbers start at 1"),
        (-2, "step numbers start at 1"),
    ],
)
def test_bad_reference_step(tmp_path, reference, problem):
    text = (
        "title: Soup\nsteps:\n  - Chop onions.\n  - Fry them.\n"
        f"  - text: Add stock.\n    container: pot\n    reference_step: {reference}\n  - Serve.\n"
    )
    message = load_error(tmp_path, "soup.yaml", text)
    assert "steps[3].reference_step" in message
    assert problem in message
    assert "an earlier step (1 to 2)" in message and "or null" in message


def test_first_step_reference_fix_says_null(tmp_path):
    text = "title: Soup\nsteps:\n  - text: Chop onions.\n    reference_step: 1\n"
    message = load_error(tmp_path, "soup.yaml", text)
    assert "steps[1].reference_step" in message and "set reference_step to null" in message


def test_reference_step_wrong_type(tmp_path):
    text = "title: Soup\nsteps:\n  - Chop onions.\n  - text: Fry.\n    reference_step: first\n"
    message = load_error(tmp_path, "soup.yaml", text)
    assert "steps[2].reference_step" in message and "'first'" in message and "number of an earlier step" in message


def test_unknown_step_field_suggests_the_right_one(tmp_path):
    text = "title: Soup\nsteps:\n  - text: Chop onions.\n    contianer: board\n"
    message = load_error(tmp_path, "soup.yaml", text)
    assert "steps[1].contianer" in message
    assert "unknown field 'contianer'" in message
    assert "did you mean 'container'" in message
    assert "container_attributes, reference_step, ingredients" in message


def test_unknown_top_level_field(tmp_path):
    message = load_error(tmp_path, "soup.yaml", "title: Soup\nserves: 4\nsteps: [Boil water.]\n")
    assert "serves" in message and "allowed fields are: title, description, steps" in message


def test_source_cannot_be_set_in_a_file(tmp_path):
    message = load_error(tmp_path, "soup.yaml", "title: Soup\nsource: grandma\nsteps: [Boil water.]\n")
    assert "source" in message and "remove it" in message


def test_several_problems_are_listed_together(tmp_path):
    text = "title: ''\nsteps:\n  - text: Boil.\n    reference_step: 2\n  - text: ''\n"
    message = load_error(tmp_path, "soup.yaml", text)
    assert "problems" in message
    assert "title: is empty" in message and "steps[2].text" in message


def test_direct_construction_raises_readable_error():
    with pytest.raises(RecipeError) as info:
        Recipe(title="Soup", steps=["Boil.", {"text": "Stir.", "reference_step": 2}])
    message = str(info.value)
    assert message.startswith("recipe: steps[2].reference_step: step 2 refers to itself.")
    assert "use the number of step 1" in message
    assert "validation error" not in message  # not pydantic's raw text
