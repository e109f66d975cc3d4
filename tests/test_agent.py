"""Tests for cooklab.agent: the plan schema, the rule planner, and the OpenAI planner.

The OpenAI planner is tested through the real ``openai`` client against a small
OpenAI-compatible server started on 127.0.0.1 by the ``server`` fixture. Each test
scripts the server's answers (a valid plan, bad JSON, a 429, a reply slower than the
client's timeout ...) and then inspects the requests it received.
"""

from __future__ import annotations

import json
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

import pytest
from openai_stub import FakeOpenAI
from pydantic import ValidationError

from cooklab.agent import (
    DEFAULT_STYLE,
    PROMPT_VERSION,
    RESPONSE_FORMAT,
    AgentError,
    OpenAIPlanner,
    PlannedStep,
    RecipeContext,
    RecipePlan,
    RuleBasedPlanner,
    agreement,
    default_cache_dir,
    plan,
)
from cooklab.errors import ConfigError, CooklabError
from cooklab.recipe import Recipe, load_recipe

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "data" / "recipes").glob("*.yaml"))
SECRET = "sk-test-SENTINEL-7f3a9c"  # a fake key that must never leave the Authorization header

# Floors for the rule planner's agreement with the hand-written metadata of data/recipes/.
# Measured: containers 65/73 steps (89%), reference steps 73/73 (100%); see docs/agent.md.
CONTAINER_FLOOR = 0.85
REFERENCE_FLOOR = 0.95


def answer_for(recipe: Recipe, **changes: Any) -> str:
    """A valid model answer for ``recipe`` (the rule plan as JSON), with optional step changes."""
    rules = RuleBasedPlanner().plan(recipe)
    steps = [step.model_dump() for step in rules.steps]
    for index, fields in changes.items():
        steps[int(index.removeprefix("step"))].update(fields)
    return json.dumps({"context": rules.context.model_dump(), "steps": steps})


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """No real key and no writes to ~/.cache in any test."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setenv("COOKLAB_CACHE", str(tmp_path / "cooklab-cache"))


@pytest.fixture
def pancakes() -> Recipe:
    return load_recipe(ROOT / "data" / "recipes" / "pancakes.yaml")


def openai_plan(recipe: Recipe, server: FakeOpenAI, **kwargs: Any) -> RecipePlan:
    """plan() on the fake server, fast retries and no cache unless the test asks."""
    kwargs.setdefault("cache_dir", False)
    kwargs.setdefault("retry_delay", 0.01)
    return plan(recipe, "openai", base_url=server.url, **kwargs)


# --- the schema -------------------------------------------------------------------


def test_plan_feeds_the_pipelines(pancakes):
    result = RuleBasedPlanner().plan(pancakes)
    assert isinstance(result, RecipePlan) and result.agent == "rules" and result.prompt_version == PROMPT_VERSION
    assert result.title == "Pancakes" and result.context == RecipeContext(dish="Pancakes", style=DEFAULT_STYLE)
    assert [s.step for s in result.steps] == list(range(1, 8))
    plans = result.step_plans()
    assert len(plans) == 7 and plans[0].container == "mixing bowl" and plans[2].reference_step == 1
    applied = result.apply(pancakes)
    assert applied.texts == pancakes.texts and applied.plans() == plans
    assert len(result.prompts()) == 7 and all(
        p.startswith(DEFAULT_STYLE) and "Pancakes, step" in p for p in result.prompts()
    )
    assert RecipePlan.model_validate_json(result.model_dump_json()) == result


def test_plan_refuses_forward_references_and_wrong_lengths(pancakes):
    good = RuleBasedPlanner().plan(pancakes)
    steps = [s.model_dump() for s in good.steps]
    steps[1]["reference_step"] = 2
    with pytest.raises(
        ValidationError, match=r"step 2: reference_step 2 is not an earlier step\. Fix: use a step from 1 to 1"
    ):
        RecipePlan(title="x", context=good.context, steps=steps, agent="rules")
    steps[1]["reference_step"], steps[1]["step"] = None, 5
    with pytest.raises(ValidationError, match=r"steps\[2\] is numbered 5"):
        RecipePlan(title="x", context=good.context, steps=steps, agent="rules")
    short = good.model_copy(update={"steps": good.steps[:3]})
    with pytest.raises(ConfigError, match="the plan has 3 steps but the recipe 'Pancakes' has 7"):
        short.apply(pancakes)


def test_response_format_is_strict_json_schema():
    assert RESPONSE_FORMAT["type"] == "json_schema" and RESPONSE_FORMAT["json_schema"]["strict"] is True
    schema = RESPONSE_FORMAT["json_schema"]["schema"]
    objects = [schema, *schema["$defs"].values()]
    assert {"IngredientState", "PlannedStep", "RecipeContext"} <= set(schema["$defs"])
    for obj in objects:
        assert obj["additionalProperties"] is False and obj["required"] == list(obj["properties"])
    assert all(word not in json.dumps(schema) for word in ('"default"', '"minLength"', '"minItems"', '"title"'))
    assert set(schema["$defs"]["PlannedStep"]["properties"]) == set(PlannedStep.model_fields)


# --- the rule planner -------------------------------------------------------------


def test_rule_planner_agrees_with_hand_written_metadata():
    total_steps = containers = references = 0
    for path in SHIPPED:
        recipe = load_recipe(path)
        result = RuleBasedPlanner().plan(recipe)
        score = agreement(result, recipe)
        total_steps += score.steps
        containers += score.container_matches
        references += score.reference_matches
        result.apply(recipe)  # every plan is valid metadata for its recipe
    assert len(SHIPPED) == 10 and total_steps == 73
    assert containers / total_steps >= CONTAINER_FLOOR, f"container agreement {containers}/{total_steps}"
    assert references / total_steps >= REFERENCE_FLOOR, f"reference_step agreement {references}/{total_steps}"


def test_rule_planner_on_raw_strings():
    steps = [
        "Crack two eggs into a bowl and whisk them.",
        "Melt butter in a frying pan.",
        "Pour the eggs into the pan and stir gently.",
        "Slide the soft eggs onto a warm plate.",
    ]
    result = plan(steps, "rules")
    assert [s.container for s in result.steps] == ["mixing bowl", "frying pan", "frying pan", "plate"]
    assert [s.reference_step for s in result.steps] == [None, None, 2, None]
    assert result.steps[1].ingredients[0].model_dump() == {"name": "butter", "state": "melted"}
    assert result.steps[2].container_attributes == result.steps[1].container_attributes  # the same pan looks the same
    assert "Untitled" not in result.prompts()[0] and "In the white ceramic mixing bowl." in result.prompts()[0]


def test_rule_planner_states_looks_and_second_containers():
    steps = [
        "Dice two carrots on a wooden chopping board.",
        "Whisk flour and milk in a large glass bowl.",
        "Beat the eggs in a second, smaller bowl.",
        "Pour the eggs into the flour and stir.",
        "Tip the carrots into a large pot of boiling water.",
        "Lift the carrots out of the pot onto a plate.",
    ]
    result = RuleBasedPlanner(style="watercolour").plan(Recipe.from_steps(steps, title="Test"))
    names = [s.container for s in result.steps]
    assert names == ["cutting board", "mixing bowl", "small bowl", "mixing bowl", "stock pot", "plate"]
    assert [s.reference_step for s in result.steps] == [None, None, None, 2, None, None]
    assert result.steps[0].container_attributes == ["wooden"]
    assert result.steps[1].container_attributes == ["large", "glass"]
    assert result.steps[0].ingredients[0].model_dump() == {"name": "carrot", "state": "diced"}
    assert result.steps[4].ingredients[0].state == "diced"  # carried over from step 1
    assert (
        result.prompts()[0].startswith("watercolour. Test, step 1:")
        and "On the wooden cutting board." in result.prompts()[0]
    )


def test_rule_planner_without_containers():
    result = plan(["Preheat the oven.", "Wash the lettuce.", "Season with salt and pepper."], "rules")
    assert all(s.container is None and s.reference_step is None and s.container_attributes == [] for s in result.steps)
    assert all(" In the " not in p and " On the " not in p for p in result.prompts())
    assert Recipe.from_steps(["a", "b", "c"]).with_plans(result.step_plans()).plans() == result.step_plans()


def test_plan_reads_recipe_files_and_checks_agent(pancakes):
    assert plan(ROOT / "data" / "recipes" / "pancakes.yaml", "rules") == plan(pancakes, "rules")
    with pytest.raises(ConfigError, match="choose 'auto', 'rules' or 'openai'"):
        plan(pancakes, "gpt")


def test_auto_without_a_key_uses_the_rules(pancakes):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = plan(pancakes)
    assert result.agent == "rules"
    assert not default_cache_dir().exists()  # rule plans are never cached


# --- the OpenAI planner -------------------------------------------------------------


def test_openai_valid_plan_and_request(server, pancakes):
    server.script = [("content", answer_for(pancakes))]
    result = openai_plan(pancakes, server, model="gpt-4o-mini")
    assert result.agent == "openai:gpt-4o-mini" and result.title == "Pancakes"
    assert result.step_plans() == RuleBasedPlanner().plan(pancakes).step_plans()

    [request] = server.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["authorization"] == "Bearer not-needed"  # no key needed for a base_url server
    body = request["body"]
    assert body["model"] == "gpt-4o-mini" and body["temperature"] == 0
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert "reference_step" in body["messages"][0]["content"] and "Cooking Agent" in body["messages"][0]["content"]
    assert all(text in body["messages"][1]["content"] for text in pancakes.texts)
    assert body["response_format"] == json.loads(json.dumps(RESPONSE_FORMAT))


def test_fenced_json_is_accepted(server, pancakes):
    server.script = [("content", "```json\n" + answer_for(pancakes) + "\n```")]
    assert openai_plan(pancakes, server).agent == "openai:gpt-4o"


def test_invalid_json_then_valid(server, pancakes):
    server.script = [("content", "Sure! Here is the plan: {"), ("content", answer_for(pancakes))]
    result = openai_plan(pancakes, server, max_retries=1)
    assert result.agent == "openai:gpt-4o" and len(server.requests) == 2
    retry = server.requests[1]["body"]["messages"]
    assert [m["role"] for m in retry] == ["system", "user", "assistant", "user"]
    assert retry[2]["content"] == "Sure! Here is the plan: {"
    assert "not a valid plan" in retry[3]["content"] and "Invalid JSON" in retry[3]["content"]


def test_schema_error_is_fed_back(server, pancakes):
    bad = answer_for(pancakes, step1={"reference_step": 2})  # step 2 refers to itself
    server.script = [("content", bad), ("content", answer_for(pancakes))]
    openai_plan(pancakes, server, max_retries=1)
    feedback = server.requests[1]["body"]["messages"][3]["content"]
    assert "step 2: reference_step 2 is not an earlier step" in feedback


def test_wrong_number_of_steps_is_fed_back(server, pancakes):
    short = json.loads(answer_for(pancakes))
    short["steps"] = short["steps"][:5]
    server.script = [("content", json.dumps(short)), ("content", answer_for(pancakes))]
    openai_plan(pancakes, server, max_retries=1)
    assert (
        "the plan has 5 steps but the recipe 'Pancakes' has 7" in server.requests[1]["body"]["messages"][3]["content"]
    )


def test_always_invalid_raises_after_the_retries(server, pancakes):
    server.script = [("content", '{"context": {"dish": "Pancakes"}}')]
    with pytest.raises(AgentError) as info:
        openai_plan(pancakes, server, max_retries=2)
    assert len(server.requests) == 3
    message = str(info.value)
    assert "failed after 3 attempts" in message and "context.style" in message
    assert "Fix:" in message and "agent='rules'" in message
    assert isinstance(info.value, CooklabError) and isinstance(info.value, RuntimeError)


def test_timeout_then_valid(server, pancakes):
    server.script = [("sleep", 1.0), ("content", answer_for(pancakes))]
    start = time.monotonic()
    result = openai_plan(pancakes, server, timeout=0.25, max_retries=1)
    assert result.agent == "openai:gpt-4o" and len(server.requests) == 2
    assert time.monotonic() - start < 0.9  # did not wait for the slow reply


def test_timeouts_exhausted(server, pancakes):
    server.script = [("sleep", 0.6)]
    with pytest.raises(AgentError, match=r"failed after 2 attempts: no answer within 0\.2 s\. Fix: raise timeout="):
        openai_plan(pancakes, server, timeout=0.2, max_retries=1)


def test_rate_limit_honours_retry_after(server, pancakes):
    limited = ("status", 429, {"error": {"message": "Rate limit reached", "type": "requests"}}, {"Retry-After": "1"})
    server.script = [limited, ("content", answer_for(pancakes))]
    start = time.monotonic()
    result = openai_plan(pancakes, server, max_retries=1, retry_delay=0.01)
    assert time.monotonic() - start >= 0.95  # waited the server's 1 s, not the 0.01 s backoff
    assert result.agent == "openai:gpt-4o" and len(server.requests) == 2


def test_rate_limit_backs_off_exponentially_then_raises(server, pancakes):
    server.script = [("status", 429, {"error": {"message": "Rate limit reached"}}, {})]
    start = time.monotonic()
    with pytest.raises(AgentError, match=r"after 3 attempts: HTTP 429 .*Fix: the server is limiting requests"):
        openai_plan(pancakes, server, max_retries=2, retry_delay=0.1)
    assert time.monotonic() - start >= 0.3 - 0.02  # 0.1 s + 0.2 s
    assert len(server.requests) == 3


def test_openai_needs_a_key_or_a_server(pancakes):
    with pytest.raises(AgentError, match="set the OPENAI_API_KEY environment variable"):
        plan(pancakes, "openai")
    with pytest.raises(ConfigError, match="max_retries=-1"):
        OpenAIPlanner(base_url="http://127.0.0.1:1/v1", max_retries=-1)


def test_auto_falls_back_to_rules_with_a_warning(server, pancakes, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    server.script = [("status", 503, {"error": {"message": "overloaded"}}, {})]
    with pytest.warns(
        UserWarning, match=r"failed after 2 attempts: HTTP 503.*Falling back to the offline rule-based planner"
    ):
        result = plan(pancakes, base_url=server.url, max_retries=1, retry_delay=0.01, cache_dir=False)
    assert result.agent.startswith("rules (openai failed: ") and "HTTP 503" in result.agent
    assert result.step_plans() == RuleBasedPlanner().plan(pancakes).step_plans()
    with pytest.raises(AgentError):
        plan(pancakes, "openai", base_url=server.url, max_retries=0, cache_dir=False)


# --- the cache and the key ------------------------------------------------------------


def test_cache_hit_miss_and_no_key_in_files(server, pancakes, monkeypatch, tmp_path):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    server.script = [("content", answer_for(pancakes))]
    first = plan(pancakes, base_url=server.url)  # auto: the key is set
    assert first.agent == "openai:gpt-4o" and len(server.requests) == 1
    assert server.requests[0]["headers"]["authorization"] == f"Bearer {SECRET}"  # the key is used ...
    files = list(default_cache_dir().glob("*.json"))
    assert default_cache_dir() == tmp_path / "cooklab-cache" / "agent" and len(files) == 1

    assert plan(pancakes, base_url=server.url) == first and len(server.requests) == 1  # hit: no request
    plan(pancakes, base_url=server.url, model="gpt-4o-mini")  # another model: a miss
    assert len(server.requests) == 2 and len(list(default_cache_dir().glob("*.json"))) == 2
    other = tmp_path / "elsewhere"
    plan(pancakes, base_url=server.url, cache_dir=other)
    plan(pancakes, base_url=server.url, cache_dir=other)
    assert len(server.requests) == 3 and len(list(other.glob("*.json"))) == 1
    plan(pancakes, base_url=server.url, cache_dir=False)
    assert len(server.requests) == 4

    # ... but never written anywhere.
    for path in [*default_cache_dir().iterdir(), *other.iterdir()]:
        assert SECRET not in path.read_text(encoding="utf-8")
    assert SECRET not in first.model_dump_json()
    assert SECRET not in repr(OpenAIPlanner(base_url=server.url))


def test_changed_recipe_misses_the_cache(server, pancakes):
    server.script = [("content", answer_for(pancakes))]
    plan(pancakes, "openai", base_url=server.url)
    renamed = Recipe(title="Sunday pancakes", steps=pancakes.steps)
    plan(renamed, "openai", base_url=server.url)
    assert len(server.requests) == 2


def test_unreadable_cache_file_is_replaced(server, pancakes):
    server.script = [("content", answer_for(pancakes))]
    plan(pancakes, "openai", base_url=server.url)
    [path] = default_cache_dir().glob("*.json")
    path.write_text("{ truncated", encoding="utf-8")
    with pytest.warns(UserWarning, match="ignoring the unreadable cached plan"):
        again = plan(pancakes, "openai", base_url=server.url)
    assert len(server.requests) == 2 and RecipePlan.model_validate_json(path.read_text(encoding="utf-8")) == again


def test_key_never_appears_in_errors_or_warnings(server, pancakes, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    echo = {"error": {"message": f"Incorrect API key provided: {SECRET}.", "type": "invalid_request_error"}}
    server.script = [("status", 401, echo, {})]
    with pytest.raises(AgentError) as info:
        plan(pancakes, "openai", base_url=server.url, max_retries=3)
    assert len(server.requests) == 1  # a rejected key is not retried
    text = "".join(traceback.format_exception(info.value))
    assert "HTTP 401" in text and "check OPENAI_API_KEY" in text and SECRET not in text

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = plan(pancakes, base_url=server.url)
    assert caught and all(SECRET not in str(w.message) for w in caught)
    assert SECRET not in result.model_dump_json()
    assert not default_cache_dir().exists()  # failures are not cached


def test_plan_is_exported_at_the_top_level_like_the_pipelines():
    import cooklab
    import cooklab.agent

    assert cooklab.plan is cooklab.agent.plan
    assert cooklab.RecipePlan is cooklab.agent.RecipePlan
    assert {"plan", "RecipePlan"} <= set(cooklab.__all__)
