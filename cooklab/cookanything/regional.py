"""Step-wise Regional Control (CookAnything, SRC): one canvas, N regions, N texts, one pass.

The joint Flux sequence of a CookAnything call is laid out region-major:

    [ C_base (L_b) | C_1 (L) | ... | C_N (L) | I_1 (P) | ... | I_N (P) ]
      whole-description   step texts              region images (P = rows x cols tokens each)

Two branches share every attention layer that has the regional branch switched on:

* **regional branch** over ``[C_1..C_N, I_1..I_N]`` with the paper's 2N x 2N group mask

      M_ij = 1  if  i = j  or  |i - j| = N        (groups 1..N: texts, N+1..2N: images)

  so step n's text and region n's image tokens attend only to each other
  (``image_attention="global"`` also lets image tokens see every image token, as
  Regional-Prompting-FLUX does);
* **base branch**: ``[C_base, I_1..I_N]`` with full attention (the whole-description
  prompt keeps the canvas globally coherent).

Image outputs are blended per layer:   z = alpha * z_base + (1 - alpha) * z_regional   (Eq. 9)

Fast paths. The mask is block-diagonal once tokens are grouped, so it is never needed as a
dense ``(text + image)^2`` tensor on the fast paths:

* ``"batched"`` -- the N groups are gathered into a batch of N sequences of ``L + P``
  tokens and run through one unmasked SDPA call (``image_attention="region"`` only);
* ``"flex"`` -- FlexAttention with a ``BlockMask`` built from the group ids, cached per
  layout and compiled once (CUDA; eager on CPU, slow, used in tests);
* ``"masked"`` -- the dense boolean mask through SDPA: the reference the others are
  tested against, and the CPU path for ``image_attention="global"``.

``references`` (cross-region K/V sharing, ``cross_region_kv.py``) lets region n's image queries
also see the image keys of its reference region; it runs on the ``flex`` and ``masked`` paths.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers.models.attention_dispatch import dispatch_attention_fn
from diffusers.models.embeddings import apply_rotary_emb

from ..errors import ConfigError
from .cross_region_kv import shared_image_pairs

IMAGE_ATTENTION = ("region", "global")
BACKENDS = ("auto", "batched", "flex", "masked")


@dataclass(frozen=True)
class RegionLayout:
    """Where every token of the joint sequence sits (fixed for one call, rebuilt by every call)."""

    n_regions: int  # N
    rows: int  # packed token rows of ONE region
    cols: int  # packed token columns of ONE region
    step_text_len: int  # L: tokens of each step's own encoding (all padded to L)
    base_text_len: int  # L_b: tokens of the whole-description prompt; 0 = no base branch

    @property
    def region_tokens(self) -> int:  # P
        return self.rows * self.cols

    @property
    def text_len(self) -> int:  # L_b + N L
        return self.base_text_len + self.n_regions * self.step_text_len

    @property
    def image_len(self) -> int:  # N P
        return self.n_regions * self.region_tokens

    @property
    def total(self) -> int:
        return self.text_len + self.image_len

    def group_ids(self) -> torch.Tensor:
        """[N L + N P] group of every regional-branch token: n for C_n and for I_n."""
        n = torch.arange(self.n_regions)
        return torch.cat([n.repeat_interleave(self.step_text_len), n.repeat_interleave(self.region_tokens)])

    def is_image(self) -> torch.Tensor:
        """[N L + N P] True for image tokens of the regional branch."""
        text = self.n_regions * self.step_text_len
        return torch.arange(text + self.image_len) >= text

    def token_of(self, kind: str, n: int) -> slice:
        """Slice of the joint sequence holding ``kind`` ("base", "text", "image") of group n."""
        if kind == "base":
            return slice(0, self.base_text_len)
        if kind == "text":
            start = self.base_text_len + n * self.step_text_len
            return slice(start, start + self.step_text_len)
        start = self.text_len + n * self.region_tokens
        return slice(start, start + self.region_tokens)


def group_mask(n_regions: int) -> torch.Tensor:
    """The paper's 2N x 2N mask: M_ij = 1 iff i = j or |i - j| = N (texts 0..N-1, images N..2N-1)."""
    i = torch.arange(2 * n_regions)
    d = (i[:, None] - i[None, :]).abs()
    return (d == 0) | (d == n_regions)


def regional_token_mask(
    layout: RegionLayout, image_attention: str = "region", device=None, references: tuple[int, ...] | None = None
) -> torch.Tensor:
    """Dense [N L + N P, N L + N P] boolean mask of the regional branch (True = may attend).

    This is ``group_mask`` expanded to tokens; with ``"global"`` image queries also see
    every image key; with ``references`` region n's image queries also see region ref(n)'s
    image keys (cross-region K/V sharing). Only the ``"masked"`` backend and the notebooks materialise it.
    """
    g, img = layout.group_ids().to(device), layout.is_image().to(device)
    mask = g[:, None] == g[None, :]
    if image_attention == "global":
        mask = mask | (img[:, None] & img[None, :])
    if references is not None:
        mask = mask | shared_image_pairs(g, img, references)
    return mask


@functools.lru_cache(maxsize=4)
def _dense_mask(
    layout: RegionLayout, image_attention: str, device: str, references: tuple[int, ...] | None
) -> torch.Tensor:
    """``regional_token_mask`` built on the attention's device, cached per layout (the ``masked`` path)."""
    return regional_token_mask(layout, image_attention, device, references)


@functools.lru_cache(maxsize=32)
def _block_mask(layout: RegionLayout, image_attention: str, device: str, references: tuple[int, ...] | None):
    """FlexAttention BlockMask of the regional branch, cached per layout (no dense mask is built)."""
    from torch.nn.attention.flex_attention import create_block_mask

    g, img = layout.group_ids().to(device), layout.is_image().to(device)
    ref = g if references is None else torch.as_tensor(references, device=device)[g]  # [T] ref(group) of every token

    def mask_mod(b, h, q, k):
        same = g[q] == g[k]
        if image_attention == "global":
            return same | (img[q] & img[k])
        return same | (img[q] & img[k] & (g[k] == ref[q]))  # references=None: ref(n) = n, SRC alone

    n = g.numel()
    return create_block_mask(mask_mod, None, None, n, n, device=device)


@functools.cache
def _compiled_flex():
    from torch.nn.attention.flex_attention import flex_attention

    return torch.compile(flex_attention, dynamic=True)  # one compile for every layout size


def _sdpa(q, k, v, mask=None):
    """q, k, v [B, S, H, D] -> [B, S, H, D] with torch SDPA."""
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=mask)
    return out.transpose(1, 2)


def resolve_backend(backend: str, image_attention: str, device: torch.device | None, shared: bool = False) -> str:
    """The attention path actually used for a call (``shared``: cross-region K/V sharing is on).

    ``device=None`` checks the choice without a device: ``"auto"`` is then returned as it is.
    """
    if backend not in BACKENDS:
        raise ConfigError(f"attention_backend={backend!r}: choose one of {list(BACKENDS)}.")
    if image_attention not in IMAGE_ATTENTION:
        raise ConfigError(f"image_attention={image_attention!r}: choose 'region' (the paper) or 'global'.")
    if backend == "auto":
        if device is None:
            return backend
        if device.type == "cuda":
            return "flex"
        return "batched" if image_attention == "region" and not shared else "masked"
    if backend == "batched" and (image_attention == "global" or shared):
        raise ConfigError(
            "attention_backend='batched' runs SRC with image_attention='region' and no cross-region K/V "
            "sharing only; use 'masked' or 'flex'."
        )
    return backend


def regional_branch(
    q,
    k,
    v,
    layout: RegionLayout,
    image_attention: str = "region",
    backend: str = "batched",
    references: tuple[int, ...] | None = None,
) -> torch.Tensor:
    """Attention of the regional branch alone (the 2N x 2N group mask). q/k/v [B, N L + N P, H, D] -> same shape.

    references: ref(n) per region for cross-region K/V sharing (``cross_region_kv.py``), or None.
    """
    b, _, h, d = q.shape
    n, L, P = layout.n_regions, layout.step_text_len, layout.region_tokens
    if backend == "batched":
        if references is not None:
            raise ConfigError("cross-region K/V sharing needs attention_backend 'masked' or 'flex'.")

        def groups(x):  # [B, N L + N P, H, D] -> [B N, L + P, H, D]: (C_n, I_n) side by side
            return torch.cat(
                [x[:, : n * L].reshape(b, n, L, h, d), x[:, n * L :].reshape(b, n, P, h, d)], dim=2
            ).reshape(b * n, L + P, h, d)

        out = _sdpa(groups(q), groups(k), groups(v)).reshape(b, n, L + P, h, d)
        return torch.cat([out[:, :, :L].reshape(b, n * L, h, d), out[:, :, L:].reshape(b, n * P, h, d)], dim=1)
    if backend == "flex":
        flex = _compiled_flex() if q.device.type == "cuda" else _eager_flex()
        mask = _block_mask(layout, image_attention, str(q.device), references)
        return flex(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), block_mask=mask).transpose(1, 2)
    return _sdpa(q, k, v, _dense_mask(layout, image_attention, str(q.device), references))


def _eager_flex():
    from torch.nn.attention.flex_attention import flex_attention

    return flex_attention


@dataclass
class RegionalOutput:
    """What one regional attention call produced (the processor keeps ``out``; an observer may read the branches)."""

    out: torch.Tensor  # [B, S, H, D]
    image_base: torch.Tensor | None  # [B, N P, H, D] base-branch image output (None without base)
    image_regional: torch.Tensor  # [B, N P, H, D]


def regional_attention(
    q,
    k,
    v,
    layout: RegionLayout,
    alpha: float = 0.1,
    image_attention: str = "region",
    backend: str = "batched",
    references: tuple[int, ...] | None = None,
) -> RegionalOutput:
    """SRC attention over the joint sequence. q, k, v: [B, S, H, D] with S = layout.total, RoPE applied.

    Returns the joint output [B, S, H, D]: base text from the base branch, step texts from the
    regional branch, images blended ``alpha * base + (1 - alpha) * regional`` (Eq. 9).
    """
    if q.shape[1] != layout.total:
        raise ValueError(f"sequence of {q.shape[1]} tokens does not match the region layout ({layout.total} tokens)")
    lb, t = layout.base_text_len, layout.text_len
    reg = regional_branch(
        q[:, lb:], k[:, lb:], v[:, lb:], layout, image_attention, backend, references
    )  # [B, N L + N P, H, D]
    reg_text, reg_img = reg[:, : t - lb], reg[:, t - lb :]
    if lb == 0:
        return RegionalOutput(reg, None, reg_img)
    cat = lambda x: torch.cat([x[:, :lb], x[:, t:]], dim=1)  # noqa: E731  [C_base, I_1..I_N]
    base = _sdpa(cat(q), cat(k), cat(v))  # full attention
    base_text, base_img = base[:, :lb], base[:, lb:]
    image = alpha * base_img + (1 - alpha) * reg_img  # Eq. 9
    return RegionalOutput(torch.cat([base_text, reg_text, image], dim=1), base_img, reg_img)


@dataclass
class RegionalState:
    """Per-call settings read by every regional processor of one generation."""

    layout: RegionLayout
    alpha: float = 0.1
    image_attention: str = "region"
    backend: str = "batched"
    layers: frozenset = frozenset()  # processor keys where the regional branch runs
    steps: frozenset | None = None  # denoising step indices where it runs (None: all)
    step: int = 0  # current denoising step
    observer: object = None  # what the processors' hook point reports to (an attached cooklab.trace), or None
    references: tuple[int, ...] | None = None  # ref(n) per region: cross-region K/V sharing (None: off)

    def active(self, name: str) -> bool:
        return name in self.layers and (self.steps is None or self.step in self.steps)


class RegionalFluxAttnProcessor:
    """``FluxAttnProcessor`` with Step-wise Regional Control where the call switches it on.

    Outside the selected layers/steps it computes exactly the stock processor (full attention
    over the joint sequence). Double blocks see text and image streams separately, single
    blocks the concatenated sequence (text first); both are handled. Its hook point hands
    Q, K and the branch outputs to ``state.observer`` (see ``cooklab.instrument.observer``).
    """

    _attention_backend = None
    _parallel_config = None

    def __init__(self, name: str, state: RegionalState):
        self.name = name
        self.state = state

    # Copied from diffusers.models.transformers.transformer_flux.FluxAttnProcessor.__call__ (diffusers 0.42.1), with
    # these changes:
    # - Q, K, V of each stream unflattened and normed in one expression, and the output projections
    #   likewise (same operations, same order);
    # - where the call's state selects this layer and step (and no attention mask is given), SRC's
    #   regional_attention (Eq. 9) replaces dispatch_attention_fn;
    # - the hook point after the attention (cooklab.instrument.observer; it only reads Q, K, V, the branch outputs
    #   and the attention output);
    # - tensor shapes in comments.
    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, image_rotary_emb=None):
        """Step-wise Regional Control in one Flux attention layer: the regional branch blended with the base by alpha.

        Args:
            attn: the diffusers ``FluxAttention`` module (double or single block).
            hidden_states: ``[B, S_img, C]`` image tokens (double block) or ``[B, S, C]`` text + image (single block).
            encoder_hidden_states: ``[B, S_txt, C]`` text tokens in a double block, None in a single block.
            attention_mask: unused (the regional mask comes from the call's ``RegionalState``).
            image_rotary_emb: the (cos, sin) of the call's position ids (Flexible RoPE or global ids).

        Returns the image output (and the text output in a double block), as ``FluxAttnProcessor`` does.
        """
        from diffusers.models.transformers.transformer_flux import _get_qkv_projections

        query, key, value, enc_q, enc_k, enc_v = _get_qkv_projections(attn, hidden_states, encoder_hidden_states)
        query = attn.norm_q(query.unflatten(-1, (-1, attn.head_dim)))  # [B, S_img or S, H, D]
        key = attn.norm_k(key.unflatten(-1, (-1, attn.head_dim)))
        value = value.unflatten(-1, (-1, attn.head_dim))
        if attn.added_kv_proj_dim is not None:  # double block: prepend the text stream
            query = torch.cat([attn.norm_added_q(enc_q.unflatten(-1, (-1, attn.head_dim))), query], dim=1)
            key = torch.cat([attn.norm_added_k(enc_k.unflatten(-1, (-1, attn.head_dim))), key], dim=1)
            value = torch.cat([enc_v.unflatten(-1, (-1, attn.head_dim)), value], dim=1)
        if image_rotary_emb is not None:
            query = apply_rotary_emb(query, image_rotary_emb, sequence_dim=1)
            key = apply_rotary_emb(key, image_rotary_emb, sequence_dim=1)

        state = self.state
        if state.active(self.name) and attention_mask is None:
            result = regional_attention(
                query, key, value, state.layout, state.alpha, state.image_attention, state.backend, state.references
            )
            hidden = result.out
        else:
            result = None
            hidden = dispatch_attention_fn(
                query,
                key,
                value,
                attn_mask=attention_mask,
                backend=self._attention_backend,
                parallel_config=self._parallel_config,
            )
        observer = state.observer
        if observer is not None and observer.wants(
            self.name, False
        ):  # hook point: the observer reads Q, K, V, both branches and the attention output
            observer.observe_regional(self.name, attn, query, key, state, result, value=value, output=hidden)
        hidden = hidden.flatten(2, 3).to(query.dtype)

        if encoder_hidden_states is not None:
            text_len = encoder_hidden_states.shape[1]
            encoder_hidden_states, hidden = hidden.split_with_sizes([text_len, hidden.shape[1] - text_len], dim=1)
            hidden = attn.to_out[1](attn.to_out[0](hidden.contiguous()))
            encoder_hidden_states = attn.to_add_out(encoder_hidden_states.contiguous())
            return hidden, encoder_hidden_states
        return hidden
