"""``cooklab.trace``: record what a cooklab pipeline's attention and noise do, without changing it.

    with cooklab.trace(pipe, capture=["reference_share", "cross_attention"], layers=("up",)) as tr:
        out = pipe(recipe, seed=0)
    tr.reference_share_map(frame=1)        # [G, G] share of attention each query gives the reference
    tr.cross_attention_map(1, "bowl")       # [G, G] where the token "bowl" is attended to
    cooklab.instrument.word_map(tr, "bowl", frame=1)   # [H, W] the word, DAAM-style (word_maps.py)

What can be captured (``capture=``):

* ``"self_attention"``  -- per (frame, layer, step) the head-mean self-attention weights,
  queries average-pooled and keys sum-pooled to a ``attention_map_size`` grid:
  ``[Gh, Gw, S, Gh, Gw]`` with ``S = 2`` (reference keys, own keys) when the layer shares
  K/V and ``S = 1`` otherwise. Row ``[r, c]`` sums to 1 over ``S, Gh, Gw``.
* ``"reference_share"`` -- per (frame, layer, step) ``[G, G]``: for each query the total
  attention mass on the reference frame's keys, ``sum_{k in ref} A+[q, k]`` (Eq. 3). It is
  0 without K/V sharing and 1/2 when a frame shares with an identical copy of itself.
* ``"cross_attention"`` -- per (frame, layer, step) ``[T, G, G]``: attention of each image
  query to each prompt token (the ``T`` tokens before padding, BOS and EOS included); with
  ``words=["pot", "carrot"]`` only those words' tokens are kept, ``[K, G, G]`` (rows:
  ``tr.token_rows[frame]``, their prompt positions). Either way ``tr.cross_content`` keeps per
  map ``[G, G]`` the mass on all the prompt's words (BOS/EOS excluded), what a word map is
  renormalised by (``word_maps.py``); ``tr.layer_grid`` each layer's native token grid.
* ``"noise"`` -- per frame the region-aware noise actually applied: mask on the latent
  grid, per-pixel signal and sigma maps, the three latents of Eq. 5-7, levels, timesteps.

For CookAnything (``capture=`` from ``FLUX_CAPTURE_KINDS``, layers ``"double"``/``"single"``):

* ``"text_image_attention"`` -- per (layer, step) ``[N, G_rows, G_cols]``: for every image
  position of the canvas, the attention mass it gives to step n's real text tokens, in the
  attention actually computed (regional branch where SRC is on, full attention elsewhere).
  With SRC, step n's mass stays inside region n; without it, it leaks over the canvas.
* ``"text_token_attention"`` -- per (layer, step) ``[K, N G_rows, G_cols]``: for every image
  position, the attention on each kept text token (rows ``tr.canvas.token_keys``: (step n, or
  None for the base prompt, position); all real tokens of every step's text and of the base
  prompt, or only the tokens of ``words``), in the attention actually computed: under SRC
  region n's queries over C_n's tokens (0 in every other region) and the base branch's attention
  over C_base, else full attention. ``tr.text_content`` ``[N (+1), ...]``: each text's mass on its
  words (``</s>`` excluded). Summed over step n's real tokens it is ``"text_image_attention"``.
  Token strings: ``tr.canvas.tokens`` (each step's), ``tr.canvas.base_tokens``.
* ``"concept_attention"`` -- per (layer, step) ``[K, N G_rows, G_cols]``: ConceptAttention's
  output-space score ``o_x . o_c`` of every image token's attention output with each kept text
  token's (``flux_capture.concept_scores``; ``word_maps.word_map(method="concept")``).
* ``"base_contribution"`` -- per (layer, step) the relative size of the base branch's share
  of the image output, ``|alpha (z_base - z_regional)| / |z|`` averaged over image tokens.
* ``"layout"``, ``"rope_ids"``, ``"cscc"`` -- the region layout, every token's RoPE ids, and
  the CSCC spans and per-token delta norms (``tr.canvas``).

``capture=None`` records every kind but the two per-token ones, which are asked for by name.

Bounded memory: only the chosen layers (``layers``, names or groups, see ``locate``) and
denoising steps (``timesteps``: positions in the scheduler's schedule, or None for all)
are captured; maps are pooled on the compute device, averaged over heads, kept for the
conditional half of the CFG batch only and stored on the CPU in float32; ``words=`` keeps only
the per-token rows of those words (``cooklab.instrument.words``). When the stored
maps exceed ``max_bytes`` the trace stops adding maps, warns once and sets ``truncated``.

How it observes: a ``Trace`` is the *observer* of ``observer.py``. The pipeline hands it to
the hook points of the processors it installs for each call (Recipe Diffusion:
``observed(...)`` on the selected layers; CookAnything: ``RegionalState.observer``) and
restores the stock processors in ``finally``. At a hook point the trace reads the layer's
own Q and K (and SRC's branch outputs and attention output) and stores pooled maps; what it computes from them
is in ``unet_capture.py`` (U-Net) and ``flux_capture.py`` (Flux). Nothing is recomputed and
nothing the layer returns is touched: a traced call gives bit-identical images.

Installing and restoring: entering saves the denoiser's processors and attaches the trace
to the pipeline; leaving the block restores the saved processors even if the body raised.
A pipeline can be traced by one trace at a time.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch

from ..errors import ConfigError
from . import flux_capture, unet_capture
from .locate import locate
from .observer import FrameTrace
from .pooling import grid, pool, pooled_size, upsample
from .words import content_positions, kept_positions

CAPTURE_KINDS = ("self_attention", "reference_share", "cross_attention", "noise")  # RecipeDiffusion
FLUX_CAPTURE_KINDS = (  # CookAnything
    "text_image_attention",
    "base_contribution",
    "layout",
    "rope_ids",
    "cscc",
    "text_token_attention",
    "concept_attention",
)
FLUX_DEFAULT_CAPTURE = FLUX_CAPTURE_KINDS[:5]  # capture=None: the per-token captures are asked for by name
_FLUX_ATTENTION = {"text_image_attention", "base_contribution", "text_token_attention", "concept_attention"}


@dataclass
class CanvasTrace:
    """What a CookAnything call told the trace about its canvas (captures "layout", "rope_ids", "cscc")."""

    texts: list[str]
    layout: object  # RegionLayout: token positions of every group
    regional: bool
    alpha: float
    token_counts: list[int]  # real (non-padding) T5 tokens of each step, EOS included
    tokens: list[list[str]] | None = None  # each step's real T5 tokens, EOS included (cut at L)
    base_tokens: list[str] | None = None  # the base prompt's real T5 tokens (None: no base branch)
    token_keys: list[tuple[int | None, int]] | None = None  # (step n or None = base, position) of each kept map row
    img_ids: torch.Tensor | None = None  # [N P, 3] RoPE ids of every image token
    txt_ids: torch.Tensor | None = None  # [T, 3]
    spans: object = None  # cscc.RecipeSpans
    cscc_delta_norm: torch.Tensor | None = None  # [N, L] |lam * C_recipe slice| added to each step token
    images: list | None = None
    canvas: object = None
    lora: dict | None = None  # the LoRA adapter(s) active in the call and their scale (None: the base model)


class Trace:
    """A recording of one or more pipeline calls. Use as a context manager (see module doc)."""

    def __init__(
        self,
        pipe,
        capture=None,
        layers=None,
        timesteps=None,
        map_size: int = 16,
        attention_map_size: int = 8,
        max_bytes: int = 256 * 2**20,
        query_chunk_elements: int = 2**26,
        words: list[str] | str | None = None,
    ):
        if not hasattr(pipe, "attach_trace"):
            raise ConfigError(
                f"cooklab.trace needs a cooklab pipeline, got {type(pipe).__name__}; "
                "wrap a diffusers pipeline first, e.g. cooklab.RecipeDiffusion.from_pipe(pipe) or "
                "cooklab.CookAnything.from_pipe(pipe)."
            )
        self.flux = hasattr(getattr(pipe, "denoiser", None), "single_transformer_blocks")
        kinds = FLUX_CAPTURE_KINDS if self.flux else CAPTURE_KINDS
        default = FLUX_DEFAULT_CAPTURE if self.flux else CAPTURE_KINDS
        capture = default if capture is None else ((capture,) if isinstance(capture, str) else tuple(capture))
        unknown = [c for c in capture if c not in kinds]
        if unknown:
            raise ConfigError(f"capture={unknown}: this pipeline records {list(kinds)}.")
        layers = (("double", "single") if self.flux else ("mid", "up")) if layers is None else layers
        self.pipe = pipe
        self.capture = capture
        self.layer_patterns = (layers,) if isinstance(layers, str) else tuple(layers)
        self.self_layers = locate(pipe, *self.layer_patterns, kind="any" if self.flux else "self")
        self.cross_layers = locate(pipe, *self.layer_patterns, kind="cross") if "cross_attention" in capture else []
        self.timesteps = None if timesteps is None else {int(t) for t in timesteps}
        self.map_size = int(map_size)
        self.attention_map_size = int(attention_map_size)
        self.max_bytes = int(max_bytes)
        self.query_chunk_elements = int(query_chunk_elements)
        self.words = None if words is None else ([words] if isinstance(words, str) else list(words))
        self.frames: dict[int, FrameTrace] = {}
        self.self_attention: dict[tuple[int, str, int], torch.Tensor] = {}
        self.reference_share: dict[tuple[int, str, int], torch.Tensor] = {}
        self.cross_attention: dict[tuple[int, str, int], torch.Tensor] = {}  # [K, G, G], rows token_rows[frame]
        self.cross_content: dict[tuple[int, str, int], torch.Tensor] = {}  # [G, G] mass on the prompt's words
        self.token_rows: dict[int, list[int]] = {}  # frame -> prompt position of each cross_attention row
        self.layer_grid: dict[str, tuple[int, int]] = {}  # layer -> its native token grid (rows, cols)
        self.noise: dict[int, object] = {}
        self.text_image: dict[tuple[int, str, int], torch.Tensor] = {}  # CookAnything, frame 0 = the canvas
        self.base_contribution: dict[tuple[int, str, int], float] = {}
        self.text_tokens: dict[tuple[int, str, int], torch.Tensor] = {}  # [K, N G, G], rows canvas.token_keys
        self.text_content: dict[tuple[int, str, int], torch.Tensor] = {}  # [N (+1 base), N G, G] mass on words
        self.concept: dict[tuple[int, str, int], torch.Tensor] = {}  # [K, N G, G] o_x . o_c, rows canvas.token_keys
        self.canvas: CanvasTrace | None = None
        self.truncated = False
        self._bytes = 0
        self._saved = None
        self._frame = 0
        self._step = 0

    # ---- context manager -------------------------------------------------------------
    def __enter__(self) -> Trace:
        self._saved = dict(self.pipe.denoiser.attn_processors)
        self.pipe.attach_trace(self)
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.pipe.detach_trace(self)
        finally:
            self.pipe.denoiser.set_attn_processor(dict(self._saved))

    # ---- called by pipelines -----------------------------------------------------------
    def layers_to_wrap(self) -> list[str]:
        """Processor keys the pipeline must hand this trace as observer (``observed``).

        These are the layers its captures read.
        """
        watched = _FLUX_ATTENTION if self.flux else {"self_attention", "reference_share"}
        names = list(self.self_layers) if watched & set(self.capture) else []
        return names + [n for n in self.cross_layers if n not in names]

    def begin_frame(self, frame: FrameTrace) -> None:
        """Called by a pipeline before a frame's denoising: later records belong to ``frame``."""
        self.frames[frame.index] = frame
        self._frame = frame.index
        self.token_rows[frame.index] = kept_positions(frame.tokens, self.words)

    def set_step(self, step: int, timestep: float) -> None:
        """Called before each denoising step of the current frame: its position and timestep value."""
        self._step = step
        self.frames[self._frame].timesteps[step] = float(timestep)

    def end_frame(self, image) -> None:
        """Called when the current frame is decoded: keeps its image."""
        self.frames[self._frame].image = image

    def record_noise(self, record) -> None:
        """Keep the current frame's ``NoiseRecord`` (what it started from) if ``"noise"`` is captured."""
        if "noise" in self.capture:
            self.noise[self._frame] = record

    def begin_canvas(
        self,
        *,
        layout,
        texts,
        img_ids,
        txt_ids,
        spans,
        cscc_delta,
        regional,
        alpha,
        token_counts,
        lora=None,
        tokens=None,
        base_tokens=None,
    ) -> None:
        """Called by CookAnything before denoising; the canvas is frame 0 of the trace.

        lora: adapter name -> scale, or None; tokens: each step's real T5 tokens (EOS included),
        base_tokens: the base prompt's (None without a base branch). The per-token captures need them.
        """
        if tokens is None and {"text_token_attention", "concept_attention"} & set(self.capture):
            raise ConfigError(
                "capture='text_token_attention' / 'concept_attention' need the steps' T5 tokens: "
                "pass tokens= (and base_tokens=) to begin_canvas."
            )
        self.begin_frame(FrameTrace(0, " | ".join(texts), [], None, (layout.n_regions * layout.rows, layout.cols)))
        self.canvas = CanvasTrace(
            list(texts),
            layout if "layout" in self.capture else None,
            regional,
            alpha,
            list(token_counts),
            lora=None if lora is None else dict(lora),
        )
        if tokens is not None:
            L = layout.step_text_len
            self.canvas.tokens = [list(t[:L]) for t in tokens]
            self.canvas.base_tokens = None if base_tokens is None else list(base_tokens[: layout.base_text_len])
            texts_tokens = [*enumerate(self.canvas.tokens)] + (
                [(None, self.canvas.base_tokens)] if self.canvas.base_tokens and layout.base_text_len else []
            )
            self.canvas.token_keys = [(n, j) for n, toks in texts_tokens for j in kept_positions(toks, self.words)]
        if "rope_ids" in self.capture:
            self.canvas.img_ids, self.canvas.txt_ids = img_ids.detach().cpu(), txt_ids.detach().cpu()
        if "cscc" in self.capture:
            self.canvas.spans = spans
            if cscc_delta is not None:
                self.canvas.cscc_delta_norm = cscc_delta.detach().float().norm(dim=-1).cpu()  # [N, L]

    def end_canvas(self, images, canvas) -> None:
        """Called by CookAnything when the canvas is decoded: the step images and the whole canvas."""
        self.canvas.images, self.canvas.canvas = images, canvas
        self.frames[0].image = canvas

    # ---- the observer: called at the processors' hook points (observer.py) ----------------
    def wants(self, layer: str, is_cross: bool) -> bool:
        """Whether the hook point of ``layer`` should report this call.

        True when the layer, the step and the capture are selected and the trace is not truncated.
        """
        if self.truncated or (self.timesteps is not None and self._step not in self.timesteps):
            return False
        if is_cross:
            return "cross_attention" in self.capture and layer in self.cross_layers
        watched = _FLUX_ATTENTION if self.flux else {"self_attention", "reference_share"}
        return bool(watched & set(self.capture)) and layer in self.self_layers

    def observe_attention(self, layer, attn, query, key, n_ref, is_cross) -> None:
        """Hook of ``AttnProcessor2_0``-style layers: store the pooled head-mean maps of the conditional sample.

        query [B, h, P, d]; key [B, h, n_ref + P, d] (self, reference keys first) or [B, h, T, d]
        (cross): the tensors the layer's SDPA receives. ``attn`` (the layer) is not read.
        """
        frame = self.frames[self._frame]
        key_id = (self._frame, layer, self._step)
        with torch.no_grad():
            q, k = query[-1].float(), key[-1].float()  # conditional half of the CFG batch: [h, P, d], [h, K, d]
            rows, cols = grid(q.shape[1], frame.latent_hw)
            size = pooled_size(rows, cols, self.map_size)
            if is_cross:
                self.layer_grid[layer] = (rows, cols)
                t = k.shape[1]
                a, words = unet_capture.cross_attention_map(
                    q,
                    k,
                    [p for p in self.token_rows[self._frame] if p < t],
                    [p for p in content_positions(frame.tokens) if p < t],
                    rows,
                    cols,
                    size,
                    self.query_chunk_elements,
                )
                self._store(self.cross_attention, key_id, a)  # [K, G, G]
                self._store(self.cross_content, key_id, words)  # [G, G]
                return
            keep_self = "self_attention" in self.capture
            share, maps = unet_capture.self_attention_maps(
                q,
                k,
                n_ref,
                rows,
                cols,
                size,
                pooled_size(rows, cols, self.attention_map_size) if keep_self else None,
                self.query_chunk_elements,
            )
            if "reference_share" in self.capture:
                self._store(self.reference_share, key_id, share)  # [G, G]
            if keep_self:
                self._store(self.self_attention, key_id, maps)  # [Gh, Gw, S, Gh, Gw]

    def observe_regional(self, layer, attn, query, key, state, result, value=None, output=None) -> None:
        """Hook of ``RegionalFluxAttnProcessor``: text->image attention per step and the base branch's share.

        query, key, value [B, S, H, D]: the joint sequence after RoPE; state: the call's
        RegionalState; result: RegionalOutput where SRC ran in this layer and step, else None
        (full attention); output [B, S, H, D]: the attention output the layer goes on with.
        ``attn`` (the layer) and ``value`` are not read.
        """
        lay = state.layout
        key_id = (0, layer, self._step)
        with torch.no_grad():
            if {"text_token_attention", "concept_attention"} & set(self.capture):
                self._observe_tokens(key_id, query, key, state, result, output)
            if "base_contribution" in self.capture and result is not None and result.image_base is not None:
                self.base_contribution[key_id] = flux_capture.base_contribution(state.alpha, result, lay.text_len)
            if "text_image_attention" not in self.capture:
                return
            m = flux_capture.text_image_mass(
                query,
                key,
                lay,
                state.image_attention,
                result is not None,
                self.canvas.token_counts,
                self.query_chunk_elements,
                state.references,
            )  # [N steps, N regions, rows, cols]
            size = pooled_size(lay.rows, lay.cols, self.map_size)
            n = lay.n_regions
            self._store(
                self.text_image, key_id, pool(m, size).reshape(n, n * size[0], size[1])
            )  # each region pooled on its own

    def _observe_tokens(self, key_id, query, key, state, result, output) -> None:
        """The per-token captures of one Flux call: kept tokens' maps, each text's word mass, concept scores."""
        lay, canvas = state.layout, self.canvas
        n, size = lay.n_regions, pooled_size(lay.rows, lay.cols, self.map_size)
        self.layer_grid[key_id[1]] = (lay.rows, lay.cols)  # one region's token grid, the same in every layer

        def canvas_map(m):  # [W, N, rows, cols] -> [W, N G, G], each region pooled on its own
            return pool(m, size).reshape(m.shape[0], n * size[0], size[1])

        def joint(step, j):  # position of token j of step `step` (None: the base prompt) in [C_base | C_1 .. C_N]
            return j if step is None else lay.base_text_len + step * lay.step_text_len + j

        positions = [joint(step, j) for step, j in canvas.token_keys]  # K kept tokens
        if "text_token_attention" in self.capture:
            texts = [*enumerate(canvas.tokens)]
            if canvas.base_tokens and lay.base_text_len:
                texts.append((None, canvas.base_tokens))
            columns = torch.zeros(lay.text_len, len(positions) + len(texts))  # [text_len, K + texts]
            columns[positions, range(len(positions))] = 1  # one column per kept token
            for c, (step, toks) in enumerate(texts, start=len(positions)):  # one per text: its words' tokens
                columns[[joint(step, j) for j in content_positions(toks)], c] = 1
            m = flux_capture.text_key_mass(
                query,
                key,
                lay,
                state.image_attention,
                result is not None,
                columns,
                self.query_chunk_elements,
                state.references,
            )  # [K + texts, N, rows, cols]
            self._store(self.text_tokens, key_id, canvas_map(m[: len(positions)]))
            self._store(self.text_content, key_id, canvas_map(m[len(positions) :]))
        if "concept_attention" in self.capture and output is not None:
            self._store(self.concept, key_id, canvas_map(flux_capture.concept_scores(output, lay, positions)))

    def _store(self, table: dict, key, value: torch.Tensor) -> None:
        value = value.detach().to("cpu", torch.float32)
        if self._bytes + value.numel() * 4 > self.max_bytes:
            if not self.truncated:
                warnings.warn(
                    f"cooklab.trace: stored maps reached max_bytes={self.max_bytes}; later maps are not recorded "
                    "(select fewer layers/timesteps or raise max_bytes).",
                    stacklevel=2,
                )
            self.truncated = True
            return
        table[key] = value
        self._bytes += value.numel() * 4

    # ---- reading the trace ---------------------------------------------------------
    def nbytes(self) -> int:
        """Bytes held by the stored attention maps."""
        return self._bytes

    def layers(self, table: str = "reference_share") -> list[str]:
        """Layers present in one of the tables, in model order."""
        names = {k[1] for k in getattr(self, table)}
        return [n for n in self.self_layers + self.cross_layers if n in names]

    def steps(self, frame: int, table: str = "reference_share") -> list[int]:
        """Denoising step positions captured for ``frame``."""
        return sorted({k[2] for k in getattr(self, table) if k[0] == frame})

    def captured(self, table: dict, frame: int, layers=None, steps=None) -> list[tuple[str, torch.Tensor]]:
        """(layer, map) of every map stored in ``table`` for ``frame`` in the chosen layers and denoising steps.

        layers: names or groups (``locate``), None for all; steps: step positions, None for all. A
        ``KeyError`` naming the trace's settings to check when nothing was captured.
        """
        names = None if layers is None else set(locate(self.pipe, *((layers,) if isinstance(layers, str) else layers)))
        steps = None if steps is None else {int(s) for s in steps}
        chosen = [
            (name, value)
            for (f, name, step), value in table.items()
            if f == frame and (names is None or name in names) and (steps is None or step in steps)
        ]
        if not chosen:
            raise KeyError(
                f"nothing captured for frame {frame} with layers={layers} steps={steps}; check capture=, layers=, "
                "timesteps= (and words=) of the trace."
            )
        return chosen

    def _mean(self, table: dict, frame: int, layers=None, steps=None) -> torch.Tensor:
        vals = [v for _, v in self.captured(table, frame, layers, steps)]
        size = (max(v.shape[-2] for v in vals), max(v.shape[-1] for v in vals))  # the finest grid captured
        return torch.stack([upsample(v, size) for v in vals]).mean(0)

    def reference_share_map(self, frame: int, layers=None, steps=None) -> torch.Tensor:
        """[G, G] mean share of attention on the reference frame's keys (0 = ignores the reference)."""
        return self._mean(self.reference_share, frame, layers, steps)

    def reference_share_curve(self, frame: int, layers=None) -> dict[int, float]:
        """step -> mean reference share over all queries and the chosen layers."""
        return {s: float(self.reference_share_map(frame, layers, {s}).mean()) for s in self.steps(frame)}

    def token_index(self, frame: int, token: int | str) -> int:
        """Position of ``token`` (an index or a word) in frame's prompt tokens."""
        if isinstance(token, int):
            return token
        toks = [t.replace("</w>", "").lower() for t in self.frames[frame].tokens]
        if token.lower() not in toks:
            raise KeyError(f"token {token!r} is not in frame {frame}'s prompt tokens {self.frames[frame].tokens}.")
        return toks.index(token.lower())

    def cross_attention_map(self, frame: int, token: int | str, layers=None, steps=None) -> torch.Tensor:
        """[G, G] mean cross-attention of the image to one prompt token (a kept one, see ``words=``)."""
        position = self.token_index(frame, token)
        if position not in self.token_rows[frame]:
            raise KeyError(
                f"token {position} of frame {frame} was not kept (words={self.words}); trace with words=None "
                "or name its word in words=."
            )
        return self._mean(self.cross_attention, frame, layers, steps)[self.token_rows[frame].index(position)]

    def text_image_map(self, step: int, layers=None, steps=None) -> torch.Tensor:
        """[G_rows, G_cols] mean attention mass of the canvas on step ``step``'s text (0-based)."""
        return self._mean(self.text_image, 0, layers, steps)[step]

    def self_attention_map(self, frame: int, layer: str, step: int, query: tuple[int, int]) -> torch.Tensor:
        """[S, G, G] where pooled query cell ``query=(row, col)`` looks (S: reference, own)."""
        a = self.self_attention[(frame, layer, step)]
        if not (0 <= query[0] < a.shape[0] and 0 <= query[1] < a.shape[1]):
            raise IndexError(
                f"query {tuple(query)} is outside this layer's {a.shape[0]}x{a.shape[1]} grid of pooled query cells."
            )
        return a[query[0], query[1]]

    def summary(self) -> str:
        """A few lines saying what was captured and how much memory it holds."""
        lines = [f"frames: {sorted(self.frames)}", f"capture: {list(self.capture)}"]
        tables = ("self_attention", "reference_share", "cross_attention", "text_image", "text_tokens", "concept")
        for name in (*tables, "base_contribution"):
            table = getattr(self, name)
            if table:
                lines.append(f"{name}: {len(table)} maps over {len(self.layers(name))} layers")
        lines.append(f"noise records: {sorted(self.noise)}")
        lines.append(f"stored: {self._bytes / 2**20:.2f} MiB{' (truncated)' if self.truncated else ''}")
        return "\n".join(lines)


def trace(pipe, capture=None, layers=None, timesteps=None, **kwargs) -> Trace:
    """Record what a cooklab pipeline's mechanisms do; see ``Trace``. Defaults depend on the pipeline."""
    return Trace(pipe, capture=capture, layers=layers, timesteps=timesteps, **kwargs)
