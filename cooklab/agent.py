"""The Cooking Agent: turn a recipe into per-step metadata and enriched image prompts.

Both papers put a language model in front of the image model:

* Recipe Diffusion (section III-A) asks an LLM, for every step, which container the
  step shows, what that container looks like, and which earlier step shows the *same*
  container (null where it appears for the first time). That metadata picks the
  reference frame and names the object to mask.
* CookAnything's GPT-4o "Cooking Agent" rewrites each step as a context-tagged,
  enriched prompt (dish, style, ingredients and their states) for the image model.

One schema, ``RecipePlan``, holds both answers. ``plan()`` fills it with one of two
backends:

* ``"openai"``: a chat model (default ``gpt-4o``, the papers' model) through the
  ``openai`` client, with a JSON-schema structured output, validation with pydantic,
  the validation error fed back on a bad answer, and retries with exponential backoff
  on rate limits, timeouts and connection errors. It works with any OpenAI-compatible
  server (``base_url=``).
* ``"rules"``: an offline planner made of lexicons (containers, their looks,
  ingredients, cooking verbs) and a few rules. It needs no key and no network.

``agent="auto"`` (the default) uses the model when ``OPENAI_API_KEY`` is set (or a
``base_url``/``client`` is given) and the rules otherwise; if the model fails after its
retries, ``auto`` warns and falls back to the rules (``RecipePlan.agent`` then says so),
while ``agent="openai"`` raises ``AgentError``. Model answers are cached on disk.

Usage::

    from cooklab.agent import plan
    p = plan(load_recipe("data/recipes/pancakes.yaml"))   # rules without a key
    p.prompts()                                            # enriched prompts
    pipe(recipe, plan=p, enriched_prompts=True)            # RecipeDiffusion / CookAnything

The API key is read from the environment only and is never logged, cached, stored in a
plan or put in an error message.
"""

from __future__ import annotations

import email.utils
import hashlib
import inspect
import json
import os
import re
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cooklab.errors import ConfigError, CooklabError
from cooklab.fileio import atomic_write
from cooklab.recipe import Recipe, StepPlan, as_recipe

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

PROMPT_VERSION = "1"
"""Version of the system prompt and the rule templates; part of every cache key, so bumping it invalidates the cache."""

DEFAULT_MODEL = "gpt-4o"
"""The chat model of CookAnything's Cooking Agent (GPT-4o); Recipe Diffusion names only "ChatGPT" for its pre-pass."""

DEFAULT_STYLE = "realistic food photography, top-down"
"""The visual style written into every prompt unless another is asked for."""

AgentName = Literal["auto", "rules", "openai"]


class AgentError(CooklabError, RuntimeError):
    """The language-model planner could not produce a valid plan (says what failed, how often, and the fix)."""


# --- the schema ------------------------------------------------------------------

_MODEL_CONFIG = ConfigDict(extra="forbid", str_strip_whitespace=True)


class IngredientState(BaseModel):
    """An ingredient as it looks in a step, e.g. ("carrot", "diced")."""

    model_config = _MODEL_CONFIG

    name: str = Field(min_length=1, description="The ingredient, e.g. 'carrot'.")
    state: str | None = Field(default=None, description="How it looks now, e.g. 'diced', 'melted', 'fried'; null if unchanged.")

    def phrase(self) -> str:
        """'diced carrot', or just 'carrot' without a state."""
        return f"{self.state} {self.name}" if self.state else self.name


class PlannedStep(BaseModel):
    """The plan for one step: the Recipe Diffusion metadata plus the CookAnything prompt."""

    model_config = _MODEL_CONFIG

    step: int = Field(description="The step number, counted from 1.")
    text: str = Field(min_length=1, description="The instruction, cleaned up but with the same meaning.")
    container: str | None = Field(
        default=None,
        description="The container or surface the step's picture shows (e.g. 'mixing bowl'); one name per physical container; null if none.",
    )
    container_attributes: list[str] = Field(
        default=[],
        description="How that container looks (size, shape, material, colour), identical every time it appears.",
    )
    reference_step: int | None = Field(
        default=None,
        description="Number of the last earlier step that shows the same container; null at its first appearance.",
    )
    ingredients: list[IngredientState] = Field(default=[], description="Ingredients visible in the step, with their state.")
    prompt: str = Field(
        min_length=1,
        description="One self-contained image prompt: the style, the dish, what the step shows, the container's look and the ingredients' states.",
    )

    @field_validator("container", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        """An empty container name means "no container"."""
        return None if isinstance(value, str) and not value.strip() else value


class RecipeContext(BaseModel):
    """What every prompt of a recipe shares: the dish and the visual style."""

    model_config = _MODEL_CONFIG

    dish: str = Field(min_length=1, description="The finished dish, e.g. 'Banana bread'.")
    style: str = Field(min_length=1, description="The visual style of every image, e.g. 'realistic food photography, top-down'.")


class RecipePlan(BaseModel):
    """The Cooking Agent's answer for a whole recipe."""

    model_config = _MODEL_CONFIG

    title: str = Field(min_length=1)
    context: RecipeContext
    steps: list[PlannedStep] = Field(min_length=1)
    agent: str
    """Which backend wrote the plan: "rules", "openai:gpt-4o", or "rules (openai failed: ...)"."""
    prompt_version: str = PROMPT_VERSION

    @model_validator(mode="after")
    def _check_numbering(self) -> RecipePlan:
        """Steps are numbered 1, 2, 3 ... and every reference_step names an earlier step."""
        for position, step in enumerate(self.steps, start=1):
            if step.step != position:
                raise ValueError(f"steps[{position}] is numbered {step.step}. Fix: number the steps 1, 2, 3 ... in order.")
            ref = step.reference_step
            if ref is not None and not 1 <= ref < position:
                fix = (
                    "use null: step 1 has no earlier step"
                    if position == 1
                    else f"use a step from 1 to {position - 1} that shows the same container, or null if the container "
                    f"first appears in step {position}"
                )
                raise ValueError(f"step {position}: reference_step {ref} is not an earlier step. Fix: {fix}.")
        return self

    def check(self, recipe: Recipe) -> None:
        """Raise ``ConfigError`` unless this plan fits ``recipe`` (one planned step per recipe step)."""
        if len(self.steps) != len(recipe):
            raise ConfigError(
                f"the plan has {len(self.steps)} steps but the recipe '{recipe.title}' has {len(recipe)}. "
                "Fix: plan this recipe again with cooklab.agent.plan(recipe)."
            )

    def step_plans(self) -> list[StepPlan]:
        """The Recipe Diffusion metadata of every step (for ``RecipeDiffusion(metadata=...)``)."""
        return [
            StepPlan(
                container=step.container,
                container_attributes=step.container_attributes,
                reference_step=step.reference_step,
                ingredients=[ingredient.name for ingredient in step.ingredients],
            )
            for step in self.steps
        ]

    def apply(self, recipe: Recipe) -> Recipe:
        """A copy of ``recipe`` whose step metadata is this plan's (the texts stay the recipe's)."""
        self.check(recipe)
        return recipe.with_plans(self.step_plans())

    def prompts(self) -> list[str]:
        """The enriched prompt of every step, in order."""
        return [step.prompt for step in self.steps]


class _ModelAnswer(BaseModel):
    """The part of a RecipePlan the language model writes (title, agent and version are ours)."""

    model_config = _MODEL_CONFIG

    context: RecipeContext
    steps: list[PlannedStep]


# --- the entry point -------------------------------------------------------------


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
        )
        cache_file = _cache_file(cache_dir, recipe, planner)
        cached = _read_cache(cache_file, recipe)
        if cached is not None:
            return cached
        result = planner.plan(recipe)
    except AgentError as err:
        if agent == "openai":
            raise
        warnings.warn(f"{err} Falling back to the offline rule-based planner (agent='rules').", stacklevel=2)
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


def _cache_file(cache_dir: str | os.PathLike[str] | Literal[False] | None, recipe: Recipe, planner: OpenAIPlanner) -> Path | None:
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
        warnings.warn(f"ignoring the unreadable cached plan {path} ({type(err).__name__}); asking the model again.", stacklevel=3)
        return None
    return cached


# --- the rule-based planner -------------------------------------------------------
#
# Lexicons first, then the planner. Everything works on lower-case word tokens, so
# "pan" never matches inside "pancakes" and "pot" never inside "potatoes".


def _plurals(word: str) -> set[str]:
    """The forms of a lexicon entry: itself and its plural (the last word is pluralised)."""
    head, _, last = word.rpartition(" ")
    irregular = {"leaf": "leaves", "loaf": "loaves", "knife": "knives", "shelf": "shelves"}
    if last in irregular:
        plural = irregular[last]
    elif last.endswith("y") and last[-2:-1] not in "aeiou":
        plural = last[:-1] + "ies"
    elif last.endswith(("s", "x", "ch", "sh", "o")):
        plural = last + "es"
    else:
        plural = last + "s"
    return {word, f"{head} {plural}".strip()}


# Container phrase -> canonical name. "bowl", "pot" and "pan" are named by _name_container.
_CONTAINER_NAMES = {
    "bowl": "bowl",
    "mixing bowl": "mixing bowl",
    "salad bowl": "salad bowl",
    "serving bowl": "serving bowl",
    "soup bowl": "soup bowl",
    "pasta bowl": "pasta bowl",
    "cereal bowl": "cereal bowl",
    "pudding basin": "pudding basin",
    "pot": "pot",
    "stock pot": "stock pot",
    "stockpot": "stock pot",
    "saucepan": "saucepan",
    "sauce pan": "saucepan",
    "casserole dish": "casserole dish",
    "casserole": "casserole dish",
    "dutch oven": "dutch oven",
    "pan": "pan",
    "frying pan": "frying pan",
    "fry pan": "frying pan",
    "skillet": "skillet",
    "wok": "wok",
    "griddle": "griddle",
    "grill pan": "grill pan",
    "roasting tin": "roasting tin",
    "roasting pan": "roasting tin",
    "baking dish": "baking dish",
    "oven dish": "baking dish",
    "gratin dish": "baking dish",
    "pie dish": "pie dish",
    "baking tray": "baking tray",
    "oven tray": "baking tray",
    "sheet pan": "baking tray",
    "baking sheet": "baking sheet",
    "tray": "tray",
    "loaf tin": "loaf tin",
    "loaf pan": "loaf tin",
    "cake tin": "cake tin",
    "cake pan": "cake tin",
    "muffin tin": "muffin tin",
    "tart tin": "tart tin",
    "tin": "tin",
    "plate": "plate",
    "dinner plate": "plate",
    "serving plate": "serving plate",
    "platter": "platter",
    "serving dish": "serving dish",
    "dish": "dish",
    "cutting board": "cutting board",
    "chopping board": "cutting board",
    "board": "cutting board",
    "jug": "jug",
    "measuring jug": "measuring jug",
    "measuring cup": "measuring cup",
    "pitcher": "jug",
    "blender": "blender",
    "food processor": "food processor",
    "colander": "colander",
    "sieve": "sieve",
    "strainer": "sieve",
    "glass": "glass",
    "jar": "jar",
    "mason jar": "mason jar",
    "mug": "mug",
    "cup": "cup",
    "ramekin": "ramekin",
    "wire rack": "wire rack",
    "cooling rack": "wire rack",
    "rack": "wire rack",
    "steamer": "steamer",
    "mortar": "mortar",
    "slow cooker": "slow cooker",
    "lunchbox": "lunchbox",
    "container": "container",
}
# Phrases that contain a container word but name a tool, not something food sits in.
_TOOLS = ("stick blender", "hand blender", "immersion blender", "hand mixer", "glass of water")

_DETERMINERS_DEFINITE = {"the", "this", "that", "your", "same"}
_DETERMINERS_INDEFINITE = {"a", "an", "another", "one"}
_NEW_CONTAINER_WORDS = {"another", "second", "third", "other", "separate", "clean", "new", "fresh"}
# Container attribute words, by kind; colours and materials next to each other form one phrase.
_SIZES = {"large", "big", "small", "little", "medium", "mini", "wide", "deep", "shallow", "tall", "heavy", "flat", "narrow"}
_SHAPES = {"round", "oval", "square", "rectangular", "heart-shaped", "fluted", "rimmed"}
_COLOURS = {
    "white", "black", "red", "blue", "green", "yellow", "orange", "grey", "gray", "brown", "silver", "golden",
    "cream", "pink", "purple", "navy", "turquoise", "dark", "light", "clear", "copper-coloured",
}  # fmt: skip
_MATERIALS = {
    "glass", "ceramic", "porcelain", "stoneware", "earthenware", "terracotta", "enamel", "enamelled", "cast", "iron",
    "cast-iron", "stainless", "steel", "copper", "aluminium", "aluminum", "non-stick", "nonstick", "wooden", "wood",
    "bamboo", "marble", "plastic", "metal", "silicone", "carbon", "clay", "slate", "melamine", "tin", "wicker",
}  # fmt: skip
_NORMALISE_ATTRIBUTE = {"smaller": "small", "larger": "large", "bigger": "large", "big": "large", "little": "small", "gray": "grey"}
_SKIPPABLE = {
    ",", "second", "third", "other", "separate", "clean", "new", "lined", "greased", "oiled", "lightly", "well",
    "hot", "heavy-based", "cold", "empty", "fresh", "prepared", "sturdy", "good",
}  # fmt: skip
# Prepositions before a container that make it *not* the step's container (where food comes from, what stands next to it).
_SOURCE_OR_SIDE = {("out", "of"), ("from",), ("off",), ("next", "to"), ("beside",), ("alongside",), ("with",), ("near",)}

# What a container looks like when the recipe does not say (so every step describes it the same way).
_DEFAULT_LOOKS = {
    "bowl": "white ceramic",
    "pot": "stainless steel",
    "stock pot": "stainless steel",
    "saucepan": "stainless steel",
    "casserole dish": "red enamelled cast iron",
    "dutch oven": "red enamelled cast iron",
    "frying pan": "black non-stick",
    "deep frying pan": "stainless steel",
    "skillet": "black cast iron",
    "wok": "black carbon steel",
    "griddle": "black cast iron",
    "grill pan": "black cast iron",
    "roasting tin": "dark metal",
    "baking dish": "white ceramic",
    "pie dish": "white ceramic",
    "baking tray": "silver aluminium",
    "baking sheet": "silver aluminium",
    "tray": "silver metal",
    "loaf tin": "dark non-stick metal",
    "cake tin": "silver metal",
    "muffin tin": "dark non-stick metal",
    "tart tin": "silver metal",
    "tin": "silver metal",
    "plate": "white ceramic",
    "serving plate": "white ceramic",
    "platter": "white ceramic",
    "serving dish": "white ceramic",
    "dish": "white ceramic",
    "cutting board": "light wooden",
    "jug": "clear glass",
    "measuring jug": "clear plastic",
    "measuring cup": "clear glass",
    "blender": "clear glass",
    "food processor": "clear plastic",
    "colander": "stainless steel",
    "sieve": "stainless steel",
    "glass": "clear",
    "jar": "clear glass",
    "mason jar": "clear glass",
    "mug": "white ceramic",
    "cup": "white ceramic",
    "ramekin": "white ceramic",
    "wire rack": "chrome",
    "steamer": "bamboo",
    "mortar": "grey granite",
}

# Ingredients (singular; plurals are generated), comma-separated. Multi-word names win over their last word.
_INGREDIENTS = """
onion, red onion, spring onion, shallot, garlic, garlic clove, leek, carrot, celery, potato, sweet potato, tomato,
cherry tomato, cucumber, courgette, zucchini, aubergine, eggplant, bell pepper, red pepper, green pepper, chilli, chili,
jalapeno, mushroom, spinach, lettuce, cabbage, kale, broccoli, cauliflower, pea, green pea, green bean, bean, corn,
sweetcorn, asparagus, beetroot, radish, pumpkin, squash, butternut squash, avocado, olive, black olive, kalamata olive,
ginger, lemongrass, fennel, artichoke, parsnip, turnip, okra, bean sprout, bok choy, pak choi, rocket, arugula,
watercress, edamame, chickpea, lentil, kidney bean, black bean, vegetable,
apple, banana, lemon, lime, orange, strawberry, blueberry, raspberry, blackberry, cherry, grape, peach, pear, plum,
mango, pineapple, kiwi, melon, watermelon, apricot, fig, raisin, sultana, cranberry, coconut, pomegranate, rhubarb, berry,
basil, basil leaf, coriander, coriander leaf, cilantro, parsley, mint, mint leaf, dill, thyme, rosemary, sage, oregano,
dried oregano, chive, bay leaf, cinnamon, nutmeg, cumin, paprika, smoked paprika, turmeric, chilli flake, chili powder,
curry powder, garam masala, black pepper, pepper, salt, sea salt, vanilla, vanilla extract, cardamom, star anise,
saffron, mustard, herb,
egg, egg yolk, egg white, milk, butter, cream, double cream, heavy cream, sour cream, creme fraiche, yogurt, yoghurt,
greek yogurt, cheese, cheddar, parmesan, mozzarella, feta, ricotta, goat cheese, cream cheese, mascarpone, halloumi,
buttermilk, condensed milk, curd,
beef, minced beef, ground beef, steak, pork, bacon, ham, sausage, chorizo, chicken, chicken breast, chicken thigh,
chicken wing, turkey, lamb, duck, meatball, salmon, tuna, cod, prawn, shrimp, mussel, squid, anchovy, tofu, tempeh, meat,
flour, plain flour, self-raising flour, bread flour, rice, cooked rice, basmati rice, risotto rice, pasta, spaghetti,
penne, macaroni, noodle, lasagne sheet, couscous, quinoa, oat, rolled oat, porridge oat, bread, toast, breadcrumb,
tortilla, tortilla chip, pita, bun, cracker, polenta, barley, cornflour, cornstarch,
sugar, brown sugar, white sugar, caster sugar, icing sugar, powdered sugar, baking powder, baking soda,
bicarbonate of soda, yeast, cocoa powder, chocolate, dark chocolate, milk chocolate, chocolate chip, honey, maple syrup,
golden syrup, jam, treacle, molasses, gelatine,
water, oil, olive oil, vegetable oil, sunflower oil, sesame oil, coconut oil, vinegar, balsamic vinegar, red wine,
white wine, beer, stock, vegetable stock, chicken stock, beef stock, broth, soy sauce, fish sauce, oyster sauce,
hoisin sauce, sriracha, ketchup, mayonnaise, tomato paste, tomato puree, passata, chopped tomato, coconut milk,
lemon juice, lime juice, orange juice, pesto, tahini, hummus, salsa, gravy, worcestershire sauce,
walnut, almond, peanut, peanut butter, cashew, hazelnut, pecan, pistachio, pine nut, chia seed, sunflower seed,
pumpkin seed, flaxseed, sesame seed,
batter, dough, cookie dough, pancake batter, sauce, bolognese sauce, tomato sauce, soup, stew, curry, dressing,
marinade, glaze, icing, frosting, syrup, custard, pancake, cookie, biscuit, cake, muffin, loaf, banana bread,
fried rice, spaghetti bolognese
"""


def _ingredient_lexicon() -> dict[tuple[str, ...], str]:
    """Token tuple of every ingredient and its plural -> the singular entry."""
    entries = (entry.strip() for entry in _INGREDIENTS.split(","))
    return _phrase_table({entry: entry for entry in entries if entry})


# Cooking verbs -> the state they leave an ingredient in (None: the verb does not change its look).
_VERB_STATES = {
    "chop": "chopped", "dice": "diced", "slice": "sliced", "mince": "minced", "grate": "grated", "crush": "crushed",
    "peel": "peeled", "halve": "halved", "quarter": "quartered", "cube": "cubed", "shred": "shredded", "mash": "mashed",
    "melt": "melted", "beat": None, "whisk": None, "whip": "whipped", "knead": "kneaded", "toast": "toasted",
    "fry": "fried", "stir-fry": "stir-fried", "saute": "sauteed", "sear": "seared", "brown": "browned", "bake": "baked",
    "roast": "roasted", "grill": "grilled", "boil": "boiled", "poach": "poached", "steam": "steamed",
    "simmer": "simmered", "scramble": "scrambled", "caramelise": "caramelised", "caramelize": "caramelized",
    "soften": "softened", "blend": "blended", "puree": "pureed", "drain": "drained", "cook": "cooked", "heat": None,
    "cut": "sliced", "tear": "torn", "squeeze": "squeezed", "cream": "creamed",
    "add": None, "stir": None, "pour": None, "fold": None, "tip": None, "scoop": None, "spoon": None, "ladle": None,
    "scatter": None, "sprinkle": None, "drizzle": None, "top": None, "lay": None, "place": None, "put": None,
    "transfer": None, "serve": None, "set": None, "leave": None, "let": None, "cover": None, "bring": None, "lower": None,
    "flip": None, "turn": None, "toss": None, "stack": None, "move": None, "lift": None, "grease": None, "line": None,
    "preheat": None, "wash": None, "rinse": None, "spread": None, "garnish": None, "finish": None, "twirl": None,
    "press": None, "push": None, "crack": None, "combine": None, "mix": None, "season": None, "dust": None,
    "brush": None, "arrange": None, "smooth": None, "scrape": None, "remove": None, "reduce": None, "warm": None,
    "chill": None, "refrigerate": None, "freeze": None, "rest": None, "cool": None, "coat": None, "dip": None,
    "roll": None, "shape": None, "form": None, "divide": None, "fill": None, "wrap": None, "sift": None, "strain": None,
    "measure": None, "weigh": None, "prepare": None,
}  # fmt: skip
# Adjectives that give an ingredient's state ("diced onion", "cold cooked rice"), and words skipped to find them.
_STATE_ADJECTIVES = {state for state in _VERB_STATES.values() if state} | {"beaten", "whisked", "cooked", "dried", "frozen", "raw"}
_SKIP_BEFORE_INGREDIENT = {
    "finely", "thinly", "roughly", "coarsely", "lightly", "freshly", "well", "very", "ripe", "overripe", "fresh", "thick",
    "thin", "soft", "hot", "warm", "cold", "small", "large", "whole", "green", "red", "yellow", "white", "orange",
}  # fmt: skip
# Verbs after which a bowl is a mixing bowl.
_MIXING_VERBS = {"whisk", "beat", "mix", "mash", "cream", "combine", "crack", "knead", "sift", "stir"}
# Verbs that start a new job: without a named container the step does not continue the previous one...
_SETUP_VERBS = {"preheat", "wash", "rinse", "measure", "weigh", "prepare"}
# ... and cutting continues only on a cutting board.
_CUTTING_VERBS = {"chop", "dice", "slice", "cut", "mince", "grate", "peel", "halve", "quarter", "cube", "shred"}
# Prepositions that end the scope of a verb ("fry the onion | in oil") and start a place ("into the batter").
_PREPOSITIONS = {"in", "into", "on", "onto", "over", "with", "to", "until", "for", "from", "under", "through", "at", "around", "inside", "out", "by", "next", "beside"}  # fmt: skip
_SURFACES = {"board", "rack", "plate", "platter", "tray", "sheet", "griddle"}  # food sits on these, not in them
_PLACE_PREPOSITIONS = {"into", "onto", "over", "to", "through", "in", "on"}
_DISH_BOWLS = (
    ("soup", "soup bowl"),
    ("salad", "salad bowl"),
    ("pasta", "pasta bowl"),
    ("spaghetti", "pasta bowl"),
    ("noodle", "noodle bowl"),
)

_UNTITLED = inspect.signature(Recipe.from_steps).parameters["title"].default  # the title of a bare list of steps

_TOKEN = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*|[,;:.!?()]")


def _tokens(text: str) -> list[str]:
    """Lower-case word tokens; punctuation marks are tokens of their own."""
    return _TOKEN.findall(text.lower().replace("é", "e").replace("è", "e"))


def _phrase_table(phrases: dict[str, str]) -> dict[tuple[str, ...], str]:
    """Token tuples of every phrase and its plural -> the phrase's canonical value."""
    table: dict[tuple[str, ...], str] = {}
    for phrase, canonical in phrases.items():
        for form in _plurals(phrase):
            table[tuple(form.split())] = canonical
    return table


def _longest_match(tokens: list[str], start: int, table: dict[tuple[str, ...], str], longest: int) -> tuple[int, str] | None:
    """(length, value) of the longest phrase of ``table`` starting at ``tokens[start]``, or None."""
    for length in range(min(longest, len(tokens) - start), 0, -1):
        value = table.get(tuple(tokens[start : start + length]))
        if value is not None:
            return length, value
    return None


_CONTAINER_TABLE = _phrase_table(_CONTAINER_NAMES)
_TOOL_TABLE = {tuple(tool.split()): tool for tool in _TOOLS}
_INGREDIENT_TABLE = _ingredient_lexicon()


@dataclass
class _Mention:
    """One container named in a step's text."""

    phrase: str  # canonical lexicon name ("bowl", "mixing bowl")
    start: int  # token positions
    end: int
    attributes: list[str]  # look words written before it ("large", "white ceramic")
    definite: bool  # "the bowl" (maybe an earlier one), not "a bowl" or "a second bowl" (a new one)
    source_or_side: bool  # "out of the tin", "next to a glass": not where the step happens
    destination: bool  # "into a jug", "onto a plate": where the food goes


@dataclass
class _Container:
    """One physical container of the recipe, as the rule planner tracks it."""

    name: str
    attributes: list[str] = field(default_factory=list)
    last_step: int = 0


def _heads(name: str) -> set[str]:
    """The words a later "the ..." may use for a container ("frying pan" -> {"pan"})."""
    heads = {name.split()[-1]}
    if name == "saucepan":
        heads |= {"pan", "pot"}
    if name in ("skillet", "wok"):
        heads.add("pan")
    if name in ("casserole dish", "dutch oven"):
        heads.add("pot")
    return heads


class RuleBasedPlanner:
    """The offline Cooking Agent: lexicons plus a handful of rules, no network.

    For every step it finds:

    * container: the longest container phrase in the text. With several, the last one
      the food goes into or onto, else the last one that is not a source or a neighbour
      ("out of the tin", "next to a glass"). "the pan" means the latest earlier pan;
      "a bowl" or "a second bowl" is a new one. A bare bowl
      is named by its use: "small bowl", "mixing bowl" (whisk, beat, mash ...), a bowl
      named after the dish ("soup bowl"), else "serving bowl"; a bare pan is a
      "frying pan" ("deep frying pan" when deep), a large pot a "stock pot".
      Without a container phrase: the container of the ingredient the step puts
      something into or onto ("pour the milk into the flour"), else the previous step's
      container, unless the step starts a new job ("preheat", "wash"; cutting continues
      only on a cutting board).
    * container_attributes: the look words written before any mention of it (sizes,
      shapes, colours, materials), the same for every step, with a default material
      when the recipe names none.
    * reference_step: the last earlier step with the same container (None at first).
    * ingredients: lexicon matches with their state: an adjective next to them
      ("diced onion", "a banana, halved"), else the verb acting on them ("mash the
      bananas" -> mashed), else their last known state.
    * prompt: ``f"{style}. {dish}, step {n}: {text} In the {look} {container}."`` ("On"
      for boards, racks, plates and trays), then "Showing ..." for ingredient states
      the text leaves unsaid.
    """

    def __init__(self, style: str = DEFAULT_STYLE) -> None:
        self.style = style

    def __repr__(self) -> str:
        return f"RuleBasedPlanner(style={self.style!r})"

    def plan(self, recipe: Recipe | Sequence[str] | str | os.PathLike[str]) -> RecipePlan:
        """Plan every step of ``recipe`` (a Recipe, a list of step texts or a recipe file)."""
        recipe = as_recipe(recipe)
        dish = recipe.title if recipe.title != _UNTITLED else "A home-cooked dish"
        containers: list[_Container] = []
        location: dict[str, _Container] = {}  # ingredient -> container it was last put in
        states: dict[str, str] = {}  # ingredient -> its last known state
        chosen: list[_Container | None] = []
        references: list[int | None] = []
        ingredients: list[list[IngredientState]] = []

        for number, step in enumerate(recipe.steps, start=1):
            tokens = _tokens(step.text)
            mentions = _container_mentions(tokens)
            covered = {i for m in mentions for i in range(m.start, m.end)}
            found = _ingredients(tokens, covered, states)
            container = self._container_for(tokens, mentions, found, containers, location, chosen, dish)

            reference = None
            if container is not None:
                reference = container.last_step or None
                container.last_step = number
                for ingredient, _position in found:
                    location[ingredient.name] = container
            chosen.append(container)
            references.append(reference)
            ingredients.append(_unique([ingredient for ingredient, _ in found]))

        for container in containers:
            _complete_look(container)
        steps = [
            PlannedStep(
                step=number,
                text=step.text,
                container=container.name if container else None,
                container_attributes=list(container.attributes) if container else [],
                reference_step=reference,
                ingredients=found,
                prompt=self._prompt(dish, number, step.text, container, found),
            )
            for number, (step, container, reference, found) in enumerate(zip(recipe.steps, chosen, references, ingredients), start=1)
        ]
        return RecipePlan(title=recipe.title, context=RecipeContext(dish=dish, style=self.style), steps=steps, agent="rules")

    def _container_for(
        self,
        tokens: list[str],
        mentions: list[_Mention],
        found: list[tuple[IngredientState, int]],
        containers: list[_Container],
        location: dict[str, _Container],
        chosen: list[_Container | None],
        dish: str,
    ) -> _Container | None:
        """The container of one step (see the class docstring for the rules, in order)."""
        previous = chosen[-1] if chosen else None
        if mentions:
            candidates = [m for m in mentions if not m.source_or_side] or mentions
            main = ([m for m in candidates if m.destination] or candidates)[-1]
            return _resolve(main, containers) or _new_container(main, tokens, containers, dish)

        target = _place_ingredient(tokens, found, location)
        if target is not None:
            return target
        verb = _first_verb(tokens)
        if previous is None or verb in _SETUP_VERBS:
            return None
        if verb in _CUTTING_VERBS and previous.name != "cutting board":
            return None
        return previous

    def _prompt(self, dish: str, number: int, text: str, container: _Container | None, found: list[IngredientState]) -> str:
        """The enriched prompt: style, dish and step number, the step, the container's look,
        and the states of ingredients that the step's text leaves unsaid ("blended soup")."""
        text = text if text.endswith((".", "!", "?")) else text + "."
        prompt = f"{self.style}. {dish}, step {number}: {text}"
        if container is not None:
            names = set(container.name.split())
            look = " ".join(word for word in container.attributes if word not in names)
            where = "On" if container.name.split()[-1] in _SURFACES else "In"
            prompt += f" {where} the {look} {container.name}." if look else f" {where} the {container.name}."
        unsaid = [ingredient.phrase() for ingredient in found if ingredient.state and ingredient.state not in text.lower()]
        if unsaid:
            prompt += f" Showing {', '.join(unsaid)}."
        return prompt


def _container_mentions(tokens: list[str]) -> list[_Mention]:
    """Every container phrase in a step, with the look words and the article before it."""
    mentions = []
    i = 0
    while i < len(tokens):
        tool = _longest_match(tokens, i, _TOOL_TABLE, 3)
        if tool is not None:
            i += tool[0]
            continue
        match = _longest_match(tokens, i, _CONTAINER_TABLE, 3)
        if match is None:
            i += 1
            continue
        length, phrase = match
        end = i + length
        # "glass jar", "tin plate": the first word is a material here, not a container.
        if length == 1 and tokens[i] in _MATERIALS and _longest_match(tokens, end, _CONTAINER_TABLE, 3):
            i += 1
            continue
        mentions.append(_describe_mention(tokens, i, end, phrase))
        i = end
    return mentions


def _describe_mention(tokens: list[str], start: int, end: int, phrase: str) -> _Mention:
    """Walk back from a container phrase over its look words to its article and preposition."""
    words: list[str] = []
    new = False
    position = start - 1
    while position >= 0 and start - position <= 6:
        token = tokens[position]
        if token in _NEW_CONTAINER_WORDS:
            new = True
        if token in _SIZES or token in _SHAPES or token in _COLOURS or token in _MATERIALS or token in _NORMALISE_ATTRIBUTE:
            words.append(token)
        elif token not in _SKIPPABLE:
            break
        position -= 1
    article = tokens[position] if position >= 0 else ""
    definite = article not in _DETERMINERS_INDEFINITE and not new
    before = position if article in _DETERMINERS_DEFINITE | _DETERMINERS_INDEFINITE else position + 1
    preceding = tuple(tokens[max(0, before - 2) : before])
    source_or_side = any(preceding[-len(p) :] == p for p in _SOURCE_OR_SIDE if len(preceding) >= len(p))
    destination = bool(preceding) and preceding[-1] in ("into", "onto")
    return _Mention(phrase, start, end, _group_look(list(reversed(words))), definite, source_or_side, destination)


def _group_look(words: list[str]) -> list[str]:
    """['large', 'white', 'ceramic'] -> ['large', 'white ceramic']: colours and materials form one phrase."""
    look: list[str] = []
    joinable = False
    for word in words:
        word = _NORMALISE_ATTRIBUTE.get(word, word)
        is_surface = word in _COLOURS or word in _MATERIALS
        if is_surface and joinable and look:
            look[-1] = f"{look[-1]} {word}"
        else:
            look.append(word)
        joinable = is_surface
    return look


def _resolve(mention: _Mention, containers: list[_Container]) -> _Container | None:
    """The earlier container a definite mention ("the pan", "the small bowl") means, if any."""
    if not mention.definite:
        return None
    generic = mention.phrase in ("bowl", "pot", "pan", "tin", "tray", "dish", "cutting board", "glass", "jar", "jug")
    head = mention.phrase.split()[-1]
    for container in sorted(containers, key=lambda c: c.last_step, reverse=True):
        if container.name == mention.phrase or (generic and head in _heads(container.name)):
            sizes = {w for w in mention.attributes if w in _SIZES}
            if sizes <= set(container.attributes) | set(container.name.split()):
                _add_attributes(container, mention.attributes)
                return container
    return None


def _new_container(mention: _Mention, tokens: list[str], containers: list[_Container], dish: str) -> _Container:
    """Start tracking a container first seen in this step, with a name unique in the recipe."""
    name = _name_container(mention.phrase, mention.attributes, tokens, dish)
    taken = {c.name for c in containers}
    ordinal = 1
    unique = name
    while unique in taken:  # a second bowl of the same kind: "mixing bowl 2"
        ordinal += 1
        unique = f"{name} {ordinal}"
    container = _Container(unique, list(mention.attributes))
    containers.append(container)
    return container


def _name_container(phrase: str, look: list[str], tokens: list[str], dish: str) -> str:
    """Give a generic bowl, pot or pan the name a cook would use for it."""
    if phrase == "bowl":
        if "small" in look:
            return "small bowl"
        if _MIXING_VERBS & set(tokens):
            return "mixing bowl"
        for word, bowl in _DISH_BOWLS:
            if word in dish.lower():
                return bowl
        return "mixing bowl" if "large" in look else "serving bowl"
    if phrase == "pot":
        return "stock pot" if "large" in look else "pot"
    if phrase == "pan":
        return "deep frying pan" if "deep" in look else "frying pan"
    return phrase


def _add_attributes(container: _Container, look: list[str]) -> None:
    """Remember look words from a later mention ("the large bowl")."""
    for word in look:
        if word not in container.attributes:
            container.attributes.append(word)


def _complete_look(container: _Container) -> None:
    """Give a container whose material or colour the recipe never names its usual look."""
    words = {w for attribute in container.attributes for w in attribute.split()}
    if words & (_COLOURS | _MATERIALS):
        return
    default = _DEFAULT_LOOKS.get(container.name) or _DEFAULT_LOOKS.get(container.name.split()[-1])
    if default:
        container.attributes.append(default)


def _first_verb(tokens: list[str]) -> str | None:
    """The first cooking verb of a step ("After a night in the fridge, top ..." -> "top")."""
    for token in tokens:
        if token in _VERB_STATES:
            return token
    return None


def _ingredients(tokens: list[str], covered: set[int], states: dict[str, str]) -> list[tuple[IngredientState, int]]:
    """Ingredients named in a step, each with its state and token position.

    The state is the adjective next to the ingredient ("diced onion", "a banana, halved"), else the state the
    clause's verb leaves it in ("mash the bananas"), else the last known one. ``states``
    is updated with what this step does.
    """
    found: list[tuple[IngredientState, int]] = []
    verb_state: str | None = None
    clause_start = True
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token in (",", ";", ".", "and", "then"):
            clause_start = True
            i += 1
            continue
        if clause_start and token in _VERB_STATES:
            verb_state = _VERB_STATES[token]
            clause_start = False
            i += 1
            continue
        clause_start = False
        if token in _PREPOSITIONS:
            verb_state = None
        match = None if i in covered else _longest_match(tokens, i, _INGREDIENT_TABLE, 4)
        if match is None:
            i += 1
            continue
        length, name = match
        following = None if i + 1 in covered else _longest_match(tokens, i + 1, _INGREDIENT_TABLE, 4)
        if following is not None and following[0] > length - 1:  # "dark chocolate chips", "orange carrot": a modifier
            i += 1
            continue
        adjective = _adjective_before(tokens, i) or _adjective_after(tokens, i + length)
        state = adjective or verb_state or states.get(name)
        if adjective or verb_state:
            states[name] = state
        found.append((IngredientState(name=name, state=state), i))
        i += length
    return found


def _adjective_before(tokens: list[str], position: int) -> str | None:
    """The state adjective just before an ingredient ("finely diced onion" -> "diced"), or None."""
    for index in range(position - 1, max(-1, position - 4), -1):
        if tokens[index] in _STATE_ADJECTIVES:
            return tokens[index]
        if tokens[index] not in _SKIP_BEFORE_INGREDIENT:
            return None
    return None


def _adjective_after(tokens: list[str], position: int) -> str | None:
    """A state written after an ingredient, as in "a banana, halved lengthwise", or None."""
    if position < len(tokens) and tokens[position] == ",":
        position += 1
    if position < len(tokens) and tokens[position] in _STATE_ADJECTIVES:
        return tokens[position]
    return None


def _place_ingredient(tokens: list[str], found: list[tuple[IngredientState, int]], location: dict[str, _Container]) -> _Container | None:
    """The container of the food a step puts something into ("into the flour" -> where the flour is)."""
    for ingredient, position in found:
        before = tokens[max(0, position - 4) : position]
        if "the" in before and any(word in _PLACE_PREPOSITIONS for word in before):
            container = location.get(ingredient.name)
            if container is not None:
                return container
    return None


def _unique(ingredients: list[IngredientState]) -> list[IngredientState]:
    """Drop repeated ingredients, keeping the first mention."""
    seen: set[str] = set()
    unique = []
    for ingredient in ingredients:
        if ingredient.name not in seen:
            seen.add(ingredient.name)
            unique.append(ingredient)
    return unique


# --- the OpenAI planner ----------------------------------------------------------

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


_NOT_STRICT = {"default", "title", "minLength", "maxLength", "minItems", "maxItems"}  # keywords _strict_schema drops


def _strict_schema(schema: Any) -> Any:
    """A pydantic JSON schema made acceptable to OpenAI's strict structured outputs.

    Strict mode wants every property required (optional values are nullable instead) and
    ``additionalProperties: false`` on every object; defaults and length limits are left
    out (not every server accepts them, and pydantic checks the lengths afterwards).
    """
    if isinstance(schema, list):
        return [_strict_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    cleaned = {key: _strict_schema(value) for key, value in schema.items() if key not in _NOT_STRICT}
    if cleaned.get("type") == "object" and "properties" in cleaned:
        cleaned["properties"] = {name: _strict_schema(value) for name, value in schema["properties"].items()}
        cleaned["required"] = list(cleaned["properties"])
        cleaned["additionalProperties"] = False
    return cleaned


RESPONSE_FORMAT = {
    "type": "json_schema",
    "json_schema": {"name": "recipe_plan", "strict": True, "schema": _strict_schema(_ModelAnswer.model_json_schema())},
}
"""The ``response_format`` sent with every request: the plan schema, strict."""

_MAX_RETRY_DELAY = 60.0  # seconds; a longer Retry-After is cut to this


class _Failure(NamedTuple):
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
    ``client`` brings its own server, key and timeout.
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
        attempts = self.max_retries + 1
        failure: _Failure | None = None
        for attempt in range(1, attempts + 1):
            if failure is not None and failure.kind != "invalid":  # back off before asking again
                backoff = self.retry_delay * 2 ** (attempt - 2)
                time.sleep(min(failure.delay if failure.delay is not None else backoff, _MAX_RETRY_DELAY))
            content, failure = self._ask(messages)
            if failure is None:
                result, problem = self._parse(content, recipe)
                if result is not None:
                    return result
                failure = _Failure("invalid", problem, retry=True)
                messages += [
                    {"role": "assistant", "content": content or ""},
                    {
                        "role": "user",
                        "content": f"That answer is not a valid plan: {problem}\nAnswer again with the corrected JSON object only.",
                    },
                ]
            if not failure.retry:
                break
        raise AgentError(self._failure_message(failure, attempt))

    def _ask(self, messages: list[dict[str, str]]) -> tuple[str | None, _Failure | None]:
        """One request: (the answer's text, None), or (None, why it failed)."""
        import openai

        try:
            response = self.client.chat.completions.create(
                model=self.model,
                messages=messages,
                response_format=RESPONSE_FORMAT,
                temperature=0,
            )
        except openai.RateLimitError as err:
            return None, _Failure("rate_limit", _redact(f"HTTP 429 {err.message}"), True, _retry_after(err.response.headers))
        except openai.APITimeoutError:
            return None, _Failure("timeout", f"no answer within {self.timeout} s", True)
        except openai.APIConnectionError as err:
            return None, _Failure("connection", _redact(f"cannot connect ({err.message})"), True)
        except openai.APIStatusError as err:
            retry = err.status_code >= 500
            kind = "server" if retry else f"http_{err.status_code}"
            return None, _Failure(kind, _redact(f"HTTP {err.status_code} {err.message}"), retry, _retry_after(err.response.headers))
        choices = getattr(response, "choices", None) or []
        if not choices:
            return None, _Failure("invalid", "the answer has no choices", True)
        message = choices[0].message
        if getattr(message, "refusal", None):
            return None, _Failure("refusal", _redact(f"the model refused: {message.refusal}"), False)
        return message.content or "", None

    def _parse(self, content: str | None, recipe: Recipe) -> tuple[RecipePlan | None, str]:
        """(the validated plan, "") or (None, what is wrong, in words the model can act on)."""
        text = _strip_fences(content or "")
        try:
            answer = _ModelAnswer.model_validate_json(text)
            result = RecipePlan(
                title=recipe.title,
                context=answer.context,
                steps=answer.steps,
                agent=f"openai:{self.model}",
                prompt_version=PROMPT_VERSION,
            )
            result.check(recipe)
        except ValidationError as err:
            return None, _validation_summary(err)
        except ConfigError as err:
            return None, str(err)
        return result, ""

    def _failure_message(self, failure: _Failure, attempts: int) -> str:
        """What failed, after how many attempts, and the fix."""
        fixes = {
            "rate_limit": "the server is limiting requests: wait a minute and try again, raise max_retries=, or plan offline with agent='rules'.",
            "timeout": f"raise timeout= (now {self.timeout} s), check that the server at {self.base_url} is running, or use agent='rules'.",
            "connection": f"check base_url= ({self.base_url}) and the network, or plan offline with agent='rules'.",
            "server": "the server failed: try again later, or plan offline with agent='rules'.",
            "invalid": f"the answers of {self.model!r} did not match the plan schema: use a stronger model (e.g. model='gpt-4o'), raise max_retries=, or use agent='rules'.",
            "refusal": "rephrase the recipe, or plan offline with agent='rules'.",
            "http_401": "the server rejected the API key: check OPENAI_API_KEY (or use agent='rules').",
            "http_404": f"the model {self.model!r} or the endpoint was not found: check model= and base_url= (it should end in /v1).",
        }
        fix = fixes.get(failure.kind, "check model= and base_url=, or plan offline with agent='rules'.")
        tries = f"{attempts} attempt" + ("s" if attempts != 1 else "")
        return f"the OpenAI planner ({self.model} at {self.base_url}) failed after {tries}: {failure.detail}. Fix: {fix}"


def _make_client(base_url: str | None, timeout: float) -> Any:
    """An ``openai.OpenAI`` client that does not retry by itself (the planner retries)."""
    try:
        import openai
    except ImportError:
        raise AgentError("the OpenAI planner needs the openai package. Fix: pip install 'cooklab[agent]', or use agent='rules'.") from None
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


def _strip_fences(text: str) -> str:
    """Remove a ```json ... ``` fence that servers without structured output like to add."""
    text = text.strip()
    fenced = re.fullmatch(r"```[a-zA-Z]*\s*(.*?)\s*```", text, flags=re.DOTALL)
    return fenced.group(1) if fenced else text


def _validation_summary(err: ValidationError, limit: int = 8) -> str:
    """A pydantic error as short 'where: what' lines (the first few)."""
    lines = []
    for error in err.errors()[:limit]:
        where = ".".join(str(part) for part in error["loc"]) or "answer"
        lines.append(f"{where}: {error['msg']}")
    more = len(err.errors()) - limit
    if more > 0:
        lines.append(f"... and {more} more")
    return "; ".join(lines)


def _retry_after(headers: Any) -> float | None:
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


def _redact(text: str) -> str:
    """Mask the API key if a server echoes it back in an error."""
    key = os.environ.get("OPENAI_API_KEY")
    return text.replace(key, "***") if key else text


# --- agreement with hand-written metadata -------------------------------------------


class Agreement(NamedTuple):
    """How many steps of a plan match a recipe's own metadata."""

    steps: int
    container_matches: int
    reference_matches: int

    @property
    def container(self) -> float:
        """Share of steps with exactly the same container name (case-insensitive)."""
        return self.container_matches / self.steps if self.steps else 0.0

    @property
    def reference_step(self) -> float:
        """Share of steps with exactly the same reference_step (None counts as a value)."""
        return self.reference_matches / self.steps if self.steps else 0.0


def agreement(recipe_plan: RecipePlan, recipe: Recipe) -> Agreement:
    """Compare a plan with the hand-written metadata of ``recipe``, step by step."""
    recipe_plan.check(recipe)

    def same(a: str | None, b: str | None) -> bool:
        return (a or "").strip().lower() == (b or "").strip().lower()

    pairs = list(zip(recipe_plan.steps, recipe.steps))
    return Agreement(
        steps=len(pairs),
        container_matches=sum(same(p.container, s.container) for p, s in pairs),
        reference_matches=sum(p.reference_step == s.reference_step for p, s in pairs),
    )
