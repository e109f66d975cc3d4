"""The Toy Kitchen world: scene states, a deterministic top-down renderer and per-pixel truth.

A ``Scene`` is everything the renderer needs: one container (kind, colour, pattern, where it
stands), the table it stands on, and the ingredients in it, each in one visual state. Rendering
is a pure function of ``(scene, size)``: shapes are laid out by ``numpy.random.default_rng``
seeded from ``scene.layout_seed`` and drawn with PIL without anti-aliasing, so every pixel
holds an exact palette colour and the label map (which object owns each pixel) is exact too.

Coordinates are designed on a 64 x 64 grid and scaled to ``size``.

Palette (RGB). Container colours are chosen far from every ingredient colour, raw or cooked,
so that a nearest-colour oracle can tell them apart (``palette_distances`` checks it):

* containers: blue, teal, pink, purple, black -- each drawn in three shades (rim, inside,
  pattern) that the oracle maps back to one colour name;
* ingredients: carrot, tomato, egg, rice, broccoli, onion, meat -- raw, and a cooked shade;
* tables: wood, mint, linen.

World v3 (``recipes_v3.py``) adds one field: ``Ingredient.cut``, the cut shape a *cooked* ingredient keeps
(a diced carrot, fried, is still small cubes -- drawn as cubes in the cooked shade). ``cut=None`` is the old
world's cooked food (cubes in the cooked shade), so every scene of the old world renders bit for bit as before.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import PIL.Image
import PIL.ImageDraw

from ..errors import ConfigError

GRID = 64  # the design grid; drawing scales it to the requested size
POSITION_JITTER = 6  # a container's centre lies at most this many grid cells from the middle, in x and in y

CONTAINERS = ("bowl", "pot", "pan", "plate", "board")
CONTAINER_COLOURS = {
    "blue": (30, 80, 220),
    "teal": (0, 150, 140),
    "pink": (240, 90, 190),
    "purple": (110, 30, 150),
    "black": (35, 35, 40),
}
PATTERNS = ("plain", "striped", "dotted")
TABLES = {"wood": (185, 135, 80), "mint": (160, 225, 190), "linen": (225, 215, 190)}
INGREDIENTS = {
    "carrot": (250, 130, 10),
    "tomato": (215, 20, 30),
    "egg": (250, 220, 60),
    "rice": (250, 250, 245),
    "broccoli": (40, 160, 40),
    "onion": (200, 160, 235),
    "meat": (200, 80, 100),
}
STATES = ("whole", "diced", "sliced", "cooked", "mixed")
#: states each ingredient can be in (rice is never whole-sliced; everything can be cooked and mixed)
ALLOWED_STATES = {
    "carrot": ("whole", "diced", "sliced", "cooked", "mixed"),
    "tomato": ("whole", "diced", "sliced", "cooked", "mixed"),
    "egg": ("whole", "sliced", "cooked", "mixed"),
    "rice": ("whole", "cooked", "mixed"),
    "broccoli": ("whole", "diced", "cooked", "mixed"),
    "onion": ("whole", "diced", "sliced", "cooked", "mixed"),
    "meat": ("whole", "diced", "sliced", "cooked", "mixed"),
}
MAX_INGREDIENTS = 3

_BROWN = np.array((90, 45, 15))


def _shade(rgb, towards, t: float) -> tuple[int, int, int]:
    a = np.asarray(rgb, dtype=float)
    b = np.asarray(towards, dtype=float)
    return tuple(int(round(v)) for v in (1 - t) * a + t * b)


_PATTERN_SHADE = {  # the pattern is drawn in a shade of the container colour that no other object uses
    "blue": lambda c: _shade(c, (255, 255, 255), 0.4),
    "teal": lambda c: _shade(c, (255, 255, 255), 0.4),
    "pink": lambda c: _shade(c, (0, 0, 0), 0.4),
    "purple": lambda c: _shade(c, (0, 0, 0), 0.4),
    "black": lambda c: _shade(c, (255, 255, 255), 0.15),
}
_COOKED = {"egg": 0.25}  # how far towards brown cooking pulls the colour (default 0.45)


def container_shades(colour: str) -> dict[str, tuple[int, int, int]]:
    """The three shades a container of ``colour`` is drawn in: rim, inside, pattern."""
    base = CONTAINER_COLOURS[colour]
    return {
        "rim": base,
        "inside": _shade(base, (255, 255, 255), 0.25),
        "pattern": _PATTERN_SHADE[colour](base),
    }


def cooked_colour(ingredient: str) -> tuple[int, int, int]:
    """A cooked ingredient is its raw colour pulled 45 % towards brown (egg 25 %: it stays yellow)."""
    return _shade(INGREDIENTS[ingredient], _BROWN, _COOKED.get(ingredient, 0.45))


def palette() -> dict[str, tuple[int, int, int]]:
    """Every colour the renderer paints, keyed ``container:<colour>:<shade>``, ``ingredient:<name>:raw|cooked``,
    ``table:<name>``."""
    out = {}
    for colour in CONTAINER_COLOURS:
        for shade, rgb in container_shades(colour).items():
            out[f"container:{colour}:{shade}"] = rgb
    for name, rgb in INGREDIENTS.items():
        out[f"ingredient:{name}:raw"] = rgb
        out[f"ingredient:{name}:cooked"] = cooked_colour(name)
    for name, rgb in TABLES.items():
        out[f"table:{name}:plain"] = rgb
        out[f"table:{name}:grain"] = table_grain(name)
    return out


def table_grain(table: str) -> tuple[int, int, int]:
    """The darker shade of the table's texture (planks, speckles, weave)."""
    return _shade(TABLES[table], (0, 0, 0), 0.12)


def palette_distances() -> list[tuple[float, str, str]]:
    """Euclidean RGB distance of every pair of palette entries that belong to different objects, closest first."""
    entries = palette()
    pairs = []
    for (a, ca), (b, cb) in itertools.combinations(entries.items(), 2):
        if a.rsplit(":", 1)[0] == b.rsplit(":", 1)[0]:
            continue  # shades of one object
        pairs.append((float(np.linalg.norm(np.subtract(ca, cb))), a, b))
    return sorted(pairs)


@dataclass(frozen=True)
class Ingredient:
    """One ingredient in the container, in one visual state.

    ``cut`` (world v3) is the shape a cooked ingredient kept from before cooking: ``Ingredient("carrot",
    "cooked", cut="diced")`` is drawn as the diced carrot's cubes in the cooked shade, ``cut="whole"`` as whole
    carrots in the cooked shade. Only cooked food has a cut; ``None`` is the old world's cooked food (cubes).
    """

    name: str
    state: str = "whole"
    cut: str | None = None

    def __post_init__(self):
        if self.name not in INGREDIENTS:
            raise ConfigError(f"unknown ingredient {self.name!r}: choose one of {sorted(INGREDIENTS)}.")
        if self.state not in ALLOWED_STATES[self.name]:
            raise ConfigError(
                f"{self.name} cannot be {self.state!r}: choose one of {list(ALLOWED_STATES[self.name])}."
            )
        if self.cut is not None:
            cuts = [s for s in ALLOWED_STATES[self.name] if s != "cooked"]
            if self.state != "cooked":
                raise ConfigError(
                    f"{self.name} is {self.state!r} with cut={self.cut!r}: only cooked food keeps a cut; "
                    f"use state={self.cut!r} for the raw shape, or cut=None."
                )
            if self.cut not in cuts:
                raise ConfigError(f"a cooked {self.name} cannot keep the cut {self.cut!r}: choose one of {cuts}.")

    @property
    def shape(self) -> str:
        """The shape the renderer draws: the cut a cooked ingredient kept, else its state (``"cooked"``: cubes)."""
        return self.cut or self.state


@dataclass(frozen=True)
class Scene:
    """What is on the table. Everything the renderer draws follows from these fields."""

    container: str = "bowl"
    colour: str = "blue"
    pattern: str = "plain"
    table: str = "wood"
    position: tuple[int, int] = (32, 32)  # container centre on the 64 x 64 design grid (x, y)
    ingredients: tuple[Ingredient, ...] = ()
    layout_seed: int = 0  # where the pieces of food lie
    show_container: bool = True

    def __post_init__(self):
        for value, allowed, what in (
            (self.container, CONTAINERS, "container"),
            (self.colour, CONTAINER_COLOURS, "colour"),
            (self.pattern, PATTERNS, "pattern"),
            (self.table, TABLES, "table"),
        ):
            if value not in allowed:
                raise ConfigError(f"unknown {what} {value!r}: choose one of {sorted(allowed)}.")
        names = [i.name for i in self.ingredients]
        if len(set(names)) != len(names):
            raise ConfigError(f"an ingredient appears twice in {names}: merge them into one entry.")
        if len(names) > MAX_INGREDIENTS:
            raise ConfigError(f"{len(names)} ingredients: a toy scene holds at most {MAX_INGREDIENTS}.")

    def ingredient(self, name: str) -> Ingredient | None:
        return next((i for i in self.ingredients if i.name == name), None)


def random_position(rng: np.random.Generator) -> tuple[int, int]:
    """A container centre (x, y) on the design grid: the middle, jittered by up to ``POSITION_JITTER`` cells each
    way."""
    return int(32 + rng.integers(-POSITION_JITTER, POSITION_JITTER + 1)), int(
        32 + rng.integers(-POSITION_JITTER, POSITION_JITTER + 1)
    )


def random_scene(rng: np.random.Generator, exclude=frozenset()) -> Scene:
    """A random scene; ``exclude`` holds (colour, container, ingredient) triples that must not occur."""
    while True:
        kind = CONTAINERS[rng.integers(len(CONTAINERS))]
        colour = list(CONTAINER_COLOURS)[rng.integers(len(CONTAINER_COLOURS))]
        k = int(rng.choice([0, 1, 1, 2, 2, 3]))
        names = rng.choice(list(INGREDIENTS), size=k, replace=False)
        if any((colour, kind, n) in exclude for n in names):
            continue
        ingredients = tuple(Ingredient(str(n), str(rng.choice(ALLOWED_STATES[str(n)]))) for n in names)
        return Scene(
            container=kind,
            colour=colour,
            pattern=PATTERNS[rng.integers(len(PATTERNS))],
            table=list(TABLES)[rng.integers(len(TABLES))],
            position=random_position(rng),
            ingredients=ingredients,
            layout_seed=int(rng.integers(2**31)),
        )


# ---------------------------------------------------------------------------
# Geometry of the containers (design grid): the outline and the area food may occupy
# ---------------------------------------------------------------------------

_RADIUS = {"bowl": 20, "pot": 19, "pan": 18, "plate": 23}  # round containers; the board is a rectangle
_BOARD_HALF = (20, 15)  # half width, half height


@dataclass
class Rendered:
    """One rendered scene: the picture and which object owns every pixel."""

    image: PIL.Image.Image
    labels: np.ndarray  # [H, W] int: 0 table, 1 container, 2 + i the i-th ingredient of the scene
    scene: Scene
    names: list[str] = field(default_factory=list)  # label -> name: ["table", "container", *ingredients]

    def mask(self, what: str) -> np.ndarray:
        """Boolean [H, W] mask of ``"table"``, ``"container"`` (rim and everything inside it) or an ingredient name."""
        if what == "container":
            return self.labels >= 1
        if what not in self.names:
            return np.zeros(self.labels.shape, dtype=bool)
        return self.labels == self.names.index(what)


class _Canvas:
    """Draws on the picture and the label map at once, on the design grid scaled by ``s``."""

    def __init__(self, size: int, fill, label: int):
        self.s = size / GRID
        self.image = PIL.Image.new("RGB", (size, size), tuple(fill))
        self.labels = PIL.Image.new("L", (size, size), label)
        self.draws = (PIL.ImageDraw.Draw(self.image), PIL.ImageDraw.Draw(self.labels))

    def _box(self, cx, cy, rx, ry):
        s = self.s
        x0, y0 = (cx - rx) * s, (cy - ry) * s
        return [x0, y0, max(x0, (cx + rx) * s - 1), max(y0, (cy + ry) * s - 1)]  # at least one pixel

    def ellipse(self, cx, cy, rx, ry, rgb, label):
        d, m = self.draws
        d.ellipse(self._box(cx, cy, rx, ry), fill=tuple(rgb))
        m.ellipse(self._box(cx, cy, rx, ry), fill=label)

    def rect(self, cx, cy, rx, ry, rgb, label):
        d, m = self.draws
        d.rectangle(self._box(cx, cy, rx, ry), fill=tuple(rgb))
        m.rectangle(self._box(cx, cy, rx, ry), fill=label)

    def polygon(self, points, rgb, label):
        pts = [(x * self.s, y * self.s) for x, y in points]
        d, m = self.draws
        d.polygon(pts, fill=tuple(rgb))
        m.polygon(pts, fill=label)


def _draw_container(c: _Canvas, scene: Scene) -> tuple[float, float, float, float]:
    """Draw the container; return the area food may use: (cx, cy, half width, half height)."""
    shades = container_shades(scene.colour)
    cx, cy = scene.position
    rim, inside, pat = shades["rim"], shades["inside"], shades["pattern"]
    if scene.container == "board":
        hx, hy = _BOARD_HALF
        c.rect(cx, cy, hx, hy, rim, 1)
        c.ellipse(cx + hx - 5, cy - hy + 4, 1.5, 1.5, TABLES[scene.table], 0)  # hanging hole
        if scene.pattern == "striped":
            for x in range(-hx + 3, hx - 2, 6):
                c.rect(cx + x, cy, 0.5, hy - 1, pat, 1)
        elif scene.pattern == "dotted":
            for x, y in itertools.product(range(-hx + 3, hx - 2, 6), (-hy + 2, hy - 2)):
                c.ellipse(cx + x, cy + y, 1, 1, pat, 1)
        return cx, cy + 1, hx - 5, hy - 5
    r = _RADIUS[scene.container]
    if scene.container == "pot":  # two handles
        c.rect(cx - r - 2, cy, 3, 3, rim, 1)
        c.rect(cx + r + 2, cy, 3, 3, rim, 1)
    if scene.container == "pan":  # a long handle to the right
        c.rect(cx + r + 6, cy, 7, 2, rim, 1)
    c.ellipse(cx, cy, r, r, rim, 1)
    band = 2 if scene.container == "plate" else 3
    if scene.pattern == "striped":  # radial stripes across the rim
        for a in np.linspace(0, 2 * np.pi, 12, endpoint=False):
            ux, uy = np.cos(a), np.sin(a)
            px, py = -uy * 0.8, ux * 0.8
            c.polygon(
                [
                    (cx + ux * (r - band) + px, cy + uy * (r - band) + py),
                    (cx + ux * r + px, cy + uy * r + py),
                    (cx + ux * r - px, cy + uy * r - py),
                    (cx + ux * (r - band) - px, cy + uy * (r - band) - py),
                ],
                pat,
                1,
            )
    elif scene.pattern == "dotted":
        for a in np.linspace(0, 2 * np.pi, 10, endpoint=False):
            c.ellipse(cx + np.cos(a) * (r - band / 2), cy + np.sin(a) * (r - band / 2), 1, 1, pat, 1)
    c.ellipse(cx, cy, r - band, r - band, inside, 1)
    inner = (r - band - 3) / np.sqrt(2) * 1.25
    return cx, cy, inner, inner


def _spots(rng, area, n, margin):
    cx, cy, hx, hy = area
    xs = rng.uniform(cx - hx + margin, cx + hx - margin, n)
    ys = rng.uniform(cy - hy + margin, cy + hy - margin, n)
    return list(zip(xs, ys))


def _draw_ingredient(c: _Canvas, ing: Ingredient, label: int, area, rng: np.random.Generator, slot: int, n_slots: int):
    """Draw one ingredient in its state inside ``area``; ``slot`` spreads several ingredients apart."""
    raw = INGREDIENTS[ing.name]
    colour = cooked_colour(ing.name) if ing.state == "cooked" else raw
    shape = ing.shape  # the state, or the cut a cooked ingredient kept (world v3)
    cx, cy, hx, hy = area
    if shape != "mixed" and n_slots > 1:  # each ingredient keeps to a sector of the container
        a = 2 * np.pi * (slot + rng.uniform(-0.15, 0.15)) / n_slots + rng.uniform(0, 0.3)
        cx, cy = cx + np.cos(a) * hx * 0.45, cy + np.sin(a) * hy * 0.45
        hx, hy = hx * 0.6, hy * 0.6
    sub = (cx, cy, hx, hy)
    if shape == "whole":
        if ing.name == "rice":  # a heap of grains
            for x, y in _spots(rng, (cx, cy, min(hx, 7), min(hy, 7)), 40, 0):
                c.rect(x, y, 0.6, 0.6, colour, label)
        elif ing.name == "carrot":
            for x, y in _spots(rng, sub, 2, 3):
                ang = rng.uniform(0, np.pi)
                ux, uy = np.cos(ang) * 6, np.sin(ang) * 6
                px, py = -np.sin(ang) * 1.8, np.cos(ang) * 1.8
                c.polygon([(x - ux + px, y - uy + py), (x + ux, y + uy), (x - ux - px, y - uy - py)], colour, label)
        elif ing.name == "broccoli":
            for x, y in _spots(rng, sub, 2, 3):
                for dx, dy in ((-2, -1), (2, -1), (0, -3), (0, 1)):
                    c.ellipse(x + dx, y + dy, 2.2, 2.2, colour, label)
        elif ing.name == "meat":
            x, y = _spots(rng, sub, 1, 5)[0]
            c.ellipse(x, y, 7, 5, colour, label)
        else:  # tomato, egg, onion: round things
            for x, y in _spots(rng, sub, 2, 4):
                c.ellipse(x, y, 4.5, 4 if ing.name == "egg" else 4.5, colour, label)
    elif shape in ("diced", "cooked"):
        size = 0.6 if ing.name == "rice" else 1.4
        for x, y in _spots(rng, sub, 40 if ing.name == "rice" else 12, 1.5):
            c.rect(x, y, size, size, colour, label)
    elif shape == "sliced":
        for x, y in _spots(rng, sub, 6, 2.5):
            if ing.name == "meat":
                c.rect(x, y, 3.5, 1.2, colour, label)
            else:
                c.ellipse(x, y, 2.5, 2.5, colour, label)
    elif shape == "mixed":  # small bits spread over the whole container
        for x, y in _spots(rng, area, 26, 1):
            c.rect(x, y, 0.8, 0.8, colour, label)


def render(scene: Scene, size: int = GRID) -> Rendered:
    """Draw ``scene`` as a ``size`` x ``size`` RGB picture with its label map (deterministic)."""
    if size < 16 or size % 16:
        raise ConfigError(
            f"size {size}: the toy kitchen renders at a multiple of 16 pixels, at least 16 (64 is the training size)."
        )
    rng = np.random.default_rng(scene.layout_seed)
    c = _Canvas(size, TABLES[scene.table], 0)
    # a little texture on the table (planks, speckles, weave) in a shade of the table colour
    table_dark = table_grain(scene.table)
    if scene.table == "wood":
        for y in range(5, GRID, 11):
            c.rect(GRID / 2, y, GRID / 2, 0.4, table_dark, 0)
    elif scene.table == "linen":
        for x in range(4, GRID, 8):
            c.rect(x, GRID / 2, 0.4, GRID / 2, table_dark, 0)
    else:
        for x, y in zip(rng.uniform(0, GRID, 30), rng.uniform(0, GRID, 30)):
            c.rect(x, y, 0.5, 0.5, table_dark, 0)
    names = ["table", "container", *(i.name for i in scene.ingredients)]
    if scene.show_container:
        area = _draw_container(c, scene)
        food_rng = np.random.default_rng(scene.layout_seed + 1)
        n = len(scene.ingredients)
        for slot, ing in enumerate(scene.ingredients):
            _draw_ingredient(c, ing, 2 + slot, area, food_rng, slot, n)
    return Rendered(c.image, np.asarray(c.labels, dtype=np.int64), scene, names)
