"""The Toy Kitchen: a procedural kitchen world, small diffusion models trained on it, and oracle metrics.

* ``world``     -- scene states and the deterministic renderer with per-pixel labels
* ``captions``  -- caption and instruction templates; ``WORDS`` is the tokenizers' vocabulary
* ``recipes``   -- toy recipes: actions that change a scene, with the truth of every step
* ``dataset``   -- the rendered training set and the held-out (colour, container, ingredient) triples
* ``models``    -- configs of the two model sets, ``toy_sd()`` / ``toy_flux()`` loaders
* ``train``     -- ``cooklab toykitchen train``
* ``oracle``    -- oracle metrics read from the palette: container colour and mask, ingredients, states
* ``evaluate``  -- held-out compositional accuracy of a model, read by the oracle
"""

from .oracle import OracleMaskProvider, check_frame, container_consistency, step_faithfulness
from .recipes import Expectation, ToyRecipe, random_toy_recipe
from .world import Ingredient, Rendered, Scene, render

__all__ = [
    "Expectation",
    "Ingredient",
    "OracleMaskProvider",
    "Rendered",
    "Scene",
    "ToyRecipe",
    "check_frame",
    "container_consistency",
    "random_toy_recipe",
    "render",
    "step_faithfulness",
]
