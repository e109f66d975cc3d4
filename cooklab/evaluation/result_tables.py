"""Tables and sweep plots from an evaluation's ``results.jsonl``: means with 95 % bootstrap intervals, differences.

For a row ``r`` (a method at one grid point) and a metric ``m``, each (recipe, seed) pair ``p``
gives one value ``v_r(p)`` (the unit's ``MetricResult.value``). Over the pairs ``P`` the row was
run on (a ``nan`` -- nothing to score -- leaves the pair out), grouped by recipe into the recipes
``R`` (recipe ``c`` holds the pairs ``P_c``, its seeds)::

    mean      = 1/|P| sum_p v_r(p)
    resample  = R*: |R| recipes drawn from R with replacement, each bringing all its pairs
    mean*     = sum_{c in R*} sum_{p in P_c} v_r(p) / sum_{c in R*} |P_c|
    95 % CI   = 2.5th and 97.5th percentiles of mean* over B = 10,000 resamples
    paired Δ  = 1/|P'| sum_p (v_r(p) - v_b(p))   over the pairs P' both r and the baseline b have
                (matched by recipe and seed), its interval resampling P' by recipe the same way

Recipes, not pairs, are resampled: the seeds of one recipe are not independent draws (they share
its text, its steps, its difficulty), so treating them as such would shrink the interval as if
there were |P| recipes instead of |R| (seeds are nested in recipes, a cluster bootstrap). Each
cell reports its number of recipes and of pairs.

The paired difference is what tells two methods apart: both saw the same recipes and seeds, so the
recipe-to-recipe spread cancels. Each cell draws from its own random stream, seeded by a stable
hash of (table, row, metric) (``cell_rng``), so a table is the same every time it is written and a
cell's interval does not depend on which other rows or columns the table has, or their order.

Layouts put each paper's columns in its order (only those measured appear):

* ``recipe_diffusion`` (Tables I-II): the paper's protocols first (CLIP score as a raw cosine,
  key-object DreamSim and DINO-L2), then CLIP-T, CLIP-I, whole-frame DINO-L2 and DreamSim, and the
  toy oracle's consistency and faithfulness;
* ``cookanything``: the Illustrated Instructions protocol first (4-way goal and step faithfulness,
  DINOv2 L2 consistency), then cooklab's cosine goal / step faithfulness, cross-step consistency,
  ingredient accuracy, and the oracle's.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np

from ..fileio import atomic_write
from .config import EvalConfig, SweepSpec, TableSpec
from .store import RESULTS_FILE, read_results

LAYOUTS = {
    "recipe_diffusion": (
        "clip_similarity",
        "dreamsim_masked",
        "dino_l2_masked",
        "clip_score",
        "clip_image_score",
        "dino_l2",
        "dreamsim",
        "oracle_container_consistency",
        "oracle_step_faithfulness",
        "oracle_state_accuracy",
    ),
    "cookanything": (
        "goal_faithfulness_mc",
        "step_faithfulness_mc",
        "cross_step_consistency_dino",
        "goal_faithfulness",
        "step_faithfulness",
        "cross_step_consistency",
        "ingredient_accuracy",
        "oracle_step_faithfulness",
        "oracle_container_consistency",
        "oracle_state_accuracy",
        "oracle_reference_kept",
    ),
}
HEADERS = {
    "clip_score": "CLIP-T",
    "clip_image_score": "CLIP-I",
    "dino_l2": "DINO-L2",
    "dino_l2_masked": "DINO-L2 (masked)",
    "dreamsim": "DreamSim",
    "oracle_container_consistency": "oracle consistency",
    "oracle_step_faithfulness": "oracle faithfulness",
    "oracle_state_accuracy": "oracle state",
    "oracle_reference_kept": "oracle reference kept",
    "goal_faithfulness": "goal faithfulness",
    "step_faithfulness": "step faithfulness",
    "cross_step_consistency": "cross-step consistency",
    "ingredient_accuracy": "ingredient accuracy",
    "clip_similarity": "CLIP score (cos)",
    "dreamsim_masked": "DreamSim (key object)",
    "goal_faithfulness_mc": "goal faithfulness (4-way)",
    "step_faithfulness_mc": "step faithfulness (4-way)",
    "cross_step_consistency_dino": "CSC (DINOv2 L2)",
}
RESAMPLES = 10_000


def finite(value) -> bool:
    """A metric value that counts: not None (nan written as null) and not nan."""
    return value is not None and not math.isnan(float(value))


def values(results: list[dict], label: str, metric: str) -> dict[tuple[str, int], float]:
    """``{(recipe, seed): value}`` of one row and metric, nan values left out."""
    return {
        (r["recipe"], r["seed"]): float(r["metrics"][metric]["value"])
        for r in results
        if r["label"] == label and metric in r["metrics"] and finite(r["metrics"][metric]["value"])
    }


def cell_rng(*names) -> np.random.Generator:
    """A random stream of its own for one cell, seeded by a stable hash of ``names`` (table, row, metric ...)."""
    digest = hashlib.sha256(json.dumps([str(n) for n in names]).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def bootstrap(
    pairs: dict[tuple[str, int], float], rng: np.random.Generator, resamples: int = RESAMPLES
) -> tuple[float, float, float, int, int]:
    """(mean over the pairs, 2.5th and 97.5th percentile of the recipe-resampled means, recipes, pairs).

    pairs: ``{(recipe, seed): value}``. Each resample draws as many recipes as there are, with
    replacement, and takes the mean over all the pairs of the recipes drawn (the module doc).
    """
    if not pairs:
        return math.nan, math.nan, math.nan, 0, 0
    recipes = sorted({recipe for recipe, _ in pairs})
    index = {recipe: k for k, recipe in enumerate(recipes)}
    sums, counts = np.zeros(len(recipes)), np.zeros(len(recipes))  # [R] each: a recipe's sum and its pairs
    for (recipe, _), value in pairs.items():
        sums[index[recipe]] += value
        counts[index[recipe]] += 1
    drawn = rng.integers(len(recipes), size=(resamples, len(recipes)))  # [B, R] recipe indices
    means = sums[drawn].sum(axis=1) / counts[drawn].sum(axis=1)  # [B]
    mean = float(sums.sum() / counts.sum())
    return mean, float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5)), len(recipes), len(pairs)


def table(results: list[dict], spec: TableSpec, measured: list[str]) -> dict:
    """A table's numbers.

    ``{"columns": [...], "rows": [{label, n, recipes, cells: {metric: (mean, lo, hi, recipes, pairs)},
    deltas: {...}}]}``; each cell (and each Δ) draws from its own ``cell_rng(table, row, metric)``.
    """
    labels = list(dict.fromkeys(r["label"] for r in results))
    if spec.methods is not None:
        labels = [label for label in labels if label in spec.methods]
    columns = spec.metrics or [
        m for m in LAYOUTS.get(spec.layout, measured) if m in measured
    ]  # "custom": every metric measured
    out = []
    for label in labels:
        cells, deltas = {}, {}
        for m in columns:
            mine = values(results, label, m)
            cells[m] = bootstrap(mine, cell_rng(spec.name, label, m))
            if spec.baseline is not None and label != spec.baseline:
                base = values(results, spec.baseline, m)
                common = sorted(set(mine) & set(base))
                differences = {p: mine[p] - base[p] for p in common}
                deltas[m] = bootstrap(differences, cell_rng(spec.name, label, m, "Δ", spec.baseline))
        n = max((c[4] for c in cells.values()), default=0)
        recipes = max((c[3] for c in cells.values()), default=0)
        out.append(dict(label=label, n=n, recipes=recipes, cells=cells, deltas=deltas))
    return dict(name=spec.name, columns=columns, baseline=spec.baseline, rows=out)


def markdown(t: dict) -> str:
    """The table as Markdown: ``mean [lo, hi]`` per cell, then ``Δ`` to the baseline with its interval."""
    head = ["row", "recipes", "pairs"]
    for m in t["columns"]:
        head.append(HEADERS.get(m, m))
        if t["baseline"]:
            head.append(f"Δ {HEADERS.get(m, m)}")
    lines = [f"### {t['name']}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in t["rows"]:
        cells = [row["label"], str(row["recipes"]), str(row["n"])]
        for m in t["columns"]:
            mean, lo, hi, _, _ = row["cells"][m]
            cells.append("—" if math.isnan(mean) else f"{mean:.3f} [{lo:.3f}, {hi:.3f}]")
            if t["baseline"]:
                if row["label"] == t["baseline"]:
                    cells.append("(baseline)")
                else:
                    d, dlo, dhi, _, _ = row["deltas"][m]
                    cells.append("—" if math.isnan(d) else f"{d:+.3f} [{dlo:+.3f}, {dhi:+.3f}]")
        lines.append("| " + " | ".join(cells) + " |")
    note = (
        "Mean over (recipe, seed) pairs with a 95 % bootstrap interval: 2.5th and 97.5th percentiles of the mean "
        f"over {RESAMPLES:,} resamples of the recipes (each recipe's seeds drawn together); recipes and pairs: the "
        "most of any column"
    ) + (f"; Δ: paired difference to '{t['baseline']}' over the pairs both have." if t["baseline"] else ".")
    return "\n".join(lines + ["", note, ""])


def sweep_rows(results: list[dict], method: str, param: str, fixed: dict | None = None) -> list[dict]:
    """The rows of ``method`` that set ``param`` and, of every other parameter, exactly ``fixed`` (default: none).

    So a sweep of ``lam`` plots CookAnything at each lambda, not averaged with rows that also change something else
    (an adapter, cross-region sharing, an ablation) at the same lambda.
    """
    fixed = fixed or {}
    return [
        r
        for r in results
        if r["method"] == method
        and param in r["params"]
        and {k: v for k, v in r["params"].items() if k != param} == fixed
    ]


def sweep_plot(results: list[dict], spec: SweepSpec, path: Path) -> Path | None:
    """One method's parameter against metrics (error bars: 95 % intervals, recipes resampled as in the tables).

    With ``tradeoff``: metrics[1] against metrics[0].
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    rows = sweep_rows(results, spec.method, spec.param, spec.fixed)
    points = sorted({json_key(r["params"][spec.param]) for r in rows})
    if not points:
        return None
    stats = {}  # (metric, point) -> (mean, lo, hi, recipes, pairs)
    for m in spec.metrics:
        for x in points:
            v = {
                (r["recipe"], r["seed"]): float(r["metrics"][m]["value"])
                for r in rows
                if json_key(r["params"][spec.param]) == x and m in r["metrics"] and finite(r["metrics"][m]["value"])
            }
            stats[m, x] = bootstrap(v, cell_rng("sweep", spec.method, spec.param, x, m))
    fig = Figure(figsize=(5, 3.6), layout="constrained")
    ax = fig.add_subplot()
    if spec.tradeoff and len(spec.metrics) >= 2:
        mx, my = spec.metrics[:2]
        xs, ys = [stats[mx, x][0] for x in points], [stats[my, x][0] for x in points]
        ax.errorbar(
            xs,
            ys,
            xerr=[
                [a - stats[mx, x][1] for a, x in zip(xs, points)],
                [stats[mx, x][2] - a for a, x in zip(xs, points)],
            ],
            yerr=[
                [a - stats[my, x][1] for a, x in zip(ys, points)],
                [stats[my, x][2] - a for a, x in zip(ys, points)],
            ],
            marker="o",
            capsize=3,
        )
        for a, b, x in zip(xs, ys, points):
            ax.annotate(f"{spec.param}={x}", (a, b), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.set_xlabel(HEADERS.get(mx, mx))
        ax.set_ylabel(HEADERS.get(my, my))
        ax.set_title(f"{spec.method}: {spec.param} trade-off")
    else:
        for m in spec.metrics:
            means = np.array([stats[m, x][0] for x in points])
            lo = means - np.array([stats[m, x][1] for x in points])
            hi = np.array([stats[m, x][2] for x in points]) - means
            ax.errorbar(
                [float(x) if _numeric(x) else i for i, x in enumerate(points)],
                means,
                yerr=[lo, hi],
                marker="o",
                capsize=3,
                label=HEADERS.get(m, m),
            )
        ax.set_xlabel(spec.param)
        ax.set_ylabel("mean [95 % CI]")
        ax.legend(fontsize=8)
        ax.set_title(f"{spec.method}: {spec.param}")
    fig.savefig(path, dpi=120)
    return path


def json_key(value):
    """A grid value as a sortable, hashable key (lists become tuples)."""
    return tuple(value) if isinstance(value, list) else value


def _numeric(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def write_reports(config: EvalConfig, out: Path) -> Path:
    """Write ``tables.md`` and ``sweep_<method>_<param>.png``.

    ``tables.md`` holds every table of the config, or one table of every row and metric.
    """
    results = read_results(out / RESULTS_FILE)
    specs = config.tables or [TableSpec(name=config.name)]
    parts = [
        f"# {config.name}",
        "",
        f"{len(results)} units: {len({r['label'] for r in results})} rows x "
        f"{len({r['recipe'] for r in results})} recipes x {len({r['seed'] for r in results})} seeds.",
        "",
    ]
    for spec in specs:
        parts.append(markdown(table(results, spec, list(config.metrics))))
    for spec in config.sweeps:
        path = sweep_plot(
            results, spec, out / f"sweep_{spec.method}_{spec.param}{'_tradeoff' if spec.tradeoff else ''}.png"
        )
        if path is not None:
            parts.append(f"![{spec.method} {spec.param}]({path.name})\n")
    return atomic_write(out / "tables.md", "\n".join(parts))
