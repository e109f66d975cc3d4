"""Step-wise Regional Control on a Stable Diffusion U-Net: CookAnything's SRC carried to the other backbone.

A canvas of N regions stacked top to bottom (region n = latent rows ``n h .. (n + 1) h``) is
denoised once. In the U-Net's token order (row-major at every resolution) region n is one
contiguous block of ``P_l = h_l w_l`` tokens, so the layout is the Flux one without position ids:

    queries   [ I_1 (P_l) | ... | I_N (P_l) ]                         every attention layer
    text      [ C_base (L) | C_1 (L) | ... | C_N (L) ]                 cross-attention keys (CLIP, L = 77)

A U-Net has two attention kinds where Flux has one joint attention, so Eq. 9 is applied to each:

* **cross-attention** (regional prompting): region n's queries attend to step n's text only,
  the base branch to the whole description;
      z = alpha * Attn(Q, C_base) + (1 - alpha) * Attn(Q_n, C_n)
* **self-attention** (``image_attention="region"``, the analogue of the paper's image-image
  entries of its 2N x 2N mask): the regional branch keeps region n inside itself, the base
  branch sees the whole canvas;
      z = alpha * Attn(Q, K, V) + (1 - alpha) * Attn(Q_n, K_n, V_n)
  ``image_attention="global"`` leaves self-attention full (classic regional prompting).

``alpha = 0`` with one region is stock attention (tested). Flexible RoPE has no counterpart: a
U-Net has no position ids (its convolutions see the canvas as one image). CSCC needs nothing new
(``cscc.py`` handles CLIP's start token).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange

from ..errors import ConfigError
from .regional import IMAGE_ATTENTION


@dataclass(frozen=True)
class UNetRegionLayout:
    """Regions of a U-Net canvas and the slots of its text stream (fixed for one call)."""

    n_regions: int  # N
    step_text_len: int  # L: CLIP tokens of each step slot (tokenizer.model_max_length)
    base_text_len: int  # L_b: tokens of the whole-description slot (= L)

    @property
    def text_len(self) -> int:  # L_b + N L
        return self.base_text_len + self.n_regions * self.step_text_len


@dataclass
class RegionalUNetState:
    """Per-call settings read by every regional U-Net processor."""

    layout: UNetRegionLayout
    alpha: float = 0.1
    image_attention: str = "region"
    layers: frozenset = frozenset()  # processor keys where SRC runs

    def __post_init__(self):
        if self.image_attention not in IMAGE_ATTENTION:
            raise ConfigError(f"image_attention={self.image_attention!r}: choose 'region' or 'global'.")


def _per_region(x: torch.Tensor, n: int) -> torch.Tensor:
    """[B, H, N P, D] -> [B N, H, P, D]: each region its own batch element."""
    return rearrange(x, "b h (n p) d -> (b n) h p d", n=n)


def regional_unet_attention(
    q, k, v, layout: UNetRegionLayout, is_cross: bool, alpha: float, image_attention: str = "region"
) -> torch.Tensor:
    """SRC in one U-Net attention layer. q [B, H, N P, D]; k, v [B, H, L_b + N L, D] (cross) or [B, H, N P, D] (self).

    Returns [B, H, N P, D]: ``alpha * base + (1 - alpha) * regional`` (Eq. 9 per attention kind).
    """
    n, L, lb = layout.n_regions, layout.step_text_len, layout.base_text_len
    if q.shape[2] % n:
        raise ConfigError(
            f"{q.shape[2]} image tokens do not split into {n} regions: use a region height whose latent "
            "is divisible by the U-Net's total downsampling."
        )
    b = q.shape[0]
    if not is_cross:
        full = F.scaled_dot_product_attention(q, k, v)  # base branch: the whole canvas
        if image_attention == "global":
            return full
        reg = F.scaled_dot_product_attention(_per_region(q, n), _per_region(k, n), _per_region(v, n))  # [B N, H, P, D]
        return alpha * full + (1 - alpha) * rearrange(reg, "(b n) h p d -> b h (n p) d", b=b)
    if k.shape[2] != layout.text_len:
        raise ValueError(f"{k.shape[2]} text tokens do not match the region layout ({layout.text_len})")
    step_k, step_v = (
        rearrange(x[:, :, lb:], "b h (n l) d -> (b n) h l d", n=n, l=L) for x in (k, v)
    )  # C_n of region n
    reg = rearrange(
        F.scaled_dot_product_attention(_per_region(q, n), step_k, step_v), "(b n) h p d -> b h (n p) d", b=b
    )
    if lb == 0:
        return reg
    base = F.scaled_dot_product_attention(q, k[:, :, :lb], v[:, :, :lb])  # the whole description
    return alpha * base + (1 - alpha) * reg


class RegionalUNetAttnProcessor:
    """``AttnProcessor2_0`` with SRC where the call switches it on (else exactly the stock computation)."""

    def __init__(self, name: str, state: RegionalUNetState, stock):
        self.name = name
        self.state = state
        self.stock = stock  # the processor this one replaced: used where SRC is off

    # The steps of diffusers.models.attention_processor.AttnProcessor2_0.__call__ (diffusers 0.42.1),
    # with regional_unet_attention in place of the SDPA call; tensor shapes in comments.
    def __call__(
        self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, *args, **kwargs
    ):
        """Step-wise Regional Control (Eq. 9) in one U-Net attention layer; the stock processor elsewhere.

        Args:
            attn: the diffusers ``Attention`` module (self- or cross-attention).
            hidden_states: ``[B, S, C]`` (or ``[B, C, H, W]``) canvas tokens.
            encoder_hidden_states: ``[B, T, D]`` text tokens for cross-attention, None for self-attention.
            attention_mask: a layer given one runs the stock processor.
            temb: the time embedding for a spatial norm, as in ``AttnProcessor2_0``.

        Returns the layer's output, the shape of ``hidden_states``.
        """
        state = self.state
        if self.name not in state.layers or attention_mask is not None:
            return self.stock(attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs)
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch, channel, height * width).transpose(1, 2)  # [B, S, C]
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        is_cross = encoder_hidden_states is not None
        context = encoder_hidden_states if is_cross else hidden_states
        if is_cross and attn.norm_cross:
            context = attn.norm_encoder_hidden_states(context)
        heads = attn.heads
        q, k, v = (
            rearrange(x, "b s (h d) -> b h s d", h=heads)
            for x in (attn.to_q(hidden_states), attn.to_k(context), attn.to_v(context))
        )
        if attn.norm_q is not None:
            q = attn.norm_q(q)
        if attn.norm_k is not None:
            k = attn.norm_k(k)
        out = regional_unet_attention(
            q, k, v, state.layout, is_cross, state.alpha, state.image_attention
        )  # [B, H, S, D]
        hidden_states = rearrange(out, "b h s d -> b s (h d)").to(q.dtype)
        hidden_states = attn.to_out[1](attn.to_out[0](hidden_states))  # linear proj, dropout
        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(batch, channel, height, width)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor
