"""``cooklab course DIR``: the notebook course copied into a folder of one's own, runnable from there."""

import json
import shlex
import sys

from cooklab.cli import main
from cooklab.resources import course_dir

COURSE = sorted(p.name for p in course_dir().glob("*.ipynb"))


def test_course_copies_the_notebooks_and_prints_the_lab_command(tmp_path, capsys):
    folder = tmp_path / "my course"
    assert main(["course", str(folder), "--no-lab"]) == 0
    out = capsys.readouterr().out
    assert {"00_quickstart.ipynb", "README.md"} <= {p.name for p in folder.iterdir()}
    assert sorted(p.name for p in folder.glob("*.ipynb")) == COURSE
    assert not (folder / "strip_outputs.py").exists()  # a maintainer's tool, not part of the course
    for name in COURSE:
        assert (folder / name).read_bytes() == (course_dir() / name).read_bytes()
    assert shlex.join([sys.executable, "-m", "jupyterlab", str(folder)]) in out  # quoted for the shell: a space


def test_copied_notebooks_read_nothing_relative_to_the_repository(tmp_path):
    folder = tmp_path / "course"
    assert main(["course", str(folder), "--no-lab"]) == 0
    for path in folder.glob("*.ipynb"):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        assert "../" not in code, (
            f"{path.name} reads a path relative to the repository: {code[code.index('../') :][:80]}"
        )


def test_course_refuses_a_folder_of_other_files(tmp_path, capsys):
    folder = tmp_path / "thesis"
    folder.mkdir()
    (folder / "chapter1.tex").write_text("mine")
    assert main(["course", str(folder), "--no-lab"]) == 2
    assert "not an earlier course copy" in capsys.readouterr().err
    assert [p.name for p in folder.iterdir()] == ["chapter1.tex"]


def test_an_earlier_copy_is_kept_unless_overwrite(tmp_path, capsys):
    folder = tmp_path / "course"
    assert main(["course", str(folder), "--no-lab"]) == 0
    mine = folder / "00_quickstart.ipynb"
    mine.write_text("my edits")
    (folder / "notes.md").write_text("my notes")
    assert main(["course", str(folder), "--no-lab"]) == 0
    assert "kept as it is" in capsys.readouterr().out
    assert mine.read_text() == "my edits"
    assert main(["course", str(folder), "--no-lab", "--overwrite"]) == 0
    assert mine.read_bytes() == (course_dir() / mine.name).read_bytes()
    assert (folder / "notes.md").read_text() == "my notes"  # never touched


def test_course_without_jupyterlab_names_the_extra(tmp_path, monkeypatch, capsys):
    import cooklab.course

    monkeypatch.setattr(cooklab.course, "jupyterlab_installed", lambda: False)
    assert main(["course", str(tmp_path / "course")]) == 2
    err = capsys.readouterr().err
    assert "JupyterLab is not installed" in err and "cooklab[notebooks]" in err


def test_course_starts_jupyterlab_in_the_copy(tmp_path, monkeypatch):
    import cooklab.course

    started = []

    class FakeLab:
        def __init__(self, command):
            started.append(command)

        def wait(self):
            return 0

    monkeypatch.setattr(cooklab.course.subprocess, "Popen", FakeLab)
    folder = tmp_path / "course"
    assert main(["course", str(folder)]) == 0
    assert started == [[sys.executable, "-m", "jupyterlab", str(folder)]]


def test_course_default_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["course", "--no-lab"]) == 0
    assert (tmp_path / "cooklab-course" / "00_quickstart.ipynb").is_file()
