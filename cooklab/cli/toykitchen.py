"""``cooklab toykitchen``: train the Toy Kitchen's model sets and its GroundingDINO + SAM, or measure the pair."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path

from cooklab.errors import ConfigError

from .options import add_quiet

__all__ = ["add_toykitchen_parser", "toykitchen_command"]


def add_toykitchen_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """``cooklab toykitchen train`` (every stage's sizes and steps) and ``cooklab toykitchen evaluate-grounding``."""
    toykitchen = commands.add_parser(
        "toykitchen",
        help="the Toy Kitchen: train its small models",
        description="The Toy Kitchen world (cooklab.toykitchen).",
    )
    tk = toykitchen.add_subparsers(dest="tk_command", metavar="ACTION", required=True)
    train = tk.add_parser(
        "train",
        help="train the Toy Kitchen model sets from scratch (minutes on one GPU; --preset cpu: reduced, slow)",
        description="Render the Toy Kitchen training set and train the autoencoder, the SD-style set, the Flux-style "
        "set and the Toy Kitchen CLIP (the metrics' backbone); the stages detector and segmenter train the toy "
        "GroundingDINO and SAM (cooklab.toykitchen.grounding_training). --preset gpu made the weights in "
        "data/toykitchen; --preset cpu is a reduced run for a machine without a GPU.",
    )
    add_quiet(train)
    train.add_argument(
        "--out",
        type=Path,
        default=Path("outputs/toykitchen"),
        help="folder for sd/, flux/, clip/, grounding/ and the logs "
        "(default: outputs/toykitchen; data/toykitchen replaces the shipped weights)",
    )
    train.add_argument(
        "--preset",
        choices=("gpu", "cpu", "smoke"),
        default=None,
        help="sizes and steps (default: gpu on CUDA, else cpu)",
    )
    train.add_argument(
        "--stages",
        default="autoencoder,sd,flux,clip",
        help="comma-separated stages: autoencoder, sd, flux, clip, detector, segmenter "
        "(default: the first four, in order)",
    )
    train.add_argument("--device", default=None, help="torch device (default: cuda if available)")
    for name, kind in (
        ("seed", int),
        ("images", int),
        ("batch", int),
        ("vae-steps", int),
        ("sd-steps", int),
        ("flux-steps", int),
        ("clip-steps", int),
        ("clip-batch", int),
        ("clip-generated", int),
        ("clip-generated-share", float),
        ("clip-generation-steps", int),
        ("warmup", int),
        ("max-minutes", float),
        ("stop-after", int),
        ("workers", int),
        ("vae-latent-channels", int),
        ("vae-food-weight", float),
        ("vae-batch", int),
        ("vae-lr", float),
        ("vae-init", str),
        ("init-from", str),
        ("world", str),
        ("context-share", float),
        ("context-recipes", int),
        ("panel-share", float),
    ):
        train.add_argument(
            f"--{name}", type=kind, default=None, help=f"override the preset's {name.replace('-', '_')}"
        )
    train.add_argument(
        "--resume",
        action="store_const",
        const=True,
        default=None,
        help="continue the sd / flux stages stopped by --max-minutes from <out>/sd, <out>/flux and their logs",
    )
    for name, kind, help in (
        ("grounding-steps", int, "planned steps of the detector and segmenter stages"),
        ("grounding-lr", float, "peak learning rate of the detector and segmenter stages"),
        ("grounding-negative-share", float, "share of detector captions naming what is not there"),
        ("grounding-init-from", str, "continue from <folder>/detector and <folder>/segmenter"),
    ):
        train.add_argument(f"--{name}", type=kind, default=None, help=f"{help} (default: the preset's)")
    evaluate = tk.add_parser(
        "evaluate-grounding",
        help="box / mask IoU of the shipped toy GroundingDINO + SAM and of the random tiny pair",
        description="Measure the shipped toy detector + segmenter and the random tiny pair on rendered scenes and "
        "frames of the toy SD model; writes data/toykitchen/logs/grounding_eval.json.",
    )
    evaluate.add_argument("--n", type=int, default=200, help="rendered scenes")
    evaluate.add_argument("--seed", type=int, default=1)
    evaluate.add_argument("--generated", type=int, default=40, help="frames of the toy SD model (0: none)")
    return toykitchen


def toykitchen_command(args: argparse.Namespace, command: str) -> int:
    """``cooklab toykitchen train`` and ``cooklab toykitchen evaluate-grounding``."""
    import json

    import torch

    from cooklab.toykitchen import grounding_training
    from cooklab.toykitchen.grounding_evaluation import evaluate_all
    from cooklab.toykitchen.train import STAGES

    if args.tk_command == "evaluate-grounding":
        result = evaluate_all(n=args.n, seed=args.seed, generated=args.generated)
        print(json.dumps(result, indent=1))
        return 0
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    known = (*STAGES, *grounding_training.STAGES)
    unknown = [s for s in stages if s not in known]
    if unknown:
        raise ConfigError(f"--stages {args.stages}: unknown stage(s) {unknown}; choose from {', '.join(known)}.")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    preset = args.preset or ("gpu" if device.startswith("cuda") else "cpu")
    # --quiet: the stages' lines (their progress and results, on stdout) are dropped; warnings and errors show
    with open(os.devnull, "w") if args.quiet else contextlib.nullcontext(sys.stdout) as log:
        with contextlib.redirect_stdout(log):
            if any(s in STAGES for s in stages):
                _train_toy_sets(args, [s for s in stages if s in STAGES], preset, device)
            grounding = [s for s in stages if s in grounding_training.STAGES]
            if grounding:
                _train_toy_grounding(args, grounding, preset)
    return 0


def _train_toy_sets(args: argparse.Namespace, stages: list[str], preset: str, device: str) -> None:
    """The autoencoder, sd, flux and clip stages of ``cooklab toykitchen train`` (``toykitchen.train.train``)."""
    from cooklab.toykitchen.train import train

    cfg = train(
        args.out,
        preset,
        stages,
        device,
        seed=args.seed,
        images=args.images,
        batch=args.batch,
        vae_steps=args.vae_steps,
        sd_steps=args.sd_steps,
        flux_steps=args.flux_steps,
        clip_steps=args.clip_steps,
        clip_batch=args.clip_batch,
        clip_generated=args.clip_generated,
        clip_generated_share=args.clip_generated_share,
        clip_generation_steps=args.clip_generation_steps,
        warmup=args.warmup,
        max_minutes=args.max_minutes,
        stop_after=args.stop_after,
        workers=args.workers,
        vae_latent_channels=args.vae_latent_channels,
        vae_food_weight=args.vae_food_weight,
        vae_batch=args.vae_batch,
        vae_lr=args.vae_lr,
        vae_init=args.vae_init,
        init_from=args.init_from,
        world=args.world,
        context_share=args.context_share,
        context_recipes=args.context_recipes,
        panel_share=args.panel_share,
        resume=args.resume,
    )
    print(f"trained {', '.join(stages)} ({preset} preset, seed {cfg.seed}) into {args.out}")


def _train_toy_grounding(args: argparse.Namespace, stages: list[str], preset: str) -> None:
    """The detector and segmenter stages of ``cooklab toykitchen train`` (``toykitchen.grounding_training``)."""
    import dataclasses

    from cooklab.toykitchen.grounding_training import PRESETS, train_stage, training_data

    overrides = {
        "max_minutes": args.max_minutes,
        "init_from": args.grounding_init_from,
        "negative_share": args.grounding_negative_share,
        "detector_steps": args.grounding_steps,
        "segmenter_steps": args.grounding_steps,
        "detector_lr": args.grounding_lr,
        "segmenter_lr": args.grounding_lr,
    }
    cfg = dataclasses.replace(PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None})
    data = training_data(cfg)
    for stage in stages:
        log = train_stage(stage, cfg, args.out, data)
        print(f"{stage}: {log['steps_done']} steps in {log['seconds']} s", flush=True)
