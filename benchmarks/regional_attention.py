"""Benchmark: one attention call of CookAnything's Step-wise Regional Control, per attention path.

Times ``cooklab.cookanything.regional.regional_attention`` -- the regional branch (2N x 2N group
mask over [C_1..C_N, I_1..I_N]) plus the whole-description base branch (full attention over
[C_base, I_1..I_N]) and the alpha blend -- on random q/k/v of the joint sequence
``[C_base | C_1..C_N | I_1..I_N]``, for N regions, with each attention path:

* reference: unmasked SDPA over the whole joint sequence (what a stock Flux layer pays for the
  same tokens; the cost a dense-mask path cannot go below);
* ``masked``: the regional branch through SDPA with the dense boolean mask;
* ``batched``: the N (text, image) groups as a batch of N unmasked SDPA calls;
* ``flex``: FlexAttention with a BlockMask, compiled (CUDA only; the first call, which compiles
  and builds the BlockMask, is timed on its own and left out of the median).

The regional branch alone (no base branch, no blend) is timed too, per path. The dense mask of
``masked`` is built once per layout on the device (cached), as the BlockMask is.

Interleaved (every repeat runs each path once, in rotating order), median of the repeats.
Defaults on CUDA: FLUX.1-dev attention sizes, 24 heads x 128, bf16, 512 text tokens per prompt
(base and each step) and 512x512-pixel regions (1024 image tokens each). On the CPU a reduced
size runs (4 heads x 64, fp32, 64 text tokens, 256x256 regions) and flex is skipped: torch runs
FlexAttention eagerly there, which is about 10x slower than SDPA and says nothing about the
compiled kernel.

    python benchmarks/regional_attention.py                      # GPU: N = 2, 4, 8, 512 text tokens
    python benchmarks/regional_attention.py --text-tokens 128    # GPU: 128 text tokens per prompt
    python benchmarks/regional_attention.py --repeats 10         # CPU: the reduced size
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere in the checkout

import argparse
import datetime

import diffusers
import torch
import torch.nn.functional as F

import cooklab
from benchmarks.common import device_name, interleaved, print_profile, profile_ops, timed, write_json  # noqa: E402
from cooklab.cookanything.regional import RegionLayout, regional_attention, regional_branch

FLUX_DEV = dict(heads=24, head_dim=128, text_tokens=512, region_size=512)  # attention sizes of FLUX.1-dev
CPU_REDUCED = dict(heads=4, head_dim=64, text_tokens=64, region_size=256)


def measure(layout, heads, head_dim, dtype, device, paths, alpha, image_attention, repeats):
    """(median seconds per path, first flex call's seconds or None, max |out - masked out| per path) for one layout."""
    g = torch.Generator(device).manual_seed(layout.n_regions)
    q, k, v = (
        torch.randn(1, layout.total, heads, head_dim, generator=g, device=device, dtype=dtype) for _ in range(3)
    )
    qt, kt, vt = (x.transpose(1, 2) for x in (q, k, v))
    lb = layout.base_text_len
    qr, kr, vr = (x[:, lb:].contiguous() for x in (q, k, v))  # the regional branch's tokens [C_1..C_N, I_1..I_N]
    qb, kb, vb = (
        torch.cat([x[:, :lb], x[:, layout.text_len :]], dim=1).transpose(1, 2) for x in (q, k, v)
    )  # [C_base, I_1..I_N]
    qrt, krt, vrt = (x.transpose(1, 2) for x in (qr, kr, vr))
    fns = {
        "full": lambda: F.scaled_dot_product_attention(qt, kt, vt),
        "base": lambda: F.scaled_dot_product_attention(qb, kb, vb),  # the base branch's attention alone
        "branch:full": lambda: F.scaled_dot_product_attention(
            qrt, krt, vrt
        ),  # the regional tokens, no mask: all pairs
    }
    for path in paths:
        fns[path] = lambda path=path: regional_attention(q, k, v, layout, alpha, image_attention, path)
        fns["branch:" + path] = lambda path=path: regional_branch(qr, kr, vr, layout, image_attention, path)
    first = (
        timed(fns["flex"], device) if "flex" in fns else None
    )  # compile (once per process) + BlockMask (once per layout)
    reference = regional_attention(q, k, v, layout, alpha, image_attention, "masked").out.float()
    errors = {path: float((fns[path]().out.float() - reference).abs().max()) for path in paths if path != "masked"}
    for fn in fns.values():  # warm-up (the masked path also builds its dense mask on the device here, once per layout)
        fn(), fn()
    return interleaved(fns, repeats, device), first, errors, fns


LABELS = {
    "full": "SDPA, no mask (reference)",
    "masked": "dense-mask SDPA (`masked`)",
    "batched": "per-region batched SDPA (`batched`)",
    "flex": "FlexAttention BlockMask (`flex`)",
}
"""The attention paths' names in the tables' headers."""


def print_joint_table(rows, paths: list[str]) -> None:
    """The whole call (base and regional branches, blended) per N: each path's median time and speedup."""
    cols = ["full", *paths]
    print()
    print(
        "| N | joint tokens (L_b + N·L + N·P) | "
        + " | ".join(LABELS[c] for c in cols)
        + " | "
        + " | ".join(f"dense ÷ {c}" for c in paths if c != "masked")
        + " |"
    )
    print("|---|---|" + "---|" * (len(cols) + len(paths) - 1))
    for n, layout, med in rows:
        cells = [f"{med[c] * 1e3:.2f} ms ({med[c] / med['masked']:.2f}×)" for c in cols]
        speedups = [f"{med['masked'] / med[c]:.1f}×" for c in paths if c != "masked"]
        print(
            f"| {n} | {layout.base_text_len} + {n}·{layout.step_text_len} + {n}·{layout.region_tokens} = "
            f"{layout.total} | " + " | ".join(cells) + " | " + " | ".join(speedups) + " |"
        )
    print(
        "\n(×) in a cell: time relative to dense-mask SDPA; 'dense ÷ path': how many times faster "
        "than dense-mask SDPA."
    )


def print_branch_table(rows, paths: list[str]) -> None:
    """The regional branch alone per N: each path's median time and speedup over the dense mask."""
    print("\nRegional branch alone (the 2N x 2N group mask over [C_1..C_N, I_1..I_N]; no base branch, no blend):\n")
    print(
        "| N | regional tokens (N·L + N·P) | "
        + " | ".join(LABELS[c] for c in paths)
        + " | "
        + " | ".join(f"dense ÷ {c}" for c in paths if c != "masked")
        + " |"
    )
    print("|---|---|" + "---|" * (2 * len(paths) - 1))
    for n, layout, med in rows:
        cells = [f"{med['branch:' + c] * 1e3:.2f} ms" for c in paths]
        speedups = [f"{med['branch:masked'] / med['branch:' + c]:.1f}×" for c in paths if c != "masked"]
        print(
            f"| {n} | {layout.total - layout.base_text_len} | "
            + " | ".join(cells)
            + " | "
            + " | ".join(speedups)
            + " |"
        )


def print_limit_table(rows, paths: list[str]) -> dict:
    """Each path against the block-sparse limit per N; returns ``{N: {"branch": s, "call": s}}``."""
    print(
        "\nBlock-sparse limit: the regional branch keeps N (L + P)² of its (N (L + P))² query-key pairs (1/N). At the "
        "throughput of unmasked SDPA over the same tokens (time t_all), computing only the kept pairs "
        "takes t_all / N; the whole call's limit adds the base branch's full attention (t_base, measured alone). "
        "The blend is not counted.\n"
    )
    print(
        "| N | branch: SDPA, all pairs (t_all) | branch limit (t_all / N) | call limit (t_base + t_all / N) | "
        + " | ".join(f"branch `{c}` ÷ limit | call `{c}` ÷ limit" for c in paths)
        + " |"
    )
    print("|---|---|---|---|" + "---|---|" * len(paths))
    limits = {}
    for n, _layout, med in rows:
        branch_limit = med["branch:full"] / n
        call_limit = med["base"] + branch_limit
        limits[n] = dict(branch=branch_limit, call=call_limit)
        ratios = [f"{med['branch:' + c] / branch_limit:.2f}× | {med[c] / call_limit:.2f}×" for c in paths]
        print(
            f"| {n} | {med['branch:full'] * 1e3:.2f} ms | {branch_limit * 1e3:.2f} ms | {call_limit * 1e3:.2f} ms | "
            + " | ".join(ratios)
            + " |"
        )
    return limits


def measure_all(args, layouts, heads, head_dim, dtype, device, paths, repeats):
    """``measure`` at every layout: ``(rows, compile_s, errors, profiles)``.

    rows: ``(N, layout, medians)`` per layout; compile_s: ``{N: first flex call's seconds}``;
    errors: ``{N: {path: max |out - masked out|}}``; profiles: the largest N's, with ``--profile``.
    """
    rows, compile_s, errors, profiles = [], {}, {}, {}
    for layout in layouts:
        n = layout.n_regions
        med, first, err, fns = measure(
            layout, heads, head_dim, dtype, device, paths, args.alpha, args.image_attention, repeats
        )
        rows.append((n, layout, med))
        if args.profile:  # the last (largest) N's profiles are kept
            profiles = {
                name: profile_ops(fns[name], device) for name in ("base", *paths, *("branch:" + c for c in paths))
            }
        errors[n] = err
        if first is not None:
            compile_s[n] = first
    return rows, compile_s, errors, profiles


def print_errors_and_compile_times(errors: dict, compile_s: dict) -> None:
    """Each path's largest difference from the dense-mask output, and the first flex call's time, per N."""
    for n in errors:
        parts = [f"{path} {err:.1e}" for path, err in errors[n].items()]
        print(f"N={n}: max |out - masked out|: " + (", ".join(parts) or "-"))
    for n, seconds in compile_s.items():
        print(
            f"N={n}: first flex call (torch.compile once per process, BlockMask once per layout): {seconds:.2f} s, "
            "not in the medians"
        )


def build_parser() -> argparse.ArgumentParser:
    """The command line: sizes (Flux.1-dev by default on CUDA, reduced on the CPU), paths, repeats, outputs."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--regions", default="2,4,8", help="numbers of regions N, comma separated (default: 2,4,8)")
    p.add_argument(
        "--text-tokens", type=int, default=None, help="T5 tokens per prompt, L = L_b (default: 512; 64 on the CPU)"
    )
    p.add_argument(
        "--region-size",
        type=int,
        default=None,
        help="region side in pixels, a multiple of 16 (default: 512; 256 on the CPU)",
    )
    p.add_argument("--heads", type=int, default=None, help="attention heads (default: 24; 4 on the CPU)")
    p.add_argument("--head-dim", type=int, default=None, help="head dimension (default: 128; 64 on the CPU)")
    p.add_argument("--alpha", type=float, default=0.1, help="base-branch weight (default: 0.1)")
    p.add_argument("--image-attention", choices=("region", "global"), default="region")
    p.add_argument(
        "--repeats", type=int, default=None, help="timed repeats per path (default: 50 on CUDA, 10 on the CPU)"
    )
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--no-flex", action="store_true", help="skip FlexAttention on CUDA (e.g. to avoid compiling)")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: torch's; 1 is steadier on a shared machine)",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="also profile one call of each path at the largest N (torch.profiler): where the time goes",
    )
    p.add_argument("--json", default=None, help="also write the measurements to this JSON file")
    return p


def main() -> None:
    """Time every attention path at each N and print the tables (and write the JSON, if asked)."""
    p = build_parser()
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    device = torch.device(args.device)
    cuda = device.type == "cuda"
    size = FLUX_DEV if cuda else CPU_REDUCED
    heads, head_dim = args.heads or size["heads"], args.head_dim or size["head_dim"]
    text, region = args.text_tokens or size["text_tokens"], args.region_size or size["region_size"]
    if region % 16:
        p.error(f"--region-size {region}: use a multiple of 16 (8x VAE, 2x2 packing)")
    dtype = torch.bfloat16 if cuda else torch.float32
    repeats = args.repeats or (50 if cuda else 10)
    side = region // 16
    paths = (
        ["masked"]
        + (["batched"] if args.image_attention == "region" else [])
        + (["flex"] if cuda and not args.no_flex else [])
    )

    print(
        f"date {datetime.date.today()}, device {device.type} ({device_name(device)}), torch {torch.__version__}, "
        f"diffusers {diffusers.__version__}, cooklab {cooklab.__version__}, threads {torch.get_num_threads()}, {dtype}"
    )
    print(
        f"{'FLUX.1-dev attention sizes' if (heads, head_dim) == (24, 128) else 'REDUCED size (not FLUX.1-dev)'}: "
        f"{heads} heads x {head_dim}, {text} text tokens per prompt (base and each step), {region}² regions "
        f"({side * side} image tokens each), alpha {args.alpha}, image attention '{args.image_attention}', "
        f"median of {repeats}"
    )
    if not cuda:
        print(
            "flex: skipped on the CPU (torch runs FlexAttention eagerly there, ~10x slower than SDPA: "
            "not representative of the compiled CUDA kernel)"
        )

    layouts = [RegionLayout(int(n), side, side, text, text) for n in args.regions.split(",")]
    rows, compile_s, errors, profiles = measure_all(args, layouts, heads, head_dim, dtype, device, paths, repeats)

    print_joint_table(rows, paths)
    print_branch_table(rows, paths)
    limits = print_limit_table(rows, paths)
    print_errors_and_compile_times(errors, compile_s)
    for name, entries in profiles.items():
        print_profile(f"N={rows[-1][0]}, {name}", entries)
    if args.json:
        write_json(
            args.json,
            "regional_attention",
            vars(args),
            dtype=str(dtype),
            heads=heads,
            head_dim=head_dim,
            text_tokens=text,
            region_size=region,
            repeats=repeats,
            profiles=profiles,
            rows=[
                dict(
                    n=n,
                    joint_tokens=layout.total,
                    seconds=med,
                    limit_seconds=limits[n],
                    max_abs_error=errors[n],
                    first_flex_seconds=compile_s.get(n),
                )
                for n, layout, med in rows
            ],
        )


if __name__ == "__main__":
    main()
