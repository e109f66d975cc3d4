"""Write one generation run to a folder: frame PNGs, a storyboard, settings.json and index.html.

    out = pipe(recipe, seed=0)
    index = cooklab.report.write_run(out, "outputs/pancakes", model="tiny", pipeline="recipe-diffusion")

The folder then holds::

    frame_00.png ... frame_NN.png   one image per recipe step
    storyboard.png                  all frames with their step text (cooklab.viz)
    settings.json                   the call's settings, per-frame details, versions, model id
    recipe.yaml                     the recipe the pipeline drew, with its step metadata (what ``cooklab score`` reads)
    index.html                      a static page showing all of the above (images linked relatively)

``cooklab score`` adds ``metrics.json`` and a metrics table on the page (``render_html(data, metrics=)``);
writing a new run into the folder removes an old ``metrics.json``, which measured other frames.

A ``CookAnythingOutput`` (all steps on one canvas) is written by ``write_canvas_run``, which
``write_run`` calls for it: the same files plus ``canvas.png`` (the whole canvas), and per step
its text, its token span in the whole-description encoding (truncation included, from
``out.spans``), its region of the canvas and its noise seed.

``write_comparison`` writes the folder above several runs of one recipe (``cooklab demo``'s):
``compare.png``, every run's frames in a row (``cooklab.viz.comparison_figure``), and an
``index.html`` that shows it and links each run's page.

The modules: ``record`` (what settings.json holds: ``jsonable``, ``run_settings``,
``canvas_settings``, the folder's file names), ``page`` (index.html: ``render_html``,
``comparison_html``, ``span_text``) and ``folder`` (the files: ``write_run``, ``write_canvas_run``,
``write_comparison``, ``write_figure``).

Every file is written atomically (a temporary file in the same folder, then ``os.replace``),
so an interrupted run leaves either the previous file or the new one, never half of one.
"""

from cooklab.fileio import atomic_write
from cooklab.report.folder import write_canvas_run, write_comparison, write_figure, write_run
from cooklab.report.page import comparison_html, render_html, span_text
from cooklab.report.record import (
    CANVAS_FILE,
    COMPARE_FILE,
    METRICS_FILE,
    RECIPE_FILE,
    canvas_settings,
    frame_name,
    is_canvas_output,
    jsonable,
    run_settings,
)

__all__ = [
    "CANVAS_FILE",
    "COMPARE_FILE",
    "METRICS_FILE",
    "RECIPE_FILE",
    "atomic_write",
    "canvas_settings",
    "comparison_html",
    "frame_name",
    "is_canvas_output",
    "jsonable",
    "render_html",
    "run_settings",
    "span_text",
    "write_canvas_run",
    "write_comparison",
    "write_figure",
    "write_run",
]
