"""The CookAnything pipeline: all N recipe steps in ONE Flux denoising pass on one canvas.

For a recipe of N steps (up to ``chunk_size``, by default ``MAX_STEPS`` = 12) the canvas holds N
regions of ``height x width`` pixels stacked vertically, so region n's packed latent tokens are
contiguous (region-major). A longer recipe is cut into chunks, canvases of at most ``chunk_size``
regions generated one after another and joined by anchor regions (``chunked.py``): stage 1 runs
once for the whole recipe, stages 2-5 once per chunk on its part of it (``_chunk_canvas``).
``CookAnything.__call__`` runs these stages, one method each:

0. ``_check_call``, ``_check_canvas``, ``_region_size``, ``_step_prompts``: arguments refused before
   any model runs; the T5 length defaults to the pipeline's own tokenizer's (``default_max_sequence_length``);

Stages 1, 3 and 4's state are ``prepare_canvas`` (a ``Canvas``): the one code path that LoRA
training (``cooklab.training``) shares, so training and inference read the same canvas.
1. ``_encode_text``: each step is encoded on its own (T5 ``C_n`` + CLIP pooled); the whole
   description (title and all steps) is encoded once -- it is the base branch's prompt and, for
   Cross-Step Consistency Control, the recipe encoding the step spans are read from (``cscc.py``):
   ``C_n[0:t_n] += lam * C_recipe[b_n : b_n + t_n]``;
2. ``_noise``: region n's latents are drawn from ``Generator(device).manual_seed(seed + n)``
   exactly as ``FluxPipeline`` draws one image's, then packed (``pack_latents``) one region
   after another;
3. ``_position_ids``: Flexible RoPE ids restart in every region (``flexible_rope.py``);
4. ``_regional_state``, ``_attention_processors``: ``RegionalFluxAttnProcessor`` (``regional.py``)
   on the selected blocks and steps: regional branch with the 2N x 2N group mask plus the
   whole-description base branch, blended with ``alpha``;
5. ``_denoise``: the scheduler shift ``mu`` comes from the canvas's real image sequence length;
6. ``_decode``: each region's latent is decoded on its own and the canvas is their vertical stack.

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

import dataclasses
import math
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import PIL.Image
import torch
from diffusers import FluxPipeline
from diffusers.pipelines.flux.pipeline_flux import calculate_shift, retrieve_timesteps
from diffusers.utils.torch_utils import randn_tensor
from einops import rearrange, reduce, repeat
from tqdm.auto import tqdm

from ..errors import CheckpointError, ConfigError, warn_caller
from ..hub import HUB_ERRORS, explain_hub_error, hub_kwargs, is_repo_id
from ..instrument.locate import locate
from ..pipeline_base import CooklabPipeline
from ..recipe import Recipe, as_recipe
from .chunked import DEFAULT_ANCHOR, AnchorPin, Chunk, Chunking, last_pinned_step, plan_chunks
from .cross_region_kv import canvas_references
from .cscc import RecipeSpans, cscc_fuse, step_token_spans, whole_description
from .flexible_rope import canvas_image_ids, text_ids
from .lora import ADAPTER_NAME, WEIGHT_NAME
from .regional import RegionalFluxAttnProcessor, RegionalState, RegionLayout, resolve_backend

MAX_STEPS = 12  # regions on one canvas by default (chunk_size=None); beyond this the joint sequence outgrows a single GPU's memory at 512^2
DEFAULT_REGION_SIZE = 512  # pixels per region side on real checkpoints (the paper's 512 x 512 steps)
FLUX_MAX_SEQUENCE_LENGTH = 512  # T5 tokens per prompt that Flux's text stream takes at most


def default_max_sequence_length(tokenizer) -> int:
    """The T5 length of a call that names none: the tokenizer's ``model_max_length``, capped at Flux's 512.

    FLUX.1's T5 tokenizer says 512, the tiny and the Toy Kitchen models' say 64 (their T5 was built
    for 64 tokens; 512 would run, with 8x the text to encode); a tokenizer that sets no length
    (transformers then reports a huge placeholder) gets 512.
    """
    return min(int(tokenizer.model_max_length), FLUX_MAX_SEQUENCE_LENGTH)


def pack_latents(latents: torch.Tensor) -> torch.Tensor:
    """[N, C, H, W] region latents -> [1, N P, C 4] canvas tokens, as ``FluxPipeline._pack_latents`` packs one image.

    Every 2 x 2 patch of latent pixels becomes one token of ``C 2 2`` channels (P = H/2 x W/2
    tokens per region, raster order); the regions follow one another (region-major).
    """
    return rearrange(latents, "n c (h ph) (w pw) -> 1 (n h w) (c ph pw)", ph=2, pw=2)


def unpack_latents(tokens: torch.Tensor, n_regions: int, rows: int) -> torch.Tensor:
    """[1, N P, C 4] canvas tokens -> [N, C, H, W] region latents: ``pack_latents`` undone (``rows`` = H / 2)."""
    return rearrange(tokens, "1 (n h w) (c ph pw) -> n c (h ph) (w pw)", n=n_regions, h=rows, ph=2, pw=2)


@dataclass
class CookAnythingOutput:
    images: list  # N images, one per step (PIL by default)
    canvas: object  # the whole canvas (regions stacked vertically; a chunked call: the N frames stacked)
    layout: RegionLayout  # of the N regions stacked (one canvas: the canvas that ran; chunked: each chunk's is in ``chunks``)
    spans: RecipeSpans | None  # CSCC token spans in the WHOLE recipe's encoding (None when cscc is off)
    recipe: Recipe
    settings: dict = field(default_factory=dict)
    chunks: list[Chunk] = field(default_factory=list)  # the canvases that ran, in order (one for a one-canvas call)


@dataclass
class CanvasText:
    """The text stream of one canvas as the transformer reads it (stage 1 of a call)."""

    embeds: torch.Tensor  # [1, L_b + N L, D] encoder_hidden_states: the base slot (regional only), then N step slots
    pooled: torch.Tensor  # [1, Dp] pooled_projections: CLIP of the whole description (regional) or the steps' mean
    step_len: int  # L: T5 tokens per step slot (max_sequence_length)
    spans: RecipeSpans | None  # CSCC token spans (None when cscc is off)
    cscc_delta: torch.Tensor | None  # [N, L, D] what Eq. 12 added to the step encodings (None when cscc is off)
    step_pooled: torch.Tensor | None = None  # [N, Dp] CLIP pooled of each step alone
    neg_embeds: torch.Tensor | None = None  # [1, L_b + N L, D] the negative prompt in every slot (true CFG only)
    neg_pooled: torch.Tensor | None = None  # [1, Dp]

    def select(self, steps: Sequence[int]) -> CanvasText:
        """The text stream of a canvas of ``steps`` only (a chunk), read from this, the whole recipe's.

        The base slot (the whole description) is kept as it is; the step slots are the rows of
        ``steps``, CSCC already fused from the whole recipe's encoding (``C_recipe[b_n : b_n + t_n]``
        with ``b_n`` the step's place in the whole recipe). Without a base slot the pooled
        embedding is the mean over the chunk's steps, as a canvas of those steps would have.
        """
        index = torch.as_tensor(list(steps), device=self.embeds.device)
        n, base = self.step_pooled.shape[0], self.embeds.shape[1] - self.step_pooled.shape[0] * self.step_len  # N, L_b

        def slots(embeds):  # [1, L_b + N L, D] -> [1, L_b + n L, D], the base slot and the chosen steps' slots
            chosen = rearrange(embeds[:, base:], "1 (n l) d -> n l d", n=n)[index]  # [n, L, D]
            return torch.cat([embeds[:, :base], rearrange(chosen, "n l d -> 1 (n l) d")], dim=1)

        pooled = self.pooled if base else reduce(self.step_pooled[index], "n dp -> 1 dp", "mean")
        return CanvasText(
            slots(self.embeds),
            pooled,
            self.step_len,
            self.spans,
            None if self.cscc_delta is None else self.cscc_delta[index],
            self.step_pooled[index],
            None if self.neg_embeds is None else slots(self.neg_embeds),
            self.neg_pooled,
        )


@dataclass
class Canvas:
    """One recipe's canvas as the transformer reads it, latents aside (``CookAnything.prepare_canvas``)."""

    recipe: Recipe
    texts: list[str]  # the N prompts encoded (step texts or the plan's enriched prompts)
    height: int  # of one region, pixels
    width: int
    layout: RegionLayout
    text: CanvasText
    img_ids: torch.Tensor  # [N P, 3] RoPE ids of the image tokens (Flexible RoPE: restarting in every region)
    txt_ids: torch.Tensor  # [L_b + N L, 3] zeros
    state: RegionalState  # where SRC runs, alpha, backend, cross-region references


class CookAnything(CooklabPipeline):
    """CookAnything on a diffusers ``FluxPipeline`` (FLUX.1-dev / schnell or the tiny offline one)."""

    pipeline_class = FluxPipeline
    denoiser_name = "transformer"
    loader = "load_flux"
    wrong_kind_hint = (
        "For Stable Diffusion use cooklab.RecipeDiffusion; load Flux with cooklab.models.load_flux(id_or_path)."
    )

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
        max_sequence_length: int | None = None,
        regional: bool = True,
        flexible_rope: bool = True,
        rope_step_axis: bool = False,
        cscc: bool = True,
        alpha: float = 0.1,
        lam: float = 0.2,
        image_attention: str = "region",
        cross_region_kv: bool = False,
        regional_blocks=("double", "single"),
        regional_every: int = 1,
        regional_steps=None,
        attention_backend: str = "auto",
        lora_scale: float | None = None,
        chunk_size: int | None = None,
        anchor: str = DEFAULT_ANCHOR,
        anchor_regions: int = 1,
        anchor_strength: float | None = None,
        output_type: str = "pil",
        progress: bool = True,
    ) -> CookAnythingOutput:
        """Generate every step of ``recipe`` in one denoising pass (height/width are those of ONE region).

        chunk_size, anchor, anchor_regions, anchor_strength: chunked generation for long recipes
        (``chunked.py``). A recipe of more than ``chunk_size`` steps (K; None: ``MAX_STEPS`` = 12,
        the regions one GPU holds at 512^2) is generated as several balanced canvases of at most K
        regions, one after another; each later canvas starts with ``anchor_regions`` anchor regions
        (A, 1 <= A < K), the last steps generated so far: ``anchor="fixed"`` (default) keeps them
        pinned to the previous chunk's final latents (an in-context region), ``"renoise"`` re-noises
        them to ``anchor_strength`` (default 0.5) and denoises them again (image-to-image),
        ``"none"`` uses no anchor. The whole-description prompt and CSCC come from the WHOLE
        recipe's encoding in every chunk; step n's noise is ``seed + n`` in any chunk. With K >= N
        the call is the one-canvas call, bit for bit. ``chunks`` and ``settings["chunks"]`` record
        the chunks (steps, anchors, regions, each canvas's shift ``mu``; ``settings["mu"]`` is the
        first's), and per frame its chunk (``frame_chunks``) and anchor steps (``frame_anchors``).
        A ``cooklab.trace`` records one canvas: tracing a call of several chunks is refused.

        plan: a ``cooklab.agent.RecipePlan`` from the Cooking Agent; with ``enriched_prompts``
        (default) its enriched, context-tagged prompts are encoded instead of the step texts.

        max_sequence_length: T5 tokens per prompt (1 to 512). None (default) takes the pipeline's
        own T5 tokenizer's ``model_max_length``, capped at 512 (``default_max_sequence_length``):
        512 for FLUX.1, 64 for the tiny and Toy Kitchen models. ``settings`` records the value used.

        cross_region_kv: Recipe Diffusion's K/V sharing on the canvas (``cross_region_kv.py``): in the
        regional branch, region n's image queries also see the image keys and values of its reference
        region (the plan's or recipe's ``reference_step``, else the previous step). Needs ``regional``
        and ``image_attention="region"``; off by default (not part of CookAnything).

        regional_blocks: layer patterns (``"double"``, ``"single"``, names; see ``cooklab.locate``)
        whose attention runs SRC; regional_every: keep every k-th of them; regional_steps: None
        (all), an int k (the first k steps) or an iterable of step indices.
        attention_backend: ``"auto"`` (flex on CUDA, batched/masked on CPU), ``"batched"``,
        ``"flex"`` or ``"masked"`` (see ``regional.py``).

        lora_scale: the scale of the loaded LoRA adapter(s) for this call only (``load_lora``; None:
        the scale they were loaded with; 0: exactly no adapter). ``settings["lora"]`` and the trace
        record which adapter ran at which scale.

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
        true_cfg_scale, negative_prompt = self._check_call(num_inference_steps, true_cfg_scale, negative_prompt)
        chunking = Chunking.resolve(chunk_size, anchor, anchor_regions, anchor_strength, MAX_STEPS)
        chunks = plan_chunks(len(recipe), chunking)
        if self._trace is not None and len(chunks) > 1:
            raise ConfigError(
                f"a cooklab.trace records one canvas, and this call runs {len(chunks)} (a recipe of {len(recipe)} "
                f"steps, chunk_size={chunking.size}): trace with chunk_size >= {len(recipe)}, or trace a part "
                "of the recipe."
            )
        with self._lora_for_call(lora_scale) as lora:
            return self._generate(
                recipe,
                plan,
                enriched_prompts,
                seed,
                num_inference_steps,
                height,
                width,
                guidance_scale,
                true_cfg_scale,
                negative_prompt,
                max_sequence_length,
                regional,
                flexible_rope,
                rope_step_axis,
                cscc,
                alpha,
                lam,
                image_attention,
                cross_region_kv,
                regional_blocks,
                regional_every,
                regional_steps,
                attention_backend,
                output_type,
                progress,
                lora,
                chunking,
                chunks,
            )

    def _generate(
        self,
        recipe,
        plan,
        enriched_prompts,
        seed,
        num_inference_steps,
        height,
        width,
        guidance_scale,
        true_cfg_scale,
        negative_prompt,
        max_sequence_length,
        regional,
        flexible_rope,
        rope_step_axis,
        cscc,
        alpha,
        lam,
        image_attention,
        cross_region_kv,
        regional_blocks,
        regional_every,
        regional_steps,
        attention_backend,
        output_type,
        progress,
        lora,
        chunking: Chunking,
        chunks: list[Chunk],
    ) -> CookAnythingOutput:
        """Stages 1-6 of ``__call__`` (arguments checked, the call's LoRA scale set), stages 2-5 once per chunk."""
        pipe = self.pipe

        # 1-3. text, layout, positions, regional state of the WHOLE recipe: the canvas as the transformer reads it
        # (shared with training); a chunk reads its steps' part of it (_chunk_canvas)
        c = self.prepare_canvas(
            recipe,
            plan=plan,
            enriched_prompts=enriched_prompts,
            height=height,
            width=width,
            max_sequence_length=max_sequence_length,
            regional=regional,
            flexible_rope=flexible_rope,
            rope_step_axis=rope_step_axis,
            cscc=cscc,
            alpha=alpha,
            lam=lam,
            image_attention=image_attention,
            cross_region_kv=cross_region_kv,
            regional_blocks=regional_blocks,
            regional_every=regional_every,
            regional_steps=regional_steps,
            attention_backend=attention_backend,
            negative_prompt=negative_prompt,
        )
        layout, text, state, spans = c.layout, c.text, c.state, c.text.spans
        final = [None] * layout.n_regions  # [1, P, C 4] per step: its final latents, from the chunk where it is new
        records = []
        for chunk in chunks:
            part = (
                c
                if len(chunk.regions) == layout.n_regions
                else self._chunk_canvas(c, chunk, flexible_rope, rope_step_axis)
            )
            # 2. noise: region i of the chunk is step regions[i], drawn from seed + regions[i] (the regions are consecutive)
            latents = self._noise(
                len(chunk.regions), c.height, c.width, seed + chunk.regions[0], text.embeds.dtype, self.device
            )  # [1, n P, C 4]
            anchor = (
                (torch.cat([final[j] for j in chunk.anchors], dim=1), chunking.strength) if chunk.anchors else None
            )

            # 4. processors for this canvas only; 5. the denoising loop
            with self._attention_processors(part.state, install=regional or self._trace is not None):
                if self._trace is not None:  # one chunk only (__call__): the whole recipe's canvas
                    counts = [
                        len(ids)
                        for ids in pipe.tokenizer_2(c.texts, truncation=True, max_length=text.step_len).input_ids
                    ]  # + EOS
                    self._trace.begin_canvas(
                        layout=layout,
                        texts=c.texts,
                        img_ids=c.img_ids,
                        txt_ids=c.txt_ids,
                        spans=spans,
                        cscc_delta=text.cscc_delta,
                        regional=regional,
                        alpha=alpha,
                        token_counts=counts,
                        lora=lora,
                    )
                latents, mu = self._denoise(
                    latents,
                    part.state,
                    part.text,
                    part.txt_ids,
                    part.img_ids,
                    num_inference_steps,
                    guidance_scale,
                    true_cfg_scale,
                    progress,
                    anchor,
                )
            for step, z in zip(chunk.regions, rearrange(latents, "1 (n p) c -> n 1 p c", n=len(chunk.regions))):
                if step in chunk.steps:
                    final[step] = z
            records.append(
                dict(
                    chunk=chunk.index + 1,
                    steps=[j + 1 for j in chunk.steps],
                    anchors=[j + 1 for j in chunk.anchors],
                    regions=len(chunk.regions),
                    mu=float(mu),
                    cross_region_kv=None
                    if part.state.references is None
                    else [chunk.regions[j] + 1 for j in part.state.references],
                )
            )

        # 6. one image per step, and the canvas (the chunks' new regions stacked in step order)
        images, canvas = self._decode(torch.cat(final, dim=1), layout, output_type)
        frame_chunks = {step: chunk for chunk in chunks for step in chunk.steps}
        settings = dict(
            seed=seed,
            num_inference_steps=num_inference_steps,
            height=c.height,
            width=c.width,
            guidance_scale=guidance_scale,
            true_cfg_scale=true_cfg_scale,
            negative_prompt=negative_prompt,
            max_sequence_length=text.step_len,
            regional=regional,
            flexible_rope=flexible_rope,
            rope_step_axis=rope_step_axis,
            cscc=cscc,
            alpha=alpha,
            lam=lam,
            image_attention=image_attention,
            cross_region_kv=None if state.references is None else [j + 1 for j in state.references],
            attention_backend=state.backend if regional else None,
            regional_layers=sorted(state.layers),
            regional_steps=None if state.steps is None else sorted(state.steps),
            mu=records[0]["mu"],
            model=pipe.name_or_path or type(pipe).__name__,
            lora=lora,
            truncated_steps=[] if spans is None else [i + 1 for i in spans.truncated_steps],
            cscc_unmatched_steps=[]
            if spans is None
            else [s.step + 1 for s in spans.spans if s.length and not s.matches],
            chunk_size=chunking.size,
            anchor=chunking.anchor,
            anchor_regions=chunking.anchors,
            anchor_strength=chunking.strength if chunking.anchor == "renoise" else None,
            chunks=records,
            frame_chunks=[frame_chunks[n].index + 1 for n in range(layout.n_regions)],
            frame_anchors=[[j + 1 for j in frame_chunks[n].anchors] for n in range(layout.n_regions)],
        )
        if self._trace is not None:
            self._trace.end_canvas(images, canvas)
        return CookAnythingOutput(
            images=images, canvas=canvas, layout=layout, spans=spans, recipe=recipe, settings=settings, chunks=chunks
        )

    # ---- LoRA adapters: the training-based mode (lora.py) --------------------------------------
    _lora_sources: dict | None = None  # adapter name -> where it was loaded from
    _lora_scales: dict | None = None  # adapter name -> its scale outside a call's lora_scale

    @property
    def lora(self) -> dict:
        """``{adapter name: {"source": ..., "scale": ...}}`` of the adapters on the transformer ({} without one)."""
        names = list(getattr(self.pipe.transformer, "peft_config", {}) or {})
        sources, scales = self._lora_sources or {}, self._lora_scales or {}
        return {
            name: {"source": sources.get(name, "added in memory"), "scale": scales.get(name, 1.0)} for name in names
        }

    def load_lora(
        self,
        path_or_repo_id,
        scale: float = 1.0,
        adapter_name: str = ADAPTER_NAME,
        weight_name: str | None = None,
        **kwargs,
    ) -> CookAnything:
        """Load a Flux LoRA (a folder, a ``.safetensors`` file's folder or a hub repo id) with diffusers' own loader.

        Anything ``FluxPipeline.load_lora_weights`` reads is accepted: adapters trained by
        ``cooklab train-lora`` and published ones. ``scale`` is kept for later calls (``lora_scale=``
        overrides it per call); ``unload_lora()`` removes it.
        """
        if adapter_name in self.lora:
            raise ConfigError(
                f"an adapter named {adapter_name!r} is already loaded: unload_lora() first, or give another adapter_name."
            )
        source = str(path_or_repo_id)
        local = Path(source)
        if local.exists() or not is_repo_id(source):
            if not local.exists():
                raise CheckpointError(
                    f"no LoRA at {source}: give the folder that holds {WEIGHT_NAME} (cooklab train-lora "
                    "writes it to OUT/adapter), a .safetensors file, or a hub repo id."
                )
            if local.is_file():
                local, weight_name = local.parent, local.name
            elif weight_name is None and not (local / WEIGHT_NAME).is_file():
                found = sorted(p.name for p in local.glob("*.safetensors"))
                if len(found) != 1:
                    raise CheckpointError(
                        f"{source} holds {len(found)} .safetensors files ({found}) and no {WEIGHT_NAME}: "
                        "name the adapter's file with weight_name=."
                    )
                weight_name = found[0]
            path_or_repo_id, weight_name = local, weight_name or WEIGHT_NAME
        from diffusers.utils import logging as diffusers_logging

        verbosity = diffusers_logging.get_verbosity()
        diffusers_logging.set_verbosity_error()  # not "no LoRA keys for CLIPTextModel" on every transformer-only adapter
        try:
            self.pipe.load_lora_weights(
                path_or_repo_id, adapter_name=adapter_name, weight_name=weight_name, **hub_kwargs(kwargs)
            )
        except HUB_ERRORS as error:
            if Path(source).exists() or not is_repo_id(source):
                raise CheckpointError(
                    f"could not read a Flux LoRA from {source}: {error}. Give the folder that holds "
                    f"{WEIGHT_NAME} (cooklab train-lora writes it to OUT/adapter)."
                ) from error
            raise explain_hub_error(source, error) from error
        except (KeyError, ValueError, RuntimeError) as error:
            if adapter_name in (getattr(self.pipe.transformer, "peft_config", None) or {}):
                self.pipe.delete_adapters(adapter_name)  # nothing half-loaded stays on the transformer
            first = str(error).splitlines()[-1].strip()
            raise CheckpointError(
                f"{source} is not a LoRA for this Flux transformer ({first}): was it trained for another "
                "model (SD, another Flux size)?"
            ) from error
        finally:
            diffusers_logging.set_verbosity(verbosity)
        self._lora_sources = {**(self._lora_sources or {}), adapter_name: source}
        self._lora_scales = {**(self._lora_scales or {}), adapter_name: float(scale)}
        self.pipe.set_adapters(list(self._lora_scales), list(self._lora_scales.values()))
        return self

    def unload_lora(self) -> CookAnything:
        """Remove every LoRA adapter: the transformer is the base model again."""
        if self.lora:
            self.pipe.unload_lora_weights()
        self._lora_sources, self._lora_scales = None, None
        return self

    @contextmanager
    def _lora_for_call(self, lora_scale):
        """Set the adapters' scale for one call and put the kept scales back after it; yields what the call ran with."""
        adapters = self.lora
        if lora_scale is None:
            yield {name: a["scale"] for name, a in adapters.items()} or None
            return
        if not adapters:
            raise ConfigError(f"lora_scale={lora_scale} but no LoRA is loaded: call load_lora(path_or_repo_id) first.")
        names = list(adapters)
        self.pipe.set_adapters(names, [float(lora_scale)] * len(names))
        try:
            yield dict.fromkeys(names, float(lora_scale))
        finally:
            self.pipe.set_adapters(names, [adapters[n]["scale"] for n in names])

    @torch.no_grad()
    def prepare_canvas(
        self,
        recipe,
        *,
        plan=None,
        enriched_prompts: bool = True,
        height: int | None = None,
        width: int | None = None,
        max_sequence_length: int | None = None,
        regional: bool = True,
        flexible_rope: bool = True,
        rope_step_axis: bool = False,
        cscc: bool = True,
        alpha: float = 0.1,
        lam: float = 0.2,
        image_attention: str = "region",
        cross_region_kv: bool = False,
        regional_blocks=("double", "single"),
        regional_every: int = 1,
        regional_steps=None,
        attention_backend: str = "auto",
        negative_prompt: str | None = None,
    ) -> Canvas:
        """Everything the transformer reads for ``recipe`` except the latents: text stream, layout, RoPE ids, SRC state.

        The one code path of a canvas: ``__call__`` denoises it, ``cooklab.training`` trains a LoRA
        on it, so both build the same layout, position ids and attention masks for the same recipe.
        Arguments as ``__call__`` (``negative_prompt``: the true-CFG branch's, None when it is off).
        """
        recipe = as_recipe(recipe)
        n = len(recipe)
        max_sequence_length = self._check_canvas(alpha, lam, flexible_rope, rope_step_axis, max_sequence_length)
        height, width, rows, cols = self._region_size(height, width)
        backend = resolve_backend(attention_backend, image_attention, self.device, shared=cross_region_kv)
        texts = self._step_prompts(recipe, plan, enriched_prompts)
        references = self._references(recipe, plan, regional, image_attention) if cross_region_kv else None

        # 1. text: each step alone, the whole description once, CSCC, the slots end to end
        text = self._encode_text(texts, recipe.title, regional, cscc, lam, max_sequence_length, negative_prompt)
        L = text.step_len
        layout = RegionLayout(n, rows, cols, L, L if regional else 0)
        # 3. positions (2., the noise, is drawn by the caller)
        img_ids, txt_ids = self._position_ids(
            layout, text.embeds.shape[1], flexible_rope, rope_step_axis
        )  # [N P, 3], [L_b + N L, 3]
        state = self._regional_state(
            layout,
            alpha,
            image_attention,
            backend,
            regional,
            regional_blocks,
            regional_every,
            regional_steps,
            references,
        )
        return Canvas(recipe, texts, height, width, layout, text, img_ids, txt_ids, state)

    def _chunk_canvas(self, c: Canvas, chunk: Chunk, flexible_rope: bool, rope_step_axis: bool) -> Canvas:
        """The canvas of one chunk, cut from the whole recipe's ``c``: its steps' text slots, its own layout, ids and state.

        The text keeps the whole recipe's base slot and CSCC (``CanvasText.select``); RoPE ids and the
        regional layout are those of a canvas of ``len(chunk.regions)`` regions. Cross-region K/V
        references become the chunk's own regions; one that lies before the chunk (an earlier step not
        on this canvas) is dropped: that region keeps its own keys.
        """
        steps = chunk.regions
        first = steps[0]
        text = c.text.select(steps)
        layout = dataclasses.replace(c.layout, n_regions=len(steps))
        img_ids, txt_ids = self._position_ids(
            layout, text.embeds.shape[1], flexible_rope, rope_step_axis
        )  # [n P, 3], [L_b + n L, 3]
        references = None
        if c.state.references is not None:
            references = tuple(
                c.state.references[j] - first if c.state.references[j] >= first else i for i, j in enumerate(steps)
            )
        state = dataclasses.replace(c.state, layout=layout, references=references, step=0)
        return Canvas(c.recipe, [c.texts[j] for j in steps], c.height, c.width, layout, text, img_ids, txt_ids, state)

    # ---- 0. arguments ----------------------------------------------------------------------
    def _check_canvas(self, alpha, lam, flexible_rope, rope_step_axis, max_sequence_length) -> int:
        """Refuse impossible canvas arguments before any model runs; returns the T5 length (None: the tokenizer's, capped at 512).

        The number of steps is not limited here: ``__call__`` cuts a long recipe into chunks (``chunked.py``).
        """
        if not 0.0 <= alpha <= 1.0:
            raise ConfigError(f"alpha={alpha}: the base-branch weight must be between 0 and 1 (paper: 0.1).")
        if lam < 0:
            raise ConfigError(f"lam={lam}: the CSCC weight must be >= 0 (paper: 0.2; studied from 0 to 1).")
        if rope_step_axis and not flexible_rope:
            raise ConfigError("rope_step_axis=True needs flexible_rope=True (global ids leave axis 0 unused).")
        if max_sequence_length is None:
            max_sequence_length = default_max_sequence_length(self.pipe.tokenizer_2)
        if not 1 <= int(max_sequence_length) <= FLUX_MAX_SEQUENCE_LENGTH:
            raise ConfigError(
                f"max_sequence_length={max_sequence_length}: T5 in Flux takes 1 to {FLUX_MAX_SEQUENCE_LENGTH} "
                "tokens per prompt."
            )
        return int(max_sequence_length)

    def _check_call(self, num_inference_steps, true_cfg_scale, negative_prompt):
        """Refuse impossible sampling arguments; returns ``(true_cfg_scale, negative_prompt)``.

        The negative prompt of the true-CFG branch is ``""`` when true CFG is on without one, None
        when true CFG is off (a given one is then ignored, with a warning).
        """
        if int(num_inference_steps) < 1:
            raise ConfigError(f"num_inference_steps={num_inference_steps}: use at least 1.")
        try:
            true_cfg_scale = float(true_cfg_scale)
        except (TypeError, ValueError):
            raise ConfigError(
                f"true_cfg_scale={true_cfg_scale!r}: give a number (1.0 = off, > 1 = true classifier-free guidance)."
            ) from None
        if not (math.isfinite(true_cfg_scale) and true_cfg_scale >= 0):
            raise ConfigError(
                f"true_cfg_scale={true_cfg_scale}: use a finite number >= 0; values <= 1 (default 1.0) switch true "
                "classifier-free guidance off, values > 1 switch it on."
            )
        if negative_prompt is not None and not isinstance(negative_prompt, str):
            raise ConfigError(
                f"negative_prompt={negative_prompt!r}: give one string (it fills the base prompt and every step's "
                "prompt of the negative branch) or None (the empty prompt)."
            )
        if true_cfg_scale > 1:  # as diffusers: <= 1 is off
            return true_cfg_scale, "" if negative_prompt is None else negative_prompt  # "": unconditional
        if negative_prompt is not None:
            warn_caller(
                f"negative_prompt={negative_prompt!r} is ignored with true_cfg_scale={true_cfg_scale:g}: "
                "set true_cfg_scale > 1 to use it."
            )
        return true_cfg_scale, None

    def _region_size(self, height: int | None, width: int | None) -> tuple[int, int, int, int]:
        """One region's size in pixels and its packed token grid: ``(height, width, rows, cols)``.

        None takes the default side, 512 on real models (the model's own, smaller, size on the
        tiny ones). The VAE divides each side by ``vae_scale_factor`` (8) and Flux packs 2 x 2
        latent pixels into one token, so a region is ``rows x cols = height / 16 x width / 16``
        tokens, and both sides must be multiples of 16.
        """
        pipe = self.pipe
        default = min(DEFAULT_REGION_SIZE, pipe.default_sample_size * pipe.vae_scale_factor)  # 512 on real models
        height, width = height or default, width or default
        f = pipe.vae_scale_factor * 2
        if height <= 0 or width <= 0 or height % f or width % f:
            raise ConfigError(
                f"height={height}, width={width} (of one region): both must be positive multiples of {f} for this Flux model."
            )
        return height, width, height // f, width // f

    def _step_prompts(self, recipe: Recipe, plan, enriched_prompts: bool) -> list[str]:
        """The N prompts to encode: the plan's enriched prompts (``enriched_prompts``) or the recipe's step texts."""
        texts = plan.prompts() if plan is not None and enriched_prompts else recipe.texts
        if len(texts) != len(recipe):
            raise ConfigError(
                f"the plan has {len(texts)} prompts for a recipe of {len(recipe)} steps: plan this recipe again."
            )
        return texts

    @staticmethod
    def _references(recipe: Recipe, plan, regional: bool, image_attention: str) -> tuple[int, ...]:
        """ref(n) of every region for cross-region K/V sharing: the plan's or recipe's reference step, else n - 1."""
        if not regional:
            raise ConfigError("cross_region_kv=True shares keys inside SRC's regional branch: it needs regional=True.")
        if image_attention != "region":
            raise ConfigError(
                f"cross_region_kv=True with image_attention={image_attention!r}: every region already sees "
                "every other; use image_attention='region'."
            )
        if plan is not None:
            recipe = recipe.with_plans(plan.step_plans())
        return canvas_references(recipe.reference_frames())

    # ---- 1. text ---------------------------------------------------------------------------
    def _encode_text(self, texts, title, regional, cscc, lam, max_sequence_length, negative_prompt) -> CanvasText:
        """The canvas's text stream: the steps, the whole description, CSCC (Eq. 12) and the slots.

        Each step is encoded on its own (T5 ``C_n`` [L, D], CLIP pooled [Dp]); the whole
        description (title and all steps) once, when the base branch or CSCC needs it. CSCC adds
        each step's contextual tokens to its encoding, ``C_n[0:t_n] += lam * C_recipe[b_n : b_n + t_n]``.
        The slots are laid end to end as the transformer reads them:

            regional:   [C_base | C_1 | ... | C_N]    pooled = CLIP(whole description)
            otherwise:  [C_1 | ... | C_N]             pooled = mean over n of CLIP(step n)

        With true CFG (``negative_prompt`` not None) the negative prompt is encoded once and fills
        every slot, without CSCC.
        """
        pipe, device = self.pipe, self.device
        step_embeds, step_pooled, _ = pipe.encode_prompt(
            prompt=texts, prompt_2=texts, device=device, max_sequence_length=max_sequence_length
        )  # [N, L, D], [N, Dp]
        base_embeds = base_pooled = spans = cscc_delta = None
        if regional or cscc:
            whole, _ = whole_description(texts, title)
            base_embeds, base_pooled, _ = pipe.encode_prompt(
                prompt=whole, prompt_2=whole, device=device, max_sequence_length=max_sequence_length
            )  # [1, L, D], [1, Dp]
            spans = self._token_spans(
                texts, title, max_sequence_length
            )  # also with cscc off: the base prompt may be cut
        if cscc:
            step_embeds, cscc_delta = self._fuse_cscc(step_embeds, base_embeds, spans, lam)
        else:
            spans = None
        step_slots = rearrange(step_embeds, "n l d -> 1 (n l) d")  # the N step slots end to end
        if regional:
            embeds, pooled = torch.cat([base_embeds, step_slots], dim=1), base_pooled  # [1, L_b + N L, D], [1, Dp]
        else:
            embeds, pooled = step_slots, reduce(step_pooled, "n dp -> 1 dp", "mean")  # [1, N L, D], [1, Dp]
        text = CanvasText(embeds, pooled, step_embeds.shape[1], spans, cscc_delta, step_pooled)
        if (
            negative_prompt is not None
        ):  # the negative branch: the same layout, every text slot holds the negative prompt
            neg, text.neg_pooled, _ = pipe.encode_prompt(
                prompt=negative_prompt,
                prompt_2=negative_prompt,
                device=device,
                max_sequence_length=max_sequence_length,
            )  # [1, L, D], [1, Dp]
            slots = (1 if regional else 0) + len(texts)  # the base slot and N step slots
            text.neg_embeds = repeat(neg, "1 l d -> 1 (slot l) d", slot=slots)  # [1, L_b + N L, D]
        return text

    def _token_spans(self, texts, title, max_sequence_length) -> RecipeSpans:
        """Where each step's tokens sit in the whole description (``b_n``, ``t_n`` of Eq. 12); warns when it is cut."""
        spans = step_token_spans(self.pipe.tokenizer_2, texts, title, max_sequence_length)
        if spans.truncated_steps:
            warn_caller(
                f"the whole description is cut at max_sequence_length={max_sequence_length} T5 tokens: steps "
                f"{[i + 1 for i in spans.truncated_steps]} are partly or wholly missing from the base prompt and from CSCC; "
                "raise max_sequence_length (Flux: up to 512) or shorten the recipe."
            )
        return spans

    def _fuse_cscc(self, step_embeds, recipe_embeds, spans, lam):
        """Eq. 12 on every step (``cscc_fuse``): returns (fused [N, L, D], delta [N, L, D]); warns about unfused steps."""
        unmatched = [span.step + 1 for span in spans.spans if span.length and not span.matches]
        if unmatched and lam != 0:
            warn_caller(
                f"CSCC leaves steps {unmatched} unfused: their tokens inside the whole description differ from the step "
                "tokenized alone, so Eq. 12's position-by-position sum would add different tokens. Rephrase the step's "
                "first or last word, or accept these steps without cross-step context."
            )
        return cscc_fuse(step_embeds, recipe_embeds, spans, lam)

    # ---- 2-3. noise and positions ----------------------------------------------------------
    def _noise(self, n_regions, height, width, seed, dtype, device) -> torch.Tensor:
        """[1, N P, C 4] packed canvas latents; region n drawn from Generator(device).manual_seed(seed + n).

        Each region's latent [1, C, H/8, W/8] is drawn exactly as ``FluxPipeline.prepare_latents``
        draws one image's; Flux then packs every 2 x 2 patch of latent pixels into one token of
        ``C 2 2`` channels. Regions follow each other (region-major), which is the raster order of
        the tall canvas.
        """
        channels = self.pipe.transformer.config.in_channels // 4
        latent_h, latent_w = (
            2 * (height // (self.pipe.vae_scale_factor * 2)),
            2 * (width // (self.pipe.vae_scale_factor * 2)),
        )
        regions = torch.cat(
            [
                randn_tensor(
                    (1, channels, latent_h, latent_w),
                    generator=torch.Generator(device).manual_seed(seed + n),
                    device=device,
                    dtype=dtype,
                )
                for n in range(n_regions)
            ]
        )  # [N, C, H/8, W/8]
        return pack_latents(regions)  # [1, N P, C 4]

    def _position_ids(self, layout: RegionLayout, n_text_tokens: int, flexible_rope: bool, rope_step_axis: bool):
        """RoPE position ids: image ids [N P, 3] (Flexible RoPE restarts them in every region), text ids [T, 3] zeros.

        Built in float32 whatever the model's dtype: bf16 holds integers exactly only up to 256, and
        global canvas rows reach N * rows - 1 (N = 12 at 512^2: 383). FluxPosEmbed computes in float32/64 anyway.
        """
        img_ids = canvas_image_ids(
            layout.n_regions,
            layout.rows,
            layout.cols,
            flexible=flexible_rope,
            step_axis=rope_step_axis,
            device=self.device,
            dtype=torch.float32,
        )  # [N P, 3]
        return img_ids, text_ids(n_text_tokens, device=self.device, dtype=torch.float32)  # [N P, 3], [T, 3]

    # ---- 4. attention processors -------------------------------------------------------------
    def _regional_state(
        self,
        layout,
        alpha,
        image_attention,
        backend,
        regional,
        regional_blocks,
        regional_every,
        regional_steps,
        references=None,
    ) -> RegionalState:
        """What every regional processor of this call reads: layout, alpha, and the layers and steps where SRC runs."""
        pipe = self.pipe
        names = locate(
            pipe.transformer, *((regional_blocks,) if isinstance(regional_blocks, str) else regional_blocks)
        )
        names = names[:: max(1, int(regional_every))]
        if isinstance(regional_steps, int):
            steps = frozenset(range(regional_steps))
        else:
            steps = None if regional_steps is None else frozenset(int(s) for s in regional_steps)
        state = RegionalState(
            layout,
            float(alpha),
            image_attention,
            backend,
            frozenset(names) if regional else frozenset(),
            steps,
            observer=self._trace,
            references=references,
        )
        return state

    @contextmanager
    def _attention_processors(self, state: RegionalState, install: bool):
        """Regional processors on every attention layer for the ``with`` block; the stock ones are back on every way out.

        ``install=False`` (SRC off and no trace) leaves the stock processors untouched.
        """
        pipe = self.pipe
        originals = dict(pipe.transformer.attn_processors)
        try:  # from the moment processors are installed, every path out restores the stock ones
            if install:
                pipe.transformer.set_attn_processor(
                    {name: RegionalFluxAttnProcessor(name, state) for name in originals}
                )
            yield
        finally:
            if install:
                pipe.transformer.set_attn_processor(dict(originals))
            pipe.maybe_free_model_hooks()

    # ---- 5. denoising ------------------------------------------------------------------------
    def _timesteps(self, image_seq_len: int, num_inference_steps: int):
        """The flow-matching schedule, shifted by ``mu`` from the canvas's real image sequence length N P."""
        pipe = self.pipe
        sigmas = np.linspace(1.0, 1 / num_inference_steps, num_inference_steps)
        if getattr(pipe.scheduler.config, "use_flow_sigmas", False):
            sigmas = None
        mu = calculate_shift(
            image_seq_len,
            pipe.scheduler.config.get("base_image_seq_len", 256),
            pipe.scheduler.config.get("max_image_seq_len", 4096),
            pipe.scheduler.config.get("base_shift", 0.5),
            pipe.scheduler.config.get("max_shift", 1.15),
        )
        timesteps, _ = retrieve_timesteps(pipe.scheduler, num_inference_steps, self.device, sigmas=sigmas, mu=mu)
        return timesteps, mu

    def _predict(self, latents, t, guidance, embeds, pooled, txt_ids, img_ids, model=None) -> torch.Tensor:
        """One transformer call on the whole canvas: the flow prediction [1, N P, C 4].

        model: the transformer to call (default the pipeline's; LoRA training passes the one accelerate prepared).
        """
        model = self.pipe.transformer if model is None else model
        return model(
            hidden_states=latents,
            timestep=t.expand(1).to(latents.dtype) / 1000,
            guidance=guidance,
            pooled_projections=pooled,
            encoder_hidden_states=embeds,
            txt_ids=txt_ids,
            img_ids=img_ids,
            return_dict=False,
        )[0]  # [1, N P, C 4]

    def _denoise(
        self,
        latents,
        state,
        text: CanvasText,
        txt_ids,
        img_ids,
        num_inference_steps,
        guidance_scale,
        true_cfg_scale,
        progress,
        anchor=None,
    ):
        """The flow-matching loop over the canvas; returns (final latents [1, N P, C 4], mu).

        With true CFG (``text.neg_embeds``) each step also predicts with the negative prompt and
        uses ``neg + true_cfg_scale * (pos - neg)``; the trace sees the conditional pass only.
        anchor: ``(z0 [1, A P, C 4], strength)`` of a chunk's anchor regions (the canvas's first A
        regions, ``chunked.AnchorPin``): their tokens are set to ``(1 - sigma_i) z0 + sigma_i eps``,
        eps their starting noise, before every pinned step i (and after the last, for strength 0).
        """
        pipe, device = self.pipe, self.device
        timesteps, mu = self._timesteps(latents.shape[1], num_inference_steps)
        guidance = (
            torch.full([1], guidance_scale, device=device, dtype=torch.float32)
            if pipe.transformer.config.guidance_embeds
            else None
        )
        pipe.scheduler.set_begin_index(0)
        pin = None
        if anchor is not None:
            z0, strength = anchor
            sigmas = pipe.scheduler.sigmas  # [S + 1], ending in 0
            pin = AnchorPin(z0, latents[:, : z0.shape[1]].clone(), sigmas, last_pinned_step(sigmas, strength))
        for i, t in enumerate(tqdm(timesteps, desc="denoising", disable=not progress)):
            if pin is not None:
                latents = pin.apply(latents, i)
            state.step = i
            if self._trace is not None:
                self._trace.set_step(i, float(t))
            noise_pred = self._predict(
                latents, t, guidance, text.embeds, text.pooled, txt_ids, img_ids
            )  # [1, N P, C 4]
            if text.neg_embeds is not None:  # true CFG
                state.observer = None  # the trace records the conditional branch only
                neg_noise_pred = self._predict(
                    latents, t, guidance, text.neg_embeds, text.neg_pooled, txt_ids, img_ids
                )
                state.observer = self._trace
                noise_pred = neg_noise_pred + true_cfg_scale * (noise_pred - neg_noise_pred)
            latents = pipe.scheduler.step(noise_pred, t, latents, return_dict=False)[0]
        if pin is not None:
            latents = pin.apply(latents, len(timesteps))
        return latents, mu

    # ---- 6. outputs ----------------------------------------------------------------------------
    def _decode(self, latents, layout: RegionLayout, output_type):
        """Each region's latent decoded on its own; returns (images, canvas), the canvas the regions stacked top to bottom.

        ``output_type="latent"`` returns the packed latents instead: each region's [1, P, C 4] and the canvas's.
        """
        pipe, n = self.pipe, layout.n_regions
        if output_type == "latent":
            return list(rearrange(latents, "1 (n p) c -> n 1 p c", n=n)), latents
        images = []
        for z in unpack_latents(latents, n, layout.rows).split(1):  # [1, C, H/8, W/8]
            z = (z / pipe.vae.config.scaling_factor) + pipe.vae.config.shift_factor
            image = pipe.vae.decode(z, return_dict=False)[0]
            images.append(pipe.image_processor.postprocess(image, output_type=output_type)[0])
        if output_type == "pil":
            canvas = PIL.Image.fromarray(rearrange([np.asarray(im) for im in images], "n h w rgb -> (n h) w rgb"))
        elif output_type == "np":
            canvas = rearrange(images, "n h w rgb -> (n h) w rgb")
        else:  # "pt": [3, H, W] tensors
            canvas = rearrange(images, "n rgb h w -> rgb (n h) w")
        return images, canvas
