"""The commands that hand their options to one module each: plan, demo, gallery, score, evaluate, train-lora,
course."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import cooklab
from cooklab.errors import ConfigError
from cooklab.fileio import check_output_file
from cooklab.named_runs import DEMO_STEPS
from cooklab.recipe import DEMO_RECIPE, resolve_recipe
from cooklab.report import atomic_write
from cooklab.runs import torch_device

from .generate import agent_plan
from .options import SCORE_DEFAULTS, add_agent_options, add_overwrite

__all__ = [
    "add_course_parser",
    "add_demo_parser",
    "add_evaluate_parser",
    "add_gallery_parser",
    "add_plan_parser",
    "add_score_parser",
    "add_train_lora_parser",
    "course_command",
    "demo_command",
    "evaluate_command",
    "gallery_command",
    "plan_command",
    "score_command",
    "train_lora_command",
]


# ---- parsers ---------------------------------------------------------------------------


def add_plan_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """``cooklab plan``: the Cooking Agent's plan of a recipe."""
    plan = commands.add_parser(
        "plan",
        help="run the Cooking Agent on a recipe: containers, reference steps, ingredients, enriched prompts (JSON)",
        description="Plan a recipe with the Cooking Agent (OpenAI or the offline rules) and print or save the plan.",
    )
    plan.add_argument(
        "recipe", metavar="RECIPE", help="recipe file (.yaml, .json, .txt) or the name of a shipped recipe"
    )
    add_agent_options(plan, default="auto")
    plan.add_argument("--out", type=Path, default=None, help="write the plan (JSON) here instead of printing it")
    plan.add_argument(
        "--recipe-out", type=Path, default=None, help="also write the recipe with the planned metadata (YAML/JSON)"
    )
    return plan


def add_demo_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """``cooklab demo``: the folder, recipe, steps and seed of the demo's four runs."""
    demo = commands.add_parser(
        "demo",
        help="offline end-to-end demo of both pipelines on the Toy Kitchen models (under a minute on a CPU)",
        description=(
            "Illustrate a 4-step Toy Kitchen recipe with the Toy Kitchen models, offline: Recipe Diffusion's "
            "region_aware_kv "
            "variant (container masks from the toy world's oracle) and its independent variant for comparison, and "
            "CookAnything with every mechanism on and without Step-wise Regional Control; writes each run's "
            "storyboard, "
            "page and trace figures, and compare.png / index.html: the runs in pairs, each with the oracle's "
            "container "
            "consistency."
        ),
    )
    demo.add_argument(
        "--out",
        type=Path,
        default=Path("outputs/demo"),
        help="folder for the four runs and compare.png (default: outputs/demo)",
    )
    add_overwrite(demo, "demo")
    demo.add_argument(
        "--recipe",
        default=None,
        help=f"recipe file or shipped recipe name (default: data/toykitchen/recipes/{DEMO_RECIPE}; the models know "
        "only the "
        "toy world's words)",
    )
    demo.add_argument(
        "--steps", type=int, default=DEMO_STEPS, help=f"denoising steps per frame (default: {DEMO_STEPS})"
    )
    demo.add_argument(
        "--seed",
        type=int,
        default=0,
        help="frame (CookAnything: region) i starts from the noise of seed + i (default: 0)",
    )
    return demo


def add_gallery_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """``cooklab gallery``: where gallery.md goes, the screenshots, recipe, steps and seed."""
    gallery = commands.add_parser(
        "gallery",
        help="docs/gallery.md: both pipelines and their ablations on the Toy Kitchen, and the notebooks' explorers as "
        "the browser test saw them",
        description=(
            "Run Recipe Diffusion's four variants and CookAnything with each mechanism switched off on a Toy Kitchen "
            "recipe (one seed, offline), draw one ablation figure per pipeline with the oracle's container "
            "consistency, "
            "copy the browser test's explorer screenshots (make test-browser) and write gallery.md. `make gallery` "
            "does both."
        ),
    )
    gallery.add_argument(
        "--out",
        type=Path,
        default=Path("docs"),
        help="folder of gallery.md; images go to OUT/img/gallery (default: docs)",
    )
    add_overwrite(gallery, "gallery")
    gallery.add_argument(
        "--screenshots",
        type=Path,
        default=Path("outputs/browser"),
        help="the browser test's screenshots (default: outputs/browser)",
    )
    gallery.add_argument("--recipe", default=None, help=f"recipe file or shipped recipe name (default: {DEMO_RECIPE})")
    gallery.add_argument(
        "--steps", type=int, default=DEMO_STEPS, help=f"denoising steps per frame (default: {DEMO_STEPS})"
    )
    gallery.add_argument(
        "--seed",
        type=int,
        default=0,
        help="frame (CookAnything: region) i starts from the noise of seed + i (default: 0)",
    )
    return gallery


def add_score_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """``cooklab score``: the run folder, the metrics and their models."""
    sc = commands.add_parser(
        "score",
        help="measure a run folder (CLIP, DINOv2, the Toy Kitchen oracle, a judge): writes metrics.json and a table "
        "on its page",
        description=(
            "Measure the frames of a folder written by `cooklab generate` or `cooklab demo` with cooklab.metrics "
            "(docs/metrics.md): "
            "writes metrics.json and adds a metrics table to its index.html. Without --metrics: the oracle's for a "
            "Toy Kitchen run, the CLIP and DINOv2 metrics when those models load (a run of the toy models: the Toy "
            "Kitchen CLIP; offline: from the cache or a folder), the judge's with --judge."
        ),
    )
    sc.add_argument(
        "run", metavar="RUN_FOLDER", type=Path, help="a run folder (it holds settings.json and frame_NN.png)"
    )
    sc.add_argument(
        "--metrics",
        default=None,
        metavar="NAMES",
        help="comma-separated metric names from docs/metrics.md, e.g. clip_score,dino_l2 (default: what can run here)",
    )
    sc.add_argument(
        "--clip",
        default=None,
        metavar="ID_OR_FOLDER",
        help="CLIP checkpoint: 'toy' (the Toy Kitchen CLIP), a hub id or a folder (default: the Toy Kitchen CLIP "
        f"for a run of the toy models, else {SCORE_DEFAULTS['clip']}, if it loads)",
    )
    sc.add_argument(
        "--dino",
        default=None,
        metavar="ID_OR_FOLDER",
        help=f"DINOv2 checkpoint, hub id or folder (default: {SCORE_DEFAULTS['dino']}, if it loads)",
    )
    sc.add_argument(
        "--device",
        default="auto",
        help="where CLIP and DINOv2 run: auto (CUDA when available), cpu, cuda (default: auto)",
    )
    sc.add_argument(
        "--batch-size",
        type=int,
        default=SCORE_DEFAULTS["batch_size"],
        help=f"frames per forward pass (default: {SCORE_DEFAULTS['batch_size']})",
    )
    sc.add_argument(
        "--pairs",
        choices=("consecutive", "all"),
        default="consecutive",
        help="frame pairs of the sequence metrics (default: consecutive)",
    )
    sc.add_argument(
        "--masks",
        default=None,
        metavar="SPEC",
        help="container masks for dino_l2_masked, found in each frame for its step's container: 'oracle' (the Toy "
        "Kitchen oracle; the default for a Toy Kitchen run), 'grounded-sam' (for a --model toy run the pair trained "
        "on the "
        "toy world, offline), 'box:X0,Y0,X1,Y1' or 'none'",
    )
    sc.add_argument(
        "--judge",
        default=None,
        metavar="MODEL",
        help="also judge every frame with this vision-language chat model (OPENAI_API_KEY from the environment)",
    )
    sc.add_argument(
        "--judge-base-url",
        default=None,
        metavar="URL",
        help="an OpenAI-compatible server for --judge (default: OpenAI)",
    )
    sc.add_argument(
        "--judge-prompt",
        choices=("blind", "told"),
        default="blind",
        help="blind: the judge lists the foods it sees and cooklab matches them to the step's ingredients; told: "
        "the ingredients to check are listed in the request (default: blind)",
    )
    return sc


def add_evaluate_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """``cooklab evaluate``: the evaluation's config."""
    ev = commands.add_parser(
        "evaluate",
        help="compare methods over recipes and seeds (resumable): results.jsonl, tables.md, sweep plots",
        description="Generate and score every method x grid point x recipe x seed of CONFIG "
        "(cooklab/evaluation/config.py; "
        "data/eval/toy_small.yaml is an example), then write the tables. Killed, it resumes where it stopped; under "
        "`accelerate launch --num_processes P -m cooklab evaluate CONFIG` the units are split across P processes.",
    )
    ev.add_argument(
        "config",
        type=Path,
        metavar="CONFIG.yaml",
        help="the evaluation to run: a file, or a shipped config by name from any folder (toy_small, "
        "toykitchen_study, sd21_flux_dev: data/eval/)",
    )
    ev.add_argument(
        "--tables-only",
        action="store_true",
        help="write tables.md and the plots again from results.jsonl, generate nothing",
    )
    return ev


def add_train_lora_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """``cooklab train-lora``: the training's config."""
    tl = commands.add_parser(
        "train-lora",
        help="train a LoRA on the Flux transformer over multi-step canvases (CookAnything's training-based mode)",
        description="Train the LoRA of CONFIG (cooklab/training/config.py; data/toykitchen/lora/train.yaml is an "
        "example) with "
        "the rectified-flow objective on canvases laid out exactly as CookAnything generates them. Writes "
        "OUT/adapter (read by "
        "CookAnything.load_lora and diffusers' FluxPipeline.load_lora_weights), OUT/loss.jsonl and OUT/checkpoints; "
        "killed, it "
        "resumes from the last checkpoint. Several GPUs: `accelerate launch --num_processes P -m cooklab train-lora "
        "CONFIG`.",
    )
    tl.add_argument(
        "config",
        type=Path,
        metavar="CONFIG.yaml",
        help="the training run: a file (data/toykitchen/lora/train.yaml, the shipped one, is found from any folder)",
    )
    tl.add_argument(
        "--no-resume", action="store_true", help="start over: delete OUT/checkpoints instead of continuing from them"
    )
    tl.add_argument(
        "--steps", type=int, default=None, help="train to this many optimizer steps (overrides train.steps)"
    )
    return tl


def add_course_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """``cooklab course``: the folder of the copy, ``--overwrite`` and ``--no-lab``."""
    course = commands.add_parser(
        "course",
        help="copy the notebook course into a folder and start JupyterLab there (offline, the Toy Kitchen models)",
        description=(
            "Copy cooklab's notebooks (and their README) into DIR and start JupyterLab there with this Python. The "
            "notebooks find the models and recipes through the installed package, so the copy runs from any folder. "
            "A DIR that holds an earlier copy is opened as it is; a DIR of other files is refused."
        ),
    )
    course.add_argument(
        "dir",
        metavar="DIR",
        type=Path,
        nargs="?",
        default=Path("cooklab-course"),
        help="folder for the course (default: cooklab-course in the current folder)",
    )
    course.add_argument(
        "--overwrite",
        action="store_true",
        help="DIR holds an earlier copy: copy the course's notebooks and README again, replacing your changes to "
        "them (the folder's other files are never touched)",
    )
    course.add_argument(
        "--no-lab", action="store_true", help="copy only, and print the command that starts JupyterLab there"
    )
    return course


# ---- commands --------------------------------------------------------------------------


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
    judge = (
        None if args.judge is None else VisionJudge(args.judge, base_url=args.judge_base_url, prompt=args.judge_prompt)
    )
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


def course_command(args: argparse.Namespace, command: str) -> int:
    """``cooklab course [DIR]``: ``cooklab.course.copy_course``, then JupyterLab (or its command, ``--no-lab``)."""
    from cooklab.course import JUPYTERLAB_INSTALL, copy_course, jupyterlab_installed, lab_command, start_lab

    copy = copy_course(args.dir, overwrite=args.overwrite)
    if copy.kept:
        print(f"{args.dir} holds the course already: kept as it is (--overwrite copies the notebooks afresh)")
    else:
        print(f"copied the course ({len(copy.copied)} files) into {args.dir}")
    if args.no_lab:
        print(f"start JupyterLab there with: {shlex.join(lab_command(args.dir))}")
        if not jupyterlab_installed():
            print(f"JupyterLab is not installed in this Python: {JUPYTERLAB_INSTALL}")
        return 0
    return start_lab(args.dir)
