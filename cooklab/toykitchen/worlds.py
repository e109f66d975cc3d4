"""The worlds a Toy Kitchen training run can draw its recipe texts and vocabulary from (``TrainConfig.world``).

A *world* is a version of the Toy Kitchen's texts: the recipe generator whose step texts the context captions
(``context_captions.py``) are cut from, and the words its tokenizers keep as single tokens. ``"v2"`` is today's
world (``recipes.random_toy_recipe``, ``captions.WORDS``): the shipped sets were trained on it; ``"v3"`` is world
v3 (``recipes_v3.random_recipe_v3``, ``recipes_v3.V3_WORDS``: later steps refer back, the cut is kept), and a run
with ``world="v2"`` and no context captions or panels builds exactly today's tokenizers. A later world's words must
start with the old words in their old order, so a token id means the same word in both worlds and a set continued
from an older one (``TrainConfig.init_from``) keeps what its embedding rows learned; ``World`` checks it.

Its single scenes (``scene``, ``caption``): the training set's scene sampler and the caption drawn for a picture
each time it is drawn -- v2: ``world.random_scene`` and ``captions.random_caption``, so a ``world="v2"`` run renders
and captions exactly as before; v3: ``scenes_v3.random_scene_v3`` (cooked food that kept its cut) and
``scenes_v3.random_caption_v3`` (its whole look named: "fried diced carrots").

The vocabulary of a set (``vocabulary``): the world's words, then the words of panel captions
(``panels.PANEL_WORDS``) the world lacks, only for a set trained on panel pictures -- appended after, so every
other id is unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..errors import ConfigError
from .captions import WORDS, random_caption
from .panels import PANEL_WORDS
from .recipes import ToyRecipe, random_toy_recipe
from .recipes_v3 import V3_WORDS, random_recipe_v3
from .scenes_v3 import random_caption_v3, random_scene_v3
from .world import Scene, random_scene


@dataclass(frozen=True)
class World:
    """One version of the Toy Kitchen's texts."""

    name: str
    recipe: Callable[..., ToyRecipe]  # recipe(seed, n_steps) -> ToyRecipe, deterministic in seed
    words: tuple[str, ...]  # the tokenizers' vocabulary; starts with captions.WORDS in order
    recipe_steps: int  # steps of the recipes the context captions are cut from
    scene: Callable[..., Scene] = random_scene  # scene(rng, exclude) -> Scene: the training set's scenes
    caption: Callable[..., str] = random_caption  # caption(scene, rng) -> str: a single scene's training caption

    def __post_init__(self):
        if self.words[: len(WORDS)] != WORDS:
            raise ConfigError(
                f"world {self.name!r}: its words must start with captions.WORDS in their order (old token ids kept); "
                "put new words after them."
            )


#: the registered worlds by name (a new world is one more entry)
WORLDS: dict[str, World] = {
    "v2": World("v2", random_toy_recipe, WORDS, 4),
    # later steps refer back, the cut kept (recipes_v3.py); its scenes hold cooked food that kept a cut (scenes_v3.py)
    "v3": World("v3", random_recipe_v3, V3_WORDS, 5, random_scene_v3, random_caption_v3),
}


def get_world(name: str) -> World:
    """The world called ``name``, or a ``ConfigError`` naming the known ones."""
    if name not in WORLDS:
        raise ConfigError(f"world={name!r}: unknown Toy Kitchen world; choose one of {', '.join(WORLDS)}.")
    return WORLDS[name]


def vocabulary(world: World, panels: bool = False) -> tuple[str, ...]:
    """The tokenizers' words of a set: the world's, then (``panels``) the panel-caption words it lacks."""
    if not panels:
        return world.words
    return world.words + tuple(w for w in PANEL_WORDS if w not in world.words)
