"""Named model sets: a registry that tells which shipped set a pipeline was loaded from.

A ``ModelSet`` names a folder of trained weights (``"toy-sd"``: ``data/toykitchen/sd``) and, where
there is one, the GroundingDINO + SAM pair trained on that set's pictures. Whoever ships a set
registers it (``register_model_set``; ``cooklab.models.toy`` registers the Toy Kitchen's);
``model_set_of(pipe)`` finds the set a pipeline was loaded from by its ``name_or_path``. The
pipelines ask this registry (through ``cooklab.grounding.registry``) instead of knowing any set.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["MODEL_SETS", "ModelSet", "model_set_of", "register_model_set"]


@dataclass(frozen=True)
class ModelSet:
    """A named folder of trained pipeline weights and, if any, the grounding pair trained on its pictures."""

    name: str  # e.g. "toy-sd"
    folder: Path  # the save_pretrained folder of the pipeline
    grounding: Path | None = None  # folder with detector/ and segmenter/ trained on this set's pictures


#: every registered set, by name
MODEL_SETS: dict[str, ModelSet] = {}


def register_model_set(model_set: ModelSet) -> ModelSet:
    """Add ``model_set`` to ``MODEL_SETS`` (a set of the same name is replaced) and return it."""
    MODEL_SETS[model_set.name] = model_set
    return model_set


def model_set_of(pipe) -> ModelSet | None:
    """The registered set ``pipe`` was loaded from (its ``name_or_path`` is the set's folder), or None."""
    name = getattr(pipe, "name_or_path", None)
    if not name:
        return None
    path = Path(name).resolve()
    return next((s for s in MODEL_SETS.values() if s.folder.resolve() == path), None)
