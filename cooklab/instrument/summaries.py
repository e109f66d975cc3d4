"""Numbers a trace adds up to: the per-frame and per-step summaries a reader checks against the settings.

A ``Trace`` (``cooklab.instrument.trace``) stores pooled attention maps; these functions reduce
them to a few numbers. They run no model and leave the trace as it is, so a notebook can call
them on any trace, and ``cooklab generate --trace`` writes them to ``trace_summary.txt``.

Recipe Diffusion (capture ``"reference_share"``):

* ``reference_share_means(trace)``: frame -> mean attention share on its reference frame.

CookAnything (the canvas of N regions is frame 0 of the trace):

* ``own_region_share(text_map, step, n_regions)``: of one map of the canvas's attention on
  step n's text, the share inside region n;
* ``text_image_region_shares(trace)``: that share for every step (capture ``"text_image_attention"``);
* ``text_image_share_matrix(trace)``: ``[N, N]``, the share of step n's text mass read in each region m;
* ``base_contribution_curve(trace)``: denoising step -> how much the whole-description branch
  moves the image output (capture ``"base_contribution"``);
* ``cscc_delta_means(trace)``: per step, the mean size of what CSCC added to its tokens
  (capture ``"cscc"``).

::

    with cooklab.trace(pipe, capture=["text_image_attention"]) as tr:
        out = pipe(recipe)
    text_image_region_shares(tr)  # [1.0, 1.0, 1.0]: with SRC each step's text is read by its own region only
"""

from __future__ import annotations

import torch

__all__ = [
    "base_contribution_curve",
    "cscc_delta_means",
    "own_region_share",
    "reference_share_means",
    "text_image_region_shares",
    "text_image_share_matrix",
]


def reference_share_means(trace, layers=None) -> dict[int, float]:
    """frame -> mean over its captured denoising steps of ``trace.reference_share_curve(frame, layers)``.

    The reference share is the attention mass a frame's queries put on the reference frame's
    keys (0: the reference is ignored; 0.5: it weighs as much as the frame's own tokens).
    Frames without a K/V reference (their share is 0 by construction) or without a captured
    share are left out.
    """
    means = {}
    for frame in sorted({key[0] for key in trace.reference_share}):
        if trace.frames[frame].kv_reference is None:
            continue
        curve = trace.reference_share_curve(frame, layers)
        if curve:
            means[frame] = sum(curve.values()) / len(curve)
    return means


def own_region_share(text_map: torch.Tensor, step: int, n_regions: int) -> float:
    """The share of ``text_map``'s attention mass that lies inside region ``step`` (0-based).

    text_map: [N * rows, cols], the canvas's attention mass on step ``step``'s text, the N
    regions stacked top to bottom as on the canvas (``trace.text_image_map(step)``). 1.0: only
    the step's own region reads its text; about 1/N: every region reads it alike. NaN when the
    map holds no mass at all.
    """
    m = text_map.float()
    rows = m.shape[0] // n_regions
    total = float(m.sum())
    return float(m[step * rows : (step + 1) * rows].sum()) / total if total > 0 else float("nan")


def text_image_region_shares(trace, layers=None, steps=None) -> list[float | None]:
    """``own_region_share`` of every recipe step: entry n is step n's (0-based).

    Each step's map is ``trace.text_image_map(n, layers, steps)`` (layers: names or groups to
    average, None: all captured; steps: denoising step indices, None: all). An entry is None
    when nothing was captured for it (no ``"text_image_attention"`` capture, or layers / steps
    that match none of the captured maps).
    """
    if trace.canvas is None:
        raise ValueError("the trace holds no CookAnything canvas: trace a CookAnything call first.")
    n = len(trace.canvas.texts)
    shares: list[float | None] = []
    for step in range(n):
        try:
            text_map = trace.text_image_map(step, layers, steps)  # [N * rows, cols]
        except KeyError:
            shares.append(None)
            continue
        shares.append(own_region_share(text_map, step, n))
    return shares


def text_image_share_matrix(trace, layers=None, steps=None) -> torch.Tensor:
    """``[N steps, N regions]``: row n is how step n's text mass is shared out over the regions (rows sum to 1).

    ``shares[n, m] = Σ_{p in region m} A_n[p] / Σ_p A_n[p]``, ``A_n = trace.text_image_map(n, layers, steps)``
    ([N * rows, cols], the regions stacked top to bottom). With SRC the matrix is the identity (region n
    alone sees step n's words); with full attention each row is about 1/N everywhere: the text leaks.
    A row of NaN: that map holds no mass. Raises ``KeyError`` when nothing was captured for the layers / steps.
    """
    if trace.canvas is None:
        raise ValueError("the trace holds no CookAnything canvas: trace a CookAnything call first.")
    n = len(trace.canvas.texts)
    rows = []
    for step in range(n):
        m = trace.text_image_map(step, layers, steps).float()  # [N * rows, cols]
        per_region = m.reshape(n, -1).sum(-1)  # [N]: the regions are N equal bands of rows
        total = float(per_region.sum())
        rows.append(per_region / total if total > 0 else torch.full((n,), float("nan")))
    return torch.stack(rows)


def base_contribution_curve(trace) -> dict[int, float]:
    """Denoising step -> ``|alpha (z_base - z_regional)| / |z|`` averaged over the captured layers.

    The base (whole-description) branch's share of the image output of Step-wise Regional
    Control (Eq. 9): 0 at alpha = 0. Empty when nothing was captured (no ``"base_contribution"``
    capture, or a call with ``regional=False``: there is no base branch without SRC).
    """
    per_step: dict[int, list[float]] = {}
    for (_, _, step), value in trace.base_contribution.items():
        per_step.setdefault(step, []).append(value)
    return {step: sum(values) / len(values) for step, values in sorted(per_step.items())}


def cscc_delta_means(trace) -> list[float | None]:
    """Per recipe step (entry n: step n, 0-based): the mean norm of ``lam * C_recipe`` that CSCC added
    to each of the step's fused tokens (Eq. 12), or None for a step with no fused token (cut off).

    Read from ``trace.canvas.cscc_delta_norm`` ([N, L]: the norm added to every token row of
    every step) over the first ``span.fused_length`` rows of each step's span.
    """
    canvas = trace.canvas
    if canvas is None or canvas.cscc_delta_norm is None or canvas.spans is None:
        raise ValueError(
            "the trace holds no CSCC deltas: record with capture including 'cscc' and a call with cscc=True."
        )
    means: list[float | None] = []
    for span in canvas.spans.spans:
        t = span.fused_length
        means.append(None if t == 0 else float(canvas.cscc_delta_norm[span.step, :t].mean()))
    return means
