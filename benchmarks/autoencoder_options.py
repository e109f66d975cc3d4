"""Which change lets the Toy Kitchen autoencoder keep the food? Measured side by side.

Each option continues training the shipped autoencoder (``data/toykitchen/sd/vae``, 16 x 16 x 4 latents)
with ``cooklab.toykitchen.autoencoder_training.train_autoencoder`` for the same number of steps on the same
renders, and is then read by ``evaluate.autoencoder_ceiling`` (the oracle on reconstructions of the 200 held-out
scenes).
Options: more latent channels (``widen_latent``: 4 -> 8 -> 16, Flux's own autoencoder has 16) and a loss
that weights food pixels (``food_weighted_mse``), each alone and together; "shipped" is the autoencoder
as it is, "4 ch, MSE" the same number of steps of the original loss (what more training alone does).

    python benchmarks/autoencoder_options.py [--steps 300] [--batch 16] [--images 10000] \\
        [--out outputs/autoencoder_options]

Writes ``benchmarks/results/autoencoder_options.json`` after every option (options already there are
skipped: the run resumes). CPU or GPU; the figures in ``docs/toykitchen.md`` name the machine.
"""

from __future__ import annotations

import argparse
import datetime
import json
import time
from pathlib import Path

import torch

from cooklab.fileio import atomic_write
from cooklab.models import toy
from cooklab.toykitchen.autoencoder_training import train_autoencoder
from cooklab.toykitchen.dataset import render_dataset
from cooklab.toykitchen.evaluate import autoencoder_ceiling
from cooklab.toykitchen.training_config import PRESETS
from cooklab.toykitchen.training_loop import machine
from cooklab.versions import package_versions

#: name -> (latent channels, food weight); None: the shipped autoencoder untouched
OPTIONS = {
    "shipped": None,
    "4 ch, MSE": (4, 1.0),
    "4 ch, food x10": (4, 10.0),
    "8 ch, MSE": (8, 1.0),
    "8 ch, food x10": (8, 10.0),
    "16 ch, food x10": (16, 10.0),
}
RESULTS = Path(__file__).parent / "results" / "autoencoder_options.json"


def main() -> None:
    """Train each autoencoder option in turn and write its measurements to the JSON after each."""
    import dataclasses

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--out", type=Path, default=Path("outputs/autoencoder_options"))
    parser.add_argument(
        "--options", nargs="*", default=list(OPTIONS), choices=list(OPTIONS), help="option names (default: all)"
    )
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    shipped = toy.TOY_DIR / "sd" / "vae"
    result = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    result.update(
        what=__doc__.splitlines()[0],
        steps=args.steps,
        batch=args.batch,
        images=args.images,
        lr=args.lr,
        machine=machine(device),
        versions=package_versions("torch", "diffusers"),
    )
    runs = result.setdefault("runs", {})
    data = render_dataset(args.images, seed=1, size=toy.IMAGE_SIZE)  # seed 1: not the shipped run's pictures
    for name in args.options:
        if name in runs:
            continue
        start = time.perf_counter()
        if OPTIONS[name] is None:
            from diffusers import AutoencoderKL

            vae = AutoencoderKL.from_pretrained(shipped)
        else:
            channels, weight = OPTIONS[name]
            folder = args.out / name.replace(" ", "").replace(",", "_").replace("x", "")
            cfg = dataclasses.replace(
                PRESETS["cpu"],
                images=args.images,
                vae_steps=args.steps,
                vae_batch=args.batch,
                vae_lr=args.lr,
                warmup=20,
                vae_latent_channels=channels,
                vae_food_weight=weight,
                vae_init=str(shipped),
            )
            folder.mkdir(parents=True, exist_ok=True)
            train_autoencoder(cfg, folder, device, data)
            from diffusers import AutoencoderKL

            vae = AutoencoderKL.from_pretrained(folder / "autoencoder")
        ceiling = autoencoder_ceiling(vae.float().eval())
        ceiling.pop("records")
        runs[name] = dict(ceiling, seconds=round(time.perf_counter() - start, 1))
        result["date"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        print(f"{name}: {ceiling['counts']} {ceiling['by_ingredient']}", flush=True)
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(RESULTS, json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
