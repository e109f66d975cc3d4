"""Study: do the consistency mechanisms work in the Toy Kitchen? Oracle metrics over recipe x seed pairs.

For each pair (a random 4-step toy recipe, a generation seed) this generates the recipe with

* Recipe Diffusion (``toy_sd``): ``independent``, ``kv_sharing`` (K/V only), ``region_aware``
  (region-aware noise without K/V) and ``region_aware_kv``; masks from ``OracleMaskProvider``;
* CookAnything (``toy_flux``): everything on, and with each of Step-wise Regional Control,
  Flexible RoPE and Cross-Step Consistency Control switched off;

saves each run's frames as one PNG strip, then scores every run with the renderer's oracle (``cooklab.toykitchen.oracle``):

* **container consistency** -- the share of frames 2..N whose container has frame 1's colour and
  overlaps frame 1's container mask with IoU >= 0.5 (same shape and place);
* **step faithfulness** -- the share of steps naming an ingredient whose frame shows it;
* **state accuracy** -- the share of those steps whose ingredient is in the named state (the
  oracle's state guess is approximate: see its tests).

Per configuration: the mean over pairs with a 95 % bootstrap interval (10,000 resamples of the
pairs), and the paired difference to the configuration's baseline (``independent``; CookAnything
with everything on) with its own interval. Generation and scoring are separate passes: each run's strip is written
atomically under ``--out`` and skipped when it exists, so a stopped study resumes where it stopped,
and the scores can be recomputed from the saved frames (``--score-only``).

    python benchmarks/toykitchen_study.py --recipes 25 --seeds 2          # 50 pairs (about 15 min on 2 CPU cores)
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere in the checkout

import argparse
import datetime
import json
import time

import diffusers
import numpy as np
import PIL.Image
import torch

import cooklab
from cooklab.fileio import atomic_write
from cooklab.toykitchen.oracle import OracleMaskProvider, check_frame, container_consistency, step_faithfulness
from cooklab.toykitchen.recipes import random_toy_recipe

RD_CONFIGS = ("independent", "kv_sharing", "region_aware", "region_aware_kv")
CA_CONFIGS = {
    "all on": dict(),
    "without SRC": dict(regional=False),
    "without Flexible RoPE": dict(flexible_rope=False),
    "without CSCC": dict(cscc=False),
}
METRICS = ("consistency", "faithfulness", "state")


def score(images, toy) -> dict[str, float]:
    """Oracle metrics of one generated recipe."""
    checks = [check_frame(im, e) for im, e in zip(images, toy.expectations)]
    named = [c for c in checks if c.ingredient_ok is not None]
    return dict(
        consistency=float(np.mean(container_consistency(images))),
        faithfulness=float(np.mean(step_faithfulness(images, toy.expectations))),
        state=float(np.mean([bool(c.state_ok) for c in named])) if named else float("nan"),
        first_colour_ok=bool(checks[0].colour_ok),
    )


def bootstrap(values: np.ndarray, rng: np.random.Generator, n: int = 10_000) -> tuple[float, float, float]:
    """Mean and 95 % percentile interval of the mean, resampling pairs."""
    values = values[~np.isnan(values)]
    means = values[rng.integers(len(values), size=(n, len(values)))].mean(axis=1)
    return float(values.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def summarise(rows: list[dict]) -> str:
    rng = np.random.default_rng(0)
    out = []
    for family, configs, baseline in (("recipe-diffusion", RD_CONFIGS, "independent"),
                                      ("cookanything", tuple(CA_CONFIGS), "all on")):
        by = {c: {(r["recipe"], r["seed"]): r for r in rows if r["family"] == family and r["config"] == c} for c in configs}
        pairs = sorted(set.intersection(*(set(v) for v in by.values()))) if all(by.values()) else []
        if not pairs:
            continue
        out.append(f"\n{family}: {len(pairs)} recipe x seed pairs; mean [95 % CI]; Δ = paired difference to '{baseline}'\n")
        out.append("| configuration | " + " | ".join(f"{m} | Δ {m}" for m in METRICS) + " |")
        out.append("|---|" + "---|---|" * len(METRICS))
        for c in configs:
            cells = []
            for m in METRICS:
                v = np.array([by[c][p][m] for p in pairs], dtype=float)
                base = np.array([by[baseline][p][m] for p in pairs], dtype=float)
                mean, lo, hi = bootstrap(v, rng)
                cells.append(f"{mean:.3f} [{lo:.3f}, {hi:.3f}]")
                if c == baseline:
                    cells.append("—")
                else:
                    d, dlo, dhi = bootstrap(v - base, rng)
                    cells.append(f"{d:+.3f} [{dlo:+.3f}, {dhi:+.3f}]")
            out.append(f"| {c} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def strip_path(out: Path, family: str, config: str, recipe: int, seed: int) -> Path:
    return out / family / config.replace(" ", "_") / f"recipe{recipe}_seed{seed}.png"


def save_strip(path: Path, images) -> None:
    strip = PIL.Image.new("RGB", (sum(im.width for im in images), images[0].height))
    for i, im in enumerate(images):
        strip.paste(im, (i * im.width, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: strip.save(f, format="PNG"))


def load_strip(path: Path, n: int) -> list:
    strip = PIL.Image.open(path).convert("RGB")
    w = strip.width // n
    return [strip.crop((i * w, 0, (i + 1) * w, strip.height)) for i in range(n)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipes", type=int, default=25, help="random toy recipes (seeds 1000, 1001, ...)")
    p.add_argument("--seeds", type=int, default=2, help="generation seeds per recipe")
    p.add_argument("--steps", type=int, default=4, help="steps per toy recipe")
    p.add_argument("--num-inference-steps", type=int, default=30)
    p.add_argument("--guidance", type=float, default=3.0, help="CFG scale (true CFG for the Flux set)")
    p.add_argument("--out", type=Path, default=Path("outputs/toykitchen_study"))
    p.add_argument("--score-only", action="store_true", help="score the saved frames, generate nothing")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    toys = [random_toy_recipe(1000 + r, args.steps) for r in range(args.recipes)]
    jobs = [(family, config, toy, seed) for toy in toys for seed in range(args.seeds)
            for family, configs in (("recipe-diffusion", RD_CONFIGS), ("cookanything", tuple(CA_CONFIGS))) for config in configs]
    if not args.score_only:
        rd = cooklab.RecipeDiffusion.from_pipe(cooklab.models.toy_sd())
        ca = cooklab.CookAnything.from_pipe(cooklab.models.toy_flux())
        masks = OracleMaskProvider()
        common = dict(num_inference_steps=args.num_inference_steps, progress=False)
        start, made = time.perf_counter(), 0
        for family, config, toy, seed in jobs:
            path = strip_path(args.out, family, config, toy.seed, seed)
            if path.exists():
                continue
            recipe = toy.to_recipe()
            if family == "recipe-diffusion":
                out = rd(recipe, seed=seed, variant=config, guidance_scale=args.guidance, mask_provider=masks, **common)
            else:
                out = ca(recipe, seed=seed, height=64, width=64, true_cfg_scale=args.guidance, **CA_CONFIGS[config], **common)
            save_strip(path, out.images)
            made += 1
            if made % 10 == 0:
                print(f"{made} runs generated, {time.perf_counter() - start:.0f} s", flush=True)
    rows = [dict(family=f, config=c, recipe=t.seed, seed=s, **score(load_strip(strip_path(args.out, f, c, t.seed, s), len(t)), t))
            for f, c, t, s in jobs if strip_path(args.out, f, c, t.seed, s).exists()]
    atomic_write(args.out / "scores.json", json.dumps(rows, indent=0))
    print(f"date {datetime.date.today()}, torch {torch.__version__}, diffusers {diffusers.__version__}, "
          f"{args.num_inference_steps} steps, guidance {args.guidance}, {args.threads} thread(s); {len(rows)} runs scored")
    print(summarise(rows))


if __name__ == "__main__":
    main()
