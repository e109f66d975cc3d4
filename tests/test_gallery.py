"""cooklab gallery: the ablation rows are the pipelines' own outputs, the screenshots are copied small, the page links
both."""

import json
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

from cooklab.errors import ConfigError
from cooklab.gallery import ABLATIONS, GalleryConfig, _ablation_rows, write_gallery


def _fake_screenshots(root: Path) -> None:
    rng = np.random.default_rng(0)
    shots = root / "04_flexible_rope"
    shots.mkdir(parents=True)
    for state, colour in (("on", (200, 40, 30)), ("off", (30, 40, 200))):  # each state its own colour, and texture
        picture = np.clip(rng.integers(-20, 20, (300, 1400, 3)) + colour, 0, 255).astype(np.uint8)
        PIL.Image.fromarray(picture).save(shots / f"explorer0_{state}.png")
    PIL.Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(shots / "explorer0_after.png")  # not shown
    PIL.Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(shots / "explorer1_on.png")  # no off: left out
    record = [{"explorer": 0, "toggle": "mechanism toggle -> global ids", "change": 0.0423, "minimum": 0.02}]
    record[0] |= {"per_figure": [0.0423, 0.0051], "resized": [1]}
    (shots / "changes.json").write_text(json.dumps(record))
    (root / "09_empty").mkdir()  # a notebook folder without screenshots is left out


@pytest.mark.slow  # the trained Toy Kitchen models
@pytest.mark.filterwarnings("ignore:.*fall on the same timestep")  # 2 denoising steps: region-aware noise is uniform
def test_gallery_page_images_and_screenshots(tmp_path):
    _fake_screenshots(tmp_path / "shots")
    config = GalleryConfig(out=tmp_path / "docs", screenshots=tmp_path / "shots", steps=2)
    page = write_gallery(config)
    text = page.read_text()
    for pipeline, ablations in ABLATIONS.items():
        name = f"img/gallery/ablations_{pipeline.replace('-', '_')}.png"
        assert f"]({name})" in text
        assert PIL.Image.open(tmp_path / "docs" / name).width > 500
        for ablation in ablations:
            assert f"- {ablation.label}: " in text and "(oracle)" in text
    assert config.notebooks == ["04_flexible_rope"]
    copied = {}
    for state in ("on", "off"):
        shot = PIL.Image.open(tmp_path / "docs" / f"img/gallery/04_flexible_rope_explorer0_{state}.png")
        assert shot.size == (1000, 214) and shot.mode == "P"  # downscaled, 256 colours
        assert (
            f"![04_flexible_rope: explorer 0, mechanism {state}](img/gallery/04_flexible_rope_explorer0_{state}.png)"
            in text
        )
        copied[state] = np.asarray(shot.convert("RGB"), dtype=np.float32)
        source = PIL.Image.open(tmp_path / "shots" / "04_flexible_rope" / f"explorer0_{state}.png").resize((1000, 214))
        assert np.abs(copied[state] - np.asarray(source, dtype=np.float32)).mean() < 15  # this state's own picture
    assert "mechanism toggle -> global ids: the figures changed by a mean |pixel difference| of 0.042" in text
    assert "requires at least 0.02); figure by figure 0.042, 0.005; figure 2 changed size." in text
    assert "explorer0_after" not in text and "explorer1" not in text and "09_empty" not in text


@pytest.mark.slow
def test_gallery_rows_are_the_pipelines_outputs(tmp_path):
    """Each row's frames are exactly what the pipeline makes with that ablation's switches (rows not mixed up)."""
    from cooklab import load_recipe
    from cooklab.recipe import DEMO_RECIPE, resolve_recipe
    from cooklab.runs import load_pipeline, one_thread

    config = GalleryConfig(steps=1, pipelines=("cookanything",))
    recipe = load_recipe(resolve_recipe(DEMO_RECIPE))
    rows = _ablation_rows("cookanything", recipe, config, device=None)
    pipe = load_pipeline("cookanything", "toy", 0, None)
    labels = [ablation.label for ablation in ABLATIONS["cookanything"]]
    assert [row[0] for row in rows] == labels
    for ablation, (_, images, _) in zip(ABLATIONS["cookanything"], rows):
        with one_thread():
            expected = pipe(
                recipe,
                seed=0,
                num_inference_steps=1,
                height=64,
                width=64,
                true_cfg_scale=3.0,
                progress=False,
                **ablation.call,
            ).images
        assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(images, expected)), ablation.name
    # switching a mechanism off changes the pictures
    assert not np.array_equal(np.asarray(rows[0][1][1]), np.asarray(rows[1][1][1]))


def test_gallery_config_errors(tmp_path, capsys):
    from cooklab.cli import main

    assert main(["gallery", "--steps", "0", "--out", str(tmp_path)]) == 2
    assert "use at least 1 denoising step" in capsys.readouterr().err
    assert not (tmp_path / "gallery.md").exists()
    with pytest.raises(ConfigError, match="unknown pipeline"):
        GalleryConfig(pipelines=("stable-cascade",))
    with pytest.raises(ConfigError, match="at least 1 denoising step"):
        GalleryConfig(steps=0)
