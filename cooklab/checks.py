"""The one place every number a user gives cooklab is checked: finite floats in range, whole numbers, seeds.

Each function takes the parameter's ``name`` (as the caller spells it: ``guidance_scale`` for the API,
``--guidance`` for the command line) and the value as given, and returns it coerced to its type or raises
``ConfigError`` naming the parameter, the value and the fix:

* ``finite_number``: a float, refusing NaN, +-inf and values outside ``[low, high]`` (or open ends);
  numeric strings (``"7.5"``) are read as numbers, booleans are refused;
* ``whole_number``: an int, refusing fractions (``2.5``), non-numbers and values below ``minimum``;
  ``2.0`` and ``"64"`` are read as ``2`` and ``64``;
* ``seed_value``: a whole number >= 0 that ``torch.Generator.manual_seed`` takes (``None`` is refused).

Both pipelines (``RecipeDiffusion``, ``CookAnythingSettings``), the baselines and the command line
call these; the evaluation and training configs refuse non-finite floats in pydantic
(``allow_inf_nan=False``) with the same ranges.
"""

from __future__ import annotations

import math
import numbers

from .errors import ConfigError

__all__ = ["MAX_SEED", "finite_number", "seed_value", "whole_number"]

MAX_SEED = 2**63 - 1  # torch.Generator.manual_seed takes seeds up to 2**64 - 1; frame i adds i, so stay well below


def _bounds(low, high, low_open: bool, high_open: bool) -> str:
    """``[0, 1]``, ``(0, 1]``, ``>= 0``, ``> 0`` or ``<= 1``: the range in words for a message."""
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low:g}"
    if high is not None:
        return f"{'<' if high_open else '<='} {high:g}"
    return "finite"


def finite_number(
    name: str, value, *, low=None, high=None, low_open: bool = False, high_open: bool = False, hint: str = ""
) -> float:
    """``value`` as a finite float inside the range, or ``ConfigError``: ``name=value: use a finite number ...``.

    low / high: the range's ends (None: unbounded); low_open / high_open: the end itself is excluded.
    hint: what the parameter does or its usual value, appended to the message.
    """
    bounds = _bounds(low, high, low_open, high_open)
    need = f"use a finite number {bounds}" if bounds != "finite" else "use a finite number"
    suffix = f" ({hint})" if hint else ""
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, str)):
        raise ConfigError(f"{name}={value!r}: {need}{suffix}.")
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r}: {need}{suffix}.") from None
    outside = (
        not math.isfinite(number)
        or (low is not None and (number <= low if low_open else number < low))
        or (high is not None and (number >= high if high_open else number > high))
    )
    if outside:
        raise ConfigError(f"{name}={number:g}: {need}{suffix}.")
    return number


def whole_number(name: str, value, *, minimum: int | None = None, maximum: int | None = None, hint: str = "") -> int:
    """``value`` as an int (``2.0`` and ``"64"`` are read as whole numbers), or ``ConfigError`` naming ``name``.

    Refuses booleans, fractions (``2.5``), NaN / inf and values outside ``[minimum, maximum]``.
    """
    if minimum is not None and maximum is not None:
        need = f"use a whole number from {minimum} to {maximum}"
    elif minimum is not None:
        need = f"use a whole number >= {minimum}"
    else:
        need = "use a whole number"
    suffix = f" ({hint})" if hint else ""
    number = None
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        number = int(value)
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):
        number = int(value) if math.isfinite(value) and float(value).is_integer() else None
    elif isinstance(value, str):
        try:
            number = int(value.strip())
        except ValueError:
            number = None
    if number is None or (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        raise ConfigError(f"{name}={value!r}: {need}{suffix}.")
    return number


def seed_value(name: str, value) -> int:
    """A seed: a whole number from 0 to ``MAX_SEED`` (``"0"`` is read as 0), or ``ConfigError`` naming ``name``."""
    if value is None:
        raise ConfigError(f"{name}=None: give a whole number, e.g. {name}=0 (frame i uses the noise of seed + i).")
    return whole_number(name, value, minimum=0, maximum=MAX_SEED, hint="frame i uses the noise of seed + i")
