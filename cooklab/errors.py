"""Exceptions raised by cooklab.

Every error says what went wrong, where (file, field, step) and how to fix it.
They subclass the built-in exception a user would expect (``ValueError`` for bad
input, ``RuntimeError`` for an environment problem) so ``except ValueError``
keeps working.
"""

from __future__ import annotations

import os
import sys
import warnings

_PACKAGE = os.path.dirname(os.path.abspath(__file__))


class CooklabError(Exception):
    """Base class of every error raised on purpose by cooklab."""


class RecipeError(CooklabError, ValueError):
    """A recipe file or recipe object is malformed (names the file, field and fix)."""


class ConfigError(CooklabError, ValueError):
    """An argument of a pipeline call is impossible (size, noise level, mask shape ...)."""


class CheckpointError(CooklabError, RuntimeError):
    """A checkpoint cannot be loaded: unreachable hub, missing folder, or wrong kind of model."""


def warn_caller(message: str, category: type[Warning] = UserWarning) -> None:
    """Warn at the user's line: the first frame outside cooklab (and outside the decorators wrapping its calls).

    A fixed ``stacklevel`` breaks as soon as the same warning can be reached along two paths (a call and a
    training step); this finds the caller however deep cooklab's own frames go.
    """
    frame, level = sys._getframe(1), 2
    while frame is not None and (
        frame.f_code.co_filename.startswith(_PACKAGE)
        or frame.f_code.co_filename.endswith(("contextlib.py", os.sep + "_contextlib.py"))
    ):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)
