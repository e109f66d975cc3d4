"""Console manners of a long job: one progress bar, each warning once with its count, and ``--quiet``.

A *job* is one run of a ``cooklab`` command (``job_console``, entered by ``cooklab.cli.main``). Inside a job:

* **One bar.** The first ``ProgressBar`` that opens is the job's bar (``evaluate toy-small``, a pipeline's
  ``frames``, the training steps). Bars that open while it is open (a frame's denoising steps, a metric's
  CLIP batches, a baseline's stock pipeline) are off, and so are the loading bars of diffusers and
  transformers. With ``quiet=True`` every bar is off.
* **Each warning once.** Python warnings and the warnings diffusers and transformers log go through one
  ``WarningTally``: the first warning of a kind is printed at once, as ``warning: ...`` above the bar.
  Warnings that differ only in their numbers (``step 2 (frame 1)``, ``step 3 (frame 2)``) are one kind, so
  a warning raised for every unit of an evaluation is printed once. When the job ends, each kind seen more
  than once gets one count line, ``warning (×N in this job): <its first words>…``. ``--quiet`` keeps them.

Outside a job (a notebook, a script) a ``ProgressBar`` opened inside another one is transient
(``leave=False``): it shows while it runs and leaves no line behind.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
import warnings

from tqdm.auto import tqdm

__all__ = ["ProgressBar", "WarningTally", "bar_settings", "job_console"]

#: the console's state: whether a job runs, whether it is quiet, how many counted bars are open
_STATE = {"in_job": False, "quiet": False, "open_bars": 0}
#: the libraries whose logged warnings and loading bars a job takes over
_LIBRARIES = ("diffusers", "transformers")
#: how many characters of a repeated warning its count line quotes
_QUOTED = 80


def bar_settings(enabled: bool = True, leave: bool = True) -> dict:
    """tqdm's ``disable`` and ``leave`` for a bar opening now (also for a diffusers pipeline's own bar).

    Off when ``enabled`` is false, when the job is quiet, or when it would be an inner bar inside a job; an
    inner bar outside a job is transient (``leave=False``).
    """
    inner = _STATE["open_bars"] > 0
    disable = not enabled or _STATE["quiet"] or (inner and _STATE["in_job"])
    return {"disable": disable, "leave": leave and not inner}


class ProgressBar(tqdm):
    """A ``tqdm.auto`` bar (a widget in Jupyter, a line in a terminal) that follows the job's rules above.

    ``enabled=False`` turns it off (a pipeline called with ``progress=False``); ``leave=False`` makes it
    transient even when it is the outermost bar. Every other argument is tqdm's.
    """

    def __init__(self, *args, enabled: bool = True, leave: bool = True, **kwargs) -> None:
        settings = bar_settings(enabled, leave)
        super().__init__(*args, **settings, **kwargs)
        self.counted = not settings["disable"]
        if self.counted:
            _STATE["open_bars"] += 1

    def close(self) -> None:
        """Close the bar; the next bar to open is the outer one again once every counted bar is closed."""
        if getattr(self, "counted", False):
            self.counted = False
            _STATE["open_bars"] = max(0, _STATE["open_bars"] - 1)
        super().close()


class WarningTally:
    """The warnings of one job: the first of each kind printed at once, the repeats counted.

    A warning's kind is its text with every number replaced by ``#``.
    """

    def __init__(self, stream=None) -> None:
        self.stream = stream
        self.counts: dict[str, int] = {}
        self.first: dict[str, str] = {}

    def write(self, line: str) -> None:
        """Print ``line`` on stderr (or the tally's stream) above any progress bar, not through it."""
        tqdm.write(line, file=self.stream or sys.stderr)

    def show(self, message: str) -> None:
        """Count ``message``; print it when it is the first of its kind in this job."""
        kind = re.sub(r"\d+(?:\.\d+)?", "#", message)
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if kind not in self.first:
            self.first[kind] = message
            self.write(f"warning: {message}")

    def show_warning(self, message, category, filename, lineno, file=None, line=None) -> None:
        """``warnings.showwarning``'s signature: count and print a Python warning."""
        self.show(str(message))

    def summary(self) -> None:
        """One count line for each kind of warning seen more than once."""
        for kind, count in self.counts.items():
            if count > 1:
                text = self.first[kind].splitlines()[0]
                quoted = text if len(text) <= _QUOTED else text[: _QUOTED - 1] + "…"
                self.write(f"warning (×{count} in this job): {quoted}")


class _TallyHandler(logging.Handler):
    """A logging handler that sends the libraries' warnings to the tally and prints their errors as they are."""

    def __init__(self, tally: WarningTally) -> None:
        super().__init__(logging.WARNING)
        self.tally = tally

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR:
            self.tally.write(f"{record.levelname.lower()}: {record.getMessage()}")
        else:
            self.tally.show(record.getMessage())


@contextlib.contextmanager
def _library_logging(tally: WarningTally):
    """Route the warnings diffusers and transformers log through ``tally`` and turn their loading bars off."""
    import diffusers.utils.logging as dlog
    import transformers.utils.logging as tlog

    handler = _TallyHandler(tally)
    bars = [(lib, lib.is_progress_bar_enabled()) for lib in (dlog, tlog)]
    for lib, _ in bars:
        lib.disable_default_handler()
        lib.add_handler(handler)
        lib.disable_progress_bar()
    try:
        yield
    finally:
        for lib, enabled in bars:
            lib.remove_handler(handler)
            lib.enable_default_handler()
            if enabled:
                lib.enable_progress_bar()


@contextlib.contextmanager
def job_console(quiet: bool = False, libraries: bool = True, stream=None):
    """Run the block as one job: one progress bar (none when ``quiet``), each warning once, counts at the end.

    ``libraries=False`` leaves diffusers' and transformers' logging alone (a short command that loads no model
    need not import them); ``stream`` is where warnings go (default: ``sys.stderr`` when they are printed).
    """
    tally = WarningTally(stream)
    before = dict(_STATE)
    _STATE.update(in_job=True, quiet=quiet, open_bars=0)
    try:
        with warnings.catch_warnings(), _library_logging(tally) if libraries else contextlib.nullcontext():
            warnings.simplefilter("always", UserWarning)  # every repeat reaches the tally, to be counted
            warnings.showwarning = tally.show_warning
            yield tally
    finally:
        _STATE.update(before)
        tally.summary()
