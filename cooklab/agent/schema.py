"""The Cooking Agent's schema: the pydantic models a plan is made of, and its error.

Both backends (``rules.py`` and ``openai_planner.py``) answer with a ``RecipePlan``;
``RecipePlan.step_plans()`` turns it into the per-step metadata Recipe Diffusion reads
and ``RecipePlan.prompts()`` into the enriched prompts CookAnything encodes. A plan as
JSON (``RecipePlan.model_dump_json()``, also the format of the on-disk cache); here
the rule planner's first two steps of ``data/recipes/pancakes.yaml``, prompts shortened::

    {
      "title": "Pancakes",
      "context": {"dish": "Pancakes", "style": "realistic food photography, top-down"},
      "steps": [
        {
          "step": 1,
          "text": "Whisk flour, sugar, baking powder and a pinch of salt together in a large bowl.",
          "container": "mixing bowl",
          "container_attributes": ["large", "white ceramic"],
          "reference_step": null,
          "ingredients": [{"name": "flour", "state": null}, {"name": "sugar", "state": null}, ...],
          "prompt": "realistic food photography, top-down. Pancakes, step 1: Whisk ... white ceramic mixing bowl."
        },
        {
          "step": 2,
          "text": "Beat milk, an egg and melted butter together in a jug until smooth and pale yellow.",
          "container": "jug",
          "container_attributes": ["clear glass"],
          "reference_step": null,
          "ingredients": [
            {"name": "milk", "state": null}, {"name": "egg", "state": null}, {"name": "butter", "state": "melted"}
          ],
          "prompt": "realistic food photography, top-down. Pancakes, step 2: Beat ... In the clear glass jug."
        },
        ...
      ],
      "agent": "rules",
      "prompt_version": "1"
    }

``step`` counts from 1; ``container`` is null where the step shows none;
``reference_step`` is the last earlier step that shows the same container (null at its
first appearance); ``agent`` says which backend wrote the plan ("rules",
"openai:gpt-4o", "rules (openai failed: ...)").

The language model writes only ``context`` and ``steps`` (``ModelAnswer``); the title,
``agent`` and ``prompt_version`` are filled in by cooklab.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..errors import ConfigError, CooklabError
from ..recipe import Recipe, StepPlan

PROMPT_VERSION = "1"
"""Version of the system prompt and the rule templates.

It is part of every cache key, so bumping it invalidates the cache.
"""

DEFAULT_STYLE = "realistic food photography, top-down"
"""The visual style written into every prompt unless another is asked for."""


class AgentError(CooklabError, RuntimeError):
    """The language-model planner could not produce a valid plan (says what failed, how often, and the fix)."""


_MODEL_CONFIG = ConfigDict(extra="forbid", str_strip_whitespace=True)


class IngredientState(BaseModel):
    """An ingredient as it looks in a step, e.g. ("carrot", "diced")."""

    model_config = _MODEL_CONFIG

    name: str = Field(min_length=1, description="The ingredient, e.g. 'carrot'.")
    state: str | None = Field(
        default=None, description="How it looks now, e.g. 'diced', 'melted', 'fried'; null if unchanged."
    )

    def phrase(self) -> str:
        """'diced carrot', or just 'carrot' without a state."""
        return f"{self.state} {self.name}" if self.state else self.name


class PlannedStep(BaseModel):
    """The plan for one step: the Recipe Diffusion metadata plus the CookAnything prompt."""

    model_config = _MODEL_CONFIG

    step: int = Field(description="The step number, counted from 1.")
    text: str = Field(min_length=1, description="The instruction, cleaned up but with the same meaning.")
    container: str | None = Field(
        default=None,
        description="The container or surface the step's picture shows (e.g. 'mixing bowl'); "
        "one name per physical container; null if none.",
    )
    container_attributes: list[str] = Field(
        default=[],
        description="How that container looks (size, shape, material, colour), identical every time it appears.",
    )
    reference_step: int | None = Field(
        default=None,
        description="Number of the last earlier step that shows the same container; null at its first appearance.",
    )
    ingredients: list[IngredientState] = Field(
        default=[], description="Ingredients visible in the step, with their state."
    )
    prompt: str = Field(
        min_length=1,
        description="One self-contained image prompt: the style, the dish, what the step shows, "
        "the container's look and the ingredients' states.",
    )

    @field_validator("container", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        """An empty container name means "no container"."""
        return None if isinstance(value, str) and not value.strip() else value


class RecipeContext(BaseModel):
    """What every prompt of a recipe shares: the dish and the visual style."""

    model_config = _MODEL_CONFIG

    dish: str = Field(min_length=1, description="The finished dish, e.g. 'Banana bread'.")
    style: str = Field(
        min_length=1, description="The visual style of every image, e.g. 'realistic food photography, top-down'."
    )


class RecipePlan(BaseModel):
    """The Cooking Agent's answer for a whole recipe."""

    model_config = _MODEL_CONFIG

    title: str = Field(min_length=1)
    context: RecipeContext
    steps: list[PlannedStep] = Field(min_length=1)
    agent: str
    """Which backend wrote the plan: "rules", "openai:gpt-4o", or "rules (openai failed: ...)"."""
    prompt_version: str = PROMPT_VERSION

    @model_validator(mode="after")
    def _check_numbering(self) -> RecipePlan:
        """Steps are numbered 1, 2, 3 ... and every reference_step names an earlier step."""
        for position, step in enumerate(self.steps, start=1):
            if step.step != position:
                raise ValueError(
                    f"steps[{position}] is numbered {step.step}. Fix: number the steps 1, 2, 3 ... in order."
                )
            ref = step.reference_step
            if ref is not None and not 1 <= ref < position:
                fix = (
                    "use null: step 1 has no earlier step"
                    if position == 1
                    else f"use a step from 1 to {position - 1} that shows the same container, "
                    f"or null if the container first appears in step {position}"
                )
                raise ValueError(f"step {position}: reference_step {ref} is not an earlier step. Fix: {fix}.")
        return self

    def check(self, recipe: Recipe) -> None:
        """Raise ``ConfigError`` unless this plan fits ``recipe`` (one planned step per recipe step)."""
        if len(self.steps) != len(recipe):
            raise ConfigError(
                f"the plan has {len(self.steps)} steps but the recipe '{recipe.title}' has {len(recipe)}. "
                "Fix: plan this recipe again with cooklab.agent.plan(recipe)."
            )

    def step_plans(self) -> list[StepPlan]:
        """The Recipe Diffusion metadata of every step (for ``RecipeDiffusion(metadata=...)``)."""
        return [
            StepPlan(
                container=step.container,
                container_attributes=step.container_attributes,
                reference_step=step.reference_step,
                ingredients=[ingredient.name for ingredient in step.ingredients],
            )
            for step in self.steps
        ]

    def apply(self, recipe: Recipe) -> Recipe:
        """A copy of ``recipe`` whose step metadata is this plan's (the texts stay the recipe's)."""
        self.check(recipe)
        return recipe.with_plans(self.step_plans())

    def prompts(self) -> list[str]:
        """The enriched prompt of every step, in order."""
        return [step.prompt for step in self.steps]


class ModelAnswer(BaseModel):
    """The part of a RecipePlan the language model writes (title, agent and version are ours)."""

    model_config = _MODEL_CONFIG

    context: RecipeContext
    steps: list[PlannedStep]
