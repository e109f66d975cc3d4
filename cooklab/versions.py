"""Versions of the packages a number depends on: one helper for every record cooklab writes.

Run folders (``report.py``), scores (``metrics``), held-out evaluations (``toykitchen/evaluate.py``)
and benchmark results all record which versions made them. Versions are read from the installed
packages' metadata, so recording them imports nothing (a score does not load diffusers); torch and
cooklab report themselves: torch's own string carries its build (``2.14.1+cu130``), and cooklab may
run from a checkout that is not installed.
"""

from __future__ import annotations

import platform
from importlib import metadata


def package_versions(*names: str) -> dict[str, str]:
    """``{name: version}`` for each of ``names`` in order; ``"python"`` is the interpreter, a missing package ``"not
    installed"``."""
    versions = {}
    for name in names:
        if name == "python":
            versions[name] = platform.python_version()
        elif name == "torch":
            import torch

            versions[name] = torch.__version__
        elif name == "cooklab":
            import cooklab

            versions[name] = cooklab.__version__
        else:
            try:
                versions[name] = metadata.version(name)
            except metadata.PackageNotFoundError:
                versions[name] = "not installed"
    return versions
