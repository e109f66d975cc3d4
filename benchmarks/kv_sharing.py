"""Benchmark: cost of cross-frame K/V sharing in one U-Net forward, and the K/V cache size.

Builds a U-Net of a real Stable Diffusion architecture from its config with random weights
(no download), then times, side by side in one run and interleaved, one CFG forward
(batch 2) with the stock processors and with K/V sharing on the chosen layers, and measures
the bytes one recorded denoising step holds in the K/V store against the formula.

    python benchmarks/kv_sharing.py --arch sd21 --height 768          # on a GPU (fp16)
    python benchmarks/kv_sharing.py --arch sd21 --height 256 --repeats 3   # on a CPU (fp32)
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere in the checkout

import argparse
import datetime
import platform
import statistics
import time

import diffusers
import torch
from diffusers import UNet2DConditionModel

from benchmarks.common import sync  # noqa: E402
from cooklab.instrument import locate
from cooklab.recipe_diffusion.kv_sharing import KVSharingAttnProcessor, KVSharingState, kv_cache_bytes_per_step

_CROSS_DOWN = ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D")
_CROSS_UP = ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D")
ARCHS = {  # public U-Net configs of the checkpoints (architecture only)
    "sd15": dict(
        block_out_channels=(320, 640, 1280, 1280),
        attention_head_dim=8,
        cross_attention_dim=768,
        down_block_types=_CROSS_DOWN,
        up_block_types=_CROSS_UP,
        layers_per_block=2,
        sample_size=64,
    ),
    "sd21": dict(
        block_out_channels=(320, 640, 1280, 1280),
        attention_head_dim=(5, 10, 20, 20),
        cross_attention_dim=1024,
        use_linear_projection=True,
        down_block_types=_CROSS_DOWN,
        up_block_types=_CROSS_UP,
        layers_per_block=2,
        sample_size=96,
    ),
}


def main() -> None:
    """Time one U-Net forward with and without cross-frame K/V sharing; print the K/V store's size."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", choices=sorted(ARCHS), default="sd21")
    p.add_argument("--height", type=int, default=768)
    p.add_argument("--layers", default="mid,up")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args()
    device = torch.device(args.device)
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    torch.manual_seed(0)
    unet = UNet2DConditionModel(**ARCHS[args.arch]).to(device, dtype).eval()
    layers = locate(unet, *args.layers.split(","), kind="self")
    h = args.height // 8
    x = torch.randn(2, 4, h, h, device=device, dtype=dtype)
    ctx = torch.randn(2, 77, unet.config.cross_attention_dim, device=device, dtype=dtype)
    stock = dict(unet.attn_processors)
    state = KVSharingState(record_frames={0})
    shared = {**stock, **{n: KVSharingAttnProcessor(n, state) for n in layers}}

    def forward():
        with torch.no_grad():
            unet(x, 500, encoder_hidden_states=ctx)
        sync(device)

    # record the reference frame's K/V for one step, then read it as frame 1
    unet.set_attn_processor(dict(shared))
    forward()
    stored = state.nbytes()
    state.frame, state.reference = 1, 0
    state.record_frames = set()
    times = {"stock": [], "kv_sharing": []}
    for _ in range(2):  # warm-up
        unet.set_attn_processor(dict(stock))
        forward()  # noqa: E702
        unet.set_attn_processor(dict(shared))
        forward()  # noqa: E702
    for _ in range(args.repeats):  # interleaved, side by side
        for name, procs in (("stock", stock), ("kv_sharing", shared)):
            unet.set_attn_processor(dict(procs))
            t = time.perf_counter()
            forward()
            times[name].append(time.perf_counter() - t)
    med = {k: statistics.median(v) * 1000 for k, v in times.items()}
    formula = kv_cache_bytes_per_step(
        unet, layers, args.height, args.height, batch=2, bytes_per_element=x.element_size()
    )
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    print(
        f"date {datetime.date.today()}, device {device.type} ({gpu}), torch {torch.__version__}, "
        f"diffusers {diffusers.__version__}, "
        f"threads {torch.get_num_threads()}, {dtype}"
    )
    print(
        f"{args.arch} U-Net, {sum(p.numel() for p in unet.parameters()) / 1e6:.0f} M params, "
        f"{args.height}x{args.height}, "
        f"CFG batch 2, K/V sharing on {len(layers)} layers ({args.layers}), median of {args.repeats}"
    )
    print(
        "| arch | size | device | stock forward | with K/V sharing | ratio | K/V store per step (measured) | formula |"
    )
    print("|---|---|---|---|---|---|---|---|")
    print(
        f"| {args.arch} | {args.height}² | {device.type} | {med['stock']:.1f} ms | {med['kv_sharing']:.1f} ms | "
        f"{med['kv_sharing'] / med['stock']:.2f}× | {stored / 2**20:.1f} MiB | {formula / 2**20:.1f} MiB |"
    )
    print(
        f"\nK/V store of one recorded frame, fp16, CFG batch 2, {args.layers} "
        "(formula, checked against the measurement above):"
    )
    print("| size | per denoising step | 20 steps | 50 steps |")
    print("|---|---|---|---|")
    for size in (512, 768, 1024):
        b = kv_cache_bytes_per_step(unet, layers, size, size, batch=2, bytes_per_element=2)
        print(f"| {size}² | {b / 1e6:.1f} MB | {20 * b / 1e9:.2f} GB | {50 * b / 1e9:.2f} GB |")


if __name__ == "__main__":
    main()
