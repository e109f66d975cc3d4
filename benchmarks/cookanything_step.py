"""Benchmark: one CookAnything denoising step (one transformer forward) against plain Flux on the same canvas.

A ``FluxTransformer2DModel`` of the FLUX.1-dev architecture (19 double + 38 single blocks, 24
heads x 128, T5 width 4096, pooled 768, 64 input channels, guidance embedding, RoPE axes
16/56/56) is built with random weights directly on the GPU in bf16 (no download). The inputs
are built as ``cooklab.CookAnything`` builds them for N steps of 512x512 pixels: the canvas of N
regions stacked vertically (``RegionLayout``), Flexible RoPE ids (``canvas_image_ids``), and the
text sequence ``[C_base | C_1 .. C_N]`` of L_b + N·L tokens (``text_ids``; L_b = L as in the
pipeline, where the whole description is encoded to the same ``max_sequence_length``).

Timed forwards, interleaved (each repeat runs each once, in rotating order), median:

* plain Flux, L_b text tokens: the stock processors, the canvas prompted with the whole
  description only (what a plain Flux call on the canvas costs);
* plain Flux, L_b + N·L text tokens: the stock processors on CookAnything's whole text sequence
  (isolates the attention paths from the extra text tokens);
* CookAnything, per attention path: ``RegionalFluxAttnProcessor`` with a ``RegionalState`` on
  every double and single block (the pipeline's default), base branch + regional branch.

On the CPU a REDUCED configuration runs (2 double + 4 single blocks, 8 heads x 64, fp32,
256x256 regions, 32 text tokens per prompt: the same 1:8 text-to-image ratio per region), so
it finishes in a couple of minutes; its ratios are not those of the full model.

    python benchmarks/cookanything_step.py                   # GPU: FLUX.1-dev size, N = 4 and 8
    python benchmarks/cookanything_step.py --repeats 5       # CPU: the reduced configuration
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
from diffusers import FluxTransformer2DModel

import cooklab
from benchmarks.common import device_name, sync, write_json  # noqa: E402
from cooklab.cookanything.flexible_rope import canvas_image_ids, text_ids
from cooklab.cookanything.regional import RegionalFluxAttnProcessor, RegionalState, RegionLayout
from cooklab.instrument import locate

FLUX_DEV = dict(
    patch_size=1,
    in_channels=64,
    num_layers=19,
    num_single_layers=38,
    attention_head_dim=128,
    num_attention_heads=24,
    joint_attention_dim=4096,
    pooled_projection_dim=768,
    guidance_embeds=True,
    axes_dims_rope=(16, 56, 56),
)
CPU_REDUCED = {
    **FLUX_DEV,
    "num_layers": 2,
    "num_single_layers": 4,
    "attention_head_dim": 64,
    "num_attention_heads": 8,
    "axes_dims_rope": (8, 28, 28),
}


def build_transformer(config: dict, device: torch.device, dtype: torch.dtype) -> FluxTransformer2DModel:
    """Random weights created directly on ``device`` in ``dtype`` (seconds for FLUX.1-dev on a GPU, ~24 GB in bf16)."""
    torch.manual_seed(0)
    before = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = FluxTransformer2DModel(**config)
    finally:
        torch.set_default_dtype(before)
    return model.eval().requires_grad_(False)


def measure(model, config, layout, layers, backends, alpha, dtype, device, repeats):
    """(median seconds, peak GiB on CUDA, first-call seconds) per forward kind, for one layout."""
    cuda = device.type == "cuda"
    n, side = layout.n_regions, layout.rows
    stock = dict(model.attn_processors)
    g = torch.Generator(device).manual_seed(n)
    latents = torch.randn(
        1, layout.image_len, config["in_channels"], generator=g, device=device, dtype=dtype
    )  # [1, N P, C 4]
    prompt = torch.randn(
        1, layout.text_len, config["joint_attention_dim"], generator=g, device=device, dtype=dtype
    )  # [C_base | C_1..C_N]
    pooled = torch.randn(1, config["pooled_projection_dim"], generator=g, device=device, dtype=dtype)
    timestep = torch.full((1,), 0.5, device=device, dtype=dtype)
    guidance = torch.full((1,), 3.5, device=device, dtype=torch.float32)
    flexible = canvas_image_ids(
        n, side, side, flexible=True, device=device, dtype=dtype
    )  # Flexible RoPE, as CookAnything
    tall = canvas_image_ids(n, side, side, flexible=False, device=device, dtype=dtype)  # plain Flux: one tall image

    def forward(prompt_embeds, img_ids):
        with torch.no_grad():
            model(
                hidden_states=latents,
                timestep=timestep,
                guidance=guidance,
                pooled_projections=pooled,
                encoder_hidden_states=prompt_embeds,
                txt_ids=text_ids(prompt_embeds.shape[1], device=device, dtype=dtype),
                img_ids=img_ids,
                return_dict=False,
            )

    runs = {  # name -> (attention processors, forward); processors are installed outside the timed region
        "plain_base": (stock, lambda: forward(prompt[:, : layout.base_text_len], tall)),
        "plain_all": (stock, lambda: forward(prompt, tall)),
    }
    for backend in backends:
        state = RegionalState(layout, alpha, "region", backend, frozenset(layers), None)
        procs = {**stock, **{name: RegionalFluxAttnProcessor(name, state) for name in layers}}
        runs[backend] = (procs, lambda: forward(prompt, flexible))

    first = {}
    for name, (procs, run) in runs.items():  # warm-up; the first flex forward compiles FlexAttention
        model.set_attn_processor(dict(procs))
        sync(device)
        t = time.perf_counter()
        run()
        sync(device)
        first[name] = time.perf_counter() - t
        run()
    times = {name: [] for name in runs}
    peak = {}
    names = list(runs)
    try:
        for r in range(repeats):  # interleaved, rotating order
            for name in names[r % len(names) :] + names[: r % len(names)]:
                procs, run = runs[name]
                model.set_attn_processor(dict(procs))
                if cuda:
                    torch.cuda.reset_peak_memory_stats(device)
                sync(device)
                t = time.perf_counter()
                run()
                sync(device)
                times[name].append(time.perf_counter() - t)
                if cuda:
                    peak[name] = torch.cuda.max_memory_allocated(device) / 2**30
    finally:
        model.set_attn_processor(dict(stock))
    return {k: statistics.median(v) for k, v in times.items()}, peak, first


def print_setup(args, config_name, config, params, build_s, device, dtype, text, region, n_layers, repeats) -> None:
    """The environment, the model's size and the measured sizes, before the table."""
    side = region // 16
    print(
        f"date {datetime.date.today()}, device {device.type} ({device_name(device)}), torch {torch.__version__}, "
        f"diffusers {diffusers.__version__}, cooklab {cooklab.__version__}, threads {torch.get_num_threads()}, {dtype}"
    )
    if config_name == "dev":
        print(
            f"FLUX.1-dev architecture, random weights ({params / 1e9:.1f} B params, "
            f"built on {device.type} in {build_s:.1f} s)"
        )
    else:
        print(
            f"REDUCED CPU CONFIG, not FLUX.1-dev: {config['num_layers']} double + "
            f"{config['num_single_layers']} single blocks, {config['num_attention_heads']} heads x "
            f"{config['attention_head_dim']}, random weights ({params / 1e6:.0f} M params)"
        )
    print(
        f"regions of {region}² ({side * side} image tokens each) stacked vertically, {text} text tokens per prompt "
        f"(base and each step), regional branch on all {n_layers} attention layers, alpha {args.alpha}, "
        f"median of {repeats}"
    )


def print_table(results, cuda: bool) -> None:
    """Per N, each forward's median time and its ratio to plain Flux; the first `flex` forward's time."""
    print()
    print(
        "| N | forward | text tokens | joint tokens | time | ÷ plain (L_b text) | ÷ plain (same text) |"
        + (" peak GPU memory |" if cuda else "")
    )
    print("|---|---|---|---|---|---|---|" + ("---|" if cuda else ""))
    for n, layout, med, peak, _ in results:
        base, same = med["plain_base"], med["plain_all"]
        for name in med:
            label = {
                "plain_base": "plain Flux, whole description only",
                "plain_all": "plain Flux, same text as CookAnything",
            }.get(name, f"CookAnything, `{name}`")
            tokens = layout.base_text_len if name == "plain_base" else layout.text_len
            mem = f" {peak[name]:.1f} GiB |" if cuda else ""
            unit = f"{med[name] * 1e3:.1f} ms" if med[name] < 10 else f"{med[name]:.2f} s"
            print(
                f"| {n} | {label} | {tokens} | {tokens + layout.image_len} | {unit} | {med[name] / base:.2f}× | "
                f"{med[name] / same:.2f}× |{mem}"
            )
    print("\ntargets (full FLUX.1-dev on a GPU): CookAnything ≤ 1.15× plain at N = 4 and 8")
    for n, _, _, _, first in results:
        if "flex" in first:
            print(
                f"N={n}: first CookAnything `flex` forward (includes compiling FlexAttention and the BlockMask): "
                f"{first['flex']:.2f} s, not in the medians"
            )


def build_parser() -> argparse.ArgumentParser:
    """The command line: numbers of regions, sizes, backends, model config, repeats, outputs."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--regions", default="4,8", help="numbers of regions N, comma separated (default: 4,8)")
    p.add_argument(
        "--text-tokens", type=int, default=None, help="T5 tokens per prompt, L = L_b (default: 128; 32 on the CPU)"
    )
    p.add_argument(
        "--region-size",
        type=int,
        default=None,
        help="region side in pixels, a multiple of 16 (default: 512; 256 on the CPU)",
    )
    p.add_argument(
        "--backends",
        default=None,
        help="regional attention paths to time (default: flex,batched,masked on CUDA; batched,masked on the CPU)",
    )
    p.add_argument(
        "--config",
        choices=("dev", "reduced"),
        default=None,
        help="transformer size (default: dev on CUDA, reduced on the CPU)",
    )
    p.add_argument("--repeats", type=int, default=None, help="timed repeats (default: 10 on CUDA, 5 on the CPU)")
    p.add_argument("--alpha", type=float, default=0.1)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: torch's; 1 is steadier on a shared machine)",
    )
    p.add_argument("--json", default=None, help="also write the measurements to this JSON file")
    return p


def main() -> None:
    """Time one denoiser forward of plain Flux and of CookAnything at each N; print the table (and the JSON)."""
    p = build_parser()
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    device = torch.device(args.device)
    cuda = device.type == "cuda"
    config_name = args.config or ("dev" if cuda else "reduced")
    config = FLUX_DEV if config_name == "dev" else CPU_REDUCED
    dtype = torch.bfloat16 if cuda else torch.float32
    text = args.text_tokens or (128 if cuda else 32)
    region = args.region_size or (512 if cuda else 256)
    if region % 16:
        p.error(f"--region-size {region}: use a multiple of 16 (8x VAE, 2x2 packing)")
    backends = (args.backends or ("flex,batched,masked" if cuda else "batched,masked")).split(",")
    repeats = args.repeats or (10 if cuda else 5)
    side = region // 16

    start = time.perf_counter()
    model = build_transformer(config, device, dtype)
    build_s = time.perf_counter() - start
    params = sum(p.numel() for p in model.parameters())
    layers = locate(model, "double", "single")  # CookAnything's default regional_blocks

    print_setup(args, config_name, config, params, build_s, device, dtype, text, region, len(layers), repeats)

    results = []
    for n in [int(v) for v in args.regions.split(",")]:
        layout = RegionLayout(n, side, side, text, text)  # as the pipeline: L_b = L
        med, peak, first = measure(model, config, layout, layers, backends, args.alpha, dtype, device, repeats)
        results.append((n, layout, med, peak, first))

    print_table(results, cuda)
    if args.json:
        write_json(
            args.json,
            "cookanything_step",
            vars(args),
            config=config_name,
            params=params,
            dtype=str(dtype),
            text_tokens=text,
            region_size=region,
            repeats=repeats,
            rows=[
                dict(
                    n=n,
                    text_tokens=layout.text_len,
                    base_text_tokens=layout.base_text_len,
                    image_tokens=layout.image_len,
                    seconds=med,
                    peak_gib=peak,
                    first_seconds=first,
                )
                for n, layout, med, peak, first in results
            ],
        )


if __name__ == "__main__":
    main()
