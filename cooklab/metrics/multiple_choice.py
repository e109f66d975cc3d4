"""Goal and step faithfulness as the Illustrated Instructions protocol computes them: 4-way multiple choice with CLIP.

Menon et al. (*Generating Illustrated Instructions*, CVPR 2024) measure faithfulness as a
multiple-choice test; CookAnything reports goal and step faithfulness on that protocol (through
RecipeGen, which follows it). Its public reimplementation (github
``sachit-menon/generating-illustrated-instructions-reproduction``: ``clip_test_cmd.py`` and
``helpers.reshape_for_multiple_choice``) scores a group of K pictures ``x_1..x_K`` with their K
texts ``t_1..t_K`` (picture m belongs with text m) on OpenCLIP ViT-H/14 (LAION-2B) features ``f``
(image) and ``g`` (text), each L2-normalised::

    S[m, n]    = cos(f(x_m), g(t_n))                   no logit scale (temperature 1)
    P[m, n]    = exp(S[m, n]) / sum_m' exp(S[m', n])   softmax over the IMAGES (dim -2): for text n,
                                                       which of the K pictures shows it
    pred(m)    = argmax_n P[m, n]                      ties: the first n
    correct(m) = 1[pred(m) = m]                        value = mean over the rows of every group

Chance is 1/K. Four identical pictures make every ``P[m, n] = 1/K``: every row ties, predicts
``n = 0``, and only row 0 is right -- accuracy exactly 1/K whatever the texts (what "one picture
repeated" -- CookAnything without SRC -- should score).

* **step faithfulness** (``step_faithfulness_mc``; the reference's ``metric='step'``): per
  sequence, K = 4 distinct steps drawn at random (``randperm(N)[:4]``); their frames and their step
  texts are one group. A sequence of fewer than 4 steps is one group of K = N (recorded).
* **goal faithfulness** (``goal_faithfulness_mc``; ``metric='goal'``): each frame is labelled with
  its sequence's goal (the recipe's title); a group is an anchor (frame, goal) and 3 (frame, goal)
  pairs drawn at random from the frames of the evaluated set whose goal differs from the anchor's;
  all 4 rows are scored, each counted for the sequence its picture belongs to. **Set-level**: it
  needs the frames of other recipes (``cooklab evaluate`` computes it per table row,
  ``evaluation/set_scoring.py``).

Deviations, each a parameter: the reference anchors every 4th frame of its flattened batch
(padding the last group with random repeats); cooklab anchors every frame (``anchor_stride=1``;
``anchor_stride=4`` is the reference's, without padding). The reference's draws come from one
global ``torch.manual_seed(42)``; cooklab's from a ``torch.Generator`` seeded explicitly
(``seed``; for the step draws combined with the sequence's texts, so every recipe draws its own
steps and every method of one recipe the same ones) and recorded. Texts: the reference's OpenCLIP
tokenizer cuts at 77 tokens, hence ``text_mode="truncate"``.
"""

from __future__ import annotations

import hashlib
import json

import torch
import torch.nn.functional as F

from ..backbones.clip import OPENCLIP_VIT_H14, ClipBackbone, clip_backbone
from ..errors import ConfigError
from .clip_score import text_record
from .result import MetricResult, mean_or_nan, provenance

__all__ = [
    "CHOICES",
    "NORMALIZE",
    "draw_seed",
    "goal_faithfulness_mc",
    "goal_groups",
    "multiple_choice_correct",
    "step_faithfulness_mc",
]

#: the reference's number of choices per group
CHOICES = 4
#: which axis the softmax normalises: over the pictures for each text (the reference's), or over the texts
NORMALIZE = ("images", "texts")
CROP = "whole frame, centre crop"
FORMULA = "softmax over images of cos(image_m, text_n); correct if argmax_n = m; mean over rows"


def multiple_choice_correct(
    image_features: torch.Tensor, text_features: torch.Tensor, normalize: str = "images", scale: float = 1.0
) -> torch.Tensor:
    """``[G, K]`` bool: is row m of group g right, ``argmax_n P[m, n] == m`` (the module doc's equations).

    image_features, text_features: ``[G, K, D]``, picture m of group g belongs with text m
    (L2-normalised here). normalize: ``"images"`` (the reference: softmax over the pictures, dim -2)
    or ``"texts"`` (over the texts, dim -1: "pick the text given the picture"). scale: the logit
    scale multiplying the cosines (the reference's: 1).
    """
    if normalize not in NORMALIZE:
        raise ConfigError(f"normalize={normalize!r}: choose one of {list(NORMALIZE)}.")
    if image_features.shape != text_features.shape or image_features.ndim != 3:
        raise ConfigError(
            f"image features {tuple(image_features.shape)} and text features {tuple(text_features.shape)}: give "
            "both as [groups, choices, dim], picture m of a group with text m."
        )
    f, g = F.normalize(image_features.float(), dim=-1), F.normalize(text_features.float(), dim=-1)
    s = scale * torch.einsum("gmd,gnd->gmn", f, g)  # [G, K, K]: S[m, n] = cos(image m, text n)
    p = s.softmax(dim=-2 if normalize == "images" else -1)  # [G, K, K]
    pred = p.argmax(dim=-1)  # [G, K]: the first n on ties
    return pred == torch.arange(s.shape[-1])  # [G, K]


def draw_seed(seed: int, texts: list[str]) -> int:
    """The step draw's generator seed: ``seed`` and the sequence's texts hashed (sha256), a 63-bit number."""
    digest = hashlib.sha256(json.dumps([seed, list(texts)]).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def _check_choices(choices: int) -> None:
    if not isinstance(choices, int) or choices < 2:
        raise ConfigError(f"choices={choices!r}: a multiple choice needs a whole number of at least 2 choices.")


def step_faithfulness_mc(
    images,
    texts: list[str],
    clip: str | ClipBackbone = OPENCLIP_VIT_H14,
    choices: int = CHOICES,
    seed: int = 0,
    text_mode: str = "truncate",
    normalize: str = "images",
) -> MetricResult:
    """Step faithfulness, 4-way multiple choice: ``choices`` random steps of one sequence, each picture against their
    step texts; per_item: 1.0 per row answered right."""
    _check_choices(choices)
    images, texts = list(images), list(texts)
    if len(images) != len(texts):
        raise ConfigError(f"{len(images)} images but {len(texts)} texts: give one step text per frame.")
    if len(images) < 2:
        raise ConfigError(f"{len(images)} image(s): a multiple choice among steps needs at least 2 frames.")
    clip = clip_backbone(clip)
    k = min(choices, len(images))
    generator = torch.Generator().manual_seed(draw_seed(seed, texts))
    steps = torch.randperm(len(images), generator=generator)[:k].tolist()  # the K steps of the group, in drawn order
    f = clip.image_features([images[i] for i in steps])  # [K, D]
    g, per_text = clip.text_features([texts[i] for i in steps], text_mode)  # [K, D]
    per_item = multiple_choice_correct(f[None], g[None], normalize)[0].float().tolist()  # [K]
    return MetricResult(
        mean_or_nan(per_item),
        per_item,
        provenance(
            "step_faithfulness_mc",
            clip.source,
            clip.preprocess,
            CROP,
            choices=k,
            chance=1 / k,
            seed=seed,
            draw_seed=draw_seed(seed, texts),
            steps=[i + 1 for i in steps],
            normalize=normalize,
            text=text_record(clip, text_mode, per_text),
            formula=FORMULA,
        ),
    )


def goal_groups(goals: list[str], choices: int, seed: int, anchor_stride: int) -> torch.Tensor:
    """``[G, K]`` frame indices: each anchor (every ``anchor_stride``-th frame) and K - 1 frames of other goals.

    K = ``choices``, or fewer when some anchor has fewer frames of another goal (every group the same K).
    """
    label = torch.tensor([sorted(set(goals)).index(goal) for goal in goals])  # [F]
    anchors = list(range(0, len(goals), anchor_stride))
    others = [torch.nonzero(label != label[a]).flatten() for a in anchors]  # per anchor: the frames of other goals
    fewest = min(len(o) for o in others)
    if fewest == 0:
        raise ConfigError(
            "goal faithfulness compares a frame's goal with other recipes' goals: every sequence given has the goal "
            f"{goals[0]!r}. Fix: score sequences of at least 2 different recipes together."
        )
    k = min(choices, 1 + fewest)
    generator = torch.Generator().manual_seed(seed)
    rows = [
        torch.cat([torch.tensor([a]), o[torch.randperm(len(o), generator=generator)[: k - 1]]])
        for a, o in zip(anchors, others)
    ]
    return torch.stack(rows)  # [G, K]


def goal_faithfulness_mc(
    sequences,
    clip: str | ClipBackbone = OPENCLIP_VIT_H14,
    choices: int = CHOICES,
    seed: int = 0,
    anchor_stride: int = 1,
    text_mode: str = "truncate",
    normalize: str = "images",
) -> list[MetricResult]:
    """Goal faithfulness, 4-way multiple choice over a set of sequences: one ``MetricResult`` per sequence.

    sequences: ``(images, goal)`` per sequence (the goal: its recipe's title). Every frame anchors a
    group (``anchor_stride=4``: every 4th, the reference's) with ``choices - 1`` frames of other goals
    drawn from the whole set; each row counts for the sequence its picture belongs to (per_item:
    1.0 per row answered right; a sequence no row fell on gets nan and a note).
    """
    _check_choices(choices)
    if not isinstance(anchor_stride, int) or anchor_stride < 1:
        raise ConfigError(f"anchor_stride={anchor_stride!r}: anchor every frame (1) or every n-th (a whole n >= 1).")
    sequences = [(list(images), str(goal)) for images, goal in sequences]
    frames = [image for images, _ in sequences for image in images]
    owner = [s for s, (images, _) in enumerate(sequences) for _ in images]  # frame -> its sequence
    goals = [goal for images, goal in sequences for _ in images]  # frame -> its goal
    if not frames:
        raise ConfigError("no frames were given: pass (images, goal) for at least 2 recipes.")
    clip = clip_backbone(clip)
    rows = goal_groups(goals, choices, seed, anchor_stride)  # [G, K] frame indices
    names = list(dict.fromkeys(goals))
    g, per_text = clip.text_features(names, text_mode)  # [U, D]
    f = clip.image_features(frames)  # [F, D]
    text_of = torch.tensor([names.index(goal) for goal in goals])  # [F]
    correct = multiple_choice_correct(f[rows], g[text_of[rows]], normalize)  # [G, K]
    per_sequence: list[list[float]] = [[] for _ in sequences]
    for frame, ok in zip(rows.flatten().tolist(), correct.flatten().tolist()):
        per_sequence[owner[frame]].append(float(ok))
    k = rows.shape[1]
    results = []
    for (_, goal), items in zip(sequences, per_sequence):
        note = {} if items else {"note": "no group's row fell on this sequence's frames (value nan)"}
        record = provenance(
            "goal_faithfulness_mc",
            clip.source,
            clip.preprocess,
            CROP,
            goal=goal,
            choices=k,
            chance=1 / k,
            seed=seed,
            anchor_stride=anchor_stride,
            groups=rows.shape[0],
            sequences=len(sequences),
            normalize=normalize,
            text=text_record(clip, text_mode, [per_text[names.index(goal)]]),
            formula=FORMULA,
            **note,
        )
        results.append(MetricResult(mean_or_nan(items), items, record))
    return results
