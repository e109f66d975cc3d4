"""Benchmark: one whole Recipe Diffusion generation per variant, and the cost of a trace.

Times, side by side in one run (interleaved, median of --repeats), a recipe generated with the
paper's four variants and with ``region_aware_kv`` under ``cooklab.trace``. ``--model tiny``
uses the offline tiny pipeline; ``--model sd21-random`` builds the Stable Diffusion 2.1
architecture (U-Net, VAE, OpenCLIP-H text encoder) from configs with random weights, for a GPU.

    python benchmarks/recipe_diffusion.py --model tiny --repeats 5                # CPU
    python benchmarks/recipe_diffusion.py --model sd21-random --height 768 --steps 50   # GPU
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
from cooklab.recipe_diffusion import VARIANTS


def sd21_random(device, dtype):
    """StableDiffusionPipeline with SD 2.1's architecture and random weights (no download)."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from benchmarks.kv_sharing import ARCHS
    from cooklab.word_tokenizers import tiny_clip_tokenizer

    tok = tiny_clip_tokenizer()
    text = CLIPTextModel(CLIPTextConfig(vocab_size=49408, hidden_size=1024, intermediate_size=4096, num_attention_heads=16,
                                        num_hidden_layers=23, projection_dim=512, hidden_act="gelu"))
    vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
                        up_block_types=("UpDecoderBlock2D",) * 4, latent_channels=4, layers_per_block=2, sample_size=768)
    unet = UNet2DConditionModel(**ARCHS["sd21"])
    sched = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                          set_alpha_to_one=False, steps_offset=1, prediction_type="v_prediction")
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tok, unet=unet, scheduler=sched,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    return pipe.to(device, dtype)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=("tiny", "sd21-random"), default="tiny")
    p.add_argument("--recipe", default="data/recipes/guacamole.yaml")
    p.add_argument("--height", type=int, default=64)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args()
    device = torch.device(args.device)
    if args.model == "tiny":
        sd = cooklab.models.tiny_sd(device=device)
    else:
        sd = sd21_random(device, torch.float16 if device.type == "cuda" else torch.float32)
    sd.set_progress_bar_config(disable=True)
    pipe = cooklab.RecipeDiffusion.from_pipe(sd)
    recipe = cooklab.load_recipe(args.recipe)
    box = (args.height // 4, args.height // 4, 3 * args.height // 4, 3 * args.height // 4)
    kw = dict(num_inference_steps=args.steps, height=args.height, width=args.height, progress=False,
              mask_provider=cooklab.BoxMaskProvider(box))

    def run(name):
        if name == "traced":
            with cooklab.trace(pipe):
                pipe(recipe, variant="region_aware_kv", **kw)
        else:
            pipe(recipe, variant=name, **kw)
        if device.type == "cuda":
            torch.cuda.synchronize()

    names = [*VARIANTS, "traced"]
    for name in names:  # warm-up
        run(name)
    times = {n: [] for n in names}
    peak = {}
    for _ in range(args.repeats):
        for name in names:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            t = time.perf_counter()
            run(name)
            times[name].append(time.perf_counter() - t)
            if device.type == "cuda":
                peak[name] = torch.cuda.max_memory_allocated() / 2**30
    med = {n: statistics.median(v) for n, v in times.items()}
    print(f"date {datetime.date.today()}, device {device.type}, torch {torch.__version__}, diffusers {diffusers.__version__}, "
          f"threads {torch.get_num_threads()}; model {args.model}, recipe {args.recipe} ({len(recipe)} steps), "
          f"{args.height}², {args.steps} steps, CFG, median of {args.repeats}")
    print("| variant | seconds per recipe | ratio to independent |" + (" peak GPU memory |" if peak else ""))
    print("|---|---|---|" + ("---|" if peak else ""))
    for n in names:
        label = "region_aware_kv + trace (defaults)" if n == "traced" else n
        extra = f" {peak[n]:.2f} GiB |" if peak else ""
        print(f"| {label} | {med[n]:.2f} s | {med[n] / med['independent']:.2f}× |{extra}")


if __name__ == "__main__":
    main()
