"""The Toy Kitchen: a procedural kitchen world, small diffusion models trained on it, and oracle metrics.

* ``world``     -- scene states and the deterministic renderer with per-pixel labels
* ``captions``  -- caption and instruction templates; ``WORDS`` is the tokenizers' vocabulary
* ``recipes``   -- toy recipes: actions that change a scene, with the truth of every step
* ``dataset``   -- the rendered training set and the held-out (colour, container, ingredient) triples
* ``architectures`` -- configs of the two model sets, untrained sets around a trained autoencoder
* ``train``     -- ``cooklab toykitchen train``: the autoencoder, the SD-style and Flux-style sets, the CLIP
* ``clip``      -- the Toy Kitchen CLIP: its config, contrastive loss, held-out retrieval, agreement statistics
* ``generated`` -- frames the toy pipelines draw, captioned by the oracle: the CLIP's second source of data
* ``grounding_training`` -- the toy GroundingDINO + SAM: data, losses, training (``--stages detector,segmenter``)
* ``oracle``    -- oracle metrics read from the palette: container colour and mask, ingredients, states
* ``evaluate``  -- held-out compositional accuracy of a model, read by the oracle

The trained sets ship in ``data/toykitchen/`` and load with ``cooklab.models.toy_sd()`` / ``toy_flux()`` /
``toy_clip()`` (``cooklab.models.toy``); ``GroundedSAM.toy()`` loads the grounding pair.
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
