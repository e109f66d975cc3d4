"""CookAnything's one-canvas method on a Stable Diffusion U-Net: SRC (regional prompting) and CSCC.

``RegionalSD`` generates all N steps of a recipe in one denoising pass, on a canvas of N regions
stacked top to bottom (each ``height x width``), the way ``CookAnything`` does on Flux:

1. text: each step encoded alone by CLIP (``C_n``, [77, D]), the whole description once
   (``C_base``; ``cscc.whole_description``); with ``cscc`` Eq. 12 fuses the whole description's
   tokens into each step's (``cscc.cscc_fuse``; rows 1..t_n, after CLIP's start token);
   the text stream is ``[C_base | C_1 | ... | C_N]`` ([1, 77 (N + 1), D]);
2. noise: region n drawn as ``StableDiffusionPipeline`` draws one image from
   ``Generator(device).manual_seed(seed + n)`` (``prepare_latents``), the regions stacked;
3. attention: ``RegionalUNetAttnProcessor`` on every U-Net attention layer for the call
   (``cookanything/regional_unet.py``: Eq. 9 per attention kind), restored afterwards;
4. the stock sampling loop with classifier-free guidance (negative prompt in every slot);
5. the canvas decoded once and cut into N images.

Which of CookAnything's mechanisms carry over and why: SRC yes (cross-attention is where text
meets image; self-attention has the image-image entries of the 2N x 2N mask); CSCC yes (it only
changes the text encodings); Flexible RoPE no (a U-Net has no position ids; its convolutions see
the canvas as one picture, so regions also meet at their borders, which Flux's attention-only
blocks do not). ``regional=False`` is one SD image of the tall canvas conditioned on every
step's text at once (full attention over ``[C_1 .. C_N]``, stock processors), CookAnything's
"without SRC". One region with ``regional=False`` and ``cscc=False`` is stock
``StableDiffusionPipeline`` output bit for bit (tested).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from diffusers import StableDiffusionPipeline

from ..console import ProgressBar
from ..cookanything.cscc import RecipeSpans, cscc_fuse, step_token_spans, whole_description
from ..cookanything.regional_unet import RegionalUNetAttnProcessor, RegionalUNetState, UNetRegionLayout
from ..errors import ConfigError
from ..pipeline_base import CooklabPipeline
from ..recipe import MAX_RECIPE_STEPS, Recipe
from ..recipe_diffusion.inputs import check_sampler, check_steps_and_size, prepare_recipe


@dataclass
class RegionalSDOutput:
    images: list  # N images, one per step (PIL by default; "latent": [1, 4, h, w] each)
    canvas: object  # the whole canvas (regions stacked top to bottom)
    recipe: Recipe
    spans: RecipeSpans | None  # CSCC token spans (None when cscc is off)
    settings: dict = field(default_factory=dict)


class RegionalSD(CooklabPipeline):
    """All steps of a recipe on one Stable Diffusion canvas,
    with SRC and CSCC (CookAnything's mechanisms on a U-Net).
    """

    pipeline_class = StableDiffusionPipeline
    denoiser_name = "unet"
    loader = "load_sd"
    wrong_kind_hint = (
        "For Flux use cooklab.CookAnything; load Stable Diffusion with cooklab.models.load_sd(id_or_path)."
    )

    def attach_trace(self, trace) -> None:
        raise ConfigError(
            "cooklab.trace records RecipeDiffusion and CookAnything; RegionalSD has no hook points yet. "
            "Trace cooklab.CookAnything for SRC's attention maps."
        )

    @torch.no_grad()
    def __call__(
        self,
        recipe,
        *,
        plan=None,
        enriched_prompts: bool = False,
        seed: int = 0,
        num_inference_steps: int = 30,
        height: int | None = None,
        width: int | None = None,
        guidance_scale: float = 7.5,
        negative_prompt: str | None = None,
        regional: bool = True,
        alpha: float = 0.1,
        image_attention: str = "region",
        cscc: bool = False,
        lam: float = 0.2,
        output_type: str = "pil",
        progress: bool = True,
    ) -> RegionalSDOutput:
        """Generate every step of ``recipe`` on one canvas.

        Args:
            recipe, plan, enriched_prompts: as ``RecipeDiffusion.__call__`` (1 to ``MAX_RECIPE_STEPS`` steps).
            seed: region n is drawn as stock SD draws an image from ``seed + n``.
            num_inference_steps, guidance_scale, negative_prompt: as ``StableDiffusionPipeline``.
            height, width: of ONE region (None: the U-Net's own size); positive multiples of 8.
            regional: SRC (Eq. 9 in every attention layer, ``regional_unet.py``).
            alpha: the base branch's weight (0 to 1).
            image_attention: ``"region"`` (self-attention kept in each region in the regional branch)
                or ``"global"`` (self-attention full: classic regional prompting).
            cscc, lam: Eq. 12 on the CLIP encodings, and its weight (0 to 1).
            output_type: ``"pil"``, ``"np"``, ``"pt"`` or ``"latent"``.
            progress: show the progress bar.
        """
        seed, num_inference_steps, guidance_scale, _, _ = check_sampler(seed, num_inference_steps, guidance_scale)
        recipe, prompts = prepare_recipe(recipe, None, plan, enriched_prompts)
        n = len(recipe)
        height, width, latent_h = self._check_inputs(
            n, num_inference_steps, height, width, alpha, lam, image_attention
        )
        pipe, device = self.pipe, self.device
        do_cfg = guidance_scale > 1.0

        text, spans = self._encode_text(
            prompts, recipe.title, regional, cscc, lam, negative_prompt, do_cfg
        )  # [B, T, D]
        generators = [torch.Generator(device).manual_seed(seed + i) for i in range(n)]
        latents = torch.cat(
            [
                pipe.prepare_latents(1, pipe.unet.config.in_channels, height, width, text.dtype, device, g)
                for g in generators
            ],
            dim=2,
        )  # [1, 4, N h, w]: region n as stock SD draws it from seed + n
        length = pipe.tokenizer.model_max_length
        state = RegionalUNetState(
            UNetRegionLayout(n, length, length),
            float(alpha),
            image_attention,
            frozenset(pipe.unet.attn_processors) if regional else frozenset(),
        )
        with self._attention_processors(state, install=regional):
            latents = self._denoise(
                latents, text, num_inference_steps, guidance_scale, do_cfg, generators[0], progress
            )

        images, canvas = self._decode(latents, n, latent_h, output_type)
        settings = dict(
            method="regional_sd",
            seed=seed,
            num_inference_steps=num_inference_steps,
            height=height,
            width=width,
            guidance_scale=guidance_scale,
            negative_prompt=negative_prompt,
            regional=regional,
            alpha=alpha,
            image_attention=image_attention,
            cscc=cscc,
            lam=lam,
            scheduler=type(pipe.scheduler).__name__,
            model=pipe.name_or_path or type(pipe).__name__,
            truncated_steps=[] if spans is None else [i + 1 for i in spans.truncated_steps],
        )
        return RegionalSDOutput(images=images, canvas=canvas, recipe=recipe, spans=spans, settings=settings)

    # ---- 0. arguments ----------------------------------------------------------------------
    def _check_inputs(
        self, n, num_inference_steps, height, width, alpha, lam, image_attention
    ) -> tuple[int, int, int]:
        """Refuse impossible arguments before any model runs; returns (height, width, latent height of one region)."""
        if not 1 <= n <= MAX_RECIPE_STEPS:
            raise ConfigError(f"a recipe of {n} steps: RegionalSD draws 1 to {MAX_RECIPE_STEPS} regions.")
        height, width = check_steps_and_size(self.pipe, num_inference_steps, height, width)
        if not 0.0 <= float(alpha) <= 1.0:
            raise ConfigError(f"alpha={alpha}: the base branch's weight must be in [0, 1] (CookAnything: 0.1).")
        if not 0.0 <= float(lam) <= 1.0:
            raise ConfigError(f"lam={lam}: CSCC's fusion weight must be in [0, 1] (CookAnything: 0.2).")
        if image_attention not in ("region", "global"):
            raise ConfigError(f"image_attention={image_attention!r}: choose 'region' or 'global'.")
        latent_h = height // self.pipe.vae_scale_factor
        down = 2 ** (len(self.pipe.unet.config.block_out_channels) - 1)  # the U-Net's total downsampling
        if latent_h % down or (width // self.pipe.vae_scale_factor) % down:
            raise ConfigError(
                f"height={height}, width={width}: each region's latent "
                f"({latent_h}x{width // self.pipe.vae_scale_factor}) "
                f"must be divisible by the U-Net's downsampling ({down}) so regions stay apart at every resolution: "
                f"use multiples of {down * self.pipe.vae_scale_factor} px."
            )
        return height, width, latent_h

    # ---- 1. text ---------------------------------------------------------------------------
    def _encode_text(
        self, prompts, title, regional, cscc, lam, negative_prompt, do_cfg
    ) -> tuple[torch.Tensor, RecipeSpans | None]:
        """The text stream [B, 77 (N + 1), D] (or [B, 77 N, D] without SRC), negative first under CFG; CSCC's spans."""
        pipe, device = self.pipe, self.device
        spans = None
        if cscc:
            spans = step_token_spans(pipe.tokenizer, list(prompts), title, pipe.tokenizer.model_max_length)
            prompts = spans.step_texts
        steps, negative = pipe.encode_prompt(
            list(prompts), device, 1, do_cfg, [negative_prompt or ""] * len(prompts)
        )  # [N, 77, D]
        description = whole_description(list(prompts), title)[0]
        base = pipe.encode_prompt(description, device, 1, False)[0]  # [1, 77, D]
        if cscc:
            steps, _ = cscc_fuse(steps, base, spans, lam)  # Eq. 12
        slots = ([base] if regional else []) + list(steps[:, None])  # each [1, 77, D]
        text = torch.cat(slots, dim=1)  # [1, 77 (N + 1), D]
        if do_cfg:
            uncond = torch.cat([negative[:1]] * len(slots), dim=1)  # the negative prompt in every slot
            text = torch.cat([uncond, text])  # [2, T, D]
        return text, spans

    # ---- 3. attention processors ---------------------------------------------------------------
    @contextmanager
    def _attention_processors(self, state: RegionalUNetState, install: bool):
        """Regional processors on every U-Net attention layer for the ``with`` block;
        the stock ones back on every way out.
        """
        unet = self.pipe.unet
        originals = dict(unet.attn_processors)
        try:
            if install:
                unet.set_attn_processor(
                    {name: RegionalUNetAttnProcessor(name, state, proc) for name, proc in originals.items()}
                )
            yield
        finally:
            if install:
                unet.set_attn_processor(dict(originals))

    # ---- 4. denoising ------------------------------------------------------------------------
    def _denoise(self, latents, text, num_inference_steps, guidance_scale, do_cfg, generator, progress):
        """The stock sampling loop of ``StableDiffusionPipeline`` on the canvas (eta 0, no guidance rescale).

        generator: region 1's, for schedulers that draw noise in ``step`` (as the stock pipeline passes its own).
        """
        pipe = self.pipe
        pipe.scheduler.set_timesteps(num_inference_steps, device=self.device)
        extra = pipe.prepare_extra_step_kwargs(generator, 0.0)
        for t in ProgressBar(pipe.scheduler.timesteps, desc="canvas", leave=False, enabled=progress):
            model_input = pipe.scheduler.scale_model_input(torch.cat([latents] * 2) if do_cfg else latents, t)
            noise_pred = pipe.unet(model_input, t, encoder_hidden_states=text, return_dict=False)[0]
            if do_cfg:
                noise_uncond, noise_text = noise_pred.chunk(2)
                noise_pred = noise_uncond + guidance_scale * (noise_text - noise_uncond)
            latents = pipe.scheduler.step(noise_pred, t, latents, **extra, return_dict=False)[0]
        return latents

    # ---- 5. decoding -------------------------------------------------------------------------
    def _decode(self, latents, n: int, latent_h: int, output_type: str):
        """One image per region (each decoded on its own, as CookAnything does) and the canvas."""
        regions = list(latents.split(latent_h, dim=2))  # N x [1, 4, h, w]
        if output_type == "latent":
            return regions, latents
        pipe = self.pipe
        decoded = [
            pipe.vae.decode(z / pipe.vae.config.scaling_factor, return_dict=False)[0] for z in regions
        ]  # [1, 3, H, W]
        images = [
            pipe.image_processor.postprocess(x, output_type=output_type, do_denormalize=[True])[0] for x in decoded
        ]
        canvas = pipe.image_processor.postprocess(
            torch.cat(decoded, dim=2), output_type=output_type, do_denormalize=[True]
        )[0]
        return images, canvas
