"""Benchmark: what ``cooklab.trace`` costs on a CookAnything call at FLUX.1-dev scale.

A ``FluxPipeline`` whose transformer has the FLUX.1-dev architecture (11.9 B parameters, random
bf16 weights built on the GPU, as in ``cookanything_step.py``), a VAE of Flux's architecture
(16 latent channels, random weights) and small random text encoders with Flux's widths (CLIP
pooled 768, T5 4096; one layer each: the text encoders run once per call and are not what a
trace touches) is wrapped in ``cooklab.CookAnything``. One recipe of N steps (regions of 512²,
128 T5 tokens per prompt) is generated untraced and under ``cooklab.trace(pipe)`` with the
default selection (every capture kind, all 57 attention layers, every step), interleaved,
median of --repeats, with 2 and with --steps denoising steps. The per-step cost of each is the
difference between the two calls divided by the extra steps, so text encoding, VAE decoding
and setup cancel out.

Reported: seconds per denoising step untraced and traced and their ratio (target ≤ 1.25×),
extra peak GPU memory of the traced call (target ≤ 1 GB), the number of maps captured per
step and the cost of one capture (extra time per step ÷ captures per step). After the calls
no cooklab processor is left installed (count printed): a trace off installs nothing.

    python benchmarks/trace_cost.py                 # GPU: FLUX.1-dev transformer, N = 4
    python benchmarks/trace_cost.py --config reduced --region-size 128 --repeats 1   # CPU check of the script
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
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline
from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

import cooklab
from benchmarks.common import device_name, sync, write_json  # noqa: E402
from benchmarks.cookanything_step import CPU_REDUCED, FLUX_DEV, build_transformer  # noqa: E402
from cooklab.word_tokenizers import tiny_clip_tokenizer, tiny_t5_tokenizer

FLUX_VAE = dict(
    in_channels=3,
    out_channels=3,
    latent_channels=16,
    block_out_channels=(128, 256, 512, 512),
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    layers_per_block=2,
    scaling_factor=0.3611,
    shift_factor=0.1159,
    use_quant_conv=False,
    use_post_quant_conv=False,
)
FLUX_DEV_SCHEDULER = dict(
    base_image_seq_len=256,
    base_shift=0.5,
    max_image_seq_len=4096,
    max_shift=1.15,
    num_train_timesteps=1000,
    shift=3.0,
    use_dynamic_shifting=True,
)


def flux_pipeline(config: dict, device: torch.device, dtype: torch.dtype) -> FluxPipeline:
    """FluxPipeline: the given transformer config, Flux's VAE, one-layer text encoders of Flux's widths.

    Every weight is random.
    """
    clip_tok, t5_tok = tiny_clip_tokenizer(), tiny_t5_tokenizer()
    transformer = build_transformer(config, device, dtype)
    before = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            clip = CLIPTextModel(
                CLIPTextConfig(
                    vocab_size=len(clip_tok),
                    hidden_size=config["pooled_projection_dim"],
                    intermediate_size=1024,
                    num_hidden_layers=1,
                    num_attention_heads=12,
                    max_position_embeddings=77,
                )
            )
            t5 = T5EncoderModel(
                T5Config(
                    vocab_size=len(t5_tok),
                    d_model=config["joint_attention_dim"],
                    d_kv=64,
                    d_ff=1024,
                    num_layers=1,
                    num_heads=8,
                )
            )
            vae = AutoencoderKL(**FLUX_VAE)
    finally:
        torch.set_default_dtype(before)
    pipe = FluxPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(**FLUX_DEV_SCHEDULER),
        vae=vae,
        text_encoder=clip,
        tokenizer=clip_tok,
        text_encoder_2=t5,
        tokenizer_2=t5_tok,
        transformer=transformer,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def time_calls(ca, recipe, kw: dict, steps_long: int, repeats: int, capture, layers, device):
    """Every call, untraced and traced, of 2 and ``steps_long`` steps, ``repeats`` times interleaved.

    Returns ``(runs, peak, first, counts)``: seconds per repeat and the peak GPU GiB (None on the CPU) of
    each ``(traced, steps)``, the warm-up call's seconds, and the number of maps a traced call kept per
    step count.
    """
    cuda = device.type == "cuda"
    counts = {}

    def call(traced: bool, steps: int):
        """(seconds, peak GPU GiB or None) of one whole call; records the number of maps a traced call kept."""
        if cuda:
            torch.cuda.reset_peak_memory_stats(device)
        sync(device)
        t = time.perf_counter()
        if traced:
            with cooklab.trace(ca, capture=capture, layers=layers) as tr:
                ca(recipe, num_inference_steps=steps, **kw)
            counts[steps] = dict(
                text_image=len(tr.text_image), base_contribution=len(tr.base_contribution), truncated=tr.truncated
            )
        else:
            ca(recipe, num_inference_steps=steps, **kw)
        sync(device)
        return time.perf_counter() - t, (torch.cuda.max_memory_allocated(device) / 2**30 if cuda else None)

    runs = {(traced, steps): [] for traced in (False, True) for steps in (2, steps_long)}
    first = {key: call(*key)[0] for key in runs}  # warm-up: compiles FlexAttention, builds the BlockMask
    peak = {}
    names = list(runs)
    for r in range(repeats):  # interleaved, rotating order
        for key in names[r % len(names) :] + names[: r % len(names)]:
            seconds, peak[key] = call(*key)
            runs[key].append(seconds)
    return runs, peak, first, counts


def print_table(args, med, peak, per_step, capture, layers, cuda: bool) -> None:
    """Median seconds of each call and per denoising step, untraced and traced; the overheads and targets."""
    print(
        "\n| call | 2 steps | " + f"{args.steps} steps | per denoising step |" + (" peak GPU memory |" if cuda else "")
    )
    print("|---|---|---|---|" + ("---|" if cuda else ""))
    for traced in (False, True):
        mem = f" {peak[(traced, args.steps)]:.2f} GiB |" if cuda else ""
        selection = (
            "default selection" if not (capture or layers) else f"capture={capture or 'all'}, layers={layers or 'all'}"
        )
        label = f"traced ({selection})" if traced else "untraced"
        print(
            f"| {label} | {med[(traced, 2)]:.2f} s | {med[(traced, args.steps)]:.2f} s | "
            f"{per_step[traced] * 1e3:.1f} ms |{mem}"
        )
    print(f"\ntraced ÷ untraced per step: {per_step[True] / per_step[False]:.2f}× (target ≤ 1.25×)")
    if cuda:
        extra = (peak[(True, args.steps)] - peak[(False, args.steps)]) * 2**30 / 1e9
        print(f"extra peak memory of the traced call: {extra:.3f} GB (target ≤ 1 GB)")


def build_parser() -> argparse.ArgumentParser:
    """The command line: recipe, steps, sizes, model config, repeats, trace selection, outputs."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipe", default="data/recipes/guacamole.yaml", help="recipe file (its step count is N)")
    p.add_argument(
        "--steps", type=int, default=6, help="denoising steps of the longer call (the shorter runs 2; default: 6)"
    )
    p.add_argument("--text-tokens", type=int, default=128, help="T5 tokens per prompt (default: 128)")
    p.add_argument("--region-size", type=int, default=512, help="region side in pixels (default: 512)")
    p.add_argument(
        "--config",
        choices=("dev", "reduced"),
        default=None,
        help="transformer size (default: dev on CUDA, reduced on the CPU)",
    )
    p.add_argument("--repeats", type=int, default=3, help="timed repeats of each call (default: 3)")
    p.add_argument(
        "--capture", default=None, help="comma-separated capture kinds (default: the trace's default, all of them)"
    )
    p.add_argument(
        "--layers", default=None, help="comma-separated layer patterns, e.g. double (default: the trace's, all)"
    )
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--json", default=None, help="also write the measurements to this JSON file")
    return p


def main() -> None:
    """Time CookAnything calls with and without a trace at two step counts; print the cost per step and capture."""
    p = build_parser()
    args = p.parse_args()
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    config_name = args.config or ("dev" if cuda else "reduced")
    config = FLUX_DEV if config_name == "dev" else CPU_REDUCED
    dtype = torch.bfloat16 if cuda else torch.float32
    if args.steps <= 2:
        p.error("--steps must be more than 2 (the shorter call runs 2)")

    start = time.perf_counter()
    ca = cooklab.CookAnything.from_pipe(flux_pipeline(config, device, dtype))
    build_s = time.perf_counter() - start
    recipe = cooklab.load_recipe(args.recipe)
    kw = dict(height=args.region_size, width=args.region_size, max_sequence_length=args.text_tokens, progress=False)
    capture = args.capture.split(",") if args.capture else None
    layers = args.layers.split(",") if args.layers else None
    runs, peak, first, counts = time_calls(ca, recipe, kw, args.steps, args.repeats, capture, layers, device)
    med = {key: statistics.median(v) for key, v in runs.items()}
    extra_steps = args.steps - 2
    per_step = {traced: (med[(traced, args.steps)] - med[(traced, 2)]) / extra_steps for traced in (False, True)}
    captures_per_step = sum(v for k, v in counts[args.steps].items() if k != "truncated") / args.steps
    per_capture = (per_step[True] - per_step[False]) / captures_per_step if captures_per_step else float("nan")
    installed = sum(type(proc).__module__.startswith("cooklab.") for proc in ca.denoiser.attn_processors.values())

    params = sum(x.numel() for x in ca.denoiser.parameters())
    print(
        f"date {datetime.date.today()}, device {device.type} ({device_name(device)}), torch {torch.__version__}, "
        f"diffusers {diffusers.__version__}, cooklab {cooklab.__version__}, {dtype}; transformer "
        f"{'FLUX.1-dev architecture' if config_name == 'dev' else 'REDUCED CPU config, not FLUX.1-dev'} "
        f"({params / 1e9:.2f} B params), pipeline built in {build_s:.1f} s; {len(recipe)} regions of "
        f"{args.region_size}², {args.text_tokens} T5 tokens per prompt, 2 and {args.steps} steps, "
        f"median of {args.repeats}"
    )
    print_table(args, med, peak, per_step, capture, layers, cuda)
    print(
        f"maps kept per step: {captures_per_step:.0f} ({counts[args.steps]}); cost of one capture: "
        f"{per_capture * 1e3:.2f} ms"
    )
    print(f"cooklab processors left installed after the calls: {installed}")
    print(
        "first calls (warm-up, not in the medians): "
        + ", ".join(f"{'traced' if t else 'untraced'} {s} steps {v:.1f} s" for (t, s), v in first.items())
    )
    if args.json:
        write_json(
            args.json,
            "trace_cost",
            vars(args),
            config=config_name,
            params=params,
            dtype=str(dtype),
            seconds={f"{'traced' if t else 'untraced'}_{s}": v for (t, s), v in med.items()},
            peak_gib={f"{'traced' if t else 'untraced'}_{s}": v for (t, s), v in peak.items()},
            per_step_seconds={"untraced": per_step[False], "traced": per_step[True]},
            captures_per_step=captures_per_step,
            per_capture_seconds=per_capture,
            counts=counts[args.steps],
        )


if __name__ == "__main__":
    main()
