"""Find attention layers by *name*, never by class or call count.

``locate(model, "mid", "up", kind="self")`` returns the ``attn_processors`` keys of the
matching layers of a U-Net (or a Flux transformer), e.g.
``"up_blocks.1.attentions.0.transformer_blocks.0.attn1.processor"``.

A pattern is one of

* a group: ``"down"``, ``"mid"``, ``"up"`` (U-Net) or ``"double"``, ``"single"`` (Flux);
* a name prefix such as ``"up_blocks.1"`` or a full processor key;
* a regular expression prefixed with ``"re:"``, e.g. ``"re:up_blocks\\.[23]"``.

``kind`` keeps self-attention (``attn1``), cross-attention (``attn2``) or any layer.
Relying on names means adding or removing a processor elsewhere can never shift which
layer a mechanism lands on (the failure of counting calls).
"""

from __future__ import annotations

import re

from ..errors import ConfigError

GROUPS = {
    "down": "down_blocks.",
    "mid": "mid_block.",
    "up": "up_blocks.",
    "double": "transformer_blocks.",
    "single": "single_transformer_blocks.",
}
KINDS = {"self": ".attn1.", "cross": ".attn2.", "any": ""}


def _model_of(obj):
    """The denoiser behind a pipeline, a cooklab pipeline, or the model itself."""
    for attr in ("unet", "transformer"):
        if hasattr(obj, attr):
            return getattr(obj, attr)
    if hasattr(obj, "pipe"):
        return _model_of(obj.pipe)
    if hasattr(obj, "attn_processors"):
        return obj
    raise ConfigError(
        f"cannot find attention layers in a {type(obj).__name__}: pass a pipeline, a U-Net or a Flux transformer."
    )


def _matches(name: str, pattern: str) -> bool:
    if pattern.startswith("re:"):
        return re.search(pattern[3:], name) is not None
    if pattern in GROUPS:
        return name.startswith(GROUPS[pattern])
    return name == pattern or name.startswith(pattern.rstrip(".") + ".")


def locate(obj, *patterns: str, kind: str = "any") -> list[str]:
    """Processor keys of ``obj``'s attention layers matching any pattern, in model order.

    With no pattern every layer of the given kind is returned. A pattern that matches no
    layer is an error (a typo must not silently switch a mechanism off).
    """
    if kind not in KINDS:
        raise ConfigError(f"kind={kind!r}: use one of {sorted(KINDS)}.")
    if len(patterns) == 1 and isinstance(patterns[0], (list, tuple)):
        patterns = tuple(patterns[0])
    names = [n for n in _model_of(obj).attn_processors if KINDS[kind] in n]
    if not patterns:
        return names
    found = []
    for pattern in patterns:
        hits = [n for n in names if _matches(n, pattern)]
        if not hits and not names:
            raise ConfigError(
                f"layer pattern {pattern!r}: this model has no {kind} attention layer at all (kind={kind!r}); "
                "try kind='any', or cooklab.locate(pipe) to list its layers."
            )
        if not hits:
            groups = sorted({g for g, prefix in GROUPS.items() if any(n.startswith(prefix) for n in names)})
            raise ConfigError(
                f"layer pattern {pattern!r} matches no {kind} attention layer. Use a group ({', '.join(groups)}), "
                f"a name prefix such as {names[0].rsplit('.', 3)[0]!r}, or 're:<regex>'; "
                "cooklab.locate(pipe) lists them all."
            )
        found.extend(h for h in hits if h not in found)
    return [n for n in names if n in found]
