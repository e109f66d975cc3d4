"""The Toy Kitchen: a procedural kitchen world, small diffusion models trained on it, and oracle metrics.

* ``world``     -- scene states and the deterministic renderer with per-pixel labels
* ``captions``  -- caption and instruction templates; ``WORDS`` is the tokenizers' vocabulary
* ``recipes``   -- toy recipes: actions that change a scene, with the truth of every step
* ``recipes_v3`` -- world v3 recipes: texts that refer back ("fry them"), the cut kept through cooking; ``V3_WORDS``
* ``scenes_v3`` -- world v3 single scenes: cooked food that kept its cut, captions naming the whole look
* ``dataset``   -- the rendered training set and the held-out (colour, container, ingredient) triples
* ``palette_reading`` -- a picture read back from the palette: container colour, mask and kind, ingredients, states
* ``oracle``    -- oracle metrics on those readings: frame checks, consistency, faithfulness, ``OracleMaskProvider``
* ``architectures`` -- configs of the two model sets, untrained sets around a trained autoencoder
* ``train``     -- ``cooklab toykitchen train``: the autoencoder, the SD-style and Flux-style sets, the CLIP
* ``training_config`` -- ``TrainConfig`` and ``PRESETS`` of those four stages
* ``training_loop`` -- what the stages share: learning-rate schedule, loop with EMA, logs, float16 saving
* ``training_captions`` -- fresh captions per picture (with hard negatives) and their token ids
* ``panels``    -- panel pictures for the Flux-style set: 2-4 scenes stacked as CookAnything's regions, one caption
* ``worlds``    -- the texts' worlds a run can train on (``TrainConfig.world``): recipe generator and vocabulary
* ``context_captions`` -- context pairs: steps 1..k of a recipe as the text, the scene after step k as the picture
* ``autoencoder_training`` -- the ``autoencoder`` stage (food-weighted MSE + KL; widening the latent)
* ``diffusion_training`` -- the ``sd`` (v-prediction) and ``flux`` (rectified flow) stages
* ``clip_training`` -- the ``clip`` stage on renders and generated frames
* ``clip_model`` -- the Toy Kitchen CLIP: its config, contrastive loss, held-out retrieval, agreement statistics
* ``generated`` -- frames the toy pipelines draw, captioned by the oracle: the CLIP's second source of data
* ``grounding_data`` -- the toy GroundingDINO + SAM's data: scenes with exact boxes and masks, captions with negatives
* ``grounding_losses`` -- their losses: one-object detection (focal + L1 + GIoU), SAM's multi-mask loss
* ``grounding_training`` -- their configs and resumable training (``--stages detector,segmenter``)
* ``grounding_evaluation`` -- a mask provider against the renderer's boxes and masks (``evaluate-grounding``)
* ``evaluate``  -- held-out compositional accuracy of a model, read by the oracle

The trained sets ship in ``data/toykitchen/`` and load with ``cooklab.models.toy_sd()`` / ``toy_flux()`` /
``toy_clip()`` (``cooklab.models.toy``); ``GroundedSAM.toy()`` loads the grounding pair.
"""

from .oracle import OracleMaskProvider, check_frame, container_consistency, step_faithfulness
from .recipes import Expectation, Reference, ToyRecipe, random_toy_recipe
from .recipes_v3 import V3_WORDS, random_recipe_v3
from .world import Ingredient, Rendered, Scene, render

__all__ = [
    "Expectation",
    "Ingredient",
    "OracleMaskProvider",
    "Reference",
    "Rendered",
    "Scene",
    "ToyRecipe",
    "V3_WORDS",
    "check_frame",
    "container_consistency",
    "random_recipe_v3",
    "random_toy_recipe",
    "render",
    "step_faithfulness",
]
