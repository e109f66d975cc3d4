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

One request per frame: the system prompt ``JUDGE_PROMPT``, then the step as JSON (recipe title,
step number, instruction, the ingredients the step lists) and the frame as a PNG data URL. The
answer (``FrameVerdict``, sent as the strict schema ``RESPONSE_FORMAT``)::

    {"reason": "a blue pot with chopped broccoli", "step_shown": true,
     "ingredients": [{"name": "broccoli", "visible": true}]}

    judge step faithfulness     per frame i:                  1 if step_shown, else 0      value = mean over frames
    judge ingredient presence   per (step i, ingredient k):   1 if k is visible, else 0    value = mean over pairs

The records hold the model id, the server, ``JUDGE_PROMPT_VERSION`` and every answer. The key
is held only by the ``openai`` client; it is never written to a record, and it is masked in
every error text (tested).
"""

from __future__ import annotations

import base64
import io
import json
import os
from dataclasses import dataclass, field
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
    "JUDGE_METRICS",
    "JUDGE_PROMPT",
    "JUDGE_PROMPT_VERSION",
    "RESPONSE_FORMAT",
    "FrameVerdict",
    "JudgeError",
    "VisionJudge",
    "judge_metrics",
]

#: the metrics one pass of the judge gives
JUDGE_METRICS = ("judge_step_faithfulness", "judge_ingredient_presence")

JUDGE_PROMPT_VERSION = "1"
"""Version of ``JUDGE_PROMPT`` and the answer schema; recorded with every judged number."""

JUDGE_PROMPT = """\
You judge pictures drawn to illustrate a recipe, one picture per step. You see one picture and \
the step it should show. Answer with one JSON object that matches the given schema:
- `reason`: one short sentence saying what the picture shows.
- `step_shown`: true if the picture shows this step done (the container the step names, the food \
in the state the step leaves it); false if it shows something else, or nothing recognisable.
- `ingredients`: one entry for every ingredient in the request's `ingredients`, in the same order \
and with the same `name`; `visible` is true if you can see that ingredient in the picture.
Judge only what is visible. Answer with the JSON object only."""


class JudgeError(CooklabError, RuntimeError):
    """The judge could not get a valid answer for a frame (says what failed, how often, and the fix)."""


class IngredientVerdict(BaseModel):
    """Whether one ingredient the step lists is visible."""

    model_config = ConfigDict(extra="forbid")
    name: str
    visible: bool


class FrameVerdict(BaseModel):
    """The judge's answer for one frame."""

    model_config = ConfigDict(extra="forbid")
    reason: str
    step_shown: bool
    ingredients: list[IngredientVerdict]


RESPONSE_FORMAT = {
    "type": "json_schema",
    "json_schema": {
        "name": "frame_verdict",
        "strict": True,
        "schema": strict_schema(FrameVerdict.model_json_schema()),
    },
}
"""The ``response_format`` sent with every request: the ``FrameVerdict`` schema, strict."""


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
    ``client`` (an ``openai.OpenAI``) brings its own server, key and timeout.
    """

    model: str = DEFAULT_MODEL
    base_url: str | None = None
    timeout: float = 60.0  # seconds per request
    max_retries: int = 3  # retries per frame (invalid answers, rate limits, server errors, timeouts)
    retry_delay: float = 1.0  # seconds before the first retry after an HTTP failure; doubles each time
    client: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.max_retries < 0 or self.timeout <= 0 or self.retry_delay < 0:
            raise ConfigError(
                f"max_retries={self.max_retries}, timeout={self.timeout}, retry_delay={self.retry_delay}: "
                "use max_retries >= 0, timeout > 0 and retry_delay >= 0."
            )
        if self.client is None:
            self.client = _make_client(self.base_url, self.timeout)
        self.base_url = str(getattr(self.client, "base_url", self.base_url or "https://api.openai.com/v1"))

    def verdict(self, image, step: int, text: str, ingredients: list[str], goal: str) -> FrameVerdict:
        """Ask the model about one frame (``step`` counted from 1); ``JudgeError`` when every attempt fails."""
        request = {"recipe": goal, "step": step, "instruction": text, "ingredients": list(ingredients)}
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": JUDGE_PROMPT},
            {
                "role": "user",
                "content": [
                    {
                        "type": "text",
                        "text": "Judge this picture:\n" + json.dumps(request, indent=2, ensure_ascii=False),
                    },
                    {"type": "image_url", "image_url": {"url": _png_data_url(image)}},
                ],
            },
        ]
        answer, failure, attempts = chat_json(
            self.client,
            self.model,
            messages,
            RESPONSE_FORMAT,
            lambda content: _parse(content, list(ingredients)),
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
        "prompt_version": JUDGE_PROMPT_VERSION,
        "answers": answers,
    }
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
                formula="1[the judge sees ingredient k in frame i]; mean over (step, ingredient)",
                **({} if scored else {"note": "no step lists an ingredient: nothing to score (value nan)"}),
            ),
        ),
    }
