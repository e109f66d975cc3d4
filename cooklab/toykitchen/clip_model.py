"""The Toy Kitchen CLIP: a small ``CLIPModel`` trained contrastively on rendered scenes and their captions.

CLIP score, goal / step faithfulness and cross-step consistency (``cooklab.metrics``) need a CLIP
that has seen pictures like the ones it scores. No real checkpoint can be downloaded here, and
OpenAI's CLIP has never seen the Toy Kitchen, so this module defines one that has:

* **architecture** -- a transformers ``CLIPModel``: a ViT image tower on 64 x 64 pictures (8 x 8
  patches -> 64 tokens + CLS, ``VISION``) and a text tower (``TEXT``) reading the toy models'
  tokenizer (``architectures.clip_tokenizer``: one token per word of ``captions.WORDS``, 32 positions),
  both projected to ``PROJECTION_DIM``; small enough to train on a laptop CPU;
* **objective** -- CLIP's symmetric InfoNCE with a learned temperature, each picture also against
  a hard-negative caption with one ingredient (or the colour) changed (``contrastive_loss``,
  ``caption_pair``): without them a batch is solved from colour and container alone;
* **data** -- ``dataset.render_dataset`` scenes (none holding a ``dataset.HELD_OUT`` triple) and
  frames the toy pipelines generated, captioned by what the oracle reads in them (``generated.py``),
  each with a fresh random caption every time it is drawn (``training_captions.sample_caption_pairs``, no empty ones);
* **evaluation** -- ``heldout_retrieval``: one rendered scene per held-out caption
  (``evaluate.heldout_captions``), top-1 retrieval image -> caption and caption -> image.

Training is the ``clip`` stage of ``cooklab toykitchen train`` (``clip_training.train_clip``); the
weights ship in ``data/toykitchen/clip`` (float16, with the tokenizer and a
``CLIPImageProcessor``) and ``cooklab.models.toy_clip()`` loads them as a
``cooklab.backbones.ClipBackbone``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..backbones.clip import CLIP_MEAN, CLIP_STD  # OpenAI CLIP's normalisation, what the backbone's Preprocess applies
from ..models.toy import CLIP_MAX_LENGTH, IMAGE_SIZE
from .architectures import clip_tokenizer
from .world import PATTERNS, TABLES, Ingredient, Scene, random_position, render

#: ViT image tower: 64 x 64 pictures in 8 x 8 patches (64 patch tokens + CLS), width 64, 3 layers
VISION = dict(
    image_size=IMAGE_SIZE,
    patch_size=8,
    hidden_size=64,
    intermediate_size=256,
    num_hidden_layers=3,
    num_attention_heads=4,
    hidden_act="quick_gelu",
)
#: text tower: one token per world word (``architectures.clip_tokenizer``), 32 positions, width 64, 3 layers
TEXT = dict(
    hidden_size=64,
    intermediate_size=256,
    num_hidden_layers=3,
    num_attention_heads=4,
    max_position_embeddings=CLIP_MAX_LENGTH,
    hidden_act="quick_gelu",
)
PROJECTION_DIM = 64  # the shared embedding space of f(x) and g(t)


def build_clip(tokenizer=None):
    """An untrained Toy Kitchen ``CLIPModel`` (text tower ``TEXT``, image tower ``VISION``)."""
    from transformers import CLIPConfig, CLIPModel

    tokenizer = tokenizer or clip_tokenizer()
    text = dict(
        TEXT,
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return CLIPModel(CLIPConfig(text_config=text, vision_config=VISION, projection_dim=PROJECTION_DIM))


def image_processor():
    """The ``CLIPImageProcessor`` saved with the model: 64 x 64 in, CLIP's mean and std (what the backbone reads)."""
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(
        size={"shortest_edge": IMAGE_SIZE},
        crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        image_mean=list(CLIP_MEAN),
        image_std=list(CLIP_STD),
    )


def pixels(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``[B, 64, 64, 3]`` -> CLIP-normalised float ``[B, 3, 64, 64]`` (what ``backbones.preprocess.prepare``
    gives at 64 x 64)."""
    x = images.permute(0, 3, 1, 2).float() / 255  # [B, 3, 64, 64] in [0, 1]
    mean, std = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    return (x - mean.to(x.device)) / std.to(x.device)


def trim(input_ids: torch.Tensor, eos_token_id: int) -> torch.Tensor:
    """``[B, 32]`` -> ``[B, L]``: drop the padding columns after the longest caption's end token.

    The text tower is causal and reads its pooled feature at the end token, so the columns after
    it never change the result; toy captions are ~10 tokens, so this saves most of the text tower's work.
    """
    length = int((input_ids == eos_token_id).int().argmax(1).max()) + 1  # first end token of the longest caption
    return input_ids[:, :length]


def contrastive_loss(
    model, pixel_values: torch.Tensor, input_ids: torch.Tensor, negative_ids: torch.Tensor | None = None
) -> torch.Tensor:
    """CLIP's symmetric InfoNCE over a batch of B (picture, caption) pairs, optionally with one hard-negative caption
    each.

    With L2-normalised projected features ``f_i = f(x_i)``, ``g_j = g(t_j)`` and the learned
    temperature ``tau = exp(-logit_scale)`` (``logit_scale`` starts at log(1/0.07), capped at
    log 100 as in CLIP)::

        s_ij = f_i . g_j / tau                                    (logits, [B, B])
        L = 1/2 * [ -1/B sum_i log softmax_j(s_ij)[i]              (picture i -> its caption)
                    -1/B sum_j log softmax_i(s_ij)[j] ]            (caption j -> its picture)

    i.e. the mean of the two cross-entropies with the diagonal as the target. With hard negatives
    ``n_j = g(t'_j)`` -- caption j with one word changed so that it no longer describes picture j
    (``hard_negative``) -- the picture -> caption term chooses among all 2B captions, as NegCLIP
    (Yuksekgonul et al., 2023) does against CLIP's bag-of-words habit::

        picture i -> caption:  -log softmax over [s_i1 .. s_iB, f_i . n_1 / tau .. f_i . n_B / tau] at i

    (the caption -> picture term is unchanged). A batch then cannot be solved from colour and
    container alone: the right caption and its negative differ only in the ingredient (or colour).
    pixel_values: ``[B, 3, 64, 64]`` (``pixels``); input_ids, negative_ids: ``[B, L]`` (start, words, end, padding;
    ``trim``).
    """
    f = F.normalize(model.get_image_features(pixel_values=pixel_values).pooler_output, dim=-1)  # [B, D]
    texts = (
        input_ids
        if negative_ids is None
        else _same_length(input_ids, negative_ids, model.config.text_config.pad_token_id)
    )
    g = F.normalize(model.get_text_features(input_ids=texts).pooler_output, dim=-1)  # [B or 2B, D]
    with torch.no_grad():
        model.logit_scale.clamp_(max=np.log(100.0))
    logits = (
        model.logit_scale.exp() * f @ g.T
    )  # [B, B or 2B]: row i = picture i against every caption (negatives last)
    target = torch.arange(len(f), device=logits.device)  # [B]: the matching pairs are the diagonal
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits[:, : len(f)].T, target))


def _same_length(a: torch.Tensor, b: torch.Tensor, pad: int) -> torch.Tensor:
    """``[B, La]`` and ``[B, Lb]`` token ids padded to one length and stacked: ``[2B, max(La, Lb)]``."""
    n = max(a.shape[1], b.shape[1])
    return torch.cat([F.pad(a, (0, n - a.shape[1]), value=pad), F.pad(b, (0, n - b.shape[1]), value=pad)])


def hard_negative(scene: Scene, rng: np.random.Generator) -> Scene:
    """``scene`` with one fact changed: one of its ingredients replaced by one it does not hold (in the same state
    where the new one can be in it), or -- for a scene without food -- another container colour."""
    from .world import ALLOWED_STATES, CONTAINER_COLOURS, INGREDIENTS

    if not scene.ingredients:
        return replace(scene, colour=str(rng.choice([c for c in CONTAINER_COLOURS if c != scene.colour])))
    k = int(rng.integers(len(scene.ingredients)))
    old = scene.ingredients[k]
    name = str(rng.choice([n for n in INGREDIENTS if scene.ingredient(n) is None]))
    state = old.state if old.state in ALLOWED_STATES[name] else str(rng.choice(ALLOWED_STATES[name]))
    return replace(scene, ingredients=(*scene.ingredients[:k], Ingredient(name, state), *scene.ingredients[k + 1 :]))


def caption_pair(scene: Scene, rng: np.random.Generator, caption=None) -> tuple[str, str]:
    """A random caption of ``scene`` and the same template filled from ``hard_negative(scene)``; ``caption(scene,
    rng)`` draws them (the training set's world's, ``ToyDataset.caption``; None: ``captions.random_caption``).

    Both captions are drawn from the same random state, so they choose the same template and leave out
    the same words; when the changed fact is one the caption leaves out (the two texts are equal), the
    negative changes the colour instead.
    """
    from .captions import random_caption

    caption = caption or random_caption
    negative = hard_negative(scene, rng)
    state = rng.bit_generator.state
    positive = caption(scene, rng)
    after = rng.bit_generator.state
    for other in (negative, replace(scene, colour=hard_negative(replace(scene, ingredients=()), rng).colour)):
        rng.bit_generator.state = state
        text = caption(other, rng)
        if text != positive:
            break
    rng.bit_generator.state = after
    return positive, text


def heldout_retrieval(backbone, n: int = 200, seed: int = 0) -> dict:
    """Top-1 retrieval on the held-out triples, which no training picture shows.

    ``evaluate.heldout_captions(n, seed)`` gives n captions "a {colour} {container} with {state}
    {ingredient}" cycling through the 20 held-out triples; each gets one rendered scene
    (``heldout_scene``, seeded). Captions repeat (20 triples x a few states), so retrieval is
    scored against the ``K`` distinct captions:

    * ``image_to_caption`` -- of the n pictures, the share whose nearest caption (of the K) is its own;
    * ``caption_to_image`` -- of the K captions, the share whose nearest picture (of the n) has that caption;
    * ``image_to_triple`` -- the share whose nearest caption names its (colour, container, ingredient),
      whatever the state word;

    with chance levels ``1/K`` (image -> caption) and the mean share of pictures with a caption (caption -> image).
    """
    from .evaluate import heldout_captions, heldout_scene

    items = heldout_captions(n, seed)
    rng = np.random.default_rng(seed)
    images = [render(heldout_scene(e, rng), IMAGE_SIZE).image for _, e in items]
    captions = sorted({c for c, _ in items})  # the K distinct captions
    own = torch.tensor([captions.index(c) for c, _ in items])  # [n]: each picture's caption
    f = backbone.image_features(images)  # [n, D]
    g, _ = backbone.text_features(captions)  # [K, D]
    sims = f @ g.T  # [n, K]
    nearest_caption = sims.argmax(1)  # [n]
    nearest_image = sims.argmax(0)  # [K]
    triple = {c: (e.colour, e.container, e.ingredient) for c, e in items}
    return {
        "n": n,
        "seed": seed,
        "captions": len(captions),
        "image_to_caption": float((nearest_caption == own).float().mean()),
        "caption_to_image": float((own[nearest_image] == torch.arange(len(captions))).float().mean()),
        "image_to_triple": float(
            np.mean([triple[captions[k]] == triple[c] for k, (c, _) in zip(nearest_caption.tolist(), items)])
        ),
        "chance_image_to_caption": 1 / len(captions),
        "chance_caption_to_image": float(np.mean([(own == k).float().mean() for k in range(len(captions))])),
    }


def save_clip(model, tokenizer, folder: Path) -> None:
    """``save_pretrained`` of the model (float16 safetensors), its tokenizer and image processor into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    model.to(torch.float16).save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    image_processor().save_pretrained(folder)


# ---------------------------------------------------------------------------
# Agreement with the oracle: does a higher CLIP score mean a more faithful frame?
# ---------------------------------------------------------------------------


def contrast_pairs(n: int, seed: int = 0) -> list[tuple[str, Scene, Scene]]:
    """``n`` (caption, true scene, corrupted scene) triples for a faithful-vs-unfaithful check on rendered frames.

    The true scene holds one ingredient and the caption names it, "a {colour} {container} with
    {state} {ingredient}"; the corrupted scene is the same scene with, alternately, another
    ingredient (in the same state where it can be, else its first allowed state) or another
    container colour -- a frame the oracle calls unfaithful to the caption.
    """
    from .captions import CONTAINER_WORDS, PLURAL, STATE_WORDS
    from .world import ALLOWED_STATES, CONTAINER_COLOURS, CONTAINERS, INGREDIENTS

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        container, colour = (
            CONTAINERS[rng.integers(len(CONTAINERS))],
            list(CONTAINER_COLOURS)[rng.integers(len(CONTAINER_COLOURS))],
        )
        name = list(INGREDIENTS)[rng.integers(len(INGREDIENTS))]
        state = str(rng.choice(ALLOWED_STATES[name]))
        true = Scene(
            container=container,
            colour=colour,
            pattern=PATTERNS[rng.integers(len(PATTERNS))],
            table=list(TABLES)[rng.integers(len(TABLES))],
            position=random_position(rng),
            ingredients=(Ingredient(name, state),),
            layout_seed=int(rng.integers(2**31)),
        )
        if i % 2 == 0:
            other = str(rng.choice([k for k in INGREDIENTS if k != name]))
            wrong = replace(
                true,
                ingredients=(
                    Ingredient(other, state if state in ALLOWED_STATES[other] else ALLOWED_STATES[other][0]),
                ),
            )
        else:
            wrong = replace(true, colour=str(rng.choice([c for c in CONTAINER_COLOURS if c != colour])))
        out.append((f"a {colour} {CONTAINER_WORDS[container]} with {STATE_WORDS[state]} {PLURAL[name]}", true, wrong))
    return out


def ranks(values) -> np.ndarray:
    """Ranks 1..n of ``values``, ties sharing their mean rank."""
    values = np.asarray(values, dtype=float)
    order = values.argsort(kind="stable")
    r = np.empty(len(values))
    r[order] = np.arange(1, len(values) + 1)
    for v in np.unique(values):  # average the ranks of tied values
        tied = values == v
        r[tied] = r[tied].mean()
    return r


def roc_auc(scores, labels) -> float:
    """Area under the ROC curve of ``scores`` separating ``labels`` 1 from 0: P(score of a 1 > score of a 0), ties
    counting 1/2.

    Mann-Whitney: ``AUC = (R_1 - n_1 (n_1 + 1) / 2) / (n_1 n_0)`` with ``R_1`` the rank sum of the 1s.
    0.5 is chance, 1 a perfect separation.
    """
    labels = np.asarray(labels, dtype=bool)
    n1, n0 = int(labels.sum()), int((~labels).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    return float((ranks(scores)[labels].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def spearman(a, b) -> float:
    """Spearman's rank correlation: the Pearson correlation of the (tie-averaged) ranks."""
    ra, rb = ranks(a), ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])
