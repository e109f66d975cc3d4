"""``cooklab course``: copy the notebook course into a folder of one's own and start JupyterLab there.

The course is the notebooks cooklab ships (``cooklab.resources.course_dir()``): every ``*.ipynb`` and
their ``README.md``. The notebooks find the Toy Kitchen models, the recipes and the LoRA through the
package (``cooklab.models``, ``cooklab.resources.shipped``) and write what they make under ``outputs/``
of the folder they run in, so a copy runs from any folder, without a clone of the repository.

A copy holds a marker file, ``.cooklab-course`` (JSON: the cooklab version and the files copied), by
which a later ``cooklab course`` recognises it:

* a new or empty folder: the course is copied into it;
* an earlier copy: kept as it is (the learner's changes are theirs), unless ``overwrite`` asks for
  fresh copies of the course's files (other files in the folder are never touched);
* a folder of other files: refused, nothing is written (``cooklab.fileio.check_output_folder``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import cooklab
from cooklab.errors import ConfigError
from cooklab.fileio import atomic_write, check_output_folder
from cooklab.resources import course_dir

__all__ = ["COURSE_MARKER", "CourseCopy", "copy_course", "course_files", "is_course_copy", "lab_command", "start_lab"]

#: the file that marks a folder as a copy of the course
COURSE_MARKER = ".cooklab-course"
#: how a learner installs JupyterLab with cooklab
JUPYTERLAB_INSTALL = "pip install 'cooklab[notebooks]'"


@dataclass
class CourseCopy:
    """What ``copy_course`` did: the folder, the files it copied, and whether it kept an earlier copy as it was."""

    folder: Path
    copied: list[Path] = field(default_factory=list)  # the files written into folder (empty when kept)
    kept: bool = False  # True: folder held an earlier copy, left unchanged


def course_files() -> list[Path]:
    """The course's files: every notebook of ``cooklab.resources.course_dir()`` and its README.md."""
    folder = course_dir()
    notebooks = sorted(folder.glob("*.ipynb"))
    readme = folder / "README.md"
    if not notebooks or not readme.is_file():
        raise ConfigError(
            f"no notebook course in {folder} (notebooks and README.md): this cooklab was installed without its "
            "course; reinstall it from a wheel or a clone of the repository (`pip install cooklab`)."
        )
    return [*notebooks, readme]


def is_course_copy(folder: Path) -> bool:
    """True when ``folder`` holds an earlier copy of the course (its ``.cooklab-course`` marker)."""
    return (Path(folder) / COURSE_MARKER).is_file()


def copy_course(folder: str | os.PathLike[str], *, overwrite: bool = False) -> CourseCopy:
    """Copy the course's notebooks and README.md into ``folder`` and mark it as a course copy.

    A new or empty ``folder`` is filled. An earlier copy is kept unchanged, or with ``overwrite``
    its course files are copied afresh (a learner's edits in them are lost; other files stay). A
    folder of other files is refused with a ``ConfigError`` before anything is written.
    """
    folder = Path(folder)
    earlier = check_output_folder(folder, overwrite=True, holds_previous=is_course_copy, what="course copy")
    if earlier and not overwrite:
        return CourseCopy(folder, kept=True)
    files = course_files()
    for source in files:
        atomic_write(folder / source.name, source.read_bytes())
    marker = {"cooklab": cooklab.__version__, "files": [source.name for source in files]}
    atomic_write(folder / COURSE_MARKER, json.dumps(marker, indent=2) + "\n")
    return CourseCopy(folder, copied=[folder / source.name for source in files])


def jupyterlab_installed() -> bool:
    """True when JupyterLab can be imported by this Python."""
    return importlib.util.find_spec("jupyterlab") is not None


def lab_command(folder: str | os.PathLike[str]) -> list[str]:
    """The command that serves ``folder`` with JupyterLab, run by this Python (``python -m jupyterlab FOLDER``).

    A notebook's kernel starts in the notebook's own folder, so the copied notebooks run with the
    copy as their working directory.
    """
    return [sys.executable, "-m", "jupyterlab", str(folder)]


def start_lab(folder: str | os.PathLike[str]) -> int:
    """Run JupyterLab on ``folder`` until it is stopped; returns its exit code.

    Raises ``ConfigError`` naming the install command when JupyterLab is not installed. Ctrl-C goes
    to JupyterLab too, which asks whether to shut down (and shuts its kernels down): this waits for it.
    """
    if not jupyterlab_installed():
        raise ConfigError(
            f"JupyterLab is not installed in this Python ({sys.executable}): {JUPYTERLAB_INSTALL}, then run "
            f"`cooklab course {shlex.quote(str(folder))}` again (the course is already there)."
        )
    process = subprocess.Popen(lab_command(folder))
    while True:
        try:
            return process.wait()
        except KeyboardInterrupt:  # JupyterLab received it as well and decides whether to stop
            continue
