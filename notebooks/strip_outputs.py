"""Strip outputs, execution counts and widget state from notebooks before committing them.

    python notebooks/strip_outputs.py              # every notebook in notebooks/
    python notebooks/strip_outputs.py a.ipynb ...  # only these
    python notebooks/strip_outputs.py --check      # change nothing; exit 1 if a notebook is not stripped

Kept: the cells' sources and the kernelspec. Removed: outputs, execution counts, the
per-cell "execution" timing that nbclient records, the saved widget state, and the
Python version in ``language_info`` (so a commit does not depend on who ran it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent


def strip(nb) -> bool:
    """Strip ``nb`` in place; True if anything changed."""
    changed = False
    for cell in nb.cells:
        if cell.cell_type == "code":
            if cell.outputs or cell.execution_count is not None:
                cell.outputs, cell.execution_count = [], None
                changed = True
        if "execution" in cell.metadata:
            del cell.metadata["execution"]
            changed = True
    if "widgets" in nb.metadata:
        del nb.metadata["widgets"]
        changed = True
    if nb.metadata.get("language_info", {}) != {"name": "python"}:
        nb.metadata["language_info"] = {"name": "python"}
        changed = True
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path, help="notebooks (default: every .ipynb next to this script)")
    parser.add_argument("--check", action="store_true", help="report notebooks that need stripping; change nothing")
    args = parser.parse_args(argv)
    paths = args.paths or sorted(HERE.glob("*.ipynb"))
    dirty = []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        if strip(nb):
            dirty.append(path)
            if not args.check:
                nbformat.write(nb, path)
    for path in dirty:
        print(f"{'not stripped' if args.check else 'stripped'}: {path}")
    return 1 if args.check and dirty else 0


if __name__ == "__main__":
    sys.exit(main())
