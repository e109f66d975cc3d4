"""A GroundingDINO and a SAM trained on the Toy Kitchen: Recipe Diffusion's detection step, offline.

Recipe Diffusion (Sec. III-C) finds the persisting container in the reference frame with
GroundingDINO and cuts it out with SAM. The public checkpoints need the hub; these are the same
transformers classes (``GroundingDinoForObjectDetection``, ``SamModel``) from small configs,
trained on rendered Toy Kitchen scenes, whose renderer knows the exact box and mask of the
container. ``cooklab.grounding.GroundedSAM.toy()`` loads the shipped pair.

Training data: scenes from ``world.random_scene`` (never a ``dataset.HELD_OUT`` triple), rendered
at 64 x 64; the container mask is ``fill_holes(labels >= 1)``, the rim with everything on it, as
``oracle.container_mask`` reads it; the box is that mask's extent. Pictures are lightly blurred,
noised and colour-shifted so that generated frames (softer, off-palette) look like training data.

**Detector.** Caption: a container phrase in GroundingDINO's form, ``"blue pot."``, ``"pot."``,
``"cutting board."``. Positives name the container shown (with or without its colour); negatives
(``negative_share``) name another colour or another kind, or show an empty table, meant to make a
wrong phrase score low (the shipped detector learned to reject an empty table, not the wrong words:
``docs/toykitchen.md``). With one object per picture Hungarian matching reduces to picking, per
picture, the query ``q*`` of least matching cost (DETR's cost:
``focal_cost + 5 L1 + 2 (1 - GIoU)``), and the loss is

    L_det = sum_{q, t} focal(logit[q, t], y[q, t]) / n_pos + 5 |b_q* - b| + 2 (1 - GIoU(b_q*, b))

over the valid caption tokens ``t``, with ``y[q*, t] = 1`` on the phrase's word tokens of a
positive picture and 0 elsewhere (all 0 for a negative), on the decoder's last layer and on the
encoder's proposals. (transformers' own GroundingDINO loss needs scipy's Hungarian solver.)

**Segmenter.** SAM prompted with the container box (jittered by up to ``box_jitter`` of its size,
as a detector's box would be), three candidate masks; as in SAM, only the best candidate is
trained, and the IoU head learns each candidate's real IoU:

    L_seg = min_k [BCE(m_k, M) + dice(m_k, M)] + mean_k (iou_k - IoU(m_k > 0, M))^2

The learning rate anneals over the planned steps or ``max_minutes``, whichever ends first, so a run
stopped by the clock on a busy CPU still ends annealed. Checkpoints (``<out>/<stage>_checkpoint.pt``)
make a stopped run resume; the finished models are
``save_pretrained`` folders ``<out>/grounding/{detector,segmenter}`` (float16, with their
processors), and each stage logs ``<out>/logs/<stage>_training.json``. ``evaluate_grounding``
measures a provider against the renderer's boxes and masks and on frames of the toy SD model.

    cooklab toykitchen train --stages detector,segmenter --out data/toykitchen
    cooklab toykitchen evaluate-grounding
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.ops import box_convert, generalized_box_iou_loss, sigmoid_focal_loss

from ..fileio import atomic_write
from ..grounding.tiny import SPECIAL_WORDS, detector_from_configs, segmenter_from_configs
from ..models.toy import IMAGE_SIZE, TOY_DIR
from .captions import CONTAINER_WORDS, WORDS
from .dataset import HELD_OUT
from .oracle import container_mask, fill_holes, iou
from .training_loop import lr_factor, machine, save_float16
from .world import CONTAINER_COLOURS, CONTAINERS, random_scene, render

STAGES = ("detector", "segmenter")

# Detector: Swin of width 32 on 64 x 64 pictures (16 x 16 patches), three feature levels, a 2-layer BERT
# over the Toy Kitchen's words, d_model 64 (GroundingDINO's GroupNorm(32, d_model) needs >= 64).
SWIN = dict(
    image_size=IMAGE_SIZE,
    embed_dim=32,
    depths=[1, 1, 2, 1],
    num_heads=[1, 2, 4, 4],
    window_size=4,
    out_indices=[2, 3, 4],
)
BERT = dict(
    hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128, max_position_embeddings=64
)
DINO = dict(
    d_model=64,
    encoder_layers=2,
    decoder_layers=2,
    encoder_ffn_dim=128,
    decoder_ffn_dim=128,
    encoder_attention_heads=4,
    decoder_attention_heads=4,
    num_queries=16,
    max_text_len=32,
    encoder_n_points=2,
    decoder_n_points=2,
)
# Segmenter: a 2-layer ViT with 4 x 4 patches (16 x 16 embeddings -> 64 x 64 low-resolution masks), width 32 prompts.
SAM_VISION = dict(
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=2,
    image_size=IMAGE_SIZE,
    patch_size=4,
    output_channels=32,
    mlp_dim=128,
    global_attn_indexes=[1],
    window_size=4,
    num_pos_feats=16,
)
SAM_PROMPT = dict(hidden_size=32, image_size=IMAGE_SIZE, patch_size=4, mask_input_channels=8)
SAM_DECODER = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, mlp_dim=64, iou_head_hidden_dim=32)


@dataclass
class GroundingTrainConfig:
    """One training run of the two models (``PRESETS`` holds the run that made the shipped weights and a smoke
    test)."""

    seed: int = 0
    images: int = 6000  # rendered training scenes
    batch: int = 16
    detector_steps: int = 2000
    segmenter_steps: int = 1500
    detector_lr: float = 4e-4
    segmenter_lr: float = 1e-3
    warmup: int = 100
    negative_share: float = 0.3  # detector captions naming what the picture does not show (or an empty table)
    box_jitter: float = 0.1  # segmenter prompt boxes: each edge moved by up to this fraction of the box size
    checkpoint_every: int = 100  # steps between resumable checkpoints
    max_minutes: float | None = (
        None  # stop a stage after this long; its learning rate anneals by then (the log records the steps)
    )
    threads: int = 1  # torch CPU threads
    init_from: str | None = (
        None  # continue from the models in this folder (<init_from>/detector, /segmenter) instead of from scratch
    )


PRESETS = {
    "gpu": GroundingTrainConfig(),  # the run that made the shipped weights (it needs no GPU)
    "cpu": GroundingTrainConfig(),
    "smoke": GroundingTrainConfig(
        images=32, batch=4, detector_steps=2, segmenter_steps=2, warmup=1, checkpoint_every=1
    ),
}


# ---------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------


def build_detector(seed: int = 0):
    """(GroundingDinoForObjectDetection, GroundingDinoProcessor) untrained, with a BERT tokenizer over the toy
    words."""
    return detector_from_configs(WORDS, SWIN, BERT, DINO, IMAGE_SIZE, seed=seed)


def build_segmenter(seed: int = 0):
    """(SamModel, SamProcessor) untrained, for 64 x 64 pictures."""
    return segmenter_from_configs(SAM_VISION, SAM_PROMPT, SAM_DECODER, IMAGE_SIZE, seed=seed)


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------


@dataclass
class GroundingData:
    """Rendered scenes with the container's exact mask and box."""

    images: torch.Tensor  # [n, 64, 64, 3] uint8
    masks: torch.Tensor  # [n, 64, 64] bool: the container with everything on it
    boxes: torch.Tensor  # [n, 4] float (x0, y0, x1, y1) pixel edges
    colours: list[str]
    kinds: list[str]


def mask_box(mask: np.ndarray) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) pixel edges of a non-empty boolean mask (x1, y1 exclusive)."""
    ys, xs = np.nonzero(mask)
    return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)


def render_grounding(scenes) -> GroundingData:
    """Render ``scenes`` at 64 x 64 with their container masks and boxes."""
    images, masks, boxes = [], [], []
    for scene in scenes:
        drawn = render(scene, IMAGE_SIZE)
        mask = fill_holes(drawn.labels >= 1)  # [H, W] as oracle.container_mask reads it
        images.append(np.asarray(drawn.image))
        masks.append(mask)
        boxes.append(mask_box(mask))
    return GroundingData(
        torch.from_numpy(np.stack(images)),
        torch.from_numpy(np.stack(masks)),
        torch.tensor(boxes),
        [s.colour for s in scenes],
        [s.container for s in scenes],
    )


def training_data(cfg: GroundingTrainConfig) -> GroundingData:
    """``cfg.images`` random scenes (no held-out triple), seeded by ``cfg.seed``."""
    rng = np.random.default_rng([cfg.seed, 15])
    return render_grounding([random_scene(rng, exclude=HELD_OUT) for _ in range(cfg.images)])


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """[B, 3, H, W] in [0, 1] -> the same, blurred (3 x 3 box, random strength), colour-shifted (+-0.05) and noised
    (sigma <= 0.04)."""
    b = x.shape[0]
    blurred = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    t = torch.rand(b, 1, 1, 1, generator=gen)
    x = (1 - t) * x + t * blurred
    x = x + (torch.rand(b, 3, 1, 1, generator=gen) - 0.5) * 0.1
    x = x + torch.randn(x.shape, generator=gen) * torch.rand(b, 1, 1, 1, generator=gen) * 0.04
    return x.clamp(0, 1)


def _normalise(x: torch.Tensor, image_processor) -> torch.Tensor:
    """[B, 3, H, W] in [0, 1] -> the processor's normalisation (its resize is the identity at 64 x 64)."""
    mean = torch.tensor(image_processor.image_mean).view(1, 3, 1, 1)
    std = torch.tensor(image_processor.image_std).view(1, 3, 1, 1)
    return (x - mean) / std


def _pixels(images: torch.Tensor) -> torch.Tensor:
    """uint8 [B, H, W, 3] -> float [B, 3, H, W] in [0, 1]."""
    return images.permute(0, 3, 1, 2).float() / 255


def container_phrases(colour: str, kind: str) -> list[str]:
    """The phrases that name a container: its kind word(s), with and without its colour ("blue pot", "pot")."""
    words = [CONTAINER_WORDS[kind]] + (["board"] if kind == "board" else [])
    return [f"{colour} {w}" for w in words] + words


def sample_caption(colour: str, kind: str, rng: np.random.Generator, negative_share: float) -> tuple[str, bool, bool]:
    """(caption, positive, hide the container): a phrase naming this container, or with ``negative_share`` one that
    does not (another colour or kind; or the container hidden, an empty table)."""
    if rng.random() >= negative_share:
        options = container_phrases(colour, kind)
        return options[rng.integers(len(options))] + ".", True, False
    what = rng.integers(5)
    if what == 4:  # empty table, the true phrase
        return f"{colour} {CONTAINER_WORDS[kind]}.", False, True
    other_colour = [c for c in CONTAINER_COLOURS if c != colour][rng.integers(len(CONTAINER_COLOURS) - 1)]
    other_kind = [k for k in CONTAINERS if k != kind][rng.integers(len(CONTAINERS) - 1)]
    if what < 2:
        return f"{other_colour} {CONTAINER_WORDS[kind]}.", False, False
    return (
        (f"{colour} {CONTAINER_WORDS[other_kind]}." if what == 2 else f"{CONTAINER_WORDS[other_kind]}."),
        False,
        False,
    )


# ---------------------------------------------------------------------------
# Losses (pure functions)
# ---------------------------------------------------------------------------


def box_cxcywh_to_xyxy(b: torch.Tensor) -> torch.Tensor:
    """(cx, cy, w, h) boxes [..., 4] as (x0, y0, x1, y1) (``torchvision.ops.box_convert``)."""
    return box_convert(b, "cxcywh", "xyxy")


def generalized_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Elementwise GIoU of (x0, y0, x1, y1) boxes [..., 4] and [..., 4]: IoU - (hull - union) / hull
    (``torchvision.ops.generalized_box_iou_loss`` is 1 - GIoU)."""
    return 1 - generalized_box_iou_loss(a, b, reduction="none")


def focal_loss(logits: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0) -> torch.Tensor:
    """Elementwise sigmoid focal loss ``-alpha_t (1 - p_t)^gamma log p_t`` (RetinaNet; GroundingDINO's class loss;
    ``torchvision.ops.sigmoid_focal_loss``)."""
    return sigmoid_focal_loss(logits, targets, alpha=alpha, gamma=gamma, reduction="none")


def one_object_detection_loss(
    logits, boxes, token_mask, positive_tokens, target_box, positive
) -> tuple[torch.Tensor, dict]:
    """GroundingDINO's set loss for at most one object per picture (matching = the cheapest query).

    logits: [B, Q, T] query x caption-token logits (-inf past the caption); boxes: [B, Q, 4] (cx, cy, w, h) in [0, 1];
    token_mask: [B, T] bool, the caption's tokens; positive_tokens: [B, T] float, 1 on the phrase's words;
    target_box: [B, 4] (cx, cy, w, h); positive: [B] bool (False: nothing to find, every query is a negative).
    Returns (loss, parts) with ``loss = class + 5 L1 + 2 (1 - GIoU)`` as in the module docstring.
    """
    logits = logits[..., : token_mask.shape[1]]
    valid = token_mask[:, None, :].expand_as(logits)  # [B, Q, T]
    safe = torch.where(valid, logits, torch.zeros_like(logits))
    with torch.no_grad():  # matching cost of each query [B, Q]
        p = safe.sigmoid()
        pos_cost = 0.25 * (1 - p) ** 2 * -(p + 1e-8).log()
        neg_cost = 0.75 * p**2 * -(1 - p + 1e-8).log()
        n_tok = positive_tokens.sum(-1, keepdim=True).clamp(min=1)  # [B, 1]
        class_cost = ((pos_cost - neg_cost) * positive_tokens[:, None, :]).sum(-1) / n_tok
        l1_cost = (boxes - target_box[:, None]).abs().sum(-1)
        giou_cost = -generalized_iou(
            box_cxcywh_to_xyxy(boxes), box_cxcywh_to_xyxy(target_box)[:, None].expand_as(boxes)
        )
        best = (class_cost + 5 * l1_cost + 2 * giou_cost).argmin(-1)  # [B]
    rows = torch.arange(logits.shape[0])
    y = torch.zeros_like(safe)  # [B, Q, T]
    y[rows, best] = positive_tokens * positive[:, None].to(y.dtype)
    n_pos = max(int(positive.sum()), 1)
    cls = (focal_loss(safe, y) * valid).sum() / n_pos
    if positive.any():
        matched = boxes[rows, best][positive]  # [P, 4]
        target = target_box[positive]
        l1 = (matched - target).abs().sum(-1).mean()
        giou = (1 - generalized_iou(box_cxcywh_to_xyxy(matched), box_cxcywh_to_xyxy(target))).mean()
    else:
        l1 = giou = safe.sum() * 0
    return cls + 5 * l1 + 2 * giou, {"class": cls.item(), "l1": l1.item(), "giou": giou.item()}


def segmentation_loss(
    mask_logits: torch.Tensor, iou_pred: torch.Tensor, target: torch.Tensor
) -> tuple[torch.Tensor, dict]:
    """SAM's multi-mask loss: the best of K candidates' BCE + dice, plus the IoU head's MSE.

    mask_logits: [B, K, h, w]; iou_pred: [B, K]; target: [B, h, w] float in {0, 1}.
    """
    t = target[:, None].expand_as(mask_logits)
    bce = F.binary_cross_entropy_with_logits(mask_logits, t, reduction="none").mean((-2, -1))  # [B, K]
    p = mask_logits.sigmoid()
    dice = 1 - (2 * (p * t).sum((-2, -1)) + 1) / (p.sum((-2, -1)) + t.sum((-2, -1)) + 1)  # [B, K]
    per_mask = bce + dice
    best = per_mask.min(-1).values.mean()
    with torch.no_grad():
        hard = mask_logits > 0
        inter = (hard & (t > 0.5)).sum((-2, -1)).float()
        union = (hard | (t > 0.5)).sum((-2, -1)).float()
        true_iou = inter / union.clamp(min=1)  # [B, K]
    iou_loss = F.mse_loss(iou_pred, true_iou)
    return best + iou_loss, {
        "mask": best.item(),
        "iou_head": iou_loss.item(),
        "best_iou": true_iou.max(-1).values.mean().item(),
    }


# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------


def _detector_batch(model, processor, data: GroundingData, idx, rng, gen, cfg) -> tuple[torch.Tensor, dict]:
    """The detector loss on pictures ``idx``, each with a freshly sampled caption."""
    captions, positive, hidden = zip(
        *(sample_caption(data.colours[i], data.kinds[i], rng, cfg.negative_share) for i in idx)
    )
    images = data.images[idx].clone()  # [B, 64, 64, 3]
    for j, (i, hide) in enumerate(zip(idx, hidden)):
        if hide:  # the container replaced by the table colour around it: an empty table
            table = images[j][~data.masks[i]].float().median(0).values.to(torch.uint8)
            images[j][data.masks[i]] = table
    x = _normalise(augment(_pixels(images), gen), processor.image_processor)  # [B, 3, 64, 64]
    text = processor.tokenizer(list(captions), padding="longest", return_tensors="pt")
    ids = text["input_ids"]  # [B, T]
    words = [processor.tokenizer.convert_ids_to_tokens(row) for row in ids.tolist()]
    positive_tokens = torch.tensor([[float(w not in SPECIAL_WORDS) for w in row] for row in words])  # [B, T]
    out = model(
        pixel_values=x,
        input_ids=ids,
        attention_mask=text["attention_mask"],
        token_type_ids=text["token_type_ids"],
        pixel_mask=torch.ones(x.shape[0], IMAGE_SIZE, IMAGE_SIZE, dtype=torch.long),
    )
    b = data.boxes[idx] / IMAGE_SIZE  # [B, 4] x0 y0 x1 y1 in [0, 1]
    target = torch.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2, b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], -1)
    token_mask = text["attention_mask"].bool()
    pos = torch.tensor(positive)
    loss, parts = one_object_detection_loss(out.logits, out.pred_boxes, token_mask, positive_tokens, target, pos)
    enc_loss, _ = one_object_detection_loss(
        out.encoder_logits, out.encoder_pred_boxes, token_mask, positive_tokens, target, pos
    )
    return loss + enc_loss, parts


def _segmenter_batch(model, processor, data: GroundingData, idx, rng, gen, cfg) -> tuple[torch.Tensor, dict]:
    """The segmenter loss on pictures ``idx`` prompted with their jittered container boxes."""
    x = _normalise(augment(_pixels(data.images[idx]), gen), processor.image_processor)  # [B, 3, 64, 64]
    box = data.boxes[idx].clone()  # [B, 4] pixel edges; the SAM frame is the picture's at 64 x 64
    size = torch.cat([box[:, 2:] - box[:, :2]] * 2, -1)
    box = (box + torch.from_numpy(rng.uniform(-cfg.box_jitter, cfg.box_jitter, box.shape)).float() * size).clamp(
        0, IMAGE_SIZE
    )
    out = model(pixel_values=x, input_boxes=box[:, None], multimask_output=True)
    logits = out.pred_masks[:, 0]  # [B, 3, 64, 64]
    target = data.masks[idx].float()
    if logits.shape[-2:] != target.shape[-2:]:
        target = F.interpolate(target[:, None], logits.shape[-2:], mode="area")[:, 0].round()
    return segmentation_loss(logits, out.iou_scores[:, 0], target)


def train_stage(stage: str, cfg: GroundingTrainConfig, out: Path, data: GroundingData | None = None) -> dict:
    """Train one model (``"detector"`` or ``"segmenter"``), resuming from ``<out>/<stage>_checkpoint.pt``.

    Saves ``<out>/grounding/<stage>`` and ``<out>/logs/<stage>_training.json``; returns the log.
    """
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}: choose from {STAGES}.")
    torch.set_num_threads(cfg.threads)
    out = Path(out)
    data = data if data is not None else training_data(cfg)
    model, processor = (build_detector if stage == "detector" else build_segmenter)(cfg.seed)
    if cfg.init_from is not None:
        model = type(model).from_pretrained(Path(cfg.init_from) / stage, dtype=torch.float32, local_files_only=True)
    model.train()
    total = cfg.detector_steps if stage == "detector" else cfg.segmenter_steps
    lr = cfg.detector_lr if stage == "detector" else cfg.segmenter_lr
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    t0 = time.perf_counter()

    def time_share() -> float:
        return 0.0 if cfg.max_minutes is None else (time.perf_counter() - t0) / (60 * cfg.max_minutes)

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, total, cfg.warmup, 0.05, time_share()))
    rng = np.random.default_rng([cfg.seed, STAGES.index(stage)])
    gen = torch.Generator().manual_seed(cfg.seed)
    ckpt = out / f"{stage}_checkpoint.pt"
    start, losses, seconds = 0, [], 0.0
    if ckpt.is_file():
        state = torch.load(ckpt, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        rng.bit_generator.state = state["rng"]
        gen.set_state(state["gen"])
        start, losses, seconds = state["step"], state["losses"], state["seconds"]
        print(f"{stage}: resuming at step {start}", flush=True)
    batch_fn = _detector_batch if stage == "detector" else _segmenter_batch
    t0 = time.perf_counter() - seconds  # the clock of a resumed run goes on from where it stopped
    acc: dict[str, float] = {}  # loss sums over the ``count`` steps since the last log row
    count = 0
    step = start
    for step in range(start, total):
        idx = rng.integers(len(data.images), size=cfg.batch).tolist()
        loss, parts = batch_fn(model, processor, data, idx, rng, gen, cfg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 0.1 if stage == "detector" else 1.0)
        opt.step()
        sched.step()
        for k, v in {"loss": loss.item(), **parts}.items():
            acc[k] = acc.get(k, 0.0) + v
        count += 1
        done = step + 1
        if done % 50 == 0 or done == total:
            n, count = count, 0
            losses.append({"step": done, **{k: round(v / n, 4) for k, v in acc.items()}})
            print(
                f"  {stage} step {done}/{total} "
                + " ".join(f"{k} {v / n:.4f}" for k, v in acc.items())
                + f"  {time.perf_counter() - t0:.0f} s",
                flush=True,
            )
            acc = {}
        if done % cfg.checkpoint_every == 0 and done < total:
            state = dict(
                model=model.state_dict(),
                opt=opt.state_dict(),
                sched=sched.state_dict(),
                rng=rng.bit_generator.state,
                gen=gen.get_state(),
                step=done,
                losses=losses,
                seconds=time.perf_counter() - t0,
            )
            atomic_write(ckpt, lambda f, s=state: torch.save(s, f))
        if time_share() >= 1:
            break
    if count:  # stopped by the clock between two log rows
        losses.append({"step": step + 1, **{k: round(v / count, 4) for k, v in acc.items()}})
    model.eval()
    save_float16(model, out / "grounding" / stage, processor)
    n_params = sum(p.numel() for p in model.parameters())
    log = dict(
        stage=stage,
        config=dataclasses.asdict(cfg),
        steps_done=step + 1 if total else 0,
        steps_planned=total,
        seconds=round(time.perf_counter() - t0, 1),
        parameters=n_params,
        machine=machine(torch.device("cpu")),
        losses=losses,
    )
    atomic_write(out / "logs" / f"{stage}_training.json", json.dumps(log, indent=1))
    ckpt.unlink(missing_ok=True)
    return log


# ---------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------


def box_iou(a, b) -> float:
    """IoU of two (x0, y0, x1, y1) boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def heldout_grounding_scenes(n: int = 200, seed: int = 1):
    """``n`` scenes of the held-out captions (``evaluate.heldout_captions``: triples no training scene shows)."""
    from .evaluate import heldout_captions, heldout_scene

    rng = np.random.default_rng([seed, 15])
    return [heldout_scene(e, rng) for _, e in heldout_captions(n, seed)]


def _phrase(colour: str, kind: str, with_colour: bool) -> str:
    return f"{colour} {CONTAINER_WORDS[kind]}" if with_colour else CONTAINER_WORDS[kind]


def evaluate_grounding(provider, n: int = 200, seed: int = 1, frames=None) -> dict[str, Any]:
    """How well ``provider`` (``(image, phrase) -> MaskResult | None``, e.g. a ``GroundedSAM``) finds the container.

    On ``n`` held-out rendered scenes (``heldout_grounding_scenes(n, seed)``), asked once with the colour and kind
    ("blue pot") and once with the kind alone ("pot", Recipe Diffusion's ``Step.container``):
    ``detection_rate`` (a result at all), ``box_iou`` and ``mask_iou`` (against the renderer's exact box and container
    mask, 0 for a miss), and ``wrong_colour_rate``: how often a phrase naming another colour ("pink pot" for a blue
    pot) still returns a result. ``frames``: generated frames and their container kinds (``generated_frames``), asked
    for their kind; ``generated.mask_iou`` is the IoU with ``oracle.container_mask`` of the frame (0 for a miss;
    frames where the oracle sees no container are left out).
    """
    scenes = heldout_grounding_scenes(n, seed)
    data = render_grounding(scenes)
    rng = np.random.default_rng([seed, 16])
    result: dict[str, Any] = {"n": n, "seed": seed}
    for name, with_colour in (("colour_and_kind", True), ("kind", False)):
        found, boxes, masks = 0, [], []
        for k, s in enumerate(scenes):
            r = provider(data.images[k].numpy(), _phrase(s.colour, s.container, with_colour))
            found += r is not None
            boxes.append(box_iou(r.box, data.boxes[k].tolist()) if r is not None else 0.0)
            masks.append(iou(r.mask.numpy() > 0.5, data.masks[k].numpy()) if r is not None else 0.0)
        result[name] = {
            "detection_rate": found / n,
            "box_iou": float(np.mean(boxes)),
            "mask_iou": float(np.mean(masks)),
        }
    wrong = 0
    for k, s in enumerate(scenes):
        other = [c for c in CONTAINER_COLOURS if c != s.colour][rng.integers(len(CONTAINER_COLOURS) - 1)]
        wrong += provider(data.images[k].numpy(), _phrase(other, s.container, True)) is not None
    result["wrong_colour_rate"] = wrong / n
    if frames is not None:
        scores, found = [], 0
        for image, kind in frames:
            truth = container_mask(image)
            if not truth.any():
                continue
            r = provider(image, CONTAINER_WORDS[kind])
            found += r is not None
            scores.append(iou(r.mask.numpy() > 0.5, truth) if r is not None else 0.0)
        result["generated"] = {
            "frames": len(frames),
            "with_container": len(scores),
            "detection_rate": found / max(len(scores), 1),
            "mask_iou": float(np.mean(scores)) if scores else 0.0,
        }
    return result


def generated_frames(n: int = 40, seed: int = 1, steps: int = 20) -> list[tuple[np.ndarray, str]]:
    """``n`` frames of the shipped toy SD model ([64, 64, 3] uint8) for the held-out captions, with their container
    kinds.

    DDIM, ``steps`` steps, CFG 3; batch ``k`` of 10 captions uses ``torch.Generator().manual_seed(seed + 10 k)``.
    """
    from ..models.toy import toy_sd
    from .evaluate import generate, heldout_captions

    items = heldout_captions(n, seed)
    pipe = toy_sd()
    images = np.concatenate(
        [
            generate(pipe, [c for c, _ in items[s : s + 10]], torch.Generator().manual_seed(seed + s), steps)
            for s in range(0, n, 10)
        ]
    )
    return [(image, e.container) for image, (_, e) in zip(images, items)]


def evaluate_all(out: Path | None = None, n: int = 200, seed: int = 1, generated: int = 40) -> dict[str, Any]:
    """``evaluate_grounding`` of the shipped toy pair (``GroundedSAM.toy()``) and of the random ``tiny_detector`` /
    ``tiny_segmenter`` (the floor, same thresholds), on the same scenes and ``generated`` toy SD frames, written to
    ``data/toykitchen/logs/grounding_eval.json`` (or ``out``)."""
    from ..grounding.grounded_sam import GroundedSAM
    from ..grounding.tiny import tiny_detector, tiny_segmenter

    torch.set_num_threads(1)
    start = time.perf_counter()
    frames = generated_frames(generated, seed) if generated else None
    toy = GroundedSAM.toy()
    trained = evaluate_grounding(toy, n, seed, frames)
    det, det_proc = tiny_detector(WORDS)
    sam, sam_proc = tiny_segmenter(IMAGE_SIZE)
    random = evaluate_grounding(
        GroundedSAM.from_models(
            det, det_proc, sam, sam_proc, box_threshold=toy.box_threshold, text_threshold=toy.text_threshold
        ),
        n,
        seed,
        frames,
    )
    result = {
        "toy_grounded_sam": trained,
        "random_tiny": random,
        "seconds": round(time.perf_counter() - start, 1),
        "generation": {"model": "toy_sd", "steps": 20, "guidance": 3.0} if generated else None,
        "thresholds": {"box": toy.box_threshold, "text": toy.text_threshold},
        "machine": machine(torch.device("cpu")),
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "command": f"cooklab toykitchen evaluate-grounding --n {n} --seed {seed} --generated {generated}",
    }
    atomic_write(out or TOY_DIR / "logs" / "grounding_eval.json", json.dumps(result, indent=1))
    return result
