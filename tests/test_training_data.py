"""Training pictures are paired with their steps in the natural order of their names (issue 26, finding 2).

Each picture is a flat colour whose red value is 20 x its true step number, so a pairing is read back from the
pixels, not from the code's own order."""

import pytest
from PIL import Image

from cooklab import ConfigError
from cooklab.training.config import DataSource
from cooklab.training.data import load_examples, natural_key, step_pictures

N = 11


def recipe_folder(root, names, steps=N):
    """root/r1 with steps.txt (``steps`` lines) and one picture per name; picture k (1-based) has red 20 k."""
    folder = root / "r1"
    folder.mkdir(parents=True)
    (folder / "steps.txt").write_text("".join(f"step number {k}\n" for k in range(1, steps + 1)))
    for k, name in enumerate(names, start=1):
        Image.new("RGB", (8, 8), (20 * k, 0, 0)).save(folder / name)
    return root


def paired_steps(root):
    """For each step in order, the true step number of the picture it got (from the picture's red value)."""
    (example,) = load_examples(DataSource(folder=root))
    return [round(im.getpixel((4, 4))[0] / 20) for im in example.images()]  # jpg / webp: red within +-10


@pytest.mark.parametrize(
    "pattern",
    ["{k}.jpg", "step_{k:02d}.png", "step_{k}.png", "Frame{k}.PNG", "{k:02d}_photo.webp", "recipe7_step{k}.png"],
)
def test_pictures_one_to_eleven_pair_with_steps_one_to_eleven(tmp_path, pattern):
    root = recipe_folder(tmp_path, [pattern.format(k=k) for k in range(1, N + 1)])
    assert paired_steps(root) == list(range(1, N + 1))  # lexicographic order gives step 2 -> 10.jpg


def test_the_natural_key_compares_numbers_as_numbers():
    names = ["10.jpg", "2.jpg", "1.jpg", "11.jpg"]
    assert sorted(names, key=natural_key) == ["1.jpg", "2.jpg", "10.jpg", "11.jpg"]
    assert natural_key("Step_10.JPG") == ("step_", 10, "")
    assert natural_key("a2b03") == ("a", 2, "b", 3, "")


@pytest.mark.parametrize(
    "names, message",
    [
        (["1.jpg", "01.png", "2.jpg"], "1.jpg and 01.png carry the same step number|01.png and 1.jpg carry the same"),
        (["step_1.png", "step_01.png", "step_2.png"], "carry the same step number"),
        (["1.jpg", "2.jpg", "cover.jpg"], r"\['cover.jpg'\] carry no step number"),
        (["step_1.png", "2.png", "step_3.png"], "differ before their first number"),
    ],
)
def test_names_that_leave_the_order_open_are_refused_with_the_fix(tmp_path, names, message):
    root = recipe_folder(tmp_path, names, steps=len(names))
    with pytest.raises(ConfigError, match=message) as error:
        load_examples(DataSource(folder=root))
    assert "r1" in str(error.value) and "step_01.png, step_02.png" in str(error.value)


def test_a_lone_picture_needs_no_number(tmp_path):
    folder = recipe_folder(tmp_path, ["photo.jpg"], steps=1) / "r1"
    assert [p.name for p in step_pictures(folder)] == ["photo.jpg"]
