"""Recipe Diffusion's inpainting baselines: a later frame is the reference frame, repainted inside a mask.

What the paper compares against
-------------------------------
Recipe Diffusion (Xia & Fujita) measures itself against two "Inpainting" rows, *Container* and
*Interior* (Table II, "comparison with consistency-maintaining generation methods", and the
human study of Table III). Its related-work section describes the idea: mask-based editing finds
the object with GroundingDINO + SAM and lets Stable Diffusion's inpainting change only the masked
part, for example only a container's contents, so that the container itself is kept. The paper
argues that this keeps pixels but not the look (texture, lighting) of a sequence whose context
changes, which its region-aware noise addresses. The paper gives no further detail (checkpoint,
strength, how the interior is found); the choices below are this module's and are stated.

The method, frame by frame
--------------------------
* frame 0, and a frame with no usable mask: plain text-to-image, exactly
  ``StableDiffusionPipeline(prompt_i, generator=torch.Generator(device).manual_seed(seed + i))``,
  the same seed convention as an independent ``RecipeDiffusion`` frame;
* frame i with a container mask: the reference frame ``j``'s image ``I_j`` (``reference_step - 1``
  from the metadata, else ``i - 1``: the same rule as ``RecipeDiffusion``) inpainted inside a
  region ``R`` with prompt i, exactly ``StableDiffusionInpaintPipeline(prompt_i, image=I_j,
  mask_image=R, strength=strength, generator=<the same seed + i>)``, with ``R`` one of
  ``region="container"``: the whole container mask ``B`` (the paper's Inpainting (Container)),
  ``region="interior"``: its interior (below; Inpainting (Interior)), or ``region="outside"``:
  ``R = 1 - B``, everything but the container -- keep the container, repaint the rest (not a row
  of the paper: the inverse edit, which keeps the vessel's pixels and redraws its surroundings).

The container mask in ``I_j`` comes from ``masks=`` or ``mask_provider`` with
``RecipeDiffusion``'s rules (``resolve_container_mask``: explicit masks and boxes always, a
provider for steps whose metadata names a container and a reference_step). A frame for which no
usable region is found falls back to text-to-image and says why in ``FrameInfo.fallback``.

Two ways to inpaint (``inpaint_unet``, recorded in ``settings["inpainting"]``)
-----------------------------------------------------------------------------
* ``"latent_blend"`` (the default, ``inpaint_unet=None``): the text-to-image U-Net of ``pipe``
  (4 input channels, as the tiny, Toy Kitchen and SD 1.x/2.x base models) repaints, and
  ``StableDiffusionInpaintPipeline`` keeps the rest by blending latents after every step (below);
* ``"inpainting_unet"`` (``inpaint_unet=`` a checkpoint path / hub id, or a loaded
  ``UNet2DConditionModel``): a separate *inpainting* U-Net of 9 input channels
  (``stabilityai/stable-diffusion-2-inpainting``, ``stable-diffusion-v1-5/stable-diffusion-inpainting``)
  draws the masked frames, with the mask and the masked reference as inputs of the network (below);
  frame 0 and fallbacks still use ``pipe``'s text-to-image U-Net, which the inpainting U-Net cannot
  replace. Its text width must be ``pipe``'s (an SD 2 inpainting U-Net with an SD 2 base).

The maths of a 4-channel inpainting step (diffusers 0.42.1)
-----------------------------------------------------------
The text-to-image U-Net knows nothing about masks; ``StableDiffusionInpaintPipeline`` then
inpaints by *blending latents* after every sampler step::

    z_ref = s * sample(VAE.encode(I_j))                  [1, 4, h, w]  posterior sample drawn from generator i
    m     = nearest(R >= 0.5, (h, w))                    [1, 1, h, w]  m[a, b] = R[a f, b f], f = vae_scale_factor
    eps   ~ N(0, I)                                      [1, 4, h, w]  drawn once, from generator i
    tau_0 > ... > tau_{K-1}: the last K = floor(N * strength) timesteps of the N-step schedule
    z     = sigma_init * eps if strength == 1 else AddNoise(z_ref, eps, tau_0)
    for k = 0 .. K-1:
        z_gen = Step(eps_theta(z, tau_k, text_i), tau_k, z)             (classifier-free guidance as usual)
        z     = m * z_gen + (1 - m) * AddNoise(z_ref, eps, tau_{k+1})   (z_ref itself after the last step)

so the final latent *equals* ``z_ref`` wherever ``m = 0``. Outside the mask the decoded image
differs from ``I_j`` only through the VAE: its round trip, and the decoder's receptive field,
which reaches across the mask edge (the SD VAE's mid-block attention sees the whole latent).

The maths of a 9-channel inpainting step (diffusers 0.42.1)
-----------------------------------------------------------
An inpainting U-Net reads the mask and the masked reference at every step, and nothing is
blended: the network itself is trained to keep the unmasked part, so the result there is close
to, not equal to, the reference::

    m       = nearest(R >= 0.5, (h, w))                          [1, 1, h, w]
    z_mask  = s * sample(VAE.encode(I_j * [R < 0.5]))            [1, 4, h, w]  the reference, region blacked out
    z       = sigma_init * eps if strength == 1 else AddNoise(s * sample(VAE.encode(I_j)), eps, tau_0)
    for k = 0 .. K-1:
        z = Step(eps_theta(cat[z, m, z_mask], tau_k, text_i), tau_k, z)      cat: 4 + 1 + 4 = 9 channels

The interior region
-------------------
With ``B = [M >= 0.5]`` the binarised container mask in image pixels (diffusers' own rule for
inpainting masks), ``h_B x w_B`` the size of its bounding box and ``rho = interior_rim``::

    r        = ceil(rho * min(h_B, w_B))                                     the rim width in pixels
    interior = { p : B(q) = 1 for every pixel q with max(|q_x - p_x|, |q_y - p_y|) <= r }

the erosion of ``B`` by a ``(2r + 1) x (2r + 1)`` square, pixels outside the image counting as
outside the container. For a box container ``(x0, y0, x1, y1)`` it is the box shrunk by ``r`` on
every side. ``0 < rho < 0.5`` (so ``r >= 1``: the interior lies strictly inside the container;
``rho >= 0.5`` would erase any box). An interior that covers no cell of the latent grid (a thin
or ring-shaped mask, a large ``rho``) is a fallback to text-to-image naming the fix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import StableDiffusionInpaintPipeline, StableDiffusionPipeline, UNet2DConditionModel

from ..console import ProgressBar, bar_settings
from ..errors import CheckpointError, ConfigError
from ..grounding.provider import MaskResult
from ..hub import HUB_ERRORS, explain_hub_error, hub_kwargs, is_repo_id
from ..pipeline_base import CooklabPipeline
from ..recipe_diffusion.inputs import (
    check_sampler,
    check_steps_and_size,
    frame_references,
    prepare_masks,
    prepare_recipe,
    resolve_container_mask,
)
from ..recipe_diffusion.pipeline import RecipeDiffusion
from ..recipe_diffusion.records import FrameInfo, RecipeDiffusionOutput

__all__ = [
    "INPAINT_MODES",
    "REGIONS",
    "InpaintingBaseline",
    "InpaintingOptions",
    "binarize",
    "blend_mask",
    "interior_mask",
    "load_inpainting_unet",
    "rim_width",
]

REGIONS = ("container", "interior", "outside")  # the paper's two rows, and keep-the-container-repaint-the-rest
INPAINT_MODES = ("latent_blend", "inpainting_unet")  # settings["inpainting"]: the 4-channel blend (default), 9-channel
INPAINT_CHANNELS = 9  # an inpainting U-Net's input: latents (4), the mask (1), the masked reference's latents (4)


# ---- the region masks: pure functions of [H, W] tensors ---------------------------------------------
def binarize(mask: torch.Tensor) -> torch.Tensor:
    """``[mask >= 0.5]`` as float32 [H, W]: the rule diffusers' inpainting mask processor applies."""
    return (mask.float() >= 0.5).float()


def rim_width(mask: torch.Tensor, rim: float) -> int:
    """``r = ceil(rim * min(h_B, w_B))``: the rim in pixels,
    from the bounding box of ``binarize(mask)`` (0 if empty).
    """
    rows, cols = torch.nonzero(binarize(mask), as_tuple=True)
    if rows.numel() == 0:
        return 0
    box_h = int(rows.max() - rows.min()) + 1
    box_w = int(cols.max() - cols.min()) + 1
    return math.ceil(rim * min(box_h, box_w))


def _check_rim(rim: float) -> None:
    if not 0 < rim < 0.5:
        raise ConfigError(
            f"interior_rim={rim}: use a value in (0, 0.5), the rim's width as a fraction of the container's "
            "smaller side (0.15 keeps the middle 70% of a square box's side)."
        )


def interior_mask(mask: torch.Tensor, rim: float) -> torch.Tensor:
    """The container's interior: ``binarize(mask)`` eroded by a (2r+1)x(2r+1) square, ``r = rim_width(mask, rim)``.

    mask: [H, W] in [0, 1]; returns float32 [H, W] in {0, 1} (all zeros when nothing is left).
    Erosion is a min-filter: ``1 - maxpool(1 - B)``, with B zero-padded so that pixels outside the image
    count as outside the container.
    """
    _check_rim(rim)
    container = binarize(mask)  # [H, W]
    r = rim_width(container, rim)
    padded = F.pad(container[None, None], (r, r, r, r), value=0.0)  # [1, 1, H + 2r, W + 2r]
    outside = F.max_pool2d(
        1.0 - padded, kernel_size=2 * r + 1, stride=1
    )  # [1, 1, H, W]: 1 where any neighbour is outside
    return (1.0 - outside)[0, 0]


def blend_mask(region: torch.Tensor, latent_hw: tuple[int, int]) -> torch.Tensor:
    """``m``: the [h, w] mask the 4-channel blend uses, ``nearest(region >= 0.5, (h, w))`` as diffusers computes it."""
    return F.interpolate(binarize(region)[None, None], size=tuple(latent_hw))[0, 0]  # default mode: nearest


# ---- the 9-channel inpainting U-Net ----------------------------------------------------------------------
def load_inpainting_unet(source: str, device=None, dtype=None, **from_pretrained_kwargs) -> UNet2DConditionModel:
    """The U-Net of an inpainting checkpoint: ``UNet2DConditionModel.from_pretrained(source, subfolder="unet")``.

    source: a hub id (``"stabilityai/stable-diffusion-2-inpainting"``), a pipeline folder (with
    ``unet/config.json``) or a U-Net folder (``config.json``). Raises ``CheckpointError`` naming the
    fix for a missing folder or an unreachable hub; ``check_inpainting_unet`` checks the kind.
    """
    path = Path(str(source)).expanduser()
    local = path.exists() or not is_repo_id(str(source))
    subfolder = "unet"
    if local:
        if not ((path / "unet" / "config.json").is_file() or (path / "config.json").is_file()):
            raise CheckpointError(
                f"inpaint_unet={str(source)!r}: no U-Net there (neither unet/config.json nor config.json); give an "
                "inpainting checkpoint's folder or hub id, e.g. stabilityai/stable-diffusion-2-inpainting."
            )
        subfolder = "unet" if (path / "unet" / "config.json").is_file() else None
    try:
        unet = UNet2DConditionModel.from_pretrained(
            path if local else str(source),
            subfolder=subfolder,
            **{**from_pretrained_kwargs, **({} if local else hub_kwargs(from_pretrained_kwargs))},
        )
    except HUB_ERRORS as error:
        if local:
            raise CheckpointError(
                f"inpaint_unet={str(source)!r}: cannot load the U-Net there ({type(error).__name__}: {error}); "
                "give a folder written by save_pretrained or `hf download`."
            ) from error
        raise explain_hub_error(str(source), error) from error
    return unet.to(device, dtype)


def check_inpainting_unet(unet, pipe, name: str) -> None:
    """Refuse a U-Net that cannot inpaint for ``pipe``: not 9 input channels, or another text width."""
    channels, latent = unet.config.in_channels, pipe.vae.config.latent_channels
    if channels != INPAINT_CHANNELS:
        raise CheckpointError(
            f"inpaint_unet={name}: its U-Net takes {channels} input channels, an inpainting U-Net "
            f"{INPAINT_CHANNELS} ({latent} latent + 1 mask + {latent} masked-image latent): it is a text-to-image "
            "checkpoint. Give an inpainting checkpoint (stabilityai/stable-diffusion-2-inpainting for an SD 2 "
            "base, stable-diffusion-v1-5/stable-diffusion-inpainting for SD 1.5), or inpaint_unet=None to inpaint "
            "by latent blending with the pipeline's own U-Net."
        )
    width, text = unet.config.cross_attention_dim, pipe.unet.config.cross_attention_dim
    if width != text:
        raise CheckpointError(
            f"inpaint_unet={name}: its U-Net reads text of width {width}, the pipeline's text encoder gives "
            f"{text}: pair the inpainting checkpoint with a base of the same family (SD 2 inpainting with an SD 2 "
            "base, SD 1.5 inpainting with SD 1.5)."
        )


# ---- options --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class InpaintingOptions:
    """The baseline's own settings (checked on creation; a bad value raises ``ConfigError`` naming the fix).

    region: ``"container"`` (inpaint the whole container mask), ``"interior"`` (its interior only) or
    ``"outside"`` (everything but the container: keep the container, repaint the rest);
    interior_rim: the rim removed for ``"interior"``, as a fraction of the container's smaller side
    (module docstring); strength: how far the reference is noised before inpainting (diffusers'
    ``strength``; 1.0, its default, starts the masked region from pure noise).
    """

    region: str = "container"
    interior_rim: float = 0.15
    strength: float = 1.0

    def __post_init__(self):
        if self.region not in REGIONS:
            raise ConfigError(
                f"region={self.region!r}: choose 'container' (inpaint the whole container mask, the paper's "
                "Inpainting (Container)), 'interior' (only its inside, Inpainting (Interior)) or 'outside' (keep "
                "the container, repaint the rest)."
            )
        _check_rim(self.interior_rim)
        if not 0 < self.strength <= 1:
            raise ConfigError(
                f"strength={self.strength}: use a value in (0, 1]; 1.0 (diffusers' default) repaints the "
                "masked region from pure noise, smaller values keep more of the reference there."
            )

    def steps_run(self, num_inference_steps: int) -> int:
        """How many sampler steps an inpainted frame runs: ``floor(N * strength)`` (diffusers' ``get_timesteps``)."""
        return min(int(num_inference_steps * self.strength), num_inference_steps)


class _LastLatent:
    """A ``callback_on_step_end`` that records the timesteps run and keeps the latent after the last step."""

    def __init__(self):
        self.timesteps: list[float] = []
        self.latents: torch.Tensor | None = None  # [1, 4, h, w]

    def __call__(self, pipe, k, t, callback_kwargs):
        self.timesteps.append(float(t))
        self.latents = callback_kwargs["latents"]
        return {}  # change nothing


# ---- the pipeline ----------------------------------------------------------------------------------------
class InpaintingBaseline(CooklabPipeline):
    """The paper's inpainting baselines on a Stable Diffusion pipeline (see the module docstring).

    ``InpaintingBaseline(pipe)`` takes a ``StableDiffusionPipeline`` or a ``RecipeDiffusion`` (then
    its mask providers, e.g. a loaded ``"grounded-sam"``, are shared). Each call builds a stock
    ``StableDiffusionPipeline`` and ``StableDiffusionInpaintPipeline`` from ``pipe.components``
    (modules shared, nothing copied; no safety checker runs, as in ``RecipeDiffusion``).

    Each frame's ``FrameInfo`` reads: ``reference`` = the frame inpainted (None: text-to-image),
    ``start_from="reference"``, ``reference_latent="encoded"``, ``base_noise`` = strength,
    ``start_index`` / ``steps_run`` / ``start_timestep`` as run, ``mask_reference`` = the frame the
    container mask was looked for in, ``fallback`` = why text-to-image was used instead; ``mask``
    is the container mask found, whose ``extra`` holds ``"region"``, ``"region_mask"`` (the [H, W]
    mask inpainted) and ``"rim_px"`` (``r``, interior only). ``kv_reference`` is always None and
    ``region_aware`` always False. ``cooklab.trace`` is refused: the stock pipelines have no hook points.

    ``inpaint_unet`` (module docstring, "Two ways to inpaint"): None (default) inpaints by latent
    blending with ``pipe``'s U-Net; a 9-channel inpainting U-Net -- a ``UNet2DConditionModel`` or a
    checkpoint path / hub id, loaded by ``load_inpainting_unet`` on ``pipe``'s device and dtype --
    draws the masked frames instead. A U-Net of another kind raises ``CheckpointError`` naming the fix.
    """

    pipeline_class = StableDiffusionPipeline
    denoiser_name = "unet"
    loader = "load_sd"
    wrong_kind_hint = "Load SD 1.x/2.x with cooklab.models.load_sd(id_or_path), or pass a cooklab.RecipeDiffusion."

    def __init__(self, pipe, inpaint_unet=None):
        recipe_diffusion = pipe if isinstance(pipe, RecipeDiffusion) else None
        super().__init__(recipe_diffusion.pipe if recipe_diffusion is not None else pipe)
        self.recipe_diffusion = recipe_diffusion or RecipeDiffusion(self.pipe)  # its recipe, mask and provider helpers
        self.inpaint_unet, self.inpaint_source = None, None  # None: latent blending with self.pipe.unet
        if inpaint_unet is not None:
            loaded = isinstance(inpaint_unet, torch.nn.Module)
            self.inpaint_source = "in memory" if loaded else str(inpaint_unet)
            unet = inpaint_unet if loaded else load_inpainting_unet(inpaint_unet, self.device, self.pipe.unet.dtype)
            check_inpainting_unet(unet, self.pipe, repr(self.inpaint_source))
            self.inpaint_unet = unet

    @property
    def inpainting(self) -> str:
        """``"latent_blend"`` (the text-to-image U-Net, latents blended) or ``"inpainting_unet"`` (9 channels)."""
        return INPAINT_MODES[self.inpaint_unet is not None]

    def attach_trace(self, trace) -> None:
        raise ConfigError(
            "cooklab.trace records RecipeDiffusion and CookAnything; the inpainting baseline runs stock "
            "diffusers pipelines, which have no hook points. Trace cooklab.RecipeDiffusion instead."
        )

    @torch.no_grad()
    def __call__(
        self,
        recipe,
        metadata=None,
        *,
        plan=None,
        enriched_prompts: bool = False,
        seed: int = 0,
        num_inference_steps: int = 20,
        height: int | None = None,
        width: int | None = None,
        guidance_scale: float = 7.5,
        negative_prompt: str | None = None,
        eta: float = 0.0,
        region: str = "container",
        interior_rim: float = 0.15,
        strength: float = 1.0,
        masks=None,
        mask_provider=None,
        output_type: str = "pil",
        progress: bool = True,
    ) -> RecipeDiffusionOutput:
        """Generate one frame per recipe step: text-to-image, or the reference frame inpainted inside the container.

        Args:
            recipe, metadata, plan, enriched_prompts: as ``RecipeDiffusion.__call__``.
            seed: frame i uses ``Generator(device).manual_seed(seed + i)``.
            num_inference_steps, height, width, guidance_scale, negative_prompt, eta: as
                ``StableDiffusionPipeline`` (None for height/width: the U-Net's own size).
            region, interior_rim, strength: ``InpaintingOptions`` (what is repainted, and how strongly).
            masks: masks[i] is the container mask or pixel box in frame i's reference image (as
                ``RecipeDiffusion.__call__``).
            mask_provider: ``(image, phrase) -> mask | None`` or ``"grounded-sam"``.
            output_type: ``"pil"``, ``"np"``, ``"pt"`` or ``"latent"``.
            progress: show the progress bars.
        """
        rd = self.recipe_diffusion
        seed, num_inference_steps, guidance_scale, eta, _ = check_sampler(
            seed, num_inference_steps, guidance_scale, eta
        )
        options = InpaintingOptions(region, interior_rim, strength)
        recipe, prompts = prepare_recipe(recipe, metadata, plan, enriched_prompts)
        n = len(recipe)
        height, width = self._check_inputs(options, n, num_inference_steps, height, width)
        mask_table = prepare_masks(masks, n)
        mask_provider = rd.prepare_mask_provider(mask_provider)
        refs = frame_references(recipe, sequential=True, kv_sharing=False, region_aware=True, start_from="reference")

        components = {**self.pipe.components, "safety_checker": None, "requires_safety_checker": False}
        text2image = StableDiffusionPipeline(**components)
        inpaint = StableDiffusionInpaintPipeline(
            **{**components, "unet": self.inpaint_unet if self.inpaint_unet is not None else self.pipe.unet}
        )
        common = dict(
            num_inference_steps=num_inference_steps,
            height=height,
            width=width,
            guidance_scale=guidance_scale,
            negative_prompt=negative_prompt,
            eta=eta,
            output_type=output_type,
        )
        latent_hw = (height // self.pipe.vae_scale_factor, width // self.pipe.vae_scale_factor)
        images, frames, final_latents = [], [], []
        kept = {}  # frame -> its 8-bit image, for frames a later frame inpaints (or asks the mask provider about)

        for i in ProgressBar(range(n), desc="frames", enabled=progress and n > 1):
            step, j = recipe[i], refs.mask[i]  # j: the reference frame, reference_step - 1 or i - 1 (None for frame 0)
            info = self._frame_info(i, step, prompts[i], seed + i, num_inference_steps, j)
            region_mask = None
            if j is not None:
                info.mask, region_mask, info.fallback = self._region(
                    i,
                    step,
                    j,
                    mask_table.get(i),
                    mask_provider,
                    lambda j=j: kept[j],
                    options,
                    (height, width),
                    latent_hw,
                )
            generator = torch.Generator(self.device).manual_seed(seed + i)
            if region_mask is None:
                image, latents = self._run(
                    text2image, info, progress, prompt=prompts[i], generator=generator, **common
                )
            else:
                image, latents = self._run(
                    inpaint,
                    info,
                    progress,
                    prompt=prompts[i],
                    image=kept[j],
                    mask_image=region_mask[None, None].clone(),
                    strength=options.strength,
                    generator=generator,
                    **common,
                )
                info.reference, info.start_from, info.reference_latent = j, "reference", "encoded"
                info.base_noise = options.strength
            images.append(
                latents if output_type == "latent" else image
            )  # "latent": [1, 4, h, w], as RecipeDiffusion gives it
            frames.append(info)
            final_latents.append(latents.detach().to("cpu", torch.float32))
            if i in refs.kept:
                kept[i] = image if output_type == "pil" else rd.decode_image(latents)

        settings = self._settings(
            options, seed, common, sorted(mask_table), None if mask_provider is None else type(mask_provider).__name__
        )
        return RecipeDiffusionOutput(
            images=images, frames=frames, latents=final_latents, recipe=recipe, settings=settings
        )

    @staticmethod
    def _frame_info(i: int, step, prompt: str, seed: int, num_inference_steps: int, j: int | None) -> FrameInfo:
        """Frame i's record before it runs: text-to-image from ``seed``;
        ``j``: where its container mask is looked for.
        """
        return FrameInfo(
            index=i,
            text=step.text,
            prompt=prompt,
            seed=seed,
            container=step.container,
            reference=None,
            kv_reference=None,
            start_index=0,
            steps_run=num_inference_steps,
            start_timestep=0.0,
            base_noise=None,
            object_noise=None,
            object_timestep=None,
            region_aware=False,
            mask_reference=j,
        )

    def _settings(self, options: InpaintingOptions, seed: int, common: dict, masks: list, provider) -> dict:
        """What the call ran with, as ``RecipeDiffusionOutput.settings`` reports it."""
        return dict(
            method="inpainting",
            inpainting=self.inpainting,
            inpaint_unet=self.inpaint_source,
            region=options.region,
            interior_rim=options.interior_rim,
            strength=options.strength,
            seed=seed,
            **{key: value for key, value in common.items() if key != "output_type"},
            scheduler=type(self.pipe.scheduler).__name__,
            model=self.pipe.name_or_path or type(self.pipe).__name__,
            masks=masks,
            mask_provider=provider,
        )

    def _run(self, stock, info: FrameInfo, progress: bool, **kwargs):
        """One frame from a stock pipeline;
        fills ``info``'s schedule fields; returns (image, final latent [1, 4, h, w]).
        """
        recorder = _LastLatent()
        stock.set_progress_bar_config(**bar_settings(progress, leave=False), desc=f"frame {info.index + 1}")
        image = stock(callback_on_step_end=recorder, **kwargs).images[0]
        scheduler = stock.scheduler  # its timesteps: the whole N-step schedule; the frame ran the last ones
        info.steps_run = len(recorder.timesteps) // scheduler.order
        info.start_index = len(scheduler.timesteps) - len(recorder.timesteps)
        info.start_timestep = recorder.timesteps[0]
        return image, recorder.latents

    def _check_inputs(self, options: InpaintingOptions, n: int, num_inference_steps, height, width) -> tuple[int, int]:
        """Refuse impossible arguments before any model runs; returns (height, width)."""
        height, width = check_steps_and_size(self.pipe, num_inference_steps, height, width)
        if n > 1 and options.steps_run(num_inference_steps) < 1:
            raise ConfigError(
                f"strength={options.strength} runs no denoising step with num_inference_steps={num_inference_steps}: "
                f"use num_inference_steps >= {math.ceil(1 / options.strength)} or a larger strength."
            )
        channels, latent_channels = self.pipe.unet.config.in_channels, self.pipe.vae.config.latent_channels
        if channels != latent_channels:
            raise ConfigError(
                f"the pipeline's U-Net takes {channels} input channels; the inpainting baseline draws frame 0 with "
                f"the text-to-image U-Net ({latent_channels} channels), as RecipeDiffusion does: load a base "
                "checkpoint as the pipeline and pass the inpainting one as inpaint_unet= (e.g. "
                "InpaintingBaseline(load_sd('stabilityai/stable-diffusion-2-base'), "
                "inpaint_unet='stabilityai/stable-diffusion-2-inpainting'))."
            )
        return height, width

    @staticmethod
    def _region(
        i, step, j, explicit, provider, reference_image, options: InpaintingOptions, image_hw, latent_hw
    ) -> tuple[MaskResult | None, torch.Tensor | None, str | None]:
        """The region of frame j's image that frame i repaints:
        (container MaskResult, region [H, W] or None, fallback reason).
        """
        result, _, reason = resolve_container_mask(
            i, step, j, explicit, provider, reference_image, image_hw, latent_hw
        )
        if reason is not None:
            return result, None, reason
        mask = result.mask
        if tuple(mask.shape) != tuple(image_hw):  # a latent-size mask: each cell becomes its block of pixels
            mask = F.interpolate(mask.float()[None, None], size=tuple(image_hw), mode="nearest")[0, 0]
        if options.region == "container":
            region, rim_px = binarize(mask), None
        elif options.region == "outside":  # keep the container, repaint the rest
            region, rim_px = 1.0 - binarize(mask), None
        else:
            region, rim_px = interior_mask(mask, options.interior_rim), rim_width(mask, options.interior_rim)
        result = replace(
            result, extra={**result.extra, "region": options.region, "region_mask": region, "rim_px": rim_px}
        )
        if not bool(blend_mask(region, latent_hw).any()):
            what = {
                "interior": f"the container's interior (its mask eroded by {rim_px} px, "
                f"interior_rim={options.interior_rim})",
                "container": "the container mask, binarised at 0.5,",
                "outside": "the frame outside the container mask",
            }[options.region]
            fix = {
                "interior": "lower interior_rim, or use region='container'",
                "container": "give a larger mask (one that holds the top-left pixel of some latent cell)",
                "outside": "the container fills the frame: nothing is left to repaint; use region='container'",
            }[options.region]
            return result, None, f"{what} covers no cell of the {latent_hw[0]}x{latent_hw[1]} latent grid: {fix}"
        return result, region, None
