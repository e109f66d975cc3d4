"""A vision-language judge: a chat model looks at every frame and says whether it shows its step and its ingredients.

CookAnything's step faithfulness and ingredient accuracy, judged by a model that reads pictures
instead of by CLIP features (``recipe_metrics``). The judge talks to the model through the same
``openai`` client setup as the Cooking Agent (``cooklab.agent.openai_planner``): any
OpenAI-compatible server (``base_url``), the key from ``OPENAI_API_KEY`` only, a strict JSON
schema, invalid answers sent back with the problem, retries with backoff::

    judge = VisionJudge()                                              # gpt-4o, OPENAI_API_KEY from the environment
    judge = VisionJudge("llava", base_url="http://localhost:8000/v1")  # a local server with image input
    results = judge_metrics(images, recipe, judge)
    results["judge_step_faithfulness"].value, results["judge_ingredient_presence"].per_item

Two ways to ask (``VisionJudge(prompt=...)``, recorded as ``record["prompt"]``):

* ``prompt="blind"`` (the default): the model is never told which ingredients to look for.
  Per frame, request 1 (``STEP_PROMPT``, schema ``StepVerdict``) gives the step as JSON (recipe
  title, step number, instruction) and the frame, and asks ``step_shown``; request 2
  (``FOODS_PROMPT``, schema ``FoodList``; only for a step that lists ingredients) gives the frame
  alone -- no title, no instruction, no ingredient -- and asks for every food the model sees.
  cooklab then matches each expected ingredient k against the listed foods (``matched_food``):

      words(x) = the lower-cased words of x (every run of characters other than a-z, 0-9 splits),
                 each made singular (``singular``: -ies -> -y, -oes -> -o, -ches/-shes/-sses/-xes/-zes
                 drop -es, else a final -s is dropped unless the word ends in -ss, -us or -is),
                 then every synonym phrase of ``INGREDIENT_SYNONYMS`` replaced by its canonical name
      k is visible  <=>  words(k) occurs as consecutive words in words(f) for some listed food f

  so "Carrots" and "diced carrot" match "carrot", "spring onions" matches "scallion", but "pepper"
  does not match "bell pepper" (the model must name what was expected, or more). The step
  request still names the instruction, and with it the ingredients it mentions: judging whether
  a frame shows an instruction needs the instruction.
* ``prompt="told"`` (the judge before issue 26): one request per frame, ``JUDGE_PROMPT``, the
  step as JSON with ``"ingredients"``, the list to check, and the answer ``FrameVerdict``
  (strict schema ``RESPONSE_FORMAT``), one ``visible`` per listed ingredient::

      {"reason": "a blue pot with chopped broccoli", "step_shown": true,
       "ingredients": [{"name": "broccoli", "visible": true}]}

  A list of what to look for invites the model to say yes.

Both give::

    judge step faithfulness     per frame i:                  1 if step_shown, else 0      value = mean over frames
    judge ingredient presence   per (step i, ingredient k):   1 if k is visible, else 0    value = mean over pairs

The records hold the model id, the server, ``prompt``, ``JUDGE_PROMPT_VERSION``, every answer
(blind: the foods listed, and per ingredient the food it matched) and the matching rules. The
key is held only by the ``openai`` client; it is never written to a record, and it is masked in
every error text (tested).
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import PIL.Image
from pydantic import BaseModel, ConfigDict, ValidationError

from ..agent.openai_planner import (
    DEFAULT_MODEL,
    ChatFailure,
    chat_json,
    strict_schema,
    strip_fences,
    validation_summary,
)
from ..backbones.preprocess import progress
from ..errors import ConfigError, CooklabError
from ..images import rgb_array, uint8_array
from ..recipe import as_recipe
from .result import MetricResult, mean_or_nan, provenance

__all__ = [
    "FOODS_PROMPT",
    "INGREDIENT_SYNONYMS",
    "JUDGE_METRICS",
    "JUDGE_PROMPT",
    "JUDGE_PROMPTS",
    "JUDGE_PROMPT_VERSION",
    "RESPONSE_FORMAT",
    "STEP_PROMPT",
    "FoodList",
    "FrameVerdict",
    "JudgeError",
    "StepVerdict",
    "VisionJudge",
    "judge_metrics",
    "matched_food",
    "singular",
]

#: the metrics one pass of the judge gives
JUDGE_METRICS = ("judge_step_faithfulness", "judge_ingredient_presence")

JUDGE_PROMPT_VERSION = "2"
"""Version of the prompts and answer schemas (2: the blind prompt added); recorded with every judged number."""

JUDGE_PROMPTS = ("blind", "told")  # how the ingredients are asked about; the first is the default

JUDGE_PROMPT = """\
You judge pictures drawn to illustrate a recipe, one picture per step. You see one picture and \
the step it should show. Answer with one JSON object that matches the given schema:
- `reason`: one short sentence saying what the picture shows.
- `step_shown`: true if the picture shows this step done (the container the step names, the food \
in the state the step leaves it); false if it shows something else, or nothing recognisable.
- `ingredients`: one entry for every ingredient in the request's `ingredients`, in the same order \
and with the same `name`; `visible` is true if you can see that ingredient in the picture.
Judge only what is visible. Answer with the JSON object only."""
"""The ``prompt="told"`` system prompt: step and ingredients in one request, the ingredients listed."""

STEP_PROMPT = """\
You judge pictures drawn to illustrate a recipe, one picture per step. You see one picture and \
the step it should show. Answer with one JSON object that matches the given schema:
- `reason`: one short sentence saying what the picture shows.
- `step_shown`: true if the picture shows this step done (the container the step names, the food \
in the state the step leaves it); false if it shows something else, or nothing recognisable.
Judge only what is visible. Answer with the JSON object only."""
"""The ``prompt="blind"`` system prompt of request 1: does the frame show its step."""

FOODS_PROMPT = """\
You see one picture. List every food you can see in it. Answer with one JSON object that matches \
the given schema:
- `reason`: one short sentence saying what the picture shows.
- `foods`: every food you can see, one short name each (for example "sliced tomato"); an empty \
list if you see none.
Name only what is visible. Answer with the JSON object only."""
"""The ``prompt="blind"`` system prompt of request 2: the frame alone, no text of the recipe."""

INGREDIENT_SYNONYMS = {
    "scallion": "green onion",
    "spring onion": "green onion",
    "aubergine": "eggplant",
    "courgette": "zucchini",
    "coriander": "cilantro",
    "garbanzo bean": "chickpea",
    "prawn": "shrimp",
    "capsicum": "bell pepper",
    "minced meat": "ground meat",
    "rocket": "arugula",
}
"""Names of one food -> one canonical name (singular, lower case), applied to both sides of ``matched_food``."""


class JudgeError(CooklabError, RuntimeError):
    """The judge could not get a valid answer for a frame (says what failed, how often, and the fix)."""


class IngredientVerdict(BaseModel):
    """Whether one ingredient the step lists is visible."""

    model_config = ConfigDict(extra="forbid")
    name: str
    visible: bool


class StepVerdict(BaseModel):
    """The blind judge's answer to request 1: does the frame show its step."""

    model_config = ConfigDict(extra="forbid")
    reason: str
    step_shown: bool


class FrameVerdict(StepVerdict):
    """The judge's answer for one frame."""

    ingredients: list[IngredientVerdict]


class FoodList(BaseModel):
    """The blind judge's answer to request 2: the foods the model sees in the frame."""

    model_config = ConfigDict(extra="forbid")
    reason: str
    foods: list[str]


class BlindVerdict(BaseModel):
    """One frame judged blind: the two answers, and each expected ingredient matched against the foods."""

    reason: str
    step_shown: bool
    foods: list[str]  # what the model listed (empty when the step lists no ingredient: not asked)
    ingredients: list[IngredientVerdict]  # visible = matched_food(name, foods) is not None
    matched: list[str | None]  # per expected ingredient, the listed food it matched


def _response_format(name: str, model: type[BaseModel]) -> dict:
    return {
        "type": "json_schema",
        "json_schema": {"name": name, "strict": True, "schema": strict_schema(model.model_json_schema())},
    }


RESPONSE_FORMAT = _response_format("frame_verdict", FrameVerdict)
"""The ``response_format`` of every ``prompt="told"`` request: the ``FrameVerdict`` schema, strict."""
STEP_FORMAT, FOODS_FORMAT = _response_format("step_verdict", StepVerdict), _response_format("food_list", FoodList)


MATCHING = (
    "case-insensitive; non-alphanumeric characters split words; each word singular (-ies->-y, -oes->-o, "
    "-ches/-shes/-sses/-xes/-zes drop -es, else a final -s unless -ss/-us/-is); synonyms made canonical; an "
    "ingredient is visible when its words occur in a row in the words of one listed food"
)
"""The matching rules of ``prompt="blind"`` in one line, recorded with the ingredient metric."""


# ---- matching the listed foods to the expected ingredients (prompt="blind") ------------------------------------
def singular(word: str) -> str:
    """One lower-case word made singular by the rules of the module docstring (no dictionary)."""
    if len(word) > 3 and word.endswith("ies"):
        return word[:-3] + "y"  # berries -> berry
    if len(word) > 3 and word.endswith("oes"):
        return word[:-2]  # tomatoes -> tomato
    if word.endswith(("ches", "shes", "sses", "xes", "zes")):
        return word[:-2]  # peaches -> peach, radishes -> radish
    if len(word) > 2 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]  # carrots -> carrot; not glass, asparagus, hummus
    return word


def _plain(text: str) -> str:
    """Lower case, every run of characters other than a-z and 0-9 a single space, each word singular."""
    return " ".join(singular(w) for w in re.sub(r"[^a-z0-9]+", " ", text.lower()).split())


def _words(text: str, synonyms: dict[str, str]) -> list[str]:
    """``words(x)`` of the module docstring: plain words, then each synonym phrase (longest first) made canonical."""
    phrase = _plain(text)
    for name in sorted(synonyms, key=lambda key: -len(key)):
        phrase = re.sub(rf"(?<!\S){re.escape(_plain(name))}(?!\S)", _plain(synonyms[name]), phrase)
    return phrase.split()


def matched_food(expected: str, foods: list[str], synonyms: dict[str, str] | None = None) -> str | None:
    """The first of ``foods`` whose words contain ``expected``'s words in a row (module docstring), or None."""
    synonyms = INGREDIENT_SYNONYMS if synonyms is None else synonyms
    want = _words(expected, synonyms)
    for food in foods:
        have = _words(food, synonyms)
        if want and any(have[i : i + len(want)] == want for i in range(len(have) - len(want) + 1)):
            return food
    return None


def _png_data_url(image) -> str:
    """A picture as a ``data:image/png;base64,...`` URL (how the chat API takes an image inline)."""
    pixels = uint8_array(rgb_array(image))  # [H, W, 3]
    buffer = io.BytesIO()
    PIL.Image.fromarray(pixels).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


@dataclass
class VisionJudge:
    """A chat model with image input that judges frames; any OpenAI-compatible server.

    The key comes from ``OPENAI_API_KEY``; a ``base_url`` server works without one. A ready
    ``client`` (an ``openai.OpenAI``) brings its own server, key and timeout. ``prompt``: ``"blind"``
    (default: the ingredients are never named to the model; its list of foods is matched with
    ``matched_food`` and ``synonyms``) or ``"told"`` (the ingredients listed in the request).
    """

    model: str = DEFAULT_MODEL
    base_url: str | None = None
    timeout: float = 60.0  # seconds per request
    max_retries: int = 3  # retries per frame (invalid answers, rate limits, server errors, timeouts)
    retry_delay: float = 1.0  # seconds before the first retry after an HTTP failure; doubles each time
    client: Any = field(default=None, repr=False)
    prompt: str = JUDGE_PROMPTS[0]  # "blind" or "told" (module docstring)
    synonyms: dict[str, str] = field(default_factory=lambda: dict(INGREDIENT_SYNONYMS))  # for prompt="blind"

    def __post_init__(self) -> None:
        if self.prompt not in JUDGE_PROMPTS:
            raise ConfigError(
                f"prompt={self.prompt!r}: choose 'blind' (the default: the model lists the foods it sees and cooklab "
                "matches them to the expected ingredients) or 'told' (the ingredients to check listed in the request)."
            )
        if self.max_retries < 0 or self.timeout <= 0 or self.retry_delay < 0:
            raise ConfigError(
                f"max_retries={self.max_retries}, timeout={self.timeout}, retry_delay={self.retry_delay}: "
                "use max_retries >= 0, timeout > 0 and retry_delay >= 0."
            )
        if self.client is None:
            self.client = _make_client(self.base_url, self.timeout)
        self.base_url = str(getattr(self.client, "base_url", self.base_url or "https://api.openai.com/v1"))

    def verdict(self, image, step: int, text: str, ingredients: list[str], goal: str) -> FrameVerdict | BlindVerdict:
        """Ask the model about one frame (``step`` counted from 1); ``JudgeError`` when every attempt fails."""
        url = _png_data_url(image)
        if self.prompt == "told":
            request = {"recipe": goal, "step": step, "instruction": text, "ingredients": list(ingredients)}
            parse = partial(_parse, ingredients=list(ingredients))
            return self._ask(JUDGE_PROMPT, _judge_text(request), url, RESPONSE_FORMAT, parse, step)
        request = {"recipe": goal, "step": step, "instruction": text}  # the step, no ingredient list
        shown = self._ask(STEP_PROMPT, _judge_text(request), url, STEP_FORMAT, _parse_as(StepVerdict), step)
        foods = []
        if ingredients:  # the frame alone: nothing of the recipe is said
            listed = self._ask(
                FOODS_PROMPT, "List the foods in this picture.", url, FOODS_FORMAT, _parse_as(FoodList), step
            )
            foods = listed.foods
        matched = [matched_food(name, foods, self.synonyms) for name in ingredients]
        return BlindVerdict(
            reason=shown.reason,
            step_shown=shown.step_shown,
            foods=foods,
            ingredients=[IngredientVerdict(name=name, visible=m is not None) for name, m in zip(ingredients, matched)],
            matched=matched,
        )

    def _ask(self, system: str, text: str, url: str, response_format: dict, parse, step: int):
        """One question about one frame: the system prompt, the text and the picture; the parsed answer."""
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": system},
            {
                "role": "user",
                "content": [{"type": "text", "text": text}, {"type": "image_url", "image_url": {"url": url}}],
            },
        ]
        answer, failure, attempts = chat_json(
            self.client,
            self.model,
            messages,
            response_format,
            parse,
            max_retries=self.max_retries,
            retry_delay=self.retry_delay,
            timeout=self.timeout,
            what="a valid verdict",
        )
        if answer is None:
            raise JudgeError(self._failure_message(failure, attempts, step))
        return answer

    def _failure_message(self, failure: ChatFailure, attempts: int, step: int) -> str:
        """What failed, for which frame, after how many attempts, and the fix."""
        fixes = {
            "invalid": f"the answers of {self.model!r} did not match the verdict schema: use a model with image "
            "input and structured output (e.g. 'gpt-4o'), or raise max_retries=.",
            "http_401": "the server rejected the API key: check OPENAI_API_KEY.",
            "http_404": f"the model {self.model!r} or the endpoint was not found: check model= and base_url= "
            "(it should end in /v1).",
            "timeout": f"raise timeout= (now {self.timeout} s), or check that the server at {self.base_url} is "
            "running.",
            "connection": f"check base_url= ({self.base_url}) and the network.",
        }
        fix = fixes.get(failure.kind, "try again later, or raise max_retries=; check model= and base_url=.")
        tries = f"{attempts} attempt" + ("s" if attempts != 1 else "")
        where = f"the judge ({self.model} at {self.base_url}) failed on frame {step} after {tries}"
        return f"{where}: {failure.detail}. Fix: {fix}"


def _make_client(base_url: str | None, timeout: float) -> Any:
    """An ``openai.OpenAI`` client that does not retry by itself (``chat_json`` retries); the key from the environment
    only."""
    try:
        import openai
    except ImportError:
        raise JudgeError("the judge needs the openai package. Fix: pip install 'cooklab[agent]'.") from None
    key = os.environ.get("OPENAI_API_KEY")
    if not key and base_url is None:
        raise JudgeError(
            "the judge needs an API key. Fix: set the OPENAI_API_KEY environment variable, "
            "or pass base_url= of an OpenAI-compatible server with image input."
        )
    return openai.OpenAI(api_key=key or "not-needed", base_url=base_url, timeout=timeout, max_retries=0)


def _judge_text(request: dict) -> str:
    return "Judge this picture:\n" + json.dumps(request, indent=2, ensure_ascii=False)


def _parse_as(model: type[BaseModel]):
    """``parse`` for ``chat_json``: (the validated answer, "") or (None, what is wrong)."""

    def parse(content: str):
        try:
            return model.model_validate_json(strip_fences(content)), ""
        except ValidationError as err:
            return None, validation_summary(err)

    return parse


def _parse(content: str, ingredients: list[str]) -> tuple[FrameVerdict | None, str]:
    """(the validated verdict, "") or (None, what is wrong, in words the model can act on)."""
    try:
        verdict = FrameVerdict.model_validate_json(strip_fences(content))
    except ValidationError as err:
        return None, validation_summary(err)
    named = [entry.name for entry in verdict.ingredients]
    if named != ingredients:
        return (
            None,
            f"ingredients: give exactly one entry per requested ingredient, in order: {ingredients}; got {named}",
        )
    return verdict, ""


def judge_metrics(images, recipe, judge: VisionJudge) -> dict[str, MetricResult]:
    """Judge every frame once; ``{"judge_step_faithfulness": ..., "judge_ingredient_presence": ...}``.

    images: one picture per step; recipe: anything ``cooklab.as_recipe`` takes (its title is the
    goal, ``Step.ingredients`` the ingredients asked about).
    """
    recipe = as_recipe(recipe)
    images = list(images)
    if len(images) != len(recipe.steps):
        raise ConfigError(
            f"{len(images)} images for a recipe of {len(recipe.steps)} steps: give one picture per step."
        )
    verdicts = [
        judge.verdict(image, n + 1, step.text, step.ingredients, recipe.title)
        for n, (image, step) in enumerate(progress(list(zip(images, recipe.steps)), "judge frames", unit="frame"))
    ]
    answers = [v.model_dump() for v in verdicts]
    scored = [(i, entry.name) for i, v in enumerate(verdicts) for entry in v.ingredients]
    common = {
        "model": judge.model,
        "base_url": judge.base_url,
        "prompt": judge.prompt,
        "prompt_version": JUDGE_PROMPT_VERSION,
        "answers": answers,
    }
    if judge.prompt == "blind":
        common["matching"] = MATCHING
        common["synonyms"] = dict(judge.synonyms)
    resolution, crop = "the frame at its own size (PNG data URL)", "whole frame"
    backbone = f"{judge.model} at {judge.base_url}"
    step = [float(v.step_shown) for v in verdicts]
    present = [float(entry.visible) for v in verdicts for entry in v.ingredients]
    return {
        "judge_step_faithfulness": MetricResult(
            mean_or_nan(step),
            step,
            provenance(
                "judge_step_faithfulness",
                backbone,
                resolution,
                crop,
                **common,
                formula="1[the judge says frame i shows step i]; mean over frames",
            ),
        ),
        "judge_ingredient_presence": MetricResult(
            mean_or_nan(present),
            present,
            provenance(
                "judge_ingredient_presence",
                backbone,
                resolution,
                crop,
                **common,
                scored=scored,
                formula=(
                    "1[a food the judge lists in frame i, not told what to expect, matches ingredient k]"
                    if judge.prompt == "blind"
                    else "1[the judge, given the ingredients, says it sees ingredient k in frame i]"
                )
                + "; mean over (step, ingredient)",
                **({} if scored else {"note": "no step lists an ingredient: nothing to score (value nan)"}),
            ),
        ),
    }
