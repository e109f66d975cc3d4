"""The pages of a run folder: ``index.html`` of one run (``render_html``) and of several (``comparison_html``).

Every page is one static HTML file with its style sheet inline and images linked relatively; all
text from settings, recipes and notes is escaped. ``render_html`` reads the record of
``cooklab.report.record`` (``run_settings`` or ``canvas_settings``) and, once the run is scored, its
metrics (``cooklab score``).
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cooklab.report.record import COMPARE_FILE, METRICS_FILE

__all__ = ["comparison_html", "render_html", "span_text"]


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


_CSS = (
    """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 72rem;
       padding: 0 1rem; color: #222; line-height: 1.4; }
h1 { margin-bottom: .2rem; }
.description { color: #555; margin-top: 0; }
.notes { background: #fff7e0; border-left: 4px solid #e0a800; padding: .5rem 1rem; }
table.settings { border-collapse: collapse; margin: 1rem 0; font-size: .9rem; }
table.settings th, table.settings td { border: 1px solid #ddd; padding: .25rem .6rem; text-align: left; """
    """vertical-align: top; }
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
)


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
    windows = whole.get("chunk_windows")
    if windows:  # chunk_text="window": each chunk read its own description and CSCC window
        spans = ", ".join("-" if w is None else f"{w[0]}-{w[1]}" for w in windows)
        used_as = f"read by each chunk in part (its own steps' description; CSCC windows of steps {spans})"
        count = "the chunks' windows fit the limit" if not whole["truncated_steps"] else count.split("; ")[-1]
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
                    f"{lay['base_text_len']} (whole description) + "
                    f"{lay['n_regions']} × {lay['step_text_len']} (steps); "
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
    """The metrics table: per metric its value, the items it averages and what measured it.

    metrics: ``metrics.json``'s entries.
    """
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
        '<h2>Metrics</h2><table class="settings"><tr><th>metric</th><th>value</th><th>per item</th>'
        "<th>measured by</th>"
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

    metrics: ``{name: {"value", "per_item", "record"}}`` (``metrics.json``'s ``metrics``), shown as a table
    after the settings.
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
        f"<p>All settings and per-{'step' if canvas else 'frame'} details: "
        '<a href="settings.json">settings.json</a></p>'
    )
    if metrics:
        parts.append(_metrics_html(metrics))
    if canvas:
        parts.append(_whole_html(data))
    if storyboard:
        parts.append(
            f'<h2>Storyboard</h2><p class="storyboard"><a href="{_e(storyboard)}">'
            f'<img src="{_e(storyboard)}" alt="storyboard"></a></p>'
        )
    if canvas:
        parts.append(
            "<h2>Canvas</h2><p>All steps were denoised together on this one canvas, one region per step, "
            "top to bottom.</p>"
            f'<p class="canvas"><a href="{_e(canvas)}"><img src="{_e(canvas)}" alt="the whole canvas"></a></p>'
        )
        parts.append("<h2>Steps</h2>")
        parts.append('<div class="frames">' + "".join(_step_html(entry, data) for entry in data["frames"]) + "</div>")
    else:
        parts.append("<h2>Frames</h2>")
        parts.append('<div class="frames">' + "".join(_frame_html(entry) for entry in data["frames"]) + "</div>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def comparison_html(
    out_dir: str | os.PathLike[str],
    rows: Sequence[tuple[str, Sequence[Any], str | None]],
    pages: Sequence[str | os.PathLike[str]],
    *,
    title: str,
    group_titles: Mapping[int, str],
    notes: Sequence[str] = (),
) -> str:
    """index.html above several runs: ``compare.png`` and a link to each row's run page, grouped under headings.

    rows: one ``(label, images, caption)`` per run; pages: each row's run page, linked relative to
    ``out_dir``; group_titles: ``{row index: heading}``; notes: lines shown above the figure.
    """
    parts = _page_head(title, None, notes)
    parts.append(
        f'<p class="storyboard"><a href="{COMPARE_FILE}">'
        f'<img src="{COMPARE_FILE}" alt="every run, one row each"></a></p>'
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
    return "\n".join(parts) + "\n"
