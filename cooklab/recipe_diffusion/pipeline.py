"""The Recipe Diffusion pipeline: frames in sequence on a Stable Diffusion U-Net.

For a recipe of steps ``S_0 .. S_{n-1}``:

1. frame 0 is generated from pure noise, exactly as ``StableDiffusionPipeline`` does;
2. frame ``i > 0`` starts from the latent of the *previous* frame ``I_{i-1}`` noised to
   ``base_noise`` (``noise_levels.py``) -- the paper's Sec. III; ``start_from="reference"``
   starts it from the reference frame ``j`` instead;
3. the *reference frame* ``j`` is the step named by the metadata's ``reference_step``,
   otherwise the previous frame. When the step's container persists from ``j`` and its mask
   in ``I_j`` is known, the frame starts from region-aware noise of ``L_j`` instead
   (Eq. 5-7, ``region_noise.py``): ``object_noise`` inside the mask, ``base_noise`` outside;
4. while frame ``i`` is denoised, the selected self-attention layers also attend to frame
   ``j``'s keys and values of the same layer and step (Eq. 1-4, ``kv_sharing.py``).

``L_j`` (and ``L_{i-1}``) is, as in the paper, the frame's *image* encoded by the VAE
(``reference_latent="encoded"``: the 8-bit image the user gets, encoded with a posterior
sample drawn from frame i's generator, as ``StableDiffusionImg2ImgPipeline`` encodes its
input); ``reference_latent="final"`` takes the sampler's final latent instead (no VAE
round trip).

``RecipeDiffusion.__call__`` runs these stages: ``variant_switches``, ``prepare_recipe`` and
``check_inputs`` (arguments, refused before any model runs; ``inputs.py``), ``frame_references``
(which earlier frame each frame starts from, takes its mask from and shares K/V with),
``_attention_processors`` (the K/V-sharing processors for the call), and ``_frames``, which runs
``_frame`` for every step: encode the prompt, ``_noised_start`` (Eq. 5-7 or img2img
noise of an earlier frame; frame 0 starts from pure noise), ``_denoise`` and ``_decode``.

Every switch off gives back the stock pipeline: with ``sequential``, ``kv_sharing`` and
``region_aware`` all False, frame ``i`` equals ``StableDiffusionPipeline(text_i,
generator=torch.Generator(device).manual_seed(seed + i))``; with only ``sequential`` it
equals ``StableDiffusionImg2ImgPipeline(text_i, image=I_{i-1}, strength=base_noise)`` with
the same generator (``image=<final latent of i-1>`` with ``reference_latent="final"``).
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from diffusers import StableDiffusionPipeline
from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import rescale_noise_cfg, retrieve_timesteps
from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion_img2img import retrieve_latents
from diffusers.utils.torch_utils import randn_tensor

from ..console import ProgressBar
from ..errors import ConfigError
from ..instrument.locate import locate
from ..instrument.observer import FrameTrace, observed
from ..pipeline_base import CooklabPipeline, quiet_truncation, warn_dropped_tokens
from ..recipe import StepPlan
from ..size_guard import guard_size, unet_estimate
from .inputs import (
    VARIANTS,
    FrameReferences,
    check_sampler,
    check_steps_and_size,
    check_switches,
    frame_references,
    prepare_masks,
    prepare_recipe,
    resolve_container_mask,
    variant_switches,
)
from .kv_sharing import KVSharingAttnProcessor, KVSharingState
from .noise_levels import NoiseLevels, check_level
from .records import FrameInfo, NoiseRecord, RecipeDiffusionOutput
from .region_noise import RegionNoise, region_aware_noise


@dataclass
class _Call:
    """Everything one ``__call__`` shares between its frames."""

    seed: int
    num_inference_steps: int
    height: int
    width: int
    guidance_scale: float
    negative_prompt: str | None
    eta: float
    guidance_rescale: float
    do_cfg: bool
    sequential: bool
    kv_sharing: bool
    region_aware: bool
    base_noise: float
    object_noise: float
    start_from: str
    reference_latent: str
    kv_layers: list
    masks: dict
    mask_provider: object
    prompts: list[str]
    output_type: str
    progress: bool
    device: torch.device
    kv_state: KVSharingState
    kept: dict = field(default_factory=dict)  # frame -> final latent, for frames some later frame starts from
    pil: dict = field(default_factory=dict)  # frame -> its 8-bit image, decoded once when output_type is not "pil"
    images: list = field(default_factory=list)


class RecipeDiffusion(CooklabPipeline):
    """Recipe Diffusion on any Stable Diffusion 1.x/2.x pipeline (see the module docstring)."""

    VARIANTS = VARIANTS

    pipeline_class = StableDiffusionPipeline
    denoiser_name = "unet"
    loader = "load_sd"
    wrong_kind_hint = "For Flux use cooklab.CookAnything; load SD 1.x/2.x with cooklab.models.load_sd(id_or_path)."

    def __init__(self, pipe: StableDiffusionPipeline):
        super().__init__(pipe)
        self._providers = {}  # mask providers built by name, loaded once

    @property
    def scheduler(self):
        return self.pipe.scheduler

    @scheduler.setter
    def scheduler(self, scheduler) -> None:
        self.pipe.scheduler = scheduler

    # ---- the call ------------------------------------------------------------------------
    @torch.no_grad()
    def __call__(
        self,
        recipe,
        metadata: list[StepPlan | dict | None] | None = None,
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
        guidance_rescale: float = 0.0,
        variant: str | None = None,
        sequential: bool = True,
        kv_sharing: bool = True,
        region_aware: bool = True,
        base_noise: float = 0.999,
        object_noise: float = 0.9,
        start_from: str = "previous",
        reference_latent: str = "encoded",
        kv_layers=("mid", "up"),
        masks=None,
        mask_provider=None,
        kv_cache_device: str | torch.device | None = None,
        output_type: str = "pil",
        progress: bool = True,
        allow_large: bool = False,
    ) -> RecipeDiffusionOutput:
        """Generate one frame per recipe step.

        Args:
            recipe: a ``Recipe``, a list of step strings or a recipe file path.
            metadata: per-step ``StepPlan`` (container, container_attributes, reference_step)
                overriding the recipe's own.
            plan: a ``cooklab.agent.RecipePlan`` (the LLM pre-pass): its step plans become the
                metadata, and with ``enriched_prompts=True`` its prompts replace the step texts.
            seed: frame i uses ``Generator(device).manual_seed(seed + i)``.
            num_inference_steps, height, width, guidance_scale, negative_prompt, eta, guidance_rescale:
                as ``StableDiffusionPipeline`` (None for height/width: the U-Net's own size).
            variant: one of ``VARIANTS`` (sets the three switches below).
            sequential, kv_sharing, region_aware: frame i starts from an earlier frame (Sec. III);
                K/V sharing with the reference frame (Eq. 1-4); region-aware noise (Eq. 5-7).
            base_noise, object_noise: the noise levels outside and inside the container (``noise_levels.py``).
            start_from: where a sequential frame without region-aware noise starts: ``"previous"``
                (the paper: ``I_{i-1}``) or ``"reference"`` (the metadata's reference frame ``I_j``).
                Region-aware noise always noises ``L_j`` (Eq. 5-7), and K/V always come from ``I_j``.
            reference_latent: ``"encoded"`` (the paper: the frame's 8-bit image encoded by the VAE,
                as img2img encodes its input) or ``"final"`` (the sampler's final latent, no round trip).
            kv_layers: layer patterns (``"mid"``, ``"up"``, names; see ``cooklab.locate``) whose
                self-attention shares K/V.
            masks: per frame (list, or dict frame -> value) the container mask *in that frame's
                reference image*: a [H, W] or latent-size [h, w] mask, or a pixel box (x0, y0, x1, y1).
            mask_provider: ``(image, phrase) -> mask | None`` asked for frames without a mask, or
                ``"grounded-sam"`` for GroundingDINO + SAM with the default checkpoints (loaded once;
                for the Toy Kitchen pipeline the pair trained on the toy world, offline).
            kv_cache_device: where reference K/V are kept (None: the compute device; "cpu").
            output_type: ``"pil"``, ``"np"``, ``"pt"`` or ``"latent"``.
            progress: show the progress bars.
            allow_large: run a size whose estimated memory exceeds what the device has free (``size_guard.py``).

        Masks and the provider are used only when ``region_aware`` is on (so one set of masks
        serves all variants); an explicit mask is always applied, the provider only for steps
        whose metadata names a container and a reference_step. Each frame's ``FrameInfo`` records
        ``reference``, ``start_from``, ``mask_reference`` and ``reference_latent`` as used.
        """
        sequential, kv_sharing, region_aware = variant_switches(variant, sequential, kv_sharing, region_aware)
        seed, num_inference_steps, guidance_scale, eta, guidance_rescale = check_sampler(
            seed, num_inference_steps, guidance_scale, eta, guidance_rescale
        )
        recipe, prompts = prepare_recipe(recipe, metadata, plan, enriched_prompts)
        n = len(recipe)
        mask_provider = self.prepare_mask_provider(mask_provider)
        base_noise, object_noise, height, width = self.check_inputs(
            n,
            sequential,
            region_aware,
            base_noise,
            object_noise,
            start_from,
            reference_latent,
            num_inference_steps,
            height,
            width,
        )
        mask_for = prepare_masks(masks, n) if region_aware else {}  # masks only matter for region-aware noise
        refs = frame_references(recipe, sequential, kv_sharing, region_aware, start_from)
        pipe, cfg = self.pipe, guidance_scale > 1 and self.pipe.unet.config.time_cond_proj_dim is None
        guard_size(
            unet_estimate(pipe, self.device, height, width, num_inference_steps, n, cfg), self.device, allow_large
        )
        call = _Call(
            seed=seed,
            num_inference_steps=num_inference_steps,
            height=height,
            width=width,
            guidance_scale=guidance_scale,
            negative_prompt=negative_prompt,
            eta=eta,
            guidance_rescale=guidance_rescale,
            do_cfg=cfg,
            sequential=sequential,
            kv_sharing=kv_sharing,
            region_aware=region_aware,
            base_noise=base_noise,
            object_noise=object_noise,
            start_from=start_from,
            reference_latent=reference_latent,
            kv_layers=locate(pipe, *((kv_layers,) if isinstance(kv_layers, str) else kv_layers), kind="self")
            if kv_sharing
            else [],
            masks=mask_for,
            mask_provider=mask_provider,
            prompts=prompts,
            output_type=output_type,
            progress=progress,
            device=self.device,
            kv_state=KVSharingState(record_frames=set(refs.last_use), cache_device=kv_cache_device),
        )
        settings = self._settings(call)
        clip = ("CLIP", pipe.tokenizer, pipe.tokenizer.model_max_length)
        warn_dropped_tokens(prompts, [clip], "shorten those steps: the U-Net sees only their beginning.")
        with self._attention_processors(call), quiet_truncation(pipe):
            frames, final_latents = self._frames(call, recipe, refs)
        return RecipeDiffusionOutput(
            images=call.images, frames=frames, latents=final_latents, recipe=recipe, settings=settings
        )

    # ---- arguments -------------------------------------------------------------------------
    def check_inputs(
        self,
        n,
        sequential,
        region_aware,
        base_noise,
        object_noise,
        start_from,
        reference_latent,
        num_inference_steps,
        height,
        width,
    ):
        """Refuse impossible arguments before any model runs; returns (base_noise, object_noise, height, width).

        None for height/width takes the U-Net's own size (``sample_size * vae_scale_factor``).
        """
        base_noise, object_noise = check_level("base_noise", base_noise), check_level("object_noise", object_noise)
        check_switches(sequential, region_aware, start_from, reference_latent)
        height, width = check_steps_and_size(self.pipe, num_inference_steps, height, width)
        if sequential and NoiseLevels(None, num_inference_steps).steps_run(base_noise) == 0 and n > 1:
            raise ConfigError(
                f"base_noise={base_noise} runs no denoising step with num_inference_steps={num_inference_steps}: "
                "raise one of them."
            )
        return base_noise, object_noise, height, width

    def _settings(self, call: _Call) -> dict:
        """What the call ran with, as ``RecipeDiffusionOutput.settings`` reports it."""
        pipe = self.pipe
        switches = (call.sequential, call.kv_sharing, call.region_aware)
        return dict(
            seed=call.seed,
            num_inference_steps=call.num_inference_steps,
            height=call.height,
            width=call.width,
            guidance_scale=call.guidance_scale,
            negative_prompt=call.negative_prompt,
            eta=call.eta,
            guidance_rescale=call.guidance_rescale,
            sequential=call.sequential,
            kv_sharing=call.kv_sharing,
            region_aware=call.region_aware,
            base_noise=call.base_noise,
            object_noise=call.object_noise,
            start_from=call.start_from,
            reference_latent=call.reference_latent,
            kv_layers=call.kv_layers,
            scheduler=type(pipe.scheduler).__name__,
            model=pipe.name_or_path or type(pipe).__name__,
            variant=next(
                (
                    name
                    for name, v in VARIANTS.items()
                    if (v["sequential"], v["kv_sharing"], v["region_aware"]) == switches
                ),
                "custom",
            ),
            masks=sorted(call.masks),
            mask_provider=None
            if call.mask_provider is None or not call.region_aware
            else type(call.mask_provider).__name__,
        )

    # ---- processors and the frame loop -------------------------------------------------------
    @contextmanager
    def _attention_processors(self, call: _Call):
        """K/V-sharing processors on ``call.kv_layers`` (and tracing wrappers under a trace) for the ``with`` block.

        The U-Net's own processors are put back on every way out.
        """
        pipe, kv_state = self.pipe, call.kv_state
        originals = dict(pipe.unet.attn_processors)
        procs = dict(originals)
        for name in call.kv_layers:
            procs[name] = KVSharingAttnProcessor(name, kv_state)
        trace = self._trace
        if trace is not None:
            for name in trace.layers_to_wrap():
                procs[name] = observed(procs[name], name, trace)
        pipe.unet.set_attn_processor(dict(procs))
        try:
            yield
        finally:
            pipe.unet.set_attn_processor(dict(originals))
            pipe.maybe_free_model_hooks()

    def _frames(self, call: _Call, recipe, refs: FrameReferences):
        """Generate the frames in order; returns their ``FrameInfo`` and final latents (CPU float32).

        A frame's latent is kept while a later frame starts from it, its K/V are released after the
        last frame that shares them.
        """
        frames, final_latents = [], []
        n = len(recipe)
        for i in ProgressBar(range(n), desc="frames", enabled=call.progress and n > 1):
            info, latents = self._frame(call, i, recipe[i], refs.start[i], refs.mask[i], refs.kv[i])
            frames.append(info)
            final_latents.append(latents.detach().to("cpu", torch.float32))
            if i in refs.kept:
                call.kept[i] = latents
            for j in [j for j, last in refs.last_use.items() if last == i]:
                call.kv_state.release(j)
        return frames, final_latents

    def prepare_mask_provider(self, mask_provider):
        """A provider object as given (or None); a name built once by ``cooklab.grounding.registry`` for this
        pipeline's model set ("grounded-sam": offline, the pair trained on a registered set's pictures)."""
        if not isinstance(mask_provider, str):
            return mask_provider
        if mask_provider not in self._providers:
            from ..grounding.registry import named_mask_provider

            self._providers[mask_provider] = named_mask_provider(mask_provider, self.pipe, device=self.device)
        return self._providers[mask_provider]

    def _encode(self, prompt, negative_prompt, do_cfg, device):
        pos, neg = self.pipe.encode_prompt(prompt, device, 1, do_cfg, negative_prompt)
        return torch.cat([neg, pos]) if do_cfg else pos  # [2 or 1, 77, D]

    def _tokens(self, prompt: str) -> list[str]:
        tok = self.pipe.tokenizer
        ids = tok(prompt, truncation=True, max_length=tok.model_max_length).input_ids
        return tok.convert_ids_to_tokens(ids)

    def _resolve_mask(self, call: _Call, i: int, step, ref: int, latent_hw: tuple[int, int]):
        """The container mask of frame i's reference image: (MaskResult, mask on the latent grid, fallback reason)."""
        return resolve_container_mask(
            i,
            step,
            ref,
            call.masks.get(i),
            call.mask_provider,
            lambda: self._reference_image(call, ref),
            (call.height, call.width),
            latent_hw,
        )

    def decode_image(self, latents):
        """The 8-bit image (PIL) of a final latent [1, C, h, w], as the user receives it."""
        image = self.pipe.vae.decode(latents / self.pipe.vae.config.scaling_factor, return_dict=False)[0]
        return self.pipe.image_processor.postprocess(image, output_type="pil")[0]

    def _reference_image(self, call: _Call, j: int):
        """The 8-bit image of frame j (PIL), as the user receives it (decoded once, shared by the mask and L_j)."""
        if call.output_type == "pil":
            return call.images[j]
        if j not in call.pil:
            call.pil[j] = self.decode_image(call.kept[j])
        return call.pil[j]

    def _start_latent(self, call: _Call, j: int, generator, dtype) -> torch.Tensor:
        """L_j [1, C, h, w]: frame j's image encoded by the VAE ("encoded"), or its final latent ("final").

        "encoded" does what ``StableDiffusionImg2ImgPipeline`` does with an input image:
        ``preprocess`` -> ``vae.encode`` -> a posterior sample drawn from ``generator`` ->
        times ``scaling_factor``; it uses the generator before the noise is drawn, as img2img does.
        """
        if call.reference_latent == "final":
            return call.kept[j]
        pipe = self.pipe
        image = pipe.image_processor.preprocess(self._reference_image(call, j)).to(
            device=call.device, dtype=dtype
        )  # [1, 3, H, W]
        return (
            retrieve_latents(pipe.vae.encode(image), generator=generator) * pipe.vae.config.scaling_factor
        )  # [1, C, h, w]

    def _frame(self, call: _Call, i: int, step, start_ref: int | None, mask_ref: int | None, kv_ref: int | None):
        """Generate frame i; returns its FrameInfo and final latent [1, C, h, w].

        start_ref: the frame a uniformly noised start is taken from (``start_from``); mask_ref:
        the reference frame j whose container mask gives region-aware noise of L_j (Eq. 5-7),
        None when region-aware noise is off; kv_ref: the frame whose K/V are shared.
        """
        pipe, trace = self.pipe, self._trace
        prompt = call.prompts[i]
        prompt_embeds = self._encode(prompt, call.negative_prompt, call.do_cfg, call.device)
        timesteps, _ = retrieve_timesteps(pipe.scheduler, call.num_inference_steps, call.device)
        levels = NoiseLevels(pipe.scheduler, call.num_inference_steps)
        generator = torch.Generator(call.device).manual_seed(call.seed + i)
        channels = pipe.unet.config.in_channels
        latent_hw = (call.height // pipe.vae_scale_factor, call.width // pipe.vae_scale_factor)
        info = FrameInfo(
            index=i,
            text=step.text,
            prompt=prompt,
            seed=call.seed + i,
            container=step.container,
            reference=None,
            kv_reference=kv_ref,
            start_index=0,
            steps_run=call.num_inference_steps,
            start_timestep=float(timesteps[0]),
            base_noise=None,
            object_noise=None,
            object_timestep=None,
            region_aware=False,
            mask_reference=mask_ref,
        )
        mask = None
        if mask_ref is not None:  # the container mask in I_j decides whether Eq. 5-7 applies
            info.mask, mask, info.fallback = self._resolve_mask(call, i, step, mask_ref, latent_hw)
        if mask is not None:
            info.reference, info.start_from = mask_ref, "reference"  # Eq. 5-7 noise L_j
        elif start_ref is not None:
            info.reference, info.start_from = start_ref, call.start_from
        ref = info.reference
        if trace is not None:
            trace.begin_frame(FrameTrace(i, prompt, self._tokens(prompt), ref, latent_hw, kv_reference=kv_ref))

        if ref is None:  # from pure noise, exactly as the stock pipeline
            latents = pipe.prepare_latents(
                1, channels, call.height, call.width, prompt_embeds.dtype, call.device, generator
            )
        else:
            latents, timesteps = self._noised_start(
                call, i, info, mask, levels, generator, prompt_embeds.dtype, latent_hw
            )
        latents = self._denoise(call, i, latents, timesteps, prompt_embeds, generator, kv_ref, info.start_index)
        info.kv_fallback_steps = call.kv_state.fallback_steps.get(i, 0)
        call.images.append(self._decode(call, latents, generator))
        if trace is not None:
            trace.end_frame(call.images[-1])
        return info, latents

    def _noised_start(
        self, call: _Call, i: int, info: FrameInfo, mask, levels: NoiseLevels, generator, dtype, latent_hw
    ):
        """The start of a frame that continues an earlier one: (noised latent [1, C, h, w], the timesteps left to run).

        ``L_s`` of the frame ``s = info.reference`` is noised to ``base_noise`` (img2img), or with a
        container mask by Eq. 5-7: ``object_noise`` inside, ``base_noise`` outside. Denoising starts
        at the base level's timestep. Fills the frame's noise fields of ``info``.
        """
        pipe, trace = self.pipe, self._trace
        ref = info.reference
        info.reference_latent = call.reference_latent
        ref_latents = self._start_latent(call, ref, generator, dtype)  # [1, C, h, w]
        noise = randn_tensor(
            (1, pipe.unet.config.in_channels, *latent_hw), generator=generator, device=call.device, dtype=dtype
        )
        region = None
        if mask is not None:
            region = region_aware_noise(ref_latents, noise, mask, call.object_noise, call.base_noise, levels.add_noise)
        latents = region.combined if region is not None else levels.add_noise(ref_latents, noise, call.base_noise)
        start = levels.index(call.base_noise)
        if hasattr(pipe.scheduler, "set_begin_index"):
            pipe.scheduler.set_begin_index(start)
        timesteps = pipe.scheduler.timesteps[start:]
        info.start_index, info.steps_run, info.start_timestep = (
            start,
            len(timesteps) // levels.order,
            float(timesteps[0]),
        )
        info.base_noise, info.region_aware = call.base_noise, region is not None
        if region is not None:
            info.object_noise, info.object_timestep = call.object_noise, levels.timestep(call.object_noise)
            if call.object_noise != call.base_noise and levels.index(call.object_noise) == start:
                enough = next(
                    (
                        n
                        for n in range(call.num_inference_steps, 1001)
                        if int(n * call.object_noise) != int(n * call.base_noise)
                    ),
                    None,
                )
                warnings.warn(
                    f"step {i + 1} (frame {i}): object_noise={call.object_noise} and base_noise={call.base_noise} "
                    f"fall on the same timestep with num_inference_steps={call.num_inference_steps}, so region-aware "
                    f"noise equals uniform noise; use num_inference_steps >= {enough} or levels further apart.",
                    stacklevel=6,
                )
        if trace is not None:
            a, b = levels.coefficients(call.base_noise)
            trace.record_noise(
                NoiseRecord(
                    frame=i,
                    reference=ref,
                    base_noise=call.base_noise,
                    object_noise=info.object_noise,
                    base_timestep=levels.timestep(call.base_noise),
                    object_timestep=levels.timestep(call.object_noise) if region is not None else None,
                    region=None
                    if region is None
                    else RegionNoise(
                        *(
                            x.detach().cpu() if x.ndim == 4 else x
                            for x in (
                                region.combined,
                                region.container,
                                region.background,
                                region.mask,
                                region.signal_map,
                                region.sigma_map,
                            )
                        )
                    ),
                    noised=latents[0].detach().float().cpu(),
                    sigma_map=region.sigma_map if region is not None else torch.full(latent_hw, b),
                    signal_map=region.signal_map if region is not None else torch.full(latent_hw, a),
                    fallback=info.fallback,
                    mask=info.mask,
                )
            )  # coefficients(base_noise) leaves the scheduler's begin index at `start`, where it must be
        return latents, timesteps

    def _denoise(self, call: _Call, i: int, latents, timesteps, prompt_embeds, generator, kv_ref, first: int):
        """The sampling loop of frame i from position ``first`` of the schedule, with CFG; returns the final latent.

        ``call.kv_state`` tells the K/V-sharing processors the frame, its reference and the step's
        position (the reference's K/V of the same position are read).
        """
        pipe, trace = self.pipe, self._trace
        extra_step_kwargs = pipe.prepare_extra_step_kwargs(generator, call.eta)
        call.kv_state.frame, call.kv_state.reference = i, kv_ref
        for k, t in enumerate(ProgressBar(timesteps, desc=f"frame {i + 1}", leave=False, enabled=call.progress)):
            call.kv_state.step = first + k
            if trace is not None:
                trace.set_step(first + k, float(t))
            model_input = torch.cat([latents] * 2) if call.do_cfg else latents
            model_input = pipe.scheduler.scale_model_input(model_input, t)
            noise_pred = pipe.unet(model_input, t, encoder_hidden_states=prompt_embeds, return_dict=False)[0]
            if call.do_cfg:
                noise_uncond, noise_text = noise_pred.chunk(2)
                noise_pred = noise_uncond + call.guidance_scale * (noise_text - noise_uncond)
                if call.guidance_rescale > 0.0:
                    noise_pred = rescale_noise_cfg(noise_pred, noise_text, guidance_rescale=call.guidance_rescale)
            latents = pipe.scheduler.step(noise_pred, t, latents, **extra_step_kwargs, return_dict=False)[0]
        return latents

    def _decode(self, call: _Call, latents, generator):
        """The frame as ``output_type`` asks: the VAE's image (PIL, np, pt), or the latent itself for ``"latent"``."""
        if call.output_type == "latent":
            return latents
        pipe = self.pipe
        image = pipe.vae.decode(latents / pipe.vae.config.scaling_factor, return_dict=False, generator=generator)[0]
        return pipe.image_processor.postprocess(image, output_type=call.output_type, do_denormalize=[True])[0]
