"""Where an evaluation keeps its work: one folder per unit, written so that a killed run resumes exactly.

A *unit* is one (method row, recipe, seed). Its folder ``<out>/units/<row slug>/<recipe id>/seed<seed>/``
holds the frames ``frame_NN.png`` and ``unit.json``; ``unit.json`` is written last and atomically
(``fileio.atomic_write``), so it exists only for a finished unit -- it is the commit mark:

* a unit with ``unit.json`` is done and is never generated again (its ``generation`` key must
  match the config's, else the config changed under the same ``out`` and that is an error);
* a unit whose frames are there but whose metrics were asked differently, or measured with other
  inputs (a metric's scoring key in ``unit.json`` differs: backbone, its weights, masks, protocol;
  ``scoring_keys.py``), is *scored* again from its frames, not generated again;
* anything else (nothing, or frames without ``unit.json`` from a killed run) is generated anew,
  overwriting the partial frames.

Rows of ``results.jsonl`` are read back from the ``unit.json`` files in the evaluation's unit
order, so a resumed or multi-process run gives exactly the rows of an uninterrupted one, each once.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..fileio import atomic_write
from ..images import read_picture

UNIT_FILE = "unit.json"
RESULTS_FILE = "results.jsonl"


def slug(text: str) -> str:
    """A file-name-safe form of a row label: ``"cookanything lam=0.5"`` -> ``"cookanything_lam-0.5"``."""
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", text.replace("=", "-")).strip("_") or "row"


def key(data: Any) -> str:
    """A short stable hash of a JSON-able value (sorted keys)."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Unit:
    """One (method row, recipe, seed) of an evaluation."""

    label: str  # the row label (method and grid point)
    method: str
    params: dict
    recipe_id: str
    seed: int
    generation: str  # key of everything that decides the frames (model, sampler settings, method, params, masks)

    def folder(self, out: Path) -> Path:
        """The unit's folder under ``out``: ``units/<label>-<method key>/<recipe>/seed<seed>``."""
        return (
            out
            / "units"
            / f"{slug(self.label)}-{key([self.method, self.params])[:6]}"
            / slug(self.recipe_id)
            / f"seed{self.seed}"
        )


def frame_path(folder: Path, k: int) -> Path:
    """The file of frame ``k`` (0-based) in a unit's folder: ``frame_00.png``, ``frame_01.png`` ..."""
    return folder / f"frame_{k:02d}.png"


def load_unit(unit: Unit, out: Path) -> dict | None:
    """The finished unit's record, or None when it is not finished; an error when it was made by another config."""
    path = unit.folder(out) / UNIT_FILE
    if not path.is_file():
        return None
    record = json.loads(path.read_text(encoding="utf-8"))
    if record.get("generation") != unit.generation:
        raise ConfigError(
            f"{path} was generated with other settings (model, sampler, method or masks) than this config asks: "
            f"evaluate into another `out:` folder, or delete {out / 'units'} to start again."
        )
    return record


def save_frames(unit: Unit, out: Path, images) -> None:
    """The unit's frames, each written atomically (before ``unit.json``)."""
    import io

    folder = unit.folder(out)
    for k, image in enumerate(images):
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        atomic_write(frame_path(folder, k), buffer.getvalue())


def load_frames(unit: Unit, out: Path, n: int) -> list | None:
    """The unit's ``n`` frames as RGB PIL images, or None when one is missing; a corrupt frame names the fix."""
    folder = unit.folder(out)
    paths = [frame_path(folder, k) for k in range(n)]
    if not all(p.is_file() for p in paths):
        return None
    fix = f"delete the unit's folder {str(folder)!r} and run `cooklab evaluate` again: it generates the unit anew."
    return [read_picture(p, fix) for p in paths]


def save_unit(unit: Unit, out: Path, record: dict) -> Path:
    """``unit.json``: the commit mark, written last."""
    return atomic_write(unit.folder(out) / UNIT_FILE, json.dumps(record, indent=1, allow_nan=True, default=str) + "\n")


def read_results(path: str | Path) -> list[dict]:
    """The rows of a ``results.jsonl``."""
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
