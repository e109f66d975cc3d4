"""What every figure module shares: images and tensors as arrays, panels, labels, colours.

Conventions of all cooklab figures: images are PIL images, ``[H, W, 3]`` arrays or
``[3, H, W]`` tensors in ``[0, 1]`` (or uint8); maps are ``[h, w]`` tensors or arrays, drawn
stretched over the image they belong to (each cell covers ``H/h x W/w`` pixels). Recipe steps and
regions are numbered from 1 in titles and labels and from 0 in arguments, as everywhere in
cooklab. A label says "recipe step" or "denoising step" (or ``t``) wherever a figure or widget
could mean either; font sizes come from ``SMALL_PT``, ``LABEL_PT`` and ``TITLE_PT``.

The ``draw_*`` helpers draw into a given matplotlib axes; the figure modules
(``recipe_diffusion``, ``cookanything``, ``cross_step_consistency``, ``storyboard``, ``masks``) build their
figures from them, with ``new_figure`` / ``new_subplots``: pyplot figures (a notebook's inline
backend shows them at the end of the cell), or inside ``detached_figures()`` plain
``matplotlib.figure.Figure`` objects that pyplot never sees. The widgets draw detached: a
callback may run on a kernel subshell (JupyterLab 4.6's ``commsOverSubshells``) while
matplotlib-inline's end-of-cell flush closes pyplot's figures, and a detached figure is one
that flush never sees.
"""

from __future__ import annotations

import contextvars
import io
import textwrap
from contextlib import contextmanager

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from ..images import rgb_array

__all__ = [
    "LABEL_PT",
    "SMALL_PT",
    "TITLE_PT",
    "detached_figures",
    "draw_image",
    "draw_note",
    "draw_outline",
    "draw_overlay",
    "figure_png",
    "image_array",
    "layers_label",
    "lighter",
    "new_figure",
    "new_subplots",
    "short_layer_name",
    "shorten",
    "step_colors",
    "steps_label",
    "to_array",
]


# ---- font sizes ----------------------------------------------------------------------------

# Every cooklab figure is drawn at matplotlib's 100 dpi and shown 1:1 in JupyterLab (a figure up to about 9.5 inches
# wide fits the notebook column without being shrunk), so a point is 1.4 screen pixels at 100 % zoom. 9 pt (12-13 px)
# is the smallest text that still reads there; only numbers written inside small heatmap cells go below it.
SMALL_PT = 9  # tick labels, legends, notes, annotations
LABEL_PT = 10  # axis labels, panel titles
TITLE_PT = 11  # a figure's title


# ---- figures with or without pyplot --------------------------------------------------------

_DETACHED = contextvars.ContextVar("cooklab_detached_figures", default=False)


@contextmanager
def detached_figures():
    """Inside, cooklab's figure functions return plain ``Figure`` objects unknown to pyplot (this thread only).

    Nothing shows or closes them behind your back: display them yourself, e.g. as
    ``IPython.display.Image(figure_png(fig))``. The widgets draw this way.
    """
    token = _DETACHED.set(True)
    try:
        yield
    finally:
        _DETACHED.reset(token)


def new_figure(**fig_kw) -> Figure:
    """``plt.figure(**fig_kw)``, or a plain ``Figure(**fig_kw)`` inside ``detached_figures()``."""
    return Figure(**fig_kw) if _DETACHED.get() else plt.figure(**fig_kw)


def new_subplots(
    nrows: int = 1,
    ncols: int = 1,
    *,
    sharex=False,
    sharey=False,
    squeeze: bool = True,
    width_ratios=None,
    height_ratios=None,
    subplot_kw=None,
    gridspec_kw=None,
    **fig_kw,
):
    """``plt.subplots`` on ``new_figure``: ``(fig, axes)``."""
    fig = new_figure(**fig_kw)
    axes = fig.subplots(
        nrows,
        ncols,
        sharex=sharex,
        sharey=sharey,
        squeeze=squeeze,
        width_ratios=width_ratios,
        height_ratios=height_ratios,
        subplot_kw=subplot_kw,
        gridspec_kw=gridspec_kw,
    )
    return fig, axes


def figure_png(fig: Figure, **savefig_kw) -> bytes:
    """The figure rendered to PNG bytes (``bbox_inches="tight"`` as in a notebook), whatever the backend."""
    buffer = io.BytesIO()
    fig.savefig(buffer, **{"format": "png", "bbox_inches": "tight", **savefig_kw})
    return buffer.getvalue()


# ---- conversion --------------------------------------------------------------------------


def to_array(x) -> np.ndarray:
    """A tensor or array-like as a float numpy array on the CPU."""
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", torch.float32).numpy()
    return np.asarray(x, dtype=np.float32)


def image_array(image) -> np.ndarray | None:
    """An image as an ``[H, W, 3]`` float array in [0, 1] (None stays None): ``cooklab.images.rgb_array``.

    image: a PIL image, an ``[H, W]`` / ``[H, W, C]`` array, or a ``[C, H, W]`` / ``[H, W, C]``
    tensor (C = 1, 3 or 4; RGBA loses its alpha). uint8 values are divided by 255; floats
    are clipped to [0, 1].
    """
    return None if image is None else rgb_array(image)


# ---- drawing into an axes ----------------------------------------------------------------


def draw_note(ax, text: str) -> None:
    """An empty panel that says why it is empty."""
    ax.text(
        0.5, 0.5, text, ha="center", va="center", wrap=True, fontsize=SMALL_PT, color="0.35", transform=ax.transAxes
    )
    ax.set_xticks([])
    ax.set_yticks([])


def draw_image(ax, image, title: str | None = None) -> None:
    """Draw an image (or say there is none) with pixel extent and no ticks."""
    arr = image_array(image)
    if arr is None:
        draw_note(ax, "no image")
    else:
        ax.imshow(arr, extent=(0, arr.shape[1], arr.shape[0], 0))
        ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=LABEL_PT)


def draw_overlay(ax, image, heatmap, alpha: float, cmap: str, vmin, vmax, interpolation: str):
    """Image with a ``[h, w]`` heatmap stretched over it; returns the heatmap's AxesImage."""
    heat = to_array(heatmap)
    if heat.ndim != 2:
        raise ValueError(f"heatmap must be 2-D [h, w], got shape {heat.shape}")
    arr = image_array(image)
    if arr is None:
        extent = (0, heat.shape[1], heat.shape[0], 0)
        alpha = 1.0
    else:
        extent = (0, arr.shape[1], arr.shape[0], 0)
        ax.imshow(arr, extent=extent)
    mappable = ax.imshow(
        heat, extent=extent, cmap=cmap, alpha=alpha, vmin=vmin, vmax=vmax, interpolation=interpolation
    )
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    ax.set_axis_off()
    return mappable


def draw_outline(ax, mask, image_hw: tuple[int, int], color: str = "red") -> None:
    """The 0.5 contour of a mask ``[h, w]`` (e.g. on the latent grid) over a picture of ``image_hw`` = (H, W) pixels.

    Cell ``(i, j)`` of the mask is centred at ``((j + 0.5) W / w, (i + 0.5) H / h)`` in the picture's pixels.
    """
    m = to_array(mask)
    (h, w), (height, width) = m.shape, image_hw
    x = (np.arange(w) + 0.5) * width / w  # [w] cell centres in pixels
    y = (np.arange(h) + 0.5) * height / h  # [h]
    ax.contour(x, y, m, levels=[0.5], colors=color, linewidths=1.2)


# ---- labels and colours ------------------------------------------------------------------


def short_layer_name(name: str) -> str:
    """A processor key without its constant parts: ``up_blocks.1.attentions.0.attn1``."""
    return name.removesuffix(".processor").replace(".transformer_blocks.0.", ".")


def layers_label(layers) -> str:
    """Which layers a map averages, for titles."""
    if layers is None:
        return "all layers"
    return short_layer_name(layers) if isinstance(layers, str) else ", ".join(short_layer_name(x) for x in layers)


def steps_label(steps) -> str:
    """Which denoising steps a map averages, for titles ("denoising", never to be read as a recipe step)."""
    if steps is None:
        return "all denoising steps"
    st = sorted(steps)
    return f"denoising step {st[0]}" if len(st) == 1 else f"denoising steps {st[0]}..{st[-1]}"


def step_colors(n: int) -> np.ndarray:
    """[n, 3] one distinct RGB colour per step (tab10 up to 10 steps, then evenly spaced on turbo)."""
    if n <= 10:
        return np.asarray(plt.get_cmap("tab10").colors[:n], dtype=np.float32).reshape(n, 3)
    return np.asarray(plt.get_cmap("turbo")(np.linspace(0.05, 0.95, n))[:, :3], dtype=np.float32)


def lighter(rgb, amount: float = 0.55) -> np.ndarray:
    """Blend a colour (or [.., 3] colours) towards white."""
    return np.asarray(rgb, dtype=np.float32) * (1 - amount) + amount


def shorten(text: str, width: int) -> str:
    """``text`` cut at a word boundary to at most ``width`` characters, ending in '…'."""
    return textwrap.shorten(text, width, placeholder="…")
