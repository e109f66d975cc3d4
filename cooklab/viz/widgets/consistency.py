"""An explorer of CSCC (CookAnything, Eq. 12): switch it on or off, move its lambda, see pictures and tokens.

    box = lambda_explorer(pipe, recipe, measure=oracle_consistency, seed=0, height=64, width=64)

"Without CSCC" is ``cscc=False`` (the project's ablation, ``named_runs``); ``lam=0`` gives exactly
the same images (the fusion adds nothing), so the toggle's "off" is both. The recipe is generated
once with CSCC off and once per lambda (the first time the slider reaches it). Two figures:

* the pictures of the shown setting, its measure and the other setting's in the title, and under
  them ``|image(lam) − image(off)|`` per step, each lambda on its own colour scale (the 98th
  percentile of its changes, brighter saturates; the colour bar says how large), so a change of
  0.1 % of the pixel range still shows where it is; black with CSCC off, the reference itself;
* the text, where lambda always acts: for every lambda of a fine grid, the cosine similarity of
  each later step's fused T5 tokens ``C_n[o : o + t_n] + lam * C_recipe[b_n : b_n + t_n]`` (the
  pipeline's own ``cscc_fuse`` on its own encodings, mean over the step's rows) to step 1's own
  words and to the whole recipe's tokens::

      cos(u, v) = u . v / (|u| |v|),   u = mean_i fused_n[o + i],   v = mean_i C_1[o + i]  (or mean of C_recipe)

ipywidgets is imported inside the function.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..common import image_array
from ..cross_step_consistency import cscc_lambda_figure, cscc_similarity_figure
from . import panels
from .measures import Measure, measure_label

__all__ = ["lambda_explorer"]

GRID = 41  # lambdas of the similarity curves, 0 .. the slider's largest
SCALE_PERCENTILE = 98  # the top of each lambda's colour scale: this percentile of its pixel changes


def _token_similarity(pipe, spans, max_sequence_length: int, lams) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Cosine similarities of each later step's fused tokens at every lambda (see the module doc).

    spans: the ``RecipeSpans`` of a CSCC call (``out.spans``): its step texts and whole description
    are encoded again with the pipeline's encoder at the call's ``max_sequence_length`` and fused
    by ``cscc_fuse``. Returns (to_first [K, M], to_recipe [K, M], the M later steps' numbers,
    1-based); a step CSCC does not fuse (t_n = 0) is left out.
    """
    from ...cookanything.cscc import cscc_fuse  # here: cooklab.cookanything loads diffusers, cooklab.viz never does

    encode = pipe.pipe.encode_prompt
    texts = spans.step_texts
    with torch.no_grad():
        steps, _, _ = encode(prompt=texts, prompt_2=texts, device=pipe.device, max_sequence_length=max_sequence_length)
        whole, _, _ = encode(
            prompt=spans.text, prompt_2=spans.text, device=pipe.device, max_sequence_length=max_sequence_length
        )  # steps [N, L, D], whole [1, L, D]
    steps, whole = steps.float(), whole.float()
    first = spans.spans[0]
    words_1 = steps[0, first.own_start : first.own_start + first.own_length].mean(0)  # [D] step 1's own words
    recipe = whole[0, : spans.n_tokens].mean(0)  # [D] the whole recipe's tokens (</s> included)
    later = [s for s in spans.spans[1:] if s.fused_length]
    to_first, to_recipe = [], []
    for lam in lams:
        fused, _ = cscc_fuse(steps, whole, spans, float(lam))  # [N, L, D]
        rows = torch.stack(
            [fused[s.step, s.own_start : s.own_start + s.fused_length].mean(0) for s in later]
        )  # [M, D]
        to_first.append(F.cosine_similarity(rows, words_1[None], dim=-1))  # [M]
        to_recipe.append(F.cosine_similarity(rows, recipe[None], dim=-1))  # [M]
    return torch.stack(to_first).numpy(), torch.stack(to_recipe).numpy(), [s.step + 1 for s in later]


def _moved(images, reference) -> list[float]:
    """Mean |image − reference| per step (0-1 scale)."""
    return [float(np.abs(image_array(a) - image_array(b)).mean()) for a, b in zip(images, reference)]


def _scale(images, reference) -> float:
    """This lambda's colour scale: the 98th percentile of |image − reference| (mean over colour) over all steps.

    The changes of a small lambda are sparse (a few pixels of an 8-bit picture move by 1/255 or
    more); the largest alone would leave the rest black, so the top 2 % saturate instead.
    """
    diffs = np.stack(
        [np.abs(image_array(a) - image_array(b)).mean(-1) for a, b in zip(images, reference)]
    )  # [N, H, W]
    return max(float(np.percentile(diffs, SCALE_PERCENTILE)), float(diffs.max()) / 10, 1e-6)


def lambda_explorer(
    pipe,
    recipe,
    lams=(0.2, 0.4, 0.6, 0.8, 1.0),
    measure: Measure | None = None,
    precompute: bool = False,
    **call_kwargs,
):
    """CSCC on/off and its lambda (Eq. 12): the pictures, their change from CSCC off, the fused tokens' similarity.

    pipe: a ``cooklab.CookAnything``; recipe and call_kwargs go to every call (``lam`` and ``cscc``
    are set here; ``progress`` defaults to False). lams: the slider's lambdas (> 0; 0 is the
    toggle's "off"). measure: pictures -> a label for the title (e.g. ``oracle_consistency``; None:
    no label). Controls: ``box.controls["mechanism"]`` (CSCC on / off) and ``["lam"]``. The
    runs are kept: ``box.off`` (``cscc=False``) and ``box.results[lam]``, generated the first time
    the slider reaches a lambda (all at once with ``precompute=True``); ``box.similarity`` holds
    the curves ``(grid, to_first, to_recipe, steps)`` of the second figure.
    """
    import ipywidgets as widgets

    lams = sorted({float(x) for x in lams if float(x) > 0})
    if not lams:
        raise ValueError("lams holds no lambda > 0: give the slider's values, e.g. lams=(0.2, 0.4, 1.0).")
    kwargs = {"progress": False, **call_kwargs}
    kwargs.pop("lam", None)
    kwargs.pop("cscc", None)
    off = pipe(recipe, cscc=False, **kwargs)
    results: dict[float, object] = {}

    def run(lam: float):
        if lam not in results:
            results[lam] = pipe(recipe, cscc=True, lam=lam, **kwargs)
        return results[lam]

    start = 0.2 if 0.2 in lams else lams[0]
    for lam in lams if precompute else [start]:
        run(lam)
    grid = np.unique(np.concatenate([np.linspace(0, lams[-1], GRID), lams]))  # [K], 0 first
    first = results[start]
    to_first, to_recipe, steps = _token_similarity(pipe, first.spans, first.settings["max_sequence_length"], grid)
    seed = kwargs.get("seed")
    mechanism = panels.mechanism_toggle(widgets, "CSCC", on="on (λ from the slider)", off="off (cscc=False = λ 0)")
    slider = widgets.SelectionSlider(
        options=[(f"{x:g}", x) for x in lams],
        value=start,
        description="λ",
        continuous_update=False,
        style={"description_width": "initial"},
    )
    info = widgets.HTML()
    out = widgets.Output()

    def draw():
        lam, on = slider.value, mechanism.value
        result = run(lam)
        shown = result.images if on else off.images
        setting = f"CSCC on (λ = {lam:g})" if on else "CSCC off"
        label, other = measure_label(measure, shown), measure_label(measure, off.images if on else result.images)
        other_name = "off" if on else f"on, λ = {lam:g}"
        title = f"{setting}: {label}\n({other_name}: {other})" if label else setting
        title += "" if seed is None else f", seed {seed}"
        moved = _moved(result.images, off.images)
        top = _scale(result.images, off.images)  # this lambda's own scale (off: the same scale, all black)
        note = f"λ = {lam:g}'s own scale (98th pct.)" if on else f"CSCC off: the reference (λ = {lam:g}'s scale)"
        info.value = (
            f"λ = {lam:g} moves the pictures from CSCC off by {', '.join(f'{100 * m:.2f} %' for m in moved)} "
            "of the pixel range (mean per step); the tokens move for every λ (below: the curves)."
        )
        panels.show_figures(
            cscc_lambda_figure(
                shown,
                off.images,
                lam if on else 0.0,
                texts=result.recipe.texts,
                vmax=top,
                scale_note=note,
                title=title + "\ntop: the pictures · below: |image − image(CSCC off)|, each λ on its own scale",
            ),
            cscc_similarity_figure(grid, to_first, to_recipe, lam if on else 0.0, marks=lams, steps=steps),
        )

    for control in (mechanism, slider):
        control.observe(lambda _: panels.redraw(out, draw), names="value")
    panels.redraw(out, draw)
    box = panels.panel(widgets, [[mechanism], [slider], [info]], out, dict(mechanism=mechanism, lam=slider))
    box.results, box.off = results, off
    box.similarity = (grid, to_first, to_recipe, steps)
    return box
