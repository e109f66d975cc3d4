"""An attention processor that *observes* a layer and leaves its output untouched.

``TracingAttnProcessor(inner, name, trace)`` wraps whatever processor a layer has (the
stock one, or a mechanism such as K/V sharing). On the layers and steps a trace selected
it recomputes the attention weights explicitly,

    A = softmax(Q K^T / sqrt(d))   (head-mean, conditional half of the CFG batch)

where ``K`` includes the reference frame's keys when the inner processor shares them,
and hands ``A`` to the trace. The layer's output always comes from ``inner``: the
observer adds work on captured layers, never a different result (TransformerLens'
``HookPoint`` principle: observing never changes the maths).
"""

from __future__ import annotations

import torch


class TracingAttnProcessor:
    """Wrap ``inner``; report Q/K-derived attention weights to ``trace`` when it asks for them."""

    def __init__(self, inner, name: str, trace):
        self.inner = inner
        self.name = name
        self.trace = trace

    def _query_key(self, attn, hidden_states, encoder_hidden_states, temb):
        """Recompute Q and K exactly as ``AttnProcessor2_0`` does before its SDPA call."""
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        if hidden_states.ndim == 4:  # [B, C, H, W] -> [B, H*W, C]
            b, c, h, w = hidden_states.shape
            hidden_states = hidden_states.view(b, c, h * w).transpose(1, 2)
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        query = attn.to_q(hidden_states)  # [B, P, C]
        is_cross = encoder_hidden_states is not None
        if not is_cross:
            encoder_hidden_states = hidden_states
        elif attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        key = attn.to_k(encoder_hidden_states)  # [B, T or P, C]
        n_ref = 0
        if not is_cross and hasattr(self.inner, "reference_keys"):
            k_ref = self.inner.reference_keys(key.device)  # [B, P', C] or None
            if k_ref is not None:
                n_ref = k_ref.shape[1]
                key = torch.cat([k_ref.to(key.dtype), key], dim=1)
        return query, key, n_ref, is_cross

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, *args, **kwargs):
        is_cross = encoder_hidden_states is not None
        if self.trace.wants(self.name, is_cross):
            with torch.no_grad():
                query, key, n_ref, is_cross = self._query_key(attn, hidden_states, encoder_hidden_states, temb)
                self.trace.observe_attention(self.name, attn, query, key, n_ref, is_cross)
        return self.inner(attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs)
