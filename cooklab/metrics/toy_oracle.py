"""The Toy Kitchen oracle's measures (``cooklab.toykitchen.oracle``) through the metrics interface.

The oracle reads a Toy Kitchen picture back into the world's terms from the renderer's palette
(no learned backbone; pictures at their own size). With ``E_i`` the ``Expectation`` of step i
(``ToyRecipe.expectations``)::

    oracle container consistency  per frame i >= 2:  1 if frame i shows frame 1's container colour and its
                                   container mask has IoU >= CONSISTENCY_IOU with frame 1's, else 0
    oracle step faithfulness       per step naming an ingredient:  1 if that ingredient is present, else 0
    oracle state accuracy          per step naming an ingredient and a state:  1 if the state guess matches

value = mean of per_item, which are exactly ``oracle.container_consistency`` / ``step_faithfulness``
(as 0/1) and the hits ``oracle.state_accuracy`` averages; ``nan`` when no step qualifies.

**Reference kept** (world v3, the measure of CookAnything's CSCC: "ingredient and state kept across steps that
refer back"). A v3 step that says "fry them" or "stir the mixture" names no food itself; what it denotes is in its
``ToyRecipe.references`` (``Reference.ingredients``) and how that food must look is in the true scene after the
step, ``S_n = ToyRecipe.scenes[n]``. With ``P_n`` the picture of step n::

    items      every (step n, ingredient x) with x denoted by a food Reference of step n (each x once per step)
    truth      t = S_n.ingredient(x): its state, and for cooked food the cut it kept (t.cut, None in the old world)
    per item   1 if  oracle.ingredient_state(P_n, x) == t.state      (None -- never equal -- when x is absent:
                                                                   not ingredient_present)
                 and (t.cut is None or oracle.ingredient_cut(P_n, x) == t.cut)      else 0
    value      mean over the items; nan when no step refers back to food (every old-world recipe: no references)

The oracle's state and cut guesses are approximate on raw shapes (0.88 of the items of 60 rendered v3 recipes,
seeds 0-59, read right; cooked against raw is exact), so rendered truth scores near 1, not always at it; two rows
compared (CSCC at lambda = 0.2 against lambda = 0) carry the same reading error.
"""

from __future__ import annotations

from ..errors import ConfigError
from ..toykitchen import oracle
from ..toykitchen.recipes import Expectation, ToyRecipe
from .result import MetricResult, mean_or_nan, provenance

__all__ = [
    "oracle_container_consistency",
    "oracle_reference_kept",
    "oracle_state_accuracy",
    "oracle_step_faithfulness",
]

BACKBONE = "Toy Kitchen oracle (renderer palette, cooklab.toykitchen.oracle)"
RESOLUTION = "native (each picture at its own size; ingredient states on the 64 x 64 grid)"
THRESHOLDS = {
    "MAX_DISTANCE": oracle.MAX_DISTANCE,
    "MIN_CONTAINER_FRACTION": oracle.MIN_CONTAINER_FRACTION,
    "MIN_INGREDIENT_PIXELS": oracle.MIN_INGREDIENT_PIXELS,
    "CONSISTENCY_IOU": oracle.CONSISTENCY_IOU,
}


def _steps(images, expectations: list[Expectation]) -> list[int]:
    """0-based indices of the steps whose expectation names an ingredient (the steps the oracle scores)."""
    if len(images) != len(expectations):
        raise ConfigError(
            f"{len(images)} images but {len(expectations)} expectations: give one per step (ToyRecipe.expectations)."
        )
    return [i for i, e in enumerate(expectations) if e.ingredient is not None]


def oracle_container_consistency(images) -> MetricResult:
    """``oracle.container_consistency(images)`` as 0/1 per frame 2..N, averaged."""
    images = [oracle.read(im) for im in images]
    if len(images) < 2:
        raise ConfigError(
            f"{len(images)} image(s): container consistency compares frames 2..N with frame 1, give at least 2."
        )
    per_item = [float(ok) for ok in oracle.container_consistency(images)]
    return MetricResult(
        mean_or_nan(per_item),
        per_item,
        provenance(
            "oracle_container_consistency",
            BACKBONE,
            RESOLUTION,
            "container mask read from the palette",
            frames=list(range(1, len(images))),
            thresholds=THRESHOLDS,
            formula="1[same colour as frame 1 and mask IoU >= CONSISTENCY_IOU]; mean over frames 2..N",
        ),
    )


def oracle_step_faithfulness(images, expectations: list[Expectation]) -> MetricResult:
    """``oracle.step_faithfulness(images, expectations)`` as 0/1 per step naming an ingredient, averaged."""
    images, expectations = [oracle.read(im) for im in images], list(expectations)
    steps = _steps(images, expectations)
    per_item = [float(ok) for ok in oracle.step_faithfulness(images, expectations)]
    return MetricResult(
        mean_or_nan(per_item),
        per_item,
        provenance(
            "oracle_step_faithfulness",
            BACKBONE,
            RESOLUTION,
            "food region inside the container mask",
            steps=steps,
            thresholds=THRESHOLDS,
            formula="1[the step's ingredient is present]; mean over steps naming one",
        ),
    )


def oracle_state_accuracy(images, expectations: list[Expectation]) -> MetricResult:
    """Per step naming an ingredient and a state: 1 if ``oracle.ingredient_state`` matches it; the mean is
    ``oracle.state_accuracy``."""
    images, expectations = [oracle.read(im) for im in images], list(expectations)
    steps = [i for i in _steps(images, expectations) if expectations[i].state]
    per_item = [
        float(oracle.ingredient_state(images[i], expectations[i].ingredient) == expectations[i].state) for i in steps
    ]
    return MetricResult(
        mean_or_nan(per_item),
        per_item,
        provenance(
            "oracle_state_accuracy",
            BACKBONE,
            RESOLUTION,
            "food region inside the container mask",
            steps=steps,
            thresholds=THRESHOLDS,
            formula="1[guessed state == expected state]; mean over steps naming an ingredient and a state",
        ),
    )


def _referred_food(images, recipe: ToyRecipe) -> list[tuple[int, str]]:
    """``(step, ingredient)`` for every ingredient a step's food references denote, each once per step, in order."""
    if recipe.references and len(recipe.references) != len(images):
        raise ConfigError(
            f"{len(images)} images for a recipe of {len(recipe.references)} steps: give one picture per step."
        )
    items = []
    for n, refs in enumerate(recipe.references):
        names = dict.fromkeys(name for ref in refs for name in ref.ingredients)  # ordered, each once
        items += [(n, name) for name in names]
    return items


def _kept(reading, truth) -> bool:
    """The picture shows ``truth`` (an ``Ingredient``) in its state, and a cooked one in the cut it kept (an absent
    ingredient's state reads None: not kept)."""
    if oracle.ingredient_state(reading, truth.name) != truth.state:
        return False
    return truth.cut is None or oracle.ingredient_cut(reading, truth.name) == truth.cut


def oracle_reference_kept(images, recipe: ToyRecipe) -> MetricResult:
    """Per (step, ingredient) a step refers back to ("fry them", "stir the mixture"): 1 if the picture shows the
    ingredient in the true scene's state (and a cooked one in its kept cut), else 0; the mean; ``nan`` when no step
    refers back (old-world recipes). The formula is in the module docstring."""
    if not isinstance(recipe, ToyRecipe):
        raise ConfigError(
            f"oracle_reference_kept reads a Toy Kitchen recipe's references and true scenes, got "
            f"{type(recipe).__name__}: pass the ToyRecipe (cooklab.toykitchen.random_recipe_v3(seed))."
        )
    images = [oracle.read(im) for im in images]
    items = _referred_food(images, recipe)
    per_item = [float(_kept(images[n], recipe.scenes[n].ingredient(name))) for n, name in items]
    return MetricResult(
        mean_or_nan(per_item),
        per_item,
        provenance(
            "oracle_reference_kept",
            BACKBONE,
            RESOLUTION,
            "food region inside the container mask",
            items=[[n, name] for n, name in items],
            thresholds=THRESHOLDS,
            formula="1[denoted ingredient present, state == true state, cooked: cut == kept cut]; "
            "mean over (step, ingredient) of the steps' food references",
        ),
    )
