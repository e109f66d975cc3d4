"""World v3 single scenes: the training set's pictures draw cooked food that kept its cut, the captions name it.

A v3 recipe fries diced carrots into *fried diced carrots* (``Ingredient("carrot", "cooked", cut="diced")``: the
cubes in the cooked shade) and its texts name that look (``recipes_v3.look_phrase``). A set trained with
``world="v3"`` must see such food in its single-scene data too, not only in the context captions:

* **scenes** (``random_scene_v3``) -- ``world.random_scene``, then every cooked ingredient keeps a cut with
  probability ``KEPT_CUT_SHARE``, the cut drawn uniformly from the cuts ``Ingredient`` allows it (its states but
  "cooked" -- the cuts a v3 fry can keep). Only states change, never a name, colour or container, so a scene drawn
  with ``exclude=dataset.HELD_OUT`` still holds no held-out triple;
* **captions** (``random_caption_v3``) -- ``captions.random_caption``'s templates and random choices (attributes
  left out at random, one instruction in ~3), with every food phrase that names a state naming the whole look:
  "fried diced carrots", never "fried carrots" for cubes. Every word is in ``recipes_v3.V3_WORDS``.

World v2 keeps ``world.random_scene`` and ``captions.random_caption`` (``worlds.WORLDS``).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .captions import PLURAL, random_caption
from .recipes_v3 import look_phrase
from .world import ALLOWED_STATES, Ingredient, Scene, random_scene

#: the share of a v3 scene's cooked ingredients drawn with a kept cut (the rest: the old world's cooked cubes)
KEPT_CUT_SHARE = 0.5


def keep_cuts(scene: Scene, rng: np.random.Generator) -> Scene:
    """``scene`` with each cooked ingredient given a kept cut with probability ``KEPT_CUT_SHARE``."""
    ingredients = []
    for ing in scene.ingredients:
        if ing.state == "cooked" and ing.cut is None and rng.random() < KEPT_CUT_SHARE:
            cuts = [s for s in ALLOWED_STATES[ing.name] if s != "cooked"]
            ing = Ingredient(ing.name, "cooked", cut=cuts[int(rng.integers(len(cuts)))])
        ingredients.append(ing)
    return replace(scene, ingredients=tuple(ingredients))


def random_scene_v3(rng: np.random.Generator, exclude=frozenset()) -> Scene:
    """A random v3 scene: ``world.random_scene(rng, exclude)`` with cuts kept (``keep_cuts``)."""
    return keep_cuts(random_scene(rng, exclude=exclude), rng)


def look(ing: Ingredient, with_state: bool = True) -> str:
    """``look_phrase`` (``"fried diced carrots"``), or just the name (``"carrots"``) without the state."""
    return look_phrase(ing) if with_state else PLURAL[ing.name]


def random_caption_v3(scene: Scene, rng: np.random.Generator) -> str:
    """``captions.random_caption`` of ``scene`` with each food's whole look (``look``)."""
    return random_caption(scene, rng, phrase=look)
