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
