"""Set-level metrics in ``cooklab evaluate``: scored per table row over the saved frames of its units, at every merge.

Goal faithfulness as the Illustrated Instructions protocol computes it
(``cooklab.metrics.goal_faithfulness_mc``) puts each frame among frames of *other* recipes, so
it is not a property of one unit: for each row (a method at one grid point), the sequences of
its units -- in unit order, recipes x seeds -- are scored together, and each unit gets its own
``MetricResult`` (the rows of the groups that fell on its frames). Rows that ran on the same
recipes and seeds draw the same groups (one generator seeded with ``SEED``), so their
difference is paired.

The set metrics are not stored in ``unit.json``: ``_merge`` (``run.py``) recomputes them from
the saved frames every time it writes ``results.jsonl``, so they can never be stale. Units
are finished when their per-unit metrics (``unit_metrics``) are scored.
"""

from __future__ import annotations

from ..errors import ConfigError
from ..toykitchen.recipes import ToyRecipe
from . import store
from .config import EvalConfig
from .scoring_backbones import metric_backbones

__all__ = ["SEED", "add_set_metrics", "check_set_metrics", "set_metrics", "unit_metrics"]

#: the multiple choice's generator seed (recorded in the docs; the same for every row)
SEED = 0


def set_metrics(config: EvalConfig) -> list[str]:
    """The config's metrics that are scored over a row's units together."""
    from ..metrics import SET_METRICS

    return [m for m in config.metrics if m in SET_METRICS]


def unit_metrics(config: EvalConfig) -> list[str]:
    """The config's metrics that are scored per unit (stored in its ``unit.json``)."""
    return [m for m in config.metrics if m not in set_metrics(config)]


def check_set_metrics(config: EvalConfig, recipes) -> None:
    """Before anything is generated: a set metric needs recipes of at least 2 different goals (titles)."""
    titles = {(r.to_recipe() if isinstance(r, ToyRecipe) else r).title for _, r in recipes}
    if set_metrics(config) and len(titles) < 2:
        raise ConfigError(
            f"{set_metrics(config)} put each frame among other recipes' goals, but every recipe of the evaluation "
            f"has the title {sorted(titles)}: evaluate at least 2 recipes with different titles, or leave them out."
        )


def add_set_metrics(config: EvalConfig, todo: list[store.Unit], records: list[dict], by_id: dict, device=None):
    """Score the set metrics of every row from its units' saved frames into ``records[k]["metrics"]`` (in place).

    todo / records: the units and their ``unit.json`` records, in unit order; by_id: recipe id -> recipe.
    """
    from ..metrics import goal_faithfulness_mc

    names = set_metrics(config)
    if not names:
        return
    backbones = metric_backbones(config, names, device)
    rows: dict[str, list[int]] = {}  # row label -> its units' indices, in unit order
    for k, unit in enumerate(todo):
        rows.setdefault(unit.label, []).append(k)
    for indices in rows.values():
        sequences = []
        for k in indices:
            recipe = by_id[todo[k].recipe_id]
            plain = recipe.to_recipe() if isinstance(recipe, ToyRecipe) else recipe
            frames = store.load_frames(todo[k], config.out, len(plain))
            if frames is None:
                raise ConfigError(
                    f"unit {todo[k].label!r} / {todo[k].recipe_id} / seed {todo[k].seed} has no saved frames in "
                    f"{todo[k].folder(config.out)}: run the command again to generate them."
                )
            sequences.append((frames, plain.title))
        for name in names:  # goal_faithfulness_mc is the one set metric
            results = goal_faithfulness_mc(sequences, backbones[name], seed=SEED)
            for k, result in zip(indices, results):
                records[k]["metrics"][name] = {"value": result.value, "per_item": result.per_item}
