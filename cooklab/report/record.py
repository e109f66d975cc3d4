"""The record of one generation run: what ``settings.json`` holds, built from a pipeline's output.

    data = run_settings(out, model="tiny", pipeline="recipe-diffusion")      # a RecipeDiffusionOutput
    data = canvas_settings(out, model="tiny")                               # a CookAnythingOutput

``run_settings`` and ``canvas_settings`` are the two schemas (one entry per frame, one per step of
the canvas); both are JSON-safe through ``jsonable``. The file names of a run folder (``frame_name``,
``CANVAS_FILE``, ``RECIPE_FILE``, ``METRICS_FILE``, ``COMPARE_FILE``) are defined here too; the page
is ``cooklab.report.page``, the writing ``cooklab.report.folder``.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

from cooklab.versions import package_versions

__all__ = [
    "CANVAS_FILE",
    "COMPARE_FILE",
    "FRAME_FILE",
    "MECHANISMS",
    "METRICS_FILE",
    "RECIPE_FILE",
    "canvas_settings",
    "frame_name",
    "is_canvas_output",
    "jsonable",
    "run_settings",
]

FRAME_FILE = re.compile(r"^frame_\d{2,}\.png$")
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


def _provenance(command: str | None, recipe: Any) -> dict:
    """What every run record states about how it was made: the command, when, the versions and the recipe."""
    return {
        "command": command,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "versions": package_versions("cooklab", "diffusers", "torch", "python"),
        "recipe": {
            "title": recipe.title,
            "description": recipe.description,
            "source": recipe.source,
            "steps": len(recipe),
        },
    }


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
        "variant": settings.get("variant", "custom"),  # RecipeDiffusion names it
        **_provenance(command, recipe),
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
    with that chunk's ``anchors`` (1-based steps; chunked generation, ``cookanything/chunked.py``).
    ``whole_description`` is the base branch's / CSCC's prompt with its token count and the steps the
    token limit cut; with ``chunk_text="window"`` and several chunks, the steps the chunks' own windows
    cut and the windows (``chunk_windows``, first and last step, None with CSCC off).
    """
    from cooklab.cookanything.cscc import whole_description

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
    chunks = settings.get("chunks") or []
    if whole is not None and settings.get("chunk_text") == "window" and len(chunks) > 1:
        # each chunk read its own description and CSCC window, not this text: what those cut
        whole["truncated_steps"] = [n - 1 for n in settings["truncated_steps"]]
        whole["chunk_windows"] = [chunk["cscc_window"] for chunk in chunks]
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
        **_provenance(command, recipe),
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
