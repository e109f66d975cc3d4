"""``plan()``: the Cooking Agent's entry point, which picks a backend and caches model answers.

Which backend plans the recipe::

    agent="rules"   -> RuleBasedPlanner (rules.py), offline
    agent="openai"  -> OpenAIPlanner (openai_planner.py); AgentError when it fails
    agent="auto"    -> OpenAIPlanner when OPENAI_API_KEY is set or base_url=/client= is
                       given, else RuleBasedPlanner; when the model fails: a warning and
                       the rule plan, with agent="rules (openai failed: <reason>)"

Only model answers are cached (a rule plan takes about a millisecond). Each one is a
file ``<key>.json`` holding the ``RecipePlan`` JSON, in ``default_cache_dir()`` unless
``cache_dir=`` says otherwise, where::

    key = sha256(json.dumps({title, description, steps, backend, model, base_url, style,
                             prompt_version}, sort_keys=True))

The API key is not part of the key and never written to a cache file. Failed calls and
fallback plans are not cached; an unreadable cache file is asked for again and rewritten.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from ..errors import ConfigError
from ..fileio import atomic_write
from ..recipe import Recipe, as_recipe
from .openai_planner import API_SETTING_NAMES, DEFAULT_MODEL, OpenAIPlanner
from .rules import RuleBasedPlanner
from .schema import DEFAULT_STYLE, PROMPT_VERSION, AgentError, RecipePlan

AgentName = Literal["auto", "rules", "openai"]


def plan(
    recipe: Recipe | Sequence[str] | str | os.PathLike[str],
    agent: AgentName = "auto",
    *,
    model: str | None = None,
    base_url: str | None = None,
    cache_dir: str | os.PathLike[str] | Literal[False] | None = None,
    timeout: float = 60.0,
    max_retries: int = 3,
    retry_delay: float = 1.0,
    style: str = DEFAULT_STYLE,
    client: Any = None,
    setting_names: Mapping[str, str] | None = None,
) -> RecipePlan:
    """Plan every step of ``recipe`` (a Recipe, a list of step texts, or a recipe file).

    agent: "rules" (offline), "openai" (a chat model; raises ``AgentError`` when it fails) or
    "auto": the model when ``OPENAI_API_KEY`` is set or ``base_url``/``client`` is given,
    else the rules; a failed model call then warns and falls back to the rules.
    model: the chat model (default ``DEFAULT_MODEL``). base_url: an OpenAI-compatible server,
    e.g. "http://localhost:8000/v1" (no key needed there). client: a ready ``openai.OpenAI``
    (it brings its own server, key and timeout).
    cache_dir: where model answers are cached (default ``default_cache_dir()``); False: no cache.
    timeout: seconds per request. max_retries: further attempts after a failed one.
    retry_delay: first backoff delay in seconds, doubled on every retry (a Retry-After header wins).
    setting_names: how error messages and warnings name the settings that fix them, e.g.
    ``{"timeout": "--timeout"}`` (default: these arguments, ``API_SETTING_NAMES``).
    """
    recipe = as_recipe(recipe)
    if agent not in ("auto", "rules", "openai"):
        raise ConfigError(f"agent={agent!r}: choose 'auto', 'rules' or 'openai'.")
    wants_model = agent == "openai" or (
        agent == "auto" and (bool(os.environ.get("OPENAI_API_KEY")) or base_url is not None or client is not None)
    )
    if not wants_model:
        return RuleBasedPlanner(style=style).plan(recipe)

    try:
        planner = OpenAIPlanner(
            model or DEFAULT_MODEL,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            retry_delay=retry_delay,
            style=style,
            client=client,
            setting_names=setting_names,
        )
        cache_file = _cache_file(cache_dir, recipe, planner)
        cached = _read_cache(cache_file, recipe)
        if cached is not None:
            return cached
        result = planner.plan(recipe)
    except AgentError as err:
        if agent == "openai":
            raise
        rules = {**API_SETTING_NAMES, **(setting_names or {})}["rules"]
        warnings.warn(f"{err} Falling back to the offline rule-based planner ({rules}).", stacklevel=2)
        reason = str(err).split(". Fix:")[0]
        fallback = RuleBasedPlanner(style=style).plan(recipe)
        return fallback.model_copy(update={"agent": f"rules (openai failed: {reason})"})
    if cache_file is not None:
        atomic_write(cache_file, result.model_dump_json(indent=2) + "\n")
    return result


# --- the disk cache --------------------------------------------------------------


def default_cache_dir() -> Path:
    """``$COOKLAB_CACHE/agent`` when COOKLAB_CACHE is set, else ``~/.cache/cooklab/agent``."""
    root = os.environ.get("COOKLAB_CACHE")
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "cooklab") / "agent"


def _cache_file(
    cache_dir: str | os.PathLike[str] | Literal[False] | None, recipe: Recipe, planner: OpenAIPlanner
) -> Path | None:
    """The cache file for this recipe and planner, or None when caching is off.

    The key is a sha256 of everything that changes the answer: the recipe's title,
    description and step texts, the backend, the model, the server, the style and
    PROMPT_VERSION. The API key is not part of it.
    """
    if cache_dir is False:
        return None
    folder = default_cache_dir() if cache_dir is None else Path(cache_dir).expanduser()
    identity = {
        "title": recipe.title,
        "description": recipe.description,
        "steps": recipe.texts,
        "backend": "openai",
        "model": planner.model,
        "base_url": planner.base_url,
        "style": planner.style,
        "prompt_version": PROMPT_VERSION,
    }
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()
    return folder / f"{digest}.json"


def _read_cache(path: Path | None, recipe: Recipe) -> RecipePlan | None:
    """The cached plan, or None when there is none or it is unreadable (then it is recomputed)."""
    if path is None or not path.is_file():
        return None
    try:
        cached = RecipePlan.model_validate_json(path.read_text(encoding="utf-8"))
        cached.check(recipe)
    except (OSError, ValueError) as err:  # ValidationError and ConfigError are ValueErrors
        warnings.warn(
            f"ignoring the unreadable cached plan {path} ({type(err).__name__}); asking the model again.", stacklevel=3
        )
        return None
    return cached
