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
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cooklab.fileio import atomic_write
from cooklab.versions import package_versions

__all__ = [
    "COMPARE_FILE",
    "METRICS_FILE",
    "RECIPE_FILE",
    "atomic_write",
    "canvas_settings",
    "frame_name",
    "is_canvas_output",
    "jsonable",
    "render_html",
    "run_settings",
    "write_canvas_run",
    "write_comparison",
    "write_figure",
    "write_run",
]

_FRAME_FILE = re.compile(r"^frame_\d{2,}\.png$")
CANVAS_FILE = "canvas.png"
RECIPE_FILE = "recipe.yaml"  # the recipe the run drew
METRICS_FILE = "metrics.json"  # written by cooklab score
COMPARE_FILE = "compare.png"  # written by write_comparison: several runs of one recipe, one row each
# CookAnything's three switches (settings keys) and how the page names them
MECHANISMS = (("regional", "Step-wise Regional Control"), ("flexible_rope", "Flexible RoPE"), ("cscc", "CSCC"))


def frame_name(index: int) -> str:
    """File name of frame ``index`` (0-based): ``frame_00.png``, ``frame_01.png`` ..."""
    return f"frame_{index:02d}.png"


# ---- settings.json ----------------------------------------------------------------------


def jsonable(value: Any) -> Any:
    """Turn tensors, paths, tuples, dataclasses and odd floats into plain JSON values."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "numel") and hasattr(value, "tolist"):  # torch tensor / numpy array
        return jsonable(value.tolist()) if value.numel() <= 16 else f"<tensor of shape {tuple(value.shape)}>"
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        return jsonable(value.item())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
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
        entry[f.name] = _mask_summary(value) if f.name == "mask" else jsonable(value)
    entry["container"] = getattr(step, "container", None)
    entry["image"] = frame_name(info.index)
    return entry


def _variant_name(settings: Mapping[str, Any]) -> str:
    """The preset of VARIANTS whose three switches match the settings, else "custom"."""
    from .recipe_diffusion.pipeline import VARIANTS

    switches = {k: settings.get(k) for k in ("sequential", "kv_sharing", "region_aware")}
    return next((name for name, preset in VARIANTS.items() if preset == switches), "custom")


def run_settings(
    out: Any, *, model: str, pipeline: str, command: str | None = None, notes: Sequence[str] = ()
) -> dict:
    """The content of settings.json for a pipeline output ``out`` (JSON-safe)."""
    settings = jsonable(dict(out.settings))
    recipe = out.recipe
    return {
        "pipeline": pipeline,
        "model": model,
        "model_name_or_path": settings.get("model"),
        "variant": _variant_name(settings),
        "command": command,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "versions": package_versions("cooklab", "diffusers", "torch", "python"),
        "recipe": {
            "title": recipe.title,
            "description": recipe.description,
            "source": recipe.source,
            "steps": len(recipe),
        },
        "settings": settings,
        "notes": list(notes),
        "frames": [
            _frame_entry(info, recipe[info.index] if info.index < len(recipe) else None) for info in out.frames
        ],
    }


def is_canvas_output(out: Any) -> bool:
    """True for a CookAnythingOutput (one canvas of N regions) rather than a RecipeDiffusionOutput."""
    return hasattr(out, "canvas") and hasattr(out, "layout") and not hasattr(out, "frames")


def _span_entry(span: Any) -> dict | None:
    """A cscc.StepSpan as plain JSON (None when CSCC was off and no spans were computed)."""
    if span is None:
        return None
    return {
        "start": span.start,
        "length": span.length,
        "own_length": span.own_length,
        "fused_length": span.fused_length,
        "truncated": span.truncated,
        "matches": span.matches,
    }


def canvas_settings(
    out: Any, *, model: str, pipeline: str = "cookanything", command: str | None = None, notes: Sequence[str] = ()
) -> dict:
    """The content of settings.json for a ``CookAnythingOutput`` (JSON-safe).

    ``frames`` holds one entry per step: its text, image file, rows of the canvas in pixels,
    noise seed (region n is drawn from ``seed + n``), ``span``, its tokens in the
    whole-description encoding (``None`` with CSCC off), and the ``chunk`` it was generated in
    with that chunk's ``anchors`` (1-based steps; chunked generation, ``cookanything/chunked.py``). ``whole_description`` is the base
    branch's / CSCC's prompt with its token count and the steps the token limit cut.
    """
    from .cookanything.cscc import whole_description

    settings = jsonable(dict(out.settings))
    recipe, layout, spans = out.recipe, out.layout, out.spans
    texts = list(recipe.texts)
    height, seed = settings.get("height"), settings.get("seed")
    whole = None
    if spans is not None:
        whole = {"text": spans.text, "tokens": spans.n_tokens, "truncated_steps": spans.truncated_steps}
    elif settings.get("regional"):  # base branch without CSCC: same text, no token accounting
        whole = {"text": whole_description(texts, recipe.title)[0], "tokens": None, "truncated_steps": None}
    if whole is not None:
        whole["max_sequence_length"] = settings.get("max_sequence_length")
    frames = []
    for n, text in enumerate(texts):
        frames.append(
            {
                "index": n,
                "text": text,
                "container": getattr(recipe[n], "container", None),
                "image": frame_name(n),
                "canvas_rows": None if height is None else [n * height, (n + 1) * height],
                "noise_seed": None if seed is None else seed + n,
                "span": _span_entry(spans.spans[n]) if spans is not None else None,
                "chunk": settings["frame_chunks"][n],
                "anchors": settings["frame_anchors"][n],
            }
        )
    return {
        "pipeline": pipeline,
        "model": model,
        "model_name_or_path": settings.get("model"),
        "mechanisms": [label for key, label in MECHANISMS if settings.get(key)],
        "command": command,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "versions": package_versions("cooklab", "diffusers", "torch", "python"),
        "recipe": {
            "title": recipe.title,
            "description": recipe.description,
            "source": recipe.source,
            "steps": len(recipe),
        },
        "settings": settings,
        "layout": {
            "n_regions": layout.n_regions,
            "rows": layout.rows,
            "cols": layout.cols,
            "region_tokens": layout.region_tokens,
            "step_text_len": layout.step_text_len,
            "base_text_len": layout.base_text_len,
            "text_len": layout.text_len,
            "image_len": layout.image_len,
            "total": layout.total,
        },
        "whole_description": whole,
        "canvas": CANVAS_FILE,
        "notes": list(notes),
        "frames": frames,
    }


def span_text(span: dict | None, max_length: int | None, cscc: bool = True) -> str:
    """One line about a step's tokens in the whole-description encoding (page and storyboard)."""
    if span is None:
        return "CSCC off: no token span computed"
    limit = f"the {max_length}-token limit" if max_length else "the token limit"
    if span["length"] == 0:
        return f"cut off: beyond {limit} of the whole description ({span['own_length']} tokens alone)"
    where = f"tokens {span['start']}–{span['start'] + span['length'] - 1}"
    if span["truncated"]:
        return f"{where}, cut at {limit}: {span['length']} of its tokens kept ({span['own_length']} alone)"
    return f"{where} ({span['length']} tokens)"


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
.canvas img { max-height: 80vh; max-width: 100%; image-rendering: pixelated; border: 1px solid #ddd; }
.whole { background: #f5f5f5; padding: .5rem 1rem; border-radius: 4px; }
.cut { color: #b35900; font-weight: 600; }
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
    if ref is None:
        start = "pure noise"
    else:
        why = {"previous": "the previous frame", "reference": "the reference frame"}.get(entry.get("start_from"), "")
        latent = {"encoded": "its image encoded by the VAE", "final": "its final latent"}.get(
            entry.get("reference_latent"), ""
        )
        start = f"step {ref + 1} (frame {ref}" + "".join(f", {x}" for x in (why, latent) if x) + ")"
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


def _step_html(entry: dict, data: dict) -> str:
    """One step of a CookAnything canvas: its image, text, token span, region and seed."""
    i = entry["index"]
    settings = data["settings"]
    span = entry.get("span")
    tokens = _e(span_text(span, settings.get("max_sequence_length")))
    if span is not None and (span["truncated"] or span["length"] == 0):
        tokens = f'<span class="cut">{tokens}</span>'
    if not settings.get("cscc"):
        cscc = '<span class="no">off</span>'
    elif span is not None and not span["matches"]:
        cscc = '<span class="no">nothing fused</span> (its whole-description token ids differ from the step alone)'
    elif span is None or span["fused_length"] == 0:
        cscc = '<span class="no">nothing fused</span> (the step is beyond the token limit)'
    else:
        cscc = _e(f"first {span['fused_length']} tokens + {settings.get('lam'):g} × their whole-description tokens")
    rows_px = entry.get("canvas_rows")
    rows = [
        ("container", _e(entry.get("container") or "-")),
        ("whole description", tokens),
        ("CSCC", cscc),
        ("canvas rows", "-" if rows_px is None else _e(f"{rows_px[0]}–{rows_px[1] - 1} px")),
        ("noise seed", _e(entry.get("noise_seed"))),
    ]
    if (
        len(settings.get("chunks") or ()) > 1
    ):  # run folders written before chunking record no chunks (cooklab score reads them)
        anchors = ", ".join(str(j) for j in entry["anchors"]) or "none"
        rows.append(("chunk", _e(f"{entry['chunk']} of {len(settings['chunks'])} (anchor steps: {anchors})")))
    details = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in rows)
    image = _e(entry["image"])
    return (
        f'<div class="frame" id="frame-{i}">'
        f'<a href="{image}"><img src="{image}" alt="{_e(f"step {i + 1}: " + entry["text"])}"></a>'
        f"<h3>Step {i + 1} <small>(region {i})</small></h3>"
        f'<p class="text">{_e(entry["text"])}</p>'
        f"<dl>{details}</dl>"
        "</div>"
    )


def _whole_html(data: dict) -> str:
    """The whole-description prompt (base branch and/or CSCC) and what the token limit cut."""
    whole = data.get("whole_description")
    if whole is None:
        return ""
    settings = data["settings"]
    uses = [
        use
        for key, use in (("regional", "the base branch's prompt"), ("cscc", "CSCC's recipe encoding"))
        if settings.get(key)
    ]
    limit = whole.get("max_sequence_length")
    if whole.get("tokens") is None:
        count = _e(f"encoded to at most {limit} T5 tokens (CSCC off: token spans not computed)")
    else:
        count = _e(f"{whole['tokens']} of at most {limit} T5 tokens")
        cut = whole.get("truncated_steps") or []
        if cut:
            steps = ", ".join(str(n + 1) for n in cut)
            count += f'; <span class="cut">{_e(f"cut at the limit: step(s) {steps} lose tokens")}</span>'
        else:
            count += "; no step is cut"
    used_as = " and ".join(uses)
    return (
        f"<h2>Whole description</h2><p>{_e(used_as[:1].upper() + used_as[1:])}, {count}:</p>"
        f'<p class="whole">{_e(whole["text"])}</p>'
    )


def _settings_rows(data: dict) -> list[tuple[str, str]]:
    settings = data["settings"]
    rows = [
        ("pipeline", _e(data["pipeline"])),
        (
            "model",
            _e(data["model"])
            + (f" <code>{_e(data['model_name_or_path'])}</code>" if data["model_name_or_path"] else ""),
        ),
    ]
    if "variant" in data:
        rows.append(("variant", _e(data["variant"])))
    if "mechanisms" in data:
        rows.append(("mechanisms", _e(", ".join(data["mechanisms"]) or "none (plain Flux on the canvas)")))
    if "layout" in data:
        lay = data["layout"]
        rows.append(
            (
                "layout",
                _e(
                    f"{lay['n_regions']} regions of {lay['rows']}×{lay['cols']} tokens stacked vertically; text "
                    f"{lay['base_text_len']} (whole description) + {lay['n_regions']} × {lay['step_text_len']} (steps); "
                    f"{lay['total']} tokens in the joint sequence"
                ),
            )
        )
    for key, value in settings.items():
        if key == "model":
            continue
        if key in ("kv_layers", "regional_layers"):
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


def _number(value: float | None) -> str:
    return "nan" if value is None or not math.isfinite(value) else f"{value:.4g}"


def _metrics_html(metrics: Mapping[str, Mapping[str, Any]]) -> str:
    """The metrics table: per metric its value, the items it averages and what measured it (``metrics.json``'s entries)."""
    rows = []
    for name, result in metrics.items():
        record = result["record"]
        items = ", ".join(_number(v) for v in result["per_item"]) or "none"
        note = f"<br><small>{_e(record['note'])}</small>" if record.get("note") else ""
        rows.append(
            f"<tr><th>{_e(name)}</th><td>{_number(result['value'])}</td><td>{_e(items)}</td>"
            f"<td>{_e(record.get('backbone'))}{note}</td><td>{_e(record.get('formula'))}</td></tr>"
        )
    return (
        '<h2>Metrics</h2><table class="settings"><tr><th>metric</th><th>value</th><th>per item</th><th>measured by</th>'
        f"<th>formula</th></tr>{''.join(rows)}</table>"
        f'<p>How each was computed (resolution, texts, pairs, versions): <a href="{METRICS_FILE}">{METRICS_FILE}</a>; '
        "definitions in docs/metrics.md.</p>"
    )


def _page_head(title: str, description: str | None, notes) -> list[str]:
    """The start of a page: doctype, head with the style sheet, the title as h1, the description and the notes."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)} - cooklab</title>",
        f"<style>{_CSS}</style>",
        "</head><body>",
        f"<h1>{_e(title)}</h1>",
    ]
    if description:
        parts.append(f'<p class="description">{_e(description)}</p>')
    if notes:
        parts.append('<div class="notes">' + "".join(f"<p>{_e(note)}</p>" for note in notes) + "</div>")
    return parts


def render_html(
    data: dict, storyboard: str | None = "storyboard.png", metrics: Mapping[str, Mapping[str, Any]] | None = None
) -> str:
    """index.html for the content of settings.json (``run_settings`` or ``canvas_settings``); all text is escaped.

    metrics: ``{name: {"value", "per_item", "record"}}`` (``metrics.json``'s ``metrics``), shown as a table after the settings.
    """
    recipe = data["recipe"]
    parts = _page_head(recipe["title"] or "Recipe", recipe.get("description"), data.get("notes"))
    parts.append("<h2>Settings</h2>")
    parts.append(
        '<table class="settings">'
        + "".join(f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in _settings_rows(data))
        + "</table>"
    )
    canvas = data.get("canvas")
    parts.append(
        f'<p>All settings and per-{"step" if canvas else "frame"} details: <a href="settings.json">settings.json</a></p>'
    )
    if metrics:
        parts.append(_metrics_html(metrics))
    if canvas:
        parts.append(_whole_html(data))
    if storyboard:
        parts.append(
            f'<h2>Storyboard</h2><p class="storyboard"><a href="{_e(storyboard)}"><img src="{_e(storyboard)}" alt="storyboard"></a></p>'
        )
    if canvas:
        parts.append(
            f"<h2>Canvas</h2><p>All steps were denoised together on this one canvas, one region per step, top to bottom.</p>"
            f'<p class="canvas"><a href="{_e(canvas)}"><img src="{_e(canvas)}" alt="the whole canvas"></a></p>'
        )
        parts.append("<h2>Steps</h2>")
        parts.append('<div class="frames">' + "".join(_step_html(entry, data) for entry in data["frames"]) + "</div>")
    else:
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
        raise TypeError(
            f"write_run needs PIL images or numpy arrays (output_type='pil' or 'np'), got {type(image).__name__}."
        )
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _figure_png(figure: Any, dpi: int = 120) -> bytes:
    import matplotlib.pyplot as plt

    from .viz.common import figure_png

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
    from .viz import storyboard_from_output

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
    """settings.json and recipe.yaml; a metrics.json of an earlier run in the folder is removed (it measured other frames)."""
    atomic_write(out_dir / "settings.json", json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n")
    recipe.save(out_dir / RECIPE_FILE)
    (out_dir / METRICS_FILE).unlink(missing_ok=True)


def _write_frames(out_dir: Path, frames: Sequence[tuple[int, Any]]) -> None:
    """frame_NN.png for every (index, image); frame files of an earlier, longer run are removed."""
    written = {atomic_write(out_dir / frame_name(index), _png_bytes(image)).name for index, image in frames}
    for stale in out_dir.iterdir():
        if _FRAME_FILE.match(stale.name) and stale.name not in written:
            stale.unlink()


def _canvas_storyboard(out: Any, data: dict) -> Any:
    """Storyboard of a canvas run: every step's image and text, its token span underneath."""
    from .viz import storyboard

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
    atomic_write(out_dir / CANVAS_FILE, _png_bytes(out.canvas))
    write_figure(_canvas_storyboard(out, data), out_dir / "storyboard.png")
    _write_record(out_dir, out.recipe, data)
    return atomic_write(out_dir / "index.html", render_html(data))


# ---- several runs of one recipe ----------------------------------------------------------


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
    from .viz import comparison_figure

    out_dir = Path(out_dir)
    rows, pages = list(rows), [Path(page) for page in pages]
    if len(pages) != len(rows):
        raise ValueError(
            f"write_comparison got {len(pages)} pages for {len(rows)} rows: give each row its run's index.html."
        )
    group_titles = dict(group_titles or {})
    write_figure(comparison_figure(rows, texts, group_titles=group_titles, title=title), out_dir / COMPARE_FILE)
    parts = _page_head(title, None, notes)
    parts.append(
        f'<p class="storyboard"><a href="{COMPARE_FILE}"><img src="{COMPARE_FILE}" alt="every run, one row each"></a></p>'
    )
    parts.append("<h2>Runs</h2>")
    items = []  # the links of the current group
    for r, ((label, _, caption), page) in enumerate(zip(rows, pages, strict=True)):
        if r in group_titles:
            if items:
                parts.append(f"<ul>{''.join(items)}</ul>")
            parts.append(f"<h3>{_e(group_titles[r])}</h3>")
            items = []
        link = Path(os.path.relpath(page, out_dir)).as_posix()
        items.append(f'<li><a href="{_e(link)}">{_e(label)}</a>' + (f": {_e(caption)}" if caption else "") + "</li>")
    parts.append(f"<ul>{''.join(items)}</ul>")
    parts.append("</body></html>")
    return atomic_write(out_dir / "index.html", "\n".join(parts) + "\n")
