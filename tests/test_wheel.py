"""The wheel as a new user gets it: `make dist`, installed NON-editable into a fresh virtual environment, run offline
from an empty folder that is not the repository.

The fresh environment gets the lock's dependencies without downloading anything: a ``.pth`` file adds the
site-packages of the interpreter running the suite (the one ``make`` installed from requirements/lock.txt). A ``.pth``
line that names a folder only adds it to ``sys.path``; the ``.pth`` files inside that folder (among them the editable
install's finder of cooklab) are not run, so ``import cooklab`` finds the wheel's copy, which the test checks.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # builds a 44 MB wheel and runs the demo: make test-fast leaves it out

ROOT = Path(__file__).resolve().parents[1]


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment without the suite's PYTHONPATH (which would put the checkout before the wheel), offline."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    return {**env, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", **extra}


def _run(args: list, cwd: Path, **extra: str) -> str:
    """Run ``args`` in ``cwd``; the test fails with its output when it exits non-zero."""
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=_clean_env(**extra), capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, (
        f"{args} exited {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result.stdout + result.stderr


def _wheel_env(tmp: Path) -> tuple[Path, Path]:
    """A fresh venv with the wheel of `make dist` installed (non-editable) and the lock's dependencies (offline):
    the venv's folder and its site-packages."""
    if shutil.which("make") is None:
        pytest.fail("make is not installed: the wheel test builds with `make dist` (apt-get install make)")
    bin_dir = Path(sys.executable).parent
    # STAMP= : the interpreter running the suite is already installed, `make dist` must not make a .venv of its own.
    _run(["make", "-C", ROOT, "dist", f"DIST={tmp / 'dist'}", f"BIN={bin_dir}", "STAMP="], cwd=ROOT)
    wheels = sorted((tmp / "dist").glob("cooklab-*.whl"))
    assert len(wheels) == 1 and sorted((tmp / "dist").glob("cooklab-*.tar.gz")), "make dist made no sdist + wheel"
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp)
    python = venv / "bin" / "python"
    # pip runs from the suite's interpreter and installs into the venv, before the .pth below makes the suite's own
    # (editable) cooklab visible to it: nothing of the suite's environment is uninstalled or changed.
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps", wheels[0]], cwd=tmp)
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], cwd=tmp).strip())
    (site / "zz_lock_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    # the lock (environment.yml's too) satisfies the wheel's requirements
    _run([python, "-m", "pip", "check"], cwd=tmp)
    return venv, site


def test_the_wheel_runs_offline_from_any_folder(tmp_path, monkeypatch):
    """One test, so that two pytest workers never build in the checkout at the same time."""
    venv, site = _wheel_env(tmp_path)
    for part in (_demo_and_version, _course):
        empty = tmp_path / part.__name__.strip("_")
        empty.mkdir()
        part(venv, site, empty, monkeypatch)


def _demo_and_version(venv: Path, site: Path, empty: Path, monkeypatch) -> None:
    """`cooklab demo`, the shipped folders and configs read from the wheel, and the one version."""
    python, cooklab = venv / "bin" / "python", venv / "bin" / "cooklab"

    _run([cooklab, "demo", "--out", "demo", "--steps", "2"], empty)  # the Toy Kitchen models and recipe, shipped
    assert (empty / "demo" / "compare.png").is_file()

    where = """import cooklab, cooklab.resources as r
from cooklab.evaluation import load_config
print(cooklab.__file__, r.data_dir(), r.course_dir(), load_config("toy_small").out)"""
    module, data, course, out = _run([python, "-c", where], empty).split()
    assert Path(module).is_relative_to(site), f"import cooklab found {module}, not the wheel's copy in {site}"
    for folder in (data, course):
        assert Path(folder).is_relative_to(site / "cooklab"), f"{folder} is read from outside the wheel"
    assert Path(out) == empty / "outputs" / "eval" / "toy-small"  # a shipped config writes under the current folder

    version = _run([python, "-c", "import cooklab; print(cooklab.__version__)"], empty).strip()
    metadata = _run([python, "-c", "from importlib.metadata import version; print(version('cooklab'))"], empty)
    assert metadata.strip() == version  # the wheel's version is cooklab.__version__
    assert _run([python, "-m", "cooklab", "--version"], empty).strip() == f"cooklab {version}"


def _course(venv: Path, site: Path, empty: Path, monkeypatch) -> None:
    """`cooklab course DIR --no-lab`, then the copy's notebook 00 in a kernel of the venv's python."""
    python, cooklab = venv / "bin" / "python", venv / "bin" / "cooklab"
    printed = _run([cooklab, "course", "course", "--no-lab"], empty)
    copy = empty / "course"
    assert re.search(r"jupyter[ -]?lab", printed) and (copy / "00_quickstart.ipynb").is_file(), printed

    import nbformat
    from nbclient import NotebookClient

    # A kernel of the venv's python: the notebook imports the wheel's cooklab, from the copy's folder.
    kernels = empty / "jupyter" / "kernels" / "cooklab-wheel"
    kernels.mkdir(parents=True)
    argv = [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (kernels / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "wheel", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(empty / "jupyter"))
    for name, value in _clean_env(MPLBACKEND="module://matplotlib_inline.backend_inline").items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("PYTHONPATH", raising=False)
    nb = nbformat.read(copy / "00_quickstart.ipynb", as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell("import cooklab; print(cooklab.__file__)"))
    NotebookClient(nb, timeout=300, kernel_name="cooklab-wheel", resources={"metadata": {"path": str(copy)}}).execute()
    assert Path(nb.cells[0].outputs[0]["text"].strip()).is_relative_to(site)
