"""Where the files cooklab ships are: the Toy Kitchen models, recipes, evaluation configs and the notebooks.

The repository's ``data/`` and ``notebooks/`` folders are the source of truth. A wheel carries them
inside the package, as ``cooklab/data`` and ``cooklab/notebooks`` (in a checkout those two are
symbolic links to ``../data`` and ``../notebooks``, which the wheel build follows). Every lookup goes
through this module, so a checkout, an editable install and an installed wheel find the same files:

    shipped("toykitchen", "sd")      # the Toy Kitchen SD-style model set's folder
    shipped("recipes")               # the real-world recipes
    course_dir()                     # the notebooks
    find_shipped("toy_small", "eval")  # a config by name: data/eval/toy_small.yaml, from any folder

Outputs never go into an installed package: ``installed_output`` puts the relative ``out`` of a config read
from an installed wheel's data under the current folder.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

__all__ = ["course_dir", "data_dir", "find_shipped", "installed_data", "installed_output", "shipped"]


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


def installed_data() -> bool:
    """True when the shipped data is an installed wheel's copy (site-packages), False in a checkout.

    In a checkout (a clone, an editable install) ``cooklab/data`` is the link to the repository's ``data/``.
    """
    package_data = Path(__file__).resolve().parent / "data"
    return package_data.is_dir() and not package_data.is_symlink()


def find_shipped(name: str | os.PathLike[str], *folder: str) -> Path:
    """The file ``name`` means: the path as given when it exists, else the shipped file in ``data/<folder>``.

    ``find_shipped("toy_small", "eval")``, ``"toy_small.yaml"`` and ``"data/eval/toy_small.yaml"`` (or
    ``../data/eval/toy_small.yaml``) all find ``data/eval/toy_small.yaml`` from any working directory. A name
    that matches nothing is returned unchanged, so the caller's loader reports the missing file.
    """
    path = Path(name).expanduser()
    if path.exists():
        return path
    written_in = path.parent.parts
    if written_in and written_in[-len(folder) - 1 :] != ("data", *folder):  # another folder: the user's own file
        return path
    names = [path.name] if path.suffix else [path.name, path.name + ".yaml"]
    for candidate in (shipped(*folder, n) for n in names):
        if candidate.is_file():
            return candidate
    return path


def installed_output(config_file: Path, out: Path) -> Path | None:
    """Where the relative ``out`` of a config read from an installed wheel's data goes; None for any other config.

    Config files say ``out`` relative to their own folder: the shipped ones climb from ``data/eval`` to the
    checkout's ``outputs/`` (``../../outputs/eval/toy-small``). Read from an installed wheel (``cooklab evaluate
    toy_small`` after ``pip install cooklab``), the same folder is made under the current folder
    (``outputs/eval/toy-small``), never inside site-packages. None: resolve ``out`` against the file's folder.
    """
    if out.is_absolute() or not installed_data():
        return None
    if not config_file.resolve().parent.is_relative_to(data_dir().resolve()):
        return None
    return Path.cwd() / Path(*[part for part in out.parts if part != ".."])
