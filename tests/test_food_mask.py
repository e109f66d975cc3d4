"""The oracle's public food mask (``oracle.food_mask``): the pixels it reads as one ingredient's food.

Pinned on a hand-painted picture (every pixel's owner known by construction) and on rendered scenes,
where it must equal the renderer's own label map (``Rendered.mask(name)``) pixel for pixel.
"""

import numpy as np
import pytest

from cooklab.toykitchen import oracle as O
from cooklab.toykitchen import render
from cooklab.toykitchen.world import INGREDIENTS, palette, random_scene


def _painted() -> tuple[np.ndarray, np.ndarray]:
    """A 64 x 64 picture: wood table, a blue square container (rows/cols 12..51), inside it raw carrot at rows
    20..25, cols 20..25 and cooked carrot at rows 40..43, cols 30..33, tomato at rows 30..33, cols 40..43; a raw
    carrot square on the table (rows 2..5, cols 2..5), outside the container. Returns (picture, carrot truth)."""
    pal = palette()
    img = np.zeros((64, 64, 3), np.uint8)
    img[:] = pal["table:wood:plain"]
    img[12:52, 12:52] = pal["container:blue:rim"]
    img[15:49, 15:49] = pal["container:blue:inside"]
    img[20:26, 20:26] = pal["ingredient:carrot:raw"]
    img[40:44, 30:34] = pal["ingredient:carrot:cooked"]
    img[30:34, 40:44] = pal["ingredient:tomato:raw"]
    img[2:6, 2:6] = pal["ingredient:carrot:raw"]  # on the table: not the container's food
    truth = np.zeros((64, 64), bool)
    truth[20:26, 20:26] = True
    truth[40:44, 30:34] = True
    return img, truth


def test_food_mask_of_a_painted_picture_is_its_raw_and_cooked_pixels_inside_the_container():
    img, carrot = _painted()
    assert np.array_equal(O.food_mask(img, "carrot"), carrot)  # 36 raw + 16 cooked, the table's square left out
    tomato = np.zeros((64, 64), bool)
    tomato[30:34, 40:44] = True
    assert np.array_equal(O.food_mask(img, "tomato"), tomato)
    assert not O.food_mask(img, "rice").any()
    assert O.food_mask(img, "carrot").sum() == O.ingredient_pixels(img)["carrot"] == 52


def test_food_mask_equals_the_renderers_labels_on_rendered_scenes():
    for seed in range(60):
        rendered = render(random_scene(np.random.default_rng(seed)))
        reading = O.read(rendered.image)
        for name in INGREDIENTS:
            assert np.array_equal(O.food_mask(reading, name), rendered.mask(name)), (seed, name)


def test_food_mask_names_an_unknown_ingredient():
    with pytest.raises(ValueError, match="unknown ingredient 'cheese'"):
        O.food_mask(np.zeros((64, 64, 3), np.uint8), "cheese")
