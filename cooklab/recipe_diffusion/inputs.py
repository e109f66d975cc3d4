"""What a Recipe Diffusion call reads before any model runs: recipe and prompts, masks, reference frames, sizes.

Shared by ``RecipeDiffusion`` and the baselines built on its call (``cooklab.baselines``):

* ``VARIANTS`` and ``variant_switches``: the paper's variants as presets of the three switches;
* ``prepare_recipe``: the recipe with its per-step metadata and the prompts to encode;
* ``check_switches``, ``check_sampler``, ``check_steps_and_size``: switches that work together; a whole seed,
  finite guidance, eta and rescale (``cooklab.checks``); at least one denoising step, sizes that are positive
  multiples of 8;
* ``prepare_masks``: the user's container masks as ``{frame: mask}``;
* ``frame_references``: which earlier frame each frame starts from, takes its container mask from
  and shares K/V with (``FrameReferences``);
* ``resolve_container_mask``: where frame i's container mask comes from (explicit mask or box, the
  mask provider, or the reason there is none).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..checks import finite_number, seed_value, whole_number
from ..errors import ConfigError
from ..grounding import as_mask_result
from ..recipe import as_recipe
from .region_noise import resize_mask

__all__ = [
    "REFERENCE_LATENT",
    "START_FROM",
    "VARIANTS",
    "FrameReferences",
    "check_sampler",
    "check_steps_and_size",
    "check_switches",
    "frame_references",
    "prepare_masks",
    "prepare_recipe",
    "resolve_container_mask",
    "variant_switches",
]

START_FROM = ("previous", "reference")  # where a frame without region-aware noise starts (paper: previous)
REFERENCE_LATENT = ("encoded", "final")  # what L_j is: VAE encoding of I_j (paper) or the sampler's final latent

# The paper's variants (Table I's SD 2.1 row and three rows of Table II): keyword presets for __call__(variant=...).
VARIANTS = {
    "independent": dict(sequential=False, kv_sharing=False, region_aware=False),
    "kv_sharing": dict(sequential=True, kv_sharing=True, region_aware=False),
    "region_aware": dict(sequential=True, kv_sharing=False, region_aware=True),
    "region_aware_kv": dict(sequential=True, kv_sharing=True, region_aware=True),
}


def variant_switches(variant, sequential, kv_sharing, region_aware) -> tuple[bool, bool, bool]:
    """(sequential, kv_sharing, region_aware): the preset of ``variant``
    (one of ``VARIANTS``), or the switches as given.
    """
    if variant is None:
        return sequential, kv_sharing, region_aware
    if variant not in VARIANTS:
        raise ConfigError(f"variant={variant!r}: choose one of {list(VARIANTS)}.")
    return tuple(VARIANTS[variant][k] for k in ("sequential", "kv_sharing", "region_aware"))


def check_switches(sequential, region_aware, start_from, reference_latent) -> None:
    """Refuse switches that cannot work together and unknown ``start_from`` / ``reference_latent`` values."""
    if region_aware and not sequential:
        raise ConfigError(
            "region_aware=True needs sequential=True: region-aware noise is applied to the reference frame's latent."
        )
    if start_from not in START_FROM:
        raise ConfigError(
            f"start_from={start_from!r}: choose 'previous' (the paper: frame i starts from frame i-1) or "
            "'reference' (from the metadata's reference frame)."
        )
    if reference_latent not in REFERENCE_LATENT:
        raise ConfigError(
            f"reference_latent={reference_latent!r}: choose 'encoded' (the paper: the VAE encoding of the "
            "reference image) or 'final' (the sampler's final latent)."
        )


def prepare_recipe(recipe, metadata, plan, enriched_prompts):
    """(recipe, prompts): the recipe with its per-step metadata (from ``metadata=`` or the plan), and the N prompts.

    The prompts are the plan's enriched prompts with ``enriched_prompts``, else the step texts.
    """
    recipe = as_recipe(recipe)
    if plan is not None and metadata is not None:
        raise ConfigError("give either plan= or metadata=, not both (a plan carries the metadata).")
    if plan is not None:
        metadata = plan.step_plans()
    if metadata is not None:
        recipe = recipe.with_plans(metadata)
    prompts = plan.prompts() if plan is not None and enriched_prompts else recipe.texts
    return recipe, prompts


def check_sampler(seed, num_inference_steps, guidance_scale, eta=0.0, guidance_rescale=0.0):
    """The sampler's numbers coerced (``cooklab.checks``), or ``ConfigError`` naming the parameter.

    Returns ``(seed, num_inference_steps, guidance_scale, eta, guidance_rescale)``: a whole seed >= 0
    (``"0"`` is read as 0), at least one step (``2.5`` is refused), a finite ``guidance_scale >= 0``
    (<= 1: no classifier-free guidance), DDIM's ``eta`` and ``guidance_rescale`` in [0, 1].
    """
    return (
        seed_value("seed", seed),
        whole_number("num_inference_steps", num_inference_steps, minimum=1, hint="denoising steps"),
        finite_number("guidance_scale", guidance_scale, low=0.0, hint="<= 1: no classifier-free guidance; SD: 7.5"),
        finite_number("eta", eta, low=0.0, high=1.0, hint="DDIM's eta: 0 deterministic, 1 DDPM-like"),
        finite_number("guidance_rescale", guidance_rescale, low=0.0, high=1.0, hint="0: off; the rescale paper: 0.7"),
    )


def check_steps_and_size(pipe, num_inference_steps, height, width) -> tuple[int, int]:
    """Refuse fewer than one step and sizes that are not positive multiples of 8; returns (height, width).

    pipe: the Stable Diffusion pipeline that will run (its U-Net's ``sample_size`` gives the default size).

    None (or 0) for height/width takes the U-Net's own size (``sample_size * vae_scale_factor``); a size is a
    whole number (``"64"`` is read as 64).
    """
    whole_number("num_inference_steps", num_inference_steps, minimum=1, hint="denoising steps")
    scale = pipe.vae_scale_factor
    height = (None if height is None else whole_number("height", height)) or pipe.unet.config.sample_size * scale
    width = (None if width is None else whole_number("width", width)) or pipe.unet.config.sample_size * scale
    if height % 8 or width % 8 or height <= 0 or width <= 0:
        raise ConfigError(
            f"height={height}, width={width}: both must be positive multiples of 8 (e.g. "
            f"{max(8, height // 8 * 8)}x{max(8, width // 8 * 8)})."
        )
    return height, width


def prepare_masks(masks, n: int) -> dict:
    """``masks`` (a list with one entry per step, or a dict) as {frame:
    value}; refuses lengths and frames that cannot work.
    """
    if masks is None:
        return {}
    if isinstance(masks, dict):
        table = dict(masks)
    elif isinstance(masks, (list, tuple)):
        if len(masks) != n:
            raise ConfigError(
                f"masks has {len(masks)} entries for a recipe of {n} steps: give one per step (None where there is "
                f"none) or a dict {{frame: mask}}."
            )
        table = {i: m for i, m in enumerate(masks) if m is not None}
    else:
        raise ConfigError("masks must be a list with one entry per step or a dict {frame: mask}.")
    for i in table:
        if not (isinstance(i, int) and 0 <= i < n):
            raise ConfigError(f"masks has an entry for frame {i!r}; frames are numbered 0..{n - 1}.")
        if i == 0:
            raise ConfigError(
                "masks[0] is given but frame 0 starts from pure noise; masks[i] is the container mask in frame i's "
                "reference image (frames 1..n-1)."
            )
    return table


@dataclass
class FrameReferences:
    """Which earlier frame each frame reads (None: none), and how long each must be kept."""

    start: list  # the frame a uniformly noised start is taken from (start_from; None: pure noise)
    mask: list  # the reference j whose container mask gives region-aware noise of L_j (None: region-aware off)
    kv: list  # the frame whose K/V are shared (None: K/V sharing off)
    kept: set  # frames whose latent or image a later frame starts from
    last_use: dict  # frame -> the last frame that reads its K/V (they are released after it)


def frame_references(recipe, sequential, kv_sharing, region_aware, start_from) -> FrameReferences:
    """Which earlier frame each frame starts from, takes its container mask from, and shares K/V with.

    The reference frame of frame i is ``j = reference_step - 1`` when its metadata names one,
    else ``i - 1`` (None for frame 0). A uniformly noised start comes from ``i - 1``
    (``start_from="previous"``, the paper) or from ``j`` (``"reference"``); the mask of Eq. 5-7
    and the shared K/V always come from ``j``.
    """
    n = len(recipe)
    ref = recipe.reference_frames()  # j of frame i: the metadata's reference, else i - 1 (None for frame 0)
    start_ref = [
        None if not sequential else (i - 1 if start_from == "previous" and i > 0 else ref[i]) for i in range(n)
    ]
    mask_ref = [ref[i] if region_aware else None for i in range(n)]  # I_j of Eq. 5-7 (needs sequential)
    kv_ref = [ref[i] if kv_sharing else None for i in range(n)]
    kept = {j for j in start_ref + mask_ref if j is not None}  # frames whose latent/image a later frame starts from
    last_use = {}
    for i, j in enumerate(kv_ref):
        if j is not None:
            last_use[j] = i
    return FrameReferences(start_ref, mask_ref, kv_ref, kept, last_use)


def resolve_container_mask(
    i: int, step, ref: int, explicit, provider, reference_image, image_hw: tuple[int, int], latent_hw: tuple[int, int]
):
    """The container mask of frame i in its reference frame ``ref``:
    (MaskResult, mask on the latent grid, fallback reason).

    explicit: the user's ``masks[i]`` (mask, box, MaskResult) or None; provider: ``(image, phrase) -> mask | None``
    or None; reference_image: a function returning frame ``ref``'s 8-bit image (called only when the provider is
    asked). An explicit mask is always used; the provider only for a step whose metadata names a container and a
    reference_step. Exactly one of (mask, reason) is None: the reason says why no usable mask was found (no
    container, first appearance, no source, nothing found, degenerate: under 0.1% or over 99.9% of the latent grid).
    Shared by ``RecipeDiffusion`` and ``cooklab.baselines.InpaintingBaseline``.
    """
    phrase = step.container or ""
    if explicit is not None:
        result = as_mask_result(explicit, image_hw, phrase)
    elif not phrase:
        return None, None, "the step names no container (no metadata): give a recipe with metadata, or masks=[...]"
    elif step.reference_step is None:
        return None, None, f"the {phrase!r} first appears in this step (reference_step is null)"
    elif provider is None:
        return None, None, "no mask: pass masks=[...] or a mask_provider"
    else:
        result = as_mask_result(provider(reference_image(), phrase), image_hw, phrase, source=type(provider).__name__)
        if result is None:
            return None, None, f"the mask provider found no {phrase!r} in the reference image (step {ref + 1})"
    try:
        mask = resize_mask(result.mask, latent_hw, image_hw)
    except ConfigError as err:
        raise ConfigError(f"frame {i}: {err}") from None
    area = float(mask.mean())
    if area < 1e-3 or area > 0.999:
        return result, None, f"degenerate mask (covers {area:.1%} of the latent grid)"
    return result, mask, None
