"""``cooklab.trace``: record what a cooklab pipeline's attention and noise do, without changing it.

    with cooklab.trace(pipe, capture=["reference_share", "cross_attention"], layers=("up",)) as tr:
        out = pipe(recipe, seed=0)
    tr.reference_share_map(frame=1)        # [G, G] share of attention each query gives the reference
    tr.cross_attention_map(1, "bowl")       # [G, G] where the word "bowl" is attended to

What can be captured (``capture=``):

* ``"self_attention"``  -- per (frame, layer, step) the head-mean self-attention weights,
  queries average-pooled and keys sum-pooled to a ``attention_map_size`` grid:
  ``[Gh, Gw, S, Gh, Gw]`` with ``S = 2`` (reference keys, own keys) when the layer shares
  K/V and ``S = 1`` otherwise. Row ``[r, c]`` sums to 1 over ``S, Gh, Gw``.
* ``"reference_share"`` -- per (frame, layer, step) ``[G, G]``: for each query the total
  attention mass on the reference frame's keys, ``sum_{k in ref} A+[q, k]`` (Eq. 3). It is
  0 without K/V sharing and 1/2 when a frame shares with an identical copy of itself.
* ``"cross_attention"`` -- per (frame, layer, step) ``[T, G, G]``: attention of each image
  query to each prompt token (the ``T`` tokens before padding, BOS and EOS included).
* ``"noise"`` -- per frame the region-aware noise actually applied: mask on the latent
  grid, per-pixel signal and sigma maps, the three latents of Eq. 5-7, levels, timesteps.

For CookAnything (``capture=`` from ``FLUX_CAPTURE_KINDS``, layers ``"double"``/``"single"``):

* ``"text_image_attention"`` -- per (layer, step) ``[N, G_rows, G_cols]``: for every image
  position of the canvas, the attention mass it gives to step n's real text tokens, in the
  attention actually computed (regional branch where SRC is on, full attention elsewhere).
  With SRC, step n's mass stays inside region n; without it, it leaks over the canvas.
* ``"base_contribution"`` -- per (layer, step) the relative size of the base branch's share
  of the image output, ``|alpha (z_base - z_regional)| / |z|`` averaged over image tokens.
* ``"layout"``, ``"rope_ids"``, ``"cscc"`` -- the region layout, every token's RoPE ids, and
  the CSCC spans and per-token delta norms (``tr.canvas``).

Bounded memory: only the chosen layers (``layers``, names or groups, see ``locate``) and
denoising steps (``timesteps``: positions in the scheduler's schedule, or None for all)
are captured; maps are pooled on the compute device, averaged over heads, kept for the
conditional half of the CFG batch only and stored on the CPU in float32. When the stored
maps exceed ``max_bytes`` the trace stops adding maps, warns once and sets ``truncated``.

Installing and restoring: entering saves the denoiser's processors and attaches the trace
to the pipeline; the pipeline wraps the selected layers with ``TracingAttnProcessor`` for
each call (and restores them in ``finally``); leaving the block restores the saved
processors even if the body raised. A pipeline can be traced by one trace at a time.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from .locate import locate

CAPTURE_KINDS = ("self_attention", "reference_share", "cross_attention", "noise")  # RecipeDiffusion
FLUX_CAPTURE_KINDS = ("text_image_attention", "base_contribution", "layout", "rope_ids", "cscc")  # CookAnything


@dataclass
class CanvasTrace:
    """What a CookAnything call told the trace about its canvas (captures "layout", "rope_ids", "cscc")."""

    texts: list[str]
    layout: object  # RegionLayout: token positions of every group
    regional: bool
    alpha: float
    token_counts: list[int]  # real (non-padding) T5 tokens of each step, EOS included
    img_ids: torch.Tensor | None = None  # [N P, 3] RoPE ids of every image token
    txt_ids: torch.Tensor | None = None  # [T, 3]
    spans: object = None  # cscc.RecipeSpans
    cscc_delta_norm: torch.Tensor | None = None  # [N, L] |lam * C_recipe slice| added to each step token
    images: list | None = None
    canvas: object = None


@dataclass
class FrameTrace:
    """What the pipeline told the trace about one frame."""

    index: int
    prompt: str
    tokens: list[str]  # prompt tokens before padding, BOS/EOS included
    reference: int | None  # frame whose latent this frame started from
    latent_hw: tuple[int, int]
    timesteps: dict[int, float] = field(default_factory=dict)  # step position -> timestep value
    image: object = None  # the decoded PIL image, once the frame is done
    kv_reference: int | None = None  # frame whose keys/values this frame attended to


def _grid(tokens: int, latent_hw: tuple[int, int]) -> tuple[int, int]:
    """(rows, cols) of a layer's token grid from its token count and the latent aspect ratio."""
    h, w = latent_hw
    f = math.sqrt(h * w / tokens)
    rows, cols = round(h / f), round(w / f)
    if rows * cols != tokens:
        raise ValueError(f"cannot lay {tokens} tokens on a grid of aspect {h}:{w}")
    return rows, cols


def _pool(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Average-pool the last two axes of x to ``size`` (no-op when already that small)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    lead = x.shape[:-2]
    return F.adaptive_avg_pool2d(x.reshape(-1, 1, *x.shape[-2:]), size).reshape(*lead, *size)


def _upsample(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Nearest-neighbour upsample of the last two axes to ``size`` (coarse layers onto the finest grid)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    lead = x.shape[:-2]
    return F.interpolate(x.reshape(-1, 1, *x.shape[-2:]), size=size, mode="nearest").reshape(*lead, *size)


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
    ):
        if not hasattr(pipe, "_attach_trace"):
            raise ConfigError(
                f"cooklab.trace needs a cooklab pipeline, got {type(pipe).__name__}; "
                "wrap a diffusers pipeline first, e.g. cooklab.RecipeDiffusion.from_pipe(pipe) or cooklab.CookAnything.from_pipe(pipe)."
            )
        self.flux = hasattr(getattr(pipe, "denoiser", None), "single_transformer_blocks")
        kinds = FLUX_CAPTURE_KINDS if self.flux else CAPTURE_KINDS
        capture = kinds if capture is None else ((capture,) if isinstance(capture, str) else tuple(capture))
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
        self.frames: dict[int, FrameTrace] = {}
        self.self_attention: dict[tuple[int, str, int], torch.Tensor] = {}
        self.reference_share: dict[tuple[int, str, int], torch.Tensor] = {}
        self.cross_attention: dict[tuple[int, str, int], torch.Tensor] = {}
        self.noise: dict[int, object] = {}
        self.text_image: dict[tuple[int, str, int], torch.Tensor] = {}  # CookAnything, frame 0 = the canvas
        self.base_contribution: dict[tuple[int, str, int], float] = {}
        self.canvas: CanvasTrace | None = None
        self.truncated = False
        self._bytes = 0
        self._saved = None
        self._frame = 0
        self._step = 0

    # ---- context manager -------------------------------------------------------------
    def __enter__(self) -> Trace:
        self._saved = dict(self.pipe.denoiser.attn_processors)
        self.pipe._attach_trace(self)
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.pipe._detach_trace(self)
        finally:
            self.pipe.denoiser.set_attn_processor(dict(self._saved))

    # ---- called by pipelines -----------------------------------------------------------
    def layers_to_wrap(self) -> list[str]:
        """Processor keys the pipeline must wrap with ``TracingAttnProcessor``."""
        watched = {"text_image_attention", "base_contribution"} if self.flux else {"self_attention", "reference_share"}
        names = list(self.self_layers) if watched & set(self.capture) else []
        return names + [n for n in self.cross_layers if n not in names]

    def begin_frame(self, frame: FrameTrace) -> None:
        self.frames[frame.index] = frame
        self._frame = frame.index

    def set_step(self, step: int, timestep: float) -> None:
        self._step = step
        self.frames[self._frame].timesteps[step] = float(timestep)

    def end_frame(self, image) -> None:
        self.frames[self._frame].image = image

    def record_noise(self, record) -> None:
        if "noise" in self.capture:
            self.noise[self._frame] = record

    def begin_canvas(self, *, layout, texts, img_ids, txt_ids, spans, cscc_delta, regional, alpha, token_counts) -> None:
        """Called by CookAnything before denoising; the canvas is frame 0 of the trace."""
        self.begin_frame(FrameTrace(0, " | ".join(texts), [], None, (layout.n_regions * layout.rows, layout.cols)))
        self.canvas = CanvasTrace(list(texts), layout if "layout" in self.capture else None, regional, alpha, list(token_counts))
        if "rope_ids" in self.capture:
            self.canvas.img_ids, self.canvas.txt_ids = img_ids.detach().cpu(), txt_ids.detach().cpu()
        if "cscc" in self.capture:
            self.canvas.spans = spans
            if cscc_delta is not None:
                self.canvas.cscc_delta_norm = cscc_delta.detach().float().norm(dim=-1).cpu()  # [N, L]

    def end_canvas(self, images, canvas) -> None:
        self.canvas.images, self.canvas.canvas = images, canvas
        self.frames[0].image = canvas

    def observe_regional(self, layer, attn, query, key, state, result) -> None:
        """Text->image attention per step and base-branch size for one Flux attention call.

        query, key: [B, S, H, D] joint sequence after RoPE; state: the call's RegionalState;
        result: RegionalOutput when SRC ran in this layer and step, else None (full attention).
        """
        lay = state.layout
        key_id = (0, layer, self._step)
        if "base_contribution" in self.capture and result is not None and result.image_base is not None:
            diff = (state.alpha * (result.image_base - result.image_regional)).float().norm(dim=-1)  # [B, N P, H]
            out = result.out[:, lay.text_len :].float().norm(dim=-1).clamp_min(1e-12)
            self.base_contribution[key_id] = float((diff / out).mean())
        if "text_image_attention" not in self.capture:
            return
        n, L, P = lay.n_regions, lay.step_text_len, lay.region_tokens
        d = query.shape[-1]
        q = query[0, lay.text_len :].transpose(0, 1).float()  # [H, N P, D] image queries
        if result is None:  # full attention over the whole joint sequence
            k = key[0].transpose(0, 1).float()  # [H, S, D]
            first = lay.base_text_len
        else:  # the regional branch: keys [C_1..C_N, I_1..I_N], masked per region
            k = key[0, lay.base_text_len :].transpose(0, 1).float()  # [H, N L + N P, D]
            first = 0
            groups, is_image = lay.group_ids().to(q.device), lay.is_image().to(q.device)  # [N L + N P]
            query_groups = groups[n * L :]  # [N P] group of every image query
        real = torch.zeros(n, L, dtype=torch.bool, device=q.device)  # real (non-padding) tokens of each step
        for i, c in enumerate(self.canvas.token_counts):
            real[i, : min(c, L)] = True
        chunk = max(1, self.query_chunk_elements // (q.shape[0] * k.shape[1]))
        mass = []
        for s in range(0, n * P, chunk):
            scores = q[:, s : s + chunk] @ k.transpose(1, 2) / math.sqrt(d)  # [H, c, K]
            if result is not None:  # the rows of the regional mask for these queries only, never the dense mask
                allowed = query_groups[s : s + chunk, None] == groups[None, :]  # [c, K]
                if state.image_attention == "global":
                    allowed = allowed | is_image[None, :]
                scores = scores.masked_fill(~allowed, float("-inf"))
            a = torch.softmax(scores, dim=-1).mean(0)  # [c, K]
            text = a[:, first : first + n * L].reshape(-1, n, L)  # [c, N, L]
            mass.append((text * real).sum(-1))  # [c, N]
        m = torch.cat(mass).T.reshape(n, n, lay.rows, lay.cols)  # [N steps, N regions, rows, cols]
        size = (min(lay.rows, self.map_size), min(lay.cols, self.map_size))
        m = _pool(m, size).reshape(n, n * size[0], size[1])  # each region pooled on its own, stacked again
        self._store(self.text_image, key_id, m)

    def text_image_map(self, step: int, layers=None, steps=None) -> torch.Tensor:
        """[G_rows, G_cols] mean attention mass of the canvas on step ``step``'s text (0-based)."""
        return self._mean(self.text_image, 0, layers, steps)[step]

    def wants(self, layer: str, is_cross: bool) -> bool:
        if self.truncated or (self.timesteps is not None and self._step not in self.timesteps):
            return False
        if is_cross:
            return "cross_attention" in self.capture and layer in self.cross_layers
        watched = {"text_image_attention", "base_contribution"} if self.flux else {"self_attention", "reference_share"}
        return bool(watched & set(self.capture)) and layer in self.self_layers

    def observe_attention(self, layer, attn, query, key, n_ref, is_cross) -> None:
        """Compute head-mean attention weights of the conditional sample and store pooled maps.

        query [B, P, C]; key [B, n_ref + P, C] (self) or [B, T, C] (cross).
        """
        frame = self.frames[self._frame]
        heads = attn.heads
        d = query.shape[-1] // heads
        q = query[-1].reshape(-1, heads, d).transpose(0, 1)  # [heads, P, d]  conditional half
        k = key[-1].reshape(-1, heads, key.shape[-1] // heads).transpose(0, 1)  # [heads, K, d]
        if attn.norm_q is not None:
            q = attn.norm_q(q)
        if attn.norm_k is not None:
            k = attn.norm_k(k)
        q, k = q.float(), k.float()
        n_q, n_k = q.shape[1], k.shape[1]
        rows, cols = _grid(n_q, frame.latent_hw)
        scale = 1.0 / math.sqrt(d)
        chunk = max(cols, (self.query_chunk_elements // (heads * n_k)) // cols * cols)
        key_id = (self._frame, layer, self._step)

        if is_cross:
            n_tok = min(len(frame.tokens), n_k)
            out = []
            for s in range(0, n_q, chunk):
                a = torch.softmax(q[:, s : s + chunk] @ k.transpose(1, 2) * scale, dim=-1).mean(0)  # [c, T]
                out.append(a[:, :n_tok])
            a = torch.cat(out).T.reshape(n_tok, rows, cols)  # [T, rows, cols]
            self._store(self.cross_attention, key_id, _pool(a, self._size(rows, cols, self.map_size)))
            return

        parts = 2 if n_ref else 1
        g = self._size(rows, cols, self.attention_map_size)
        share, pooled = [], []
        for s in range(0, n_q, chunk):
            a = torch.softmax(q[:, s : s + chunk] @ k.transpose(1, 2) * scale, dim=-1).mean(0)  # [c, n_ref + P]
            share.append(a[:, :n_ref].sum(-1))  # [c]
            if "self_attention" in self.capture:
                a = a.reshape(-1, parts, rows, cols)  # keys laid on (ref | own) grids
                pooled.append(_pool(a, g) * (rows * cols / (g[0] * g[1])))  # key mass kept
        if "reference_share" in self.capture:
            m = torch.cat(share).reshape(rows, cols)
            self._store(self.reference_share, key_id, _pool(m, self._size(rows, cols, self.map_size)))
        if "self_attention" in self.capture:
            a = torch.cat(pooled).reshape(rows, cols, parts * g[0] * g[1]).permute(2, 0, 1)  # [S*g*g, rows, cols]
            a = _pool(a, g).permute(1, 2, 0).reshape(g[0], g[1], parts, g[0], g[1])  # [Gh, Gw, S, Gh, Gw]
            self._store(self.self_attention, key_id, a)

    @staticmethod
    def _size(rows: int, cols: int, limit: int) -> tuple[int, int]:
        return min(rows, limit), min(cols, limit)

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

    def _mean(self, table: dict, frame: int, layers=None, steps=None) -> torch.Tensor:
        layers = None if layers is None else set(locate(self.pipe, *((layers,) if isinstance(layers, str) else layers)))
        vals = [v for (f, name, s), v in table.items() if f == frame and (layers is None or name in layers) and (steps is None or s in steps)]
        if not vals:
            raise KeyError(f"nothing captured for frame {frame} with layers={layers} steps={steps}; check capture=, layers=, timesteps=.")
        size = (max(v.shape[-2] for v in vals), max(v.shape[-1] for v in vals))  # the finest grid captured
        return torch.stack([_upsample(v, size) for v in vals]).mean(0)

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
        """[G, G] mean cross-attention of the image to one prompt token."""
        return self._mean(self.cross_attention, frame, layers, steps)[self.token_index(frame, token)]

    def self_attention_map(self, frame: int, layer: str, step: int, query: tuple[int, int]) -> torch.Tensor:
        """[S, G, G] where pooled query cell ``query=(row, col)`` looks (S: reference, own)."""
        a = self.self_attention[(frame, layer, step)]
        if not (0 <= query[0] < a.shape[0] and 0 <= query[1] < a.shape[1]):
            raise IndexError(f"query {tuple(query)} is outside this layer's {a.shape[0]}x{a.shape[1]} grid of pooled query cells.")
        return a[query[0], query[1]]

    def summary(self) -> str:
        """A few lines saying what was captured and how much memory it holds."""
        lines = [f"frames: {sorted(self.frames)}", f"capture: {list(self.capture)}"]
        for name in ("self_attention", "reference_share", "cross_attention", "text_image", "base_contribution"):
            table = getattr(self, name)
            if table:
                lines.append(f"{name}: {len(table)} maps over {len(self.layers(name))} layers")
        lines.append(f"noise records: {sorted(self.noise)}")
        lines.append(f"stored: {self._bytes / 2**20:.2f} MiB{' (truncated)' if self.truncated else ''}")
        return "\n".join(lines)


def trace(pipe, capture=None, layers=None, timesteps=None, **kwargs) -> Trace:
    """Record what a cooklab pipeline's mechanisms do; see ``Trace``. Defaults depend on the pipeline."""
    return Trace(pipe, capture=capture, layers=layers, timesteps=timesteps, **kwargs)
