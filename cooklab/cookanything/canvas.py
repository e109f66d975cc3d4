"""A CookAnything canvas as the transformer reads it, latents aside: text stream, layout, RoPE ids, SRC state.

``CanvasPreparation.prepare_canvas`` is the one code path of a canvas: ``CookAnything.__call__``
denoises it, ``cooklab.training`` trains a LoRA on it, so both build the same layout, position
ids and attention masks for the same recipe. Its stages, one method each:

1. ``_encode_text``: each step is encoded on its own (T5 ``C_n`` + CLIP pooled); the whole
   description (title and all steps) is encoded once -- it is the base branch's prompt and, for
   Cross-Step Consistency Control, the recipe encoding the step spans are read from (``cscc.py``):
   ``C_n[0:t_n] += lam * C_recipe[b_n : b_n + t_n]``;
3. ``_position_ids``: Flexible RoPE ids restart in every region (``flexible_rope.py``);
4. ``_regional_state``: where ``RegionalFluxAttnProcessor`` (``regional.py``) runs SRC (layers,
   steps), with which ``alpha``, backend and cross-region references.

(2., the noise, is drawn by the denoising loop, ``denoising.py``.) A chunk of a long recipe is a
canvas of its regions (``_chunk_canvas``): with ``chunk_text="window"`` its own base prompt and CSCC
window (``chunked.cscc_window``), with ``"whole"`` its steps' part of the whole recipe's text stream.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import torch
from einops import rearrange, reduce, repeat

from ..errors import ConfigError, warn_caller
from ..instrument.locate import locate
from ..pipeline_base import quiet_truncation, warn_dropped_tokens
from ..recipe import Recipe, as_recipe
from .chunked import Chunk, cscc_window
from .cross_region_kv import canvas_references
from .cscc import RecipeSpans, cscc_fuse, step_token_spans, whole_description
from .flexible_rope import canvas_image_ids, text_ids
from .regional import RegionalState, RegionLayout, resolve_backend
from .settings import DEFAULT_REGION_SIZE, CookAnythingSettings, default_max_sequence_length

__all__ = ["Canvas", "CanvasPreparation", "CanvasText"]


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
    cscc_window: tuple[int, int] | None = None  # steps [w, e) whose description CSCC encoded (None: cscc off)


class CanvasPreparation:
    """``CookAnything``'s canvas stages (a mixin: ``self.pipe`` is a ``FluxPipeline``, ``self._trace`` the trace)."""

    @torch.no_grad()
    def prepare_canvas(
        self, recipe, *, plan=None, settings: CookAnythingSettings | None = None, note_cut: bool = True, **kwargs
    ) -> Canvas:
        """Everything the transformer reads for ``recipe`` except the latents:
        text stream, layout, RoPE ids, SRC state.

        Args:
            recipe: a ``Recipe``, a list of step strings or a recipe file path.
            plan: a ``cooklab.agent.RecipePlan``; with ``enriched_prompts`` its prompts are encoded.
            settings: the call's ``CookAnythingSettings``; None builds them from ``kwargs`` (the
                keywords of ``CookAnything.__call__``: ``height``, ``regional``, ``alpha`` ...).
            note_cut: warn when ``max_sequence_length`` cuts the whole description (False: the caller
                encodes chunks' own windows, ``chunk_text="window"``, and warns about those).
        """
        if settings is not None and kwargs:
            raise ConfigError(f"give either settings= or keywords ({', '.join(kwargs)}), not both.")
        s = CookAnythingSettings.build(**kwargs) if settings is None else settings
        recipe = as_recipe(recipe)
        n = len(recipe)
        max_sequence_length = (
            default_max_sequence_length(self.pipe.tokenizer_2)
            if s.max_sequence_length is None
            else int(s.max_sequence_length)
        )
        height, width, rows, cols = self._region_size(s.height, s.width)
        backend = resolve_backend(s.attention_backend, s.image_attention, self.device, shared=s.cross_region_kv)
        texts = self._step_prompts(recipe, plan, s.enriched_prompts)
        references = self._references(recipe, plan) if s.cross_region_kv else None

        # 1. text: each step alone, the whole description once, CSCC, the slots end to end
        self._note_long_steps(texts, max_sequence_length)
        with quiet_truncation(self.pipe):  # the note above says it once
            text = self._encode_text(
                texts,
                recipe.title,
                s,
                max_sequence_length,
                cut_note="the whole description" if note_cut else None,
            )
        L = text.step_len
        layout = RegionLayout(n, rows, cols, L, L if s.regional else 0)
        # 3. positions (2., the noise, is drawn by the caller)
        img_ids, txt_ids = self._position_ids(
            layout, text.embeds.shape[1], s.flexible_rope, s.rope_step_axis
        )  # [N P, 3], [L_b + N L, 3]
        state = self._regional_state(
            layout,
            s.alpha,
            s.image_attention,
            backend,
            s.regional,
            s.regional_blocks,
            s.regional_every,
            s.regional_steps,
            references,
        )
        window = (0, n) if s.cscc else None
        return Canvas(recipe, texts, height, width, layout, text, img_ids, txt_ids, state, window)

    def _chunk_canvas(self, c: Canvas, chunk: Chunk, s: CookAnythingSettings) -> Canvas:
        """The canvas of one chunk of the whole recipe's ``c``: its steps' text, its own layout, ids and state.

        The text (``s.chunking.text``): ``"window"`` encodes the chunk's own base prompt (the
        description of its regions) and CSCC from its window of the recipe (``chunked.cscc_window``:
        the steps before it that fit ``max_sequence_length``, then its own), ``b^(n)`` counted in the
        window's encoding; ``"whole"`` keeps the whole recipe's base slot and CSCC
        (``CanvasText.select``). RoPE ids and the regional layout are those of a canvas of
        ``len(chunk.regions)`` regions. Cross-region K/V references become the chunk's own regions; one
        that lies before the chunk (an earlier step not on this canvas) is dropped: that region keeps
        its own keys.
        """
        steps = chunk.regions
        first = steps[0]
        if s.chunking.text == "whole":
            text, window = c.text.select(steps), c.cscc_window
        else:
            texts, length = [c.texts[j] for j in steps], c.text.step_len
            window = cscc_window(self.pipe.tokenizer_2, c.texts, c.recipe.title, steps, length) if s.cscc else None
            context = c.texts[window[0] : first] if s.cscc else []
            with quiet_truncation(self.pipe):  # the window fits; a cut in a chunk's own steps is warned below
                text = self._encode_text(
                    texts, c.recipe.title, s, length, f"the description of chunk {chunk.index + 1}", context, first
                )
        layout = dataclasses.replace(c.layout, n_regions=len(steps))
        img_ids, txt_ids = self._position_ids(
            layout, text.embeds.shape[1], s.flexible_rope, s.rope_step_axis
        )  # [n P, 3], [L_b + n L, 3]
        references = None
        if c.state.references is not None:
            references = tuple(
                c.state.references[j] - first if c.state.references[j] >= first else i for i, j in enumerate(steps)
            )
        state = dataclasses.replace(c.state, layout=layout, references=references, step=0)
        texts = [c.texts[j] for j in steps]
        return Canvas(c.recipe, texts, c.height, c.width, layout, text, img_ids, txt_ids, state, window)

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
                f"height={height}, width={width} (of one region): both must be positive multiples of {f} for this "
                "Flux model."
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
    def _references(recipe: Recipe, plan) -> tuple[int, ...]:
        """ref(n) of every region for cross-region K/V sharing: the plan's or recipe's reference step, else n - 1."""
        if plan is not None:
            recipe = recipe.with_plans(plan.step_plans())
        return canvas_references(recipe.reference_frames())

    # ---- 1. text ---------------------------------------------------------------------------
    def _note_long_steps(self, texts, max_sequence_length: int) -> None:
        """One warning naming the steps longer than their own encodings read (T5 ``max_sequence_length``, CLIP's
        pooled text), with the tokens each drops (``warn_dropped_tokens``); the whole description's cut is
        ``_token_spans``' warning."""
        clip = ("CLIP", self.pipe.tokenizer, self.pipe.tokenizer_max_length)
        t5 = ("T5", self.pipe.tokenizer_2, max_sequence_length)
        warn_dropped_tokens(
            texts,
            [clip, t5],
            f"shorten those steps, or for T5 raise max_sequence_length (now {max_sequence_length}; Flux: up to "
            f"512); CLIP reads {clip[2]} tokens whatever it is.",
        )

    def _encode_text(
        self,
        texts,
        title,
        s: CookAnythingSettings,
        max_sequence_length: int,
        cut_note: str | None,
        context=(),
        first=0,
    ) -> CanvasText:
        """The canvas's text stream: the steps, the whole description, CSCC (Eq. 12) and the slots.

        Each step is encoded on its own (T5 ``C_n`` [L, D], CLIP pooled [Dp]); the description of
        ``texts`` (title and steps) once, when the base branch or CSCC needs it. CSCC adds each step's
        contextual tokens to its encoding, ``C_n[0:t_n] += lam * C_recipe[b_n : b_n + t_n]``, where
        ``C_recipe`` encodes ``whole_description(context + texts, title)``: the description itself
        without ``context``; a chunk's window with it (``chunk_text="window"``: the steps before the
        chunk that fit), ``b_n`` then counted in the window's encoding. ``first`` is the recipe step
        of ``texts[0]`` (the spans are numbered as steps of the recipe); ``cut_note`` names the text
        in the warning when ``max_sequence_length`` cuts it (None: no warning). The slots are laid
        end to end as the transformer reads them:

            regional:   [C_base | C_1 | ... | C_N]    pooled = CLIP(description of texts)
            otherwise:  [C_1 | ... | C_N]             pooled = mean over n of CLIP(step n)

        With true CFG (``s.negative_prompt`` not None) the negative prompt is encoded once and fills
        every slot, without CSCC.
        """
        pipe, device, regional = self.pipe, self.device, s.regional
        encode = partial(pipe.encode_prompt, device=device, max_sequence_length=max_sequence_length)
        step_embeds, step_pooled, _ = encode(prompt=texts, prompt_2=texts)  # [N, L, D], [N, Dp]
        base_embeds = base_pooled = spans = cscc_delta = None
        if regional or s.cscc:
            whole, _ = whole_description(texts, title)
            base_embeds, base_pooled, _ = encode(prompt=whole, prompt_2=whole)  # [1, L, D], [1, Dp]
            # also with cscc off: the base prompt may be cut
            spans = self._token_spans([*context, *texts], title, max_sequence_length, cut_note, first - len(context))
        if s.cscc:
            recipe_embeds = base_embeds  # [1, L, D]: the description of texts, or the window's (with context)
            if context:
                recipe_embeds, _, _ = encode(prompt=spans.text, prompt_2=spans.text)
                spans = dataclasses.replace(spans, spans=spans.spans[len(context) :])  # the chunk's steps only
            step_embeds, cscc_delta = self._fuse_cscc(step_embeds, recipe_embeds, spans, s.lam)
        else:
            spans = None
        step_slots = rearrange(step_embeds, "n l d -> 1 (n l) d")  # the N step slots end to end
        if regional:
            embeds, pooled = torch.cat([base_embeds, step_slots], dim=1), base_pooled  # [1, L_b + N L, D], [1, Dp]
        else:
            embeds, pooled = step_slots, reduce(step_pooled, "n dp -> 1 dp", "mean")  # [1, N L, D], [1, Dp]
        text = CanvasText(embeds, pooled, step_embeds.shape[1], spans, cscc_delta, step_pooled)
        if s.negative_prompt is not None:  # the negative branch: the same layout, every text slot holds it
            neg, text.neg_pooled, _ = encode(prompt=s.negative_prompt, prompt_2=s.negative_prompt)  # [1, L, D]
            slots = (1 if regional else 0) + len(texts)  # the base slot and N step slots
            text.neg_embeds = repeat(neg, "1 l d -> 1 (slot l) d", slot=slots)  # [1, L_b + N L, D]
        return text

    def _token_spans(self, texts, title, max_sequence_length, cut_note: str | None, first: int = 0) -> RecipeSpans:
        """Where each step's tokens sit in the description of ``texts`` (``b_n``, ``t_n`` of Eq. 12), numbered
        from recipe step ``first``; warns when it is cut (naming it ``cut_note``; None: silent)."""
        spans = step_token_spans(self.pipe.tokenizer_2, texts, title, max_sequence_length)
        if first:
            spans.spans = [dataclasses.replace(span, step=span.step + first) for span in spans.spans]
        if spans.truncated_steps and cut_note is not None:
            warn_caller(
                f"{cut_note} is cut at max_sequence_length={max_sequence_length} T5 tokens: steps "
                f"{[i + 1 for i in spans.truncated_steps]} are partly or wholly missing from the base prompt and from "
                "CSCC; raise max_sequence_length (Flux: up to 512) or shorten the recipe."
            )
        return spans

    def _fuse_cscc(self, step_embeds, recipe_embeds, spans, lam):
        """Eq. 12 on every step (``cscc_fuse``): returns
        (fused [N, L, D], delta [N, L, D]); warns about unfused steps.
        """
        unmatched = [span.step + 1 for span in spans.spans if span.length and not span.matches]
        if unmatched and lam != 0:
            warn_caller(
                f"CSCC leaves steps {unmatched} unfused: their tokens inside the whole description differ from the "
                "step tokenized alone, so Eq. 12's position-by-position sum would add different tokens. Rephrase the "
                "step's first or last word, or accept these steps without cross-step context."
            )
        return cscc_fuse(step_embeds, recipe_embeds, spans, lam)

    # ---- 2-3. noise and positions ----------------------------------------------------------
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
