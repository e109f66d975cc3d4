"""An explorer of a Recipe Diffusion output, one frame at a time: each frame beside its reference.

    frame_scrubber(out)   # a RecipeDiffusionOutput

Under the images, the frame's ``FrameInfo`` (what it started from, its noise levels, its mask)
and the call's main settings as a table. ipywidgets is imported inside the function.
"""

from __future__ import annotations

import html

from ..common import LABEL_PT, new_subplots
from ..storyboard import frame_note
from . import panels

__all__ = ["frame_scrubber"]


def _settings_html(info, settings: dict) -> str:
    """A FrameInfo and the call's main settings as a small HTML table."""
    rows = [
        ("text", info.text),
        ("note", frame_note(info)),
        ("seed", info.seed),
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
    keys = ("num_inference_steps", "guidance_scale", "scheduler", "model")
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


def frame_scrubber(out):
    """Step through a ``RecipeDiffusionOutput``: each frame beside its reference, with its settings."""
    import ipywidgets as widgets

    n = len(out.frames)
    step = widgets.IntSlider(
        value=1,
        min=1,
        max=n,
        description="recipe step",
        continuous_update=False,
        style={"description_width": "initial"},
    )
    table = widgets.HTML()
    view = widgets.Output()

    def draw():
        info = out.frames[step.value - 1]
        table.value = _settings_html(info, out.settings)
        ref = next(
            (r for r in (info.mask_reference, info.kv_reference, info.reference) if r is not None), None
        )  # the reference frame j
        fig, axes = new_subplots(1, 2, figsize=(6, 3.2), layout="constrained")
        axes[0].imshow(out.images[info.index])
        axes[0].set_title(f"recipe step {info.index + 1}", fontsize=LABEL_PT)
        if ref is None:
            axes[1].text(
                0.5,
                0.5,
                "from pure noise:\nno reference",
                ha="center",
                va="center",
                color="0.35",
                fontsize=LABEL_PT,
                transform=axes[1].transAxes,
            )
        else:
            axes[1].imshow(out.images[ref])
            axes[1].set_title(f"its reference: recipe step {ref + 1}", fontsize=LABEL_PT)
        for ax in axes:
            ax.set_axis_off()
        panels.show_figures(fig)

    step.observe(lambda _: panels.redraw(out=view, draw=draw), names="value")
    panels.redraw(view, draw)
    return panels.panel(widgets, [[step]], widgets.VBox([view, table]), dict(step=step))
