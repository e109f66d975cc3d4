"""cooklab: consistent multi-step recipe illustration with diffusion models, made visible.

Public API::

    import cooklab
    recipe = cooklab.load_recipe("data/recipes/pancakes.yaml")
    pipe = cooklab.RecipeDiffusion.from_pipe(cooklab.models.tiny_sd())
    out = pipe(recipe, seed=0)
    with cooklab.trace(pipe) as tr:
        pipe(recipe, seed=0)
"""

from . import models
from .errors import CheckpointError, ConfigError, CooklabError, RecipeError
from .grounding import BoxMaskProvider, MaskProvider, MaskResult
from .instrument import Trace, locate, trace
from .recipe import Recipe, Step, StepPlan, load_recipe
from .recipe_diffusion import RecipeDiffusion, RecipeDiffusionOutput

__version__ = "0.1.0"

__all__ = [
    "BoxMaskProvider", "CheckpointError", "ConfigError", "CooklabError", "MaskProvider", "MaskResult", "Recipe",
    "RecipeDiffusion", "RecipeDiffusionOutput", "RecipeError", "Step", "StepPlan", "Trace", "load_recipe", "locate",
    "models", "trace",
]
