"""``cooklab generate``: the options checked before a model loads, then one run of the pipeline they describe.

CookAnything's options are checked by building ``CookAnythingSettings`` (the pipeline's own checks, run
without a model) and its errors are given back in flag names (``_as_flags``); Recipe Diffusion's
switches and sizes are checked here, and options of the other pipeline are refused (exit 2).
"""

from __future__ import annotations

import argparse
import math
import re
import sys

import cooklab
from cooklab.errors import ConfigError
from cooklab.named_runs import TOY_SIZE
from cooklab.recipe import resolve_recipe
from cooklab.report import check_run_folder
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

from .options import CA_OPTIONS, SCHEDULERS, fill_pipeline_options, given

__all__ = ["agent_plan", "generate_command"]


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
                f"--variant {args.variant} with --no-sequential: region-aware noise noises the reference frame's "
                "latent, "
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
    "chunk_text": "--chunk-text",
}
# Recipe Diffusion's parameters checked before a model loads (cooklab.checks) -> their flags
RD_FLAGS = {
    "seed": "--seed",
    "num_inference_steps": "--steps",
    "guidance_scale": "--guidance",
    "base_noise": "--base-noise",
    "object_noise": "--object-noise",
    "allow_large": "--allow-large",
}
CA_SWITCHES = {"regional": "--no-regional", "flexible_rope": "--no-flexible-rope", "cscc": "--no-cscc"}
_FLAGS = {**RD_FLAGS, **CA_FLAGS}
_PARAMETER = re.compile(
    rf"\b({'|'.join([*_FLAGS, *CA_SWITCHES])})(?!\w)(?:=('[^']*'|[^\s,:;()]+))?"
)  # name or name=value


def _as_flags(message: str) -> str:
    """A pipeline's error message in the command line's words: ``anchor_regions=3`` -> ``--anchor-regions 3``.

    Values of switches become their flag (``regional=False`` -> ``--no-regional``, ``regional=True`` ->
    ``without --no-regional``); a bare parameter name (one with ``_``) becomes its flag.
    """

    def flag(match: re.Match) -> str:
        name, value = match.group(1), match.group(2)
        if value is None:
            return _FLAGS.get(name, CA_SWITCHES.get(name)) if "_" in name else name
        end = "." if value.endswith(".") and not value.startswith("'") else ""
        value = value.removesuffix(end).strip("'")
        if name in CA_SWITCHES:
            return (CA_SWITCHES[name] if value == "False" else f"without {CA_SWITCHES[name]}") + end
        return (_FLAGS[name] if value == "True" else f"{_FLAGS[name]} {value}") + end

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
        return CookAnythingSettings.build(
            num_inference_steps=args.steps, guidance_scale=args.guidance, seed=args.seed, **call
        )
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


AGENT_FLAGS = {
    "timeout": "--timeout",
    "max_retries": "max_retries= of cooklab.agent.plan (Python)",
    "base_url": "--base-url",
    "model": "--agent-model",
    "rules": "--agent rules",
}
"""How the Cooking Agent's messages name the settings that fix them on the command line."""


def agent_plan(args: argparse.Namespace, recipe):
    """--agent: plan the recipe with the Cooking Agent (None without the option)."""
    if args.agent is None:
        return None
    from cooklab.agent import plan

    if not math.isfinite(args.timeout) or args.timeout <= 0:
        raise ConfigError(f"--timeout {args.timeout}: give the seconds to wait for each answer, a number above 0.")
    return plan(
        recipe,
        agent=args.agent,
        model=args.agent_model,
        base_url=args.base_url,
        timeout=args.timeout,
        setting_names=AGENT_FLAGS,
    )


# ---- generate ------------------------------------------------------------------------


def generate_command(args: argparse.Namespace, command: str) -> int:
    """``cooklab generate``: check the options, load the model, then one ``run_and_report``."""
    explicit = {attr for attr in (*CA_OPTIONS, "guidance") if given(args, attr)}
    fill_pipeline_options(args)
    small = args.model in SMALL_MODELS
    recipe = cooklab.load_recipe(resolve_recipe(args.recipe))  # a bad recipe fails before any model loads
    canvas = args.pipeline == "cookanything"
    call, notes = _cookanything_call(args, recipe, explicit) if canvas else _recipe_diffusion_call(args, recipe)
    check_run_folder(args.out, args.overwrite, option="--overwrite")  # before the model loads
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
        allow_large=args.allow_large,
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
        overwrite=args.overwrite,
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
    """Recipe Diffusion's keyword arguments from the options,
    checked before a model loads, and the notes for the user.
    """
    from cooklab.recipe_diffusion.inputs import check_sampler
    from cooklab.recipe_diffusion.noise_levels import check_level

    _positive_multiple_of_8("--height", args.height)
    _positive_multiple_of_8("--width", args.width)
    if args.steps < 1:
        raise ConfigError(f"--steps {args.steps}: use at least 1 denoising step.")
    try:
        check_sampler(args.seed, args.steps, args.guidance)  # the pipeline's own checks, before a model loads
        check_level("base_noise", args.base_noise)
        check_level("object_noise", args.object_noise)
    except ConfigError as error:
        raise ConfigError(_as_flags(str(error))) from None
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
    recipe_plan = agent_plan(args, recipe)
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
        chunk_text=args.chunk_text,
    )
    if args.max_sequence_length is not None:  # else the pipeline reads its own T5's length
        call["max_sequence_length"] = args.max_sequence_length
    settings = _cookanything_settings(args, call)
    notes = _cookanything_notes(args, explicit, recipe, settings.chunking)
    call["plan"] = agent_plan(args, recipe)
    if call["plan"] is not None:
        notes.append(f"step prompts enriched by the Cooking Agent ({call['plan'].agent}).")
    return call, notes
