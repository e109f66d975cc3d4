"""World v3 recipes: step texts that need the steps before them, food that keeps the look it was given.

An old toy recipe (``recipes.random_toy_recipe``) names the ingredient, its state and the container again in
every step ("Fry the carrots and onions in the pot."), so a step's text alone says what its picture shows and
the rest of the recipe adds nothing. Real recipes do not: "Dice the carrots. Add the onions. Fry them. Stir the
mixture." -- which food "them" is, and that the carrots are still cubes after frying, is only in earlier steps.
That is what CookAnything's cross-step context (CSCC) is for (the paper's Fig. 4: without it "the carrot changes
from cubes to strips"). A v3 recipe reads like that:

* **back-references** -- later steps say "them" / "it" (the food mentioned last), "the mixture" / "everything"
  (all the food), "the rice" (an ingredient named without its state), and the container is named "the pot",
  "it" (right after it was placed) or not at all. Each step's ``references`` record every referring expression
  and what it denotes (``Reference``), so a test resolves them against the true scenes;
* **the look is kept** -- chop / slice decide the cut shape; fry keeps it (``Ingredient(name, "cooked",
  cut="diced")``: cubes in the cooked shade); stir moves the pieces (a new layout) and keeps every look;
* **several ingredients** -- 2 or 3 per recipe, at most ``MAX_INGREDIENTS``.

The rules of the world (which state an action leaves, which ingredient can be cut how) are the old ones, with
one change: frying keeps the cut and stirring keeps the look (old world: fry makes "cooked" cubes of everything,
stir makes "mixed" bits). Every step's true scene and ``Expectation`` (ingredient, state, the cut a cooked
ingredient kept) are recorded as before. The old recipes, world and vocabulary are unchanged: v3 is the
switch ``random_recipe_v3`` (and ``V3_WORDS`` for its tokenizers), nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from .captions import (
    CONTAINER_WORDS,
    PLURAL,
    STATE_WORDS,
    TABLE_WORDS,
    WORDS,
    container_phrase,
    full_caption,
    ingredient_phrase,
    join,
)
from .recipes import Expectation, Reference, ToyRecipe, empty_scene
from .world import (
    ALLOWED_STATES,
    INGREDIENTS,
    MAX_INGREDIENTS,
    Ingredient,
    Scene,
)

#: the words v3 texts use that ``captions.WORDS`` lacks: the pronouns and "the mixture"
V3_NEW_WORDS: tuple[str, ...] = ("them", "it", "mixture")

#: the v3 vocabulary: ``captions.WORDS`` first, in the same order (old token ids unchanged), then the new words
V3_WORDS: tuple[str, ...] = WORDS + V3_NEW_WORDS

#: ingredients named as a mass noun ("the rice"): referred to as "it"; the others ("the carrots") as "them"
MASS_NOUNS = frozenset(n for n in INGREDIENTS if PLURAL[n] == n)

#: how likely an add, chop, slice, fry, stir or serve step names the container ("in the pot", "to it"); a pour
#: names it 7 times in 10 ("pour the rice into the pot", else "pour in the rice")
NAME_CONTAINER = 0.3


def pronoun(names: tuple[str, ...]) -> str:
    """``"it"`` for one mass noun (rice, broccoli, meat), else ``"them"``."""
    return "it" if len(names) == 1 and names[0] in MASS_NOUNS else "them"


def look_phrase(ing: Ingredient) -> str:
    """The food with its whole look: ``"fried diced carrots"`` for a cooked ingredient that kept its cut, else the
    old ``captions.ingredient_phrase`` (``"diced carrots"``, ``"fried rice"``)."""
    if ing.cut is None:
        return ingredient_phrase(ing)
    return f"{STATE_WORDS['cooked']} {STATE_WORDS[ing.cut]} {PLURAL[ing.name]}"


def full_caption_v3(scene: Scene) -> str:
    """``captions.full_caption`` with each ingredient's whole look (``look_phrase``): the caption of a v3 scene.
    Equal to ``full_caption`` for a scene of the old world."""
    if not scene.ingredients:
        return full_caption(scene)
    food = join([look_phrase(i) for i in scene.ingredients])
    return f"{food} in {container_phrase(scene, colour=True, pattern=True)} on a {TABLE_WORDS[scene.table]}"


@dataclass
class _Draft:
    """A v3 recipe being written: the scene so far, what the last step mentioned, and the steps."""

    scene: Scene
    last: tuple[str, ...] | None = None  # the ingredients the last step mentioned; None: it mentioned the container
    action: str = "place"  # the last step's action
    texts: list[str] = field(default_factory=list)
    scenes: list[Scene] = field(default_factory=list)
    expectations: list[Expectation] = field(default_factory=list)
    references: list[tuple[Reference, ...]] = field(default_factory=list)

    def step(
        self,
        text: str,
        ings: list[Ingredient],
        target: Ingredient,
        refs: list[Reference],
        rng: np.random.Generator,
        mentioned: tuple[str, ...],
    ) -> None:
        """Record one step: its text, the scene it leaves (new layout), what it must show (``target``), its
        references, and the ingredients it ``mentioned`` (what a "them" in the next step denotes)."""
        self.scene = replace(self.scene, ingredients=tuple(ings), layout_seed=int(rng.integers(2**31)))
        self.texts.append(text[0].upper() + text[1:] + ".")
        self.scenes.append(self.scene)
        self.expectations.append(
            Expectation(self.scene.container, self.scene.colour, target.name, target.state, target.cut)
        )
        self.references.append(tuple(refs))
        self.last = mentioned


def _container_ref(draft: _Draft, rng, preposition: str, must: bool) -> tuple[str, list[Reference]]:
    """`` in the pot`` / `` to it`` / nothing, and its ``Reference``; ``must``: the container is always named."""
    if not must and rng.random() >= NAME_CONTAINER:
        return "", []  # the container left unnamed
    phrase = container_phrase(draft.scene, colour=False, article="the")
    if draft.last is None and rng.random() < 0.5:  # the container was what the last step mentioned
        phrase = "it"
    return f" {preposition} {phrase}", [Reference(phrase, (), container=True)]


def _food_ref(draft: _Draft, rng, names: tuple[str, ...]) -> Reference:
    """A phrase for ingredients already in the container: named, a pronoun (if the last step mentioned exactly
    them), ``"the mixture"`` / ``"everything"`` (all the food, two or more)."""
    options = [f"the {join([PLURAL[n] for n in names])}"]
    if draft.last == names:
        options += [pronoun(names)] * 2
    if len(names) >= 2 and len(names) == len(draft.scene.ingredients):
        options += ["the mixture", "everything"]
    return Reference(str(options[int(rng.integers(len(options)))]), names)


def _add(draft: _Draft, rng, name: str, pour: bool) -> None:
    """Add a new ingredient (whole, diced or sliced; poured: mixed), named with its state or as "the rice"."""
    if pour:
        new = Ingredient(name, "mixed")
        where, refs = _container_ref(draft, rng, "into", must=rng.random() < 0.7)
        text = f"pour the {PLURAL[name]}{where}" if where else f"pour in the {PLURAL[name]}"
    else:
        new = Ingredient(name, str(rng.choice([s for s in ("whole", "diced", "sliced") if s in ALLOWED_STATES[name]])))
        where, refs = _container_ref(draft, rng, "to", must=False)
        plain = new.state == "whole" and rng.random() < 0.5  # "add the rice": a state left unsaid is whole
        text = f"add {'the ' + PLURAL[name] if plain else ingredient_phrase(new)}{where}"
    draft.step(text, [*draft.scene.ingredients, new], new, refs, rng, (name,))


def _cut(draft: _Draft, rng, action: str, choices: list[Ingredient]) -> None:
    """Chop or slice one ingredient of whole shape: raw it becomes diced / sliced, cooked it keeps the new cut."""
    old = choices[int(rng.integers(len(choices)))]
    cut = "diced" if action == "chop" else "sliced"
    new = Ingredient(old.name, "cooked", cut=cut) if old.state == "cooked" else Ingredient(old.name, cut)
    ref = _food_ref(draft, rng, (old.name,))
    where, refs = _container_ref(draft, rng, "in", must=False)
    ings = [new if i.name == old.name else i for i in draft.scene.ingredients]
    draft.step(f"{action} {ref.phrase}{where}", ings, new, [ref, *refs], rng, (old.name,))


def _all_food(draft: _Draft, rng, action: str) -> None:
    """Fry (every ingredient cooked, keeping its cut), stir (every look kept, pieces moved) or serve (all kept)."""
    names = tuple(i.name for i in draft.scene.ingredients)
    ref = _food_ref(draft, rng, names)
    where, refs = _container_ref(draft, rng, "in", must=False)
    ings = list(draft.scene.ingredients)
    if action == "fry":
        ings = [i if i.state == "cooked" else Ingredient(i.name, "cooked", cut=i.state) for i in ings]
    together = " together" if action == "stir" and ref.phrase != "the mixture" else ""
    target = ings[int(rng.integers(len(ings)))]
    draft.step(f"{action} {ref.phrase}{together}{where}", ings, target, [ref, *refs], rng, names)


def _options(draft: _Draft, steps_left: int, adds_left: int) -> list[str]:
    """The actions the next step may take: adds first while they must fit, one back-referring step at least."""
    ings = draft.scene.ingredients
    if adds_left and (not ings or adds_left >= steps_left - 1):
        return ["add", "add", "pour"]
    options = ["add", "add", "pour"] if adds_left else []
    for action, cut in (("chop", "diced"), ("slice", "sliced")):
        if any(i.shape == "whole" and cut in ALLOWED_STATES[i.name] for i in ings):
            options.append(action)
    if any(i.state != "cooked" for i in ings):
        options.append("fry")
    if steps_left == 1:
        options.append("serve")
    if len(ings) >= 2 and (draft.action != "stir" or not options):  # not stirred twice running, unless nothing else
        options.append("stir")
    return options


def random_recipe_v3(seed: int, n_steps: int = 5) -> ToyRecipe:
    """A random world-v3 recipe of ``n_steps`` steps (4 to 8) with 2 or 3 ingredients, deterministic in ``seed``.

    Step 1 places the container (its colour and pattern named once, as in the old recipes); then ingredients
    are added and chopped, sliced, fried, stirred and served with back-referring texts. ``ToyRecipe.references``
    holds each step's referring expressions; ``scenes`` the true scene after each step; ``expectations`` what it
    must show (the ingredient an action is about, its state, the cut a cooked one kept).
    """
    if not 4 <= n_steps <= 8:
        raise ValueError(f"n_steps={n_steps}: a v3 recipe has 4 to 8 steps (a place, two adds, one step back).")
    rng = np.random.default_rng(seed)
    scene = empty_scene(rng)
    n_food = min(int(rng.integers(2, MAX_INGREDIENTS + 1)), n_steps - 2)
    pantry = [str(n) for n in rng.permutation(list(INGREDIENTS))]
    draft = _Draft(scene)
    where = container_phrase(scene, colour=True, pattern=True)
    draft.texts.append(f"Place {where} on the {TABLE_WORDS[scene.table]}.")
    draft.scenes.append(scene)
    draft.expectations.append(Expectation(scene.container, scene.colour))
    draft.references.append(())
    while len(draft.texts) < n_steps:
        steps_left, adds_left = n_steps - len(draft.texts), n_food - len(draft.scene.ingredients)
        options = _options(draft, steps_left, adds_left)
        action = draft.action = str(options[int(rng.integers(len(options)))])
        if action in ("add", "pour"):
            _add(draft, rng, pantry.pop(), pour=action == "pour")
        elif action in ("chop", "slice"):
            cut = "diced" if action == "chop" else "sliced"
            choices = [i for i in draft.scene.ingredients if i.shape == "whole" and cut in ALLOWED_STATES[i.name]]
            _cut(draft, rng, action, choices)
        else:
            _all_food(draft, rng, action)
    food = join([PLURAL[i.name] for i in draft.scene.ingredients])
    return ToyRecipe(
        title=f"Toy {food} {CONTAINER_WORDS[scene.container]}",
        texts=tuple(draft.texts),
        scenes=tuple(draft.scenes),
        expectations=tuple(draft.expectations),
        seed=seed,
        references=tuple(draft.references),
    )
