"""How cooklab's instrumentation sees inside an attention layer: observers called at hook points.

One style for both pipelines. Every attention processor cooklab installs has a *hook
point*: a marked line next to the attention call (before it in the U-Net processors, after
it in the Flux one, which also hands over SRC's branch outputs) that gives the tensors the
layer attends with to an *observer* (``cooklab.trace``'s ``Trace``), if one is attached:

    if observer is not None and observer.wants(name, is_cross):        # hook point
        observer.observe_attention(name, attn, query, key, n_ref, is_cross)

The hooks, by processor:

* ``observe_attention(layer, attn, query, key, n_ref, is_cross)`` -- diffusers'
  ``AttnProcessor2_0`` maths (U-Net layers: ``ObservedAttnProcessor`` below and
  ``KVSharingAttnProcessor``). ``query [B, h, P, d]``, ``key [B, h, n_ref + P, d]``
  (self-attention, the reference frame's ``n_ref`` keys first, Eq. 1) or ``[B, h, T, d]``
  (cross-attention): exactly what SDPA receives, after ``norm_q`` / ``norm_k``.
* ``observe_regional(layer, attn, query, key, state, result, value=, output=)`` --
  ``RegionalFluxAttnProcessor``. ``query, key, value [B, S, H, D]`` after RoPE; ``state`` the
  call's ``RegionalState``; ``result`` the ``RegionalOutput`` (joint output and both branches'
  image outputs) where SRC ran in this layer and step, None where the layer ran full
  attention; ``output [B, S, H, D]`` the attention output the layer goes on with (before the
  output projection), what ConceptAttention's output-space maps read.

``wants`` is asked first, so a layer or step the trace does not record costs one call and
nothing else. An observer only reads: it never writes into the tensors it is handed (they
are the layer's own) and computes under ``torch.no_grad``.

Why hook points and not wrappers around the processors:

* exact -- the observer sees the very ``Q`` and ``K+`` the layer attended with (reference
  keys, norms, RoPE included) and the branch outputs it blended, instead of a recomputation
  that has to agree with the processor (a wrapper would look the reference K/V up a second
  time, which counts a fallback step twice in ``FrameInfo.kv_fallback_steps``); and the
  layer's output comes from the same lines whether it is observed or not (tests: traced
  images are bit-identical);
* cheap -- nothing is projected or attended twice: measuring Eq. 9's base share from a
  wrapper would mean running both SRC branches a second time in every captured layer;
* readable -- a mechanism file gains one marked hook point and knows nothing about what is
  recorded; what a capture computes lives in ``unet_capture.py`` / ``flux_capture.py``;
* off is free -- untraced, no observer is attached (one ``is None`` test per layer call) and
  the stock layers keep diffusers' own processors.

The price: only a processor with a hook point can be observed. During a traced Recipe
Diffusion call the traced stock layers therefore run ``ObservedAttnProcessor``,
``AttnProcessor2_0`` copied line by line plus the hook (``observed`` installs it), and the
bit-identical-image tests hold that copy to the stock processor.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch.nn.functional as F

from ..errors import ConfigError


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


class ObservedAttnProcessor:
    """Diffusers' ``AttnProcessor2_0`` with a hook point: what a traced stock U-Net layer runs."""

    def __init__(self, name: str, observer):
        self.name = name  # the attn_processors key, e.g. "mid_block.attentions.0.transformer_blocks.0.attn2.processor"
        self.observer = observer

    # Copied from diffusers.models.attention_processor.AttnProcessor2_0.__call__ (diffusers 0.42.1),
    # with these changes:
    # - the deprecated ``scale`` argument is accepted and ignored without the deprecation warning;
    # - the hook point before the SDPA call (it only reads query and key);
    # - tensor shapes in comments.
    def __call__(
        self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, *args, **kwargs
    ):
        """Attention of one layer, as ``AttnProcessor2_0`` computes it, reporting Q and K at the hook point.

        Args:
            attn: the diffusers ``Attention`` module whose projections and norms are used.
            hidden_states: ``[B, P, C]`` (or ``[B, C, H, W]``, flattened here) image tokens.
            encoder_hidden_states: ``[B, T, C']`` text tokens for cross-attention; None for
                self-attention.
            attention_mask: optional mask, prepared by ``attn.prepare_attention_mask``.
            temb: time embedding for the layer's spatial norm, if it has one.
            *args, **kwargs: accepted and ignored (diffusers' deprecated ``scale``).

        Returns ``[B, P, C]`` (or ``[B, C, H, W]``), the layer's output.
        """
        is_cross = encoder_hidden_states is not None
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:  # [B, C, H, W] -> [B, H*W, C]
            batch_size, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch_size, channel, height * width).transpose(1, 2)
        batch_size, sequence_length, _ = (
            hidden_states.shape if encoder_hidden_states is None else encoder_hidden_states.shape
        )
        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(attention_mask, sequence_length, batch_size)
            attention_mask = attention_mask.view(batch_size, attn.heads, -1, attention_mask.shape[-1])
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)

        query = attn.to_q(hidden_states)  # [B, P, C]
        if encoder_hidden_states is None:
            encoder_hidden_states = hidden_states
        elif attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        key = attn.to_k(encoder_hidden_states)  # [B, P or T, C]
        value = attn.to_v(encoder_hidden_states)  # [B, P or T, C]

        inner_dim = key.shape[-1]
        head_dim = inner_dim // attn.heads
        query = query.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)  # [B, h, P, d]
        key = key.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)  # [B, h, P or T, d]
        value = value.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)  # [B, h, P or T, d]
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)

        if self.observer.wants(self.name, is_cross):  # hook point: the observer reads Q and K as SDPA gets them
            self.observer.observe_attention(self.name, attn, query, key, 0, is_cross)
        hidden_states = F.scaled_dot_product_attention(
            query, key, value, attn_mask=attention_mask, dropout_p=0.0, is_causal=False
        )
        hidden_states = hidden_states.transpose(1, 2).reshape(batch_size, -1, attn.heads * head_dim)  # [B, P, C]
        hidden_states = hidden_states.to(query.dtype)
        hidden_states = attn.to_out[0](hidden_states)  # linear projection
        hidden_states = attn.to_out[1](hidden_states)  # dropout
        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(batch_size, channel, height, width)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor


def observed(processor, name: str, observer):
    """The processor a traced call installs on layer ``name``: ``processor`` with ``observer`` at its hook point.

    A cooklab processor made for this call (``KVSharingAttnProcessor``) gets the observer
    attached; diffusers' stock ``AttnProcessor2_0`` is replaced by ``ObservedAttnProcessor``
    (the same maths, bit for bit). Any other processor has no hook point: tracing it would
    mean swapping in different maths, so it is refused.
    """
    from diffusers.models.attention_processor import AttnProcessor2_0  # here: traces load and plot without diffusers

    if type(processor) is AttnProcessor2_0:
        return ObservedAttnProcessor(name, observer)
    if hasattr(processor, "observer"):
        processor.observer = observer
        return processor
    raise ConfigError(
        f"cooklab.trace cannot observe {name!r}: it runs {type(processor).__name__}, which has no hook point. "
        "Trace layers that run diffusers' AttnProcessor2_0 "
        "(pipe.unet.set_attn_processor(AttnProcessor2_0()) restores it) "
        "or a cooklab processor."
    )
