"""What both cooklab pipelines share: wrapping a diffusers pipeline, loading, and trace attachment.

A cooklab pipeline *wraps* a diffusers pipeline (it never copies or patches it): attribute
access falls through to the wrapped pipeline (``pipe.vae``, ``pipe.tokenizer`` ...), and
``cooklab.trace`` attaches to it for the duration of a ``with`` block.
"""

from __future__ import annotations

import torch

from .errors import CheckpointError


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
