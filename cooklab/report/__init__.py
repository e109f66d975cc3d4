"""Write one generation run to a folder: frame PNGs, a storyboard, settings.json and index.html.

    out = pipe(recipe, seed=0)
    index = cooklab.report.write_run(out, "outputs/pancakes", model="tiny", pipeline="recipe-diffusion")

The folder then holds::

    frame_00.png ... frame_NN.png   one image per recipe step
    storyboard.png                  all frames with their step text (cooklab.viz)
    settings.json                   the call's settings, per-frame details, versions, model id
    recipe.yaml                     the recipe the pipeline drew, with its step metadata (what ``cooklab score`` reads)
    index.html                      a static page showing all of the above (images linked relatively)

``cooklab score`` adds ``metrics.json`` and a metrics table on the page (``render_html(data, metrics=)``).

A run is written into a new (or empty) folder, or over an earlier run of cooklab only with
``overwrite=True`` (``check_run_folder``; ``is_run_folder`` recognises an earlier run by its
settings.json): then the earlier run's files are replaced, and those the new run does not write
again (the frames of a longer run, ``canvas.png``, an old ``metrics.json``, which measured other
frames) are removed, as its settings.json names them. Other files in the folder are never touched;
a folder of other files, or a file where the folder should be, is refused (``ConfigError``).

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
from cooklab.report.folder import (
    check_run_folder,
    is_run_folder,
    write_canvas_run,
    write_comparison,
    write_figure,
    write_run,
)
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
    "check_run_folder",
    "comparison_html",
    "frame_name",
    "is_canvas_output",
    "is_run_folder",
    "jsonable",
    "render_html",
    "run_settings",
    "span_text",
    "write_canvas_run",
    "write_comparison",
    "write_figure",
    "write_run",
]
