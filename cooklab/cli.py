"""The ``cooklab`` command: parse the command line (``build_parser``) and hand each command to its module.

    cooklab demo [--out outputs/demo]          offline end-to-end run of both pipelines on the Toy Kitchen models
    cooklab generate RECIPE [--model ID] --out DIR [options]

The options of every command are in ``cooklab.cli_options``. ``generate`` checks them before a model
loads (options of the other pipeline are refused, exit 2), loads Recipe Diffusion (default) or, with
``--pipeline cookanything``, CookAnything for ``--model`` (``toy``: the Toy Kitchen models, ``tiny``:
random weights, else a hub id or folder; ``cooklab.runs.load_pipeline``) and makes one run with
``cooklab.runs.run_and_report``. ``demo`` is ``cooklab.demo``, ``gallery`` ``cooklab.gallery``,
``score`` ``cooklab.scoring``, ``evaluate`` ``cooklab.evaluation``, ``train-lora`` ``cooklab.training``.

Errors cooklab raises on purpose (bad recipe, impossible setting, missing checkpoint) are printed as
``error: <message>`` with exit code 2; anything else is a bug and shows its traceback.
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import cooklab
from cooklab.cli_options import (
    CA_OPTIONS,
    FLUX_MAX_SEQUENCE_LENGTH,
    SCHEDULERS,
    add_demo_parser,
    add_evaluate_parser,
    add_gallery_parser,
    add_generate_parser,
    add_plan_parser,
    add_score_parser,
    add_train_lora_parser,
    fill_pipeline_options,
    given,
)
from cooklab.errors import ConfigError, CooklabError
from cooklab.named_runs import TOY_SIZE
from cooklab.recipe import resolve_recipe
from cooklab.report import atomic_write
from cooklab.runs import (
    SMALL_MODELS,
    Run,
    load_pipeline,
    mask_provider,
    model_notes,
    result_summary,
    run_and_report,
    torch_device,
)

__all__ = ["build_parser", "main"]


# ---- argument parsing ----------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The ``cooklab`` parser: one subcommand per command, each added by its function of ``cooklab.cli_options``."""
    parser = argparse.ArgumentParser(
        prog="cooklab",
        description="Consistent multi-step recipe images with diffusion models (Recipe Diffusion, CookAnything).",
    )
    parser.add_argument("--version", action="version", version=f"cooklab {cooklab.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    add_generate_parser(commands)
    add_plan_parser(commands)
    add_demo_parser(commands)
    add_gallery_parser(commands)
    add_score_parser(commands)
    add_evaluate_parser(commands)
    add_train_lora_parser(commands)
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
    ):
        train.add_argument(
            f"--{name}", type=kind, default=None, help=f"override the preset's {name.replace('-', '_')}"
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
    return parser


# ---- option checks: everything refused before a model loads --------------------------


def _positive_multiple_of_8(name: str, value: int | None) -> None:
    if value is not None and (value <= 0 or value % 8):
        nearest = max(8, round(value / 8) * 8)
        raise ConfigError(f"{name} {value}: height and width must be positive multiples of 8 (e.g. {nearest}).")


def _positive_multiple_of_16(name: str, value: int | None) -> None:
    """Flux: VAE factor 8 times the 2x2 latent packing."""
    if value is not None and (value <= 0 or value % 16):
        nearest = max(16, round(value / 16) * 16)
        raise ConfigError(
            f"{name} {value}: with --pipeline cookanything the height and width of one region must be positive multiples of 16 "
            f"(Flux packs 2x2 latent pixels of an 8x VAE into one token), e.g. {nearest}."
        )


def _kv_layers(text: str) -> tuple[str, ...]:
    layers = tuple(part.strip() for part in text.split(",") if part.strip())
    if not layers:
        raise ConfigError(f"--kv-layers {text!r}: give layer groups or names separated by commas, e.g. 'mid,up'.")
    return layers


def _switches(args: argparse.Namespace) -> tuple[dict[str, bool], list[str]]:
    """The three mechanism switches from --variant and the --no-* flags, plus notes for the user."""
    from cooklab.recipe_diffusion.pipeline import VARIANTS

    switches = (
        dict(VARIANTS[args.variant]) if args.variant else dict(sequential=True, kv_sharing=True, region_aware=True)
    )
    notes = []
    if args.no_sequential:
        switches["sequential"] = False
    if args.no_kv_sharing:
        switches["kv_sharing"] = False
    if args.no_region_aware:
        switches["region_aware"] = False
    if switches["region_aware"] and not switches["sequential"]:
        if args.variant in ("region_aware", "region_aware_kv"):
            raise ConfigError(
                f"--variant {args.variant} with --no-sequential: region-aware noise noises the reference frame's latent, "
                "so it needs sequential frames. Drop one of the two options."
            )
        switches["region_aware"] = False
        notes.append("--no-sequential also turns region-aware noise off (it noises the reference frame's latent).")
    return switches, notes


def _check_cookanything(args: argparse.Namespace, recipe, small: bool) -> None:
    """Everything the CookAnything call would refuse, checked before a (large) model loads."""
    _check_chunking(args)
    _positive_multiple_of_16("--height", args.height)
    _positive_multiple_of_16("--width", args.width)
    if args.steps < 1:
        raise ConfigError(f"--steps {args.steps}: use at least 1 denoising step.")
    if args.max_sequence_length is not None and not 1 <= args.max_sequence_length <= FLUX_MAX_SEQUENCE_LENGTH:
        raise ConfigError(
            f"--max-sequence-length {args.max_sequence_length}: give 1..{FLUX_MAX_SEQUENCE_LENGTH} T5 tokens "
            f"(Flux's T5 limit{'; the ' + args.model + ' T5 is built for 64' if small else ''})."
        )
    if not 0.0 <= args.alpha <= 1.0:
        raise ConfigError(f"--alpha {args.alpha:g}: the base-branch weight must be between 0 and 1 (paper: 0.1).")
    if args.lam < 0:
        raise ConfigError(f"--lam {args.lam:g}: the CSCC weight must be >= 0 (paper: 0.2; studied from 0 to 1).")
    if args.rope_step_axis and args.no_flexible_rope:
        raise ConfigError(
            "--rope-step-axis needs Flexible RoPE (the step index goes on its axis 0): drop --no-flexible-rope."
        )
    if not (math.isfinite(args.true_cfg_scale) and args.true_cfg_scale >= 0):
        raise ConfigError(
            f"--true-cfg-scale {args.true_cfg_scale:g}: give a finite number >= 0 (<= 1 is off, > 1 switches "
            "true classifier-free guidance on)."
        )
    if args.attention_backend == "batched" and args.image_attention == "global":
        raise ConfigError(
            "--attention-backend batched needs --image-attention region (each region is its own batch entry); "
            "use --attention-backend masked or flex with --image-attention global."
        )


def _check_chunking(args: argparse.Namespace) -> None:
    """--chunk-size, --anchor, --anchor-regions, --anchor-strength: what ``Chunking.resolve`` would refuse, in flags."""
    from cooklab.cookanything import MAX_STEPS

    if args.chunk_size is not None and args.chunk_size < 1:
        raise ConfigError(
            f"--chunk-size {args.chunk_size}: give the most regions one canvas may hold, 1 or more "
            f"(default: {MAX_STEPS})."
        )
    if args.anchor == "none":
        if args.anchor_strength is not None:
            raise ConfigError(
                "--anchor-strength is the re-noising strength of --anchor renoise: drop it with --anchor none."
            )
        return
    if args.anchor_regions < 1:
        raise ConfigError(f"--anchor-regions {args.anchor_regions}: give 1 or more, or --anchor none for no anchor.")
    size = MAX_STEPS if args.chunk_size is None else args.chunk_size
    if args.anchor_regions >= size:
        raise ConfigError(
            f"--anchor-regions {args.anchor_regions} with --chunk-size {size}: the anchors would fill every later "
            f"canvas; use --anchor-regions {size - 1} or less, or a larger --chunk-size."
        )
    if args.anchor == "fixed" and args.anchor_strength is not None:
        raise ConfigError("--anchor-strength needs --anchor renoise: a fixed anchor is never re-noised.")
    if args.anchor_strength is not None and not 0 < args.anchor_strength <= 1:
        raise ConfigError(
            f"--anchor-strength {args.anchor_strength:g}: give a noise level in (0, 1] (1: from pure noise)."
        )


def _cookanything_notes(args: argparse.Namespace, explicit: set[str], recipe) -> list[str]:
    """Notes for the user: the model's, and options given that this run ignores."""
    notes = model_notes(args.model, "cookanything", recipe)
    if args.model == "toy" and "guidance" in explicit:
        notes.append("--guidance has no effect on toy_flux (it has no guidance embedding): use --true-cfg-scale.")
    if args.no_regional:
        idle = [CA_OPTIONS[a] for a in ("alpha", "image_attention", "attention_backend") if a in explicit]
        if idle:
            verb = (
                "acts on the regional branch only and has"
                if len(idle) == 1
                else "act on the regional branch only and have"
            )
            notes.append(f"--no-regional: {', '.join(idle)} {verb} no effect.")
    if args.no_cscc and "lam" in explicit:
        notes.append("--no-cscc: --lam has no effect.")
    if "negative_prompt" in explicit and args.true_cfg_scale <= 1:
        notes.append("--negative-prompt has no effect without --true-cfg-scale > 1.")
    if args.anchor == "none" and "anchor_regions" in explicit:
        notes.append("--anchor none: --anchor-regions has no effect.")
    from cooklab.cookanything import MAX_STEPS
    from cooklab.cookanything.chunked import Chunking, plan_chunks

    chunking = Chunking.resolve(args.chunk_size, args.anchor, args.anchor_regions, args.anchor_strength, MAX_STEPS)
    chunks = plan_chunks(len(recipe), chunking)
    if len(chunks) > 1:
        carried = (
            "no anchor: the chunks share only the text"
            if chunking.anchor == "none"
            else f"each later one starts with {chunking.anchors} anchor region(s) from the one before ({chunking.anchor})"
        )
        notes.append(
            f"the {len(recipe)} steps are generated as {len(chunks)} canvases of at most {chunking.size} regions "
            f"(--chunk-size; steps {', '.join(f'{c.steps[0] + 1}-{c.steps[-1] + 1}' for c in chunks)}), {carried}."
        )
    return notes


def _plan(args: argparse.Namespace, recipe):
    """--agent: plan the recipe with the Cooking Agent (None without the option)."""
    if args.agent is None:
        return None
    from cooklab.agent import plan

    return plan(recipe, agent=args.agent, model=args.agent_model, base_url=args.base_url)


# ---- generate ------------------------------------------------------------------------


def _generate(args: argparse.Namespace, command: str) -> int:
    """``cooklab generate``: check the options, load the model, then one ``run_and_report``."""
    explicit = {attr for attr in (*CA_OPTIONS, "guidance") if given(args, attr)}
    fill_pipeline_options(args)
    small = args.model in SMALL_MODELS
    recipe = cooklab.load_recipe(resolve_recipe(args.recipe))  # a bad recipe fails before any model loads
    canvas = args.pipeline == "cookanything"
    call, notes = _cookanything_call(args, recipe, explicit) if canvas else _recipe_diffusion_call(args, recipe)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)

    scheduler = SCHEDULERS[args.scheduler] if args.scheduler else None
    pipe = load_pipeline(args.pipeline, args.model, args.seed, torch_device(args.device, small), scheduler)
    on_cpu = pipe.device.type == "cpu"
    if canvas and args.attention_backend == "flex" and on_cpu and not args.no_regional:
        print(
            "note: --attention-backend flex on the CPU runs FlexAttention eagerly, about 10x slower than SDPA.",
            file=sys.stderr,
        )
    size = TOY_SIZE if small else None
    call.update(
        seed=args.seed,
        num_inference_steps=args.steps,
        height=args.height or size,
        width=args.width or size,
        guidance_scale=args.guidance,
        progress=True,
    )
    run = Run(
        recipe,
        args.out,
        model=args.model,
        pipeline=args.pipeline,
        call=call,
        command=command,
        notes=notes,
        trace=args.trace,
        single_thread=small and on_cpu,
    )
    result = run_and_report(pipe, run)
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    for path in result.trace_files if canvas else result.trace_files[:1]:  # Recipe Diffusion names its summary only
        print(f"trace: {path}")
    print(result_summary(result))
    print(f"open {result.index}")
    return 0


def _recipe_diffusion_call(args: argparse.Namespace, recipe) -> tuple[dict, list[str]]:
    """Recipe Diffusion's keyword arguments from the options, checked before a model loads, and the notes for the user."""
    from cooklab.recipe_diffusion.noise_levels import check_level

    _positive_multiple_of_8("--height", args.height)
    _positive_multiple_of_8("--width", args.width)
    if args.steps < 1:
        raise ConfigError(f"--steps {args.steps}: use at least 1 denoising step.")
    check_level("--base-noise", args.base_noise)
    check_level("--object-noise", args.object_noise)
    switches, notes = _switches(args)
    kv_layers = _kv_layers(args.kv_layers)
    notes += model_notes(args.model, "recipe-diffusion", recipe)
    provider = mask_provider(args.masks)
    if args.model == "toy" and args.masks == "oracle" and switches["region_aware"]:
        notes.append(
            "container masks: the Toy Kitchen oracle finds the container in each reference frame by the world's "
            "palette (cooklab.toykitchen.oracle.OracleMaskProvider), not a detector."
        )
    if switches["region_aware"] and provider is None:
        notes.append(
            "no container masks: without --masks region-aware frames fall back to uniform noise; "
            "each frame's reason is on the page."
        )
    recipe_plan = _plan(args, recipe)
    if recipe_plan is not None:
        notes.append(f"containers and reference steps planned by the Cooking Agent ({recipe_plan.agent}).")
    call = dict(
        base_noise=args.base_noise,
        object_noise=args.object_noise,
        start_from=args.start_from,
        reference_latent=args.reference_latent,
        kv_layers=kv_layers,
        kv_cache_device=args.kv_cache_device,
        mask_provider=provider,
        plan=recipe_plan,
        **switches,
    )
    return call, notes


def _cookanything_call(args: argparse.Namespace, recipe, explicit: set[str]) -> tuple[dict, list[str]]:
    """CookAnything's keyword arguments from the options, checked before a model loads, and the notes for the user."""
    _check_cookanything(args, recipe, args.model in SMALL_MODELS)
    notes = _cookanything_notes(args, explicit, recipe)
    recipe_plan = _plan(args, recipe)
    if recipe_plan is not None:
        notes.append(f"step prompts enriched by the Cooking Agent ({recipe_plan.agent}).")
    call = dict(
        true_cfg_scale=args.true_cfg_scale,
        negative_prompt=args.negative_prompt if args.true_cfg_scale > 1 else None,
        regional=not args.no_regional,
        flexible_rope=not args.no_flexible_rope,
        rope_step_axis=args.rope_step_axis,
        cscc=not args.no_cscc,
        alpha=args.alpha,
        lam=args.lam,
        image_attention=args.image_attention,
        attention_backend=args.attention_backend,
        plan=recipe_plan,
        chunk_size=args.chunk_size,
        anchor=args.anchor,
        anchor_regions=args.anchor_regions,
        anchor_strength=args.anchor_strength,
    )
    if args.max_sequence_length is not None:  # else the pipeline reads its own T5's length
        call["max_sequence_length"] = args.max_sequence_length
    return call, notes


# ---- plan, demo, toykitchen ----------------------------------------------------------


def _plan_command(args: argparse.Namespace, command: str) -> int:
    """``cooklab plan``: the Cooking Agent's plan, printed or written."""
    recipe = cooklab.load_recipe(resolve_recipe(args.recipe))
    recipe_plan = _plan(args, recipe)
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


def _demo(args: argparse.Namespace, command: str) -> int:
    """``cooklab demo``: ``cooklab.demo.run_demo`` with the options."""
    from cooklab.demo import run_demo

    if args.steps < 1:
        raise ConfigError(f"--steps {args.steps}: use at least 1 denoising step.")
    run_demo(args.out, args.recipe, steps=args.steps, seed=args.seed, command=command)
    return 0


def _gallery(args: argparse.Namespace, command: str) -> int:
    """``cooklab gallery``: ``cooklab.gallery.write_gallery`` with the Toy Kitchen models on the CPU."""
    from cooklab.gallery import GalleryConfig, write_gallery

    config = GalleryConfig(args.out, args.screenshots, recipe=args.recipe, seed=args.seed, steps=args.steps)
    page = write_gallery(config, device=torch_device("cpu", small=True))
    print(f"wrote {page} ({len(config.notebooks)} notebooks' screenshots)")
    return 0


def _score(args: argparse.Namespace, command: str) -> int:
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


def _evaluate(args: argparse.Namespace, command: str) -> int:
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


def _train_lora(args: argparse.Namespace, command: str) -> int:
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
    last = result.losses[max(result.losses)] if result.losses else float("nan")
    start = f" (resumed at step {result.resumed_from})" if result.resumed_from else ""
    print(
        f"trained {config.name} to step {config.train.steps}{start} in {result.seconds:.0f} s, last loss {last:.4f}; "
        f"adapter in {result.adapter}, losses in {config.out / 'loss.jsonl'}"
    )
    return 0


def _toykitchen(args: argparse.Namespace, command: str) -> int:
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


# ---- entry point ---------------------------------------------------------------------


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Print a warning as one ``warning:`` line, above any progress bar instead of through it."""
    from tqdm.auto import tqdm

    tqdm.write(f"warning: {message}", file=sys.stderr if file is None else file)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``cooklab`` command with ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version, or a usage error (argparse has printed it)
        return exit_.code if isinstance(exit_.code, int) else 2
    command = shlex.join(["cooklab", *argv])
    handlers = {
        "generate": _generate,
        "plan": _plan_command,
        "demo": _demo,
        "score": _score,
        "evaluate": _evaluate,
        "train-lora": _train_lora,
        "toykitchen": _toykitchen,
        "gallery": _gallery,
    }
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return handlers[args.command](args, command)
    except CooklabError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted (files already written are complete; the rest were not written)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
