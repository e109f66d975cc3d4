"""What every explorer is made of: an ``Output`` redrawn on each change, controls above it.

An explorer builds its controls, a ``draw()`` that makes its figures, and wires every control to
``redraw(out, draw)``; ``panel`` stacks the rows of controls over the output and keeps them as
``box.controls``. ``draw()`` ends with ``show_figures(*figs)``, which renders every figure to PNG
before it displays the first, so the output never holds half of a redraw. The figures are plain
``Figure`` objects (``redraw`` runs ``draw`` inside ``detached_figures()``): a callback may run on a
kernel subshell (JupyterLab 4.6's ``commsOverSubshells``) while matplotlib-inline's end-of-cell
flush closes pyplot's figures, and a detached figure is one that flush never sees.

The explorers call ``panels.show_figures`` through this module, so a test can replace it to keep
the figures an explorer shows.
"""

from __future__ import annotations

from ..common import detached_figures, figure_png

__all__ = ["ALL", "MECHANISM_CLASS", "mechanism_toggle", "panel", "redraw", "set_options", "show_figures"]

ALL = "all"  # option value meaning "average over all" (ipywidgets selections cannot hold None)
MECHANISM_CLASS = "cooklab-mechanism"  # the CSS class of every explorer's on/off toggle (the browser test finds it)


def show_figures(*figs) -> None:
    """Display finished figures in the current output (e.g. inside ``with out:``) as PNG images.

    Every figure is rendered before the first is displayed, so the output never holds half of a
    redraw; the figures are plain ``Figure`` objects (``redraw`` builds them detached), which no
    pyplot flush can close or show elsewhere.
    """
    from IPython.display import Image, display

    pngs = [figure_png(fig) for fig in figs]
    for png in pngs:
        display(Image(data=png))


def redraw(out, draw) -> None:
    """Clear ``out`` and run ``draw()`` inside it, with detached figures.

    A ``KeyError`` or ``ValueError`` is printed in the output ("nothing to show: ...") instead of
    being lost in a widget callback.
    """
    with out:
        out.clear_output(wait=True)
        try:
            with detached_figures():
                draw()
        except (KeyError, ValueError) as err:
            print(f"nothing to show: {err}")


def panel(widgets, rows, out, controls: dict):
    """A ``VBox`` of the control ``rows`` (one ``HBox`` each) over ``out``; ``box.controls`` names them.

    widgets: the ``ipywidgets`` module (imported by the caller, so this module never imports it).
    """
    box = widgets.VBox([*(widgets.HBox(r) for r in rows), out])
    box.controls = controls
    return box


def mechanism_toggle(widgets, description: str, on: str = "on", off: str = "off", value: bool = True):
    """The explorer's on/off switch of its mechanism: ``ToggleButtons`` whose value is ``True`` (on) or ``False``.

    Every explorer has exactly one; it carries the CSS class ``MECHANISM_CLASS``, by which
    ``tests/test_notebooks_browser.py`` finds it, flips it and checks that the figures change by
    the notebook's stated minimum. ``on`` / ``off`` are the buttons' labels (e.g. "K/V sharing on").
    """
    toggle = widgets.ToggleButtons(
        options=[(on, True), (off, False)],
        value=value,
        description=description,
        style={"description_width": "initial", "button_width": "auto"},
    )
    toggle.add_class(MECHANISM_CLASS)
    return toggle


def set_options(dropdown, options) -> None:
    """Replace a selection widget's options, keeping the current value when it is still offered (else the first)."""
    old = dropdown.value
    dropdown.options = options
    values = [v for _, v in options]
    dropdown.value = old if old in values else values[0]
