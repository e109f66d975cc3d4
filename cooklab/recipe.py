"""Recipes and the per-step metadata that Recipe Diffusion generates images from.

Recipe Diffusion (Xia & Fujita, section III-A) first asks an LLM to read the
recipe and write, for every step, which container the step shows, what that
container looks like, and which earlier step shows the *same* container. The
image of that earlier step is then the reference frame: its container is
detected, masked and kept while the new image is generated.

A recipe file holds exactly that metadata next to the instruction text::

    title: Pancakes                  # required (a file without one uses its name)
    description: Fluffy breakfast    # optional
    steps:                           # 1 to MAX_RECIPE_STEPS steps, in order
      - text: Whisk flour, sugar and baking powder.
        container: mixing bowl                       # null: no container
        container_attributes: [large, white ceramic] # how it looks
        reference_step: null     # first appearance of this container
        ingredients: [flour, sugar, baking powder]
      - text: Pour in the milk and stir.
        container: mixing bowl
        container_attributes: [large, white ceramic]
        reference_step: 1        # the same bowl as in step 1
        ingredients: [milk]
      - Leave the batter to rest.   # a bare string: text only, no metadata

``reference_step`` is a step *number*, counted from 1 like the steps a cook
reads, and it must name an earlier step. ``Recipe.reference_indices()`` turns
those numbers into 0-based frame indices for the image pipeline.

Files may be YAML (``.yaml``/``.yml``), JSON (``.json``) or plain numbered text
(``.txt``, see ``load_recipe``). Every problem raises ``RecipeError`` with the
file, the field (for instance ``steps[3].reference_step``; list positions in
messages count from 1, like step numbers), what is wrong and how to fix it.

The recipes shipped with a source checkout (``data/recipes``, ``data/toykitchen/recipes``) are
found by name with ``resolve_recipe("pancakes")``.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails

from cooklab.errors import RecipeError
from cooklab.fileio import atomic_write
from cooklab.resources import shipped

__all__ = [
    "DEMO_RECIPE",
    "MAX_RECIPE_STEPS",
    "Recipe",
    "Step",
    "StepPlan",
    "load_recipe",
    "recipes_dir",
    "resolve_recipe",
    "toy_recipes_dir",
]

MAX_RECIPE_STEPS = 64
"""Most steps a recipe may have (one generated image per step)."""
DEMO_RECIPE = "toy_kitchen.yaml"
"""The demo's recipe, in data/toykitchen/recipes: ``random_toy_recipe(971, 4)``, saved."""

_FIELD_CONFIG = ConfigDict(
    extra="forbid",  # a typo in a field name is an error, not silently ignored
    str_strip_whitespace=True,
    coerce_numbers_to_str=True,  # `title: 1984` in YAML is still a title
)


class StepPlan(BaseModel):
    """The metadata the LLM pre-pass writes for one step (no instruction text)."""

    model_config = _FIELD_CONFIG

    container: str | None = None
    """The container the step shows, e.g. "mixing bowl"; None when there is none."""
    container_attributes: list[str] = []
    """How the container looks, e.g. ["large", "clear glass"]."""
    reference_step: int | None = Field(default=None, ge=1, strict=True)
    """1-based number of an earlier step showing the same container; None at its first appearance."""
    ingredients: list[str] = []
    """Ingredients used or visible in the step."""

    @field_validator("container_attributes", "ingredients", mode="before")
    @classmethod
    def _empty_list(cls, value: Any) -> Any:
        """Read an empty YAML entry (`ingredients:` with nothing after it) as []."""
        return [] if value is None else value


class Step(StepPlan):
    """One recipe step: its instruction text plus its metadata."""

    text: str = Field(min_length=1)
    """The instruction, e.g. "Pour the batter into the hot pan." (stripped, never empty)."""

    def plan(self) -> StepPlan:
        """Return only the metadata part of this step."""
        return StepPlan(**self.model_dump(include=set(StepPlan.model_fields)))


class Recipe(BaseModel):
    """A titled list of steps, validated so every reference points backwards."""

    model_config = _FIELD_CONFIG

    title: str = Field(min_length=1)
    steps: list[Step] = Field(min_length=1, max_length=MAX_RECIPE_STEPS)
    description: str | None = None
    source: str | None = Field(default=None, exclude=True)
    """Path the recipe was loaded from (used in error messages, never saved)."""

    def __init__(self, /, **data: Any) -> None:
        """Validate like any pydantic model, but raise a readable ``RecipeError``."""
        try:
            super().__init__(**data)
        except ValidationError as err:
            source = data.get("source")
            raise RecipeError(_message(source, _issues(err))) from None

    @field_validator("steps", mode="before")
    @classmethod
    def _bare_strings(cls, value: Any) -> Any:
        """Accept a step written as a bare string: it becomes a step with only text."""
        if isinstance(value, list):
            return [{"text": item} if isinstance(item, str) else item for item in value]
        return value

    @model_validator(mode="after")
    def _check_references(self) -> Recipe:
        """Every reference_step must name an earlier step."""
        problems = [
            _reference_issue(number, step.reference_step, f"steps[{number}].reference_step")
            for number, step in enumerate(self.steps, start=1)
            if step.reference_step is not None and not 1 <= step.reference_step < number
        ]
        if problems:
            raise _Issues(problems)
        return self

    @classmethod
    def from_steps(
        cls,
        steps: Sequence[str | Mapping[str, Any] | Step],
        title: str = "Untitled recipe",
        plans: Sequence[StepPlan | Mapping[str, Any] | None] | None = None,
        description: str | None = None,
    ) -> Recipe:
        """Build a recipe from step texts (or step mappings/objects) and optional plans."""
        if isinstance(steps, str):
            raise _error(
                None,
                "steps",
                "is a single string, not a list of steps.",
                "pass a list, e.g. ['Crack the eggs.', 'Whisk them.'].",
            )
        recipe = cls(title=title, description=description, steps=list(steps))
        return recipe if plans is None else recipe.with_plans(plans)

    @property
    def texts(self) -> list[str]:
        """The instruction text of every step, in order."""
        return [step.text for step in self.steps]

    def plans(self) -> list[StepPlan]:
        """The metadata of every step, in order."""
        return [step.plan() for step in self.steps]

    def reference_indices(self) -> list[int | None]:
        """0-based frame index of each step's reference step (None when it has none)."""
        return [None if s.reference_step is None else s.reference_step - 1 for s in self.steps]

    def reference_frames(self) -> list[int | None]:
        """The frame each step keeps its container from: the metadata's reference step, else the previous step.

        0-based; None for the first step. This is the reference frame j of Recipe Diffusion
        (start, mask and shared K/V) and the reference region of cross-region K/V sharing on a canvas.
        """
        refs = self.reference_indices()
        return [None if i == 0 else (r if r is not None else i - 1) for i, r in enumerate(refs)]

    def with_plans(self, plans: Sequence[StepPlan | Mapping[str, Any] | None]) -> Recipe:
        """Return a copy whose step metadata is replaced by `plans` (None keeps a step's own)."""
        if len(plans) != len(self.steps):
            raise _error(
                self.source,
                "plans",
                f"got {len(plans)} plans for a recipe with {len(self.steps)} steps.",
                "give exactly one plan per step; use None to keep a step's own metadata.",
            )
        steps = []
        for index, (step, plan) in enumerate(zip(self.steps, plans, strict=True)):
            if plan is None:
                steps.append(step)
                continue
            if not isinstance(plan, StepPlan):
                try:
                    plan = StepPlan.model_validate(plan)
                except ValidationError as err:
                    raise RecipeError(_message(self.source, _issues(err, prefix=("plans", index)))) from None
            metadata = plan.model_dump(include=set(StepPlan.model_fields))
            steps.append(Step(text=step.text, **metadata))
        return Recipe(title=self.title, description=self.description, steps=steps, source=self.source)

    def __len__(self) -> int:
        return len(self.steps)

    def __getitem__(self, index: int) -> Step:
        return self.steps[index]

    def __eq__(self, other: object) -> bool:
        """Recipes are equal when their content is; where they were loaded from does not count."""
        if not isinstance(other, Recipe):
            return NotImplemented
        return self.model_dump() == other.model_dump()

    def to_yaml(self) -> str:
        """The recipe as YAML text, in the layout `load_recipe` reads."""
        data = self._to_data()
        for step in data["steps"]:
            if isinstance(step, dict):  # short metadata lists read best inline: [a, b]
                for key in ("container_attributes", "ingredients"):
                    step[key] = _InlineList(step[key])
        return yaml.dump(data, Dumper=_RecipeDumper, sort_keys=False, allow_unicode=True, width=88)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the recipe as YAML (.yaml/.yml) or JSON (.json), replacing the file atomically."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix in (".yaml", ".yml"):
            text = self.to_yaml()
        elif suffix == ".json":
            text = json.dumps(self._to_data(), indent=2, ensure_ascii=False) + "\n"
        else:
            raise _error(
                str(path),
                "",
                f"cannot save as '{suffix or path.name}'.",
                "use a file name ending in .yaml, .yml or .json.",
            )
        atomic_write(path, text)

    def _to_data(self) -> dict[str, Any]:
        """Plain dict for YAML/JSON: text first in each step; a step without metadata is a bare string."""
        data: dict[str, Any] = {"title": self.title}
        if self.description is not None:
            data["description"] = self.description
        data["steps"] = []
        for step in self.steps:
            plan = step.plan()
            data["steps"].append(step.text if plan == StepPlan() else {"text": step.text, **plan.model_dump()})
        return data


_SUFFIXES = (".yaml", ".yml", ".json", ".txt")


class _InlineList(list):
    """A list that `to_yaml` writes in flow style ([a, b]) instead of one item per line."""


class _RecipeDumper(yaml.SafeDumper):
    """YAML writer for recipes: block style, except for `_InlineList`s."""


_RecipeDumper.add_representer(
    _InlineList,
    lambda dumper, data: dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True),
)


def load_recipe(path: str | os.PathLike[str]) -> Recipe:
    """Read a recipe from a .yaml/.yml, .json or plain numbered .txt file.

    The text format is one step per numbered line (``1.``, ``1)`` or ``Step 1:``,
    numbered 1, 2, 3 ...). An unnumbered line after a step continues that step and
    blank lines are ignored. The first line may instead be a title (``# Title``,
    ``Title: Title`` or any unnumbered line); unnumbered lines between the title and
    step 1 become the description. Without a title line the title is made from the
    file name (``tomato_soup.txt`` -> "Tomato soup"), as it is for a YAML or JSON
    file without ``title``. Anything but a path (a ``str`` or ``os.PathLike``) is refused with a ``RecipeError``.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise RecipeError(
            f"load_recipe({path!r}): give the path of a recipe file (.yaml, .yml, .json or .txt), e.g. "
            "load_recipe('data/recipes/banana_bread.yaml'); for steps in memory use "
            "Recipe.from_steps(['Step one.', 'Step two.'])."
        )
    path = Path(path)
    source = str(path)
    suffix = path.suffix.lower()
    if not _exists(path):
        raise _error(
            source, "", "file not found (it does not exist).", f"check the path. {_shipped_recipes_hint(path)}"
        )
    if suffix not in _SUFFIXES:
        raise _error(
            source,
            "",
            f"unsupported file type '{suffix or '(no suffix)'}'.",
            f"use one of {', '.join(_SUFFIXES)}.",
        )
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise _error(source, "", "is not UTF-8 text.", "save the file with UTF-8 encoding.") from None
    except OSError as err:
        raise _error(source, "", f"cannot be read ({err.strerror}).", "pass a readable file.") from None

    if suffix == ".txt":
        data = _parse_text(text, source)
    else:
        parse = _parse_json if suffix == ".json" else _parse_yaml
        data = _check_mapping(parse(text, source), source)
    data.setdefault("title", _title_from_name(path))
    return Recipe(**data, source=source)


def as_recipe(recipe: Recipe | Sequence[str | Mapping[str, Any] | Step] | str | os.PathLike[str]) -> Recipe:
    """The one recipe coercion of cooklab: pipelines, ``plan`` and the CLI all accept what it accepts.

    * a ``Recipe`` is returned as it is;
    * a ``str`` or ``os.PathLike`` (``pathlib.Path``) is a recipe *file* read by ``load_recipe``;
    * a list or tuple of steps (strings, step mappings or ``Step``) becomes ``Recipe.from_steps``.

    A string holding several lines is recipe *text*, not a path: it is refused with the fix.
    """
    if isinstance(recipe, Recipe):
        return recipe
    if isinstance(recipe, str) and "\n" in recipe.strip():
        raise RecipeError(
            "recipe: got a string of several lines, which is recipe text, not a file path. "
            "Fix: pass a list of step strings (recipe.splitlines()), or save the text to a .txt file and pass its "
            "path."
        )
    if isinstance(recipe, str) and _looks_like_a_step(recipe):
        shown = recipe.strip() if len(recipe.strip()) <= 80 else recipe.strip()[:77] + "..."
        raise RecipeError(
            f"recipe: got the string {shown!r}, which reads like a step, not a recipe file path (no such "
            'file). Fix: pass a list of steps, e.g. pipe(["Put a pot on the table.", "Fill the pot with '
            'water."]), or cooklab.Recipe.from_steps([...]) (a one-step recipe is a list of one string).'
        )
    if isinstance(recipe, (str, os.PathLike)):
        return load_recipe(recipe)
    if isinstance(recipe, (list, tuple)):
        return Recipe.from_steps(list(recipe))
    raise RecipeError(
        f"recipe: got {type(recipe).__name__}. Fix: pass a cooklab.Recipe, a recipe file path (str or pathlib.Path), "
        "or a list of step strings."
    )


def _looks_like_a_step(text: str) -> bool:
    """Whether a one-line string is step text rather than a path: it holds a space, names no existing file and
    has no recipe suffix (``"Put a pot on the table."``, not ``"my recipes/soup.yaml"``)."""
    path = Path(text.strip()).expanduser()
    return " " in text.strip() and not _exists(path) and path.suffix.lower() not in _SUFFIXES


def _exists(path: Path) -> bool:
    """Whether ``path`` exists; False too for a name the system cannot look up (too long, say)."""
    try:
        return path.exists()
    except OSError:
        return False


def _shipped_recipes_hint(missing: Path) -> str:
    """A sentence naming the recipes cooklab ships, passed by name (``cooklab generate pancakes``).

    Lists ``data/recipes/*.yaml`` and ``data/toykitchen/recipes/*.yaml``, first the one closest to the
    ``missing`` file's name (``tomatosoup`` -> ``tomato_soup``) when one is close; says where recipes are
    when the data folder is absent (an installed package without the source checkout).
    """
    folders = ((recipes_dir(), "data/recipes/"), (toy_recipes_dir(), "data/toykitchen/recipes/"))
    names = {label: [p.stem for p in sorted(folder.glob("*.yaml"))] for folder, label in folders if folder.is_dir()}
    groups = [f"{', '.join(stems)} ({label})" for label, stems in names.items() if stems]
    if not groups:
        return "The shipped recipes are in data/recipes/ of a source checkout."
    close = difflib.get_close_matches(missing.stem, [stem for stems in names.values() for stem in stems], n=1)
    guess = f"Did you mean `{close[0]}`? " if close else ""
    return f"{guess}The shipped recipes, which any command takes by name, are " + "; ".join(groups) + "."


def recipes_dir() -> Path:
    """The shipped recipes: ``data/recipes`` (``cooklab.resources``: a checkout or an installed wheel)."""
    return shipped("recipes")


def toy_recipes_dir() -> Path:
    """The shipped Toy Kitchen recipes (the demo's): ``data/toykitchen/recipes``."""
    return shipped("toykitchen", "recipes")


def resolve_recipe(name: str | None) -> Path:
    """Find a recipe file: a path as given, else a shipped recipe by file name or stem.

    ``None`` gives the demo recipe (``data/toykitchen/recipes/toy_kitchen.yaml``). ``pancakes``,
    ``pancakes.yaml`` and ``data/recipes/pancakes.yaml`` all find the shipped file from any
    working directory; so do ``toy_kitchen`` and ``data/toykitchen/recipes/toy_kitchen.yaml``
    (``data/recipes`` is searched first). A name that matches nothing is returned unchanged so
    ``load_recipe`` reports it.
    """
    if name is None:
        path = toy_recipes_dir() / DEMO_RECIPE
        if not path.is_file():
            raise RecipeError(
                f"the default recipe {str(path)!r} is missing: cooklab's data folder ships with a source "
                "checkout only. Pass a recipe file with --recipe PATH."
            )
        return path
    path = Path(name).expanduser()
    if path.exists():
        return path
    folders = {
        (): (recipes_dir(), toy_recipes_dir()),
        ("data", "recipes"): (recipes_dir(),),
        ("data", "toykitchen", "recipes"): (toy_recipes_dir(),),
    }
    names = [path.name, f"{path.name}.yaml"] if path.suffix == "" else [path.name]
    for parts, candidates in folders.items():
        if path.parent.parts[-len(parts) :] == parts if parts else path.parent.parts == ():
            for folder in candidates:
                for candidate in (folder / n for n in names):
                    if candidate.is_file():
                        return candidate
    return path


def _parse_yaml(text: str, source: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        problem = getattr(err, "problem", None) or str(err)
        raise _error(
            source,
            "",
            f"YAML syntax error at {where}: {problem}.",
            f"check the indentation and quoting near {where}; text containing ': ' or starting with a special "
            "character needs quotes.",
        ) from None


def _parse_json(text: str, source: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        where = f"line {err.lineno}, column {err.colno}"
        raise _error(
            source,
            "",
            f"JSON syntax error at {where}: {err.msg}.",
            f"fix the JSON near {where} (missing comma or quote, or a trailing comma?).",
        ) from None


def _check_mapping(data: Any, source: str) -> dict[str, Any]:
    """The top level of a YAML/JSON recipe must be a mapping of field names."""
    if data is None:
        raise _error(source, "", "the file is empty.", "write 'title:' and a 'steps:' list.")
    if not isinstance(data, dict):
        raise _error(
            source,
            "",
            f"the top level is a {type(data).__name__}, not a mapping.",
            "start the file with the fields 'title:' and 'steps:' (steps is the list).",
        )
    if "source" in data:
        raise _error(
            source,
            "source",
            "cannot be set in a recipe file; it is filled in with the file's path.",
            "remove it (note where a recipe comes from in 'description').",
        )
    return {str(key): value for key, value in data.items()}


_NUMBERED_LINE = re.compile(
    r"^(?:step\s*(?P<step>\d+)\s*(?:[:.)]|$)|(?P<number>\d+)[.)](?=\s|$))\s*(?P<text>.*)$",
    re.IGNORECASE,
)
_TITLE_LINE = re.compile(r"^(?:#+|title\s*:)\s*(?P<title>.*)$", re.IGNORECASE)


def _parse_text(text: str, source: str) -> dict[str, Any]:
    """Turn plain numbered text into the fields of a Recipe (see `load_recipe`)."""
    title: str | None = None
    description: list[str] = []
    steps: list[list[str]] = []  # the lines of each step
    for line_number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        numbered = _NUMBERED_LINE.match(line)
        if numbered:
            number = int(numbered["step"] or numbered["number"])
            if number != len(steps) + 1:
                raise _error(
                    source,
                    f"line {line_number}",
                    f"{line!r} is numbered {number}, but step {len(steps) + 1} was expected.",
                    "number the steps 1, 2, 3 ... in order, without gaps or repeats.",
                )
            steps.append([numbered["text"]])
        elif steps:
            steps[-1].append(line)
        elif title is None:
            heading = _TITLE_LINE.match(line)
            title = heading["title"] if heading else line
        else:
            description.append(line)
    if not steps:
        raise _error(
            source,
            "steps",
            "no numbered steps found.",
            "start each step on its own line with its number, e.g. '1. Crack the eggs.'",
        )
    data: dict[str, Any] = {"steps": [" ".join(part for part in lines if part) for lines in steps]}
    if title is not None:
        data["title"] = title
    if description:
        data["description"] = " ".join(description)
    return data


def _title_from_name(path: Path) -> str:
    """'tomato_soup.yaml' -> 'Tomato soup'."""
    name = path.stem.replace("_", " ").strip()
    return name[:1].upper() + name[1:]


# --- readable error messages -------------------------------------------------


class _Issue(NamedTuple):
    """One problem: where it is (field), what is wrong, and how to fix it."""

    field: str
    problem: str
    fix: str


class _Issues(ValueError):
    """Problems found by our own validators, carried through pydantic to `_issues`."""

    def __init__(self, issues: list[_Issue]) -> None:
        super().__init__("; ".join(issue.problem for issue in issues))
        self.issues = issues


_RECIPE_FILE_FIELDS = ("title", "description", "steps")
_STEP_FIELDS = ("text", *StepPlan.model_fields)

# What each field should hold, for the "Fix:" part of a message.
_FIELD_HINTS = {
    "title": "a non-empty text, e.g. 'title: Tomato soup'",
    "description": "a text, or leave it out",
    "steps": f"a list of 1 to {MAX_RECIPE_STEPS} steps, each a text or a mapping with 'text:'",
    "text": "the instruction, e.g. 'text: Crack the eggs into the bowl'",
    "container": "a text such as 'mixing bowl', or null when the step shows no container",
    "container_attributes": "a list of texts such as [large, clear glass]",
    "reference_step": "the number of an earlier step showing the same container, or null",
    "ingredients": "a list of texts such as [flour, milk], or []",
}


def _message(source: str | None, issues: list[_Issue]) -> str:
    """Format issues as 'file: field: problem Fix: how' (one line per issue)."""
    where = source or "recipe"
    lines = []
    for issue in issues:
        field = f"{issue.field}: " if issue.field else ""
        lines.append(f"{field}{issue.problem} Fix: {issue.fix}")
    if len(lines) == 1:
        return f"{where}: {lines[0]}"
    return f"{where}: {len(lines)} problems:\n" + "\n".join(f"  - {line}" for line in lines)


def _error(source: str | None, field: str, problem: str, fix: str) -> RecipeError:
    """A RecipeError for a single problem (`field` may be "" for the file as a whole)."""
    return RecipeError(_message(source, [_Issue(field, problem, fix)]))


def _field_path(loc: tuple[Any, ...]) -> str:
    """('steps', 2, 'reference_step') -> 'steps[3].reference_step' (positions from 1)."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part + 1}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def _issues(err: ValidationError, prefix: tuple[Any, ...] = ()) -> list[_Issue]:
    """Translate a pydantic ValidationError into readable issues."""
    issues: list[_Issue] = []
    for error in err.errors():
        cause = error.get("ctx", {}).get("error")
        if isinstance(cause, _Issues):
            issues.extend(cause.issues)
        else:
            issues.append(_describe(error, prefix + tuple(error["loc"])))
    return issues


def _describe(error: ErrorDetails, loc: tuple[Any, ...]) -> _Issue:
    """One pydantic error dict -> an _Issue with field, problem and fix."""
    kind, value = error["type"], error.get("input")
    names = [part for part in loc if isinstance(part, str)]
    name = names[-1] if names else ""
    field = _field_path(loc)
    in_step = len(loc) >= 2 and loc[0] in ("steps", "plans") and isinstance(loc[1], int)
    step = f"step {loc[1] + 1}" if in_step else "the recipe"
    fix = f"set {name} to {_FIELD_HINTS.get(name, 'a valid value')}."

    if kind == "extra_forbidden":
        allowed = _allowed_fields(loc)
        guess = difflib.get_close_matches(name, allowed, n=1)
        hint = f"did you mean '{guess[0]}'? " if guess else ""
        return _Issue(
            field, f"unknown field '{name}' in {step}.", f"{hint}the allowed fields are: {', '.join(allowed)}."
        )
    if name == "reference_step" and kind == "greater_than_equal" and in_step:
        return _reference_issue(loc[1] + 1, value, field)
    if loc == ("steps",) and kind == "too_short":
        return _Issue(field, "the recipe has no steps.", "add at least one step to the 'steps:' list.")
    if loc == ("steps",) and kind == "too_long":
        return _Issue(
            field,
            f"the recipe has {len(value)} steps, more than the limit of {MAX_RECIPE_STEPS}.",
            f"split it into recipes of at most {MAX_RECIPE_STEPS} steps, or merge short steps.",
        )
    if in_step and len(loc) == 2 and kind in ("model_type", "model_attributes_type"):
        what = "empty" if value is None else f"a {type(value).__name__}"
        return _Issue(
            field, f"{step} is {what}, not a step.", "write the step as a text, or as a mapping with at least 'text:'."
        )
    if name == "text" and (kind in ("missing", "string_too_short") or value is None):
        return _Issue(field, f"{step} has no text.", f"add {_FIELD_HINTS['text']}.")
    if kind == "missing":
        return _Issue(field, f"is missing in {step}.", f"add the field '{name}', {_FIELD_HINTS[name]}.")
    if kind == "string_too_short" or value is None:
        return _Issue(field, "is empty.", fix)
    return _Issue(field, f"{error['msg']} (got {value!r}).", fix)


def _allowed_fields(loc: tuple[Any, ...]) -> tuple[str, ...]:
    """The field names allowed where the unknown field `loc` was found."""
    if len(loc) > 1 and loc[0] == "steps":
        return _STEP_FIELDS
    if len(loc) > 1 and loc[0] == "plans":
        return tuple(StepPlan.model_fields)
    return _RECIPE_FILE_FIELDS


def _reference_issue(number: int, reference: int, field: str) -> _Issue:
    """Explain why step `number` may not refer to step `reference`."""
    if reference == number:
        problem = f"step {number} refers to itself."
    elif reference > number:
        problem = f"step {number} refers to step {reference}, which comes later."
    else:
        problem = f"step {number} refers to step {reference}, but step numbers start at 1."
    if number == 1:
        fix = "set reference_step to null: step 1 is the first step, so its container appears here first."
    else:
        earlier = "step 1" if number == 2 else f"an earlier step (1 to {number - 1})"
        fix = (
            f"use the number of {earlier} that shows the same container, "
            f"or null if the container first appears in step {number}."
        )
    return _Issue(field, problem, fix)
