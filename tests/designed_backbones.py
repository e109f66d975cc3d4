"""Hand-built CLIP and DINOv2 backbones whose features are designed, so a metric's exact value is computed by hand.

A metric test names its frames (any hashable: ``"x1"``, ``"x2"``, ...) and its texts, gives each a
feature vector, and computes the expected number on paper from those vectors. With features chosen
on purpose -- orthogonal unit vectors (cosine 0), opposite ones (cosine -1), 3-4-5 triangles
(cosines 0.6 and 0.8), distractors that are close to the wrong text -- a metric that pairs the
wrong frame with the wrong text, drops a clamp or a factor, or averages the wrong pairs gives a
different number, which a random tiny CLIP (features all alike) cannot show.

* ``DesignedClip(images={name: vector}, texts={text: vector})`` -- a ``cooklab.backbones.ClipBackbone``
  (so ``clip_backbone``, ``score`` and ``reusing()`` take it as they take a real one): ``image_features``
  and ``text_features`` look the vectors up; CLIP's features are L2-normalised, so every vector must
  have length 1 (checked). It records every text request (``text_calls``: the texts and the mode).
* ``DesignedDino(whole={name: vector}, masked={name: vector})`` -- a ``DinoBackbone``: ``embeddings``
  gives a frame's ``masked`` vector when its mask is not None, else its ``whole`` vector (DINOv2
  CLS embeddings are not normalised: any vectors). It records every call (``calls``: names and
  whether each had a mask).
  Both hold a ``Placement`` as their model: no weights, but ``model.placed`` lists where it was moved.
* ``unit(*components)`` -- a vector with those components (checked to have length 1).

Used by tests/test_metric_formulas.py; reuse them for new metrics (import ``designed_backbones`` in a test).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence

import torch

from cooklab.backbones import ClipBackbone, DinoBackbone, Preprocess

__all__ = ["DesignedClip", "DesignedDino", "unit"]

#: the preprocessing a designed backbone reports in its record (it never looks at pixels)
DESIGNED_PREPROCESS = Preprocess(resize=4, crop=4, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))


def unit(*components: float) -> list[float]:
    """The vector ``components``, which must have length 1 (a CLIP feature is L2-normalised)."""
    length = math.sqrt(sum(c * c for c in components))
    if abs(length - 1) > 1e-9:
        raise ValueError(f"{components} has length {length}, not 1: a designed CLIP feature must be a unit vector.")
    return list(components)


class Placement(torch.nn.Module):
    """The designed backbones' stand-in model: it holds no weights and records where it was moved (``placed``)."""

    def __init__(self):
        super().__init__()
        self.placed: list = []  # the device of every .to(...) call

    def to(self, *args, **kwargs):
        self.placed.append(args[0] if args else kwargs.get("device"))
        return super().to(*args, **kwargs)


def _table(vectors: dict[Hashable, Sequence[float]], what: str, normalised: bool) -> dict[Hashable, torch.Tensor]:
    """``vectors`` as float64 tensors of one dimension (unit length when ``normalised``)."""
    table = {name: torch.tensor([float(c) for c in v], dtype=torch.float64) for name, v in vectors.items()}
    dims = {len(v) for v in table.values()}
    if len(dims) > 1:
        raise ValueError(f"the designed {what} vectors have different lengths {sorted(dims)}: give one dimension.")
    if normalised:
        for v in table.values():
            unit(*v.tolist())
    return table


def _look_up(table: dict[Hashable, torch.Tensor], names, what: str) -> torch.Tensor:
    """The rows of ``table`` for ``names``, ``[N, D]``; a name without a designed vector is an error naming it."""
    missing = [n for n in names if n not in table]
    if missing:
        raise KeyError(
            f"no designed {what} vector for {missing}: the metric asked for something the test did not design"
        )
    return torch.stack([table[n] for n in names])


class DesignedClip(ClipBackbone):
    """A ``ClipBackbone`` whose image and text features are the given unit vectors (see the module doc)."""

    def __init__(self, images: dict[Hashable, Sequence[float]], texts: dict[str, Sequence[float]], max_tokens=77):
        super().__init__(Placement(), None, DESIGNED_PREPROCESS, "designed CLIP (tests/designed_backbones.py)")
        self.images = _table(images, "image", normalised=True)
        self.texts = _table(texts, "text", normalised=True)
        self.window = max_tokens
        self.text_calls: list[tuple[list[str], str]] = []  # (texts, mode) of every text_features call

    @property
    def max_tokens(self) -> int:
        return self.window

    def image_features(self, images) -> torch.Tensor:
        """``[N, D]`` the designed vectors of the named frames."""
        return _look_up(self.images, list(images), "image")

    def text_features(self, texts, mode: str = "chunk") -> tuple[torch.Tensor, list[dict[str, int]]]:
        """``[T, D]`` the designed vectors of ``texts``; per text its words as tokens, one window, nothing cut."""
        texts = list(texts)
        self.text_calls.append((texts, mode))
        records = [{"tokens": len(t.split()), "windows": 1, "truncated": 0} for t in texts]
        return _look_up(self.texts, texts, "text"), records


class DesignedDino(DinoBackbone):
    """A ``DinoBackbone`` whose CLS embeddings are the given vectors, ``masked`` ones for frames given a mask."""

    def __init__(self, whole: dict[Hashable, Sequence[float]], masked: dict[Hashable, Sequence[float]] | None = None):
        super().__init__(Placement(), DESIGNED_PREPROCESS, "designed DINOv2 (tests/designed_backbones.py)")
        self.whole = _table(whole, "whole-frame", normalised=False)
        self.masked = _table(masked or {}, "masked-object", normalised=False)
        self.calls: list[list[tuple[Hashable, bool]]] = []  # per embeddings call: (frame, had a mask) per frame

    def embeddings(self, images, masks=None) -> torch.Tensor:
        """``[N, D]``: per frame its ``masked`` vector when its mask is not None, else its ``whole`` vector."""
        images = list(images)
        masks = [None] * len(images) if masks is None else list(masks)
        if len(masks) != len(images):
            raise ValueError(f"{len(images)} frames but {len(masks)} masks reached the backbone")
        had = [m is not None for m in masks]
        self.calls.append(list(zip(images, had)))
        rows = [
            _look_up(self.masked if m else self.whole, [name], "masked-object" if m else "whole-frame")[0]
            for name, m in zip(images, had)
        ]
        return torch.stack(rows)
