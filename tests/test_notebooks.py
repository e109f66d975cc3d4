"""Execute every notebook offline from a ``cooklab course`` copy, and check that the committed files carry no outputs.

The notebooks run from a copy made by ``cooklab course DIR --no-lab`` in a temporary folder, with that
folder as their working directory: what a learner gets, away from the repository.

Where the browser test (tests/test_notebooks_browser.py) runs, it is the notebooks' execution and
``test_notebook_runs`` is deselected (tests/conftest.py): each notebook runs once per suite.
"""

import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from cooklab.cli import main

pytestmark = pytest.mark.slow  # make test-fast leaves the notebooks out

NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
IDS = [p.name for p in NOTEBOOKS]


def test_there_are_notebooks():
    assert {"00_quickstart.ipynb", "01_kv_sharing.ipynb", "02_region_aware_noise.ipynb"} <= set(IDS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_committed_notebook_is_stripped(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name} cell {index} has outputs: run notebooks/strip_outputs.py"
            assert cell.execution_count is None, f"{path.name} cell {index} has an execution count"
    assert "widgets" not in nb.metadata, f"{path.name} holds saved widget state"
    assert nb.cells[0].cell_type == "markdown", "a notebook opens with markdown"


def test_strip_script_agrees():
    result = subprocess.run(
        [sys.executable, str(NOTEBOOKS_DIR / "strip_outputs.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    """The course copied by ``cooklab course DIR --no-lab`` into a temporary folder (outside the repository)."""
    folder = tmp_path_factory.mktemp("course") / "cooklab-course"
    assert main(["course", str(folder), "--no-lab"]) == 0
    return folder


def _widget_images(nb) -> int:
    """How many images the notebook's Output widgets captured while it ran."""
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    return sum(
        "image/png" in o.get("data", {})
        for m in state.values()
        if m["model_name"] == "OutputModel"
        for o in m["state"].get("outputs", [])
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_runs(path, course, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the kernel inherits this environment
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nb = nbformat.read(course / path.name, as_version=4)  # the copy; it runs in the copy's folder
    client = NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(course)}})
    start = time.perf_counter()
    try:
        client.execute()
    except CellExecutionError as err:
        pytest.fail(f"{path.name} failed:\n{str(err)[-4000:]}")
    print(f"{path.name}: {time.perf_counter() - start:.1f} s")
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    uses_widgets = any(
        "application/vnd.jupyter.widget-view+json" in o.get("data", {})
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
    )
    if uses_widgets:
        assert _widget_images(nb) > 0, f"{path.name}: a widget drew no figure into its Output"
