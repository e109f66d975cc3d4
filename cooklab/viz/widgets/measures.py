"""The measures an explorer puts in its titles, so its on/off comparison is read as a number, not only by eye.

An explorer takes ``measure=``: a function from one run's pictures (frames, or a canvas's regions, in
recipe order) to a short label for the figure's title, or a tuple of such functions (their labels joined
by ", "). The Toy Kitchen's are the oracle's (it reads
a picture back from the renderer's palette; ``cooklab.toykitchen.oracle``)::

    container consistency = (1 / (N - 1)) * #{ i >= 2 : frame i keeps frame 1's container colour and mask }
    step faithfulness     = mean over the steps naming an ingredient of [that ingredient is present]

With a real checkpoint pass ``measure=None`` (no label) or a function of your own, e.g. a CLIP score
(``cooklab.metrics``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ...toykitchen import oracle

__all__ = ["Measure", "measure_label", "oracle_consistency", "oracle_faithfulness"]

Measure = Callable[[Sequence], str]  # pictures of one run, in recipe order -> a label for a title


def oracle_consistency(images: Sequence) -> str:
    """ "oracle consistency k/(N-1)": the later frames that keep frame 1's container (Toy Kitchen pictures)."""
    kept = oracle.container_consistency(list(images))  # [N - 1] bool
    return f"oracle consistency {sum(kept)}/{len(kept)}"


def oracle_faithfulness(expectations) -> Measure:
    """A measure: "oracle faithfulness k/n", the steps whose named ingredient is present (from ``expectations``)."""

    def measure(images: Sequence) -> str:
        present = oracle.step_faithfulness(list(images), list(expectations))  # [steps naming food] bool
        return f"oracle faithfulness {sum(present)}/{len(present)}"

    return measure


def measure_label(measure: Measure | Sequence[Measure] | None, images: Sequence) -> str:
    """``measure(images)``; several measures' labels joined by ", " (e.g. ``(faithfulness, oracle_consistency)``);
    "" when there is no measure (a real checkpoint without one)."""
    if measure is None:
        return ""
    if callable(measure):
        return measure(images)
    return ", ".join(m(images) for m in measure)
