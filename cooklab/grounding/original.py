"""GroundingDINO + SAM on the packages the paper used: groundingdino-py and segment-anything.

Same mask provider as ``GroundedSAM`` (same thresholds, same box choice, same
``MaskResult``), on the original code and the original checkpoint files:

* GroundingDINO SwinT-OGC: ``groundingdino_swint_ogc.pth`` + the bundled config
  ``SWINT_OGC_CONFIG`` + a local bert-base-uncased folder (groundingdino-py's text encoder).
* SAM ViT-H: ``sam_vit_h_4b8939.pth`` with ``sam_model_type="vit_h"`` (``vit_l`` / ``vit_b``
  take their own files).

groundingdino-py 0.4.0 does not run on transformers 5 as shipped; the model is built through
``groundingdino_compat`` (see its docstring for what breaks and how it is fixed).
Preprocessing follows the upstream demo: the shorter image side is resized to 800 pixels
(the longer one capped at 1333), ImageNet mean/std normalisation.
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms.functional as TF

from ..errors import CheckpointError, ConfigError
from ..images import pil_rgb
from ..models import default_device
from .grounded_sam import Detections, DetectThenSegment, grounding_caption
from .groundingdino_compat import (
    build_groundingdino,
    check_text_encoder,
    ensure_bert_compat,
    quiet_upstream_warnings,
    swint_ogc_config,
)
from .provider import Box

__all__ = [
    "GROUNDINGDINO_SWINT_OGC_URL",
    "SAM_CHECKPOINT_URLS",
    "SWINT_OGC_CONFIG",
    "OriginalGroundedSAM",
    "detector_input_size",
    "load_groundingdino_weights",
    "load_sam",
]

#: The config file of GroundingDINO SwinT-OGC shipped inside groundingdino-py.
SWINT_OGC_CONFIG = swint_ogc_config()
#: Where the paper's detector weights are published (also on the hub: ShilongLiu/GroundingDINO).
GROUNDINGDINO_SWINT_OGC_URL = (
    "https://github.com/IDEA-Research/GroundingDINO/releases/download/v0.1.0-alpha/groundingdino_swint_ogc.pth"
)
#: segment-anything's checkpoint files per model type.
SAM_CHECKPOINT_URLS = {
    "vit_h": "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth",
    "vit_l": "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_l_0b3195.pth",
    "vit_b": "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth",
}

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def _torch_load(path: Path, what: str, weights_only: bool):
    try:
        return torch.load(str(path), map_location="cpu", weights_only=weights_only)
    except pickle.UnpicklingError as error:
        raise CheckpointError(
            f"{what} {str(path)!r} holds Python objects besides tensors, which torch.load(weights_only=True) refuses "
            f"({error}). If you trust the file (e.g. downloaded from the official release), pass weights_only=False."
        ) from error
    except (OSError, RuntimeError, EOFError) as error:
        raise CheckpointError(
            f"cannot read the {what} {str(path)!r} ({type(error).__name__}: {error}); download it again."
        ) from error


def _existing_file(path, what: str, fix: str) -> Path:
    path = Path(str(path)).expanduser()
    if not path.is_file():
        raise CheckpointError(f"{what} {str(path)!r} is not a file. Fix: {fix}.")
    return path


def load_groundingdino_weights(model: torch.nn.Module, checkpoint, weights_only: bool = True) -> dict:
    """Load a GroundingDINO ``.pth`` (``{"model": state_dict}`` or a bare state dict) into ``model``.

    Loads on the CPU (``map_location="cpu"``), strips DataParallel's ``module.`` prefix and
    loads non-strictly like upstream, but refuses a file none of whose weights fit and
    warns about missing ones. Returns ``{"missing": [...], "unexpected": [...]}``.
    """
    path = _existing_file(checkpoint, "groundingdino_checkpoint", f"download {GROUNDINGDINO_SWINT_OGC_URL}")
    state = _torch_load(path, "GroundingDINO checkpoint", weights_only)
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if not isinstance(state, dict):
        raise CheckpointError(f"{str(path)!r} is not a GroundingDINO checkpoint (no state dict inside).")
    state = {key.removeprefix("module."): value for key, value in state.items()}
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as error:  # shape mismatch: config and checkpoint disagree (SwinT vs SwinB ...)
        raise CheckpointError(
            f"{str(path)!r} does not fit the GroundingDINO config (a SwinB file with the SwinT config?): {error}"
        ) from error
    if len(result.unexpected_keys) == len(state):
        raise CheckpointError(
            f"{str(path)!r}: none of its {len(state)} weights belongs to GroundingDINO; is it a GroundingDINO "
            "checkpoint?"
        )
    if result.missing_keys:
        warnings.warn(
            f"GroundingDINO checkpoint {path.name}: {len(result.missing_keys)} weights keep their random values "
            f"(e.g. {result.missing_keys[:3]})",
            stacklevel=2,
        )
    return {"missing": list(result.missing_keys), "unexpected": list(result.unexpected_keys)}


def load_sam(checkpoint, model_type: str = "vit_h", weights_only: bool = True) -> torch.nn.Module:
    """Build segment-anything's ``Sam`` of ``model_type`` and load ``checkpoint`` on the CPU.

    (segment-anything's own builder calls ``torch.load`` without ``map_location``, which
    fails for CUDA-saved tensors on a machine without CUDA.)
    """
    from segment_anything import sam_model_registry

    if model_type not in sam_model_registry:
        raise ConfigError(
            f"sam_model_type={model_type!r}: choose one of {sorted(sam_model_registry)} (the paper used 'vit_h')."
        )
    url = SAM_CHECKPOINT_URLS.get(model_type, SAM_CHECKPOINT_URLS["vit_h"])
    path = _existing_file(checkpoint, "sam_checkpoint", f"download {url}")
    state = _torch_load(path, "SAM checkpoint", weights_only)
    sam = sam_model_registry[model_type](checkpoint=None)
    try:
        sam.load_state_dict(state)
    except RuntimeError as error:
        files = ", ".join(u.rsplit("/", 1)[1] for u in SAM_CHECKPOINT_URLS.values())
        raise CheckpointError(
            f"{str(path)!r} does not fit sam_model_type={model_type!r} (files: {files}): {str(error)[:300]}"
        ) from error
    return sam.eval()


def detector_input_size(height: int, width: int, size: int = 800, max_size: int = 1333) -> tuple[int, int]:
    """(h, w) GroundingDINO's demo resizes an image to: shorter side ``size``, longer side at most ``max_size``."""
    short, long = min(height, width), max(height, width)
    if long / short * size > max_size:
        size = int(round(max_size * short / long))
    if height <= width:
        return size, int(size * width / height)
    return int(size * height / width), size


class OriginalGroundedSAM(DetectThenSegment):
    """GroundingDINO (groundingdino-py) + SAM (segment-anything) mask provider, the paper's original stack.

    ``sam_checkpoint``: e.g. ``sam_vit_h_4b8939.pth`` (``sam_model_type`` must match).
    ``groundingdino_config``: ``SWINT_OGC_CONFIG`` for the paper's SwinT-OGC.
    ``groundingdino_checkpoint``: ``groundingdino_swint_ogc.pth``.
    ``text_encoder``: a LOCAL folder of bert-base-uncased (model + tokenizer).
    ``weights_only``: passed to ``torch.load``; the official files are plain state dicts.
    ``image_size`` / ``max_size``: the detector's input resize (800 / 1333 as upstream).
    Missing files, a non-folder text encoder or a mismatched file raise ``CheckpointError``.
    """

    source = "grounded-sam-original"

    def __init__(
        self,
        sam_checkpoint: str,
        groundingdino_config: str,
        groundingdino_checkpoint: str,
        text_encoder: str,
        sam_model_type: str = "vit_h",
        box_threshold: float = 0.35,
        text_threshold: float = 0.25,
        device=None,
        *,
        weights_only: bool = True,
        image_size: int = 800,
        max_size: int = 1333,
    ):
        from segment_anything import SamPredictor

        device = torch.device(device) if device is not None else default_device()
        # cheap checks first, so a wrong path fails before ViT-H is built
        _existing_file(groundingdino_checkpoint, "groundingdino_checkpoint", f"download {GROUNDINGDINO_SWINT_OGC_URL}")
        _existing_file(
            sam_checkpoint,
            "sam_checkpoint",
            f"download {SAM_CHECKPOINT_URLS.get(sam_model_type, SAM_CHECKPOINT_URLS['vit_h'])}",
        )
        check_text_encoder(text_encoder)
        sam = load_sam(sam_checkpoint, sam_model_type, weights_only)
        detector = build_groundingdino(groundingdino_config, text_encoder)
        self.load_report = load_groundingdino_weights(detector, groundingdino_checkpoint, weights_only)
        self._setup(
            detector.to(device), SamPredictor(sam.to(device)), box_threshold, text_threshold, image_size, max_size
        )

    @classmethod
    def from_models(
        cls,
        groundingdino_model,
        sam_predictor_or_model,
        *,
        box_threshold: float = 0.35,
        text_threshold: float = 0.25,
        image_size: int = 800,
        max_size: int = 1333,
    ) -> OriginalGroundedSAM:
        """Wrap a groundingdino-py model (built after ``ensure_bert_compat()``) and a ``Sam`` or ``SamPredictor``."""
        from segment_anything import SamPredictor
        from segment_anything.modeling import Sam

        ensure_bert_compat()
        if not (isinstance(groundingdino_model, torch.nn.Module) and hasattr(groundingdino_model, "tokenizer")):
            raise ConfigError(
                "groundingdino_model must be groundingdino-py's GroundingDINO model, got "
                f"{type(groundingdino_model).__name__}."
            )
        if isinstance(sam_predictor_or_model, Sam):
            predictor = SamPredictor(sam_predictor_or_model.eval())
        elif isinstance(sam_predictor_or_model, SamPredictor):
            predictor = sam_predictor_or_model
        else:
            raise ConfigError(
                "sam_predictor_or_model must be a segment_anything Sam or SamPredictor, got "
                f"{type(sam_predictor_or_model).__name__}."
            )
        self = cls.__new__(cls)
        self.load_report = None
        self._setup(groundingdino_model.eval(), predictor, box_threshold, text_threshold, image_size, max_size)
        return self

    def _setup(self, detector, predictor, box_threshold, text_threshold, image_size, max_size) -> None:
        self.detector, self.predictor = detector, predictor
        self.image_size, self.max_size = int(image_size), int(max_size)
        self._set_thresholds(box_threshold, text_threshold)

    @property
    def device(self) -> torch.device:
        return next(self.detector.parameters()).device

    @property
    def sam(self) -> torch.nn.Module:
        return self.predictor.model

    def preprocess(self, image) -> torch.Tensor:
        """[3, h, w] detector input: resized as upstream, scaled to [0, 1], ImageNet-normalised."""
        image = pil_rgb(image)
        h, w = detector_input_size(image.height, image.width, self.image_size, self.max_size)
        x = TF.to_tensor(TF.resize(image, [h, w]))
        return TF.normalize(x, _IMAGENET_MEAN, _IMAGENET_STD)

    def _label(self, keep: torch.Tensor, input_ids: list[int]) -> str:
        """Decode the caption tokens marked in ``keep`` (special tokens excluded)."""
        tokenizer = self.detector.tokenizer
        special = set(tokenizer.all_special_ids)
        ids = [
            input_ids[t]
            for t in keep.nonzero().flatten().tolist()
            if t < len(input_ids) and input_ids[t] not in special
        ]
        return tokenizer.decode(ids) if ids else ""

    @torch.inference_mode()
    def detect(self, image, phrase: str) -> Detections:
        """GroundingDINO boxes for ``phrase``: pixel boxes, scores and labels above the thresholds."""
        image = pil_rgb(image)
        caption = grounding_caption(phrase)
        x = self.preprocess(image).to(self.device, next(self.detector.parameters()).dtype)
        with quiet_upstream_warnings():
            out = self.detector(x[None], captions=[caption])
        probs = out["pred_logits"][0].float().sigmoid().cpu()  # [Q, max_text_len] per caption token
        cxcywh = out["pred_boxes"][0].float().cpu()  # [Q, 4] (cx, cy, w, h) in [0, 1]
        scores = probs.max(dim=-1).values  # [Q]
        keep = scores > self.box_threshold
        input_ids = self.detector.tokenizer(caption)["input_ids"]
        labels = [self._label(p > self.text_threshold, input_ids) for p in probs[keep]]
        cx, cy, bw, bh = cxcywh[keep].unbind(-1)
        scale = torch.tensor([image.width, image.height, image.width, image.height], dtype=torch.float32)
        boxes = torch.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], dim=-1) * scale  # [N, 4] pixels
        return Detections.build(
            caption, boxes, scores[keep], labels, (image.height, image.width), self.box_threshold, self.text_threshold
        )

    def segment(self, image, box: Box) -> tuple[torch.Tensor, torch.Tensor]:
        """SAM's three candidate masks for a pixel box: ([3, H, W] bool, predicted IoU [3])."""
        image = pil_rgb(image)
        self.predictor.set_image(np.asarray(image))  # RGB uint8 [H, W, 3]
        masks, ious, _ = self.predictor.predict(box=np.asarray(box, dtype=np.float32), multimask_output=True)
        return torch.from_numpy(masks).bool(), torch.from_numpy(ious).float()
