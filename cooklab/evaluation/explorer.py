"""Look at an evaluation's results in a notebook: one metric across rows, or one parameter's effect, with widgets.

    from cooklab.evaluation import read_results
    from cooklab.evaluation.explorer import effect_figure, results_explorer
    rows = read_results("outputs/eval/toy-small/results.jsonl")
    effect_figure(rows, "oracle_step_faithfulness")                          # every row: mean [95 % CI]
    effect_figure(rows, "step_faithfulness", method="cookanything", param="lam")  # the metric against lam
    results_explorer(rows)                                                   # pick metric, method and parameter

Means and intervals are the tables' (``result_tables.bootstrap``: 95 % percentile interval of the
mean over resampled recipes, each with its seeds; one seeded stream per point, ``cell_rng``).
"""

from __future__ import annotations

import numpy as np

from ..viz.common import SMALL_PT
from .result_tables import HEADERS, bootstrap, cell_rng, finite, json_key, sweep_rows

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


def results_explorer(results: list[dict]):
    """Dropdowns for metric, method and parameter; the figure redraws into an ``Output``.

    The controls are in ``box.controls``.
    """
    import io

    import ipywidgets as widgets
    from IPython.display import Image, display

    metrics = sorted({m for r in results for m in r["metrics"]})
    methods = sorted({r["method"] for r in results})
    wide = {"description_width": "initial"}  # descriptions and option names whole, never cut mid-word
    metric = widgets.Dropdown(
        options=metrics, value=metrics[0], description="metric", style=wide, layout=widgets.Layout(width="330px")
    )
    method = widgets.Dropdown(
        options=[ALL, *methods], value=ALL, description="method", style=wide, layout=widgets.Layout(width="260px")
    )
    param = widgets.Dropdown(
        options=[ALL], value=ALL, description="parameter", style=wide, layout=widgets.Layout(width="260px")
    )
    out = widgets.Output()

    def swept(m: str) -> list[str]:
        """Parameters that take more than one value among the rows of method ``m``."""
        rows = [r for r in results if r["method"] == m]
        keys = sorted({k for r in rows for k in r["params"]})
        return [k for k in keys if len({str(r["params"].get(k)) for r in rows}) > 1]

    def draw(*_):
        """Redraw the figure for the dropdowns' values (the parameters offered follow the method)."""
        if method.value != ALL:
            options = [ALL, *swept(method.value)]
            if list(param.options) != options:
                param.options = options
                param.value = ALL
        elif list(param.options) != [ALL]:
            param.options, param.value = [ALL], ALL
        with out:
            out.clear_output(wait=True)
            fig = effect_figure(
                results,
                metric.value,
                None if method.value == ALL else method.value,
                None if param.value == ALL else param.value,
            )
            png = io.BytesIO()
            fig.savefig(png, format="png", dpi=100)
            display(Image(data=png.getvalue()))  # a PNG, whatever matplotlib backend the kernel has

    for w in (metric, method, param):
        w.observe(draw, names="value")
    draw()
    box = widgets.VBox([widgets.HBox([metric, method, param]), out])
    box.controls = {"metric": metric, "method": method, "param": param}
    return box
