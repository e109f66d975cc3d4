"""The OpenAI backend: the Cooking Agent on a chat model, through the ``openai`` client.

``OpenAIPlanner(model).plan(recipe)`` sends one chat completion per attempt:

* messages: the system prompt (``_SYSTEM_PROMPT``, the task in words) and the recipe as
  JSON (``_recipe_message``: title, description, numbered steps);
* ``response_format=RESPONSE_FORMAT``: ``{"type": "json_schema", "json_schema":
  {"name": "recipe_plan", "strict": True, "schema": ...}}``, the schema of
  ``schema.ModelAnswer`` (``{"context": RecipeContext, "steps": [PlannedStep, ...]}``)
  made strict by ``strict_schema``; ``temperature=0``.

The answer is validated with pydantic. What happens when an attempt fails:

* an answer that is not JSON or breaks the schema goes back to the model with the
  validation error, in the same conversation, and is asked again at once;
* HTTP 429, 5xx, a timeout or a connection error: wait ``retry_delay * 2**k`` seconds
  (k = 0, 1, 2 ... counts the retries), or what a Retry-After(-Ms) header asks, at most
  60 s, and ask again;
* a refusal or any other HTTP error: no retry;
* after ``max_retries`` retries: ``AgentError`` with what failed and the fix.

Secrets: the key is read from the ``OPENAI_API_KEY`` environment variable only (in
``_make_client``), held only by the ``openai`` client, and masked (``redact``) in every
error text if a server echoes it back.
"""

from __future__ import annotations

import email.utils
import json
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from pydantic import ValidationError

from ..errors import ConfigError
from ..recipe import Recipe, as_recipe
from .schema import DEFAULT_STYLE, PROMPT_VERSION, AgentError, ModelAnswer, RecipePlan

API_SETTING_NAMES = {
    "timeout": "timeout=",
    "max_retries": "max_retries=",
    "base_url": "base_url=",
    "model": "model=",
    "rules": "agent='rules'",
}
"""How the planner's error messages name the settings that fix them: the arguments of ``plan()``.

The CLI passes its own flags instead (``--timeout``, ``--agent rules`` ...), so each message names what the
user can change where they are."""

DEFAULT_MODEL = "gpt-4o"
"""The chat model of CookAnything's Cooking Agent (GPT-4o); Recipe Diffusion names only "ChatGPT" for its pre-pass."""

_SYSTEM_PROMPT = """\
You are the Cooking Agent of a recipe illustration system. An image model will draw one \
picture per recipe step, and it keeps the same container looking the same from picture \
to picture. Read the recipe and answer with one JSON object that matches the given schema.

For the whole recipe write `context`: `dish` (the finished dish) and `style` (the visual \
style of every picture; use "{style}" unless the user asks for another).

For every step, in order, write one entry:
- `step`: its number, counted from 1; `text`: the instruction, cleaned up, same meaning.
- `container`: the container or surface the picture of that step shows (bowl, pan, pot, \
tray, tin, board, plate, jar ...), named precisely ("mixing bowl", "frying pan"). One \
physical container keeps exactly one name through the recipe; a second container of the \
same kind gets its own name ("small bowl"). null when the step shows no container.
- `container_attributes`: how that container looks: size, shape, material, colour (e.g. \
["large", "round", "white ceramic"]). Choose a concrete look where the recipe does not \
say, and repeat the identical list every time the same container appears.
- `reference_step`: the number of the LAST earlier step that shows the same physical \
container; null where the container appears for the first time or the step has none.
- `ingredients`: the ingredients visible in the step with their current state \
(e.g. {{"name": "carrot", "state": "diced"}}), carrying states over from earlier steps.
- `prompt`: one self-contained image prompt: the style, the dish, what the step shows, \
the container with its attributes, and the visible ingredients with their states \
(fill in details the step leaves implicit). At most about 60 words.

Answer with the JSON object only."""


_NOT_STRICT = {"default", "title", "minLength", "maxLength", "minItems", "maxItems"}  # keywords strict_schema drops


def strict_schema(schema: Any) -> Any:
    """A pydantic JSON schema made acceptable to OpenAI's strict structured outputs.

    Strict mode wants every property required (optional values are nullable instead) and
    ``additionalProperties: false`` on every object; defaults and length limits are left
    out (not every server accepts them, and pydantic checks the lengths afterwards).
    """
    if isinstance(schema, list):
        return [strict_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    cleaned = {key: strict_schema(value) for key, value in schema.items() if key not in _NOT_STRICT}
    if cleaned.get("type") == "object" and "properties" in cleaned:
        cleaned["properties"] = {name: strict_schema(value) for name, value in schema["properties"].items()}
        cleaned["required"] = list(cleaned["properties"])
        cleaned["additionalProperties"] = False
    return cleaned


RESPONSE_FORMAT = {
    "type": "json_schema",
    "json_schema": {"name": "recipe_plan", "strict": True, "schema": strict_schema(ModelAnswer.model_json_schema())},
}
"""The ``response_format`` sent with every request: the plan schema, strict."""

_MAX_RETRY_DELAY = 60.0  # seconds; a longer Retry-After is cut to this


class ChatFailure(NamedTuple):
    """Why one attempt failed: a short kind (for the fix), a description, and whether to retry."""

    kind: str
    detail: str
    retry: bool
    delay: float | None = None  # what a Retry-After header asked for


class OpenAIPlanner:
    """The Cooking Agent on a chat model, through the ``openai`` client.

    Sends the recipe with a system prompt and a strict JSON-schema ``response_format``
    (servers that ignore it must still answer JSON, which is then validated the same way).
    An answer that is not valid JSON or breaks the schema is sent back with the validation
    error and asked again; rate limits (HTTP 429), server errors (5xx), timeouts and
    connection errors are retried after ``retry_delay * 2**k`` seconds, or after the
    server's Retry-After. After ``max_retries`` retries it raises ``AgentError``.

    The key comes from ``OPENAI_API_KEY``; a ``base_url`` server works without one.
    Only the ``openai`` client holds it, and error messages have it masked. A ready
    ``client`` brings its own server, key and timeout. ``setting_names`` changes how the error
    messages name the settings that fix them (default ``API_SETTING_NAMES``; the CLI gives its flags).
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        base_url: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 3,
        retry_delay: float = 1.0,
        style: str = DEFAULT_STYLE,
        client: Any = None,
        setting_names: Mapping[str, str] | None = None,
    ) -> None:
        if max_retries < 0 or timeout <= 0 or retry_delay < 0:
            raise ConfigError(
                f"max_retries={max_retries}, timeout={timeout}, retry_delay={retry_delay}: "
                "use max_retries >= 0, timeout > 0 and retry_delay >= 0."
            )
        self.model = model
        self.max_retries = max_retries
        self.retry_delay = retry_delay
        self.timeout = timeout
        self.style = style
        self.setting_names = {**API_SETTING_NAMES, **(setting_names or {})}
        self.client = client if client is not None else _make_client(base_url, timeout)
        self.base_url = str(getattr(self.client, "base_url", base_url or "https://api.openai.com/v1"))

    def __repr__(self) -> str:
        return f"OpenAIPlanner(model={self.model!r}, base_url={self.base_url!r})"

    def plan(self, recipe: Recipe | Sequence[str] | str | os.PathLike[str]) -> RecipePlan:
        """Ask the model for the plan of ``recipe``; raise ``AgentError`` when every attempt fails."""
        recipe = as_recipe(recipe)
        messages: list[dict[str, str]] = [
            {"role": "system", "content": _SYSTEM_PROMPT.format(style=self.style)},
            {"role": "user", "content": _recipe_message(recipe)},
        ]
        result, failure, attempts = chat_json(
            self.client,
            self.model,
            messages,
            RESPONSE_FORMAT,
            lambda content: self._parse(content, recipe),
            max_retries=self.max_retries,
            retry_delay=self.retry_delay,
            timeout=self.timeout,
            what="a valid plan",
        )
        if result is None:
            raise AgentError(self._failure_message(failure, attempts))
        return result

    def _parse(self, content: str | None, recipe: Recipe) -> tuple[RecipePlan | None, str]:
        """(the validated plan, "") or (None, what is wrong, in words the model can act on)."""
        text = strip_fences(content or "")
        try:
            answer = ModelAnswer.model_validate_json(text)
            result = RecipePlan(
                title=recipe.title,
                context=answer.context,
                steps=answer.steps,
                agent=f"openai:{self.model}",
                prompt_version=PROMPT_VERSION,
            )
            result.check(recipe)
        except ValidationError as err:
            return None, validation_summary(err)
        except ConfigError as err:
            return None, str(err)
        return result, ""

    def _failure_message(self, failure: ChatFailure, attempts: int) -> str:
        """What failed, after how many attempts, and the fix."""
        names = self.setting_names
        timeout, retries, base_url, model, rules = (
            names[key] for key in ("timeout", "max_retries", "base_url", "model", "rules")
        )
        fixes = {
            "rate_limit": f"the server is limiting requests: wait a minute and try again, raise {retries}, "
            f"or plan offline with {rules}.",
            "timeout": f"raise {timeout} (now {self.timeout} s), check that the server at {self.base_url} is "
            f"running, or use {rules}.",
            "connection": f"check {base_url} ({self.base_url}) and the network, or plan offline with {rules}.",
            "server": f"the server failed: try again later, or plan offline with {rules}.",
            "invalid": f"the answers of {self.model!r} did not match the plan schema: use a stronger model "
            f"with {model} (e.g. gpt-4o), raise {retries}, or use {rules}.",
            "refusal": f"rephrase the recipe, or plan offline with {rules}.",
            "http_401": f"the server rejected the API key: check OPENAI_API_KEY (or use {rules}).",
            "http_404": f"the model {self.model!r} or the endpoint was not found: check {model} and {base_url} "
            "(it should end in /v1).",
        }
        fix = fixes.get(failure.kind, f"check {model} and {base_url}, or plan offline with {rules}.")
        tries = f"{attempts} attempt" + ("s" if attempts != 1 else "")
        return (
            f"the OpenAI planner ({self.model} at {self.base_url}) failed after {tries}: {failure.detail}. Fix: {fix}"
        )


def chat_json(
    client: Any,
    model: str,
    messages: list[dict[str, Any]],
    response_format: dict[str, Any],
    parse: Callable[[str], tuple[Any, str]],
    *,
    max_retries: int,
    retry_delay: float,
    timeout: float,
    what: str,
) -> tuple[Any, ChatFailure | None, int]:
    """Ask ``model`` until ``parse`` accepts its answer.

    Returns ``(result, None, attempts)``, or ``(None, last failure, attempts)`` when it gives up.

    ``parse(content)`` returns ``(result, "")`` or ``(None, what is wrong)``. An answer it rejects
    goes back to the model with the problem ("That answer is not {what}: ...") and is asked again
    at once; a rate limit, server error, timeout or connection error waits ``retry_delay * 2**k``
    seconds (or the server's Retry-After, at most 60 s) first; a refusal or other HTTP error
    stops. At most ``max_retries`` retries. ``messages`` grows by the rejected answers.
    Shared by the Cooking Agent and the vision-language judge (``cooklab.metrics.judge``).
    """
    attempt, failure = 0, None
    for attempt in range(1, max_retries + 2):
        if failure is not None and failure.kind != "invalid":  # back off before asking again
            backoff = retry_delay * 2 ** (attempt - 2)
            time.sleep(min(failure.delay if failure.delay is not None else backoff, _MAX_RETRY_DELAY))
        content, failure = ask(client, model, messages, response_format, timeout)
        if failure is None:
            result, problem = parse(content)
            if result is not None:
                return result, None, attempt
            failure = ChatFailure("invalid", problem, retry=True)
            messages += [
                {"role": "assistant", "content": content or ""},
                {
                    "role": "user",
                    "content": f"That answer is not {what}: {problem}\n"
                    "Answer again with the corrected JSON object only.",
                },
            ]
        if not failure.retry:
            break
    return None, failure, attempt


def ask(
    client: Any, model: str, messages: list[dict[str, Any]], response_format: dict[str, Any], timeout: float
) -> tuple[str | None, ChatFailure | None]:
    """One chat completion at temperature 0: (the answer's text, None), or (None, why it failed)."""
    import openai

    try:
        response = client.chat.completions.create(
            model=model, messages=messages, response_format=response_format, temperature=0
        )
    except openai.RateLimitError as err:
        return None, ChatFailure(
            "rate_limit", redact(f"HTTP 429 {err.message}"), True, retry_after(err.response.headers)
        )
    except openai.APITimeoutError:
        return None, ChatFailure("timeout", f"no answer within {timeout} s", True)
    except openai.APIConnectionError as err:
        return None, ChatFailure("connection", redact(f"cannot connect ({err.message})"), True)
    except openai.APIStatusError as err:
        retry = err.status_code >= 500
        kind = "server" if retry else f"http_{err.status_code}"
        return None, ChatFailure(
            kind, redact(f"HTTP {err.status_code} {err.message}"), retry, retry_after(err.response.headers)
        )
    choices = getattr(response, "choices", None) or []
    if not choices:
        return None, ChatFailure("invalid", "the answer has no choices", True)
    message = choices[0].message
    if getattr(message, "refusal", None):
        return None, ChatFailure("refusal", redact(f"the model refused: {message.refusal}"), False)
    return message.content or "", None


def _make_client(base_url: str | None, timeout: float) -> Any:
    """An ``openai.OpenAI`` client that does not retry by itself (the planner retries)."""
    try:
        import openai
    except ImportError:
        raise AgentError(
            "the OpenAI planner needs the openai package. Fix: pip install 'cooklab[agent]', or use agent='rules'."
        ) from None
    key = os.environ.get("OPENAI_API_KEY")
    if not key and base_url is None:
        raise AgentError(
            "the OpenAI planner needs an API key. Fix: set the OPENAI_API_KEY environment variable, "
            "pass base_url= of an OpenAI-compatible server, or use agent='rules'."
        )
    return openai.OpenAI(api_key=key or "not-needed", base_url=base_url, timeout=timeout, max_retries=0)


def _recipe_message(recipe: Recipe) -> str:
    """The user message: the recipe as JSON, steps numbered from 1."""
    data = {
        "title": recipe.title,
        "description": recipe.description,
        "steps": [{"step": number, "text": text} for number, text in enumerate(recipe.texts, start=1)],
    }
    return "Plan this recipe:\n" + json.dumps(data, indent=2, ensure_ascii=False)


def strip_fences(text: str) -> str:
    """Remove a ```json ... ``` fence that servers without structured output like to add."""
    text = text.strip()
    fenced = re.fullmatch(r"```[a-zA-Z]*\s*(.*?)\s*```", text, flags=re.DOTALL)
    return fenced.group(1) if fenced else text


def validation_summary(err: ValidationError, limit: int = 8) -> str:
    """A pydantic error as short 'where: what' lines (the first few)."""
    lines = []
    for error in err.errors()[:limit]:
        where = ".".join(str(part) for part in error["loc"]) or "answer"
        lines.append(f"{where}: {error['msg']}")
    more = len(err.errors()) - limit
    if more > 0:
        lines.append(f"... and {more} more")
    return "; ".join(lines)


def retry_after(headers: Any) -> float | None:
    """Seconds the server asks to wait (Retry-After-Ms, or Retry-After as seconds or a date), if it says."""
    milliseconds = headers.get("retry-after-ms")
    if milliseconds:
        try:
            return max(0.0, float(milliseconds) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - time.time())


def redact(text: str) -> str:
    """Mask the API key if a server echoes it back in an error."""
    key = os.environ.get("OPENAI_API_KEY")
    return text.replace(key, "***") if key else text
