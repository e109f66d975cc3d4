"""GroundingDINO + SAM on transformers' native models: a container phrase -> a box -> a mask.

Recipe Diffusion (Sec. III-C) finds the persisting container in the reference image
``I_j`` with GroundingDINO (open-vocabulary detection from a phrase) and cuts it out with
SAM (a mask from the detected box). ``GroundedSAM`` does exactly that with
``transformers.GroundingDinoForObjectDetection`` and ``transformers.SamModel``:

    caption = "white bowl."                     GroundingDINO wants lower case ending in "."
    boxes, scores, labels = GroundingDINO(image, caption)
        score_q = max_t sigmoid(logit[q, t])    keep queries with score_q > box_threshold
        label_q = caption tokens t with sigmoid(logit[q, t]) > text_threshold
    box = best-scoring box whose label names the phrase          (None if there is none)
    masks, iou = SAM(image, box)                three candidate masks and their predicted IoU
    mask = the candidate with the highest predicted IoU, resized to the image, binary

It is a ``MaskProvider``: ``provider(image, phrase) -> MaskResult | None``.
``Detections`` / ``DetectThenSegment`` are shared with the segment-anything +
groundingdino-py backend in ``original.py``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoConfig, GroundingDinoForObjectDetection, GroundingDinoProcessor, SamModel, SamProcessor

from ..errors import CheckpointError, ConfigError
from ..hub import HUB_ERRORS, explain_hub_error, hub_kwargs, is_repo_id
from ..images import pil_rgb
from ..models import default_device
from .provider import Box, MaskResult

__all__ = [
    "DEFAULT_DETECTOR",
    "DEFAULT_SEGMENTER",
    "DetectThenSegment",
    "Detections",
    "GroundedSAM",
    "grounding_caption",
    "label_matches",
    "named_grounded_sam",
]

#: GroundingDINO Swin-T (the paper's SwinT-OGC weights, converted to transformers by IDEA-Research).
DEFAULT_DETECTOR = "IDEA-Research/grounding-dino-tiny"
#: SAM ViT-B. The paper used ViT-H: pass segmenter="facebook/sam-vit-huge" for the exact setting.
DEFAULT_SEGMENTER = "facebook/sam-vit-base"


# ---------------------------------------------------------------------------
# Phrases and labels
# ---------------------------------------------------------------------------

_SPECIAL_TOKEN = re.compile(r"\[[a-z]+\]|<[^>]*>")  # [cls] [sep] [pad] [unk] <s> </s> after lower()


def grounding_caption(phrase: str) -> str:
    """The caption GroundingDINO was trained on: lower case, single spaces, ending with ".".

    ``"White Bowl"`` -> ``"white bowl."``; ``"bowl."`` stays ``"bowl."``.
    """
    text = " ".join(str(phrase).lower().split()).rstrip(". ")
    if not text:
        raise ConfigError(f"phrase {phrase!r} is empty: give the object to find, e.g. 'white bowl'.")
    return text + "."


def _words(text: str) -> list[str]:
    """Lower-case words of a decoded label or phrase, without special tokens and word-piece marks."""
    text = _SPECIAL_TOKEN.sub(" ", text.lower()).replace("##", "")
    return re.findall(r"[a-z0-9]+", text)


def clean_label(label: str) -> str:
    """A decoded label without special tokens and the caption's dots (``"bowl. [SEP]"`` -> ``"bowl"``)."""
    return " ".join(_words(label))


def label_matches(label: str, phrase: str) -> bool:
    """True when a detection's label names (part of) the phrase.

    The label is the caption tokens whose probability passed ``text_threshold``; each of its
    words (or word pieces, e.g. ``"##kin"``) must occur in the phrase for it to count, and an
    empty label - no token passed ``text_threshold`` - never matches. With one phrase per
    caption this rejects exactly the boxes that passed ``box_threshold`` without any token of
    the phrase being confident.
    """
    words = _words(label)
    joined = " ".join(_words(phrase))
    return bool(words) and all(word in joined for word in words)


# ---------------------------------------------------------------------------
# Shared detect -> segment logic
# ---------------------------------------------------------------------------


@dataclass
class Detections:
    """GroundingDINO's answer for one image and one caption (boxes above ``box_threshold``)."""

    caption: str  # the text the detector saw, e.g. "white bowl."
    boxes: torch.Tensor  # [N, 4] (x0, y0, x1, y1) in image pixels, clipped to the image, best score first
    scores: torch.Tensor  # [N] box confidence: max over caption tokens of sigmoid(logit)
    labels: list[str]  # [N] caption words whose token probability passed text_threshold ("" if none)
    image_hw: tuple[int, int]  # (H, W) of the image the boxes refer to
    box_threshold: float = 0.0
    text_threshold: float = 0.0

    @classmethod
    def build(cls, caption, boxes, scores, labels, image_hw, box_threshold=0.0, text_threshold=0.0) -> Detections:
        """Clip pixel boxes to the image, clean the labels and sort by score (highest first)."""
        h, w = image_hw
        boxes = torch.as_tensor(boxes, dtype=torch.float32).detach().cpu().reshape(-1, 4).clone()
        scores = torch.as_tensor(scores, dtype=torch.float32).detach().cpu().reshape(-1)
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, w)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, h)
        order = torch.argsort(scores, descending=True, stable=True)
        labels = [clean_label(labels[i]) for i in order.tolist()]
        return cls(
            caption, boxes[order], scores[order], labels, (int(h), int(w)), float(box_threshold), float(text_threshold)
        )

    def __len__(self) -> int:
        return len(self.scores)

    def best(self, phrase: str) -> int | None:
        """Index of the highest-scoring non-empty box whose label matches ``phrase``, or None."""
        for i in range(len(self)):  # sorted by score
            x0, y0, x1, y1 = self.boxes[i].tolist()
            if x1 > x0 and y1 > y0 and label_matches(self.labels[i], phrase):
                return i
        return None


def _check_threshold(name: str, value) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ConfigError(
            f"{name}={value} must be in [0, 1] (a probability; GroundingDINO's defaults are 0.35 and 0.25)."
        )
    return value


class DetectThenSegment:
    """Base of the GroundingDINO + SAM providers: ``__call__`` = detect, pick a box, segment it.

    Subclasses implement ``detect(image, phrase) -> Detections`` and
    ``segment(image, box) -> (masks [K, H, W] bool, predicted IoU [K])``.
    """

    source = "grounded-sam"

    def _set_thresholds(self, box_threshold: float, text_threshold: float) -> None:
        self.box_threshold = box_threshold
        self.text_threshold = text_threshold

    @property
    def box_threshold(self) -> float:
        """Keep a box when its best caption-token probability is > this."""
        return self._box_threshold

    @box_threshold.setter
    def box_threshold(self, value: float) -> None:
        self._box_threshold = _check_threshold("box_threshold", value)

    @property
    def text_threshold(self) -> float:
        """A caption token belongs to a box's label when its probability is > this."""
        return self._text_threshold

    @text_threshold.setter
    def text_threshold(self, value: float) -> None:
        self._text_threshold = _check_threshold("text_threshold", value)

    def detect(self, image, phrase: str) -> Detections:  # pragma: no cover - abstract
        raise NotImplementedError

    def segment(self, image, box: Box) -> tuple[torch.Tensor, torch.Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, image, phrase: str) -> MaskResult | None:
        """The mask of ``phrase`` in ``image``: GroundingDINO's best box for the phrase prompts SAM.

        Args:
            image: the frame (PIL image, array or tensor; converted to RGB).
            phrase: the object to find, e.g. "a blue pot".

        Returns a ``MaskResult`` (SAM's mask with the best predicted IoU, its box and scores), or None if no box
        passes the thresholds.
        """
        image = pil_rgb(image)
        found = self.detect(image, phrase)
        k = found.best(phrase)
        if k is None:
            return None
        box = tuple(float(v) for v in found.boxes[k])
        masks, ious = self.segment(image, box)  # [K, H, W] bool, [K]
        j = int(torch.argmax(ious))
        mask = masks[j].to(torch.float32)  # [H, W] in {0, 1}
        return MaskResult(
            mask=mask,
            phrase=phrase,
            box=box,
            score=float(found.scores[k]),
            source=self.source,
            extra={
                "iou": float(ious[j]),
                "labels": list(found.labels),
                "all_boxes": found.boxes.tolist(),
                "scores": found.scores.tolist(),
                "label": found.labels[k],
                "caption": found.caption,
                "mask_index": j,
                "ious": ious.tolist(),
            },
        )

    def __repr__(self) -> str:
        thresholds = f"box_threshold={self.box_threshold}, text_threshold={self.text_threshold}"
        return f"{type(self).__name__}({thresholds}, device={self.device})"


# ---------------------------------------------------------------------------
# transformers backend
# ---------------------------------------------------------------------------


def _load(model_class, processor_class, id_or_path: str, model_type: str, role: str, default: str, kwargs: dict):
    """from_pretrained a model + its processor from a hub id or a local folder, or raise CheckpointError."""
    id_or_path = str(id_or_path)
    path = Path(id_or_path).expanduser()
    if path.is_dir():
        source, is_local = str(path), True
    elif path.exists():
        raise CheckpointError(
            f"{role} {id_or_path!r} is a file; pass a folder written by save_pretrained (model and processor) or a "
            f"hub id like {default!r}."
        )
    elif not is_repo_id(id_or_path):
        raise CheckpointError(
            f"{role} {id_or_path!r} is not an existing folder, nor a valid Hugging Face Hub id like {default!r}."
        )
    else:
        source, is_local = id_or_path, False
    hub = hub_kwargs(kwargs)
    try:
        config = AutoConfig.from_pretrained(source, **hub)
        if config.model_type != model_type:
            raise CheckpointError(
                f"{role} {id_or_path!r} holds a {config.model_type!r} model; GroundedSAM needs a {model_type!r} "
                f"checkpoint here, such as {default!r}."
            )
        model = model_class.from_pretrained(source, **{**kwargs, **hub})
        processor = processor_class.from_pretrained(source, **hub)
    except (*HUB_ERRORS, ValueError) as error:  # ValueError: a config.json without a known model_type
        if is_local or isinstance(error, ValueError):
            raise CheckpointError(
                f"cannot load the {role} {source!r} ({type(error).__name__}: {error}). Fix: it needs the model "
                f"and its processor: model.save_pretrained(DIR) and processor.save_pretrained(DIR), or "
                f"`hf download {default} --local-dir DIR`."
            ) from error
        raise explain_hub_error(id_or_path, error) from error
    tokenizer = getattr(processor, "tokenizer", None)
    if tokenizer is not None and len(tokenizer) <= 2:  # offline loads can give a 2-token tokenizer without an error
        raise CheckpointError(
            f"{role} {id_or_path!r}: its tokenizer loaded with only {len(tokenizer)} tokens, so the files are missing "
            f"or incomplete; download the whole repo (`hf download {default} --local-dir DIR`) and pass DIR."
        )
    return model, processor


class GroundedSAM(DetectThenSegment):
    """GroundingDINO + SAM mask provider on transformers' ``GroundingDinoForObjectDetection`` and ``SamModel``.

    ``detector`` / ``segmenter``: hub ids or local folders holding a model and its processor
    (defaults: ``IDEA-Research/grounding-dino-tiny``, ``facebook/sam-vit-base``; the paper
    used GroundingDINO SwinT-OGC and SAM ViT-H = ``facebook/sam-vit-huge``).
    ``box_threshold`` / ``text_threshold``: GroundingDINO's usual 0.35 / 0.25 (attributes,
    change them any time). ``device`` defaults to ``cooklab.models.default_device()``,
    ``dtype`` to float32. Other keywords go to ``from_pretrained`` (``cache_dir``,
    ``revision``, ``token`` ...). Hub or folder problems raise ``CheckpointError`` with the fix.

    Use ``from_models`` for models already in memory (tests, notebooks), ``GroundedSAM.toy()`` for the pair
    trained on the Toy Kitchen.
    """

    source = "grounded-sam"

    def __init__(
        self,
        detector: str = DEFAULT_DETECTOR,
        segmenter: str = DEFAULT_SEGMENTER,
        box_threshold: float = 0.35,
        text_threshold: float = 0.25,
        device=None,
        dtype=None,
        **from_pretrained_kwargs,
    ):
        device = torch.device(device) if device is not None else default_device()
        dtype = dtype or torch.float32
        kwargs = {"dtype": dtype, **from_pretrained_kwargs}
        det_model, det_processor = _load(
            GroundingDinoForObjectDetection,
            GroundingDinoProcessor,
            detector,
            "grounding-dino",
            "detector",
            DEFAULT_DETECTOR,
            kwargs,
        )
        sam_model, sam_processor = _load(
            SamModel, SamProcessor, segmenter, "sam", "segmenter", DEFAULT_SEGMENTER, kwargs
        )
        self._setup(
            det_model.to(device, dtype),
            det_processor,
            sam_model.to(device, dtype),
            sam_processor,
            box_threshold,
            text_threshold,
        )
        self.detector_id, self.segmenter_id = str(detector), str(segmenter)

    @classmethod
    def from_models(
        cls,
        detector_model,
        detector_processor,
        sam_model,
        sam_processor,
        *,
        box_threshold: float = 0.35,
        text_threshold: float = 0.25,
    ) -> GroundedSAM:
        """Wrap models already in memory (they stay on their device and dtype)."""
        if not isinstance(detector_model, GroundingDinoForObjectDetection):
            raise ConfigError(
                "detector_model must be a transformers GroundingDinoForObjectDetection, got "
                f"{type(detector_model).__name__}."
            )
        if not isinstance(sam_model, SamModel):
            raise ConfigError(f"sam_model must be a transformers SamModel, got {type(sam_model).__name__}.")
        self = cls.__new__(cls)
        self._setup(detector_model, detector_processor, sam_model, sam_processor, box_threshold, text_threshold)
        self.detector_id = getattr(detector_model, "name_or_path", "") or "(in memory)"
        self.segmenter_id = getattr(sam_model, "name_or_path", "") or "(in memory)"
        return self

    @classmethod
    def toy(
        cls, path=None, device=None, box_threshold: float = 0.2, text_threshold: float = 0.15, **kwargs
    ) -> GroundedSAM:
        """The GroundingDINO + SAM trained on the Toy Kitchen (``data/toykitchen/grounding``), offline.

        ``provider(image, phrase)`` returns a ``MaskResult`` (the container's [H, W] mask at the image size, its pixel
        box, the detector's score) or None. ``path``: a folder holding ``detector/`` and ``segmenter/`` (default: the
        shipped pair); ``device`` defaults to the CPU (the models are small); other ``kwargs`` go to ``GroundedSAM``
        (``dtype``). Thresholds 0.2 / 0.15: the toy detector's scores of a present container lie between 0.25 and 0.6
        (its focal loss keeps them low), so GroundingDINO's 0.35 / 0.25 missed 5 % of the containers in validation
        scenes (seed 5) and these found all. ``mask_provider="grounded-sam"`` resolves to this for the Toy Kitchen
        pipelines (``cooklab.grounding.registry``). Model card: ``data/toykitchen/grounding/README.md``.
        """
        from ..models.toy import TOY_DIR

        folder = Path(path) if path is not None else TOY_DIR / "grounding"
        for part in ("detector", "segmenter"):
            if not (folder / part / "config.json").is_file():
                raise CheckpointError(
                    f"no trained Toy Kitchen {part} in {folder / part}: a checkout ships it in "
                    f"data/toykitchen/grounding/{part}; rebuild it with "
                    f"`cooklab toykitchen train --stages {part} --out {folder.parent}`."
                )
        return cls(
            detector=str(folder / "detector"),
            segmenter=str(folder / "segmenter"),
            box_threshold=box_threshold,
            text_threshold=text_threshold,
            device=device or "cpu",
            local_files_only=True,
            **kwargs,
        )

    def _setup(self, detector, detector_processor, sam, sam_processor, box_threshold, text_threshold) -> None:
        self.detector, self.detector_processor = detector.eval(), detector_processor
        self.sam, self.sam_processor = sam.eval(), sam_processor
        self._set_thresholds(box_threshold, text_threshold)

    @property
    def device(self) -> torch.device:
        return next(self.detector.parameters()).device

    @torch.inference_mode()
    def detect(self, image, phrase: str) -> Detections:
        """GroundingDINO boxes for ``phrase`` in ``image``: pixel boxes, scores and labels above the thresholds."""
        image = pil_rgb(image)
        caption = grounding_caption(phrase)
        inputs = self.detector_processor(images=image, text=caption, return_tensors="pt")
        dtype = next(self.detector.parameters()).dtype
        inputs = {
            k: (v.to(self.device, dtype) if v.is_floating_point() else v.to(self.device)) for k, v in inputs.items()
        }
        outputs = self.detector(**inputs)
        found = self.detector_processor.post_process_grounded_object_detection(
            outputs,
            inputs["input_ids"],
            threshold=self.box_threshold,
            text_threshold=self.text_threshold,
            target_sizes=[(image.height, image.width)],
        )[0]
        labels = (
            found["text_labels"] if "text_labels" in found else found["labels"]
        )  # "labels" before transformers 4.51
        return Detections.build(
            caption,
            found["boxes"],
            found["scores"],
            labels,
            (image.height, image.width),
            self.box_threshold,
            self.text_threshold,
        )

    @torch.inference_mode()
    def segment(self, image, box: Box) -> tuple[torch.Tensor, torch.Tensor]:
        """SAM's three candidate masks for a pixel box: ([3, H, W] bool at the image size, predicted IoU [3])."""
        image = pil_rgb(image)
        inputs = self.sam_processor(images=image, input_boxes=[[[float(v) for v in box]]], return_tensors="pt")
        param = next(self.sam.parameters())
        outputs = self.sam(
            pixel_values=inputs["pixel_values"].to(param.device, param.dtype),
            input_boxes=inputs["input_boxes"].to(
                param.device, param.dtype
            ),  # [1 image, 1 box, 4] in SAM's resized frame
            multimask_output=True,
        )
        masks = self.sam_processor.post_process_masks(
            outputs.pred_masks.float().cpu(), inputs["original_sizes"], inputs["reshaped_input_sizes"]
        )[0][0]  # [1 image][1 box] -> [3, H, W] bool
        return masks.bool(), outputs.iou_scores[0, 0].float().cpu()


def named_grounded_sam(toy: bool = False, device=None) -> GroundedSAM:
    """What ``"grounded-sam"`` names: for pictures of the Toy Kitchen models (``toy``) the GroundingDINO + SAM trained
    on the toy world (``GroundedSAM.toy()``, offline), otherwise ``DEFAULT_DETECTOR`` + ``DEFAULT_SEGMENTER``."""
    return GroundedSAM.toy(device=device) if toy else GroundedSAM(device=device)
