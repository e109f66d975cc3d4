"""Benchmark: one whole Recipe Diffusion generation per variant, the cost of a trace, and how cost grows with frames.

Times, side by side in one run (interleaved, median of --repeats), a recipe generated with the
paper's four variants, with ``region_aware_kv`` keeping the reference K/V on the CPU
(``kv_cache_device="cpu"``) and with ``region_aware_kv`` under ``cooklab.trace``; on CUDA the
peak GPU memory of each. ``--lengths 1,2,4,8,12`` then times recipes of that many frames
(the recipe's steps repeated; each frame refers to the previous one, the paper's default
chain), ``independent`` (plain SD, one frame after another) against ``region_aware_kv``.
``--model tiny`` uses the offline tiny pipeline; ``--model sd21-random`` builds the Stable
Diffusion 2.1 architecture (U-Net, VAE, OpenCLIP-H text encoder) from configs with random
weights, for a GPU. Warm-up calls run every kind once with ``--warmup-steps`` steps.

    python benchmarks/recipe_diffusion.py --model tiny --repeats 5                # CPU
    python benchmarks/recipe_diffusion.py --model sd21-random --height 768 --steps 50 --repeats 1 \\
        --lengths 1,2,4,8,12                                                       # GPU
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere in the checkout

import argparse
import datetime
import statistics
import time

import diffusers
import torch

import cooklab
from benchmarks.common import print_profile, profile_ops, staged, sync, write_json  # noqa: E402
from cooklab.recipe_diffusion import VARIANTS

KINDS = {  # row name -> (variant, extra call arguments, traced)
    **{name: (name, {}, False) for name in VARIANTS},
    "region_aware_kv (K/V on CPU)": ("region_aware_kv", {"kv_cache_device": "cpu"}, False),
    "region_aware_kv + trace (defaults)": ("region_aware_kv", {}, True),
}


def sd21_random(device, dtype):
    """StableDiffusionPipeline with SD 2.1's architecture and random weights (no download)."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from benchmarks.kv_sharing import ARCHS
    from cooklab.word_tokenizers import tiny_clip_tokenizer

    tok = tiny_clip_tokenizer()
    before = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):  # random weights created where they run (seconds on a GPU)
            text = CLIPTextModel(
                CLIPTextConfig(
                    vocab_size=49408,
                    hidden_size=1024,
                    intermediate_size=4096,
                    num_attention_heads=16,
                    num_hidden_layers=23,
                    projection_dim=512,
                    hidden_act="gelu",
                )
            )
            vae = AutoencoderKL(
                block_out_channels=(128, 256, 512, 512),
                down_block_types=("DownEncoderBlock2D",) * 4,
                up_block_types=("UpDecoderBlock2D",) * 4,
                latent_channels=4,
                layers_per_block=2,
                sample_size=768,
            )
            unet = UNet2DConditionModel(**ARCHS["sd21"])
    finally:
        torch.set_default_dtype(before)
    sched = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        prediction_type="v_prediction",
    )
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text,
        tokenizer=tok,
        unet=unet,
        scheduler=sched,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    return pipe.to(device, dtype)


def run_once(pipe, kind: str, rec, steps: int, kw: dict, device) -> tuple[float, float | None]:
    """Seconds and peak GPU GiB (None on the CPU) of one whole generation of ``kind`` (see ``KINDS``)."""
    cuda = device.type == "cuda"
    variant, extra, traced = KINDS[kind]
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    sync(device)
    t = time.perf_counter()
    if traced:
        with cooklab.trace(pipe):
            pipe(rec, variant=variant, num_inference_steps=steps, **extra, **kw)
    else:
        pipe(rec, variant=variant, num_inference_steps=steps, **extra, **kw)
    sync(device)
    return time.perf_counter() - t, (torch.cuda.max_memory_allocated(device) / 2**30 if cuda else None)


def time_kinds(run, names, rec, warmup_steps: int, steps: int, repeats: int):
    """Median seconds and peak GPU GiB of each kind in ``names``: one warm-up call each, then ``repeats``
    interleaved rounds; ``run(kind, recipe, steps)`` times one call."""
    for name in names:  # warm-up
        run(name, rec, warmup_steps)
    times, peak = {n: [] for n in names}, {}
    for r in range(repeats):  # interleaved, rotating order
        for name in names[r % len(names) :] + names[: r % len(names)]:
            seconds, peak[name] = run(name, rec, steps)
            times[name].append(seconds)
    return {n: statistics.median(v) for n, v in times.items()}, peak


def time_lengths(timed_rows, recipe, lengths: list[int], cuda: bool) -> list[dict]:
    """Plain SD against region_aware_kv on recipes of each length (steps of ``recipe`` repeated); prints the table."""
    scaling = []
    names = ["independent", "region_aware_kv"]
    print(
        "\n| frames | independent (plain SD) | region_aware_kv | ratio |"
        + (" peak GPU memory (independent / region_aware_kv) |" if cuda else "")
    )
    print("|---|---|---|---|" + ("---|" if cuda else ""))
    for frames in lengths:
        steps = [recipe.steps[i % len(recipe)].text for i in range(frames)]  # no metadata: frame i follows i - 1
        m, pk = timed_rows(names, cooklab.Recipe.from_steps(steps, title=recipe.title))
        scaling.append(dict(frames=frames, seconds=m, peak_gib=pk))
        mem = f" {pk['independent']:.2f} / {pk['region_aware_kv']:.2f} GiB |" if cuda else ""
        print(
            f"| {frames} | {m['independent']:.2f} s | {m['region_aware_kv']:.2f} s | "
            f"{m['region_aware_kv'] / m['independent']:.2f}× |{mem}"
        )
    return scaling


def build_parser() -> argparse.ArgumentParser:
    """The command line: model, recipe, size, steps, repeats, kinds, recipe lengths, profile, outputs."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=("tiny", "sd21-random"), default="tiny")
    p.add_argument("--recipe", default="data/recipes/guacamole.yaml")
    p.add_argument("--height", type=int, default=64)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument(
        "--warmup-steps", type=int, default=2, help="denoising steps of the warm-up call of each kind (default: 2)"
    )
    p.add_argument("--kinds", default=",".join(KINDS), help="rows to time, comma separated (default: all)")
    p.add_argument("--lengths", default="", help="also time recipes of these numbers of frames, e.g. 1,2,4,8,12")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument(
        "--profile",
        action="store_true",
        help="also profile one recipe of each kind after the timings "
        "(torch.profiler, the pipeline's stages as ranges)",
    )
    p.add_argument("--json", default=None, help="also write the measurements to this JSON file")
    return p


def main() -> None:
    """Time each kind of Recipe Diffusion call on one recipe (and at other lengths); print the tables."""
    p = build_parser()
    args = p.parse_args()
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    start = time.perf_counter()
    if args.model == "tiny":
        sd = cooklab.models.tiny_sd(device=device)
    else:
        sd = sd21_random(device, torch.float16 if cuda else torch.float32)
    build_s = time.perf_counter() - start
    sd.set_progress_bar_config(disable=True)
    pipe = cooklab.RecipeDiffusion.from_pipe(sd)
    recipe = cooklab.load_recipe(args.recipe)
    box = (args.height // 4, args.height // 4, 3 * args.height // 4, 3 * args.height // 4)
    kw = dict(height=args.height, width=args.height, progress=False, mask_provider=cooklab.BoxMaskProvider(box))
    kinds = [k.strip() for k in args.kinds.split(",")]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        p.error(f"--kinds {unknown}: choose from {list(KINDS)}")

    def run(kind, rec, steps):  # one call of this pipeline, timed
        return run_once(pipe, kind, rec, steps, kw, device)

    def timed_rows(names, rec):
        return time_kinds(run, names, rec, args.warmup_steps, args.steps, args.repeats)

    print(
        f"date {datetime.date.today()}, device {device.type}, torch {torch.__version__}, "
        f"diffusers {diffusers.__version__}, threads {torch.get_num_threads()}; "
        f"model {args.model} (built in {build_s:.1f} s), recipe {args.recipe} "
        f"({len(recipe)} steps), {args.height}², {args.steps} steps, CFG, median of {args.repeats}"
    )
    med, peak = timed_rows(kinds, recipe)
    base = med.get("independent")
    print(
        "| variant | seconds per recipe | seconds per frame | ratio to independent |"
        + (" peak GPU memory |" if cuda else "")
    )
    print("|---|---|---|---|" + ("---|" if cuda else ""))
    for n in kinds:
        ratio = f"{med[n] / base:.2f}×" if base else "-"
        extra = f" {peak[n]:.2f} GiB |" if cuda else ""
        print(f"| {n} | {med[n]:.2f} s | {med[n] / len(recipe):.2f} s | {ratio} |{extra}")

    scaling = time_lengths(timed_rows, recipe, [int(v) for v in args.lengths.split(",")], cuda) if args.lengths else []
    profiles = {}
    if args.profile:  # after the timings: the stage ranges stay on this pipeline object
        staged(
            pipe,
            ("_encode", "_reference_image", "_start_latent", "_resolve_mask", "_noised_start", "_denoise", "_decode"),
        )
        for name in kinds:
            profiles[name] = profile_ops(lambda name=name: run(name, recipe, args.steps), device)
            print_profile(f"{name}, one recipe of {len(recipe)} frames", profiles[name])
    if args.json:
        write_json(
            args.json,
            "recipe_diffusion",
            vars(args),
            recipe_steps=len(recipe),
            seconds=med,
            peak_gib=peak,
            scaling=scaling,
            profiles=profiles,
        )


if __name__ == "__main__":
    main()
