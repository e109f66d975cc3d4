"""The Toy Kitchen CLIP's generated frames (cooklab/toykitchen/generated.py): oracle captions, chunks that resume."""

import dataclasses

import numpy as np
import pytest

import cooklab
from cooklab.errors import ConfigError
from cooklab.toykitchen.dataset import HELD_OUT
from cooklab.toykitchen.generated import GeneratedConfig, chunk_prompts, generate_corpus, oracle_scene
from cooklab.toykitchen.world import Ingredient, Scene, random_scene, render


def test_the_oracle_scene_of_a_render_is_the_scene_it_shows():
    rng = np.random.default_rng(7)
    for _ in range(40):
        scene = random_scene(rng)
        seen = oracle_scene(render(scene).image, scene)
        assert seen.colour == scene.colour
        # food the oracle reads is food the scene holds (a render draws nothing else; occluded food may be missed)
        assert {i.name for i in seen.ingredients} <= {i.name for i in scene.ingredients}
        assert (seen.container, seen.pattern, seen.table, seen.position) == (
            scene.container,
            scene.pattern,
            scene.table,
            scene.position,
        )


def test_the_oracle_scene_follows_the_picture_not_the_prompt():
    drawn = Scene(container="pot", colour="pink", ingredients=(Ingredient("carrot", "diced"),), layout_seed=3)
    asked = dataclasses.replace(drawn, colour="blue", ingredients=(Ingredient("rice", "whole"),))
    seen = oracle_scene(render(drawn).image, asked)
    assert seen.colour == "pink" and [i.name for i in seen.ingredients] == ["carrot"]
    assert oracle_scene(render(dataclasses.replace(drawn, show_container=False, ingredients=())).image, asked) is None


def test_prompts_never_name_a_held_out_triple_and_are_deterministic():
    cfg = GeneratedConfig(frames=100, batch=50)
    scenes, prompts = chunk_prompts(cfg, model=1, chunk=1)
    assert len(scenes) == 50 and (scenes, prompts) == chunk_prompts(cfg, model=1, chunk=1)
    assert prompts != chunk_prompts(cfg, model=0, chunk=1)[1]
    assert not any((s.colour, s.container, i.name) in HELD_OUT for s in scenes for i in s.ingredients)


class Counting:
    """A pipeline that counts its calls (``evaluate.generate`` calls it as an SD pipeline)."""

    def __init__(self, pipe):
        self.pipe, self.calls = pipe, 0

    def __call__(self, **kwargs):
        self.calls += 1
        return self.pipe(**kwargs)


@pytest.mark.slow
def test_a_killed_corpus_resumes_without_redoing_a_chunk(tmp_path):
    cfg = GeneratedConfig(frames=5, batch=2, num_inference_steps=2)  # 3 chunks: 2 + 2 + 1 frames
    pipe = Counting(cooklab.models.toy_sd())
    full, stats = generate_corpus({"sd": pipe}, cfg, tmp_path / "a", progress=lambda _: None)
    assert pipe.calls == 3 and stats["sd"]["frames"] == 5 and stats["sd"]["kept"] == len(full)
    # a run killed after its first two chunks: the third is generated, the others are read
    (tmp_path / "b").mkdir()
    for k in (0, 1):
        (tmp_path / "b" / f"sd_{k:04d}.npz").write_bytes((tmp_path / "a" / f"sd_{k:04d}.npz").read_bytes())
    pipe.calls = 0
    resumed, _ = generate_corpus({"sd": pipe}, cfg, tmp_path / "b", progress=lambda _: None)
    assert pipe.calls == 1
    np.testing.assert_array_equal(resumed.images, full.images)
    assert resumed.scenes == full.scenes
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == [
        "sd_0000.npz",
        "sd_0001.npz",
        "sd_0002.npz",
    ]  # no temporary files
    with pytest.raises(ConfigError, match="delete"):
        generate_corpus({"sd": pipe}, dataclasses.replace(cfg, guidance=1.0), tmp_path / "b")
