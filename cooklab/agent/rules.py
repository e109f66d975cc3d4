"""The rule planner: the offline Cooking Agent, lexicon look-ups plus a handful of rules.

``RuleBasedPlanner().plan(recipe)`` reads each step's text once, in order, and keeps
track of the recipe's physical containers as it goes (``_Container``: name, look, last
step). Per step:

1. tokens: lower-case words, punctuation as tokens of its own (``_tokens``); every
   look-up matches whole tokens, so "pan" never matches inside "pancakes" and "pot"
   never inside "potatoes";
2. container mentions (``_container_mentions``): the longest phrase of the lexicon's
   ``CONTAINER_NAMES`` at each position, with the look words and the article before it;
3. ingredients with their states (``_ingredients``);
4. the step's container (``RuleBasedPlanner._container_for``): an earlier one
   (``_resolve``) or a new one (``_new_container``), and from it the reference step;
5. the enriched prompt (``RuleBasedPlanner._prompt``), written after the last step,
   once every container whose colour or material the recipe never names has its
   default look (``_complete_look``).

The class docstring lists the rules in order. The words themselves are data in
``lexicon.py``.
"""

from __future__ import annotations

import inspect
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..recipe import Recipe, as_recipe
from .lexicon import (
    COLOURS,
    CONTAINER_NAMES,
    CUTTING_VERBS,
    DEFAULT_LOOKS,
    DETERMINERS_DEFINITE,
    DETERMINERS_INDEFINITE,
    DISH_BOWLS,
    INGREDIENTS,
    MATERIALS,
    MIXING_VERBS,
    NEW_CONTAINER_WORDS,
    NORMALISE_ATTRIBUTE,
    PLACE_PREPOSITIONS,
    PREPOSITIONS,
    SETUP_VERBS,
    SHAPES,
    SIZES,
    SKIP_BEFORE_INGREDIENT,
    SKIPPABLE,
    SOURCE_OR_SIDE,
    STATE_ADJECTIVES,
    SURFACES,
    TOOLS,
    VERB_STATES,
)
from .schema import DEFAULT_STYLE, IngredientState, PlannedStep, RecipeContext, RecipePlan

_UNTITLED = inspect.signature(Recipe.from_steps).parameters["title"].default  # the title of a bare list of steps

_TOKEN = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*|[,;:.!?()]")


def _tokens(text: str) -> list[str]:
    """Lower-case word tokens; punctuation marks are tokens of their own."""
    return _TOKEN.findall(text.lower().replace("é", "e").replace("è", "e"))


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


def _phrase_table(phrases: dict[str, str]) -> dict[tuple[str, ...], str]:
    """Token tuples of every phrase and its plural -> the phrase's canonical value."""
    table: dict[tuple[str, ...], str] = {}
    for phrase, canonical in phrases.items():
        for form in _plurals(phrase):
            table[tuple(form.split())] = canonical
    return table


def _ingredient_lexicon() -> dict[tuple[str, ...], str]:
    """Token tuple of every ingredient and its plural -> the singular entry."""
    entries = (entry.strip() for entry in INGREDIENTS.split(","))
    return _phrase_table({entry: entry for entry in entries if entry})


def _longest_match(
    tokens: list[str], start: int, table: dict[tuple[str, ...], str], longest: int
) -> tuple[int, str] | None:
    """(length, value) of the longest phrase of ``table`` starting at ``tokens[start]``, or None."""
    for length in range(min(longest, len(tokens) - start), 0, -1):
        value = table.get(tuple(tokens[start : start + length]))
        if value is not None:
            return length, value
    return None


_CONTAINER_TABLE = _phrase_table(CONTAINER_NAMES)
_TOOL_TABLE = {tuple(tool.split()): tool for tool in TOOLS}
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
            for number, (step, container, reference, found) in enumerate(
                zip(recipe.steps, chosen, references, ingredients), start=1
            )
        ]
        return RecipePlan(
            title=recipe.title, context=RecipeContext(dish=dish, style=self.style), steps=steps, agent="rules"
        )

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
        if previous is None or verb in SETUP_VERBS:
            return None
        if verb in CUTTING_VERBS and previous.name != "cutting board":
            return None
        return previous

    def _prompt(
        self, dish: str, number: int, text: str, container: _Container | None, found: list[IngredientState]
    ) -> str:
        """The enriched prompt: style, dish and step number, the step, the container's look,
        and the states of ingredients that the step's text leaves unsaid ("blended soup")."""
        text = text if text.endswith((".", "!", "?")) else text + "."
        prompt = f"{self.style}. {dish}, step {number}: {text}"
        if container is not None:
            names = set(container.name.split())
            look = " ".join(word for word in container.attributes if word not in names)
            where = "On" if container.name.split()[-1] in SURFACES else "In"
            prompt += f" {where} the {look} {container.name}." if look else f" {where} the {container.name}."
        unsaid = [
            ingredient.phrase() for ingredient in found if ingredient.state and ingredient.state not in text.lower()
        ]
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
        if length == 1 and tokens[i] in MATERIALS and _longest_match(tokens, end, _CONTAINER_TABLE, 3):
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
        if token in NEW_CONTAINER_WORDS:
            new = True
        if token in SIZES or token in SHAPES or token in COLOURS or token in MATERIALS or token in NORMALISE_ATTRIBUTE:
            words.append(token)
        elif token not in SKIPPABLE:
            break
        position -= 1
    article = tokens[position] if position >= 0 else ""
    definite = article not in DETERMINERS_INDEFINITE and not new
    before = position if article in DETERMINERS_DEFINITE | DETERMINERS_INDEFINITE else position + 1
    preceding = tuple(tokens[max(0, before - 2) : before])
    source_or_side = any(preceding[-len(p) :] == p for p in SOURCE_OR_SIDE if len(preceding) >= len(p))
    destination = bool(preceding) and preceding[-1] in ("into", "onto")
    return _Mention(phrase, start, end, _group_look(list(reversed(words))), definite, source_or_side, destination)


def _group_look(words: list[str]) -> list[str]:
    """['large', 'white', 'ceramic'] -> ['large', 'white ceramic']: colours and materials form one phrase."""
    look: list[str] = []
    joinable = False
    for word in words:
        word = NORMALISE_ATTRIBUTE.get(word, word)
        is_surface = word in COLOURS or word in MATERIALS
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
            sizes = {w for w in mention.attributes if w in SIZES}
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
        if MIXING_VERBS & set(tokens):
            return "mixing bowl"
        for word, bowl in DISH_BOWLS:
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
    if words & (COLOURS | MATERIALS):
        return
    default = DEFAULT_LOOKS.get(container.name) or DEFAULT_LOOKS.get(container.name.split()[-1])
    if default:
        container.attributes.append(default)


def _first_verb(tokens: list[str]) -> str | None:
    """The first cooking verb of a step ("After a night in the fridge, top ..." -> "top")."""
    for token in tokens:
        if token in VERB_STATES:
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
        if clause_start and token in VERB_STATES:
            verb_state = VERB_STATES[token]
            clause_start = False
            i += 1
            continue
        clause_start = False
        if token in PREPOSITIONS:
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
        if tokens[index] in STATE_ADJECTIVES:
            return tokens[index]
        if tokens[index] not in SKIP_BEFORE_INGREDIENT:
            return None
    return None


def _adjective_after(tokens: list[str], position: int) -> str | None:
    """A state written after an ingredient, as in "a banana, halved lengthwise", or None."""
    if position < len(tokens) and tokens[position] == ",":
        position += 1
    if position < len(tokens) and tokens[position] in STATE_ADJECTIVES:
        return tokens[position]
    return None


def _place_ingredient(
    tokens: list[str], found: list[tuple[IngredientState, int]], location: dict[str, _Container]
) -> _Container | None:
    """The container of the food a step puts something into ("into the flour" -> where the flour is)."""
    for ingredient, position in found:
        before = tokens[max(0, position - 4) : position]
        if "the" in before and any(word in PLACE_PREPOSITIONS for word in before):
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
