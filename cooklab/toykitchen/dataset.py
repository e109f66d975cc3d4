"""The Toy Kitchen training set: rendered scenes, their captions, and the held-out caption combinations.

Held-out combinations: ``HELD_OUT`` lists (colour, container, ingredient) triples that never
occur together in a training picture (in any state, whatever its caption says). Evaluating on
captions that name them checks that a model composes what it read instead of recalling pictures.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

from .captions import random_caption
from .world import CONTAINER_COLOURS, CONTAINERS, INGREDIENTS, Scene, random_scene, render


def _held_out(count: int = 20, seed: int = 2026) -> frozenset[tuple[str, str, str]]:
    triples = list(itertools.product(CONTAINER_COLOURS, CONTAINERS, INGREDIENTS))
    rng = np.random.default_rng(seed)
    return frozenset(triples[i] for i in rng.choice(len(triples), size=count, replace=False))


#: (colour, container, ingredient) triples never seen together in training (20 of 175)
HELD_OUT: frozenset[tuple[str, str, str]] = _held_out()


def holds_held_out(scene: Scene) -> bool:
    """Whether ``scene`` shows a ``HELD_OUT`` triple: its container's colour and kind with one of its ingredients."""
    return any((scene.colour, scene.container, i.name) in HELD_OUT for i in scene.ingredients)


@dataclass
class ToyDataset:
    """Rendered training pictures and the scenes they show."""

    images: np.ndarray  # [n, H, W, 3] uint8
    scenes: list[Scene]
    food: np.ndarray | None = None  # [n, H, W] bool: pixels of an ingredient (the autoencoder's loss weights them)
    caption: Callable[..., str] = random_caption  # caption(scene, rng): the world's training caption of a picture

    def __len__(self) -> int:
        return len(self.scenes)


def _render_chunk(args) -> tuple[np.ndarray, np.ndarray, list[Scene]]:
    seed, chunk, count, size, sampler = args
    rng = np.random.default_rng([seed, chunk])
    scenes = [sampler(rng, exclude=HELD_OUT) for _ in range(count)]
    drawn = [render(s, size) for s in scenes]
    return np.stack([np.asarray(r.image) for r in drawn]), np.stack([r.labels >= 2 for r in drawn]), scenes


def render_dataset(
    n: int, seed: int = 0, size: int = 64, workers: int = 1, chunk: int = 2000, world=None
) -> ToyDataset:
    """``n`` random scenes (none holding a held-out triple), rendered at ``size``; the same for a seed whatever
    ``workers``. ``world`` (``worlds.World``) gives the scene sampler and the captions; ``None``: world v2's
    (``world.random_scene``, ``captions.random_caption``)."""
    sampler, caption = (random_scene, random_caption) if world is None else (world.scene, world.caption)
    jobs = [(seed, i, min(chunk, n - i * chunk), size, sampler) for i in range((n + chunk - 1) // chunk)]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            parts = list(pool.map(_render_chunk, jobs))
    else:
        parts = [_render_chunk(j) for j in jobs]
    return ToyDataset(
        np.concatenate([p[0] for p in parts]),
        [s for p in parts for s in p[2]],
        np.concatenate([p[1] for p in parts]),
        caption,
    )
