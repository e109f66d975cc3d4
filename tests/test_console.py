"""Console manners of a long job (cooklab/console.py): one progress bar, each warning once with its count,
``--quiet`` (tiny or Toy Kitchen models, 2-3 steps, 64 pixels, CPU, offline)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from cooklab.cli import main
from cooklab.console import ProgressBar, job_console

ROOT = Path(__file__).resolve().parent.parent
TOY = ROOT / "data" / "toykitchen" / "recipes" / "toy_kitchen.yaml"  # 4 steps, Toy Kitchen words only
#: the warning Recipe Diffusion gives for every frame of a 2-step region-aware run (step and frame differ)
SAME_TIMESTEP = "object_noise=0.9 and base_noise=0.999 fall on the same timestep"
#: a tqdm bar as it is drawn: "<desc>: <n>%|"
BAR = re.compile(r"^\s*(?P<desc>[^\r\n]*?): +\d+%\|")


def bar_names(stderr: str) -> set[str]:
    """The descriptions of every progress bar drawn on ``stderr`` (each redraw starts after a carriage return)."""
    return {m["desc"] for part in re.split(r"[\r\n]", stderr) if (m := BAR.match(part))}


def finished_bar_lines(stderr: str) -> list[str]:
    """The lines a bar left behind: a line whose last redraw is a bar at 100%."""
    return [line for line in stderr.split("\n") if BAR.match(line.split("\r")[-1]) and "100%|" in line]


def write_config(folder: Path) -> Path:
    """An evaluation with a repeated warning (region-aware noise on 2 steps, on every frame of 2 recipes) and
    a CLIP metric (batched, with inner bars of its own)."""
    config = dict(
        name="console",
        out="out",
        model=dict(sd="toy"),
        generation=dict(num_inference_steps=2, guidance=3.0, height=64, width=64),
        recipes=dict(toy=dict(count=2, steps=3)),
        seeds=[0],
        methods=[dict(name="region_aware_kv")],
        metrics=["oracle_container_consistency", "step_faithfulness"],
        clip="toy",
        masks="oracle",
        tables=[dict(name="T", baseline="region_aware_kv")],
    )
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def test_evaluate_draws_one_bar_and_prints_a_repeated_warning_once_with_its_count(tmp_path, capfd):
    assert main(["evaluate", str(write_config(tmp_path))]) == 0
    err = capfd.readouterr().err
    assert bar_names(err) == {"evaluate console"}  # no CLIP batches, no loading bars
    assert len(finished_bar_lines(err)) == 1
    warned = [line for line in re.split(r"[\r\n]", err) if SAME_TIMESTEP[:20] in line]
    assert len([line for line in warned if line.startswith("warning: ")]) == 1, err  # 4 frames, printed once
    assert len([line for line in warned if line.startswith("warning (×4 in this job): ")]) == 1, err


def test_quiet_draws_no_bar_but_keeps_the_warnings(tmp_path, capfd):
    assert main(["evaluate", "--quiet", str(write_config(tmp_path))]) == 0
    captured = capfd.readouterr()
    assert "%|" not in captured.err and bar_names(captured.err) == set()
    assert f"warning: step 2 (frame 1): {SAME_TIMESTEP}" in captured.err
    assert "wrote " in captured.out


def test_generate_draws_the_frames_bar_only(tmp_path, capfd):
    args = ["generate", str(TOY), "--model", "tiny", "--steps", "2", "--out", str(tmp_path / "run")]
    assert main(args) == 0
    err = capfd.readouterr().err
    assert bar_names(err) == {"frames"}, err  # the frames' denoising bars are off
    assert len(finished_bar_lines(err)) == 1
    assert main([*args[:-2], "--out", str(tmp_path / "quiet"), "--quiet"]) == 0
    assert bar_names(capfd.readouterr().err) == set()


def test_score_leaves_no_bar_behind(tmp_path, capfd):
    run = tmp_path / "run"
    assert main(["generate", str(TOY), "--model", "tiny", "--steps", "2", "--out", str(run), "--quiet"]) == 0
    capfd.readouterr()
    score = ["score", str(run), "--clip", str(ROOT / "data" / "toykitchen" / "clip"), "--metrics", "step_faithfulness"]
    assert main(score) == 0
    err = capfd.readouterr().err
    assert (
        bar_names(err) <= {"CLIP texts", "CLIP images"} and finished_bar_lines(err) == []
    )  # one at a time, transient
    assert main([*score, "--quiet"]) == 0
    assert bar_names(capfd.readouterr().err) == set()


def test_train_lora_draws_its_steps_bar_only(tmp_path, capfd):
    (tmp_path / "train.yaml").write_text(
        "name: cli\nout: run\nmodel: tiny\ndata: {toy: {count: 2, steps: 2}}\nlora: {rank: 2}\n"
        "canvas: {height: 32, width: 32}\ntrain: {steps: 2, checkpoint_every: 1}\n"
    )
    assert main(["train-lora", str(tmp_path / "train.yaml")]) == 0
    assert bar_names(capfd.readouterr().err) == {"train-lora cli"}
    assert main(["train-lora", "--quiet", "--steps", "3", str(tmp_path / "train.yaml")]) == 0
    assert bar_names(capfd.readouterr().err) == set()


def test_inner_bars_are_off_in_a_job_and_transient_outside_one():
    with job_console():
        with ProgressBar(total=2, desc="job") as outer:
            inner = ProgressBar(total=2, desc="inner")
            assert not outer.disable and inner.disable
            inner.close()
        with ProgressBar(total=1, desc="next job bar") as after:
            assert not after.disable  # the outer bar closed: the next one is the job's bar again
    with ProgressBar(total=2, desc="cell") as outer:
        with ProgressBar(total=2, desc="inner") as inner:
            assert not inner.disable and not inner.leave and outer.leave


def test_a_job_counts_warnings_that_differ_only_in_numbers(capsys):
    import warnings

    with job_console():
        for step in range(3):
            warnings.warn(f"step {step}: too few tokens", stacklevel=1)
        warnings.warn("another warning", stacklevel=1)
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "warning: step 0: too few tokens",
        "warning: another warning",
        "warning (×3 in this job): step 0: too few tokens",
    ]
