"""The settings of one CookAnything call: every keyword of ``CookAnything.__call__``, checked once, no model needed.

``CookAnythingSettings.build(**kwargs)`` refuses impossible values with a ``ConfigError`` that
names the parameter (``alpha=1.5: ...``) and the fix, and fills what the values decide on their
own: true CFG's negative prompt and the chunking (``chunked.Chunking``). The call's stages read
this one frozen object. What needs the model is checked when the canvas is prepared: the region
size (multiples of the VAE's factor times Flux's 2 x 2 packing) and the T5 length a call that
names none takes (``default_max_sequence_length``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from ..checks import finite_number, seed_value, whole_number
from ..errors import ConfigError, warn_caller
from .chunked import DEFAULT_ANCHOR, DEFAULT_CHUNK_TEXT, Chunking
from .regional import resolve_backend

__all__ = [
    "DEFAULT_REGION_SIZE",
    "FLUX_MAX_SEQUENCE_LENGTH",
    "MAX_CANVAS_REGIONS",
    "CookAnythingSettings",
    "default_max_sequence_length",
]

MAX_CANVAS_REGIONS = 12  # regions on one canvas by default (chunk_size=None); beyond this the joint sequence
# outgrows a single GPU's memory at 512^2
DEFAULT_REGION_SIZE = 512  # pixels per region side on real checkpoints (the paper's 512 x 512 steps)
FLUX_MAX_SEQUENCE_LENGTH = 512  # T5 tokens per prompt that Flux's text stream takes at most


def default_max_sequence_length(tokenizer) -> int:
    """The T5 length of a call that names none: the tokenizer's ``model_max_length``, capped at Flux's 512.

    FLUX.1's T5 tokenizer says 512, the tiny and the Toy Kitchen models' say 64 (their T5 was built
    for 64 tokens; 512 would run, with 8x the text to encode); a tokenizer that sets no length
    (transformers then reports a huge placeholder) gets 512.
    """
    return min(int(tokenizer.model_max_length), FLUX_MAX_SEQUENCE_LENGTH)


@dataclass(frozen=True)
class CookAnythingSettings:
    """The keywords of ``CookAnything.__call__`` (see its ``Args:``), as one call runs them; build with ``build``.

    ``true_cfg_scale`` is a float; ``negative_prompt`` is the negative branch's prompt (``""`` when
    true CFG is on without one, None when true CFG is off); ``chunking`` is ``chunk_size``, ``anchor``,
    ``anchor_regions``, ``anchor_strength`` and ``chunk_text`` resolved.
    """

    chunking: Chunking
    enriched_prompts: bool = True
    seed: int = 0
    num_inference_steps: int = 28
    height: int | None = None
    width: int | None = None
    guidance_scale: float = 3.5
    true_cfg_scale: float = 1.0
    negative_prompt: str | None = None
    max_sequence_length: int | None = None
    regional: bool = True
    flexible_rope: bool = True
    rope_step_axis: bool = False
    cscc: bool = True
    alpha: float = 0.1
    lam: float = 0.2
    image_attention: str = "region"
    cross_region_kv: bool = False
    regional_blocks: tuple | str = ("double", "single")
    regional_every: int = 1
    regional_steps: object = None  # None (all steps), an int k (the first k) or an iterable of step indices
    attention_backend: str = "auto"
    lora_scale: float | None = None
    output_type: str = "pil"
    progress: bool = True
    allow_large: bool = False  # run a size whose estimated memory exceeds the device's free memory (size_guard.py)

    @classmethod
    def build(
        cls,
        *,
        chunk_size: int | None = None,
        anchor: str = DEFAULT_ANCHOR,
        anchor_regions: int = 1,
        anchor_strength: float | None = None,
        chunk_text: str = DEFAULT_CHUNK_TEXT,
        **kwargs,
    ) -> CookAnythingSettings:
        """The settings of a call with these keywords (those of ``CookAnything.__call__``), or ``ConfigError``.

        Every number first (``check_numbers``: types, finite values, ranges), then sampling (true CFG),
        the chunking, and the canvas (RoPE, T5 length, attention backend, cross-region K/V): the first
        impossible value raises.
        """
        given = {f.name: f.default for f in fields(cls) if f.name != "chunking"} | kwargs  # defaults, then kwargs
        numbers = check_numbers(given)
        true_cfg_scale, negative_prompt = check_sampling(
            numbers["num_inference_steps"], given["true_cfg_scale"], given["negative_prompt"]
        )
        chunking = Chunking.resolve(
            chunk_size, anchor, anchor_regions, anchor_strength, MAX_CANVAS_REGIONS, chunk_text
        )
        settings = cls(
            **{**kwargs, **numbers, "true_cfg_scale": true_cfg_scale, "negative_prompt": negative_prompt},
            chunking=chunking,
        )
        settings.check_canvas()
        return settings

    def check_canvas(self) -> None:
        """Refuse impossible canvas settings (those ``CookAnything.prepare_canvas`` reads) before any model runs.

        The number of steps is not limited here: ``__call__`` cuts a long recipe into chunks (``chunked.py``).
        """
        if self.rope_step_axis and not self.flexible_rope:
            raise ConfigError(
                "rope_step_axis=True needs Flexible RoPE (flexible_rope=True): global ids leave axis 0 unused."
            )
        resolve_backend(self.attention_backend, self.image_attention, None, shared=self.cross_region_kv)
        if self.cross_region_kv and not self.regional:
            raise ConfigError("cross_region_kv=True shares keys inside SRC's regional branch: it needs regional=True.")
        if self.cross_region_kv and self.image_attention != "region":
            raise ConfigError(
                f"cross_region_kv=True with image_attention={self.image_attention!r}: every region already sees "
                "every other; use image_attention='region'."
            )


def check_numbers(given: dict) -> dict:
    """The call's numbers (``given``: every keyword, defaults filled) coerced by ``cooklab.checks``, or ConfigError.

    Whole numbers: ``seed`` (>= 0), ``num_inference_steps`` (>= 1), ``height`` / ``width`` (>= 1 or None:
    the model's size), ``max_sequence_length`` (1 to 512 or None), ``regional_every`` (>= 1). Finite floats:
    ``guidance_scale`` (>= 0), ``alpha`` (0 to 1), ``lam`` (>= 0), ``lora_scale`` (any, or None).
    ``true_cfg_scale`` is checked with the negative prompt (``check_sampling``), the chunking by ``Chunking``.
    """

    def optional(check, name, **limits):  # None stays None (the model's own value)
        return None if given[name] is None else check(name, given[name], **limits)

    return dict(
        seed=seed_value("seed", given["seed"]),
        num_inference_steps=whole_number(
            "num_inference_steps", given["num_inference_steps"], minimum=1, hint="denoising steps"
        ),
        height=optional(whole_number, "height", minimum=1),
        width=optional(whole_number, "width", minimum=1),
        max_sequence_length=optional(
            whole_number,
            "max_sequence_length",
            minimum=1,
            maximum=FLUX_MAX_SEQUENCE_LENGTH,
            hint=f"T5 in Flux takes 1 to {FLUX_MAX_SEQUENCE_LENGTH} tokens per prompt",
        ),
        regional_every=whole_number("regional_every", given["regional_every"], minimum=1),
        guidance_scale=finite_number(
            "guidance_scale", given["guidance_scale"], low=0.0, hint="Flux's embedded guidance; FLUX.1-dev: 3.5"
        ),
        alpha=finite_number(
            "alpha", given["alpha"], low=0.0, high=1.0, hint="the base-branch weight, between 0 and 1; paper: 0.1"
        ),
        lam=finite_number("lam", given["lam"], low=0.0, hint="the CSCC weight; paper: 0.2, studied from 0 to 1"),
        lora_scale=optional(finite_number, "lora_scale", hint="the LoRA adapter's scale; 0: no adapter"),
    )


def check_sampling(num_inference_steps, true_cfg_scale, negative_prompt) -> tuple[float, str | None]:
    """Refuse impossible sampling arguments; returns ``(true_cfg_scale, negative_prompt)``.

    The negative prompt of the true-CFG branch is ``""`` when true CFG is on without one, None
    when true CFG is off (a given one is then ignored, with a warning).
    """
    whole_number("num_inference_steps", num_inference_steps, minimum=1, hint="denoising steps")
    true_cfg_scale = finite_number(
        "true_cfg_scale",
        true_cfg_scale,
        low=0.0,
        hint="values <= 1 (default 1.0) switch true classifier-free guidance off, values > 1 switch it on",
    )
    if negative_prompt is not None and not isinstance(negative_prompt, str):
        raise ConfigError(
            f"negative_prompt={negative_prompt!r}: give one string (it fills the base prompt and every step's "
            "prompt of the negative branch) or None (the empty prompt)."
        )
    if true_cfg_scale > 1:  # as diffusers: <= 1 is off
        return true_cfg_scale, "" if negative_prompt is None else negative_prompt  # "": unconditional
    if negative_prompt is not None:
        warn_caller(
            f"negative_prompt={negative_prompt!r} is ignored with true_cfg_scale={true_cfg_scale:g}: "
            "set true_cfg_scale > 1 to use it."
        )
    return true_cfg_scale, None
