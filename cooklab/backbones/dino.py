"""The DINOv2 backbone: a transformers ``Dinov2Model`` and its image ``Preprocess``.

``DinoBackbone.embeddings`` gives ``h(x)``, the DINOv2 CLS embedding (``pooler_output``: the CLS
token after the final layer norm, not L2-normalised), of whole frames or of masked objects
(``preprocess.prepare``). ``cooklab.metrics.dino_distance`` measures distances between them.

``dino_backbone(source)``: a hub id or local folder (default ``"facebook/dinov2-base"``; the
Illustrated Instructions protocol uses ``DINOV2_LARGE``, ViT-L/14, with ``square_preprocess``), a
built ``Dinov2Model``, or a ``DinoBackbone`` passed through; ``tiny_random_dino()`` is a small
random-weight DINOv2 built from a config in code (tests).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .preprocess import DEFAULT_BATCH_SIZE, Preprocess, batched_features, load_pretrained, resolve_device

if TYPE_CHECKING:
    from transformers import Dinov2Model

__all__ = [
    "DEFAULT_DINO",
    "DINOV2_LARGE",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "DinoBackbone",
    "dino_backbone",
    "square_preprocess",
    "tiny_random_dino",
]

DEFAULT_DINO = "facebook/dinov2-base"
#: the Illustrated Instructions reference's consistency backbone (torch hub ``dinov2_vitl14``) on the Hugging Face Hub
DINOV2_LARGE = "facebook/dinov2-large"
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # DINOv2's normalisation (BitImageProcessor of facebook/dinov2-*)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class DinoBackbone:
    """A DINOv2 model with its image preprocessing; ``source`` names where it came from."""

    model: Dinov2Model
    preprocess: Preprocess
    source: str
    batch_size: int = DEFAULT_BATCH_SIZE  # pictures per forward pass

    def embeddings(self, images, masks=None) -> torch.Tensor:
        """``[N, D]`` CLS embeddings (after the final layer norm, not normalised), ``batch_size`` frames at a time on
        the model's device."""
        device = next(self.model.parameters()).device
        return batched_features(
            lambda pixels: self.model(pixel_values=pixels).pooler_output,
            images,
            self.preprocess,
            masks,
            batch_size=self.batch_size,
            device=device,
            dtype=self.model.dtype,
            desc="DINOv2 images",
        )


def square_preprocess(pre: Preprocess) -> Preprocess:
    """The reference's DINOv2 preprocessing at ``pre``'s crop and normalisation: both sides resized, then centre crop.

    The Illustrated Instructions reference (``clip_image_test.py``) resizes to 256 x 256 (the
    aspect is not kept), centre-crops 224 x 224 and normalises with the ImageNet mean and std;
    for a crop ``c`` this is ``Resize((round(256 c / 224),) * 2)``, ``CenterCrop(c)`` (``c = 224``:
    the reference's numbers; a smaller backbone, the Toy Kitchen's, keeps the ratio).
    """
    return Preprocess(resize=round(pre.crop * 256 / 224), crop=pre.crop, mean=pre.mean, std=pre.std, square=True)


def dino_backbone(
    source: str | Path | DinoBackbone | Dinov2Model = DEFAULT_DINO,
    preprocess: Preprocess | None = None,
    device: str | torch.device | None = None,
    batch_size: int | None = None,
    **from_pretrained_kwargs,
) -> DinoBackbone:
    """A ``DinoBackbone`` from a hub id / local folder or a built ``Dinov2Model``, or passed through.

    device: where the model runs (``"auto"``: CUDA when available, else the CPU; None: where it is).
    batch_size: frames per forward pass (None: keep the backbone's, ``DEFAULT_BATCH_SIZE`` for a new one).
    """
    from transformers import AutoImageProcessor, Dinov2Model

    if isinstance(source, DinoBackbone):
        backbone = source
    elif isinstance(source, Dinov2Model):
        size = int(source.config.image_size)
        preprocess = preprocess or Preprocess(resize=size, crop=size, mean=IMAGENET_MEAN, std=IMAGENET_STD)
        backbone = DinoBackbone(
            source.eval(), preprocess, f"in memory (Dinov2Model, {source.name_or_path or 'no name'})"
        )
    else:
        model = load_pretrained(Dinov2Model, source, **from_pretrained_kwargs).eval()
        preprocess = preprocess or Preprocess.from_processor(
            load_pretrained(AutoImageProcessor, source, **from_pretrained_kwargs)
        )
        backbone = DinoBackbone(model, preprocess, str(source))
    if device is not None:
        backbone.model.to(resolve_device(device))
    if batch_size is not None:
        backbone.batch_size = batch_size
    return backbone


def tiny_random_dino(seed: int = 0, image_size: int = 28) -> DinoBackbone:
    """A small ``Dinov2Model`` with random weights, built from a config in code (tests; meaningless numbers)."""
    from transformers import Dinov2Config, Dinov2Model

    torch.manual_seed(seed)
    config = Dinov2Config(
        image_size=image_size, patch_size=7, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, mlp_ratio=2
    )
    model = Dinov2Model(config).eval()
    preprocess = Preprocess(resize=image_size, crop=image_size, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    return DinoBackbone(model, preprocess, f"tiny_random_dino(seed={seed}, image_size={image_size})")
