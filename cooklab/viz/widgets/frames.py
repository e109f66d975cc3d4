"""An explorer of a Recipe Diffusion output, one frame at a time: each frame beside its reference.

    frame_scrubber(out)                                        # one run
    frame_scrubber(out, compare=independent, measure=oracle_consistency)   # the variant vs independent frames

With ``compare`` (another output of the same recipe and seed, e.g. ``variant="independent"``) a toggle
switches every picture between the two runs: on = ``out`` (the variant), off = ``compare``. The
first figure is the frame beside its reference, titled with the measure of both runs; the second
is the whole strip of both runs, the shown run at full strength and the other faded. Under the
images, the frame's ``FrameInfo`` (what it started from, its noise levels, its mask) and the call's
main settings as a table. ipywidgets is imported inside the function.
"""

from __future__ import annotations

import html

import numpy as np
from matplotlib.patches import Rectangle

from ..common import LABEL_PT, TITLE_PT, draw_note, new_subplots, to_array
from ..storyboard import frame_note
from . import panels
from .measures import measure_label

__all__ = ["comparison_title", "frame_scrubber", "runs_figure"]

FADED = 0.3  # opacity of the run that is not shown, in the strip of both runs


def _settings_html(info, settings: dict) -> str:
    """A FrameInfo and the call's main settings as a small HTML table."""
    rows = [
        ("text", info.text),
        ("note", frame_note(info)),
        ("noise seed of this frame", info.seed),
        (
            "starts from (latent)",
            _step_or_none(info.reference)
            + (f" ({info.start_from}, {info.reference_latent})" if info.start_from else ""),
        ),
        ("mask / K/V reference", f"{_step_or_none(info.mask_reference)} / {_step_or_none(info.kv_reference)}"),
        ("start index / steps run", f"{info.start_index} / {info.steps_run}"),
        ("start timestep", f"{info.start_timestep:g}"),
        ("base_noise", info.base_noise),
        ("object_noise", info.object_noise),
        ("object timestep", info.object_timestep),
        ("region-aware noise", info.region_aware),
        ("fallback", info.fallback),
    ]
    if info.mask is not None:
        rows.append(
            (
                "mask",
                f"{info.mask.source}, covers {info.mask.area:.1%}"
                + (f", box {info.mask.box}" if info.mask.box else ""),
            )
        )
    if info.kv_fallback_steps:
        rows.append(("K/V read from a neighbouring step", f"{info.kv_fallback_steps} steps"))
    keys = ("variant", "num_inference_steps", "guidance_scale", "scheduler", "model")
    rows.append(("call", ", ".join(f"{k}={settings[k]}" for k in keys if k in settings)))
    cells = "".join(
        f"<tr><td style='text-align:left;padding-right:1em'><b>{html.escape(k)}</b></td>"
        f"<td style='text-align:left'>{html.escape(str(v))}</td></tr>"
        for k, v in rows
    )
    return f"<table>{cells}</table>"


def _step_or_none(frame: int | None) -> str:
    """A frame index as "step k" (numbered from 1), or "none"."""
    return "none" if frame is None else f"step {frame + 1}"


def _reference(info) -> int | None:
    """The frame a frame was made from: its mask reference, else its K/V reference, else its start latent's."""
    return next((r for r in (info.mask_reference, info.kv_reference, info.reference) if r is not None), None)


def comparison_title(names, labels, shown: int, seed) -> str:
    """The title of an on/off comparison: the shown run's measure first, the other run's in brackets.

    names: the two runs' names (on, off); labels: their measures (``""``: no measure); shown: 0 or 1.
    E.g. "K/V sharing on: oracle consistency 2/2 (K/V sharing off: oracle consistency 0/2), seed 0".
    """
    other = 1 - shown
    if labels[shown]:
        text = f"{names[shown]}: {labels[shown]} ({names[other]}: {labels[other]})"
    else:
        text = f"{names[shown]} (the other run: {names[other]})"
    return f"{text}, seed {seed}"


def runs_figure(rows, shown: int, column: int | None, title: str | None = None):
    """The pictures of several runs, one row each: row ``shown`` at full strength, the others faded.

    rows: ``[(label, images), ...]`` with the same number of images each (recipe order);
    column: the recipe step (from 0) outlined in red in every row, or None.
    """
    n = len(rows[0][1])
    fig, axes = new_subplots(
        len(rows), n, figsize=(1.45 * n + 1.6, 1.55 * len(rows) + 0.5), squeeze=False, layout="constrained"
    )
    for r, (label, images) in enumerate(rows):
        strong = r == shown
        for c, image in enumerate(images):
            ax = axes[r, c]
            ax.imshow(image, alpha=1.0 if strong else FADED)
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if r == 0:
                ax.set_title(f"recipe step {c + 1}", fontsize=LABEL_PT)
            if c == column:
                ax.add_patch(
                    Rectangle((0, 0), 1, 1, transform=ax.transAxes, fill=False, ec="red", lw=3, clip_on=False)
                )
        axes[r, 0].text(  # the run's name and measure, left of its row (the saved PNG's tight box takes it in)
            -0.08,
            0.5,
            label,
            ha="right",
            va="center",
            transform=axes[r, 0].transAxes,
            fontsize=LABEL_PT,
            fontweight="bold",  # the same weight in every row: the figure keeps its size whichever run is shown
            color="black" if strong else "0.6",
        )
    if title:
        fig.suptitle(title, fontsize=TITLE_PT)
    return fig


def _frame_figure(run, i: int, ref: int | None, title: str, not_used: bool):
    """Frame ``i`` of ``run`` beside frame ``ref`` of the same run; ``not_used``: the frame did not start from it."""
    fig, axes = new_subplots(1, 2, figsize=(6.4, 3.5), layout="constrained")
    axes[0].imshow(run.images[i])
    axes[0].set_title(f"recipe step {i + 1}", fontsize=LABEL_PT)
    if ref is None:
        draw_note(axes[1], "from pure noise:\nno reference")
    else:
        axes[1].imshow(run.images[ref])
        what = "not used: own noise" if not_used else "its reference"
        axes[1].set_title(f"recipe step {ref + 1} ({what})", fontsize=LABEL_PT)
    for ax in axes:
        ax.set_axis_off()
    fig.suptitle(title, fontsize=TITLE_PT)
    return fig


def _first_difference(out, compare) -> int:
    """The first frame whose pictures differ between two runs (else the first that has a reference, else 0)."""
    for i, (a, b) in enumerate(zip(out.images, compare.images)):
        if not np.array_equal(to_array(a), to_array(b)):
            return i
    return next((i for i, f in enumerate(out.frames) if _reference(f) is not None), 0)


def _check_compare(out, compare) -> None:
    """``compare`` must be the same recipe on the same seed as ``out``, or the comparison means nothing."""
    if len(compare.images) != len(out.images):
        raise ValueError(
            f"compare has {len(compare.images)} frames and out {len(out.images)}: generate compare from the same "
            "recipe as out."
        )
    seeds = (out.settings.get("seed"), compare.settings.get("seed"))
    if seeds[0] != seeds[1]:
        raise ValueError(
            f"compare was generated with seed {seeds[1]} and out with seed {seeds[0]}: pass the same seed to both "
            "calls."
        )


def frame_scrubber(out, compare=None, *, measure=None, labels=None, description: str = "variant"):
    """Step through a ``RecipeDiffusionOutput``: each frame beside its reference, with its settings.

    compare: another output of the same recipe and seed (e.g. ``variant="independent"``); then the
    toggle ``box.controls["mechanism"]`` (``description``, default "variant") shows ``out``'s frames
    (on) or ``compare``'s (off), and a second figure shows the whole strip of both runs. The
    figures' titles carry ``measure`` (pictures -> label, e.g. ``oracle_consistency``; None: no
    measure) of both runs. labels: the toggle's (on, off) names (default: the two runs' variants).
    The ``step`` slider (recipe step) starts on frame 1, with ``compare`` on the first frame whose
    pictures differ between the two runs (e.g. frame 2 against independent frames, the first frame
    that used a mask against a run without masks).
    """
    import ipywidgets as widgets

    runs = [out] if compare is None else [out, compare]
    if compare is not None:
        _check_compare(out, compare)
    names = tuple(labels) if labels is not None else tuple(r.settings.get("variant", "custom") for r in runs)
    if len(names) != len(runs):
        raise ValueError(f"labels needs one name per run ({len(runs)}), got {len(names)}: {names}.")
    measured = [measure_label(measure, r.images) for r in runs]  # computed once, shown in every title
    first = 0 if compare is None else _first_difference(out, compare)
    step = widgets.IntSlider(
        value=first + 1,
        min=1,
        max=len(out.frames),
        description="recipe step",
        continuous_update=False,
        style={"description_width": "initial"},
    )
    controls = dict(step=step)
    if compare is not None:
        controls["mechanism"] = panels.mechanism_toggle(widgets, description, on=names[0], off=names[1])
    table = widgets.HTML()
    view = widgets.Output()
    seed = out.settings.get("seed")  # the call's seed (frame i draws its noise from seed + i)

    def draw():
        k = 0 if compare is None or controls["mechanism"].value else 1  # the run shown
        run, i = runs[k], step.value - 1
        info = run.frames[i]
        table.value = _settings_html(info, run.settings)
        ref = _reference(info)
        not_used = ref is None and k == 1 and _reference(out.frames[i]) is not None
        ref = _reference(out.frames[i]) if not_used else ref  # the variant's reference, in this run
        if compare is None:
            title = f"{names[0]}" + (f": {measured[0]}" if measured[0] else "") + f", seed {seed}"
            panels.show_figures(_frame_figure(run, i, ref, title, not_used))
            return
        title = comparison_title(names, measured, k, seed)
        rows = [(f"{name}\n{m}" if m else name, r.images) for name, m, r in zip(names, measured, runs)]
        panels.show_figures(
            _frame_figure(run, i, ref, title, not_used),
            runs_figure(rows, shown=k, column=i, title=f"both runs, seed {seed}: the run shown at full strength"),
        )

    for w in controls.values():
        w.observe(lambda _: panels.redraw(out=view, draw=draw), names="value")
    panels.redraw(view, draw)
    rows = [[step]] if compare is None else [[controls["mechanism"]], [step]]
    return panels.panel(widgets, rows, widgets.VBox([view, table]), controls)
