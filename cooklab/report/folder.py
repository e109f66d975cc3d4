"""Write one generation run to a folder, atomically: frame PNGs, a storyboard, settings.json and index.html.

    index = write_run(out, "outputs/pancakes", model="tiny", pipeline="recipe-diffusion")

``write_run`` writes a ``RecipeDiffusionOutput`` and passes a ``CookAnythingOutput`` on to
``write_canvas_run`` (which also writes ``canvas.png``); both write into a new folder, or into an
earlier cooklab run when ``overwrite=True`` (``check_run_folder``, ``is_run_folder``: its
settings.json is cooklab's record), and never touch the folder's other files. ``write_comparison``
writes the folder above several runs of one recipe (``compare.png`` and its page);
``write_figure`` saves a matplotlib figure. The record comes from ``cooklab.report.record``, the
page from ``cooklab.report.page``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cooklab.fileio import atomic_write, check_output_folder
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

__all__ = [
    "check_run_folder",
    "is_run_folder",
    "write_canvas_run",
    "write_comparison",
    "write_figure",
    "write_run",
]


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


def _read_record(folder: Path) -> dict | None:
    """The ``settings.json`` of an earlier cooklab run in ``folder``, or None when there is none.

    A record of cooklab is a JSON object with the ``pipeline``, the ``frames`` (each naming its
    ``image``) and the ``versions`` it was made with, cooklab's among them.
    """
    try:
        data = json.loads((folder / "settings.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("frames"), list) or "pipeline" not in data:
        return None
    if "cooklab" not in (data.get("versions") or {}):
        return None
    return data


def is_run_folder(folder: str | os.PathLike[str]) -> bool:
    """True when ``folder`` holds an earlier run written by cooklab (its ``settings.json`` is cooklab's record)."""
    return _read_record(Path(folder)) is not None


def check_run_folder(
    out_dir: str | os.PathLike[str],
    overwrite: bool = False,
    option: str = "overwrite=True (on the command line: --overwrite)",
) -> bool:
    """Check that a run may be written to ``out_dir`` (``cooklab.fileio.check_output_folder``), before generating.

    A new or empty folder is fine; an earlier cooklab run only with ``overwrite``; a file or a
    folder of other files never (``ConfigError``, naming ``option``, the way to say overwrite).
    Returns True when an earlier run will be replaced.
    """
    return check_output_folder(out_dir, overwrite=overwrite, holds_previous=is_run_folder, what="run", option=option)


def _previous_files(out_dir: Path, overwrite: bool) -> set[str]:
    """The files an earlier run in ``out_dir`` wrote that a new run may have to remove (checked first).

    Those named by its ``settings.json``: its frames, ``canvas.png`` of a CookAnything run, and
    the ``metrics.json`` of ``cooklab score`` (it measured the earlier frames). Empty for a new folder.
    """
    if not check_run_folder(out_dir, overwrite):
        return set()
    record = _read_record(out_dir)
    names = {entry["image"] for entry in record["frames"] if isinstance(entry, dict) and "image" in entry}
    names |= {record["canvas"]} if record.get("canvas") == CANVAS_FILE else set()
    return {name for name in names if FRAME_FILE.match(name) or name == CANVAS_FILE} | {METRICS_FILE}


def _remove_unwritten(out_dir: Path, previous: set[str], written: set[str]) -> None:
    """Remove the earlier run's files that this run did not write again (frames of a longer run, its scores)."""
    for name in sorted(previous - written):
        (out_dir / name).unlink(missing_ok=True)


def write_run(
    out: Any,
    out_dir: str | os.PathLike[str],
    *,
    model: str,
    pipeline: str,
    command: str | None = None,
    notes: Sequence[str] = (),
    overwrite: bool = False,
) -> Path:
    """Write a ``RecipeDiffusionOutput`` to ``out_dir`` and return the path of its index.html.

    Writes ``settings.json`` first (it marks the folder as a cooklab run), then ``frame_00.png`` ...
    (one per step), ``storyboard.png``, ``recipe.yaml`` and ``index.html``, each atomically.
    ``model`` is what the user asked for (``"tiny"``, a hub id or a folder), ``pipeline`` the
    pipeline's name, ``command`` the command line (recorded in settings.json) and ``notes`` lines
    shown at the top of the page.

    ``out_dir`` must be new or empty, or hold an earlier cooklab run and ``overwrite=True``
    (``check_run_folder``; else a ``ConfigError``). Overwriting replaces that run's files and
    removes those the new run does not write again (the frames of a longer run, ``canvas.png`` of
    a CookAnything run, ``metrics.json``), as named by its settings.json; the folder's other files
    are never touched.

    A ``CookAnythingOutput`` is passed on to ``write_canvas_run``.
    """
    from cooklab.viz import storyboard_from_output

    if is_canvas_output(out):
        return write_canvas_run(
            out, out_dir, model=model, pipeline=pipeline, command=command, notes=notes, overwrite=overwrite
        )
    out_dir = Path(out_dir)
    if len(out.images) != len(out.frames):
        raise ValueError(f"out has {len(out.images)} images for {len(out.frames)} frames.")
    previous = _previous_files(out_dir, overwrite)
    data = run_settings(out, model=model, pipeline=pipeline, command=command, notes=notes)
    _write_settings(out_dir, data)
    written = _write_frames(out_dir, [(info.index, image) for info, image in zip(out.frames, out.images, strict=True)])
    write_figure(storyboard_from_output(out), out_dir / "storyboard.png")
    out.recipe.save(out_dir / RECIPE_FILE)
    index = atomic_write(out_dir / "index.html", render_html(data))
    _remove_unwritten(out_dir, previous, written)
    return index


def _write_settings(out_dir: Path, data: dict) -> None:
    """settings.json, the run's record (the first file a run writes: it marks the folder as cooklab's)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(out_dir / "settings.json", json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n")


def _write_frames(out_dir: Path, frames: Sequence[tuple[int, Any]]) -> set[str]:
    """frame_NN.png for every (index, image); returns the names written."""
    return {atomic_write(out_dir / frame_name(index), png_bytes(image)).name for index, image in frames}


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
    overwrite: bool = False,
) -> Path:
    """Write a ``CookAnythingOutput`` to ``out_dir`` and return the path of its index.html.

    Writes ``frame_00.png`` ... (each step's region, decoded on its own), ``canvas.png`` (all
    regions, top to bottom), ``storyboard.png``, ``settings.json`` (``canvas_settings``) and
    ``index.html``, each atomically; arguments as for ``write_run``. The page shows the
    global settings, the whole-description prompt with its token count, and per step its
    text, token span / truncation, CSCC fusion, canvas rows and noise seed. ``out_dir`` and
    ``overwrite``: as for ``write_run`` (settings.json first; an earlier run's files replaced, the
    folder's other files never touched).
    """
    out_dir = Path(out_dir)
    if len(out.images) != len(out.recipe):
        raise ValueError(f"out has {len(out.images)} images for {len(out.recipe)} steps.")
    previous = _previous_files(out_dir, overwrite)
    data = canvas_settings(out, model=model, pipeline=pipeline, command=command, notes=notes)
    _write_settings(out_dir, data)
    written = _write_frames(out_dir, list(enumerate(out.images)))
    written.add(atomic_write(out_dir / CANVAS_FILE, png_bytes(out.canvas)).name)
    write_figure(_canvas_storyboard(out, data), out_dir / "storyboard.png")
    out.recipe.save(out_dir / RECIPE_FILE)
    index = atomic_write(out_dir / "index.html", render_html(data))
    _remove_unwritten(out_dir, previous, written)
    return index


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
