"""The loss of a LoRA training run, drawn as it trains (notebook 08) or from ``loss.jsonl`` afterwards.

``loss_figure(steps, losses)`` is a plain ``matplotlib.figure.Figure`` (no pyplot state, so a widget
callback can redraw it safely); ``LiveLoss`` is an ``ipywidgets.Output`` that ``train_lora(...,
callback=live)`` redraws every few steps: the raw loss of each optimizer step and its running mean
(the flow-matching loss is noisy from step to step because every step draws its own noise level).
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from .common import LABEL_PT, TITLE_PT
from .common import figure_png as common_figure_png


def running_mean(values, window: int) -> np.ndarray:
    """Mean of the last ``window`` values at every position (fewer at the start)."""
    x = np.asarray(values, dtype=float)
    c = np.cumsum(np.insert(x, 0, 0.0))
    idx = np.arange(1, len(x) + 1)
    lo = np.maximum(0, idx - window)
    return (c[idx] - c[lo]) / (idx - lo)


def loss_figure(
    steps, losses, window: int = 25, title: str = "LoRA training loss", total: int | None = None
) -> Figure:
    """Loss per optimizer step (light) and its running mean over ``window`` steps (dark).

    The x axis runs up to ``total`` steps (None: the last step given).
    """
    fig = Figure(figsize=(6.4, 3.0), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    if len(steps):
        ax.plot(steps, losses, color="#9bb7d4", lw=0.8, label="loss of the step")
        ax.plot(steps, running_mean(losses, window), color="#1f4e79", lw=2, label=f"mean of the last {window}")
        ax.legend(loc="upper right", fontsize=LABEL_PT)
    ax.set_xlim(0, total or max(steps or [1]))
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("flow-matching loss")
    ax.set_title(title, fontsize=TITLE_PT)
    ax.grid(alpha=0.3)
    return fig


def figure_png(fig: Figure) -> bytes:
    """The figure as PNG bytes at its own size, not cropped (for an ``ipywidgets.Image`` or ``IPython.display.Image``).

    ``cooklab.viz.figure_png`` with ``bbox_inches=None``: the live plot keeps one size while it redraws.
    """
    return common_figure_png(fig, bbox_inches=None)


class LiveLoss:
    """A live loss plot: pass it as ``callback=`` to ``train_lora``; display ``.widget`` (an ``ipywidgets.Output``).

    Every ``every`` steps the figure is drawn again and shown as a PNG in the output (no pyplot state: a
    callback that redraws cannot blank another figure).
    """

    def __init__(self, total: int, every: int = 5, window: int = 25):
        import ipywidgets as widgets

        self.total, self.every, self.window = total, every, window
        self.steps: list[int] = []
        self.losses: list[float] = []
        self.widget = widgets.Output()
        self._show()

    def _show(self) -> None:
        from IPython.display import Image, display

        png = figure_png(loss_figure(self.steps, self.losses, self.window, total=self.total))
        with self.widget:
            self.widget.clear_output(wait=True)
            display(Image(data=png))

    def __call__(self, step: int, loss: float) -> None:
        """Record one optimizer step's loss; redraw every ``every`` steps and at the last.

        Args:
            step: the optimizer step, counted from 1.
            loss: its flow-matching loss.
        """
        self.steps.append(step)
        self.losses.append(loss)
        if step % self.every == 0 or step == self.total:
            self._show()
