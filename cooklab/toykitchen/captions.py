"""Captions of Toy Kitchen scenes: descriptions and recipe-style instructions, from templates.

The captions vary enough that a model has to read them: attributes are left out at random
(a caption may name the colour but not the pattern, or only the food), the food comes in
different orders and phrasings, and instructions ("chop the carrots in the bowl") name one
action while the picture shows the whole state. Every word they use is in ``WORDS``, the
vocabulary of the world's tokenizers.
"""

from __future__ import annotations

import numpy as np

from .world import CONTAINER_COLOURS, CONTAINERS, INGREDIENTS, PATTERNS, STATES, TABLES, Ingredient, Scene

PLURAL = {
    "carrot": "carrots",
    "tomato": "tomatoes",
    "egg": "eggs",
    "rice": "rice",
    "broccoli": "broccoli",
    "onion": "onions",
    "meat": "meat",
}
CONTAINER_WORDS = {"bowl": "bowl", "pot": "pot", "pan": "pan", "plate": "plate", "board": "cutting board"}
TABLE_WORDS = {"wood": "wooden table", "mint": "mint table", "linen": "linen cloth"}
STATE_WORDS = {"whole": "whole", "diced": "diced", "sliced": "sliced", "cooked": "fried", "mixed": "mixed"}
PATTERN_WORDS = {"plain": "plain", "striped": "striped", "dotted": "dotted"}

#: the actions of a toy recipe and the state each leaves its ingredient in
ACTIONS = ("place", "add", "chop", "slice", "stir", "pour", "fry", "serve")

_GLUE = """a an the with and in on of to into top view some empty place add chop slice stir pour fry serve
everything all together""".split()


def _words() -> tuple[str, ...]:
    words = list(_GLUE)
    for group in (
        CONTAINER_WORDS.values(),
        TABLE_WORDS.values(),
        STATE_WORDS.values(),
        PATTERN_WORDS.values(),
        PLURAL.values(),
        INGREDIENTS,
        CONTAINER_COLOURS,
        CONTAINERS,
        PATTERNS,
        STATES,
        TABLES,
    ):
        for phrase in group:
            words.extend(phrase.split())
    return tuple(dict.fromkeys(words))


#: every word a toy caption can contain (the toy tokenizers keep each as one token)
WORDS: tuple[str, ...] = _words()


def ingredient_phrase(ing: Ingredient, with_state: bool = True) -> str:
    """``"diced carrots"``, ``"fried rice"``, or just ``"carrots"``."""
    name = PLURAL[ing.name]
    return f"{STATE_WORDS[ing.state]} {name}" if with_state else name


def join(parts: list[str]) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def container_phrase(scene: Scene, colour: bool = True, pattern: bool = False, article: str = "a") -> str:
    """``"a striped blue bowl"``, ``"the pan"``..."""
    words = [article]
    if pattern and scene.pattern != "plain":
        words.append(PATTERN_WORDS[scene.pattern])
    if colour:
        words.append(scene.colour)
    words.append(CONTAINER_WORDS[scene.container])
    return " ".join(words)


def full_caption(scene: Scene) -> str:
    """The caption that names everything: container, colour, pattern, table and every ingredient with its state."""
    food = join([ingredient_phrase(i) for i in scene.ingredients])
    where = container_phrase(scene, colour=True, pattern=True)
    table = TABLE_WORDS[scene.table]
    if not scene.ingredients:
        return f"an empty {where[2:]} on a {table}"
    return f"{food} in {where} on a {table}"


def random_caption(scene: Scene, rng: np.random.Generator, phrase=ingredient_phrase) -> str:
    """A caption of ``scene`` from a random template, with attributes left out at random; ``phrase(ing,
    with_state)`` names a food (world v3: ``scenes_v3.look``, the cut a cooked food kept)."""
    colour = rng.random() < 0.7
    pattern = rng.random() < 0.4
    table = rng.random() < 0.35
    ings = list(scene.ingredients)
    rng.shuffle(ings)
    if ings and rng.random() < 0.3:  # an instruction naming one action
        return instruction_for(scene, ings[0], rng, colour, phrase)
    keep = [i for i in ings if rng.random() < 0.85] or ings[:1]
    food = join([phrase(i, with_state=rng.random() < 0.85) for i in keep])
    where = container_phrase(scene, colour, pattern)
    tail = f" on a {TABLE_WORDS[scene.table]}" if table else ""
    if not ings:
        r = rng.random()
        if r < 0.35:  # the first step of a toy recipe
            return f"place {where} on the {TABLE_WORDS[scene.table]}"
        return f"an empty {where[2:]}{tail}" if r < 0.7 else f"top view of an empty {where[2:]}{tail}"
    template = int(rng.integers(3))
    if template == 0:
        return f"{where} with {food}{tail}"
    if template == 1:
        return f"{food} in {where}{tail}"
    return f"top view of {food} in {where}{tail}"


def instruction_for(
    scene: Scene, ing: Ingredient, rng: np.random.Generator, colour: bool = False, phrase=ingredient_phrase
) -> str:
    """An instruction whose result is ``scene``, about ``ing``; ``phrase`` names a food with its state."""
    the = container_phrase(scene, colour=colour, article="the")
    name = PLURAL[ing.name]
    everything = join([PLURAL[i.name] for i in scene.ingredients])
    if len(scene.ingredients) > 1 and rng.random() < 0.4:  # an action on all the food
        if all(i.state == "cooked" for i in scene.ingredients):
            return f"fry the {everything} in {the}"
        if all(i.state == "mixed" for i in scene.ingredients):
            return f"stir the {everything} in {the}"
        return f"serve the {join([phrase(i) for i in scene.ingredients])} in {the}"
    if ing.state == "diced" and rng.random() < 0.6:
        return f"chop the {name} in {the}"
    if ing.state == "sliced" and rng.random() < 0.6:
        return f"slice the {name} in {the}"
    if ing.state == "cooked" and rng.random() < 0.6:
        return f"fry the {name} in {the}"
    if ing.state == "mixed" and rng.random() < 0.6:
        return f"stir the {name} in {the}" if rng.random() < 0.5 else f"pour the {name} into {the}"
    return f"add {phrase(ing)} to {the}"
