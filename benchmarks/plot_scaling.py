"""Plot how cost grows: one CookAnything step for N regions, one Recipe Diffusion recipe for N frames.

Reads the JSON results that ``cookanything_step.py --json`` and ``recipe_diffusion.py --lengths ... --json``
wrote (by default the H100 run kept in ``benchmarks/results/``) and draws time and peak GPU memory
against N, with the plain-Flux / plain-SD curve for the same tokens, into ``docs/img/``.

    python benchmarks/plot_scaling.py
    python benchmarks/plot_scaling.py --step my_step.json --frames my_frames.json --out /tmp
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def _caption(env: dict) -> str:
    return f"{env['device_name']}, torch {env['torch']}, diffusers {env['diffusers']}, {env['date']}"


def cookanything_figure(data: dict) -> Figure:
    """Time and peak memory of one denoising step against the number of regions N."""
    rows = data["rows"]
    n = [r["n"] for r in rows]
    curves = {
        "plain Flux, whole description only": "plain_base",
        "plain Flux, same text tokens": "plain_all",
        "CookAnything, flex": "flex",
        "CookAnything, batched": "batched",
        "CookAnything, masked (dense mask)": "masked",
    }
    fig = Figure(figsize=(10, 4), layout="constrained")
    time_ax, mem_ax = fig.subplots(1, 2)
    for label, key in curves.items():
        if key in rows[0]["seconds"]:
            time_ax.plot(n, [r["seconds"][key] * 1e3 for r in rows], marker="o", label=label)
            mem_ax.plot(n, [r["peak_gib"][key] for r in rows], marker="o", label=label)
    time_ax.set(xlabel="regions N (512² each)", ylabel="ms per denoising step", title="Time of one step")
    mem_ax.set(xlabel="regions N (512² each)", ylabel="peak GPU memory (GiB)", title="Peak memory of one step")
    time_ax.legend(fontsize=8)
    fig.suptitle(
        f"CookAnything on a FLUX.1-dev-sized transformer (random bf16 weights), {data['text_tokens']} T5 tokens "
        f"per prompt\n{_caption(data['environment'])}",
        fontsize=9,
    )
    return fig


def recipe_diffusion_figure(data: dict) -> Figure:
    """Time and peak memory of a whole recipe against its number of frames."""
    rows = data["scaling"]
    n = [r["frames"] for r in rows]
    fig = Figure(figsize=(10, 4), layout="constrained")
    time_ax, mem_ax = fig.subplots(1, 2)
    for key, label in (
        ("independent", "plain SD (independent frames)"),
        ("region_aware_kv", "region-aware + K/V sharing"),
    ):
        time_ax.plot(n, [r["seconds"][key] for r in rows], marker="o", label=label)
        mem_ax.plot(n, [r["peak_gib"][key] for r in rows], marker="o", label=label)
    time_ax.set(xlabel="frames", ylabel="seconds per recipe", title="Time of a recipe")
    mem_ax.set(xlabel="frames", ylabel="peak GPU memory (GiB)", title="Peak memory of a recipe", ylim=(0, None))
    time_ax.legend(fontsize=8)
    args = data["args"]
    fig.suptitle(
        f"Recipe Diffusion, SD 2.1 architecture (random fp16 weights), {args['height']}², {args['steps']} steps, CFG, "
        f"one run per point\n{_caption(data['environment'])}",
        fontsize=9,
    )
    return fig


def main() -> None:
    """Draw the two scaling plots from the JSON results into ``--out`` (docs/img by default)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--step", default=ROOT / "benchmarks/results/step_scaling.json", type=Path)
    p.add_argument("--frames", default=ROOT / "benchmarks/results/rd_frames.json", type=Path)
    p.add_argument("--out", default=ROOT / "docs/img", type=Path)
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for figure, source, name in (
        (cookanything_figure, args.step, "scaling_cookanything.png"),
        (recipe_diffusion_figure, args.frames, "scaling_recipe_diffusion.png"),
    ):
        figure(json.loads(source.read_text())).savefig(args.out / name, dpi=110)
        print(args.out / name)


if __name__ == "__main__":
    main()
