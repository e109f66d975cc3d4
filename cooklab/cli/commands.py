"""The commands that hand their options to one module each: plan, demo, gallery, score, evaluate, train-lora."""

from __future__ import annotations

import argparse
import sys

import cooklab
from cooklab.errors import ConfigError
from cooklab.fileio import check_output_file
from cooklab.recipe import resolve_recipe
from cooklab.report import atomic_write
from cooklab.runs import torch_device

from .generate import agent_plan

__all__ = [
    "demo_command",
    "evaluate_command",
    "gallery_command",
    "plan_command",
    "score_command",
    "train_lora_command",
]


def plan_command(args: argparse.Namespace, command: str) -> int:
    """``cooklab plan``: the Cooking Agent's plan, printed or written."""
    recipe = cooklab.load_recipe(resolve_recipe(args.recipe))
    for path, option, what, example in (
        (args.out, "--out", "the plan", "plan.json"),
        (args.recipe_out, "--recipe-out", "the recipe", "recipe.yaml"),
    ):
        if path is not None:
            check_output_file(path, what=what, option=option, example=example)  # before the agent is asked
    recipe_plan = agent_plan(args, recipe)
    text = recipe_plan.model_dump_json(indent=2) + "\n"
    if args.out is None:
        print(text, end="")
    else:
        atomic_write(args.out, text)
        print(f"plan ({recipe_plan.agent}): {args.out}", file=sys.stderr)
    if args.recipe_out is not None:
        recipe_plan.apply(recipe).save(args.recipe_out)
        print(f"recipe with the planned metadata: {args.recipe_out}", file=sys.stderr)
    return 0


def demo_command(args: argparse.Namespace, command: str) -> int:
    """``cooklab demo``: ``cooklab.demo.run_demo`` with the options."""
    from cooklab.demo import run_demo

    if args.steps < 1:
        raise ConfigError(f"--steps {args.steps}: use at least 1 denoising step.")
    run_demo(args.out, args.recipe, steps=args.steps, seed=args.seed, command=command, overwrite=args.overwrite)
    return 0


def gallery_command(args: argparse.Namespace, command: str) -> int:
    """``cooklab gallery``: ``cooklab.gallery.write_gallery`` with the Toy Kitchen models on the CPU."""
    from cooklab.gallery import GalleryConfig, write_gallery

    config = GalleryConfig(
        args.out, args.screenshots, recipe=args.recipe, seed=args.seed, steps=args.steps, overwrite=args.overwrite
    )
    page = write_gallery(config, device=torch_device("cpu", small=True))
    print(f"wrote {page} ({len(config.notebooks)} notebooks' screenshots)")
    return 0


def score_command(args: argparse.Namespace, command: str) -> int:
    """``cooklab score RUN_FOLDER``: the settings go to ``cooklab.scoring.score_run``."""
    from cooklab.metrics import VisionJudge
    from cooklab.scoring import ScoreRun, score_run, summary_lines

    metrics = None if args.metrics is None else [m.strip() for m in args.metrics.split(",") if m.strip()]
    judge = None if args.judge is None else VisionJudge(args.judge, base_url=args.judge_base_url)
    options = {name: getattr(args, name) for name in ("clip", "dino", "device", "batch_size", "pairs", "masks")}
    result = score_run(ScoreRun(args.run, metrics, judge=judge, **options))
    print(f"scored {args.run}:")
    print("\n".join(summary_lines(result)))
    print(f"wrote {result.path}; open {result.index}")
    return 0


def evaluate_command(args: argparse.Namespace, command: str) -> int:
    """``cooklab evaluate CONFIG.yaml``: ``cooklab.evaluation.evaluate`` (or only the tables)."""
    from cooklab.evaluation import evaluate, load_config, write_reports

    config = load_config(args.config)
    if args.tables_only:
        if not (config.out / "results.jsonl").is_file():
            raise ConfigError(f"no results in {config.out}: run `cooklab evaluate {args.config}` first.")
        print(f"wrote {write_reports(config, config.out)}")
        return 0
    path = evaluate(config)
    if path is not None:  # the main process
        print(f"wrote {path} and {config.out / 'tables.md'}")
    return 0


def train_lora_command(args: argparse.Namespace, command: str) -> int:
    """``cooklab train-lora CONFIG.yaml``: ``cooklab.training.train_lora``."""
    from cooklab.training import load_train_config, train_lora

    config = load_train_config(args.config)
    if args.steps is not None:
        if args.steps < 1:
            raise ConfigError(f"--steps {args.steps}: give at least 1.")
        config = config.model_copy(update={"train": config.train.model_copy(update={"steps": args.steps})})
    result = train_lora(config, resume=not args.no_resume)
    if not result.main_process:
        return 0
    start = f" (resumed at step {result.resumed_from})" if result.resumed_from else ""
    last = (
        f"last loss {result.losses[max(result.losses)]:.4f}"
        if result.losses
        else f"no step to run: the checkpoint was at step {result.resumed_from} already"
    )
    print(
        f"trained {config.name} to step {config.train.steps}{start} in {result.seconds:.0f} s, {last}; "
        f"adapter in {result.adapter}, losses in {config.out / 'loss.jsonl'}"
    )
    return 0
