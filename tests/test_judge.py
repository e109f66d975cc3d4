"""The vision-language judge (cooklab.metrics.judge) against the scripted OpenAI-compatible server of the agent's
tests."""

from __future__ import annotations

import json

import numpy as np
import pytest
from openai_stub import FakeOpenAI

from cooklab.errors import ConfigError
from cooklab.metrics import JUDGE_METRICS, VisionJudge, judge_metrics, score
from cooklab.metrics.judge import JUDGE_PROMPT_VERSION, JudgeError, matched_food, singular
from cooklab.recipe import Recipe

SECRET = "sk-test-SENTINEL-judge-41c2"  # a fake key that must never leave the Authorization header


@pytest.fixture(autouse=True)
def no_key(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


@pytest.fixture
def recipe() -> Recipe:
    return Recipe(
        title="Toy carrot bowl",
        steps=[
            {"text": "Place a red bowl on the table."},
            {"text": "Add diced carrot and whole egg to the bowl.", "ingredients": ["carrot", "egg"]},
        ],
    )


def frames(n: int = 2) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(n)]


def verdict(step_shown: bool, **visible: bool) -> str:
    return json.dumps(
        {
            "reason": "a bowl",
            "step_shown": step_shown,
            "ingredients": [{"name": name, "visible": seen} for name, seen in visible.items()],
        }
    )


def judge(server: FakeOpenAI, prompt: str = "told", **kwargs) -> VisionJudge:
    """A judge on the scripted server; ``prompt="told"`` (one answer per frame) unless a test asks for "blind"."""
    return VisionJudge("stub-vision", base_url=server.url, retry_delay=0.01, prompt=prompt, **kwargs)


def test_valid_answers_give_both_metrics_with_their_record(server, recipe):
    server.script = [("content", verdict(True)), ("content", verdict(False, carrot=True, egg=False))]
    results = judge_metrics(frames(), recipe, judge(server))
    step, present = results["judge_step_faithfulness"], results["judge_ingredient_presence"]
    assert step.per_item == [1.0, 0.0] and step.value == 0.5
    assert present.per_item == [1.0, 0.0] and present.record["scored"] == [(1, "carrot"), (1, "egg")]
    for result in results.values():
        assert result.record["model"] == "stub-vision" and result.record["prompt_version"] == JUDGE_PROMPT_VERSION
        assert result.record["prompt"] == "told" and "matching" not in result.record
        assert result.record["base_url"].startswith("http://127.0.0.1") and len(result.record["answers"]) == 2
    assert len(server.requests) == 2  # one request per frame
    body = server.requests[1]["body"]
    assert (
        body["response_format"]["json_schema"]["name"] == "frame_verdict"
        and body["response_format"]["json_schema"]["strict"]
    )
    text, image = body["messages"][1]["content"]
    asked = json.loads(text["text"].split("\n", 1)[1])
    assert asked == {
        "recipe": "Toy carrot bowl",
        "step": 2,
        "instruction": recipe.steps[1].text,
        "ingredients": ["carrot", "egg"],
    }
    assert image["image_url"]["url"].startswith("data:image/png;base64,")


def test_malformed_answer_is_sent_back_and_asked_again(server, recipe):
    server.script = [
        ("content", "not json at all"),
        ("content", verdict(True)),  # frame 1: bad JSON, then valid
        ("content", verdict(True, carrot=True)),
        ("content", verdict(True, carrot=True, egg=True)),
    ]  # frame 2: egg missing
    results = judge_metrics(frames(), recipe, judge(server))
    assert results["judge_step_faithfulness"].per_item == [1.0, 1.0]
    assert results["judge_ingredient_presence"].per_item == [1.0, 1.0]
    assert len(server.requests) == 4
    first_retry = server.requests[1]["body"]["messages"]
    assert first_retry[2] == {"role": "assistant", "content": "not json at all"}
    assert "not a valid verdict" in first_retry[3]["content"] and "Invalid JSON" in first_retry[3]["content"]
    wrong_names = server.requests[3]["body"]["messages"][3]["content"]
    assert "['carrot', 'egg']" in wrong_names


def test_answers_that_stay_invalid_are_a_judge_error(server, recipe):
    server.script = [("content", "{}")]
    with pytest.raises(JudgeError, match="failed on frame 1 after 2 attempts.*verdict schema"):
        judge_metrics(frames(), recipe, judge(server, max_retries=1))


def test_key_only_in_the_header_never_in_records_or_errors(server, recipe, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    server.script = [("content", verdict(True)), ("content", verdict(True, carrot=True, egg=True))]
    results = judge_metrics(frames(), recipe, judge(server))
    assert server.requests[0]["headers"]["authorization"] == f"Bearer {SECRET}"
    assert SECRET not in json.dumps({name: r.record for name, r in results.items()}, default=str)
    assert SECRET not in repr(judge(server))
    server.script = [("status", 401, {"error": {"message": f"invalid key {SECRET}"}}, {})]
    with pytest.raises(JudgeError) as error:
        judge_metrics(frames(), recipe, judge(server))
    assert (
        "HTTP 401" in str(error.value)
        and "check OPENAI_API_KEY" in str(error.value)
        and SECRET not in str(error.value)
    )


def test_without_key_or_server_the_fix_is_named():
    with pytest.raises(JudgeError, match="set the OPENAI_API_KEY environment variable"):
        VisionJudge()


def test_score_runs_both_judge_metrics_from_one_pass(server, recipe):
    server.script = [("content", verdict(True)), ("content", verdict(True, carrot=False, egg=True))]
    results = score(frames(), recipe, JUDGE_METRICS, judge=judge(server))
    assert list(results) == list(JUDGE_METRICS) and len(server.requests) == 2
    assert results["judge_ingredient_presence"].per_item == [0.0, 1.0]
    with pytest.raises(ConfigError, match="pass judge=VisionJudge"):
        score(frames(), recipe, ["judge_step_faithfulness"])


# ---- prompt="blind" (the default): the model lists what it sees; cooklab matches (issue 26, finding 9) ----------


def step_answer(shown: bool) -> str:
    return json.dumps({"reason": "a bowl", "step_shown": shown})


def foods_answer(*foods: str) -> str:
    return json.dumps({"reason": "food in a bowl", "foods": list(foods)})


def said(body: dict) -> str:
    """Everything the request says in words (system prompt and text parts; the picture's data URL left out)."""
    parts = [body["messages"][0]["content"]]
    parts += [part["text"] for part in body["messages"][1]["content"] if part["type"] == "text"]
    return "\n".join(parts).lower()


def test_the_blind_judge_never_names_an_expected_ingredient_and_matches_what_it_lists(server, recipe):
    server.script = [
        ("content", step_answer(True)),  # frame 1: no ingredient listed, so only the step is asked
        ("content", step_answer(False)),  # frame 2: the step ...
        ("content", foods_answer("Diced CARROTS", "a red bowl", "eggplant")),  # ... and the foods it sees
    ]
    blind = VisionJudge("stub-vision", base_url=server.url, retry_delay=0.01)  # the default prompt
    assert blind.prompt == "blind"
    results = judge_metrics(frames(), recipe, blind)
    assert len(server.requests) == 3
    step_request, foods_request = server.requests[1]["body"], server.requests[2]["body"]
    assert foods_request["response_format"]["json_schema"]["name"] == "food_list"
    for word in ("carrot", "egg", "toy carrot bowl", "diced"):  # nothing of the recipe in the foods request
        assert word not in said(foods_request)
    asked = json.loads(step_request["messages"][1]["content"][0]["text"].split("\n", 1)[1])
    assert asked == {"recipe": "Toy carrot bowl", "step": 2, "instruction": recipe.steps[1].text}  # no ingredients
    assert "ingredient" not in said(step_request)
    step, present = results["judge_step_faithfulness"], results["judge_ingredient_presence"]
    assert step.per_item == [1.0, 0.0]
    assert present.per_item == [1.0, 0.0]  # "Diced CARROTS" is a carrot; "eggplant" is not an egg
    assert present.record["prompt"] == "blind" and "singular" in present.record["matching"]
    assert present.record["answers"][1]["matched"] == ["Diced CARROTS", None]
    assert present.record["answers"][1]["foods"] == ["Diced CARROTS", "a red bowl", "eggplant"]
    assert "not told what to expect" in present.record["formula"]


@pytest.mark.parametrize(
    ("expected", "foods", "match"),
    [
        ("carrot", ["Diced CARROTS"], "Diced CARROTS"),  # case, plural -s, more words around it
        ("tomato", ["two tomatoes"], "two tomatoes"),  # -oes
        ("berry", ["mixed berries"], "mixed berries"),  # -ies
        ("peach", ["peaches"], "peaches"),  # -ches
        ("glass noodles", ["glass noodle"], "glass noodle"),  # -ss kept, -s dropped
        ("hummus", ["hummus"], "hummus"),  # -us kept
        ("green onion", ["chopped scallions"], "chopped scallions"),  # synonym, plural
        ("scallion", ["spring onion"], "spring onion"),  # both sides made canonical
        ("cilantro", ["coriander leaves"], "coriander leaves"),
        ("pepper", ["red bell pepper"], "red bell pepper"),  # the food may say more
        ("bell pepper", ["pepper"], None),  # ... not less
        ("egg", ["eggplant"], None),  # whole words only
        ("egg", ["egg-yolk"], "egg-yolk"),  # punctuation splits words
        ("carrot", ["a bowl", "carrot", "carrots"], "carrot"),  # the first that matches
        ("carrot", [], None),
    ],
)
def test_matching_rules_on_designed_answers(expected, foods, match):
    assert matched_food(expected, foods) == match


def test_singular_and_own_synonyms():
    assert [singular(w) for w in ("carrots", "berries", "potatoes", "dishes", "boxes", "glass", "asparagus")] == [
        "carrot",
        "berry",
        "potato",
        "dish",
        "box",
        "glass",
        "asparagus",
    ]
    assert matched_food("kale", ["cavolo nero"]) is None
    assert matched_food("kale", ["cavolo nero"], {"cavolo nero": "kale"}) == "cavolo nero"


def test_the_prompt_switch_is_checked_and_recorded(server, recipe):
    with pytest.raises(ConfigError, match="prompt='shy': choose 'blind'"):
        VisionJudge("stub-vision", base_url=server.url, prompt="shy")
    server.script = [("content", verdict(True)), ("content", verdict(True, carrot=True, egg=True))]
    told = judge_metrics(frames(), recipe, judge(server, prompt="told"))
    assert len(server.requests) == 2 and '"ingredients"' in said(server.requests[1]["body"])  # the list is sent
    assert told["judge_ingredient_presence"].record["prompt"] == "told"
