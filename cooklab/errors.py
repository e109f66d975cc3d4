"""Exceptions raised by cooklab.

Every error says what went wrong, where (file, field, step) and how to fix it.
They subclass the built-in exception a user would expect (``ValueError`` for bad
input, ``RuntimeError`` for an environment problem) so ``except ValueError``
keeps working.
"""

from __future__ import annotations


class CooklabError(Exception):
    """Base class of every error raised on purpose by cooklab."""


class RecipeError(CooklabError, ValueError):
    """A recipe file or recipe object is malformed (names the file, field and fix)."""


class ConfigError(CooklabError, ValueError):
    """An argument of a pipeline call is impossible (size, noise level, mask shape ...)."""


class CheckpointError(CooklabError, RuntimeError):
    """A checkpoint cannot be loaded: unreachable hub, missing folder, or wrong kind of model."""
