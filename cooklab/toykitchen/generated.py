"""Generated Toy Kitchen frames, captioned by what the oracle reads in them: the Toy Kitchen CLIP's second source.

A CLIP trained on crisp renders alone does not transfer to the toy diffusion models' frames: they are
blurrier, their food is often a blend of colours, and -- what a metric must notice -- they often leave
out or swap the food their prompt names. So the CLIP also learns from frames the toy models drew,
each paired with captions of **what the frame shows**, not of what was asked for:

1. a prompt: a random training scene ``s`` (``world.random_scene``, no ``dataset.HELD_OUT`` triple)
   described by ``captions.random_caption(s)``, as the toy models were trained;
2. a frame ``x = G(prompt)`` from a toy pipeline (``evaluate.generate``: DDIM + CFG for SD,
   flow-matching Euler + true CFG for Flux);
3. the scene the oracle reads, ``s' = read(x, s)`` (``oracle_scene``): the container *colour* and the
   *ingredients present*, with their guessed *states*, come from the frame (``oracle.read``,
   ``ingredient_present``, ``ingredient_state``); what the oracle cannot read -- container kind,
   pattern, table -- is taken from the prompt's scene. A frame in which the oracle finds no container
   colour is left out.

Training draws a fresh ``random_caption(s')`` every time the frame is drawn (``training_captions.sample_captions``),
exactly as for renders. The prompts never name a held-out triple, and ``benchmarks/metric_agreement.py``
scores frames of held-out captions and of toy recipes (prompts of another kind), so the agreement it
measures is on frames the CLIP never saw.

Generation is the slow part (~0.7 s per frame on 2 CPU threads at 20 steps), so frames are written in
chunks of ``GeneratedConfig.batch`` to ``folder/{model}_{chunk:04d}.npz`` (atomically); a killed run
resumes at the first missing chunk.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError
from ..fileio import atomic_write
from .captions import random_caption
from .dataset import HELD_OUT, ToyDataset
from .oracle import ingredient_pixels, ingredient_state, min_ingredient_pixels, read
from .world import ALLOWED_STATES, MAX_INGREDIENTS, Ingredient, Scene, random_scene


@dataclass(frozen=True)
class GeneratedConfig:
    """How the generated half of the CLIP's data is drawn (recorded in each chunk; a chunk drawn otherwise is an
    error)."""

    frames: int = 1200  # frames per toy model
    seed: int = (
        0  # prompts of model m, chunk k: np.random.default_rng([seed, m, k]); noise: torch seed [seed, m, k] folded
    )
    num_inference_steps: int = 20
    guidance: float = 3.0  # CFG scale (true CFG for Flux)
    batch: int = 32  # frames per chunk (one pipeline call, one file)


def oracle_scene(frame, prompted: Scene) -> Scene | None:
    """The scene the oracle reads in ``frame``; kind, pattern, table and position from ``prompted``. None without a
    container.

    Ingredients: every one present (``oracle.min_ingredient_pixels``), the ``MAX_INGREDIENTS`` with
    the most pixels, in their guessed state (an ingredient's first allowed state when the guess is
    not one it can be in).
    """
    reading = read(frame)
    colour = reading.colour[0]
    if colour is None:
        return None
    pixels = ingredient_pixels(reading)  # {name: pixels}
    present = sorted(
        (n for n, p in pixels.items() if p >= min_ingredient_pixels(reading.shape)), key=lambda n: -pixels[n]
    )
    ingredients = []
    for name in present[:MAX_INGREDIENTS]:
        state = ingredient_state(reading, name)
        ingredients.append(Ingredient(name, state if state in ALLOWED_STATES[name] else ALLOWED_STATES[name][0]))
    return Scene(
        container=prompted.container,
        colour=colour,
        pattern=prompted.pattern,
        table=prompted.table,
        position=prompted.position,
        ingredients=tuple(ingredients),
        layout_seed=prompted.layout_seed,
    )


def chunk_prompts(cfg: GeneratedConfig, model: int, chunk: int) -> tuple[list[Scene], list[str]]:
    """The prompted scenes and prompts of one chunk (deterministic in ``cfg.seed``, the model's index and the
    chunk)."""
    rng = np.random.default_rng([cfg.seed, model, chunk])
    count = min(cfg.batch, cfg.frames - chunk * cfg.batch)
    scenes = [random_scene(rng, exclude=HELD_OUT) for _ in range(count)]
    return scenes, [random_caption(s, rng) for s in scenes]


def _scene_json(scene: Scene | None) -> str:
    return json.dumps(None if scene is None else asdict(scene))


def _scene_from_json(text: str) -> Scene | None:
    d = json.loads(text)
    if d is None:
        return None
    return Scene(
        **{**d, "position": tuple(d["position"]), "ingredients": tuple(Ingredient(**i) for i in d["ingredients"])}
    )


def _write_chunk(path: Path, cfg: GeneratedConfig, frames: np.ndarray, prompts: list[str], read_scenes) -> None:
    atomic_write(
        path,
        lambda f: np.savez_compressed(
            f,
            frames=frames,
            prompts=np.array(prompts),
            config=json.dumps(asdict(cfg)),
            scenes=np.array([_scene_json(s) for s in read_scenes]),
        ),
    )


def generate_corpus(pipes: dict, cfg: GeneratedConfig, folder: Path, progress=print) -> tuple[ToyDataset, dict]:
    """Frames of every toy pipeline in ``pipes`` (``{"sd": pipe, "flux": pipe}``), each with the scene the oracle
    reads.

    Returns the frames that show a container as a ``ToyDataset`` (images ``[n, 64, 64, 3]`` uint8,
    scenes = the oracle's scenes) and counts per model: frames drawn, kept, and how often the oracle's
    reading agrees with the scene the prompt was drawn from (colour; the ingredient set -- the prompt
    may leave an ingredient of the scene out).
    """
    from .evaluate import generate

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    images, scenes, stats = [], [], {}
    chunks = (cfg.frames + cfg.batch - 1) // cfg.batch
    for m, (name, pipe) in enumerate(pipes.items()):
        drawn = kept = colour_ok = food_same = 0
        for k in range(chunks):
            path = folder / f"{name}_{k:04d}.npz"
            prompted, prompts = chunk_prompts(cfg, m, k)
            if path.is_file():
                with np.load(path) as z:
                    if json.loads(str(z["config"])) != asdict(cfg):
                        raise ConfigError(
                            f"{path} was generated with {str(z['config'])}, not {asdict(cfg)}: "
                            f"delete {folder} (or train into another --out) to generate it again."
                        )
                    frames, read_scenes = z["frames"], [_scene_from_json(str(s)) for s in z["scenes"]]
            else:
                seed = (cfg.seed * 1000 + m) * 100_000 + k
                frames = generate(
                    pipe, prompts, torch.Generator().manual_seed(seed), cfg.num_inference_steps, cfg.guidance
                )
                read_scenes = [oracle_scene(f, s) for f, s in zip(frames, prompted)]
                _write_chunk(path, cfg, frames, prompts, read_scenes)
                progress(f"  generated {name} chunk {k + 1}/{chunks} ({len(frames)} frames)")
            for frame, truth, seen in zip(frames, prompted, read_scenes):
                drawn += 1
                if seen is None:
                    continue
                kept += 1
                colour_ok += seen.colour == truth.colour
                food_same += {i.name for i in seen.ingredients} == {i.name for i in truth.ingredients}
                images.append(frame)
                scenes.append(seen)
        stats[name] = dict(frames=drawn, kept=kept, colour_as_prompted=colour_ok, ingredients_as_scene=food_same)
    empty = np.zeros((0, 64, 64, 3), np.uint8)
    return ToyDataset(np.stack(images) if images else empty, scenes), stats
