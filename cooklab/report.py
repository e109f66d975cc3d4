"""Write one generation run to a folder: frame PNGs, a storyboard, settings.json and index.html.

    out = pipe(recipe, seed=0)
    index = cooklab.report.write_run(out, "outputs/pancakes", model="tiny", pipeline="recipe-diffusion")

The folder then holds::

    frame_00.png ... frame_NN.png   one image per recipe step
    storyboard.png                  all frames with their step text (cooklab.viz.plots)
    settings.json                   the call's settings, per-frame details, versions, model id
    index.html                      a static page showing all of the above (images linked relatively)

Every file is written atomically (a temporary file in the same folder, then ``os.replace``),
so an interrupted run leaves either the previous file or the new one, never half of one.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import html
import io
import json
import math
import os
import platform
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cooklab.fileio import atomic_write

__all__ = ["atomic_write", "frame_name", "run_settings", "write_run"]

_FRAME_FILE = re.compile(r"^frame_\d{2,}\.png$")


def frame_name(index: int) -> str:
    """File name of frame ``index`` (0-based): ``frame_00.png``, ``frame_01.png`` ..."""
    return f"frame_{index:02d}.png"


# ---- settings.json ----------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    """Turn tensors, paths, tuples, dataclasses and odd floats into plain JSON values."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "numel") and hasattr(value, "tolist"):  # torch tensor / numpy array
        return _jsonable(value.tolist()) if value.numel() <= 16 else f"<tensor of shape {tuple(value.shape)}>"
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        return _jsonable(value.item())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _jsonable(dataclasses.asdict(value))
    return str(value)


def _mask_summary(mask: Any) -> dict | None:
    """A MaskResult as area / box / source only (never the mask tensor)."""
    if mask is None:
        return None
    box = getattr(mask, "box", None)
    return {
        "area": round(float(mask.area), 6),
        "box": None if box is None else [float(v) for v in box],
        "source": getattr(mask, "source", None),
    }


def _frame_entry(info: Any, step: Any = None) -> dict:
    """One FrameInfo as a JSON-safe dict, with the mask reduced to its summary and the step's container."""
    entry = {}
    for f in dataclasses.fields(info):
        value = getattr(info, f.name)
        entry[f.name] = _mask_summary(value) if f.name == "mask" else _jsonable(value)
    entry["container"] = getattr(step, "container", None)
    entry["image"] = frame_name(info.index)
    return entry


def _versions() -> dict[str, str]:
    import diffusers
    import torch

    import cooklab

    return {
        "cooklab": cooklab.__version__,
        "diffusers": diffusers.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def _variant_name(settings: Mapping[str, Any]) -> str:
    """The preset of VARIANTS whose three switches match the settings, else "custom"."""
    from .recipe_diffusion.pipeline import VARIANTS

    switches = {k: settings.get(k) for k in ("sequential", "kv_sharing", "region_aware")}
    return next((name for name, preset in VARIANTS.items() if preset == switches), "custom")


def run_settings(out: Any, *, model: str, pipeline: str, command: str | None = None, notes: Sequence[str] = ()) -> dict:
    """The content of settings.json for a pipeline output ``out`` (JSON-safe)."""
    settings = _jsonable(dict(out.settings))
    recipe = out.recipe
    return {
        "pipeline": pipeline,
        "model": model,
        "model_name_or_path": settings.get("model"),
        "variant": _variant_name(settings),
        "command": command,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": _versions(),
        "recipe": {
            "title": recipe.title,
            "description": recipe.description,
            "source": recipe.source,
            "steps": len(recipe),
        },
        "settings": settings,
        "notes": list(notes),
        "frames": [_frame_entry(info, recipe[info.index] if info.index < len(recipe) else None) for info in out.frames],
    }


# ---- index.html -------------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 72rem;
       padding: 0 1rem; color: #222; line-height: 1.4; }
h1 { margin-bottom: .2rem; }
.description { color: #555; margin-top: 0; }
.notes { background: #fff7e0; border-left: 4px solid #e0a800; padding: .5rem 1rem; }
table.settings { border-collapse: collapse; margin: 1rem 0; font-size: .9rem; }
table.settings th, table.settings td { border: 1px solid #ddd; padding: .25rem .6rem; text-align: left; vertical-align: top; }
table.settings th { background: #f5f5f5; font-weight: 600; }
.storyboard img { max-width: 100%; border: 1px solid #ddd; }
.frames { display: grid; grid-template-columns: repeat(auto-fill, minmax(16rem, 1fr)); gap: 1rem; }
.frame { border: 1px solid #ddd; border-radius: 6px; padding: .6rem; background: #fafafa; }
.frame img { width: 100%; image-rendering: pixelated; border-radius: 4px; background: #eee; }
.frame h3 { margin: .4rem 0 .2rem; font-size: 1rem; }
.frame p.text { margin: .2rem 0 .5rem; }
.frame dl { display: grid; grid-template-columns: auto 1fr; gap: .1rem .6rem; font-size: .85rem; margin: 0; }
.frame dt { color: #666; }
.frame dd { margin: 0; }
.yes { color: #1a7f37; font-weight: 600; }
.no { color: #888; }
code { font-size: .85em; }
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _level(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _frame_html(entry: dict) -> str:
    i = entry["index"]
    ref = entry["reference"]
    start = "pure noise" if ref is None else f"step {ref + 1} (frame {ref})"
    noise = "-" if entry["base_noise"] is None else f"base {_level(entry['base_noise'])}"
    if entry["object_noise"] is not None:
        noise += f", container {_level(entry['object_noise'])}"
    timesteps = f"from t={entry['start_timestep']:g}, {entry['steps_run']} steps"
    if entry["object_timestep"] is not None:
        timesteps += f"; container from t={entry['object_timestep']:g}"
    if entry["region_aware"]:
        mask = entry.get("mask") or {}
        region = f'<span class="yes">yes</span> (mask {mask.get("area", 0):.0%} of image, {_e(mask.get("source"))})'
    else:
        region = '<span class="no">no</span>'
        if entry.get("fallback"):
            region += f": {_e(entry['fallback'])}"
    kv = "-" if entry["kv_reference"] is None else f"step {entry['kv_reference'] + 1} (frame {entry['kv_reference']})"
    if entry.get("kv_fallback_steps"):
        kv += f", {entry['kv_fallback_steps']} steps read a neighbouring step's K/V"
    rows = [
        ("container", _e(entry.get("container") or "-")),
        ("starts from", _e(start)),
        ("noise level", _e(noise)),
        ("timesteps", _e(timesteps)),
        ("region-aware", region),
        ("K/V reference", _e(kv)),
        ("seed", _e(entry["seed"])),
    ]
    details = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in rows)
    image = _e(entry["image"])
    return (
        f'<div class="frame" id="frame-{i}">'
        f'<a href="{image}"><img src="{image}" alt="{_e(f"frame {i}: " + entry["text"])}"></a>'
        f"<h3>Step {i + 1} <small>(frame {i})</small></h3>"
        f'<p class="text">{_e(entry["text"])}</p>'
        f"<dl>{details}</dl>"
        "</div>"
    )


def _settings_rows(data: dict) -> list[tuple[str, str]]:
    settings = data["settings"]
    rows = [
        ("pipeline", _e(data["pipeline"])),
        ("model", _e(data["model"]) + (f" <code>{_e(data['model_name_or_path'])}</code>" if data["model_name_or_path"] else "")),
        ("variant", _e(data["variant"])),
    ]
    for key, value in settings.items():
        if key == "model":
            continue
        if key == "kv_layers":
            names = "".join(f"<li><code>{_e(name)}</code></li>" for name in value)
            cell = f"<details><summary>{len(value)} layers</summary><ul>{names}</ul></details>" if value else "none"
        else:
            cell = "none" if value is None else _e(value)
        rows.append((key, cell))
    versions = ", ".join(f"{k} {v}" for k, v in data["versions"].items())
    rows.append(("versions", _e(versions)))
    if data.get("command"):
        rows.append(("command", f"<code>{_e(data['command'])}</code>"))
    rows.append(("created", _e(data["created"])))
    return rows


def render_html(data: dict, storyboard: str | None = "storyboard.png") -> str:
    """index.html for the content of settings.json (``run_settings``); all text is escaped."""
    recipe = data["recipe"]
    title = recipe["title"] or "Recipe"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)} - cooklab</title>",
        f"<style>{_CSS}</style>",
        "</head><body>",
        f"<h1>{_e(title)}</h1>",
    ]
    if recipe.get("description"):
        parts.append(f'<p class="description">{_e(recipe["description"])}</p>')
    if data.get("notes"):
        parts.append('<div class="notes">' + "".join(f"<p>{_e(note)}</p>" for note in data["notes"]) + "</div>")
    parts.append("<h2>Settings</h2>")
    parts.append(
        '<table class="settings">' + "".join(f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in _settings_rows(data)) + "</table>"
    )
    parts.append('<p>All settings and per-frame details: <a href="settings.json">settings.json</a></p>')
    if storyboard:
        parts.append(
            f'<h2>Storyboard</h2><p class="storyboard"><a href="{_e(storyboard)}"><img src="{_e(storyboard)}" alt="storyboard"></a></p>'
        )
    parts.append("<h2>Frames</h2>")
    parts.append('<div class="frames">' + "".join(_frame_html(entry) for entry in data["frames"]) + "</div>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


# ---- the run ----------------------------------------------------------------------------


def _png_bytes(image: Any) -> bytes:
    import numpy as np
    import PIL.Image

    if isinstance(image, np.ndarray):
        array = image
        if array.dtype != np.uint8:
            array = (np.clip(array, 0, 1) * 255).round().astype(np.uint8)
        image = PIL.Image.fromarray(array)
    if not isinstance(image, PIL.Image.Image):
        raise TypeError(f"write_run needs PIL images or numpy arrays (output_type='pil' or 'np'), got {type(image).__name__}.")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _figure_png(figure: Any, dpi: int = 120) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    try:
        figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(figure)
    return buffer.getvalue()


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
    """
    from .viz.plots import storyboard_from_output

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if len(out.images) != len(out.frames):
        raise ValueError(f"out has {len(out.images)} images for {len(out.frames)} frames.")
    written = set()
    for info, image in zip(out.frames, out.images, strict=True):
        written.add(atomic_write(out_dir / frame_name(info.index), _png_bytes(image)).name)
    for stale in out_dir.iterdir():
        if _FRAME_FILE.match(stale.name) and stale.name not in written:
            stale.unlink()
    write_figure(storyboard_from_output(out), out_dir / "storyboard.png")
    data = run_settings(out, model=model, pipeline=pipeline, command=command, notes=notes)
    atomic_write(out_dir / "settings.json", json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n")
    return atomic_write(out_dir / "index.html", render_html(data))
