"""The rule planner's lexicon: the words it knows, as data (the rules are in ``rules.py``).

Every entry is lower-case and singular; ``rules.py`` adds the plurals and matches whole
word tokens, so "pan" never matches inside "pancakes". What is here:

* containers: ``CONTAINER_NAMES`` (phrase -> canonical name), ``TOOLS`` (phrases that
  contain a container word but are not containers), ``DEFAULT_LOOKS`` (the look of a
  container whose recipe never says), ``SURFACES`` (food sits *on* these), ``DISH_BOWLS``;
* words around a container: determiners, ``NEW_CONTAINER_WORDS`` ("another", "second"),
  look words by kind (``SIZES``, ``SHAPES``, ``COLOURS``, ``MATERIALS``), words to skip,
  and the prepositions that make it a source or a neighbour (``SOURCE_OR_SIDE``);
* ingredients: ``INGREDIENTS`` (about 300, comma-separated), the ``STATE_ADJECTIVES``
  that describe them and the words skipped to find those;
* verbs: ``VERB_STATES`` (verb -> the state it leaves an ingredient in, or None), and the
  verb groups the rules treat specially (mixing, setup, cutting);
* prepositions that end a verb's scope or name a place.
"""

# Container phrase -> canonical name. "bowl", "pot" and "pan" are named by rules._name_container.
CONTAINER_NAMES = {
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
TOOLS = ("stick blender", "hand blender", "immersion blender", "hand mixer", "glass of water")

DETERMINERS_DEFINITE = {"the", "this", "that", "your", "same"}
DETERMINERS_INDEFINITE = {"a", "an", "another", "one"}
NEW_CONTAINER_WORDS = {"another", "second", "third", "other", "separate", "clean", "new", "fresh"}
# Container attribute words, by kind; colours and materials next to each other form one phrase.
SIZES = {
    "large",
    "big",
    "small",
    "little",
    "medium",
    "mini",
    "wide",
    "deep",
    "shallow",
    "tall",
    "heavy",
    "flat",
    "narrow",
}
SHAPES = {"round", "oval", "square", "rectangular", "heart-shaped", "fluted", "rimmed"}
COLOURS = {
    "white", "black", "red", "blue", "green", "yellow", "orange", "grey", "gray", "brown", "silver", "golden",
    "cream", "pink", "purple", "navy", "turquoise", "dark", "light", "clear", "copper-coloured",
}  # fmt: skip
MATERIALS = {
    "glass", "ceramic", "porcelain", "stoneware", "earthenware", "terracotta", "enamel", "enamelled", "cast", "iron",
    "cast-iron", "stainless", "steel", "copper", "aluminium", "aluminum", "non-stick", "nonstick", "wooden", "wood",
    "bamboo", "marble", "plastic", "metal", "silicone", "carbon", "clay", "slate", "melamine", "tin", "wicker",
}  # fmt: skip
NORMALISE_ATTRIBUTE = {
    "smaller": "small",
    "larger": "large",
    "bigger": "large",
    "big": "large",
    "little": "small",
    "gray": "grey",
}
SKIPPABLE = {
    ",", "second", "third", "other", "separate", "clean", "new", "lined", "greased", "oiled", "lightly", "well",
    "hot", "heavy-based", "cold", "empty", "fresh", "prepared", "sturdy", "good",
}  # fmt: skip
# Prepositions before a container that make it *not* the step's container (where food comes from,
# what stands next to it).
SOURCE_OR_SIDE = {
    ("out", "of"),
    ("from",),
    ("off",),
    ("next", "to"),
    ("beside",),
    ("alongside",),
    ("with",),
    ("near",),
}

# What a container looks like when the recipe does not say (so every step describes it the same way).
DEFAULT_LOOKS = {
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
INGREDIENTS = """
onion, red onion, spring onion, shallot, garlic, garlic clove, leek, carrot, celery, potato, sweet potato, tomato,
cherry tomato, cucumber, courgette, zucchini, aubergine, eggplant, bell pepper, red pepper, green pepper, chilli,
chili, jalapeno, mushroom, spinach, lettuce, cabbage, kale, broccoli, cauliflower, pea, green pea, green bean, bean,
corn, sweetcorn, asparagus, beetroot, radish, pumpkin, squash, butternut squash, avocado, olive, black olive,
kalamata olive, ginger, lemongrass, fennel, artichoke, parsnip, turnip, okra, bean sprout, bok choy, pak choi, rocket,
arugula, watercress, edamame, chickpea, lentil, kidney bean, black bean, vegetable,
apple, banana, lemon, lime, orange, strawberry, blueberry, raspberry, blackberry, cherry, grape, peach, pear, plum,
mango, pineapple, kiwi, melon, watermelon, apricot, fig, raisin, sultana, cranberry, coconut, pomegranate, rhubarb,
berry, basil, basil leaf, coriander, coriander leaf, cilantro, parsley, mint, mint leaf, dill, thyme, rosemary, sage,
oregano, dried oregano, chive, bay leaf, cinnamon, nutmeg, cumin, paprika, smoked paprika, turmeric, chilli flake,
chili powder, curry powder, garam masala, black pepper, pepper, salt, sea salt, vanilla, vanilla extract, cardamom,
star anise, saffron, mustard, herb,
egg, egg yolk, egg white, milk, butter, cream, double cream, heavy cream, sour cream, creme fraiche, yogurt, yoghurt,
greek yogurt, cheese, cheddar, parmesan, mozzarella, feta, ricotta, goat cheese, cream cheese, mascarpone, halloumi,
buttermilk, condensed milk, curd,
beef, minced beef, ground beef, steak, pork, bacon, ham, sausage, chorizo, chicken, chicken breast, chicken thigh,
chicken wing, turkey, lamb, duck, meatball, salmon, tuna, cod, prawn, shrimp, mussel, squid, anchovy, tofu, tempeh,
meat, flour, plain flour, self-raising flour, bread flour, rice, cooked rice, basmati rice, risotto rice, pasta,
spaghetti, penne, macaroni, noodle, lasagne sheet, couscous, quinoa, oat, rolled oat, porridge oat, bread, toast,
breadcrumb, tortilla, tortilla chip, pita, bun, cracker, polenta, barley, cornflour, cornstarch,
sugar, brown sugar, white sugar, caster sugar, icing sugar, powdered sugar, baking powder, baking soda,
bicarbonate of soda, yeast, cocoa powder, chocolate, dark chocolate, milk chocolate, chocolate chip, honey,
maple syrup, golden syrup, jam, treacle, molasses, gelatine,
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

# Cooking verbs -> the state they leave an ingredient in (None: the verb does not change its look).
VERB_STATES = {
    "chop": "chopped", "dice": "diced", "slice": "sliced", "mince": "minced", "grate": "grated", "crush": "crushed",
    "peel": "peeled", "halve": "halved", "quarter": "quartered", "cube": "cubed", "shred": "shredded",
    "mash": "mashed", "melt": "melted", "beat": None, "whisk": None, "whip": "whipped", "knead": "kneaded",
    "toast": "toasted", "fry": "fried", "stir-fry": "stir-fried", "saute": "sauteed", "sear": "seared",
    "brown": "browned", "bake": "baked", "roast": "roasted", "grill": "grilled", "boil": "boiled", "poach": "poached",
    "steam": "steamed", "simmer": "simmered", "scramble": "scrambled", "caramelise": "caramelised",
    "caramelize": "caramelized", "soften": "softened", "blend": "blended", "puree": "pureed", "drain": "drained",
    "cook": "cooked", "heat": None, "cut": "sliced", "tear": "torn", "squeeze": "squeezed", "cream": "creamed",
    "add": None, "stir": None, "pour": None, "fold": None, "tip": None, "scoop": None, "spoon": None, "ladle": None,
    "scatter": None, "sprinkle": None, "drizzle": None, "top": None, "lay": None, "place": None, "put": None,
    "transfer": None, "serve": None, "set": None, "leave": None, "let": None, "cover": None, "bring": None,
    "lower": None, "flip": None, "turn": None, "toss": None, "stack": None, "move": None, "lift": None, "grease": None,
    "line": None, "preheat": None, "wash": None, "rinse": None, "spread": None, "garnish": None, "finish": None,
    "twirl": None, "press": None, "push": None, "crack": None, "combine": None, "mix": None, "season": None,
    "dust": None, "brush": None, "arrange": None, "smooth": None, "scrape": None, "remove": None, "reduce": None,
    "warm": None, "chill": None, "refrigerate": None, "freeze": None, "rest": None, "cool": None, "coat": None,
    "dip": None, "roll": None, "shape": None, "form": None, "divide": None, "fill": None, "wrap": None, "sift": None,
    "strain": None, "measure": None, "weigh": None, "prepare": None,
}  # fmt: skip
# Adjectives that give an ingredient's state ("diced onion", "cold cooked rice"), and words skipped to find them.
STATE_ADJECTIVES = {state for state in VERB_STATES.values() if state} | {
    "beaten",
    "whisked",
    "cooked",
    "dried",
    "frozen",
    "raw",
}
SKIP_BEFORE_INGREDIENT = {
    "finely", "thinly", "roughly", "coarsely", "lightly", "freshly", "well", "very", "ripe", "overripe", "fresh",
    "thick", "thin", "soft", "hot", "warm", "cold", "small", "large", "whole", "green", "red", "yellow", "white",
    "orange",
}  # fmt: skip
# Verbs after which a bowl is a mixing bowl.
MIXING_VERBS = {"whisk", "beat", "mix", "mash", "cream", "combine", "crack", "knead", "sift", "stir"}
# Verbs that start a new job: without a named container the step does not continue the previous one...
SETUP_VERBS = {"preheat", "wash", "rinse", "measure", "weigh", "prepare"}
# ... and cutting continues only on a cutting board.
CUTTING_VERBS = {"chop", "dice", "slice", "cut", "mince", "grate", "peel", "halve", "quarter", "cube", "shred"}
# Prepositions that end the scope of a verb ("fry the onion | in oil") and start a place ("into the batter").
PREPOSITIONS = {
    "in", "into", "on", "onto", "over", "with", "to", "until", "for", "from", "under", "through", "at", "around",
    "inside", "out", "by", "next", "beside",
}  # fmt: skip
SURFACES = {"board", "rack", "plate", "platter", "tray", "sheet", "griddle"}  # food sits on these, not in them
PLACE_PREPOSITIONS = {"into", "onto", "over", "to", "through", "in", "on"}
DISH_BOWLS = (
    ("soup", "soup bowl"),
    ("salad", "salad bowl"),
    ("pasta", "pasta bowl"),
    ("spaghetti", "pasta bowl"),
    ("noodle", "noodle bowl"),
)
