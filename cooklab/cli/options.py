"""The ``cooklab`` command's options: each subcommand's flags, which pipeline owns which, and their defaults.

``add_generate_parser`` adds ``cooklab generate``'s parser; ``add_overwrite`` and ``add_agent_options``
are the options several commands share (the other commands' parsers sit with the commands, in
``commands.py`` and ``toykitchen.py``). ``cooklab generate``
takes options of two pipelines: ``RD_OPTIONS`` and ``CA_OPTIONS`` (attribute -> flag) say which
pipeline owns which, ``fill_pipeline_options`` refuses the other pipeline's and fills in the defaults
(``DEFAULTS`` per pipeline, ``TOY_DEFAULTS`` for the Toy Kitchen models). Nothing here imports
torch, so ``cooklab --help`` answers at once.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cooklab.errors import ConfigError
from cooklab.named_runs import TOY_GUIDANCE, TOY_STEPS

__all__ = [
    "CA_OPTIONS",
    "DEFAULTS",
    "FLUX_MAX_SEQUENCE_LENGTH",
    "PIPELINES",
    "RD_OPTIONS",
    "SCHEDULERS",
    "SCORE_DEFAULTS",
    "TOY_DEFAULTS",
    "VARIANT_NAMES",
    "add_agent_options",
    "add_generate_parser",
    "add_overwrite",
    "fill_pipeline_options",
    "given",
]

PIPELINES = ("recipe-diffusion", "cookanything")
VARIANT_NAMES = (
    "independent",
    "kv_sharing",
    "region_aware",
    "region_aware_kv",
)  # VARIANTS' keys, without importing torch
SCHEDULERS = {"ddim": "DDIMScheduler", "dpm": "DPMSolverMultistepScheduler", "euler": "EulerDiscreteScheduler"}
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
    "chunk_text": "--chunk-text",
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
        chunk_text="window",
    ),
}
# --model toy: what the Toy Kitchen models are evaluated with (they override DEFAULTS)
TOY_DEFAULTS = {
    "recipe-diffusion": dict(steps=TOY_STEPS, guidance=TOY_GUIDANCE, masks="oracle"),
    "cookanything": dict(steps=TOY_STEPS, true_cfg_scale=TOY_GUIDANCE),
}


def given(args: argparse.Namespace, attr: str) -> bool:
    """True if the option was on the command line (its parser default is None, or False for a switch)."""
    value = getattr(args, attr)
    return value is not None and value is not False  # not `in (None, False)`: 0 == False would hide --alpha 0


def add_quiet(parser: argparse.ArgumentParser) -> None:
    """``--quiet`` of a long-running command: no progress bar; warnings and errors are still printed."""
    parser.add_argument(
        "--quiet", action="store_true", help="no progress bars; print only warnings, errors and the result"
    )


def add_overwrite(parser: argparse.ArgumentParser, what: str) -> None:
    """``--overwrite``: replace an earlier cooklab ``what`` in --out (its files only; nothing else is touched)."""
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help=f"--out holds an earlier {what} of cooklab: replace its files (the folder's other files are never "
        "touched; a folder of other files is refused)",
    )


def fill_pipeline_options(args: argparse.Namespace) -> None:
    """Refuse the other pipeline's options, then fill in this pipeline's defaults (``cooklab generate``)."""
    other = CA_OPTIONS if args.pipeline == "recipe-diffusion" else RD_OPTIONS
    flags = [flag for attr, flag in other.items() if given(args, attr)]
    if flags:
        owner = "CookAnything" if other is CA_OPTIONS else "Recipe Diffusion"
        use = "cookanything" if other is CA_OPTIONS else "recipe-diffusion"
        raise ConfigError(
            f"{', '.join(flags)}: {'an option' if len(flags) == 1 else 'options'} of {owner}, "
            f"not of --pipeline {args.pipeline}; add --pipeline {use} or drop {'it' if len(flags) == 1 else 'them'}."
        )
    defaults = dict(DEFAULTS[args.pipeline])
    if args.model == "toy":
        defaults.update(TOY_DEFAULTS[args.pipeline])
    for attr, value in defaults.items():
        if getattr(args, attr) is None:
            setattr(args, attr, value)


def add_generate_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """``cooklab generate``: the recipe, the model and the sampler, then each pipeline's own options in a group."""
    gen = commands.add_parser(
        "generate",
        help="illustrate a recipe file and write frames, storyboard, settings.json and index.html",
        description=(
            "Generate one image per recipe step with Recipe Diffusion (frame by frame, Stable Diffusion) or "
            "CookAnything "
            "(all steps on one Flux canvas, one region per step; a long recipe in chunks, see --chunk-size) and "
            "write the run "
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
    gen.add_argument("--out", required=True, type=Path, help="folder to write the run to (a new one)")
    add_overwrite(gen, "run")
    gen.add_argument(
        "--seed",
        type=int,
        default=0,
        help="frame (cookanything: region) i uses seed + i; also the tiny models' weights (default: 0)",
    )
    gen.add_argument(
        "--steps", type=int, default=None, help="denoising steps (default: 30 for toy; else 20, 28 for cookanything)"
    )
    size_help = (
        "image {}, a multiple of 8; cookanything: of ONE region, a multiple of 16 "
        "(default: the model's; 64 for toy and tiny)"
    )
    gen.add_argument("--height", type=int, default=None, help=size_help.format("height"))
    gen.add_argument("--width", type=int, default=None, help=size_help.format("width"))
    gen.add_argument(
        "--guidance",
        type=float,
        default=None,
        help="guidance scale (default: 3.0 for toy, else 7.5, classifier-free; cookanything: Flux's guidance "
        "embedding, "
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
        help="record attention and noise; writes trace_summary.txt and a figure (recipe-diffusion: "
        "trace_reference_share.png)",
    )
    gen.add_argument(
        "--allow-large",
        action="store_true",
        help="run a size whose estimated memory exceeds what the device has free (refused otherwise, with the "
        "estimate)",
    )

    add_agent_options(gen)

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
        help="container masks for region-aware noise: 'oracle' (the Toy Kitchen's palette oracle on the reference "
        "frame; "
        "the default with --model toy), 'grounded-sam' (GroundingDINO + SAM on the reference frame; with --model toy "
        "the "
        "pair trained on the toy world, offline, else downloads the checkpoints) or 'box:X0,Y0,X1,Y1' (a fixed pixel "
        "box for every frame that reopens a container)",
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
        help="true classifier-free guidance: > 1 runs the transformer a second time per step with --negative-prompt "
        "and "
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
        help="regional branch: image tokens see their own region only (the paper) or every image token (default: "
        "region)",
    )
    ca.add_argument(
        "--rope-step-axis", action="store_true", help="Flexible RoPE: put the step index on the unused position axis 0"
    )
    ca.add_argument(
        "--attention-backend",
        choices=("auto", "batched", "flex", "masked"),
        default=None,
        help="regional attention path (default: auto = flex on CUDA, batched SDPA on the CPU; masked for "
        "--image-attention global)",
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
        help="how a chunk carries the previous chunk's last frames: fixed = pinned to their final latents "
        "(in-context), "
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
    ca.add_argument(
        "--chunk-text",
        choices=("window", "whole"),
        default=None,
        help="what a chunk's base prompt and CSCC read: window = its own steps' description and a window of the "
        "recipe that fits --max-sequence-length, whole = the whole recipe's encoding, cut at the limit "
        "(default: window)",
    )
    return gen


def add_agent_options(parser: argparse.ArgumentParser, default: str | None = None) -> None:
    """--agent, --agent-model, --base-url, --timeout: the Cooking Agent that plans the recipe (``cooklab.agent``)."""
    parser.add_argument(
        "--agent",
        choices=("auto", "rules", "openai"),
        default=default,
        help="plan the recipe with the Cooking Agent first: openai (needs OPENAI_API_KEY or --base-url), rules "
        "(offline), "
        "auto (openai when a key is set, else rules)"
        + ("" if default else "; default: use the recipe's own metadata"),
    )
    parser.add_argument(
        "--agent-model", default=None, help="the LLM for --agent openai (default: gpt-4o, the papers')"
    )
    parser.add_argument(
        "--base-url", default=None, help="an OpenAI-compatible server, e.g. a local LLM at http://127.0.0.1:8000/v1"
    )
    parser.add_argument(
        "--timeout", type=float, default=60.0, metavar="SECONDS", help="seconds to wait for each answer of the LLM"
    )
