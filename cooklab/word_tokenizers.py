"""Word-level tokenizers built in memory: CLIP byte-level BPE and T5 unigram, no files, no network.

Real checkpoints ship their tokenizers as files (``vocab.json`` + ``merges.txt`` for CLIP,
``spiece.model`` for T5). The small models of cooklab are built in code, so their tokenizers are
too: ``tiny_clip_tokenizer`` and ``tiny_t5_tokenizer`` return the stock transformers classes
(``CLIPTokenizer``, ``T5Tokenizer``) with vocabularies made from a list of words. Every listed
word becomes a single token; any other text falls back to bytes (CLIP) or characters (T5), so
every prompt still tokenizes.

Two model families use them:

* ``cooklab.models.tiny_sd`` / ``tiny_flux`` (random weights) with ``COOKING_WORDS``, a few
  hundred cooking words, and the lengths ``TINY_CLIP_MAX_LENGTH`` / ``TINY_T5_MAX_LENGTH``;
* the Toy Kitchen models (``cooklab.toykitchen.architectures``, trained and loaded with
  ``cooklab.models.toy_sd`` / ``toy_flux``) with the Toy Kitchen's vocabulary
  (``cooklab.toykitchen.captions.WORDS``) and its own lengths.

This module imports nothing else from cooklab, so any model module can import it.
"""

from __future__ import annotations

import string
from collections.abc import Sequence

from tokenizers import pre_tokenizers
from transformers import CLIPTokenizer, T5Tokenizer

__all__ = ["COOKING_WORDS", "TINY_CLIP_MAX_LENGTH", "TINY_T5_MAX_LENGTH", "tiny_clip_tokenizer", "tiny_t5_tokenizer"]

# ---------------------------------------------------------------------------
# Vocabulary: the words kept whole
# ---------------------------------------------------------------------------

_WORD_GROUPS = {
    "articles, prepositions, connectives": """
        a an the this that these those some any each every no of in on at to into onto
        from with without by for and or but next near beside behind under over above
        below between inside outside around through across along up down off out top
        bottom left right middle center side front back half full empty one two three
        four five six seven eight ten dozen many few more less very too is are it its
        then while after before until all other same another
    """,
    "containers and tools": """
        bowl plate dish pan pot skillet wok saucepan tray sheet oven stove grill kettle
        cup mug glass jar bottle can tin box bag basket board cutting knife fork spoon
        ladle whisk spatula tongs sieve strainer colander grater peeler mortar pestle
        rolling pin mold mould ramekin casserole platter saucer teapot pitcher jug
        blender mixer processor toaster microwave fridge freezer counter table napkin
        cloth towel lid rack skewer thermometer scale timer foil parchment wrap
    """,
    "ingredients": """
        water salt pepper sugar flour butter oil olive egg eggs milk cream cheese yogurt
        bread rice pasta noodle noodles dough crust bean beans lentil chickpea tofu meat
        beef pork lamb chicken duck turkey bacon ham sausage fish salmon tuna cod shrimp
        prawn crab lobster mussel clam squid tomato tomatoes potato potatoes onion onions
        garlic ginger carrot carrots celery pea peas corn cabbage lettuce spinach kale
        broccoli cauliflower cucumber zucchini eggplant pumpkin squash mushroom mushrooms
        leek radish beet avocado apple apples banana bananas orange oranges lemon lime
        grape grapes berry berries strawberry strawberries blueberry raspberry cherry
        cherries peach pear plum mango pineapple melon watermelon coconut fig date raisin
        nut nuts almond walnut peanut hazelnut pistachio seed seeds sesame honey syrup
        jam chocolate cocoa vanilla cinnamon nutmeg clove cumin paprika chili curry
        basil parsley cilantro mint thyme rosemary oregano sage dill bay leaf leaves herb
        herbs spice spices sauce soup stock broth gravy vinegar mustard ketchup mayonnaise
        soy wine beer juice coffee tea ice yeast baking soda powder starch oat oats cereal
        cake cookie cookies pie tart pastry muffin pancake pancakes waffle bun roll toast
        sandwich burger pizza salad stew curry omelette sushi taco dumpling dumplings
    """,
    "cooking verbs": """
        cook bake boil fry roast grill steam simmer stew poach saute sear toast melt mix
        stir whisk beat fold knead roll chop slice dice mince cut peel grate crush mash
        blend pour add put place set serve season sprinkle spread brush drizzle garnish
        top fill stuff wrap cover uncover heat warm cool chill freeze thaw rest drain
        rinse wash soak marinate coat dip dust sift measure weigh combine separate
        shape press squeeze zest strain whip cream reduce thicken taste plate remove take
        cooking baking boiling frying roasting stirring chopping slicing mixing pouring
        chopped sliced diced minced grated peeled mashed melted mixed boiled fried baked
        roasted grilled steamed toasted whipped beaten stuffed
    """,
    "colours": """
        red orange yellow green blue purple pink brown black white grey gray golden
        silver cream beige dark light pale bright
    """,
    "materials and textures": """
        wood wooden metal steel iron copper ceramic porcelain stone marble plastic paper
        linen cotton crispy crunchy soft hard smooth creamy fluffy juicy tender raw
        sticky thick thin flaky glossy shiny crumbly moist dry wet
    """,
    "adjectives": """
        hot cold fresh ripe sweet sour salty bitter spicy savory savoury delicious tasty
        big small large little tiny huge round square long short tall flat deep shallow
        whole clean dirty new old homemade rustic simple plain fancy beautiful neat messy
        steaming frozen cooked uncooked finished ready golden brown charred caramelized
        close view photo overhead kitchen food meal breakfast lunch dinner dessert recipe
        step ingredient
    """,
}

#: The words the tiny tokenizers keep as single tokens (lower case, letters only, no duplicates).
COOKING_WORDS: tuple[str, ...] = tuple(
    dict.fromkeys(word for group in _WORD_GROUPS.values() for word in group.split())
)

#: Longest T5 prompt, in tokens, the tiny Flux text encoder is built for. Pass it as
#: ``max_sequence_length`` to a ``tiny_flux()`` pipeline (FluxPipeline defaults to 512).
#: T5 has no position table, only relative-position buckets, so longer sequences still
#: run; beyond this distance all positions share the last bucket.
TINY_T5_MAX_LENGTH = 64

#: CLIP's position table, as in the real CLIP: 77 tokens including the start and end tokens.
#: The tiny CLIP text encoder of ``cooklab.models`` is built for it.
TINY_CLIP_MAX_LENGTH = 77

_CLIP_BOS, _CLIP_EOS = "<|startoftext|>", "<|endoftext|>"
_END_OF_WORD = "</w>"  # CLIP's BPE marks the last symbol of every word with this suffix


def tiny_clip_tokenizer(words: Sequence[str] = COOKING_WORDS, max_length: int = TINY_CLIP_MAX_LENGTH) -> CLIPTokenizer:
    """Build a CLIP byte-level BPE tokenizer in memory (no files).

    * Alphabet: the 256 byte-level symbols, each also in an end-of-word form
      (``"a</w>"``), so any UTF-8 text can be tokenized: an unknown word falls
      back to one token per byte.
    * Merges: every word of ``COOKING_WORDS`` is built from its end, one
      character at a time (``"l</w>"`` -> ``"wl</w>"`` -> ``"owl</w>"`` ->
      ``"bowl</w>"``). Each merge joins a single character to a token that ends
      a word, so a word has only one mergeable pair at any moment and the order
      of the merges never matters: vocabulary words always become one token,
      and unknown words keep their longest known ending (``"xbowl"`` ->
      ``"x"``, ``"bowl</w>"``).

    ``model_max_length`` is 77, like the real CLIP tokenizer. ``words`` and ``max_length``
    build another vocabulary the same way (the Toy Kitchen's tokenizers).
    """
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())  # 256 symbols
    vocab = {symbol: index for index, symbol in enumerate(alphabet)}
    for symbol in alphabet:
        vocab[symbol + _END_OF_WORD] = len(vocab)
    merges = []
    for word in words:
        ending = word[-1] + _END_OF_WORD
        for char in reversed(word[:-1]):
            merged = char + ending
            if merged not in vocab:
                vocab[merged] = len(vocab)
                merges.append((char, ending))
            ending = merged
    vocab[_CLIP_BOS] = len(vocab)
    vocab[_CLIP_EOS] = len(vocab)
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=max_length)
    assert len(tokenizer) > 2, "in-memory CLIP tokenizer came out empty"
    return tokenizer


def tiny_t5_tokenizer(words: Sequence[str] = COOKING_WORDS, max_length: int = TINY_T5_MAX_LENGTH) -> T5Tokenizer:
    """Build a T5 unigram tokenizer in memory (no files).

    Pieces are the three special tokens, the word-start marker ``"▁"``, single
    characters (ASCII letters of both cases, digits, punctuation, accented Latin
    letters) and ``"▁" + word`` for every word of ``COOKING_WORDS``. Unigram
    picks the segmentation with the highest total score, and a whole word
    (score -5) beats spelling it out (-3 for ``"▁"`` and -6 per character).
    Other characters (emoji, CJK ...) become ``<unk>``. Like the real T5
    tokenizer it is case sensitive and has no start token; it appends ``</s>``.
    """
    specials = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]  # ids 0, 1, 2 as in T5
    latin = [chr(code) for code in range(0xC0, 0x100) if chr(code) not in "×÷"]
    chars = string.ascii_letters + string.digits + string.punctuation + "".join(latin)
    pieces = specials + [("▁", -3.0)]
    pieces += [(char, -6.0) for char in chars]
    pieces += [("▁" + word, -5.0) for word in words]
    tokenizer = T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=max_length)
    assert len(tokenizer) > 2, "in-memory T5 tokenizer came out empty"
    return tokenizer
