"""What both cooklab pipelines share: wrapping a diffusers pipeline, loading, trace attachment, long step texts.

A cooklab pipeline *wraps* a diffusers pipeline (it never copies or patches it): attribute
access falls through to the wrapped pipeline (``pipe.vae``, ``pipe.tokenizer`` ...), and
``cooklab.trace`` attaches to it for the duration of a ``with`` block.

Long step texts: a text encoder reads a fixed number of tokens (CLIP 77, T5 ``max_sequence_length``, each with
its special tokens) and drops the rest. diffusers logs the dropped text at every encoding and transformers warns
that the sequence is too long; for a long step that is the whole text again for every frame. A call instead
counts the tokens each step loses (``dropped_tokens``), warns once at the user's line (``warn_dropped_tokens``)
and silences the two library warnings while it runs (``quiet_truncation``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from typing import Any

import torch

from .errors import CheckpointError, warn_caller

#: how the diffusers and transformers warnings about a cut prompt begin (``quiet_truncation`` drops these only)
_TRUNCATION_WARNINGS = ("The following part of your input was truncated", "Token indices sequence length is longer")


class CooklabPipeline:
    """Base of ``RecipeDiffusion`` and ``CookAnything``. Subclasses set the four class attributes."""

    pipeline_class: type  # the diffusers class wrapped
    denoiser_name: str  # "unet" or "transformer"
    loader: str  # name of the cooklab.models function that loads a checkpoint of this kind
    wrong_kind_hint: str  # what to use instead, for the error message

    def __init__(self, pipe):
        if not isinstance(pipe, self.pipeline_class):
            raise CheckpointError(
                f"{type(self).__name__} needs a diffusers {self.pipeline_class.__name__}, got {type(pipe).__name__}. "
                f"{self.wrong_kind_hint}"
            )
        self.pipe = pipe
        self._trace = None

    @classmethod
    def from_pipe(cls, pipe):
        """Wrap an existing diffusers pipeline (its modules are shared; nothing is copied)."""
        return cls(pipe)

    @classmethod
    def from_pretrained(cls, id_or_path: str, device=None, dtype=None, **kwargs):
        """Load a repo id or local folder with ``cooklab.models.<loader>`` and wrap it."""
        from . import models

        return cls(getattr(models, cls.loader)(id_or_path, device=device, dtype=dtype, **kwargs))

    @property
    def denoiser(self):
        """The U-Net or transformer whose attention processors the mechanisms replace."""
        return getattr(self.pipe, self.denoiser_name)

    @property
    def device(self) -> torch.device:
        return self.pipe._execution_device

    def to(self, *args, **kwargs):
        self.pipe.to(*args, **kwargs)
        return self

    def __getattr__(self, name):  # unet/transformer, vae, tokenizer, scheduler, image_processor ...
        if name.startswith("_") or name == "pipe":
            raise AttributeError(name)
        return getattr(self.pipe, name)

    def attach_trace(self, trace) -> None:
        """Let ``trace`` observe this pipeline's calls (``cooklab.trace`` calls it on entry); one trace at a time."""
        if self._trace is not None:
            raise RuntimeError(
                "this pipeline is already being traced; leave the other `with cooklab.trace(...)` block first."
            )
        self._trace = trace

    def detach_trace(self, trace) -> None:
        """Stop ``trace`` observing this pipeline (``cooklab.trace`` calls it on exit); another trace is left alone."""
        if self._trace is trace:
            self._trace = None


# ---- long step texts ---------------------------------------------------------------------


def dropped_tokens(tokenizer, texts: Sequence[str], max_length: int) -> list[int]:
    """Per text, how many of its tokens an encoder reading ``max_length`` tokens drops.

    The encoder keeps ``max_length - s`` text tokens, ``s`` its special tokens (CLIP: BOS and EOS, T5: EOS)::

        dropped_n = max(0, len(tokens(text_n)) - (max_length - s))
    """
    ids = tokenizer(list(texts), add_special_tokens=False, truncation=False, verbose=False).input_ids
    keep = max_length - tokenizer.num_special_tokens_to_add()
    return [max(0, len(text_ids) - keep) for text_ids in ids]


def warn_dropped_tokens(texts: Sequence[str], encoders: Sequence[tuple[str, Any, int]], fix: str) -> list[int]:
    """One warning at the user's line naming every step that loses tokens, with the count per text encoder.

    encoders: ``(name, tokenizer, max_length)`` of each encoder the steps are read by, e.g.
    ``("CLIP", pipe.tokenizer, 77)``. fix: what the user can do. Returns the step numbers (from 1) that lose
    tokens (empty: nothing is dropped, no warning).
    """
    counts = {name: dropped_tokens(tokenizer, texts, length) for name, tokenizer, length in encoders}
    cut = [n for n in range(len(texts)) if any(dropped[n] for dropped in counts.values())]
    if not cut:
        return []
    limits = ", ".join(f"{name} {length}" for name, _, length in encoders)
    per_step = "; ".join(
        f"step {n + 1}: " + ", ".join(f"{dropped[n]} {name}" for name, dropped in counts.items() if dropped[n])
        for n in cut
    )
    warn_caller(
        f"step texts longer than the text encoder reads ({limits} tokens) lose the tokens at their end: "
        f"{per_step} tokens dropped. Fix: {fix}"
    )
    return [n + 1 for n in cut]


class _DropTruncationWarnings(logging.Filter):
    """Drops the library log records that say a prompt was cut (``_TRUNCATION_WARNINGS``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(_TRUNCATION_WARNINGS)


@contextlib.contextmanager
def quiet_truncation(pipe):
    """Inside the block, the loggers of ``pipe``'s diffusers classes and of transformers' tokenizers drop their
    warnings about a cut prompt (and only those); the filter is removed afterwards."""
    names = {cls.__module__ for cls in type(pipe).__mro__ if cls.__module__.startswith("diffusers")}
    loggers = [logging.getLogger(name) for name in sorted(names | {"transformers.tokenization_utils_base"})]
    quiet = _DropTruncationWarnings()
    for logger in loggers:
        logger.addFilter(quiet)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(quiet)
