"""Write one generation run to a folder, atomically: frame PNGs, a storyboard, settings.json and index.html.

    index = write_run(out, "outputs/pancakes", model="tiny", pipeline="recipe-diffusion")

``write_run`` writes a ``RecipeDiffusionOutput`` and passes a ``CookAnythingOutput`` on to
``write_canvas_run`` (which also writes ``canvas.png``); ``write_comparison`` writes the folder above
several runs of one recipe (``compare.png`` and its page); ``write_figure`` saves a matplotlib figure.
The record comes from ``cooklab.report.record``, the page from ``cooklab.report.page``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cooklab.fileio import atomic_write
from cooklab.images import png_bytes
from cooklab.report.page import comparison_html, render_html
from cooklab.report.record import (
    CANVAS_FILE,
    COMPARE_FILE,
    FRAME_FILE,
    METRICS_FILE,
    RECIPE_FILE,
    canvas_settings,
    frame_name,
    is_canvas_output,
    run_settings,
)

__all__ = ["write_canvas_run", "write_comparison", "write_figure", "write_run"]


def _figure_png(figure: Any, dpi: int = 120) -> bytes:
    import matplotlib.pyplot as plt

    from cooklab.viz.common import figure_png

    try:
        return figure_png(figure, dpi=dpi)
    finally:
        plt.close(figure)


def write_figure(figure: Any, path: str | os.PathLike[str], dpi: int = 120) -> Path:
    """Save a matplotlib figure as PNG atomically and close it."""
    return atomic_write(path, _figure_png(figure, dpi))


def write_run(
    out: Any,
    out_dir: str | os.PathLike[str],
    *,
    model: str,
    pipeline: str,
    command: str | None = None,
    notes: Sequence[str] = (),
) -> Path:
    """Write a ``RecipeDiffusionOutput`` to ``out_dir`` and return the path of its index.html.

    Writes ``frame_00.png`` ... (one per step), ``storyboard.png``, ``settings.json`` and
    ``index.html``, each atomically. ``model`` is what the user asked for (``"tiny"``, a hub
    id or a folder), ``pipeline`` the pipeline's name, ``command`` the command line (recorded
    in settings.json) and ``notes`` lines shown at the top of the page. Frame files left by
    an earlier, longer run in the same folder are removed so the folder matches the page.

    A ``CookAnythingOutput`` is passed on to ``write_canvas_run``.
    """
    from cooklab.viz import storyboard_from_output

    if is_canvas_output(out):
        return write_canvas_run(out, out_dir, model=model, pipeline=pipeline, command=command, notes=notes)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if len(out.images) != len(out.frames):
        raise ValueError(f"out has {len(out.images)} images for {len(out.frames)} frames.")
    _write_frames(out_dir, [(info.index, image) for info, image in zip(out.frames, out.images, strict=True)])
    (out_dir / CANVAS_FILE).unlink(missing_ok=True)  # left by a CookAnything run in the same folder
    write_figure(storyboard_from_output(out), out_dir / "storyboard.png")
    data = run_settings(out, model=model, pipeline=pipeline, command=command, notes=notes)
    _write_record(out_dir, out.recipe, data)
    return atomic_write(out_dir / "index.html", render_html(data))


def _write_record(out_dir: Path, recipe: Any, data: dict) -> None:
    """settings.json and recipe.yaml; a metrics.json of an earlier run in the folder is removed.

    (That metrics.json measured other frames.)
    """
    atomic_write(out_dir / "settings.json", json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n")
    recipe.save(out_dir / RECIPE_FILE)
    (out_dir / METRICS_FILE).unlink(missing_ok=True)


def _write_frames(out_dir: Path, frames: Sequence[tuple[int, Any]]) -> None:
    """frame_NN.png for every (index, image); frame files of an earlier, longer run are removed."""
    written = {atomic_write(out_dir / frame_name(index), png_bytes(image)).name for index, image in frames}
    for stale in out_dir.iterdir():
        if FRAME_FILE.match(stale.name) and stale.name not in written:
            stale.unlink()


def _canvas_storyboard(out: Any, data: dict) -> Any:
    """Storyboard of a canvas run: every step's image and text, its token span underneath."""
    from cooklab.viz import storyboard

    limit = data["settings"].get("max_sequence_length")
    notes = []
    for entry in data["frames"]:
        span = entry["span"]
        if span is None:
            notes.append(None)
        elif span["length"] == 0:
            notes.append(f"cut off at {limit} tokens")
        elif span["truncated"]:
            notes.append(f"tokens {span['start']}+, cut ({span['length']}/{span['own_length']})")
        else:
            notes.append(f"tokens {span['start']}–{span['start'] + span['length'] - 1}")
    title = f"{out.recipe.title} — CookAnything ({', '.join(data['mechanisms']) or 'plain Flux'})"
    return storyboard(
        out.images, [entry["text"] for entry in data["frames"]], title=title, notes=notes if any(notes) else None
    )


def write_canvas_run(
    out: Any,
    out_dir: str | os.PathLike[str],
    *,
    model: str,
    pipeline: str = "cookanything",
    command: str | None = None,
    notes: Sequence[str] = (),
) -> Path:
    """Write a ``CookAnythingOutput`` to ``out_dir`` and return the path of its index.html.

    Writes ``frame_00.png`` ... (each step's region, decoded on its own), ``canvas.png`` (all
    regions, top to bottom), ``storyboard.png``, ``settings.json`` (``canvas_settings``) and
    ``index.html``, each atomically; arguments as for ``write_run``. The page shows the
    global settings, the whole-description prompt with its token count, and per step its
    text, token span / truncation, CSCC fusion, canvas rows and noise seed.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if len(out.images) != len(out.recipe):
        raise ValueError(f"out has {len(out.images)} images for {len(out.recipe)} steps.")
    data = canvas_settings(out, model=model, pipeline=pipeline, command=command, notes=notes)
    _write_frames(out_dir, list(enumerate(out.images)))
    atomic_write(out_dir / CANVAS_FILE, png_bytes(out.canvas))
    write_figure(_canvas_storyboard(out, data), out_dir / "storyboard.png")
    _write_record(out_dir, out.recipe, data)
    return atomic_write(out_dir / "index.html", render_html(data))


def write_comparison(
    out_dir: str | os.PathLike[str],
    rows: Sequence[tuple[str, Sequence[Any], str | None]],
    texts: Sequence[str],
    *,
    pages: Sequence[str | os.PathLike[str]],
    title: str,
    group_titles: Mapping[int, str] | None = None,
    notes: Sequence[str] = (),
) -> Path:
    """Write ``compare.png`` and an ``index.html`` that shows it and links every run's page; returns the page's path.

    rows, texts, group_titles, title: as ``cooklab.viz.comparison_figure`` takes them (one
    ``(label, images, caption)`` per run, the step texts, ``{row index: heading}``); pages: each
    row's run page (its index.html), one per row, linked relative to ``out_dir``; notes: lines
    shown above the figure. Both files are written atomically.
    """
    from cooklab.viz import comparison_figure

    out_dir = Path(out_dir)
    rows, pages = list(rows), [Path(page) for page in pages]
    if len(pages) != len(rows):
        raise ValueError(
            f"write_comparison got {len(pages)} pages for {len(rows)} rows: give each row its run's index.html."
        )
    group_titles = dict(group_titles or {})
    write_figure(comparison_figure(rows, texts, group_titles=group_titles, title=title), out_dir / COMPARE_FILE)
    page = comparison_html(out_dir, rows, pages, title=title, group_titles=group_titles, notes=notes)
    return atomic_write(out_dir / "index.html", page)
