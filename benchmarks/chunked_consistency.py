"""Benchmark: does the container survive a chunk boundary? Chunked CookAnything on a long Toy Kitchen recipe.

The trained Toy Kitchen Flux (``cooklab.models.toy_flux``) draws the 16-step
``data/toykitchen/recipes/toy_kitchen_long.yaml`` (one dotted pink bowl throughout) for several
seeds, in these settings (step n's noise is ``seed + n``, so the seeds are 100 apart: seeds 0 and
1 would share 15 of their 16 noise draws):

* ``one_canvas``: all 16 steps on one canvas (``chunk_size=16``), the reference;
* ``fixed``, ``renoise``, ``none``: chunks of at most ``--chunk-size`` regions (default 4) with
  one anchor region kept fixed, one re-noised (strength 0.5), or no anchor.

The Toy Kitchen oracle reads every frame's container colour and mask
(``cooklab.toykitchen.oracle.read``). Two consecutive frames n, n+1 *keep the container* when
both show the same container colour and their container masks overlap with IoU >= 0.5 (the
test ``container_consistency`` applies to frame 1 and each later frame). A pair is *across* a
boundary when frame n+1 is the first new step of a chunk and frame n ends the previous chunk,
*within* otherwise. Also reported: the fraction of frames 2..N that keep frame 1's container
(``container_consistency``), and the seconds per recipe.

    python benchmarks/chunked_consistency.py --jobs 2                   # 4 seeds, 20 denoising steps, true CFG 3
    python benchmarks/chunked_consistency.py --seeds 0 100 --steps 10   # quicker
    python benchmarks/chunked_consistency.py --jobs 2 --cross-region-kv \\
        --out benchmarks/results/chunked_consistency_kv.json

``--cross-region-kv`` runs every setting with ``cross_region_kv=True``: a region's image queries also see
its previous step's image keys, so the first new step of a chunk sees its anchor directly (without
it, under SRC, the anchor reaches the new regions only through the base branch at alpha = 0.1).

Writes ``benchmarks/results/chunked_consistency.json``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere in the checkout

import argparse
import multiprocessing
import time
import warnings

import torch

import cooklab
from benchmarks.common import write_json  # noqa: E402
from cooklab.toykitchen.oracle import CONSISTENCY_IOU, container_consistency, iou, read

RECIPE = Path(__file__).resolve().parent.parent / "data" / "toykitchen" / "recipes" / "toy_kitchen_long.yaml"
OUT = Path(__file__).resolve().parent / "results" / "chunked_consistency.json"


def settings(n_steps: int, chunk_size: int) -> dict[str, dict]:
    """The compared calls' chunk arguments by name."""
    return {
        "one_canvas": dict(chunk_size=n_steps),
        "fixed": dict(chunk_size=chunk_size, anchor="fixed"),
        "renoise": dict(chunk_size=chunk_size, anchor="renoise", anchor_strength=0.5),
        "none": dict(chunk_size=chunk_size, anchor="none"),
    }


def pair_kept(a, b) -> bool:
    """Frames a and b (oracle readings) show the same container colour and masks with IoU >= CONSISTENCY_IOU."""
    return a.colour[0] is not None and a.colour[0] == b.colour[0] and iou(a.mask, b.mask) >= CONSISTENCY_IOU


def measure(out) -> dict:
    """Per frame: colour and chunk; per consecutive pair: kept, and whether it crosses a chunk boundary."""
    readings = [read(im) for im in out.images]
    chunk_of = out.settings["frame_chunks"]
    pairs = [
        dict(
            frames=[n + 1, n + 2], across=chunk_of[n] != chunk_of[n + 1], kept=pair_kept(readings[n], readings[n + 1])
        )
        for n in range(len(readings) - 1)
    ]
    return dict(
        colours=[r.colour[0] for r in readings],
        frame_chunks=chunk_of,
        frame_anchors=out.settings["frame_anchors"],
        pairs=pairs,
        kept_first=container_consistency(out.images),
    )


def summary(runs: list[dict]) -> dict:
    """Counts over all seeds: pairs kept across and within chunks, frames keeping frame 1's container."""
    across = [p["kept"] for r in runs for p in r["pairs"] if p["across"]]
    within = [p["kept"] for r in runs for p in r["pairs"] if not p["across"]]
    first = [k for r in runs for k in r["kept_first"]]
    return dict(
        across_kept=sum(across),
        across_pairs=len(across),
        within_kept=sum(within),
        within_pairs=len(within),
        kept_first=sum(first),
        later_frames=len(first),
        seconds_mean=sum(r["seconds"] for r in runs) / len(runs),
    )


def one_seed(seed: int, args: argparse.Namespace) -> dict[str, dict]:
    """Every setting for one seed (in a worker process of its own): ``{name: run record}``."""
    torch.set_num_threads(args.threads)
    # 64 T5 tokens: the whole description loses steps 8.. (--chunk-text whole, and the one canvas in every mode)
    warnings.filterwarnings("ignore", message=".* is cut at max_sequence_length")
    recipe = cooklab.load_recipe(RECIPE)
    ca = cooklab.CookAnything.from_pipe(cooklab.models.toy_flux())
    runs = {}
    for name, chunking in settings(len(recipe), args.chunk_size).items():
        start = time.perf_counter()
        out = ca(
            recipe,
            seed=seed,
            num_inference_steps=args.steps,
            height=64,
            width=64,
            true_cfg_scale=args.true_cfg_scale,
            cross_region_kv=args.cross_region_kv,
            chunk_text=args.chunk_text,
            progress=False,
            **chunking,
        )
        seconds = time.perf_counter() - start
        runs[name] = dict(seed=seed, seconds=seconds, chunks=out.settings["chunks"], **measure(out))
        s = summary([runs[name]])
        print(
            f"seed {seed} {name:10s} {seconds:6.1f} s  across {s['across_kept']}/{s['across_pairs']}  "
            f"within {s['within_kept']}/{s['within_pairs']}  frame 1 kept {s['kept_first']}/{s['later_frames']}  "
            f"colours {runs[name]['colours']}",
            flush=True,
        )
    return runs


def main() -> None:
    """Run every chunking setting for each seed (one worker process per seed); print and write the summaries."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 100, 200, 300])
    parser.add_argument("--steps", type=int, default=20, help="denoising steps (default: 20, the demo's)")
    parser.add_argument("--chunk-size", type=int, default=4)
    parser.add_argument("--true-cfg-scale", type=float, default=3.0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    parser.add_argument("--jobs", type=int, default=1, help="seeds generated at once, one process each")
    parser.add_argument("--cross-region-kv", action="store_true", help="every setting with cross_region_kv=True")
    parser.add_argument(
        "--chunk-text",
        choices=("window", "whole"),
        default="window",
        help="a chunk's base prompt and CSCC: its own window (the pipeline's default) or the whole recipe's "
        "(docs/toykitchen.md's tables were measured before the switch, i.e. with whole)",
    )
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
        per_seed = pool.starmap(one_seed, [(seed, args) for seed in args.seeds])
    runs = {name: [seed_runs[name] for seed_runs in per_seed] for name in per_seed[0]}
    results = {name: dict(summary=summary(r), runs=r) for name, r in runs.items()}
    for name, r in results.items():
        print(name, r["summary"])
    write_json(
        args.out,
        "chunked_consistency",
        {**vars(args), "out": str(args.out), "recipe": str(RECIPE.name)},
        results=results,
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
