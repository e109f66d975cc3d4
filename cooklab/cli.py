"""The ``cooklab`` command.

    cooklab demo [--out outputs/demo]          offline end-to-end run of both pipelines on the Toy Kitchen models
    cooklab generate RECIPE [--model ID] --out DIR [options]

``generate`` runs Recipe Diffusion (default) or, with ``--pipeline cookanything``, CookAnything
on a recipe file and writes the frames, a storyboard, settings.json and index.html to ``--out``
(``cooklab.runs.run_and_report`` with ``cooklab.report``; CookAnything also writes canvas.png). ``--model toy`` (the default)
loads the Toy Kitchen models ``cooklab.models.toy_sd`` / ``toy_flux``, small diffusion models
trained on the procedural Toy Kitchen world (``docs/toykitchen.md``), with settings that suit
them (64x64, 30 steps, guidance 3.0, container masks from the world's oracle); ``--model tiny``
builds ``cooklab.models.tiny_sd`` / ``tiny_flux`` (random weights: the images are noise, but
every mechanism runs); anything else is a hub id or a local folder loaded with
``RecipeDiffusion.from_pretrained`` / ``CookAnything.from_pretrained``. Options of one pipeline
given with the other are refused (exit 2) rather than silently ignored. A CookAnything recipe of more
steps than ``--chunk-size`` (default 12, one canvas's limit) is generated in chunks joined by anchor
regions (``--anchor``; ``cooklab/cookanything/chunked.py``).

Errors cooklab raises on purpose (bad recipe, impossible setting, missing checkpoint) are
printed as ``error: <message>`` with exit code 2; anything else is a bug and shows its
traceback.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import cooklab
from cooklab.errors import ConfigError, CooklabError
from cooklab.recipe import DEMO_RECIPE, resolve_recipe
from cooklab.report import COMPARE_FILE, atomic_write, write_comparison
from cooklab.runs import (
    SMALL_MODELS,
    TOY_NOTE,
    Run,
    consistency_text,
    describe,
    load_pipeline,
    mask_provider,
    model_notes,
    quiet_loading,
    run_and_report,
    step_numbers,
    toy_words_note,
)

__all__ = ["build_parser", "main"]

PIPELINES = ("recipe-diffusion", "cookanything")
VARIANT_NAMES = (
    "independent",
    "kv_sharing",
    "region_aware",
    "region_aware_kv",
)  # VARIANTS' keys, without importing torch
SCHEDULERS = {"ddim": "DDIMScheduler", "dpm": "DPMSolverMultistepScheduler", "euler": "EulerDiscreteScheduler"}
TOY_SIZE = 64  # the Toy Kitchen models are trained at 64x64; the tiny ones default to it too
TOY_STEPS = 30  # DDIM / flow-matching steps the Toy Kitchen models are evaluated with (docs/toykitchen.md)
TOY_GUIDANCE = 3.0  # classifier-free guidance of toy_sd; true CFG of toy_flux (it has no guidance embedding)
DEMO_STEPS = 20  # 20 give much the same toy pictures as 30 and keep the demo under a minute on a busy 2-core CPU
# cooklab.metrics' CLIP, DINOv2 and batch size, without importing torch (tests/test_scoring.py checks they match)
SCORE_DEFAULTS = {"clip": "openai/clip-vit-base-patch32", "dino": "facebook/dinov2-base", "batch_size": 32}
FLUX_MAX_SEQUENCE_LENGTH = 512  # FluxPipeline's T5 limit (FLUX.1-dev's default; schnell uses 256)
# Options that belong to one pipeline: attribute -> flag. Their parser defaults are None/False so that
# "given" can be told from "left at the default"; the real defaults are filled in per pipeline.
RD_OPTIONS = {
    "variant": "--variant",
    "no_sequential": "--no-sequential",
    "no_kv_sharing": "--no-kv-sharing",
    "no_region_aware": "--no-region-aware",
    "base_noise": "--base-noise",
    "object_noise": "--object-noise",
    "kv_layers": "--kv-layers",
    "masks": "--masks",
    "kv_cache_device": "--kv-cache-device",
    "scheduler": "--scheduler",
    "start_from": "--start-from",
    "reference_latent": "--reference-latent",
}
CA_OPTIONS = {
    "max_sequence_length": "--max-sequence-length",
    "no_regional": "--no-regional",
    "no_flexible_rope": "--no-flexible-rope",
    "no_cscc": "--no-cscc",
    "alpha": "--alpha",
    "lam": "--lam",
    "image_attention": "--image-attention",
    "rope_step_axis": "--rope-step-axis",
    "attention_backend": "--attention-backend",
    "true_cfg_scale": "--true-cfg-scale",
    "negative_prompt": "--negative-prompt",
    "chunk_size": "--chunk-size",
    "anchor": "--anchor",
    "anchor_regions": "--anchor-regions",
    "anchor_strength": "--anchor-strength",
}
DEFAULTS = {
    "recipe-diffusion": dict(
        steps=20,
        guidance=7.5,
        base_noise=0.999,
        object_noise=0.9,
        kv_layers="mid,up",
        start_from="previous",
        reference_latent="encoded",
    ),
    "cookanything": dict(
        steps=28,
        guidance=3.5,
        alpha=0.1,
        lam=0.2,
        image_attention="region",
        attention_backend="auto",
        true_cfg_scale=1.0,
        anchor="fixed",
        anchor_regions=1,
    ),
}
# --model toy: what the Toy Kitchen models are evaluated with (they override DEFAULTS)
TOY_DEFAULTS = {
    "recipe-diffusion": dict(steps=TOY_STEPS, guidance=TOY_GUIDANCE, masks="oracle"),
    "cookanything": dict(steps=TOY_STEPS, true_cfg_scale=TOY_GUIDANCE),
}


# ---- argument parsing ----------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cooklab",
        description="Consistent multi-step recipe images with diffusion models (Recipe Diffusion, CookAnything).",
    )
    parser.add_argument("--version", action="version", version=f"cooklab {cooklab.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    gen = commands.add_parser(
        "generate",
        help="illustrate a recipe file and write frames, storyboard, settings.json and index.html",
        description=(
            "Generate one image per recipe step with Recipe Diffusion (frame by frame, Stable Diffusion) or CookAnything "
            "(all steps on one Flux canvas, one region per step; a long recipe in chunks, see --chunk-size) and write the run "
            "to --out."
        ),
    )
    gen.add_argument(
        "recipe", metavar="RECIPE", help="recipe file (.yaml, .json, .txt) or the name of a shipped recipe"
    )
    gen.add_argument(
        "--pipeline", choices=PIPELINES, default="recipe-diffusion", help="method (default: recipe-diffusion)"
    )
    gen.add_argument(
        "--model",
        default="toy",
        help="'toy' (default: the Toy Kitchen models trained on the procedural toy world, offline), 'tiny' (offline, "
        "random weights: noise), a Hugging Face hub id, or a local folder",
    )
    gen.add_argument("--out", required=True, type=Path, help="folder to write the run to")
    gen.add_argument(
        "--seed",
        type=int,
        default=0,
        help="frame (cookanything: region) i uses seed + i; also the tiny models' weights (default: 0)",
    )
    gen.add_argument(
        "--steps", type=int, default=None, help="denoising steps (default: 30 for toy; else 20, 28 for cookanything)"
    )
    size_help = "image {}, a multiple of 8; cookanything: of ONE region, a multiple of 16 (default: the model's; 64 for toy and tiny)"
    gen.add_argument("--height", type=int, default=None, help=size_help.format("height"))
    gen.add_argument("--width", type=int, default=None, help=size_help.format("width"))
    gen.add_argument(
        "--guidance",
        type=float,
        default=None,
        help="guidance scale (default: 3.0 for toy, else 7.5, classifier-free; cookanything: Flux's guidance embedding, "
        "3.5, ignored by a model without one such as toy: use --true-cfg-scale)",
    )
    gen.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default=None,
        help="default: cpu for toy and tiny, else the best available",
    )
    gen.add_argument(
        "--trace",
        action="store_true",
        help="record attention and noise; writes trace_summary.txt and a figure (recipe-diffusion: trace_reference_share.png)",
    )

    _agent_options(gen)

    rd = gen.add_argument_group("Recipe Diffusion options (--pipeline recipe-diffusion)")
    rd.add_argument(
        "--variant",
        choices=VARIANT_NAMES,
        default=None,
        help="the paper's variants (Table II); default: all mechanisms on (region_aware_kv)",
    )
    rd.add_argument("--no-sequential", action="store_true", help="start every frame from pure noise")
    rd.add_argument(
        "--no-kv-sharing", action="store_true", help="do not attend to the reference frame's keys and values"
    )
    rd.add_argument("--no-region-aware", action="store_true", help="noise the whole reference latent uniformly")
    rd.add_argument(
        "--base-noise", type=float, default=None, help="noise level of the reference latent (default: 0.999)"
    )
    rd.add_argument(
        "--object-noise", type=float, default=None, help="noise level inside the container mask (default: 0.9)"
    )
    rd.add_argument(
        "--start-from",
        choices=("previous", "reference"),
        default=None,
        help="where a frame without region-aware noise starts: the previous frame (the paper, default) or its "
        "reference frame",
    )
    rd.add_argument(
        "--reference-latent",
        choices=("encoded", "final"),
        default=None,
        help="a frame's latent as the next frame sees it: its image encoded by the VAE (the paper, default) or the "
        "sampler's final latent",
    )
    rd.add_argument(
        "--kv-layers",
        type=str,
        default=None,
        help="layers sharing K/V, groups or names, comma separated (default: mid,up)",
    )
    rd.add_argument(
        "--masks",
        default=None,
        metavar="SPEC",
        help="container masks for region-aware noise: 'oracle' (the Toy Kitchen's palette oracle on the reference frame; "
        "the default with --model toy), 'grounded-sam' (GroundingDINO + SAM on the reference frame; with --model toy the "
        "pair trained on the toy world, offline, else downloads the checkpoints) or 'box:X0,Y0,X1,Y1' (a fixed pixel box for every frame that reopens a container)",
    )
    rd.add_argument(
        "--kv-cache-device", default=None, help="where reference K/V are kept, e.g. cpu (default: the compute device)"
    )
    rd.add_argument(
        "--scheduler", choices=list(SCHEDULERS), default=None, help="replace the model's scheduler (default: keep it)"
    )

    ca = gen.add_argument_group("CookAnything options (--pipeline cookanything)")
    ca.add_argument(
        "--true-cfg-scale",
        type=float,
        default=None,
        metavar="S",
        help="true classifier-free guidance: > 1 runs the transformer a second time per step with --negative-prompt and "
        "pushes away from it (for models without guidance distillation); <= 1 is off (default: 3.0 for toy, else 1.0)",
    )
    ca.add_argument(
        "--negative-prompt",
        default=None,
        metavar="TEXT",
        help="the negative prompt of --true-cfg-scale, used for the whole description and every step (default: '')",
    )
    ca.add_argument(
        "--max-sequence-length",
        type=int,
        default=None,
        metavar="N",
        help=f"T5 tokens of each step's prompt and of the whole description (default: the model's T5 length, at most "
        f"{FLUX_MAX_SEQUENCE_LENGTH}; 64 for toy and tiny)",
    )
    ca.add_argument(
        "--no-regional",
        action="store_true",
        help="no Step-wise Regional Control: plain Flux attention over the whole canvas",
    )
    ca.add_argument(
        "--no-flexible-rope",
        action="store_true",
        help="one tall image's position ids instead of ids restarting in every region",
    )
    ca.add_argument(
        "--no-cscc", action="store_true", help="no Cross-Step Consistency Control (step prompts encoded alone only)"
    )
    ca.add_argument(
        "--alpha", type=float, default=None, help="weight of the whole-description base branch, 0..1 (default: 0.1)"
    )
    ca.add_argument("--lam", type=float, default=None, help="CSCC weight lambda, >= 0 (default: 0.2)")
    ca.add_argument(
        "--image-attention",
        choices=("region", "global"),
        default=None,
        help="regional branch: image tokens see their own region only (the paper) or every image token (default: region)",
    )
    ca.add_argument(
        "--rope-step-axis", action="store_true", help="Flexible RoPE: put the step index on the unused position axis 0"
    )
    ca.add_argument(
        "--attention-backend",
        choices=("auto", "batched", "flex", "masked"),
        default=None,
        help="regional attention path (default: auto = flex on CUDA, batched SDPA on the CPU; masked for --image-attention global)",
    )
    ca.add_argument(
        "--chunk-size",
        type=int,
        default=None,
        metavar="K",
        help="most regions on one canvas: a longer recipe is generated as several canvases (chunks) joined by anchor "
        "regions (default: 12, what one GPU holds at 512x512; larger K needs more memory)",
    )
    ca.add_argument(
        "--anchor",
        choices=("fixed", "renoise", "none"),
        default=None,
        help="how a chunk carries the previous chunk's last frames: fixed = pinned to their final latents (in-context), "
        "renoise = re-noised and denoised again (image-to-image), none = independent chunks (default: fixed)",
    )
    ca.add_argument(
        "--anchor-regions",
        type=int,
        default=None,
        metavar="A",
        help="anchor regions at the start of every later chunk, 1 <= A < --chunk-size (default: 1)",
    )
    ca.add_argument(
        "--anchor-strength",
        type=float,
        default=None,
        metavar="S",
        help="--anchor renoise: the noise level the anchor restarts from, in (0, 1] (default: 0.5)",
    )

    plan = commands.add_parser(
        "plan",
        help="run the Cooking Agent on a recipe: containers, reference steps, ingredients, enriched prompts (JSON)",
        description="Plan a recipe with the Cooking Agent (OpenAI or the offline rules) and print or save the plan.",
    )
    plan.add_argument(
        "recipe", metavar="RECIPE", help="recipe file (.yaml, .json, .txt) or the name of a shipped recipe"
    )
    _agent_options(plan, default="auto")
    plan.add_argument("--out", type=Path, default=None, help="write the plan (JSON) here instead of printing it")
    plan.add_argument(
        "--recipe-out", type=Path, default=None, help="also write the recipe with the planned metadata (YAML/JSON)"
    )

    demo = commands.add_parser(
        "demo",
        help="offline end-to-end demo of both pipelines on the Toy Kitchen models (under a minute on a CPU)",
        description=(
            "Illustrate a 4-step Toy Kitchen recipe with the Toy Kitchen models, offline: Recipe Diffusion's region_aware_kv "
            "variant (container masks from the toy world's oracle) and its independent variant for comparison, and "
            "CookAnything with every mechanism on and without Step-wise Regional Control; writes each run's storyboard, "
            "page and trace figures, and compare.png / index.html: the runs in pairs, each with the oracle's container "
            "consistency."
        ),
    )
    demo.add_argument(
        "--out",
        type=Path,
        default=Path("outputs/demo"),
        help="folder for the four runs and compare.png (default: outputs/demo)",
    )
    demo.add_argument(
        "--recipe",
        default=None,
        help=f"recipe file or shipped recipe name (default: data/toykitchen/recipes/{DEMO_RECIPE}; the models know only the "
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

    gallery = commands.add_parser(
        "gallery",
        help="docs/gallery.md: both pipelines and their ablations on the Toy Kitchen, and the notebooks' explorers as "
        "the browser test saw them",
        description=(
            "Run Recipe Diffusion's four variants and CookAnything with each mechanism switched off on a Toy Kitchen "
            "recipe (one seed, offline), draw one ablation figure per pipeline with the oracle's container consistency, "
            "copy the browser test's explorer screenshots (make test-browser) and write gallery.md. `make gallery` does both."
        ),
    )
    gallery.add_argument(
        "--out",
        type=Path,
        default=Path("docs"),
        help="folder of gallery.md; images go to OUT/img/gallery (default: docs)",
    )
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

    sc = commands.add_parser(
        "score",
        help="measure a run folder (CLIP, DINOv2, the Toy Kitchen oracle, a judge): writes metrics.json and a table on its page",
        description=(
            "Measure the frames of a folder written by `cooklab generate` or `cooklab demo` with cooklab.metrics (docs/metrics.md): "
            "writes metrics.json and adds a metrics table to its index.html. Without --metrics: the oracle's for a Toy "
            "Kitchen run, the CLIP and DINOv2 metrics when those models load (offline: from the cache or a folder), the "
            "judge's with --judge."
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
        help=f"CLIP checkpoint, hub id or folder (default: {SCORE_DEFAULTS['clip']}, if it loads)",
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
        "Kitchen oracle; the default for a Toy Kitchen run), 'grounded-sam' (for a --model toy run the pair trained on the "
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

    ev = commands.add_parser(
        "evaluate",
        help="compare methods over recipes and seeds (resumable): results.jsonl, tables.md, sweep plots",
        description="Generate and score every method x grid point x recipe x seed of CONFIG (cooklab/evaluation/config.py; "
        "data/eval/toy_small.yaml is an example), then write the tables. Killed, it resumes where it stopped; under "
        "`accelerate launch --num_processes P -m cooklab evaluate CONFIG` the units are split across P processes.",
    )
    ev.add_argument("config", type=Path, metavar="CONFIG.yaml", help="the evaluation to run")
    ev.add_argument(
        "--tables-only",
        action="store_true",
        help="write tables.md and the plots again from results.jsonl, generate nothing",
    )
    tl = commands.add_parser(
        "train-lora",
        help="train a LoRA on the Flux transformer over multi-step canvases (CookAnything's training-based mode)",
        description="Train the LoRA of CONFIG (cooklab/training/config.py; data/toykitchen/lora/train.yaml is an example) with "
        "the rectified-flow objective on canvases laid out exactly as CookAnything generates them. Writes OUT/adapter (read by "
        "CookAnything.load_lora and diffusers' FluxPipeline.load_lora_weights), OUT/loss.jsonl and OUT/checkpoints; killed, it "
        "resumes from the last checkpoint. Several GPUs: `accelerate launch --num_processes P -m cooklab train-lora CONFIG`.",
    )
    tl.add_argument("config", type=Path, metavar="CONFIG.yaml", help="the training run")
    tl.add_argument(
        "--no-resume", action="store_true", help="start over: delete OUT/checkpoints instead of continuing from them"
    )
    tl.add_argument(
        "--steps", type=int, default=None, help="train to this many optimizer steps (overrides train.steps)"
    )
    toykitchen = commands.add_parser(
        "toykitchen",
        help="the Toy Kitchen: train its small models",
        description="The Toy Kitchen world (cooklab.toykitchen).",
    )
    tk = toykitchen.add_subparsers(dest="tk_command", metavar="ACTION", required=True)
    train = tk.add_parser(
        "train",
        help="train the Toy Kitchen model sets from scratch (minutes on one GPU; --preset cpu: reduced, slow)",
        description="Render the Toy Kitchen training set and train the autoencoder, the SD-style set, the Flux-style set and the "
        "Toy Kitchen CLIP (the metrics' backbone). "
        "--preset gpu made the weights in data/toykitchen; --preset cpu is a reduced run for a machine without a GPU.",
    )
    train.add_argument(
        "--out",
        type=Path,
        default=Path("outputs/toykitchen"),
        help="folder for sd/, flux/, clip/ and the logs "
        "(default: outputs/toykitchen; data/toykitchen replaces the shipped weights)",
    )
    train.add_argument(
        "--preset",
        choices=("gpu", "cpu", "smoke"),
        default=None,
        help="sizes and steps (default: gpu on CUDA, else cpu)",
    )
    train.add_argument(
        "--stages", default="autoencoder,sd,flux,clip", help="comma-separated stages (default: all four, in order)"
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
    return parser


def _agent_options(parser: argparse.ArgumentParser, default: str | None = None) -> None:
    parser.add_argument(
        "--agent",
        choices=("auto", "rules", "openai"),
        default=default,
        help="plan the recipe with the Cooking Agent first: openai (needs OPENAI_API_KEY or --base-url), rules (offline), "
        "auto (openai when a key is set, else rules)"
        + ("" if default else "; default: use the recipe's own metadata"),
    )
    parser.add_argument(
        "--agent-model", default=None, help="the LLM for --agent openai (default: gpt-4o, the papers')"
    )
    parser.add_argument(
        "--base-url", default=None, help="an OpenAI-compatible server, e.g. a local LLM at http://127.0.0.1:8000/v1"
    )


# ---- option checks: everything refused before a model loads --------------------------


def _given(args: argparse.Namespace, attr: str) -> bool:
    """True if the option was on the command line (its parser default is None, or False for a switch)."""
    value = getattr(args, attr)
    return value is not None and value is not False  # not `in (None, False)`: 0 == False would hide --alpha 0


def _pipeline_options(args: argparse.Namespace) -> None:
    """Refuse the other pipeline's options, then fill in this pipeline's defaults."""
    other = CA_OPTIONS if args.pipeline == "recipe-diffusion" else RD_OPTIONS
    given = [flag for attr, flag in other.items() if _given(args, attr)]
    if given:
        owner = "CookAnything" if other is CA_OPTIONS else "Recipe Diffusion"
        use = "cookanything" if other is CA_OPTIONS else "recipe-diffusion"
        raise ConfigError(
            f"{', '.join(given)}: {'an option' if len(given) == 1 else 'options'} of {owner}, not of --pipeline {args.pipeline}; "
            f"add --pipeline {use} or drop {'it' if len(given) == 1 else 'them'}."
        )
    defaults = dict(DEFAULTS[args.pipeline])
    if args.model == "toy":
        defaults.update(TOY_DEFAULTS[args.pipeline])
    for attr, value in defaults.items():
        if getattr(args, attr) is None:
            setattr(args, attr, value)


def _positive_multiple_of_8(name: str, value: int | None) -> None:
    if value is not None and (value <= 0 or value % 8):
        nearest = max(8, round(value / 8) * 8)
        raise ConfigError(f"{name} {value}: height and width must be positive multiples of 8 (e.g. {nearest}).")


def _positive_multiple_of_16(name: str, value: int | None) -> None:
    """Flux: VAE factor 8 times the 2x2 latent packing."""
    if value is not None and (value <= 0 or value % 16):
        nearest = max(16, round(value / 16) * 16)
        raise ConfigError(
            f"{name} {value}: with --pipeline cookanything the height and width of one region must be positive "
            f"multiples of 16 (Flux packs 2x2 latent pixels of an 8x VAE into one token), e.g. {nearest}."
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


# CookAnything's parameters -> their flags; the switches' flags turn them off (--no-regional: regional=False)
CA_FLAGS = {
    "num_inference_steps": "--steps",
    "height": "--height",
    "width": "--width",
    "guidance_scale": "--guidance",
    "true_cfg_scale": "--true-cfg-scale",
    "negative_prompt": "--negative-prompt",
    "max_sequence_length": "--max-sequence-length",
    "rope_step_axis": "--rope-step-axis",
    "alpha": "--alpha",
    "lam": "--lam",
    "image_attention": "--image-attention",
    "attention_backend": "--attention-backend",
    "chunk_size": "--chunk-size",
    "anchor_regions": "--anchor-regions",
    "anchor_strength": "--anchor-strength",
    "anchor": "--anchor",
}
CA_SWITCHES = {"regional": "--no-regional", "flexible_rope": "--no-flexible-rope", "cscc": "--no-cscc"}
_PARAMETER = re.compile(
    rf"\b({'|'.join([*CA_FLAGS, *CA_SWITCHES])})(?!\w)(?:=('[^']*'|[^\s,:;()]+))?"
)  # name or name=value


def _as_flags(message: str) -> str:
    """A CookAnything error message in the command line's words: ``anchor_regions=3`` -> ``--anchor-regions 3``.

    Values of switches become their flag (``regional=False`` -> ``--no-regional``, ``regional=True`` ->
    ``without --no-regional``); a bare parameter name (one with ``_``) becomes its flag.
    """

    def flag(match: re.Match) -> str:
        name, value = match.group(1), match.group(2)
        if value is None:
            return CA_FLAGS.get(name, CA_SWITCHES.get(name)) if "_" in name else name
        end = "." if value.endswith(".") and not value.startswith("'") else ""
        value = value.removesuffix(end).strip("'")
        if name in CA_SWITCHES:
            return (CA_SWITCHES[name] if value == "False" else f"without {CA_SWITCHES[name]}") + end
        return (CA_FLAGS[name] if value == "True" else f"{CA_FLAGS[name]} {value}") + end

    return _PARAMETER.sub(flag, message)


def _cookanything_settings(args: argparse.Namespace, call: dict):
    """The call's ``CookAnythingSettings``, checked before a (large) model loads; errors name the flags.

    A region's side must be a positive multiple of 16 for the command line (FLUX.1's VAE factor 8
    times the 2x2 latent packing); the pipeline checks the loaded model's own factor.
    """
    from cooklab.cookanything.settings import CookAnythingSettings

    _positive_multiple_of_16("--height", args.height)
    _positive_multiple_of_16("--width", args.width)
    try:
        return CookAnythingSettings.build(num_inference_steps=args.steps, **call)
    except ConfigError as error:
        raise ConfigError(_as_flags(str(error))) from None


def _cookanything_notes(args: argparse.Namespace, explicit: set[str], recipe, chunking) -> list[str]:
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
    from cooklab.cookanything.chunked import plan_chunks

    chunks = plan_chunks(len(recipe), chunking)
    if len(chunks) > 1:
        carried = (
            "no anchor: the chunks share only the text"
            if chunking.anchor == "none"
            else f"each later one starts with {chunking.anchors} anchor region(s) from the one before "
            f"({chunking.anchor})"
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


def _device(name: str | None, small: bool):
    """The torch device for --device NAME; the small offline models (toy, tiny) default to the CPU."""
    import torch

    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "--device cuda: no CUDA device is available here (torch.cuda.is_available() is False); use --device cpu."
        )
    if name is None and small:
        return torch.device("cpu")
    return None if name is None else torch.device(name)


# ---- generate ------------------------------------------------------------------------


def _generate(args: argparse.Namespace, command: str) -> int:
    """``cooklab generate``: check the options, load the model, then one ``run_and_report``."""
    explicit = {attr for attr in (*CA_OPTIONS, "guidance") if _given(args, attr)}
    _pipeline_options(args)
    small = args.model in SMALL_MODELS
    recipe = cooklab.load_recipe(resolve_recipe(args.recipe))  # a bad recipe fails before any model loads
    canvas = args.pipeline == "cookanything"
    call, notes = _cookanything_call(args, recipe, explicit) if canvas else _recipe_diffusion_call(args, recipe)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)

    scheduler = SCHEDULERS[args.scheduler] if args.scheduler else None
    pipe = load_pipeline(args.pipeline, args.model, args.seed, _device(args.device, small), scheduler)
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
    print(describe(result))
    print(f"open {result.index}")
    return 0


def _recipe_diffusion_call(args: argparse.Namespace, recipe) -> tuple[dict, list[str]]:
    """Recipe Diffusion's keyword arguments from the options,
    checked before a model loads, and the notes for the user.
    """
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
        chunk_size=args.chunk_size,
        anchor=args.anchor,
        anchor_regions=args.anchor_regions,
        anchor_strength=args.anchor_strength,
    )
    if args.max_sequence_length is not None:  # else the pipeline reads its own T5's length
        call["max_sequence_length"] = args.max_sequence_length
    settings = _cookanything_settings(args, call)
    notes = _cookanything_notes(args, explicit, recipe, settings.chunking)
    call["plan"] = _plan(args, recipe)
    if call["plan"] is not None:
        notes.append(f"step prompts enriched by the Cooking Agent ({call['plan'].agent}).")
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


# compare.png: the demo's runs in pairs, the run without the mechanism first:
# {heading: ((run folder, row label, remark after the row's consistency or None), ...)}
DEMO_COMPARISONS = {
    "Recipe Diffusion: independent vs region-aware noise + K/V sharing": (
        ("independent", "independent: every frame from its own noise", None),
        ("region_aware_kv", "region_aware_kv: from the previous frame, region-aware noise + K/V sharing", None),
    ),
    "CookAnything: without SRC vs with SRC": (
        (
            "cookanything_no_src",
            "cookanything_no_src: one canvas, every region attends to all (Flexible RoPE, CSCC)",
            "trivially high: without SRC the regions become near-copies of one picture",
        ),
        ("cookanything", "cookanything: one canvas, Step-wise Regional Control (+ Flexible RoPE, CSCC)", None),
    ),
}
NO_SRC_NOTE = (
    "The oracle's consistency of cookanything_no_src is trivially high: without SRC every region attends to the whole "
    "canvas and the regions become near-copies of one picture, so the container stays because nothing changes, and the "
    "steps' food is almost never drawn (docs/toykitchen.md). Look at the pictures in compare.png, not only the numbers."
)


def _demo(args: argparse.Namespace, command: str) -> int:
    """Both pipelines on a Toy Kitchen recipe with the Toy Kitchen models: four runs, each with its page and figures,
    and ``compare.png`` / ``index.html`` above them: the runs in pairs with and without a mechanism, each row with the
    oracle's container consistency."""
    from cooklab.toykitchen.oracle import OracleMaskProvider

    if args.steps < 1:
        raise ConfigError(f"--steps {args.steps}: use at least 1 denoising step.")
    path = resolve_recipe(args.recipe)
    recipe = cooklab.load_recipe(path)
    device = _device("cpu", small=True)
    size = TOY_SIZE
    print(
        f"demo: {recipe.title!r} from {path} ({len(recipe)} steps), Toy Kitchen models {size}x{size}, "
        f"{args.steps} denoising steps, guidance {TOY_GUIDANCE:g}"
    )
    words = toy_words_note(recipe)
    print(f"note: {TOY_NOTE}")
    reopened = [i for i, step in enumerate(recipe.steps) if step.reference_step is not None and step.container]
    if reopened:
        mask_note = (
            "Container masks for region-aware noise come from the Toy Kitchen oracle (cooklab.toykitchen.oracle."
            "OracleMaskProvider): the container's pixels in each reference frame, read by the world's palette, not a "
            f"detector; asked for the steps that reopen a container ({step_numbers(reopened)})."
        )
    else:
        mask_note = (
            "This recipe names no container that reappears (no reference_step), so no frame gets region-aware noise."
        )
    for note in [mask_note] + ([words] if words else []):
        print(f"note: {note}")

    common = dict(seed=args.seed, num_inference_steps=args.steps, height=size, width=size, progress=False)
    sd_call = dict(common, guidance_scale=TOY_GUIDANCE)
    rd_notes = model_notes("toy", "recipe-diffusion", recipe)
    sd_runs = {
        # independent frames, for comparison
        "independent": Run(
            recipe,
            args.out / "independent",
            model="toy",
            pipeline="recipe-diffusion",
            command=command,
            call=dict(sd_call, variant="independent"),
            single_thread=True,
            notes=[*rd_notes, "Independent frames: every step from its own noise, for comparison."],
        ),
        # all mechanisms on, traced: reference share and the noise each frame started from
        "region_aware_kv": Run(
            recipe,
            args.out / "region_aware_kv",
            model="toy",
            pipeline="recipe-diffusion",
            command=command,
            call=dict(sd_call, variant="region_aware_kv", mask_provider=OracleMaskProvider()),
            notes=[*rd_notes, mask_note],
            trace=True,
            capture=("reference_share", "noise"),
            single_thread=True,
            figures=("trace_reference_share.png", "trace_reference_share_map.png", "trace_noise.png"),
        ),
    }
    ca_call = dict(common, true_cfg_scale=TOY_GUIDANCE)
    ca_notes = model_notes("toy", "cookanything", recipe)
    ca_runs = {
        # Step-wise Regional Control off, for comparison
        "cookanything_no_src": Run(
            recipe,
            args.out / "cookanything_no_src",
            model="toy",
            pipeline="cookanything",
            command=command,
            call=dict(ca_call, regional=False),
            single_thread=True,
            quiet=True,
            notes=[
                *ca_notes,
                "Step-wise Regional Control off (regional=False): every region attends to the whole canvas "
                "and every step's text, for comparison with the cookanything run.",
            ],
        ),
        # every mechanism on, traced: where each step's text is read on the canvas
        "cookanything": Run(
            recipe,
            args.out / "cookanything",
            model="toy",
            pipeline="cookanything",
            command=command,
            call=ca_call,
            notes=ca_notes,
            trace=True,
            capture=("text_image_attention", "base_contribution"),
            single_thread=True,
            quiet=True,
            figures=("trace_text_image.png", "trace_base_contribution.png"),
        ),
    }
    results = _demo_runs("recipe-diffusion", sd_runs, args.seed, device)
    results |= _demo_runs("cookanything", ca_runs, args.seed, device)  # a recipe of more than 12 steps: in chunks

    rows, pages, group_titles = [], [], {}  # compare.png: one row per run, each pair under its heading
    for heading, pair in DEMO_COMPARISONS.items():
        group_titles[len(rows)] = heading
        for name, label, remark in pair:
            result, kept = results[name]
            rows.append(
                (label, result.out.images, f"{consistency_text(kept)} (oracle)" + (f"; {remark}" if remark else ""))
            )
            pages.append(result.index)
    notes = [
        "The images come from the Toy Kitchen models (cooklab.models.toy_sd for Recipe Diffusion, toy_flux for CookAnything), "
        "small diffusion models trained on the procedural Toy Kitchen world (docs/toykitchen.md).",
        "Under each row: the Toy Kitchen oracle's container consistency (cooklab.toykitchen.oracle.container_consistency): "
        "the later frames with frame 1's container colour and a container mask overlapping frame 1's with IoU >= 0.5.",
    ]
    print(f"note: {NO_SRC_NOTE}")
    notes.append(NO_SRC_NOTE)
    index = write_comparison(
        args.out,
        rows,
        recipe.texts,
        pages=pages,
        group_titles=group_titles,
        notes=notes,
        title=f"{recipe.title}: what the consistency mechanisms change",
    )
    print(f"compare: {args.out / COMPARE_FILE}; open {index}")
    return 0


def _demo_runs(pipeline: str, runs: dict, seed: int, device) -> dict:
    """The demo's runs of one pipeline: load its Toy Kitchen model, make and write each run, print what it did and the
    oracle's container consistency; returns ``{name: (RunResult, kept)}`` with ``kept`` from ``container_consistency``."""
    from cooklab.toykitchen.oracle import container_consistency

    with quiet_loading():
        pipe = load_pipeline(pipeline, "toy", seed, device)
    results = {}
    for name, run in runs.items():
        result = run_and_report(pipe, run)
        kept = container_consistency(result.out.images)  # [N - 1] bool: frames 2..N keep frame 1's container
        results[name] = result, kept
        print(f"{name}: {describe(result)}")
        print(f"  oracle: {consistency_text(kept)}")
        print(f"open {result.index}")
        if result.trace_files:
            print(f"  trace: {', '.join(p.name for p in result.trace_files)}")
    return results


def _gallery(args: argparse.Namespace, command: str) -> int:
    """``cooklab gallery``: ``cooklab.gallery.write_gallery`` with the Toy Kitchen models on the CPU."""
    from cooklab.gallery import GalleryConfig, write_gallery

    config = GalleryConfig(
        out=args.out,
        screenshots=args.screenshots,
        recipe=args.recipe,
        seed=args.seed,
        steps=args.steps,
        size=TOY_SIZE,
        guidance=TOY_GUIDANCE,
    )
    page = write_gallery(config, device=_device("cpu", small=True))
    print(f"wrote {page} ({len(config.notebooks)} notebooks' screenshots)")
    return 0


def _score(args: argparse.Namespace, command: str) -> int:
    """``cooklab score RUN_FOLDER``: the settings go to ``cooklab.scoring.score_run``."""
    from cooklab.metrics import VisionJudge
    from cooklab.scoring import ScoreRun, score_run, summary_lines

    metrics = None if args.metrics is None else [m.strip() for m in args.metrics.split(",") if m.strip()]
    judge = None if args.judge is None else VisionJudge(args.judge, base_url=args.judge_base_url)
    result = score_run(
        ScoreRun(
            args.run,
            metrics,
            clip=args.clip,
            dino=args.dino,
            judge=judge,
            device=args.device,
            batch_size=args.batch_size,
            pairs=args.pairs,
            masks=args.masks,
        )
    )
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
    """``cooklab toykitchen train``."""
    import torch

    from cooklab.toykitchen.train import STAGES, train

    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise ConfigError(f"--stages {args.stages}: unknown stage(s) {unknown}; choose from {', '.join(STAGES)}.")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    preset = args.preset or ("gpu" if device.startswith("cuda") else "cpu")
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
    return 0


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
