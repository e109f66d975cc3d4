"""cooklab: consistent multi-step recipe illustration with diffusion models, made visible.

Public API::

    import cooklab
    recipe = cooklab.load_recipe("data/recipes/pancakes.yaml")
    pipe = cooklab.RecipeDiffusion.from_pipe(cooklab.models.tiny_sd())
    out = pipe(recipe, seed=0)
    with cooklab.trace(pipe) as tr:
        pipe(recipe, seed=0)

Names that need torch/diffusers are imported on first use, so ``import cooklab`` and the
recipe tools stay fast.
"""

from importlib import import_module

from .errors import CheckpointError, ConfigError, CooklabError, RecipeError
from .recipe import Recipe, Step, StepPlan, as_recipe, load_recipe

# The one place of the version: pyproject.toml reads it ([tool.setuptools.dynamic]), `cooklab --version` prints it,
# docs/CHANGELOG.md records what each version changed.
__version__ = "0.1.0"

_LAZY = {
    "models": (".models", None),
    "viz": (".viz", None),
    "metrics": (".metrics", None),
    "BoxMaskProvider": (".grounding", "BoxMaskProvider"),
    "MaskProvider": (".grounding", "MaskProvider"),
    "MaskResult": (".grounding", "MaskResult"),
    "Trace": (".instrument", "Trace"),
    "locate": (".instrument", "locate"),
    "trace": (".instrument", "trace"),
    "RecipeDiffusion": (".recipe_diffusion", "RecipeDiffusion"),
    "RecipeDiffusionOutput": (".recipe_diffusion", "RecipeDiffusionOutput"),
    "CookAnything": (".cookanything", "CookAnything"),
    "CookAnythingOutput": (".cookanything", "CookAnythingOutput"),
    "plan": (".agent", "plan"),
    "RecipePlan": (".agent", "RecipePlan"),
}

__all__ = [
    "CheckpointError",
    "ConfigError",
    "CooklabError",
    "Recipe",
    "RecipeError",
    "Step",
    "StepPlan",
    "as_recipe",
    "load_recipe",
    *_LAZY,
]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'cooklab' has no attribute {name!r}")
    module, attr = _LAZY[name]
    value = import_module(module, __name__)
    value = value if attr is None else getattr(value, attr)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
