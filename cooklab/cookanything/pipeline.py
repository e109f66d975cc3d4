"""The CookAnything pipeline: all N recipe steps in ONE Flux denoising pass on one canvas.

For a recipe of N steps (1..12) the canvas holds N regions of ``height x width`` pixels
stacked vertically, so region n's packed latent tokens are contiguous (region-major). Per
call:

1. text: each step is encoded on its own (T5 ``C_n`` + CLIP pooled); the whole description
   (title and all steps) is encoded once -- it is the base branch's prompt and, for Cross-Step
   Consistency Control, the recipe encoding the step spans are read from (``cscc.py``):
   ``C_n[0:t_n] += lam * C_recipe[b_n : b_n + t_n]``;
2. noise: region n's latents are drawn from ``Generator(device).manual_seed(seed + n)``
   exactly as ``FluxPipeline`` draws one image's, then packed and concatenated;
3. positions: Flexible RoPE ids restart in every region (``flexible_rope.py``);
4. attention: ``RegionalFluxAttnProcessor`` (``regional.py``) on the selected blocks and
   steps: regional branch with the 2N x 2N group mask plus the whole-description base branch,
   blended with ``alpha``;
5. the scheduler shift ``mu`` comes from the canvas's real image sequence length; each
   region's latent is decoded on its own and the canvas is their vertical stack.

True classifier-free guidance (``true_cfg_scale > 1``, diffusers' name; off by default) runs the
transformer a second time per step on the same canvas, layout, RoPE ids and regional
processors, with the negative prompt in every text slot (see ``CookAnything.__call__``). It is
for Flux-architecture models without guidance distillation; FLUX.1-dev/schnell steer with
``guidance_scale`` (the guidance embedding) instead.

The canvas's pooled embedding (Flux's global conditioning) is CLIP's pooled encoding of the whole
description, which CLIP cuts at 77 tokens: for long recipes it sees the title and the first steps.

``regional=False`` gives plain Flux on the canvas with the concatenated step encodings as
prompt (pooled embedding: mean of the steps'), which for N = 1 with ``flexible_rope`` and
``cscc`` off is exactly ``FluxPipeline(step_text, generator=Generator().manual_seed(seed))``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import PIL.Image
import torch
from diffusers import FluxPipeline
from diffusers.pipelines.flux.pipeline_flux import calculate_shift, retrieve_timesteps
from diffusers.utils.torch_utils import randn_tensor
from tqdm.auto import tqdm

from ..errors import ConfigError
from ..instrument.locate import locate
from ..pipeline_base import CooklabPipeline
from ..recipe import Recipe, as_recipe
from .cscc import RecipeSpans, cscc_fuse, step_token_spans, whole_description
from .flexible_rope import canvas_image_ids, text_ids
from .regional import RegionalFluxAttnProcessor, RegionalState, RegionLayout, resolve_backend

MAX_STEPS = 12  # regions on one canvas; beyond this the joint sequence outgrows a single GPU's memory at 512^2
DEFAULT_REGION_SIZE = 512  # pixels per region side on real checkpoints (the paper's 512 x 512 steps)


@dataclass
class CookAnythingOutput:
    images: list  # N images, one per step (PIL by default)
    canvas: object  # the whole canvas (regions stacked vertically)
    layout: RegionLayout
    spans: RecipeSpans | None  # CSCC token spans (None when cscc is off)
    recipe: Recipe
    settings: dict = field(default_factory=dict)


class CookAnything(CooklabPipeline):
    """CookAnything on a diffusers ``FluxPipeline`` (FLUX.1-dev / schnell or the tiny offline one)."""

    pipeline_class = FluxPipeline
    denoiser_name = "transformer"
    loader = "load_flux"
    wrong_kind_hint = "For Stable Diffusion use cooklab.RecipeDiffusion; load Flux with cooklab.models.load_flux(id_or_path)."

    # ---- pieces of a call --------------------------------------------------------------
    def _region_grid(self, height: int, width: int) -> tuple[int, int]:
        """Packed token grid (rows, cols) of one region, from the latent shape Flux will use."""
        f = self.pipe.vae_scale_factor * 2
        if height <= 0 or width <= 0 or height % f or width % f:
            raise ConfigError(f"height={height}, width={width} (of one region): both must be positive multiples of {f} for this Flux model.")
        latent_h, latent_w = 2 * (height // f), 2 * (width // f)  # as FluxPipeline.prepare_latents
        return latent_h // 2, latent_w // 2

    def _noise(self, n_regions, height, width, seed, dtype, device) -> torch.Tensor:
        """[1, N P, C 4] packed canvas latents; region n drawn from Generator(device).manual_seed(seed + n)."""
        channels = self.pipe.transformer.config.in_channels // 4
        latent_h, latent_w = 2 * (height // (self.pipe.vae_scale_factor * 2)), 2 * (width // (self.pipe.vae_scale_factor * 2))
        regions = []
        for n in range(n_regions):
            g = torch.Generator(device).manual_seed(seed + n)
            x = randn_tensor((1, channels, latent_h, latent_w), generator=g, device=device, dtype=dtype)
            regions.append(self.pipe._pack_latents(x, 1, channels, latent_h, latent_w))  # [1, P, C 4]
        return torch.cat(regions, dim=1)

    def _decode(self, latents, n_regions, height, width, output_type):
        """Decode each region's latent on its own; returns (images, canvas)."""
        pipe = self.pipe
        p = latents.shape[1] // n_regions
        images = []
        for n in range(n_regions):
            z = pipe._unpack_latents(latents[:, n * p : (n + 1) * p], height, width, pipe.vae_scale_factor)
            z = (z / pipe.vae.config.scaling_factor) + pipe.vae.config.shift_factor
            image = pipe.vae.decode(z, return_dict=False)[0]
            images.append(pipe.image_processor.postprocess(image, output_type=output_type)[0])
        if output_type == "pil":
            canvas = PIL.Image.new("RGB", (images[0].width, sum(im.height for im in images)))
            for n, im in enumerate(images):
                canvas.paste(im, (0, n * im.height))
        elif output_type == "np":
            canvas = np.concatenate(images, axis=0)
        else:
            canvas = torch.cat(images, dim=-2)
        return images, canvas

    # ---- the call ------------------------------------------------------------------------
    @torch.no_grad()
    def __call__(
        self,
        recipe,
        *,
        plan=None,
        enriched_prompts: bool = True,
        seed: int = 0,
        num_inference_steps: int = 28,
        height: int | None = None,
        width: int | None = None,
        guidance_scale: float = 3.5,
        true_cfg_scale: float = 1.0,
        negative_prompt: str | None = None,
        max_sequence_length: int = 512,
        regional: bool = True,
        flexible_rope: bool = True,
        rope_step_axis: bool = False,
        cscc: bool = True,
        alpha: float = 0.1,
        lam: float = 0.2,
        image_attention: str = "region",
        regional_blocks=("double", "single"),
        regional_every: int = 1,
        regional_steps=None,
        attention_backend: str = "auto",
        output_type: str = "pil",
        progress: bool = True,
    ) -> CookAnythingOutput:
        """Generate every step of ``recipe`` in one denoising pass (height/width are those of ONE region).

        plan: a ``cooklab.agent.RecipePlan`` from the Cooking Agent; with ``enriched_prompts``
        (default) its enriched, context-tagged prompts are encoded instead of the step texts.

        regional_blocks: layer patterns (``"double"``, ``"single"``, names; see ``cooklab.locate``)
        whose attention runs SRC; regional_every: keep every k-th of them; regional_steps: None
        (all), an int k (the first k steps) or an iterable of step indices.
        attention_backend: ``"auto"`` (flex on CUDA, batched/masked on CPU), ``"batched"``,
        ``"flex"`` or ``"masked"`` (see ``regional.py``).

        guidance_scale: Flux's *embedded* guidance (the guidance-distilled FLUX.1 models; ignored by
        a transformer with ``guidance_embeds=False``). true_cfg_scale / negative_prompt: *true*
        classifier-free guidance, as ``FluxPipeline``'s arguments of the same names. With
        ``true_cfg_scale > 1`` every denoising step runs the transformer twice and combines

            noise_pred = neg_noise_pred + true_cfg_scale * (noise_pred - neg_noise_pred)

        where ``noise_pred`` is the usual (conditional) prediction and ``neg_noise_pred`` the
        prediction with the negative prompt. Unlike ``FluxPipeline``, which does true CFG only when
        a negative prompt is given, ``negative_prompt=None`` here means the empty prompt ``""``
        (the unconditional branch). The negative branch sees the same canvas, region layout,
        RoPE ids and regional attention (same layers, steps, alpha) as the conditional one; the
        negative prompt is encoded once (CLIP pooled + T5 padded to ``max_sequence_length``) and
        fills every text slot, the whole-description (base) slot and each step's slot, and CSCC is
        not applied to it. An attached ``cooklab.trace`` records the conditional branch only.
        ``true_cfg_scale <= 1`` (default 1.0) switches it off, as in diffusers: one transformer
        call per step, the same result as before this option existed (a ``negative_prompt`` is
        then ignored, with a warning). Negative or NaN scales raise ``ConfigError``. It doubles
        the transformer's time per step. ``settings`` records ``true_cfg_scale`` and the negative
        prompt used (``None`` when true CFG is off).
        """
        recipe = as_recipe(recipe)
        n = len(recipe)
        if n > MAX_STEPS:
            raise ConfigError(f"the recipe has {n} steps; one CookAnything canvas holds at most {MAX_STEPS}: split the recipe "
                              "(e.g. cooklab.Recipe.from_steps(recipe.steps[:12])) or generate it in parts.")
        if not 0.0 <= alpha <= 1.0:
            raise ConfigError(f"alpha={alpha}: the base-branch weight must be between 0 and 1 (paper: 0.1).")
        if lam < 0:
            raise ConfigError(f"lam={lam}: the CSCC weight must be >= 0 (paper: 0.2; studied from 0 to 1).")
        if rope_step_axis and not flexible_rope:
            raise ConfigError("rope_step_axis=True needs flexible_rope=True (global ids leave axis 0 unused).")
        if int(num_inference_steps) < 1:
            raise ConfigError(f"num_inference_steps={num_inference_steps}: use at least 1.")
        if not 1 <= int(max_sequence_length) <= 512:
            raise ConfigError(f"max_sequence_length={max_sequence_length}: T5 in Flux takes 1 to 512 tokens per prompt.")
        try:
            true_cfg_scale = float(true_cfg_scale)
        except (TypeError, ValueError):
            raise ConfigError(f"true_cfg_scale={true_cfg_scale!r}: give a number (1.0 = off, > 1 = true classifier-free guidance).") from None
        if not (math.isfinite(true_cfg_scale) and true_cfg_scale >= 0):
            raise ConfigError(f"true_cfg_scale={true_cfg_scale}: use a finite number >= 0; values <= 1 (default 1.0) switch true "
                              "classifier-free guidance off, values > 1 switch it on.")
        if negative_prompt is not None and not isinstance(negative_prompt, str):
            raise ConfigError(f"negative_prompt={negative_prompt!r}: give one string (it fills the base prompt and every step's "
                              "prompt of the negative branch) or None (the empty prompt).")
        do_true_cfg = true_cfg_scale > 1  # as diffusers: <= 1 is off
        if do_true_cfg and negative_prompt is None:
            negative_prompt = ""  # unconditional branch (FluxPipeline would skip true CFG here)
        if not do_true_cfg and negative_prompt is not None:
            warnings.warn(f"negative_prompt={negative_prompt!r} is ignored with true_cfg_scale={true_cfg_scale:g}: "
                          "set true_cfg_scale > 1 to use it.", stacklevel=3)
        pipe, device = self.pipe, self.device
        default = min(DEFAULT_REGION_SIZE, pipe.default_sample_size * pipe.vae_scale_factor)  # 512 on real models
        height, width = height or default, width or default
        rows, cols = self._region_grid(height, width)
        backend = resolve_backend(attention_backend, image_attention, device)
        texts = plan.prompts() if plan is not None and enriched_prompts else recipe.texts
        if len(texts) != n:
            raise ConfigError(f"the plan has {len(texts)} prompts for a recipe of {n} steps: plan this recipe again.")

        # 1. text: each step alone, and the whole description once
        step_embeds, step_pooled, _ = pipe.encode_prompt(prompt=texts, prompt_2=texts, device=device,
                                                         max_sequence_length=max_sequence_length)  # [N, L, D], [N, Dp]
        spans = None
        base_embeds = base_pooled = None
        if regional or cscc:
            whole, _ = whole_description(texts, recipe.title)
            base_embeds, base_pooled, _ = pipe.encode_prompt(prompt=whole, prompt_2=whole, device=device,
                                                             max_sequence_length=max_sequence_length)  # [1, L, D], [1, Dp]
        cscc_delta = None
        if regional or cscc:
            spans = step_token_spans(pipe.tokenizer_2, texts, recipe.title, max_sequence_length)
            if spans.truncated_steps:
                warnings.warn(
                    f"the whole description is cut at max_sequence_length={max_sequence_length} T5 tokens: steps "
                    f"{[i + 1 for i in spans.truncated_steps]} are partly or wholly missing from the base prompt and from CSCC; "
                    "raise max_sequence_length (Flux: up to 512) or shorten the recipe.",
                    stacklevel=3,
                )
        if cscc:
            unmatched = [span.step + 1 for span in spans.spans if span.length and not span.matches]
            if unmatched and lam != 0:
                warnings.warn(
                    f"CSCC leaves steps {unmatched} unfused: their tokens inside the whole description differ from the step "
                    "tokenized alone, so Eq. 12's position-by-position sum would add different tokens. Rephrase the step's "
                    "first or last word, or accept these steps without cross-step context.",
                    stacklevel=3,
                )
            step_embeds, cscc_delta = cscc_fuse(step_embeds, base_embeds, spans, lam)
        else:
            spans = None
        L = step_embeds.shape[1]
        parts = ([base_embeds] if regional else []) + list(step_embeds.split(1))
        prompt_embeds = torch.cat([p.reshape(1, -1, p.shape[-1]) for p in parts], dim=1)  # [1, L_b + N L, D]
        pooled = base_pooled if regional else step_pooled.mean(0, keepdim=True)  # [1, Dp]
        layout = RegionLayout(n, rows, cols, L, L if regional else 0)
        neg_embeds = neg_pooled = None
        if do_true_cfg:  # the negative branch: the same layout, every text slot holds the negative prompt, no CSCC
            neg, neg_pooled, _ = pipe.encode_prompt(prompt=negative_prompt, prompt_2=negative_prompt, device=device,
                                                     max_sequence_length=max_sequence_length)  # [1, L, D], [1, Dp]
            neg_embeds = neg.repeat(1, (1 if regional else 0) + n, 1)  # [1, L_b + N L, D]: base slot and N step slots
            assert neg_embeds.shape == prompt_embeds.shape, (neg_embeds.shape, prompt_embeds.shape)

        # 2-3. noise and positions
        latents = self._noise(n, height, width, seed, prompt_embeds.dtype, device)  # [1, N P, C 4]
        # ids in float32 whatever the model's dtype: bf16 holds integers exactly only up to 256, and global
        # canvas rows reach N * rows - 1 (N = 12 at 512^2: 383). FluxPosEmbed computes in float32/64 anyway.
        img_ids = canvas_image_ids(n, rows, cols, flexible=flexible_rope, step_axis=rope_step_axis, device=device,
                                   dtype=torch.float32)  # [N P, 3]
        txt_ids = text_ids(prompt_embeds.shape[1], device=device, dtype=torch.float32)  # [L_b + N L, 3]

        # 4. processors for this call only
        names = locate(pipe.transformer, *((regional_blocks,) if isinstance(regional_blocks, str) else regional_blocks))
        names = names[:: max(1, int(regional_every))]
        if isinstance(regional_steps, int):
            steps = frozenset(range(regional_steps))
        else:
            steps = None if regional_steps is None else frozenset(int(s) for s in regional_steps)
        state = RegionalState(layout, float(alpha), image_attention, backend, frozenset(names) if regional else frozenset(),
                              steps, observer=self._trace)
        originals = dict(pipe.transformer.attn_processors)
        install = regional or self._trace is not None  # off and untraced: the stock processors run untouched
        try:  # from the moment processors are installed, every path out restores the stock ones
            if install:
                pipe.transformer.set_attn_processor({name: RegionalFluxAttnProcessor(name, state) for name in originals})
            if self._trace is not None:
                counts = [len(ids) for ids in pipe.tokenizer_2(texts, truncation=True, max_length=L).input_ids]  # real tokens + EOS
                self._trace.begin_canvas(layout=layout, texts=texts, img_ids=img_ids, txt_ids=txt_ids, spans=spans,
                                         cscc_delta=cscc_delta, regional=regional, alpha=alpha, token_counts=counts)
            latents, mu = self._denoise(latents, state, prompt_embeds, pooled, neg_embeds, neg_pooled, txt_ids, img_ids,
                                        num_inference_steps, guidance_scale, true_cfg_scale, progress)
        finally:
            if install:
                pipe.transformer.set_attn_processor(dict(originals))
            pipe.maybe_free_model_hooks()

        if output_type == "latent":
            images, canvas = list(latents.split(latents.shape[1] // n, dim=1)), latents
        else:
            images, canvas = self._decode(latents, n, height, width, output_type)
        settings = dict(seed=seed, num_inference_steps=num_inference_steps, height=height, width=width, guidance_scale=guidance_scale,
                        true_cfg_scale=true_cfg_scale, negative_prompt=negative_prompt if do_true_cfg else None,
                        max_sequence_length=max_sequence_length, regional=regional, flexible_rope=flexible_rope,
                        rope_step_axis=rope_step_axis, cscc=cscc, alpha=alpha, lam=lam, image_attention=image_attention,
                        attention_backend=backend if regional else None, regional_layers=sorted(state.layers), regional_steps=None if steps is None else sorted(steps),
                        mu=float(mu), model=pipe.name_or_path or type(pipe).__name__,
                        truncated_steps=[] if spans is None else [i + 1 for i in spans.truncated_steps],
                        cscc_unmatched_steps=[] if spans is None else [s.step + 1 for s in spans.spans if s.length and not s.matches])
        if self._trace is not None:
            self._trace.end_canvas(images, canvas)
        return CookAnythingOutput(images=images, canvas=canvas, layout=layout, spans=spans, recipe=recipe, settings=settings)

    def _denoise(self, latents, state, prompt_embeds, pooled, neg_embeds, neg_pooled, txt_ids, img_ids, num_inference_steps,
                 guidance_scale, true_cfg_scale, progress):
        """Step 5: the flow-matching loop over the canvas; returns (final latents [1, N P, C 4], mu)."""
        pipe, device = self.pipe, self.device
        sigmas = np.linspace(1.0, 1 / num_inference_steps, num_inference_steps)
        if getattr(pipe.scheduler.config, "use_flow_sigmas", False):
            sigmas = None
        mu = calculate_shift(latents.shape[1], pipe.scheduler.config.get("base_image_seq_len", 256),
                             pipe.scheduler.config.get("max_image_seq_len", 4096), pipe.scheduler.config.get("base_shift", 0.5),
                             pipe.scheduler.config.get("max_shift", 1.15))
        timesteps, _ = retrieve_timesteps(pipe.scheduler, num_inference_steps, device, sigmas=sigmas, mu=mu)
        guidance = torch.full([1], guidance_scale, device=device, dtype=torch.float32) if pipe.transformer.config.guidance_embeds else None
        pipe.scheduler.set_begin_index(0)
        for i, t in enumerate(tqdm(timesteps, desc="denoising", disable=not progress)):
            state.step = i
            if self._trace is not None:
                self._trace.set_step(i, float(t))
            noise_pred = pipe.transformer(hidden_states=latents, timestep=t.expand(1).to(latents.dtype) / 1000, guidance=guidance,
                                          pooled_projections=pooled, encoder_hidden_states=prompt_embeds, txt_ids=txt_ids,
                                          img_ids=img_ids, return_dict=False)[0]  # [1, N P, C 4]
            if neg_embeds is not None:  # true CFG
                state.observer = None  # the trace records the conditional branch only
                neg_noise_pred = pipe.transformer(hidden_states=latents, timestep=t.expand(1).to(latents.dtype) / 1000,
                                                  guidance=guidance, pooled_projections=neg_pooled,
                                                  encoder_hidden_states=neg_embeds, txt_ids=txt_ids, img_ids=img_ids,
                                                  return_dict=False)[0]  # [1, N P, C 4]
                state.observer = self._trace
                noise_pred = neg_noise_pred + true_cfg_scale * (noise_pred - neg_noise_pred)
            latents = pipe.scheduler.step(noise_pred, t, latents, return_dict=False)[0]
        return latents, mu
