"""The methods an evaluation compares: each paper's method, its ablations and the baselines, behind one call.

Every method is ``run(pipes, recipe, seed, settings, params) -> list of PIL images`` (one per step)
and names the backbone it needs (``"sd"``: a ``RecipeDiffusion``; ``"flux"``: a ``CookAnything``)
and the parameters a config may set (``params`` / ``grid``). Frame ``i`` of a seed ``s`` is drawn
from ``seed + i`` in every method, as Recipe Diffusion draws it, so methods differ only in their
mechanism, never in their noise.

Recipe Diffusion (SD U-Net, frames in sequence; ``RecipeDiffusion.VARIANTS``):

* ``independent`` -- every frame from its own text, nothing shared (the paper's baseline);
* ``kv_sharing`` -- sequential starts + cross-frame K/V sharing, no region-aware noise;
* ``region_aware`` -- region-aware noise (0.9 inside the container mask, 0.999 outside) without K/V;
* ``region_aware_kv`` -- both: the full method;
* ``inpaint_container`` / ``inpaint_interior`` -- the paper's inpainting baselines: each later
  frame is its reference frame inpainted inside the container mask / its interior
  (``cooklab.baselines.InpaintingBaseline``, diffusers' ``StableDiffusionInpaintPipeline``);
  ``inpaint_outside`` -- the inverse edit: the container kept, everything else repainted.

CookAnything (Flux DiT, all steps on one canvas):

* ``cookanything`` -- SRC, Flexible RoPE and CSCC; the ablations are its switches
  (``params: {regional: false}``, ``flexible_rope``, ``cscc``), the λ sweep ``grid: {lam: [...]}``;
  the training-based mode is ``params: {lora: NAME}`` (an adapter of the config's ``adapters``,
  ``lora_scale`` optional);
* ``flux_independent`` -- every step alone on its own canvas (one step with every mechanism off
  is stock ``FluxPipeline``), the baseline CookAnything is compared with.

Each paper's mechanisms on the other backbone, where they apply:

* ``cookanything`` with ``params: {cross_region_kv: true}`` -- Recipe Diffusion's K/V sharing on
  the Flux canvas (region n's image queries also see its reference region's keys and values);
* ``sd_regional`` -- CookAnything on the SD U-Net (``cooklab.baselines.RegionalSD``): all steps on
  one canvas with SRC (``regional``, ``alpha``, ``image_attention``) and CSCC (``cscc``, ``lam``).
  Flexible RoPE has no U-Net counterpart (no position ids); Recipe Diffusion's sequential starts
  and region-aware noise need a finished previous frame, which a one-pass canvas does not have.

Container masks (region-aware noise) come from the config's ``masks`` (``oracle`` for the toy world).
The four Recipe Diffusion variants and ``cookanything`` are named runs of ``cooklab.named_runs``, the
same presets ``cooklab demo`` and ``cooklab gallery`` draw.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from ..named_runs import NAMED_RUNS, NamedRun
from ..recipe import Recipe

RD_PARAMS = ("guidance", "base_noise", "object_noise", "kv_layers", "start_from", "reference_latent")
CA_PARAMS = (
    "guidance",
    "regional",
    "flexible_rope",
    "cscc",
    "alpha",
    "lam",
    "regional_blocks",
    "image_attention",
    "cross_region_kv",
    "lora",
    "lora_scale",
)


@dataclass(frozen=True)
class Method:
    """A method of the comparison: the backbone it runs on, the parameters it takes, and the call."""

    name: str
    backbone: str  # "sd" or "flux"
    params: tuple[str, ...]  # the parameters a config may set
    run: Callable[..., list]  # (pipes, recipe, seed, settings, params, masks) -> images
    summary: str


def _sampling(settings, seed: int) -> dict[str, Any]:
    """The keywords every method's pipeline call shares: the seed and the config's sampler and size, no bar."""
    return dict(
        seed=seed,
        num_inference_steps=settings.num_inference_steps,
        height=settings.height,
        width=settings.width,
        progress=False,
    )


def _recipe_diffusion(named: NamedRun):
    """A named Recipe Diffusion run (``cooklab.named_runs``: a variant) with the config's settings and ``params``."""

    def run(pipes, recipe: Recipe, seed: int, settings, params: dict[str, Any], masks) -> list:
        kwargs = {k: v for k, v in params.items() if k != "guidance"}
        if "kv_layers" in kwargs:
            kwargs["kv_layers"] = tuple(kwargs["kv_layers"])
        out = pipes["sd"](
            recipe,
            **_sampling(settings, seed),
            guidance_scale=params.get("guidance", settings.guidance),
            mask_provider=masks,
            **named.call,
            **kwargs,
        )
        return list(out.images)

    return run


INPAINT_PARAMS = ("guidance", "interior_rim", "strength")


def _inpainting(region: str):
    def run(pipes, recipe: Recipe, seed: int, settings, params: dict[str, Any], masks) -> list:
        from ..baselines import InpaintingBaseline

        kwargs = {k: v for k, v in params.items() if k != "guidance"}
        out = InpaintingBaseline(pipes["sd"])(
            recipe,
            **_sampling(settings, seed),
            guidance_scale=params.get("guidance", settings.guidance),
            region=region,
            mask_provider=masks,
            **kwargs,
        )
        return list(out.images)

    return run


def _use_lora(pipes, name: str | None) -> None:
    """Make the Flux pipeline carry exactly the adapter ``name`` (None: none), loading or unloading as needed."""
    ca = pipes["flux"]
    source = None if name is None else str(pipes["adapters"][name])
    if [a["source"] for a in ca.lora.values()] != ([] if source is None else [source]):
        ca.unload_lora()
        if source is not None:
            ca.load_lora(source)


def _cookanything(pipes, recipe: Recipe, seed: int, settings, params: dict[str, Any], masks) -> list:
    """The named run ``cookanything`` (every mechanism on) with the config's settings and ``params``."""
    _use_lora(pipes, params.get("lora"))
    kwargs = {k: v for k, v in params.items() if k not in ("guidance", "lora")}
    if "regional_blocks" in kwargs:
        kwargs["regional_blocks"] = tuple(kwargs["regional_blocks"])
    out = pipes["flux"](
        recipe,
        **_sampling(settings, seed),
        true_cfg_scale=params.get("guidance", settings.true_cfg),
        guidance_scale=settings.flux_guidance,
        **NAMED_RUNS["cookanything"].call,
        **kwargs,
    )
    return list(out.images)


SD_REGIONAL_PARAMS = ("guidance", "regional", "alpha", "image_attention", "cscc", "lam")


def _sd_regional(pipes, recipe: Recipe, seed: int, settings, params: dict[str, Any], masks) -> list:
    from ..baselines import RegionalSD

    kwargs = {k: v for k, v in params.items() if k != "guidance"}
    out = RegionalSD(pipes["sd"].pipe)(
        recipe,
        **_sampling(settings, seed),
        guidance_scale=params.get("guidance", settings.guidance),
        **kwargs,
    )
    return list(out.images)


def _flux_independent(pipes, recipe: Recipe, seed: int, settings, params: dict[str, Any], masks) -> list:
    _use_lora(pipes, None)
    images = []
    for i, step in enumerate(recipe.steps):  # step i alone, drawn from seed + i
        alone = Recipe(title=recipe.title, steps=[step.model_copy(update={"reference_step": None})])
        out = pipes["flux"](
            alone,
            **_sampling(settings, seed + i),
            true_cfg_scale=params.get("guidance", settings.true_cfg),
            guidance_scale=settings.flux_guidance,
            regional=False,
            flexible_rope=False,
            cscc=False,
        )
        images.append(out.images[0])
    return images


BACKBONES = {"recipe-diffusion": "sd", "cookanything": "flux"}  # a named run's pipeline -> the backbone it needs


def _named_method(name: str, params: tuple[str, ...], run: Callable[..., list]) -> Method:
    """The method of the named run ``name``: the backbone of its pipeline, its title as the summary."""
    named = NAMED_RUNS[name]
    return Method(name, BACKBONES[named.pipeline], params, run, named.title)


METHODS: dict[str, Method] = {
    "independent": _named_method("independent", RD_PARAMS, _recipe_diffusion(NAMED_RUNS["independent"])),
    "kv_sharing": _named_method("kv_sharing", RD_PARAMS, _recipe_diffusion(NAMED_RUNS["kv_sharing"])),
    "region_aware": _named_method("region_aware", RD_PARAMS, _recipe_diffusion(NAMED_RUNS["region_aware"])),
    "region_aware_kv": _named_method("region_aware_kv", RD_PARAMS, _recipe_diffusion(NAMED_RUNS["region_aware_kv"])),
    "inpaint_container": Method(
        "inpaint_container",
        "sd",
        INPAINT_PARAMS,
        _inpainting("container"),
        "baseline: the reference frame inpainted inside the container mask",
    ),
    "inpaint_interior": Method(
        "inpaint_interior",
        "sd",
        INPAINT_PARAMS,
        _inpainting("interior"),
        "baseline: the reference frame inpainted inside the container's interior",
    ),
    "inpaint_outside": Method(
        "inpaint_outside",
        "sd",
        INPAINT_PARAMS,
        _inpainting("outside"),
        "baseline: the container of the reference frame kept, the rest of the frame repainted",
    ),
    "cookanything": _named_method("cookanything", CA_PARAMS, _cookanything),
    "sd_regional": Method(
        "sd_regional",
        "sd",
        SD_REGIONAL_PARAMS,
        _sd_regional,
        "CookAnything's one canvas on the SD U-Net: SRC (regional prompting) and optional CSCC",
    ),
    "flux_independent": Method(
        "flux_independent", "flux", ("guidance",), _flux_independent, "every step alone on its own Flux canvas"
    ),
}


def method(name: str, params: dict[str, Any]) -> Method:
    """The method ``name``, after checking ``params``; a ``ConfigError`` naming the valid names otherwise."""
    if name not in METHODS:
        raise ConfigError(f"unknown method {name!r}: choose from {sorted(METHODS)}.")
    m = METHODS[name]
    unknown = [k for k in params if k not in m.params]
    if unknown:
        raise ConfigError(f"method {name!r} takes no parameter(s) {unknown}: its parameters are {list(m.params)}.")
    return m
