"""Image and text feature backbones: CLIP and DINOv2, shared by the metrics and the Toy Kitchen.

* ``preprocess`` -- ``Preprocess`` (a transformers image processor's numbers), pictures to normalised
  batches (whole or masked), batched forward passes, loading from a hub id or a folder, devices
* ``clip`` -- ``ClipBackbone``: a ``CLIPModel`` with its tokenizer; normalised image and text features
* ``dino`` -- ``DinoBackbone``: a ``Dinov2Model``; CLS embeddings of whole frames or masked objects
* ``digest`` -- ``weights_digest``: a model's weights as one short hash (what a stored score was measured with)

``cooklab.metrics`` measures with them (and re-exports them); ``cooklab.models.toy_clip()`` loads
the CLIP trained on the Toy Kitchen as a ``ClipBackbone``. Importing this package loads torch but
neither diffusers nor transformers' models.
"""

from .clip import (
    CLIP_MEAN,
    CLIP_STD,
    DEFAULT_CLIP,
    OPENCLIP_VIT_H14,
    TEXT_MODES,
    ClipBackbone,
    clip_backbone,
    tiny_random_clip,
)
from .digest import weights_digest
from .dino import DEFAULT_DINO, DINOV2_LARGE, DinoBackbone, dino_backbone, square_preprocess, tiny_random_dino
from .preprocess import DEFAULT_BATCH_SIZE, Preprocess, batched_features, load_pretrained, prepare, resolve_device

__all__ = [
    "CLIP_MEAN",
    "CLIP_STD",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_CLIP",
    "DEFAULT_DINO",
    "DINOV2_LARGE",
    "OPENCLIP_VIT_H14",
    "TEXT_MODES",
    "ClipBackbone",
    "DinoBackbone",
    "Preprocess",
    "batched_features",
    "clip_backbone",
    "dino_backbone",
    "load_pretrained",
    "prepare",
    "resolve_device",
    "square_preprocess",
    "tiny_random_clip",
    "tiny_random_dino",
    "weights_digest",
]
