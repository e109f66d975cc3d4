"""An explorer of one recipe generated twice on one seed: with the container masks and without them.

    mask_run_explorer(with_masks, without_masks, measure=oracle_consistency)

The mechanism is region-aware noise (Eq. 5-7, notebook 02): a frame whose reference shows its
container starts from the reference's latent noised at ``object_noise`` inside the container's mask
``M_j`` and at ``base_noise`` outside it; without a mask the whole latent gets ``base_noise``
(uniform noise). Both runs are ``RecipeDiffusionOutput`` objects of the same call except the masks
(e.g. ``mask_provider=provider`` against a provider that finds nothing).

The toggle ``box.controls["mechanism"]`` picks the run shown. The first figure is its frames, the
recipe step chosen outlined, with the ``measure`` of both runs in its title; the second is that step
beside its reference, the mask's outline on the reference where the step used one; a line under them
is the step's ``FrameInfo`` (``frame_note``, and the fallback's reason). The slider starts at the
first step that used a mask, the first where the two runs differ. ipywidgets is imported inside the function.
"""

from __future__ import annotations

import html

from ..common import LABEL_PT, draw_image, draw_note, new_subplots, to_array
from ..storyboard import frame_note
from . import panels
from .measures import measure_label

__all__ = ["mask_run_explorer"]

CHOSEN = "#d62728"  # the outline of the chosen step in the strip of frames
MASK_OUTLINE = "#0a0"  # the mask's outline on the reference frame


def _strip_figure(run, chosen: int, title: str):
    """The run's frames in a row, frame ``chosen`` (0-based) outlined."""
    n = len(run.images)
    fig, axes = new_subplots(1, n, figsize=(1.9 * n + 0.4, 2.9), layout="constrained", squeeze=False)
    for k, (ax, image, info) in enumerate(zip(axes[0], run.images, run.frames)):
        draw_image(ax, image, f"step {k + 1}" + (" (mask)" if info.mask is not None and info.region_aware else ""))
        if k == chosen:
            ax.set_axis_on()
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set(color=CHOSEN, linewidth=3)
    fig.suptitle(title, fontsize=LABEL_PT)
    return fig


def _reference_of(info) -> int | None:
    """The frame a step started from (its mask's, else its K/V's, else its latent's reference), or None."""
    return next((r for r in (info.mask_reference, info.kv_reference, info.reference) if r is not None), None)


def _step_figure(run, info):
    """Step ``info.index`` beside its reference, the mask's outline on the reference if the step used one."""
    fig, axes = new_subplots(1, 2, figsize=(5.2, 3.0), layout="constrained")
    ref = _reference_of(info)
    if ref is None:
        draw_note(axes[0], "from pure noise:\nno reference")
    else:
        draw_image(axes[0], run.images[ref], f"its reference: step {ref + 1}")
        if info.mask is not None and info.region_aware:
            mask = to_array(info.mask.mask)  # [H, W] in the reference's pixels
            axes[0].contour(mask, levels=[0.5], colors=MASK_OUTLINE, linewidths=1.5)
    draw_image(axes[1], run.images[info.index], f"recipe step {info.index + 1}")
    return fig


def _title(on: bool, labels: dict[bool, str]) -> str:
    """Which run is shown, and the measure of both (same seed)."""
    head = "with the masks: region-aware noise" if on else "without masks: uniform noise"
    if not labels[on]:
        return f"{head}, same seed for both"
    return f"{head}: {labels[on]} ({'without' if on else 'with'}: {labels[not on]}), same seed"


def mask_run_explorer(with_masks, without_masks, measure=None):
    """Toggle between a run with the container masks and the same run without them; a slider for the recipe step.

    with_masks, without_masks: ``RecipeDiffusionOutput`` of one recipe and seed, region-aware noise
    with the masks and without (uniform noise). measure: pictures -> a label for the title
    (``oracle_consistency``), or None. Returns a ``VBox``; ``box.controls`` holds ``mechanism``
    and ``step``.
    """
    import ipywidgets as widgets

    runs = {True: with_masks, False: without_masks}
    if len(with_masks.frames) != len(without_masks.frames):
        raise ValueError(
            f"with_masks has {len(with_masks.frames)} frames, without_masks {len(without_masks.frames)}: "
            "pass two runs of the same recipe"
        )
    labels = {flag: measure_label(measure, run.images) for flag, run in runs.items()}
    first = next((f.index + 1 for f in with_masks.frames if f.mask is not None and f.region_aware), 1)
    mechanism = panels.mechanism_toggle(widgets, "region-aware noise", on="with the masks", off="without masks")
    step = widgets.IntSlider(
        value=first,
        min=1,
        max=len(with_masks.frames),
        description="recipe step",
        continuous_update=False,
        style={"description_width": "initial"},
    )
    note, view = widgets.HTML(), widgets.Output()

    def draw():
        on = bool(mechanism.value)
        run = runs[on]
        info = run.frames[step.value - 1]
        why = f"; uniform noise because {info.fallback}" if info.fallback else ""
        note.value = html.escape(f"step {step.value}: {frame_note(info)}{why}")
        panels.show_figures(_strip_figure(run, info.index, _title(on, labels)), _step_figure(run, info))

    for control in (mechanism, step):
        control.observe(lambda _: panels.redraw(view, draw), names="value")
    panels.redraw(view, draw)
    return panels.panel(widgets, [[mechanism, step]], widgets.VBox([view, note]), dict(mechanism=mechanism, step=step))
