"""Cross-frame key/value sharing in self-attention (Recipe Diffusion, Eq. 1-4).

While frame ``i`` is denoised, each selected self-attention layer attends over its own
keys/values *and* those the reference frame ``j < i`` produced in the same layer at the
same denoising step:

    K+ = [K_ref (+) K_i]                   (1)   concatenation along the token axis
    V+ = [V_ref (+) V_i]                   (2)
    A+ = softmax(Q_i (K+)^T / sqrt(d_k))   (3)   A+ in [0, 1]^{P x (P' + P)}
    H_i = A+ V+                            (4)

Sharing a frame's K/V with itself changes nothing: with K+ = [K; K] every score appears
twice, the softmax halves each weight and the output is the same. That is the exactness
test of this processor.

How it is wired (no diffusers file is patched):

* ``KVSharingState`` is a per-call object owned by the pipeline. It knows the current
  frame and denoising step, which frames must be *recorded* (some later frame refers to
  them) and which frame the current one *reads*. It stores K/V per (frame, layer, step).
* ``KVSharingAttnProcessor`` is installed on the chosen ``...attn1`` layers with
  ``unet.set_attn_processor`` for the duration of one call and removed afterwards. It is
  the stock ``AttnProcessor2_0`` computation plus Eq. 1-2 (marked "Copied from" for a diff
  against diffusers), with a hook point where ``cooklab.trace`` reads ``Q`` and ``K+``.
* Classifier-free guidance: the U-Net batch is ``[uncond, cond]`` for the reference and
  the current frame alike, so concatenating along the token axis per batch element shares
  unconditional with unconditional and conditional with conditional.

Memory of the cache, per recorded frame:
``2 (K and V) x layers x steps x batch (2 with CFG) x tokens x channels x bytes``.
SD 2.1 at 768x768 (mid + up: 10 layers, up to 9216 tokens x 1280 channels) is about
125 MB per denoising step in fp16, ~6 GB for 50 steps. ``cache_device="cpu"`` keeps it in
host memory (copied back per layer when read); a frame's entries are freed as soon as no
later frame refers to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F


@dataclass
class KVSharingState:
    """Per-call state shared by all K/V processors of one generation."""

    record_frames: set[int] = field(default_factory=set)  # frames whose K/V a later frame reads
    cache_device: torch.device | str | None = None  # None: keep on the compute device
    frame: int = 0  # frame being generated
    step: int = 0  # position in scheduler.timesteps of the current U-Net call
    reference: int | None = None  # frame whose K/V the current frame reads (None: no sharing)
    store: dict[tuple[int, str, int], tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    fallback_steps: dict[int, int] = field(default_factory=dict)  # frame -> steps read from a neighbouring step

    def record(self, layer: str, key: torch.Tensor, value: torch.Tensor) -> None:
        """Keep this frame's K/V of one layer at the current step if a later frame needs it."""
        if self.frame in self.record_frames:
            self.store[(self.frame, layer, self.step)] = (
                _keep(key, self.cache_device),
                _keep(value, self.cache_device),
            )

    def lookup(self, layer: str, device: torch.device) -> tuple[torch.Tensor, torch.Tensor] | None:
        """K_ref, V_ref ([B, P', C]) of the reference frame, same layer, same step.

        If the reference never ran this step (it started denoising later than the current
        frame), the nearest step it did run is used and counted in ``fallback_steps``.
        """
        if self.reference is None:
            return None
        kv = self.store.get((self.reference, layer, self.step))
        if kv is None:
            steps = [s for (f, name, s) in self.store if f == self.reference and name == layer]
            if not steps:
                return None
            nearest = min(steps, key=lambda s: abs(s - self.step))
            kv = self.store[(self.reference, layer, nearest)]
            self.fallback_steps[self.frame] = self.fallback_steps.get(self.frame, 0) + 1
        return kv[0].to(device, non_blocking=True), kv[1].to(device, non_blocking=True)

    def release(self, frame: int) -> None:
        """Drop every cached K/V of ``frame`` (called once no later frame refers to it)."""
        for key in [k for k in self.store if k[0] == frame]:
            del self.store[key]

    def nbytes(self) -> int:
        """Bytes held by the cache right now."""
        return sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in self.store.values())


def _keep(x: torch.Tensor, cache_device) -> torch.Tensor:
    """A copy of ``x`` on ``cache_device`` (None: ``x`` itself, detached).

    GPU -> host copies go to page-locked (pinned) memory without blocking, so the copy runs
    while the U-Net goes on; reading it back (``lookup``) queues on the same stream, after it.
    """
    x = x.detach()
    if cache_device is None:
        return x
    cache_device = torch.device(cache_device)
    if cache_device.type == "cpu" and x.is_cuda:
        return torch.empty(x.shape, dtype=x.dtype, pin_memory=True).copy_(x, non_blocking=True)
    return x.to(cache_device)


class KVSharingAttnProcessor:
    """``AttnProcessor2_0`` for self-attention with the reference frame's K/V prepended (Eq. 1-4)."""

    observer = None  # set by cooklab.instrument.observed for a traced call; None: nothing is observed

    def __init__(self, name: str, state: KVSharingState):
        self.name = (
            name  # the attn_processors key, e.g. "up_blocks.1.attentions.0.transformer_blocks.0.attn1.processor"
        )
        self.state = state

    # Copied from diffusers.models.attention_processor.AttnProcessor2_0.__call__ (diffusers 0.42.1), with these
    # changes:
    # - self-attention only (cross-attention is refused), so sequence_length is read from hidden_states;
    # - K_i, V_i recorded for later frames, and the reference's K_ref, V_ref prepended: Eq. 1-2;
    # - the attention mask is prepared after the projections and padded with 0 (attend) for the reference tokens;
    # - the deprecated ``scale`` argument is accepted and ignored without the deprecation warning;
    # - the hook point before the SDPA call (cooklab.instrument.observer; it only reads query and K+);
    # - tensor shapes and equation numbers in comments.
    def __call__(
        self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, *args, **kwargs
    ):
        """Self-attention over ``[K_ref; K_i]``, ``[V_ref; V_i]`` (Eq. 1-4) on this layer's frames that share K/V.

        Args:
            attn: the diffusers ``Attention`` module of a U-Net self-attention layer (``...attn1``).
            hidden_states: ``[B, S, C]`` (or ``[B, C, H, W]``) tokens of the current frame.
            encoder_hidden_states: must be None (K/V sharing is for self-attention only).
            attention_mask: passed through as in ``AttnProcessor2_0``.
            temb: the time embedding for a spatial norm, as in ``AttnProcessor2_0``.

        Returns the layer's output, the shape of ``hidden_states``; the stock result where the frame has no reference.
        """
        if encoder_hidden_states is not None:
            raise ValueError(
                f"{self.name}: K/V sharing applies to self-attention only; select '...attn1' layers (cooklab.locate "
                "does)."
            )
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:  # [B, C, H, W] -> [B, H*W, C]
            batch_size, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch_size, channel, height * width).transpose(1, 2)
        batch_size, sequence_length, _ = hidden_states.shape  # [B, P, C]
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)

        query = attn.to_q(hidden_states)  # [B, P, C]
        key = attn.to_k(hidden_states)  # [B, P, C]   K_i
        value = attn.to_v(hidden_states)  # [B, P, C]  V_i
        self.state.record(self.name, key, value)
        ref = self.state.lookup(self.name, key.device)
        n_ref = 0
        if ref is not None:
            k_ref, v_ref = ref  # [B, P', C] each
            if k_ref.shape[0] != key.shape[0] or k_ref.shape[-1] != key.shape[-1]:
                raise ValueError(
                    f"{self.name}: reference K/V {tuple(k_ref.shape)} do not match this frame's {tuple(key.shape)}; "
                    "reference and current frame must use the same guidance setting and batch size."
                )
            n_ref = k_ref.shape[1]
            key = torch.cat([k_ref.to(key.dtype), key], dim=1)  # (1) K+ [B, P'+P, C]
            value = torch.cat([v_ref.to(value.dtype), value], dim=1)  # (2) V+ [B, P'+P, C]

        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(attention_mask, sequence_length, batch_size)
            attention_mask = attention_mask.view(batch_size, attn.heads, -1, attention_mask.shape[-1])
            if ref is not None:  # the reference tokens are never masked out
                attention_mask = F.pad(attention_mask, (key.shape[1] - attention_mask.shape[-1], 0), value=0.0)

        inner_dim = key.shape[-1]
        head_dim = inner_dim // attn.heads
        query = query.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)  # [B, h, P, d]
        key = key.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)  # [B, h, P'+P, d]
        value = value.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)  # [B, h, P'+P, d]
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)

        if self.observer is not None and self.observer.wants(
            self.name, False
        ):  # hook point: the observer reads Q and K+
            self.observer.observe_attention(self.name, attn, query, key, n_ref, False)
        # (3)-(4): H_i = softmax(Q K+^T / sqrt(d)) V+
        hidden_states = F.scaled_dot_product_attention(
            query, key, value, attn_mask=attention_mask, dropout_p=0.0, is_causal=False
        )
        hidden_states = hidden_states.transpose(1, 2).reshape(batch_size, -1, attn.heads * head_dim)  # [B, P, C]
        hidden_states = hidden_states.to(query.dtype)
        hidden_states = attn.to_out[0](hidden_states)
        hidden_states = attn.to_out[1](hidden_states)
        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(batch_size, channel, height, width)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor


def _layer_downscale(name: str, unet) -> int:
    """How many times a layer's grid is downsampled from the latent (from its block's name)."""
    n_down = len(unet.config.down_block_types)
    block, index = name.split(".")[0], name.split(".")[1]
    if block == "down_blocks":
        return 2 ** int(index)
    if block == "mid_block":
        return 2 ** (n_down - 1)
    return 2 ** (len(unet.config.up_block_types) - 1 - int(index))


def kv_cache_bytes_per_step(
    unet,
    layers: list[str],
    height: int,
    width: int,
    vae_scale_factor: int = 8,
    batch: int = 2,
    bytes_per_element: int = 2,
) -> int:
    """Bytes one recorded frame's K/V of ``layers`` take for ONE denoising step.

    ``2 (K, V) x batch x tokens(layer) x channels(layer) x bytes`` summed over layers, with
    ``tokens = (height / 8 / s) * (width / 8 / s)`` for a layer downsampled ``s`` times.
    Multiply by the number of denoising steps for a whole frame.
    """
    modules = dict(unet.named_modules())
    total = 0
    for name in layers:
        s = _layer_downscale(name, unet)
        tokens = (height // vae_scale_factor // s) * (width // vae_scale_factor // s)
        channels = modules[name.removesuffix(".processor")].to_k.out_features
        total += 2 * batch * tokens * channels * bytes_per_element
    return total
