"""Clear messages for bad input (issue 25, findings 9, 11, 12 and 13): each names the file, flag or argument
and the fix, instead of a raw traceback, a misleading message or a flood of library warnings."""

from __future__ import annotations

import socket

import pytest

import cooklab
from cooklab.cli import main
from cooklab.errors import RecipeError

# --- 13: a mistyped recipe name, a step passed as a recipe ------------------------------


def test_missing_recipe_lists_the_shipped_recipes(capsys, tmp_path):
    assert main(["plan", "tomatosoup", "--agent", "rules"]) == 2
    message = capsys.readouterr().err
    assert "tomatosoup: file not found (it does not exist)" in message
    assert "unsupported file type" not in message
    assert "Did you mean `tomato_soup`?" in message
    assert "pancakes" in message and "toy_kitchen" in message


def test_a_step_string_is_not_taken_for_a_path():
    with pytest.raises(RecipeError) as info:
        cooklab.as_recipe("Put a pot on the table.")
    message = str(info.value)
    assert "'Put a pot on the table.'" in message and "reads like a step" in message
    assert "list of steps" in message and "Recipe.from_steps" in message
    assert "unsupported file type" not in message
    from cooklab.models import tiny_sd

    with pytest.raises(RecipeError, match="reads like a step"):  # the pipelines read recipes with as_recipe
        cooklab.RecipeDiffusion(tiny_sd())("Put a pot on the table.", num_inference_steps=2, progress=False)


# --- 11: an LLM server that accepts and never answers -------------------------------------


@pytest.fixture
def silent_server():
    """A socket that accepts connections (the system's backlog) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/v1"


def test_plan_timeout_flag_and_message(silent_server, capsys, monkeypatch, tmp_path):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("COOKLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("cooklab.agent.openai_planner.time.sleep", lambda seconds: None)  # no backoff waits
    argv = ["plan", "pancakes", "--agent", "openai", "--base-url", silent_server, "--timeout", "0.2"]
    assert main(argv) == 2
    message = capsys.readouterr().err
    assert "no answer within 0.2 s" in message
    assert "Fix: raise --timeout (now 0.2 s)" in message and "--agent rules" in message
    assert "timeout=" not in message


# --- 9: corrupt pictures ----------------------------------------------------------------------


def _truncated_png(path, size=32):
    """A PNG of ``size`` x ``size`` noise cut to half its bytes (an interrupted copy)."""
    import numpy as np
    import PIL.Image

    noise = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    PIL.Image.fromarray(noise).save(path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def test_score_names_a_truncated_frame_and_the_fix(tmp_path, capsys):
    import json

    import PIL.Image

    run = tmp_path / "run"
    run.mkdir()
    recipe = cooklab.Recipe.from_steps(["Put a pot on the table.", "Fill the pot with water."])
    recipe.save(run / "recipe.yaml")
    frames = [{"image": f"frame_0{n}.png", "text": text} for n, text in enumerate(recipe.texts, start=1)]
    settings = {"command": "cooklab generate soup.yaml --out run", "recipe": {"title": recipe.title}, "frames": frames}
    (run / "settings.json").write_text(json.dumps(settings))
    PIL.Image.new("RGB", (32, 32)).save(run / "frame_01.png")
    _truncated_png(run / "frame_02.png")
    assert main(["score", str(run)]) == 2
    message = capsys.readouterr().err
    assert "frame_02.png' is not a readable picture" in message
    assert (
        "write the run again with the command in its settings.json (cooklab generate soup.yaml --out run)" in message
    )


def test_train_lora_names_a_corrupt_picture_and_the_fix(tmp_path, capsys):
    from cooklab.training import write_toy_folder

    root = write_toy_folder(tmp_path / "data", count=1, steps=2, size=32)
    (root / "toy-5000" / "step_02.png").write_bytes(b"not a picture at all")
    (tmp_path / "train.yaml").write_text(
        f"name: corrupt\nout: run\nmodel: tiny\ndata: {{folder: {root}}}\nlora: {{rank: 2}}\n"
        "canvas: {height: 32, width: 32}\ntrain: {steps: 1, checkpoint_every: 1}\n"
    )
    assert main(["train-lora", str(tmp_path / "train.yaml")]) == 2
    message = capsys.readouterr().err
    assert "step_02.png' is not a readable picture" in message
    assert "replace it with a readable picture" in message and "remove the recipe 'toy-5000'" in message


# --- 12: a very long step text ----------------------------------------------------------------

LONG_STEP = "Stir the soup in the pot " * 200  # 1,200 CLIP tokens, 2,000 T5 tokens


def _long_text_warnings(capfd, call) -> list[str]:
    """The cooklab warnings of ``call()`` (the libraries' logs are checked to hold no truncation flood)."""
    capfd.readouterr()
    with pytest.warns(UserWarning) as caught:
        call()
    logged = capfd.readouterr().err
    assert "The following part of your input was truncated" not in logged
    assert "Token indices sequence length" not in logged
    return [str(w.message) for w in caught if "tokens dropped" in str(w.message)]


def test_recipe_diffusion_notes_dropped_tokens_once(capfd):
    from cooklab.models import tiny_sd

    pipe = cooklab.RecipeDiffusion(tiny_sd())
    steps = [LONG_STEP, "Serve the soup.", LONG_STEP]
    kwargs = dict(num_inference_steps=2, height=32, width=32, progress=False, output_type="np")
    notes = _long_text_warnings(capfd, lambda: pipe(steps, **kwargs))
    assert len(notes) == 1
    assert "(CLIP 77 tokens)" in notes[0] and "step 1: 1125 CLIP; step 3: 1125 CLIP tokens dropped" in notes[0]
    assert "step 2" not in notes[0] and "Fix: shorten those steps" in notes[0]


def test_cookanything_notes_dropped_tokens_once(capfd):
    from cooklab.models import TINY_T5_MAX_LENGTH, tiny_flux

    pipe = cooklab.CookAnything(tiny_flux())
    kwargs = dict(num_inference_steps=1, progress=False, output_type="np", max_sequence_length=TINY_T5_MAX_LENGTH)
    notes = _long_text_warnings(capfd, lambda: pipe([LONG_STEP, "Serve the soup."], **kwargs))
    assert len(notes) == 1
    assert f"step 1: 1125 CLIP, {2000 - (TINY_T5_MAX_LENGTH - 1)} T5 tokens dropped" in notes[0]
    assert f"raise max_sequence_length (now {TINY_T5_MAX_LENGTH}" in notes[0]


def test_evaluate_names_a_corrupt_stored_frame_and_the_fix(tmp_path):
    """A unit's frame cut short on disk: the error names the file and says to delete the unit to regenerate it."""
    import PIL.Image

    from cooklab.evaluation.store import Unit, frame_path, load_frames

    unit = Unit(label="row", method="independent", params={}, recipe_id="toy-1", seed=0, generation="g")
    folder = unit.folder(tmp_path)
    folder.mkdir(parents=True)
    PIL.Image.new("RGB", (32, 32)).save(frame_path(folder, 0))
    _truncated_png(frame_path(folder, 1))
    with pytest.raises(cooklab.ConfigError, match=r"frame_01.png' is not a readable picture") as error:
        load_frames(unit, tmp_path, 2)
    assert "delete the unit's folder" in str(error.value) and str(folder) in str(error.value)
    assert load_frames(unit, tmp_path, 3) is None  # a missing frame still means "generate it"
