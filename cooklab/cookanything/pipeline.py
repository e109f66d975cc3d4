"""The CookAnything pipeline: all N recipe steps in ONE Flux denoising pass on one canvas.

For a recipe of N steps (up to ``chunk_size``, by default ``MAX_CANVAS_REGIONS`` = 12) the canvas
holds N regions of ``height x width`` pixels stacked vertically, so region n's packed latent tokens
are contiguous (region-major). A longer recipe is cut into chunks, canvases of at most ``chunk_size``
regions generated one after another and joined by anchor regions (``chunked.py``): stage 1 runs
once for the whole recipe, stages 2-5 once per chunk on its part of it (``_chunk_canvas``; with
``chunk_text="window"``, the default, a chunk encodes its own base prompt and CSCC window).
``CookAnything.__call__`` runs these stages:

* stage 0, ``CookAnythingSettings.build`` (``settings.py``): every argument checked once, before
  any model runs; the stages read this one object;
* stages 1, 3 and 4's state, ``prepare_canvas`` (``canvas.py``): the text stream (each step, the
  whole description, CSCC), the layout, Flexible RoPE ids and the SRC state, the one code path
  that LoRA training (``cooklab.training``) shares, so training and inference read the same canvas;
* stages 2, 4-6 (``denoising.py``): the noise, the regional attention processors, the
  flow-matching loop (``predict``: the transformer on the whole canvas) and each region decoded.

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

from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from diffusers import FluxPipeline
from einops import rearrange

from ..errors import CheckpointError, ConfigError
from ..hub import HUB_ERRORS, explain_hub_error, hub_kwargs, is_repo_id
from ..pipeline_base import CooklabPipeline
from ..recipe import Recipe, as_recipe
from ..size_guard import flux_estimate, guard_size
from .canvas import Canvas, CanvasPreparation
from .chunked import DEFAULT_ANCHOR, DEFAULT_CHUNK_TEXT, Chunk, plan_chunks
from .cscc import RecipeSpans, whole_description
from .denoising import CanvasDenoising
from .lora import ADAPTER_NAME, WEIGHT_NAME
from .regional import RegionLayout
from .settings import MAX_CANVAS_REGIONS, CookAnythingSettings, default_max_sequence_length

__all__ = ["MAX_CANVAS_REGIONS", "CookAnything", "CookAnythingOutput"]


@dataclass
class CookAnythingOutput:
    images: list  # N images, one per step (PIL by default)
    canvas: object  # the whole canvas (regions stacked vertically; a chunked call: the N frames stacked)
    # of the N regions stacked (one canvas: the canvas that ran; chunked: each chunk's is in ``chunks``)
    layout: RegionLayout
    # CSCC token spans in the WHOLE recipe's encoding (None when cscc is off); with chunk_text="window" and
    # several chunks each chunk read its own window's (settings["chunks"][k]["cscc_window"])
    spans: RecipeSpans | None
    recipe: Recipe
    settings: dict = field(default_factory=dict)
    chunks: list[Chunk] = field(default_factory=list)  # the canvases that ran, in order (one for a one-canvas call)


class CookAnything(CanvasPreparation, CanvasDenoising, CooklabPipeline):
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
        chunk_text: str = DEFAULT_CHUNK_TEXT,
        output_type: str = "pil",
        progress: bool = True,
        allow_large: bool = False,
    ) -> CookAnythingOutput:
        """Generate every step of ``recipe`` in one denoising pass.

        Args:
            recipe: a ``Recipe``, a list of step strings or a recipe file path.
            plan: a ``cooklab.agent.RecipePlan`` from the Cooking Agent; with ``enriched_prompts``
                (default) its enriched, context-tagged prompts are encoded instead of the step texts.
            seed: region n's noise is ``Generator(device).manual_seed(seed + n)``, in any chunk.
            num_inference_steps: denoising steps (at least 1).
            height, width: of ONE region, in pixels (None: 512 on real models, the model's own size on
                the tiny ones); multiples of the VAE's factor times 2 (16 for FLUX.1).
            guidance_scale: Flux's *embedded* guidance (the guidance-distilled FLUX.1 models; ignored
                by a transformer with ``guidance_embeds=False``).
            true_cfg_scale, negative_prompt: *true* classifier-free guidance, as ``FluxPipeline``'s
                arguments of the same names (see below). ``true_cfg_scale <= 1`` (default 1.0) is off.
            max_sequence_length: T5 tokens per prompt (1 to 512). None (default) takes the pipeline's
                own T5 tokenizer's ``model_max_length``, capped at 512 (``default_max_sequence_length``):
                512 for FLUX.1, 64 for the tiny and Toy Kitchen models. ``settings`` records the value used.
            regional: Step-wise Regional Control (SRC, ``regional.py``); False: plain Flux on the canvas.
            flexible_rope, rope_step_axis: RoPE ids that restart in every region (``flexible_rope.py``),
                with the step index on axis 0 (``rope_step_axis``, needs ``flexible_rope``).
            cscc, lam: Cross-Step Consistency Control (``cscc.py``) and its weight (paper: 0.2).
            alpha: the whole-description base branch's weight in SRC (0 to 1; paper: 0.1).
            image_attention: ``"region"`` (the paper: a region's image tokens see their own region)
                or ``"global"``.
            cross_region_kv: Recipe Diffusion's K/V sharing on the canvas (``cross_region_kv.py``): in
                the regional branch, region n's image queries also see the image keys and values of its
                reference region (the plan's or recipe's ``reference_step``, else the previous step).
                Needs ``regional`` and ``image_attention="region"``; off by default (not part of CookAnything).
            regional_blocks: layer patterns (``"double"``, ``"single"``, names; see ``cooklab.locate``)
                whose attention runs SRC; regional_every: keep every k-th of them; regional_steps: None
                (all), an int k (the first k steps) or an iterable of step indices.
            attention_backend: ``"auto"`` (flex on CUDA, batched/masked on CPU), ``"batched"``,
                ``"flex"`` or ``"masked"`` (see ``regional.py``).
            lora_scale: the scale of the loaded LoRA adapter(s) for this call only (``load_lora``;
                None: the scale they were loaded with; 0: exactly no adapter). ``settings["lora"]`` and
                the trace record which adapter ran at which scale.
            chunk_size, anchor, anchor_regions, anchor_strength, chunk_text: chunked generation for long
                recipes (``chunked.py``, see below).
            output_type: ``"pil"``, ``"np"``, ``"pt"`` or ``"latent"`` (each region's packed latents).
            progress: show the denoising progress bar.
            allow_large: run a canvas whose estimated memory exceeds what the device has free
                (``cooklab.size_guard``: otherwise such a call is refused before it starts).

        Chunks: a recipe of more than ``chunk_size`` steps (K; None: ``MAX_CANVAS_REGIONS`` = 12,
        the regions one GPU holds at 512^2) is generated as several balanced canvases of at most K
        regions, one after another; each later canvas starts with ``anchor_regions`` anchor regions
        (A, 1 <= A < K), the last steps generated so far: ``anchor="fixed"`` (default) keeps them
        pinned to the previous chunk's final latents (an in-context region), ``"renoise"`` re-noises
        them to ``anchor_strength`` (default 0.5) and denoises them again (image-to-image),
        ``"none"`` uses no anchor. ``chunk_text="window"`` (default) gives each chunk its own base prompt
        (the description of its regions) and CSCC from a window of the recipe that ends with the chunk
        and fits ``max_sequence_length`` (the steps before it that fit), so no step of a chunk is cut;
        ``"whole"`` reads the base prompt and CSCC from the WHOLE recipe's encoding in every chunk (cut
        at ``max_sequence_length``). With K >= N the call is the one-canvas call, bit for bit.
        ``chunks`` and ``settings["chunks"]`` record the chunks (steps, anchors, regions, each
        canvas's shift ``mu``, the steps of its CSCC window ``cscc_window``, the steps it cut,
        ``truncated_steps``, and those CSCC left unfused, ``cscc_unmatched_steps``; the top-level lists
        are their unions; ``settings["mu"]`` is the first's), and per frame its chunk
        (``frame_chunks``) and anchor steps (``frame_anchors``). A ``cooklab.trace`` records one
        canvas: tracing a call of several chunks is refused.

        True CFG: with ``true_cfg_scale > 1`` every denoising step runs the transformer twice and combines

            noise_pred = neg_noise_pred + true_cfg_scale * (noise_pred - neg_noise_pred)

        where ``noise_pred`` is the usual (conditional) prediction and ``neg_noise_pred`` the
        prediction with the negative prompt. Unlike ``FluxPipeline``, which does true CFG only when
        a negative prompt is given, ``negative_prompt=None`` here means the empty prompt ``""``
        (the unconditional branch). The negative branch sees the same canvas, region layout,
        RoPE ids and regional attention (same layers, steps, alpha) as the conditional one; the
        negative prompt is encoded once (CLIP pooled + T5 padded to ``max_sequence_length``) and
        fills every text slot, the whole-description (base) slot and each step's slot, and CSCC is
        not applied to it. An attached ``cooklab.trace`` records the conditional branch only.
        With true CFG off a ``negative_prompt`` is ignored, with a warning. Negative or NaN scales
        raise ``ConfigError``. It doubles the transformer's time per step. ``settings`` records
        ``true_cfg_scale`` and the negative prompt used (``None`` when true CFG is off).
        """
        settings = CookAnythingSettings.build(
            enriched_prompts=enriched_prompts,
            seed=seed,
            num_inference_steps=num_inference_steps,
            height=height,
            width=width,
            guidance_scale=guidance_scale,
            true_cfg_scale=true_cfg_scale,
            negative_prompt=negative_prompt,
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
            lora_scale=lora_scale,
            chunk_size=chunk_size,
            anchor=anchor,
            anchor_regions=anchor_regions,
            anchor_strength=anchor_strength,
            chunk_text=chunk_text,
            output_type=output_type,
            progress=progress,
            allow_large=allow_large,
        )
        recipe = as_recipe(recipe)
        chunks = plan_chunks(len(recipe), settings.chunking)
        self._guard_size(settings, chunks)
        if self._trace is not None and len(chunks) > 1:
            raise ConfigError(
                f"a cooklab.trace records one canvas, and this call runs {len(chunks)} (a recipe of {len(recipe)} "
                f"steps, chunk_size={settings.chunking.size}): trace with chunk_size >= {len(recipe)}, or trace a "
                "part of the recipe."
            )
        with self._lora_for_call(settings.lora_scale) as lora:
            return self._generate(recipe, plan, settings, chunks, lora)

    def _guard_size(self, s: CookAnythingSettings, chunks: list[Chunk]) -> None:
        """Refuse a canvas too large for the device's free memory (``cooklab.size_guard``) before it starts."""
        _, _, rows, cols = self._region_size(s.height, s.width)
        regions = max(len(chunk.regions) for chunk in chunks)
        text_len = s.max_sequence_length or default_max_sequence_length(self.pipe.tokenizer_2)
        passes = s.num_inference_steps * len(chunks) * (2 if s.true_cfg_scale > 1 else 1)
        size = flux_estimate(self.pipe, self.device, regions, rows, cols, (regions + 1) * text_len, passes)
        guard_size(size, self.device, s.allow_large)

    def _generate(
        self, recipe: Recipe, plan, s: CookAnythingSettings, chunks: list[Chunk], lora: dict | None
    ) -> CookAnythingOutput:
        """Stages 1-6 of ``__call__`` (settings checked, the call's LoRA scale set), stages 2-5 once per chunk."""
        # 1-3. text, layout, positions, regional state of the WHOLE recipe: the canvas as the transformer reads it
        # (shared with training); a chunk reads its steps' part of it, or its own window's (_chunk_canvas)
        windowed = len(chunks) > 1 and s.chunking.text == "window"  # the chunks' windows warn about their cuts
        c = self.prepare_canvas(recipe, plan=plan, settings=s, note_cut=not windowed)
        final = [None] * c.layout.n_regions  # [1, P, C 4] per step: its final latents, from the chunk where it is new
        records = [self._run_chunk(c, chunk, s, final, lora) for chunk in chunks]

        # 6. one image per step, and the canvas (the chunks' new regions stacked in step order)
        images, canvas = self._decode(torch.cat(final, dim=1), c.layout, s.output_type)
        if self._trace is not None:
            self._trace.end_canvas(images, canvas)
        return CookAnythingOutput(
            images=images,
            canvas=canvas,
            layout=c.layout,
            spans=c.text.spans,
            recipe=recipe,
            settings=self._record(c, s, chunks, records, lora),
            chunks=chunks,
        )

    def _run_chunk(self, c: Canvas, chunk: Chunk, s: CookAnythingSettings, final: list, lora) -> dict:
        """Stages 2-5 on one chunk of the canvas ``c``:
        fills ``final`` with its new steps' latents; returns its record.
        """
        n_regions = len(chunk.regions)
        part = c if n_regions == c.layout.n_regions else self._chunk_canvas(c, chunk, s)
        # 2. noise: region i of the chunk is step regions[i], drawn from seed + regions[i] (the regions are
        # consecutive)
        latents = self._noise(
            n_regions, c.height, c.width, s.seed + chunk.regions[0], c.text.embeds.dtype, self.device
        )  # [1, n P, C 4]
        anchor = (torch.cat([final[j] for j in chunk.anchors], dim=1), s.chunking.strength) if chunk.anchors else None

        # 4. processors for this canvas only; 5. the denoising loop
        with self.attention_processors(part.state, install=s.regional or self._trace is not None):
            if self._trace is not None:  # one chunk only (__call__): the whole recipe's canvas
                self._begin_trace(c, s, lora)
            latents, mu = self._denoise(
                latents,
                part.state,
                part.text,
                part.txt_ids,
                part.img_ids,
                s.num_inference_steps,
                s.guidance_scale,
                s.true_cfg_scale,
                s.progress,
                anchor,
            )
        for step, z in zip(chunk.regions, rearrange(latents, "1 (n p) c -> n 1 p c", n=n_regions)):
            if step in chunk.steps:
                final[step] = z
        references, spans, window = part.state.references, part.text.spans, part.cscc_window
        return dict(
            chunk=chunk.index + 1,
            steps=[j + 1 for j in chunk.steps],
            anchors=[j + 1 for j in chunk.anchors],
            regions=n_regions,
            mu=float(mu),
            cross_region_kv=None if references is None else [chunk.regions[j] + 1 for j in references],
            cscc_window=None if window is None else [window[0] + 1, window[1]],  # its first and last step, 1-based
            truncated_steps=[] if spans is None else [j + 1 for j in spans.truncated_steps if j in chunk.regions],
            cscc_unmatched_steps=[]
            if spans is None
            else [
                span.step + 1
                for span in spans.spans
                if span.length and not span.matches and span.step in chunk.regions
            ],
        )

    def _begin_trace(self, c: Canvas, s: CookAnythingSettings, lora) -> None:
        """Tell the trace about the canvas it records (its layout, texts, ids, CSCC spans and token counts)."""
        tok = self.pipe.tokenizer_2
        tokenized = tok(c.texts, truncation=True, max_length=c.text.step_len).input_ids
        base_len = c.layout.base_text_len
        base = tok(whole_description(c.texts, c.recipe.title)[0], truncation=True, max_length=base_len).input_ids
        self._trace.begin_canvas(
            layout=c.layout,
            texts=c.texts,
            img_ids=c.img_ids,
            txt_ids=c.txt_ids,
            spans=c.text.spans,
            cscc_delta=c.text.cscc_delta,
            regional=s.regional,
            alpha=s.alpha,
            token_counts=[len(ids) for ids in tokenized],  # + EOS
            lora=lora,
            tokens=[tok.convert_ids_to_tokens(ids) for ids in tokenized],
            base_tokens=tok.convert_ids_to_tokens(base) if base_len else None,
        )

    def _record(self, c: Canvas, s: CookAnythingSettings, chunks: list[Chunk], records: list[dict], lora) -> dict:
        """What the call ran with, as ``CookAnythingOutput.settings`` reports it."""
        pipe, state, n = self.pipe, c.state, c.layout.n_regions
        chunking = s.chunking
        frame_chunks = {step: chunk for chunk in chunks for step in chunk.steps}
        return dict(
            seed=s.seed,
            num_inference_steps=s.num_inference_steps,
            height=c.height,
            width=c.width,
            guidance_scale=s.guidance_scale,
            true_cfg_scale=s.true_cfg_scale,
            negative_prompt=s.negative_prompt,
            max_sequence_length=c.text.step_len,
            regional=s.regional,
            flexible_rope=s.flexible_rope,
            rope_step_axis=s.rope_step_axis,
            cscc=s.cscc,
            alpha=s.alpha,
            lam=s.lam,
            image_attention=s.image_attention,
            cross_region_kv=None if state.references is None else [j + 1 for j in state.references],
            attention_backend=state.backend if s.regional else None,
            regional_layers=sorted(state.layers),
            regional_steps=None if state.steps is None else sorted(state.steps),
            mu=records[0]["mu"],
            model=pipe.name_or_path or type(pipe).__name__,
            lora=lora,
            truncated_steps=sorted({step for record in records for step in record["truncated_steps"]}),
            cscc_unmatched_steps=sorted({step for record in records for step in record["cscc_unmatched_steps"]}),
            chunk_size=chunking.size,
            anchor=chunking.anchor,
            anchor_regions=chunking.anchors,
            anchor_strength=chunking.strength if chunking.anchor == "renoise" else None,
            chunk_text=chunking.text,
            chunks=records,
            frame_chunks=[frame_chunks[i].index + 1 for i in range(n)],
            frame_anchors=[[j + 1 for j in frame_chunks[i].anchors] for i in range(n)],
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
                f"an adapter named {adapter_name!r} is already loaded: unload_lora() first, or give another "
                "adapter_name."
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
        # not "no LoRA keys for CLIPTextModel" on every transformer-only adapter
        diffusers_logging.set_verbosity_error()
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
        """Set the adapters' scale for one call and put the kept scales back after it;
        yields what the call ran with.
        """
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
