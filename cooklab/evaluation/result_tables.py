"""Tables and sweep plots from an evaluation's ``results.jsonl``: means with 95 % bootstrap intervals, differences.

For a row ``r`` (a method at one grid point) and a metric ``m``, each (recipe, seed) pair ``p``
gives one value ``v_r(p)`` (the unit's ``MetricResult.value``). Over the pairs ``P`` the row was
run on (a ``nan`` -- nothing to score -- leaves the pair out)::

    mean      = 1/|P| sum_p v_r(p)
    95 % CI   = 2.5th and 97.5th percentiles of the mean over B = 10,000 resamples of P with replacement
    paired Δ  = 1/|P'| sum_p (v_r(p) - v_b(p))   over the pairs P' both r and the baseline b have,
                with its own bootstrap interval (resampling P')

The paired difference is what tells two methods apart: both saw the same recipes and seeds, so the
recipe-to-recipe spread cancels. Bootstrap draws are seeded (``numpy.random.default_rng(0)``), so a
table is the same every time it is written.

Layouts put each paper's columns in its order (only those measured appear):

* ``recipe_diffusion`` (Tables I-II): the paper's protocols first (CLIP score as a raw cosine,
  key-object DreamSim and DINO-L2), then CLIP-T, CLIP-I, whole-frame DINO-L2 and DreamSim, and the
  toy oracle's consistency and faithfulness;
* ``cookanything``: the Illustrated Instructions protocol first (4-way goal and step faithfulness,
  DINOv2 L2 consistency), then cooklab's cosine goal / step faithfulness, cross-step consistency,
  ingredient accuracy, and the oracle's.
"""

from __future__ import annotations

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


def bootstrap(x: np.ndarray, rng: np.random.Generator, resamples: int = RESAMPLES) -> tuple[float, float, float]:
    """(mean, 2.5th, 97.5th percentile of the resampled means)."""
    if len(x) == 0:
        return math.nan, math.nan, math.nan
    means = x[rng.integers(len(x), size=(resamples, len(x)))].mean(axis=1)
    return float(x.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def table(results: list[dict], spec: TableSpec, measured: list[str]) -> dict:
    """A table's numbers.

    ``{"columns": [...], "rows": [{label, n, cells: {metric: (mean, lo, hi)}, deltas: {...}}]}``.
    """
    rng = np.random.default_rng(0)
    labels = list(dict.fromkeys(r["label"] for r in results))
    if spec.methods is not None:
        labels = [label for label in labels if label in spec.methods]
    columns = spec.metrics or [
        m for m in LAYOUTS.get(spec.layout, measured) if m in measured
    ]  # "custom": every metric measured
    out = []
    for label in labels:
        cells, deltas, n = {}, {}, 0
        for m in columns:
            mine = values(results, label, m)
            n = max(n, len(mine))
            cells[m] = bootstrap(np.array(list(mine.values())), rng)
            if spec.baseline is not None and label != spec.baseline:
                base = values(results, spec.baseline, m)
                common = sorted(set(mine) & set(base))
                deltas[m] = bootstrap(np.array([mine[p] - base[p] for p in common]), rng) + (len(common),)
        out.append(dict(label=label, n=n, cells=cells, deltas=deltas))
    return dict(name=spec.name, columns=columns, baseline=spec.baseline, rows=out)


def markdown(t: dict) -> str:
    """The table as Markdown: ``mean [lo, hi]`` per cell, then ``Δ`` to the baseline with its interval."""
    head = ["row", "pairs"]
    for m in t["columns"]:
        head.append(HEADERS.get(m, m))
        if t["baseline"]:
            head.append(f"Δ {HEADERS.get(m, m)}")
    lines = [f"### {t['name']}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in t["rows"]:
        cells = [row["label"], str(row["n"])]
        for m in t["columns"]:
            mean, lo, hi = row["cells"][m]
            cells.append("—" if math.isnan(mean) else f"{mean:.3f} [{lo:.3f}, {hi:.3f}]")
            if t["baseline"]:
                if row["label"] == t["baseline"]:
                    cells.append("(baseline)")
                else:
                    d, dlo, dhi, _ = row["deltas"][m]
                    cells.append("—" if math.isnan(d) else f"{d:+.3f} [{dlo:+.3f}, {dhi:+.3f}]")
        lines.append("| " + " | ".join(cells) + " |")
    note = f"Mean over (recipe, seed) pairs with a 95 % bootstrap interval ({RESAMPLES:,} resamples)" + (
        f"; Δ: paired difference to '{t['baseline']}' over the pairs both have." if t["baseline"] else "."
    )
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
    """One method's parameter against metrics (error bars: 95 % intervals).

    With ``tradeoff``: metrics[1] against metrics[0].
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    rows = sweep_rows(results, spec.method, spec.param, spec.fixed)
    points = sorted({json_key(r["params"][spec.param]) for r in rows})
    if not points:
        return None
    rng = np.random.default_rng(0)
    stats = {}  # (metric, point) -> (mean, lo, hi)
    for m in spec.metrics:
        for x in points:
            v = [
                r["metrics"][m]["value"] for r in rows if json_key(r["params"][spec.param]) == x and m in r["metrics"]
            ]
            stats[m, x] = bootstrap(np.array([float(a) for a in v if finite(a)]), rng)
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
