"""The Cooking Agent: turn a recipe into per-step metadata and enriched image prompts.

Both papers put a language model in front of the image model:

* Recipe Diffusion (section III-A) asks an LLM, for every step, which container the
  step shows, what that container looks like, and which earlier step shows the *same*
  container (null where it appears for the first time). That metadata picks the
  reference frame and names the object to mask.
* CookAnything's GPT-4o "Cooking Agent" rewrites each step as a context-tagged,
  enriched prompt (dish, style, ingredients and their states) for the image model.

One schema, ``RecipePlan``, holds both answers; ``plan()`` fills it with a chat model
(``agent="openai"``), offline rules (``agent="rules"``) or, by default (``"auto"``), the
model when ``OPENAI_API_KEY`` is set and the rules otherwise. Usage::

    from cooklab.agent import plan
    p = plan(load_recipe("data/recipes/pancakes.yaml"))   # rules without a key
    p.prompts()                                            # enriched prompts
    pipe(recipe, plan=p, enriched_prompts=True)            # RecipeDiffusion / CookAnything

The modules, one idea each, in the order to read them:

* ``schema.py``: the pydantic models (``IngredientState``, ``PlannedStep``,
  ``RecipeContext``, ``RecipePlan``), ``AgentError``, ``PROMPT_VERSION``, ``DEFAULT_STYLE``.
* ``planning.py``: ``plan()``, which picks the backend and falls back to the rules, and
  the on-disk cache of model answers (``default_cache_dir``).
* ``lexicon.py``: the rule planner's words as data (containers and their looks,
  ingredients, cooking verbs and the states they leave, prepositions).
* ``rules.py``: ``RuleBasedPlanner``, the rules that read a recipe with that lexicon.
* ``openai_planner.py``: ``OpenAIPlanner``, the chat-model backend (system prompt, strict
  JSON schema ``RESPONSE_FORMAT``, retries with backoff, ``DEFAULT_MODEL``).
* ``agreement.py``: ``agreement()``, how well a plan matches hand-written metadata.

The API key is read from the environment only and is never logged, cached, stored in a
plan or put in an error message.
"""

from .agreement import Agreement, agreement
from .openai_planner import DEFAULT_MODEL, RESPONSE_FORMAT, OpenAIPlanner
from .planning import default_cache_dir, plan
from .rules import RuleBasedPlanner
from .schema import DEFAULT_STYLE, PROMPT_VERSION, AgentError, IngredientState, PlannedStep, RecipeContext, RecipePlan

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_STYLE",
    "PROMPT_VERSION",
    "RESPONSE_FORMAT",
    "AgentError",
    "Agreement",
    "IngredientState",
    "OpenAIPlanner",
    "PlannedStep",
    "RecipeContext",
    "RecipePlan",
    "RuleBasedPlanner",
    "agreement",
    "default_cache_dir",
    "plan",
]
