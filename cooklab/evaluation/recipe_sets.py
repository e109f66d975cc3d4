"""The recipes an evaluation runs over, from one of four sources (``config.RecipeSource``).

* ``toy`` -- random Toy Kitchen recipes ``random_toy_recipe(first_seed + k, steps)``; they stay
  ``ToyRecipe`` objects so the oracle metrics know what each step must show. Id ``toy-<seed>``;
  with ``world: v3``, ``random_recipe_v3(first_seed + k, steps)``, id ``toy-v3-<seed>`` (``toykitchen.worlds``).
* ``folder`` -- every recipe file in a folder (``.yaml``, ``.yml``, ``.json``, ``.txt``; read by
  ``cooklab.load_recipe``), sorted by name. Id: the file name without suffix.
* ``jsonl`` -- one file of many recipes: a ``.json`` list of recipe objects, or ``.jsonl`` with
  one recipe object per line (``{"title": ..., "steps": [...]}``, the recipe format). Id: the
  object's ``id`` field if it has one, else ``line-<n>`` (1-based).
* ``recipegen`` -- a RecipeGen-style layout: one folder per recipe, each holding the steps as
  ``steps.json`` (a list of step texts, or a recipe object), ``steps.txt`` (one step per line) or
  any recipe file cooklab reads; ``title.txt`` (one line) names the dish, else the folder name does.
  Other files (the dataset's step pictures) are left alone. Id: the folder name.

Every recipe is validated on load; a bad one is an error naming the file (and line) and the fix --
an evaluation does not start with recipes it would fail on hours later.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import ConfigError, RecipeError
from ..recipe import Recipe, load_recipe
from ..toykitchen.recipes import ToyRecipe
from ..toykitchen.worlds import get_world
from .config import RecipeSource

_SUFFIXES = (".yaml", ".yml", ".json", ".txt")


def load_recipes(source: RecipeSource) -> list[tuple[str, Recipe | ToyRecipe]]:
    """``[(recipe id, recipe)]`` in a fixed order (the ids are unique)."""
    if source.toy is not None:
        toy = source.toy
        make, prefix = get_world(toy.world).recipe, "toy" if toy.world == "v2" else f"toy-{toy.world}"
        items = [(f"{prefix}-{toy.first_seed + k}", make(toy.first_seed + k, toy.steps)) for k in range(toy.count)]
    elif source.folder is not None:
        items = _from_folder(source.folder)
    elif source.jsonl is not None:
        items = _from_jsonl(source.jsonl)
    else:
        items = read_recipegen(source.recipegen)
    items = items[: source.limit] if source.limit else items
    if not items:
        raise ConfigError("the recipe source holds no recipe: check the path (and limit).")
    ids = [i for i, _ in items]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ConfigError(f"recipe ids {duplicates} occur twice: give each recipe a unique file name or id.")
    return items


def _from_folder(folder: Path) -> list[tuple[str, Recipe]]:
    if not folder.is_dir():
        raise ConfigError(f"recipes folder {str(folder)!r} not found.")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in _SUFFIXES)
    return [(p.stem, load_recipe(p)) for p in files]


def _from_jsonl(path: Path) -> list[tuple[str, Recipe]]:
    if not path.is_file():
        raise ConfigError(f"recipes file {str(path)!r} not found.")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        try:
            objects = json.loads(text)
        except json.JSONDecodeError as error:
            raise ConfigError(f"{path} is not valid JSON ({error}). Fix: a list of recipe objects.") from None
        if not isinstance(objects, list):
            raise ConfigError(
                f"{path} holds a {type(objects).__name__}: give a list of recipe objects, or use .jsonl."
            )
        numbered = list(enumerate(objects, start=1))
    else:
        numbered = []
        for n, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    numbered.append((n, json.loads(line)))
                except json.JSONDecodeError as error:
                    raise ConfigError(
                        f"{path}, line {n}: not a JSON object ({error}). Fix: one recipe object per line."
                    ) from None
    out = []
    for n, obj in numbered:
        if not isinstance(obj, dict):
            raise ConfigError(
                f'{path}, item {n}: a recipe object ({{"title": ..., "steps": [...]}}), not {type(obj).__name__}.'
            )
        obj = dict(obj)
        recipe_id = str(obj.pop("id", f"line-{n}"))
        try:
            out.append((recipe_id, Recipe(**obj, source=f"{path}, item {n}")))
        except RecipeError as error:
            raise ConfigError(str(error)) from None
    return out


def read_recipegen(root: Path) -> list[tuple[str, Recipe]]:
    """Every recipe of a RecipeGen folder (one sub-folder per recipe: title.txt, steps.json or steps.txt) as (id,
    Recipe)."""
    if not root.is_dir():
        raise ConfigError(f"RecipeGen folder {str(root)!r} not found.")
    out = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        title = (
            (folder / "title.txt").read_text(encoding="utf-8").strip()
            if (folder / "title.txt").is_file()
            else folder.name
        )
        if (folder / "steps.json").is_file():
            data = json.loads((folder / "steps.json").read_text(encoding="utf-8"))
            data = {"title": title, "steps": data} if isinstance(data, list) else {"title": title, **data}
            try:
                recipe = Recipe(**data, source=str(folder / "steps.json"))
            except RecipeError as error:
                raise ConfigError(str(error)) from None
        elif (folder / "steps.txt").is_file():
            steps = [
                line.strip()
                for line in (folder / "steps.txt").read_text(encoding="utf-8").splitlines()
                if line.strip()
            ]
            recipe = Recipe(title=title, steps=steps, source=str(folder / "steps.txt"))
        else:
            files = sorted(p for p in folder.iterdir() if p.suffix.lower() in _SUFFIXES and p.name != "title.txt")
            if not files:
                raise ConfigError(
                    f"{folder} holds no steps: add steps.json, steps.txt or a recipe file (yaml, json, txt)."
                )
            recipe = load_recipe(files[0]).model_copy(update={"title": title})
        out.append((folder.name, recipe))
    return out
