"""Multi-step training examples: a recipe and one picture per step, from four sources (``config.DataSource``).

* ``toy`` -- random Toy Kitchen recipes rendered with their true scenes (``world.render``): the same
  container through every step, the food changing; nothing is read from disk.
* ``folder`` -- one folder per recipe holding a recipe file cooklab reads (``recipe.yaml``, ``.json``,
  numbered ``.txt``) or ``steps.json`` / ``steps.txt``, and one picture per step (``.png``, ``.jpg``,
  ``.jpeg``, ``.webp``), matched to the steps in natural order of their names (``step_pictures``: numbers
  compared as numbers, so ``2.jpg`` comes before ``10.jpg``; names that leave the order open are refused).
* ``recipegen`` -- the same layout as RecipeGen ships it (``steps.json`` / ``steps.txt``, ``title.txt``,
  the step pictures); read by the same code as ``folder``.
* ``jsonl`` -- one recipe per line, ``{"id": ..., "title": ..., "steps": [...], "images": [paths]}``;
  picture paths relative to the file.

``write_toy_folder`` writes Toy Kitchen examples in the folder layout, so the toy data doubles as an
example of the format. A recipe whose pictures do not match its steps is an error naming the folder.

Toy examples come from a *recipe generator* ``(seed, n_steps) -> ToyRecipe``: the step texts and the true scene
after every step, which ``world.render`` draws. ``RECIPE_GENERATORS`` holds the ones a config can name
(``data: {toy: {generator: NAME}}``): ``random_toy_recipe`` (the old world) and ``random_recipe_v3``
(``cooklab.toykitchen.recipes_v3``); ``write_toy_folder(recipes=...)`` takes one directly. Training seeds start at
``config.FIRST_TRAINING_SEED``: the seeds below are the evaluation's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import PIL.Image

from ..errors import ConfigError, RecipeError
from ..fileio import atomic_write
from ..images import read_picture
from ..recipe import Recipe
from ..toykitchen.recipes import ToyRecipe, random_toy_recipe
from ..toykitchen.recipes_v3 import random_recipe_v3
from ..toykitchen.world import render
from .config import FIRST_TRAINING_SEED, DataSource, held_out_seed_problem

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")

RecipeGenerator = Callable[[int, int], ToyRecipe]  # (seed, n_steps) -> step texts and the true scene of every step

#: the recipe generators a config names (``data: {toy: {generator: NAME}}``): the old world's and world v3's
RECIPE_GENERATORS: dict[str, RecipeGenerator] = {
    "random_toy_recipe": random_toy_recipe,
    "random_recipe_v3": random_recipe_v3,
}


def recipe_generator(name: str) -> RecipeGenerator:
    """The generator ``name`` of ``RECIPE_GENERATORS``; a ``ConfigError`` naming the known ones otherwise."""
    if name not in RECIPE_GENERATORS:
        raise ConfigError(
            f"data.toy.generator={name!r} is no recipe generator: choose from {sorted(RECIPE_GENERATORS)} "
            "(a new world registers its generator in cooklab.training.data.RECIPE_GENERATORS)."
        )
    return RECIPE_GENERATORS[name]


@dataclass
class Example:
    """One training canvas: a recipe and its N step pictures (loaded on demand)."""

    id: str
    recipe: Recipe
    image_paths: list[Path] | None = None  # None: rendered (toy)
    toy_seed: int | None = None
    recipes: RecipeGenerator = random_toy_recipe  # the generator of a toy example (its scenes are rendered)

    def images(self, size: int | None = None) -> list[PIL.Image.Image]:
        """The N pictures as RGB images (toy renders at ``size``); a ``ConfigError`` naming a picture that cannot be
        read."""
        if self.image_paths is None:
            toy = self.recipes(self.toy_seed, len(self.recipe))
            return [render(scene, size or 64).image.convert("RGB") for scene in toy.scenes]
        fix = (
            f"replace it with a readable picture of that step (re-export or download it again), or remove the "
            f"recipe {self.id!r} from the training data."
        )
        return [read_picture(p, fix) for p in self.image_paths]


def load_examples(source: DataSource) -> list[Example]:
    """The examples of a data source, in a fixed order (ids unique)."""
    if source.toy is not None:
        toy = source.toy
        generate = recipe_generator(toy.generator)
        examples = []
        for k in range(toy.count):
            seed = toy.first_seed + k
            examples.append(Example(f"toy-{seed}", generate(seed, toy.steps).to_recipe(), None, seed, generate))
    elif source.jsonl is not None:
        examples = _from_jsonl(source.jsonl)
    else:
        examples = _from_folders(source.folder if source.folder is not None else source.recipegen)
    examples = examples[: source.limit] if source.limit else examples
    if not examples:
        raise ConfigError("the training data holds no example: check the path (and limit).")
    return examples


_DIGITS = re.compile(r"(\d+)")
_NAMING_FIX = (
    "name every picture with its step number, one pattern for all (step_01.png, step_02.png, ... or 1.jpg, ...)"
)


def natural_key(name: str) -> tuple:
    """The sort key of a picture name: its stem lowercased, split into text and numbers, the numbers as integers.

    ``"Step_10.JPG"`` -> ``("step_", 10, "")``; so ``step_2`` < ``step_10`` and ``1.jpg`` < ``2.jpg`` < ``10.jpg``
    (lexicographic order would put ``10.jpg`` second). Text sits at even positions, numbers at odd ones, so two keys
    always compare text with text and number with number.
    """
    parts = _DIGITS.split(Path(name).stem.lower())  # [text, number, text, number, ..., text]
    return tuple(int(part) if k % 2 else part for k, part in enumerate(parts))


def step_pictures(folder: Path) -> list[Path]:
    """The pictures of one recipe folder in step order: the natural order of their names (``natural_key``).

    A ``ConfigError`` naming the folder, the pictures and the fix when the names leave the order open: with more
    than one picture, a name without a number, names that differ before their first number (``step_1.png`` and
    ``2.png``), or two names with the same numbers (``1.jpg`` and ``01.png``).
    """
    pictures = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
    keys = {p: natural_key(p.name) for p in pictures}
    if len(pictures) < 2:
        return pictures
    unnumbered = sorted(p.name for p in pictures if len(keys[p]) == 1)
    if unnumbered:
        raise ConfigError(f"{folder}: {unnumbered} carry no step number, so their step is unknown; {_NAMING_FIX}.")
    prefixes = sorted({keys[p][0] for p in pictures})
    if len(prefixes) > 1:
        raise ConfigError(
            f"{folder}: the picture names differ before their first number ({prefixes}), so their order is "
            f"ambiguous; {_NAMING_FIX}."
        )
    ordered = sorted(pictures, key=keys.__getitem__)
    for before, after in zip(ordered, ordered[1:]):
        if keys[before] == keys[after]:
            raise ConfigError(
                f"{folder}: {before.name} and {after.name} carry the same step number; keep one picture per step "
                f"and {_NAMING_FIX}."
            )
    return ordered


def _from_folders(root: Path) -> list[Example]:
    from ..evaluation.recipe_sets import read_recipegen

    out = []
    for recipe_id, recipe in read_recipegen(root):
        pictures = step_pictures(root / recipe_id)
        if len(pictures) != len(recipe):
            raise ConfigError(
                f"{root / recipe_id}: {len(recipe)} steps but {len(pictures)} pictures "
                f"({[p.name for p in pictures]}); "
                f"give one picture per step and {_NAMING_FIX}."
            )
        out.append(Example(recipe_id, recipe, pictures))
    return out


def _from_jsonl(path: Path) -> list[Example]:
    if not path.is_file():
        raise ConfigError(f"training manifest {str(path)!r} not found.")
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as error:
            raise ConfigError(
                f"{path}, line {n}: not a JSON object ({error}). Fix: one recipe with its images per line."
            ) from None
        if not isinstance(obj, dict) or not isinstance(obj.get("images"), list):
            raise ConfigError(
                f'{path}, line {n}: give {{"title": ..., "steps": [...], "images": [one path per step]}}.'
            )
        obj = dict(obj)
        images = [path.parent / p for p in obj.pop("images")]
        recipe_id = str(obj.pop("id", f"line-{n}"))
        try:
            recipe = Recipe(**obj, source=f"{path}, line {n}")
        except RecipeError as error:
            raise ConfigError(str(error)) from None
        if len(images) != len(recipe):
            raise ConfigError(
                f"{path}, line {n}: {len(recipe)} steps but {len(images)} images; give one image per step."
            )
        missing = [str(p) for p in images if not p.is_file()]
        if missing:
            raise ConfigError(
                f"{path}, line {n}: image(s) not found: {missing[:3]} (paths are read from the manifest's folder)."
            )
        out.append(Example(recipe_id, recipe, images))
    return out


def write_toy_folder(
    root: str | Path,
    count: int,
    steps: int = 4,
    first_seed: int = FIRST_TRAINING_SEED,
    size: int = 64,
    recipes: RecipeGenerator = random_toy_recipe,
) -> Path:
    """Write ``count`` Toy Kitchen examples in the folder layout (``toy-<seed>/recipe.json`` + ``step_01.png`` ...);
    returns ``root``.

    Example k is ``recipes(first_seed + k, steps)``: its step texts in ``recipe.json``, its true scenes rendered at
    ``size`` as the step pictures. ``first_seed`` below ``FIRST_TRAINING_SEED`` is a ``ConfigError`` (held out).
    """
    problem = held_out_seed_problem(first_seed)
    if problem:
        raise ConfigError(f"write_toy_folder: {problem}.")
    root = Path(root)
    for k in range(count):
        seed = first_seed + k
        toy = recipes(seed, steps)
        folder = root / f"toy-{seed}"
        folder.mkdir(parents=True, exist_ok=True)
        for n, scene in enumerate(toy.scenes, start=1):
            render(scene, size).image.save(folder / f"step_{n:02d}.png")
        atomic_write(folder / "recipe.json", toy.to_recipe().model_dump_json(indent=1, exclude_none=True))
    return root
