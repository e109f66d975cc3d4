"""The text side of the Toy Kitchen's training stages: fresh captions per picture, and their token ids.

``sample_captions`` draws a new caption for every picture each time it is drawn (classifier-free guidance's
dropout included), ``sample_caption_pairs`` a caption and its hard negative for the CLIP stage, and
``BatchTokenizer`` turns a batch of captions into the ids the pipelines' tokenizers give.
"""

from __future__ import annotations

import numpy as np
import torch


def sample_caption_pairs(data, idx, rng: np.random.Generator) -> tuple[list[str], list[str]]:
    """A fresh caption per picture and its hard negative (``clip.caption_pair``, drawn by ``data.caption``: the
    world's); half written as a sentence, both alike."""
    from .clip_model import caption_pair

    positives, negatives = [], []
    for i in idx.tolist():
        pos, neg = caption_pair(data.scenes[i], rng, data.caption)
        if rng.random() < 0.5:
            pos, neg = pos[:1].upper() + pos[1:] + ".", neg[:1].upper() + neg[1:] + "."
        positives.append(pos)
        negatives.append(neg)
    return positives, negatives


def sample_captions(data, idx, rng: np.random.Generator, dropout: float) -> list[str]:
    """A fresh caption per picture (``data.caption``: the world's, ``captions.random_caption`` in v2); half written
    as a recipe step ("Chop the carrots in the bowl."); a share ``dropout`` empty."""
    texts = []
    for i in idx.tolist():
        text = "" if rng.random() < dropout else data.caption(data.scenes[i], rng)
        texts.append(text[:1].upper() + text[1:] + "." if text and rng.random() < 0.5 else text)
    return texts


class BatchTokenizer:
    """``tokenizer(texts, padding="max_length", truncation=True).input_ids`` as the pipelines call it, batched in Rust.

    The Python side of ``tokenizer(...)`` costs ~0.15 ms per caption, which at batch 256 was most of a
    training step; the Rust tokenizer's ``encode_batch`` gives the same ids (checked on the first batch).
    """

    def __init__(self, tokenizer):
        import copy

        self.tokenizer = tokenizer
        self.fast = copy.deepcopy(tokenizer.backend_tokenizer)
        n = tokenizer.model_max_length
        self.fast.enable_truncation(n)
        self.fast.enable_padding(length=n, pad_id=tokenizer.pad_token_id, pad_token=tokenizer.pad_token)
        self.checked = False

    def __call__(self, texts, device) -> torch.Tensor:
        """Token ids of ``texts``, padded to the tokenizer's length; the first batch is checked against the slow path.

        Args:
            texts: the captions of one batch.
            device: where the ``[B, L]`` id tensor goes.
        """
        ids = torch.tensor([e.ids for e in self.fast.encode_batch(texts)])
        if not self.checked:
            slow = self.tokenizer(
                texts,
                padding="max_length",
                max_length=self.tokenizer.model_max_length,
                truncation=True,
                return_tensors="pt",
            ).input_ids
            if not torch.equal(ids, slow):
                raise RuntimeError(
                    "fast tokenization differs from the tokenizer's own: train with the tokenizer call instead"
                )
            self.checked = True
        return ids.to(device)
