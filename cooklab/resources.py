"""Where the files cooklab ships are: the Toy Kitchen models, recipes, evaluation configs and the notebooks.

The repository's ``data/`` and ``notebooks/`` folders are the source of truth. A wheel carries them
inside the package, as ``cooklab/data`` and ``cooklab/notebooks`` (in a checkout those two are
symbolic links to ``../data`` and ``../notebooks``, which the wheel build follows). Every lookup goes
through this module, so a checkout, an editable install and an installed wheel find the same files:

    shipped("toykitchen", "sd")      # the Toy Kitchen SD-style model set's folder
    shipped("recipes")               # the real-world recipes
    course_dir()                     # the notebooks
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["course_dir", "data_dir", "shipped"]


def _inside_package(name: str) -> Path | None:
    """``cooklab/<name>`` as a real folder (an installed wheel, or the checkout's link), else None."""
    folder = Path(str(resources.files("cooklab").joinpath(name)))
    return folder.resolve() if folder.is_dir() else None  # a checkout's link -> the repository's folder


def data_dir() -> Path:
    """The folder of cooklab's shipped data (``data/`` of the repository)."""
    return _inside_package("data") or Path(__file__).resolve().parents[1] / "data"


def shipped(*parts: str) -> Path:
    """A path inside the shipped data, e.g. ``shipped("toykitchen", "sd")``; it may not exist (callers check)."""
    return data_dir().joinpath(*parts)


def course_dir() -> Path:
    """The folder of the notebook course (``notebooks/`` of the repository)."""
    return _inside_package("notebooks") or Path(__file__).resolve().parents[1] / "notebooks"
