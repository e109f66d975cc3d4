"""Look at an evaluation's results in a notebook: one metric across rows, a parameter's effect, a mechanism on/off.

    from cooklab.evaluation import read_results
    from cooklab.evaluation.explorer import effect_figure, results_explorer
    rows = read_results("outputs/eval/toy-small/results.jsonl")
    study = read_results(shipped("eval", "results", "toykitchen_study.jsonl"))   # cooklab.resources.shipped
    effect_figure(rows, "oracle_step_faithfulness")                          # every row: mean [95 % CI]
    effect_figure(rows, "step_faithfulness", method="cookanything", param="lam")  # the metric against lam
    results_explorer(study, {"SRC": ("CookAnything", "without SRC")})        # a mechanism on and off, per recipe

``results_explorer`` switches a mechanism on and off: its full row (on) against its ablation row
(off), recipe by recipe, with the paired difference Δ = mean over the shared (recipe, seed) pairs
of (v_on − v_off) in the title. Means and intervals are the tables' (``result_tables.bootstrap``: 95 %
percentile interval of the mean over resampled recipes, each with its seeds; one seeded stream per
point, ``cell_rng``).
"""

from __future__ import annotations

import numpy as np

from ..viz.common import SMALL_PT
from ..viz.widgets import panels
from .result_tables import HEADERS, bootstrap, cell_rng, finite, json_key, sweep_rows, values

ALL = "(every row)"


def _pairs(rows, metric: str) -> dict[tuple[str, int], float]:
    """``{(recipe, seed): value}`` of ``rows`` for ``metric``, nan values left out."""
    return {
        (r["recipe"], r["seed"]): float(r["metrics"][metric]["value"])
        for r in rows
        if metric in r["metrics"] and finite(r["metrics"][metric]["value"])
    }


def effect_figure(results: list[dict], metric: str, method: str | None = None, param: str | None = None):
    """A matplotlib ``Figure``: ``metric`` per row (bars), or against ``param`` for the rows of ``method``.

    Against ``param``: points with intervals.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 3.6), layout="constrained")
    ax = fig.add_subplot()
    name = HEADERS.get(metric, metric)
    if method is not None and param is not None:
        rows = sweep_rows(results, method, param)
        xs = sorted({json_key(r["params"][param]) for r in rows}, key=str)
        if not xs:
            raise ValueError(f"no row of {method!r} sets {param!r}")
        stats = [
            bootstrap(
                _pairs([r for r in rows if json_key(r["params"][param]) == x], metric),
                cell_rng("explorer", method, param, x, metric),
            )
            for x in xs
        ]
        means = np.array([s[0] for s in stats])
        ax.errorbar(
            range(len(xs)),
            means,
            yerr=[means - [s[1] for s in stats], [s[2] for s in stats] - means],
            marker="o",
            capsize=3,
        )
        ax.set_xticks(range(len(xs)), [str(x) for x in xs])
        ax.set_xlabel(param)
        ax.set_title(f"{method}: {name} against {param}")
    else:
        labels = list(dict.fromkeys(r["label"] for r in results if method is None or r["method"] == method))
        stats = [
            bootstrap(_pairs([r for r in results if r["label"] == label], metric), cell_rng("explorer", label, metric))
            for label in labels
        ]
        means = np.array([s[0] for s in stats])
        ax.bar(
            range(len(labels)),
            means,
            yerr=[means - [s[1] for s in stats], [s[2] for s in stats] - means],
            capsize=3,
            color="#8ab",
        )
        ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=SMALL_PT)
        ax.set_title(f"{name} per row")
    ax.set_ylabel(f"{name}: mean [95 % CI]")
    return fig


def _per_recipe(pairs: dict[tuple[str, int], float]) -> dict[str, float]:
    """``{recipe: mean over its seeds}`` of ``{(recipe, seed): value}``."""
    by_recipe: dict[str, list[float]] = {}
    for (recipe, _), value in pairs.items():
        by_recipe.setdefault(recipe, []).append(value)
    return {recipe: float(np.mean(v)) for recipe, v in by_recipe.items()}


def comparison_figure(results: list[dict], full: str, ablation: str, metric: str, on: bool = True):
    """A mechanism on (row ``full``) or off (row ``ablation``): ``metric`` recipe by recipe, bars of the shown row.

    The other row is drawn as grey ticks on the same recipes; the line and band are the shown row's
    mean and 95 % interval. The title gives both rows' means and the paired difference
    Δ = mean over the pairs both rows ran of (v_full(p) − v_ablation(p)), with its interval and counts.
    """
    from matplotlib.figure import Figure

    rows = {True: values(results, full, metric), False: values(results, ablation, metric)}
    if not rows[True] or not rows[False]:
        raise ValueError(f"no value of {metric!r} for row {full if not rows[True] else ablation!r}")
    stats = {
        flag: bootstrap(pairs, cell_rng("explorer", label, metric))
        for (flag, pairs), label in zip(rows.items(), (full, ablation))
    }
    both = rows[True].keys() & rows[False].keys()
    delta = bootstrap(
        {p: rows[True][p] - rows[False][p] for p in both}, cell_rng("explorer Δ", full, ablation, metric)
    )
    recipes = sorted({recipe for recipe, _ in both})
    shown, other = _per_recipe(rows[on]), _per_recipe(rows[not on])
    fig = Figure(figsize=(7.2, 3.8), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(recipes))
    ax.bar(x, [shown.get(r, np.nan) for r in recipes], color="#2a7ab0" if on else "#c77c2e", label="shown row")
    ax.plot(x, [other.get(r, np.nan) for r in recipes], "_", color="0.45", markersize=12, mew=2, label="other row")
    mean, low, high = stats[on][:3]
    ax.axhline(mean, color="black", lw=1)
    ax.axhspan(low, high, color="0.5", alpha=0.2, lw=0)
    ax.set_xticks(x, [str(k + 1) for k in x], fontsize=SMALL_PT)
    ax.set_xlabel("recipe (mean over its seeds); line and band: the shown row's mean [95 % CI]", fontsize=SMALL_PT)
    name = HEADERS.get(metric, metric)
    ax.set_ylabel(name)
    ax.legend(fontsize=SMALL_PT, loc="upper right")
    label, other_label = (full, ablation) if on else (ablation, full)
    ax.set_title(
        f"mechanism {'on' if on else 'off'}: {label} {mean:.3f} [{low:.3f}, {high:.3f}]"
        f" ({'off' if on else 'on'}: {other_label} {stats[not on][0]:.3f})\n"
        f"paired Δ on − off {delta[0]:+.3f} [{delta[1]:+.3f}, {delta[2]:+.3f}], {delta[3]} recipes, {delta[4]} pairs",
        fontsize=SMALL_PT + 1,
    )
    return fig


def results_explorer(results: list[dict], comparisons: dict[str, tuple[str, str]], metric: str | None = None):
    """A mechanism switched on and off, recipe by recipe: its full row against its ablation row, one metric.

    comparisons: ``{name: (full row label, ablation row label)}``, e.g. ``{"SRC": ("CookAnything",
    "without SRC")}``. The toggle ``box.controls["mechanism"]`` shows the full row (on) or the
    ablation (off) with ``comparison_figure``; the dropdowns ``comparison`` and ``metric`` pick the
    pair and the measure (``metric`` first, else the first in alphabetical order). Returns a ``VBox``.
    """
    import ipywidgets as widgets

    labels = {r["label"] for r in results}
    missing = sorted({row for pair in comparisons.values() for row in pair} - labels)
    if missing:
        raise ValueError(f"comparisons name rows the results do not have: {missing}; rows: {sorted(labels)}")
    wide = {"description_width": "initial"}  # descriptions and option names whole, never cut mid-word
    mechanism = panels.mechanism_toggle(widgets, "mechanism", on="on (full row)", off="off (ablation row)")
    comparison = widgets.Dropdown(
        options=list(comparisons), description="mechanism of", style=wide, layout=widgets.Layout(width="500px")
    )
    metrics = sorted({m for r in results for m in r["metrics"]})
    metric = widgets.Dropdown(
        options=metrics,
        value=metric if metric in metrics else metrics[0],
        description="metric",
        style=wide,
        layout=widgets.Layout(width="330px"),
    )
    out = widgets.Output()

    def draw():
        full, ablation = comparisons[comparison.value]
        panels.show_figures(comparison_figure(results, full, ablation, metric.value, bool(mechanism.value)))

    for w in (mechanism, comparison, metric):
        w.observe(lambda _: panels.redraw(out, draw), names="value")
    panels.redraw(out, draw)
    controls = {"mechanism": mechanism, "comparison": comparison, "metric": metric}
    return panels.panel(widgets, [[mechanism], [comparison, metric]], out, controls)
