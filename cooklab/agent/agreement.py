"""The agreement measure: how well a plan matches a recipe's hand-written metadata.

For a plan and a recipe of N steps, compared step by step::

    container      = #{n : lower(strip(plan container_n)) == lower(strip(recipe container_n))} / N
    reference_step = #{n : plan reference_step_n == recipe reference_step_n} / N

Both are exact matches (a missing container counts as "", a missing reference step as
the value None), so "jar" against "mason jar" is a miss. docs/agent.md has the rule
planner's figures on ``data/recipes/``.
"""

from __future__ import annotations

from typing import NamedTuple

from ..recipe import Recipe
from .schema import RecipePlan


class Agreement(NamedTuple):
    """How many steps of a plan match a recipe's own metadata."""

    steps: int
    container_matches: int
    reference_matches: int

    @property
    def container(self) -> float:
        """Share of steps with exactly the same container name (case-insensitive)."""
        return self.container_matches / self.steps if self.steps else 0.0

    @property
    def reference_step(self) -> float:
        """Share of steps with exactly the same reference_step (None counts as a value)."""
        return self.reference_matches / self.steps if self.steps else 0.0


def agreement(recipe_plan: RecipePlan, recipe: Recipe) -> Agreement:
    """Compare a plan with the hand-written metadata of ``recipe``, step by step."""
    recipe_plan.check(recipe)

    def same(a: str | None, b: str | None) -> bool:
        return (a or "").strip().lower() == (b or "").strip().lower()

    pairs = list(zip(recipe_plan.steps, recipe.steps))
    return Agreement(
        steps=len(pairs),
        container_matches=sum(same(p.container, s.container) for p, s in pairs),
        reference_matches=sum(p.reference_step == s.reference_step for p, s in pairs),
    )
