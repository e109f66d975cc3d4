"""Toy recipes: sequences of actions that change a scene, with the truth of every step.

A toy recipe starts by placing a container on a table, then adds, chops, slices, pours, fries,
stirs and serves food in it. Each action is applied to the scene state, so every step has a
ground-truth scene (rendered by ``world.render``) and an *expectation*: the ingredient the step
names and the state it must be in -- what step faithfulness is checked against.

Step texts read like real recipe steps: only the first step names the container's colour
("Place a striped blue bowl on the wooden table."); later steps say "the bowl". Whether later
frames keep the blue bowl is exactly what the consistency mechanisms are for.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..recipe import Recipe, Step
from .captions import CONTAINER_WORDS, PLURAL, TABLE_WORDS, container_phrase, ingredient_phrase, join
from .world import (
    ALLOWED_STATES,
    CONTAINER_COLOURS,
    CONTAINERS,
    INGREDIENTS,
    MAX_INGREDIENTS,
    PATTERNS,
    TABLES,
    Ingredient,
    Scene,
    random_position,
)


@dataclass(frozen=True)
class Expectation:
    """What the picture of one step must show."""

    container: str
    colour: str
    ingredient: str | None = None  # the ingredient the step names (None for "place")
    state: str | None = None
    cut: str | None = None  # world v3: the cut shape a cooked ingredient kept (``Ingredient.cut``)


@dataclass(frozen=True)
class Reference:
    """World v3: one referring expression of a step text and what it denotes in the true scene.

    ``"them"``, ``"the mixture"``, ``"the carrots"`` denote ingredients put in at earlier steps; ``"the pot"``
    and ``"it"`` (in "add diced carrots to it") denote the container placed at step 1 (``container`` True).
    """

    phrase: str  # the words in the step text
    ingredients: tuple[str, ...] = ()  # the ingredients it denotes
    container: bool = False  # it denotes the container


@dataclass(frozen=True)
class ToyRecipe:
    """A toy recipe: step texts, the true scene after each step, and what each step must show."""

    title: str
    texts: tuple[str, ...]
    scenes: tuple[Scene, ...]
    expectations: tuple[Expectation, ...]
    seed: int = 0
    references: tuple[tuple[Reference, ...], ...] = ()  # world v3: each step's referring expressions (else empty)

    def __len__(self) -> int:
        return len(self.texts)

    def to_recipe(self) -> Recipe:
        """The cooklab ``Recipe``: container and attributes known, each step referring to the one before."""
        first = self.scenes[0]
        attributes = [first.colour] + ([first.pattern] if first.pattern != "plain" else [])
        steps = []
        for n, text in enumerate(self.texts):
            steps.append(
                Step(
                    text=text,
                    container=CONTAINER_WORDS[first.container],
                    container_attributes=attributes,
                    reference_step=n if n else None,
                    ingredients=[i.name for i in self.scenes[n].ingredients],
                )
            )
        return Recipe(title=self.title, steps=steps, description=f"Toy Kitchen recipe (seed {self.seed})")


def _cap(text: str) -> str:
    return text[0].upper() + text[1:] + "."


def empty_scene(rng: np.random.Generator) -> Scene:
    """A recipe's first scene: a random container (kind, colour, pattern) on a random table, no food yet."""
    return Scene(
        container=CONTAINERS[rng.integers(len(CONTAINERS))],
        colour=list(CONTAINER_COLOURS)[rng.integers(len(CONTAINER_COLOURS))],
        pattern=PATTERNS[rng.integers(len(PATTERNS))],
        table=list(TABLES)[rng.integers(len(TABLES))],
        position=random_position(rng),
        layout_seed=int(rng.integers(2**31)),
    )


def random_toy_recipe(seed: int, n_steps: int = 4) -> ToyRecipe:
    """A random toy recipe of ``n_steps`` steps (2 to 8), deterministic in ``seed``."""
    if not 2 <= n_steps <= 8:
        raise ValueError(f"n_steps={n_steps}: a toy recipe has 2 to 8 steps.")
    rng = np.random.default_rng(seed)
    scene = empty_scene(rng)
    pantry = [str(n) for n in rng.permutation(list(INGREDIENTS))]
    texts = [_cap(f"place {container_phrase(scene, colour=True, pattern=True)} on the {TABLE_WORDS[scene.table]}")]
    scenes, expectations = [scene], [Expectation(scene.container, scene.colour)]
    the = container_phrase(scene, colour=False, article="the")
    while len(texts) < n_steps:
        ings = list(scene.ingredients)
        last = len(texts) == n_steps - 1
        options = []
        if len(ings) < MAX_INGREDIENTS:
            options += ["add", "add", "pour"]
        changeable = {
            a: [i for i in ings if s in ALLOWED_STATES[i.name] and i.state == "whole"]
            for a, s in (("chop", "diced"), ("slice", "sliced"))
        }
        options += [a for a, items in changeable.items() if items]
        if ings and any(i.state != "cooked" for i in ings):
            options.append("fry")
        if len(ings) >= 2 and any(i.state != "mixed" for i in ings):
            options.append("stir")
        if last and ings:
            options.append("serve")
        action = str(rng.choice(options))
        if action in ("add", "pour"):
            name = pantry.pop()
            state = (
                "mixed"
                if action == "pour"
                else str(rng.choice([s for s in ("whole", "diced", "sliced") if s in ALLOWED_STATES[name]]))
            )
            new = Ingredient(name, state)
            ings.append(new)
            text = (
                f"add {ingredient_phrase(new)} to {the}" if action == "add" else f"pour the {PLURAL[name]} into {the}"
            )
            target = new
        elif action in ("chop", "slice"):
            old = changeable[action][rng.integers(len(changeable[action]))]
            target = Ingredient(old.name, "diced" if action == "chop" else "sliced")
            ings = [target if i.name == old.name else i for i in ings]
            text = f"{action} the {PLURAL[old.name]} in {the}"
        elif action == "fry":
            ings = [Ingredient(i.name, "cooked") for i in ings]
            target = ings[int(rng.integers(len(ings)))]
            text = f"fry the {join([PLURAL[i.name] for i in ings])} in {the}"
        elif action == "stir":
            ings = [Ingredient(i.name, "mixed") for i in ings]
            target = ings[int(rng.integers(len(ings)))]
            text = f"stir the {join([PLURAL[i.name] for i in ings])} in {the}"
        else:  # serve: the food stays as it is
            target = ings[int(rng.integers(len(ings)))]
            text = f"serve the {join([ingredient_phrase(i) for i in ings])} in {the}"
        scene = replace(scene, ingredients=tuple(ings), layout_seed=int(rng.integers(2**31)))
        texts.append(_cap(text))
        scenes.append(scene)
        expectations.append(Expectation(scene.container, scene.colour, target.name, target.state))
    title = f"Toy {join([PLURAL[i.name] for i in scene.ingredients]) or 'empty'} {CONTAINER_WORDS[scene.container]}"
    return ToyRecipe(
        title=title, texts=tuple(texts), scenes=tuple(scenes), expectations=tuple(expectations), seed=seed
    )
