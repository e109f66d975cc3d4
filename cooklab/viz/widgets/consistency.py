"""An explorer of CSCC's lambda (CookAnything, Eq. 12): the recipe generated at each lambda, with a slider.

    box = lambda_explorer(pipe, recipe, height=64, width=64)

Each lambda is generated once, traced for CSCC's delta norms, and drawn with
``cscc_lambda_figure`` against lambda = 0 on scales fixed by the largest lambda.
ipywidgets is imported inside the function.
"""

from __future__ import annotations

import numpy as np

from ...instrument.trace import trace as make_trace
from ..common import image_array, to_array
from ..cross_step_consistency import cscc_lambda_figure
from . import panels

__all__ = ["lambda_explorer"]


def lambda_explorer(pipe, recipe, lams=(0, 0.2, 0.4, 0.6, 0.8, 1.0), precompute: bool = False, **call_kwargs):
    """CSCC's lambda (Eq. 12) with a slider: the step images, their change from lambda = 0, the delta norms.

    pipe: a ``cooklab.CookAnything``; recipe and call_kwargs go to every call (``lam`` and
    ``cscc`` are set here; ``progress`` defaults to False). Each lambda is generated the first
    time the slider reaches it (all of them at once with ``precompute=True``) and kept in
    ``box.results[lam] = (output, delta_norm [N, L])``. Two lambdas are always generated:
    0 (CSCC off), the reference the others are compared with, and the largest one, which fixes
    the scales: the colour scale of ``|image − image(λ=0)|`` and the axis of the added norms
    stay the same while the slider moves (``box.scale = (vmax, delta_max)``), so the figures
    compare by eye.
    """
    import ipywidgets as widgets

    lams = sorted({float(x) for x in lams} | {0.0})
    kwargs = {"progress": False, **call_kwargs}
    kwargs.pop("lam", None)
    kwargs.pop("cscc", None)
    results: dict[float, tuple] = {}

    def run(lam: float):
        if lam not in results:
            with make_trace(pipe, capture=["cscc"]) as tr:
                out = pipe(recipe, cscc=True, lam=lam, **kwargs)
            results[lam] = (out, tr.canvas.cscc_delta_norm)
        return results[lam]

    for lam in lams if precompute else [0.0, lams[-1]]:
        run(lam)
    (largest, largest_delta), (reference, _) = run(lams[-1]), run(0.0)
    # the fixed scales: the largest pixel change and the largest ||Delta_n|| (1.05x, room above the bar)
    # at the largest lambda
    vmax = max(
        [
            float(np.abs(image_array(x) - image_array(y)).mean(-1).max())
            for x, y in zip(largest.images, reference.images)
        ]
        + [1e-6]
    )
    delta_max = 1.05 * max(float(np.sqrt((to_array(largest_delta) ** 2).sum(1)).max()), 1e-6)
    note = f"scale fixed at λ = {lams[-1]:g}"
    slider = widgets.SelectionSlider(
        options=[(f"{x:g}", x) for x in lams],
        value=0.2 if 0.2 in lams else lams[0],
        description="λ",
        continuous_update=False,
        style={"description_width": "initial"},
    )
    info = widgets.HTML()
    out = widgets.Output()

    def draw():
        lam = slider.value
        result, delta = run(lam)
        moved = [
            float(np.abs(image_array(a) - image_array(b)).mean()) for a, b in zip(result.images, reference.images)
        ]
        info.value = (
            f"λ = {lam:g}: mean pixel change from λ = 0, per recipe step: "
            f"{', '.join(f'{m:.2g}' for m in moved)}" + (" (λ = 0 is CSCC off: nothing is added)" if lam == 0 else "")
        )
        panels.show_figures(
            cscc_lambda_figure(
                result.images,
                reference.images,
                lam,
                delta_norm=delta,
                texts=result.recipe.texts,
                vmax=vmax,
                delta_max=delta_max,
                scale_note=note,
            )
        )

    slider.observe(lambda _: panels.redraw(out, draw), names="value")
    panels.redraw(out, draw)
    box = panels.panel(widgets, [[slider], [info]], out, dict(lam=slider))
    box.results = results
    box.scale = (vmax, delta_max)
    return box
