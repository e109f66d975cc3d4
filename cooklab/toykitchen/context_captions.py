"""Context captions: training pairs whose text is the first ``k`` steps of a recipe and whose picture is step ``k``.

A single-scene caption names everything its picture shows, so a text encoder trained only on those never has to
carry meaning from one sentence to the next. Real recipe steps lean on earlier ones ("fry them", "stir the
mixture"), and a pretrained T5 or CLIP reads them in context. A context pair is

    text    = s_1 s_2 ... s_k      (the step texts of one generated recipe, in order)
    picture = render(scene_k)      (the true scene after step k)

so the picture depends on words of earlier sentences whenever step ``k`` refers back. ``TrainConfig.context_share``
of every ``sd`` / ``flux`` batch are such pairs (``ContextMix``); 0 draws none and leaves the batches as they were.

**Recipes** (``context_pool``): ``world.recipe(CONTEXT_FIRST_SEED + j, world.recipe_steps)``, ``j < recipes``;
seeds far from the evaluation's (1000 + k), the LoRA data's (5000 + k) and the benchmarks' (0 + k). A recipe any
of whose scenes shows a ``dataset.HELD_OUT`` triple is skipped. Each recipe gives the pairs ``k = 2 .. n`` (``k = 1``
is a single-scene caption already).

**Length** (``FrontFit``): the text is cut from the front, whole sentences at a time, to the longest run of last
sentences that fits the encoder (``model_max_length`` tokens with the special ones: 32 for the toy CLIP, 64 for the
toy T5). The current step is always kept; a last sentence longer than the encoder alone is cut at its end by the
tokenizer, as any caption. Each encoder gets its own cut (the toy Flux's CLIP keeps fewer sentences than its T5).
"""

from __future__ import annotations

import copy
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from .dataset import holds_held_out
from .world import Scene, render

#: seed of the first context recipe
CONTEXT_FIRST_SEED = 2_000_000


@dataclass
class ContextPool:
    """Rendered context pairs: picture ``i`` is the scene after the last of ``sentences[i]``."""

    images: np.ndarray  # [n, H, W, 3] uint8
    sentences: list[tuple[str, ...]]  # steps 1..k of the recipe, k >= 2
    scenes: list[Scene]  # the true scene after step k
    seeds: list[int]  # the recipe's seed
    skipped: int = 0  # recipes left out for a held-out triple

    def __len__(self) -> int:
        return len(self.sentences)


def _render_recipes(args) -> tuple[list, int]:
    world, seeds, size = args
    pairs, skipped = [], 0
    for seed in seeds:
        recipe = world.recipe(seed, world.recipe_steps)
        if any(holds_held_out(s) for s in recipe.scenes):
            skipped += 1
            continue
        for k in range(2, len(recipe) + 1):
            scene = recipe.scenes[k - 1]
            pairs.append((np.asarray(render(scene, size).image), tuple(recipe.texts[:k]), scene, seed))
    return pairs, skipped


def context_pool(world, recipes: int, size: int = 64, workers: int = 1, chunk: int = 500) -> ContextPool:
    """The context pairs of ``recipes`` recipes of ``world`` (``worlds.World``), rendered at ``size``."""
    seeds = list(range(CONTEXT_FIRST_SEED, CONTEXT_FIRST_SEED + recipes))
    jobs = [(world, seeds[i : i + chunk], size) for i in range(0, len(seeds), chunk)]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            parts = list(pool.map(_render_recipes, jobs))
    else:
        parts = [_render_recipes(j) for j in jobs]
    pairs = [p for part, _ in parts for p in part]
    if not pairs:
        raise ValueError(f"context_recipes={recipes}: no context pair left; use more recipes.")
    images, sentences, scenes, pair_seeds = zip(*pairs)
    return ContextPool(np.stack(images), list(sentences), list(scenes), list(pair_seeds), sum(s for _, s in parts))


class FrontFit:
    """Joins a recipe's sentences into one text that fits ``tokenizer``, dropping sentences from the front."""

    def __init__(self, tokenizer):
        self.budget = tokenizer.model_max_length - tokenizer.num_special_tokens_to_add()
        self.fast = copy.deepcopy(tokenizer.backend_tokenizer)
        self.fast.no_truncation()
        self.fast.no_padding()

    def __call__(self, sentences) -> str:
        """The longest run of last sentences whose tokens fit, joined by spaces (at least the last sentence)."""
        counts = [len(e.ids) for e in self.fast.encode_batch(list(sentences), add_special_tokens=False)]
        start, used = len(counts) - 1, counts[-1]
        while start > 0 and used + counts[start - 1] <= self.budget:
            start -= 1
            used += counts[start]
        return " ".join(sentences[start:])


def context_count(batch: int, share: float) -> int:
    """Context pairs in a batch of ``batch``: ``round(batch * share)``."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"context_share={share}: a share of the batch, between 0 and 1.")
    return round(batch * share)


class ContextMix:
    """Puts ``context_count(batch, share)`` context pairs at the end of every batch of one stage.

    Its own generators (seeded ``seed``) draw the pairs, so the batch's other pictures are drawn as without it;
    with ``share`` 0 it draws nothing and returns the batch unchanged.
    """

    def __init__(self, pool: ContextPool | None, latents, share: float, batch: int, seed: int, tokenizers):
        self.count = context_count(batch, share)
        if self.count and pool is None:
            raise ValueError(f"context_share={share}: the stage needs a context pool (context_pool).")
        self.pool, self.latents = pool, latents  # latents: [n, C, 16, 16] of pool.images
        self.fits = [FrontFit(t) for t in tokenizers]
        self.fitted: list[dict[int, str]] = [{} for _ in tokenizers]  # pair -> its cut text, per encoder (cached)
        self.gen = torch.Generator().manual_seed(seed)
        self.rng = np.random.default_rng(seed)

    def add(self, z0: torch.Tensor, texts: list[list[str]], dropout: float):
        """``z0`` [B - c, ...] and its captions per encoder -> [B, ...] and captions with the ``c`` context pairs."""
        if not self.count:
            return z0, texts
        idx = torch.randint(len(self.latents), (self.count,), generator=self.gen)
        extra = [[] for _ in self.fits]
        for i in idx.tolist():
            dropped = self.rng.random() < dropout
            for fit, fitted, column in zip(self.fits, self.fitted, extra):
                if i not in fitted:
                    fitted[i] = fit(self.pool.sentences[i])
                column.append("" if dropped else fitted[i])
        z = torch.cat([z0, self.latents[idx.to(self.latents.device)]])
        return z, [t + e for t, e in zip(texts, extra)]
