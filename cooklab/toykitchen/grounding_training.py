"""A GroundingDINO and a SAM trained on the Toy Kitchen: Recipe Diffusion's detection step, offline.

Recipe Diffusion (Sec. III-C) finds the persisting container in the reference frame with
GroundingDINO and cuts it out with SAM. The public checkpoints need the hub; these are the same
transformers classes (``GroundingDinoForObjectDetection``, ``SamModel``) from small configs,
trained on rendered Toy Kitchen scenes, whose renderer knows the exact box and mask of the
container. ``cooklab.grounding.GroundedSAM.toy()`` loads the shipped pair.

* ``grounding_data`` -- the training data: scenes from ``world.random_scene`` (never a ``dataset.HELD_OUT``
  triple) with the container's exact box and mask, augmented pictures, captions with negatives;
* ``grounding_losses`` -- the one-object detection loss (argmin matching, focal + L1 + GIoU) and SAM's
  multi-mask loss;
* this module -- the two models' configs and the resumable training loop (``train_stage``);
* ``grounding_evaluation`` -- ``evaluate_grounding``: a provider against the renderer's boxes and masks and
  on frames of the toy SD model.

**Detector.** Caption: a container phrase in GroundingDINO's form, ``"blue pot."``, ``"pot."``,
``"cutting board."``. Positives name the container shown (with or without its colour); negatives
(``negative_share``) name another colour or another kind, or show an empty table, meant to make a
wrong phrase score low (the shipped detector learned to reject an empty table, not the wrong words:
``docs/toykitchen.md``). Loss ``L_det`` (``grounding_losses``) on the decoder's last layer and on the
encoder's proposals.

**Segmenter.** SAM prompted with the container box (jittered by up to ``box_jitter`` of its size,
as a detector's box would be), three candidate masks; loss ``L_seg`` (``grounding_losses``).

The learning rate anneals over the planned steps or ``max_minutes``, whichever ends first, so a run
stopped by the clock on a busy CPU still ends annealed. Checkpoints (``<out>/<stage>_checkpoint.pt``)
make a stopped run resume; the finished models are
``save_pretrained`` folders ``<out>/grounding/{detector,segmenter}`` (float16, with their
processors), and each stage logs ``<out>/logs/<stage>_training.json``.

    cooklab toykitchen train --stages detector,segmenter --out data/toykitchen
    cooklab toykitchen evaluate-grounding
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..fileio import atomic_write
from ..grounding.tiny import SPECIAL_WORDS, detector_from_configs, segmenter_from_configs
from ..models.toy import IMAGE_SIZE
from .captions import WORDS
from .dataset import HELD_OUT
from .grounding_data import GroundingData, augment, normalise, render_grounding, sample_caption, unit_pixels
from .grounding_losses import one_object_detection_loss, segmentation_loss
from .training_loop import lr_factor, machine, save_float16
from .world import random_scene

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


def build_detector(seed: int = 0):
    """(GroundingDinoForObjectDetection, GroundingDinoProcessor) untrained, with a BERT tokenizer over the toy
    words."""
    return detector_from_configs(WORDS, SWIN, BERT, DINO, IMAGE_SIZE, seed=seed)


def build_segmenter(seed: int = 0):
    """(SamModel, SamProcessor) untrained, for 64 x 64 pictures."""
    return segmenter_from_configs(SAM_VISION, SAM_PROMPT, SAM_DECODER, IMAGE_SIZE, seed=seed)


def training_data(cfg: GroundingTrainConfig) -> GroundingData:
    """``cfg.images`` random scenes (no held-out triple), seeded by ``cfg.seed``."""
    rng = np.random.default_rng([cfg.seed, 15])
    return render_grounding([random_scene(rng, exclude=HELD_OUT) for _ in range(cfg.images)])


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
    x = normalise(augment(unit_pixels(images), gen), processor.image_processor)  # [B, 3, 64, 64]
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
    x = normalise(augment(unit_pixels(data.images[idx]), gen), processor.image_processor)  # [B, 3, 64, 64]
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


class _Clock:
    """Seconds a stage has trained (carried over a resume) and the share of ``max_minutes`` they are."""

    def __init__(self, max_minutes: float | None):
        self.max_minutes = max_minutes
        self.t0 = time.perf_counter()

    def restart(self, seconds: float) -> None:
        """Go on from ``seconds`` already trained (0 for a fresh run)."""
        self.t0 = time.perf_counter() - seconds

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.t0

    def share(self) -> float:
        return 0.0 if self.max_minutes is None else self.seconds / (60 * self.max_minutes)


@dataclass
class _Run:
    """One stage's training state: the model, its optimiser and schedule, the random streams, the clock, the log."""

    stage: str
    model: Any
    processor: Any
    params: list[torch.nn.Parameter]
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LambdaLR
    rng: np.random.Generator
    gen: torch.Generator
    clock: _Clock
    total: int  # planned steps
    start: int = 0  # first step to run (after a resume)
    losses: list[dict] = field(default_factory=list)  # log rows

    def save_checkpoint(self, path: Path, done: int) -> None:
        """Write ``<out>/<stage>_checkpoint.pt``: everything ``resume`` needs to go on after ``done`` steps."""
        state = dict(
            model=self.model.state_dict(),
            opt=self.opt.state_dict(),
            sched=self.sched.state_dict(),
            rng=self.rng.bit_generator.state,
            gen=self.gen.get_state(),
            step=done,
            losses=self.losses,
            seconds=self.clock.seconds,
        )
        atomic_write(path, lambda f: torch.save(state, f))

    def resume(self, state: dict) -> float:
        """Load a ``save_checkpoint`` state; returns the seconds trained before it."""
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])
        self.sched.load_state_dict(state["sched"])
        self.rng.bit_generator.state = state["rng"]
        self.gen.set_state(state["gen"])
        self.start, self.losses = state["step"], state["losses"]
        return state["seconds"]


class _LossRows:
    """Loss sums since the last log row; a row (and a printed line) every 50 steps and at the last step."""

    def __init__(self, run: _Run):
        self.run = run
        self.sums: dict[str, float] = {}
        self.count = 0

    def add(self, values: dict[str, float], done: int) -> None:
        for k, v in values.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.count += 1
        if done % 50 == 0 or done == self.run.total:
            n, self.count = self.count, 0
            self.run.losses.append({"step": done, **{k: round(v / n, 4) for k, v in self.sums.items()}})
            print(
                f"  {self.run.stage} step {done}/{self.run.total} "
                + " ".join(f"{k} {v / n:.4f}" for k, v in self.sums.items())
                + f"  {self.run.clock.seconds:.0f} s",
                flush=True,
            )
            self.sums = {}

    def flush(self, done: int) -> None:
        """The row of the steps since the last one (a run stopped by the clock between two rows)."""
        if self.count:
            self.run.losses.append({"step": done, **{k: round(v / self.count, 4) for k, v in self.sums.items()}})


def _start(stage: str, cfg: GroundingTrainConfig) -> _Run:
    """The untrained (or ``cfg.init_from``) model of ``stage`` with its optimiser, schedule and random streams."""
    model, processor = (build_detector if stage == "detector" else build_segmenter)(cfg.seed)
    if cfg.init_from is not None:
        model = type(model).from_pretrained(Path(cfg.init_from) / stage, dtype=torch.float32, local_files_only=True)
    model.train()
    total = cfg.detector_steps if stage == "detector" else cfg.segmenter_steps
    lr = cfg.detector_lr if stage == "detector" else cfg.segmenter_lr
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    clock = _Clock(cfg.max_minutes)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, total, cfg.warmup, 0.05, clock.share()))
    rng = np.random.default_rng([cfg.seed, STAGES.index(stage)])
    gen = torch.Generator().manual_seed(cfg.seed)
    return _Run(stage, model, processor, params, opt, sched, rng, gen, clock, total)


def _train_steps(run: _Run, cfg: GroundingTrainConfig, data: GroundingData, ckpt: Path) -> int:
    """Steps ``run.start`` .. ``run.total - 1`` (or until the clock runs out), checkpointing; returns the last step."""
    batch_fn = _detector_batch if run.stage == "detector" else _segmenter_batch
    rows = _LossRows(run)
    step = run.start
    for step in range(run.start, run.total):
        idx = run.rng.integers(len(data.images), size=cfg.batch).tolist()
        loss, parts = batch_fn(run.model, run.processor, data, idx, run.rng, run.gen, cfg)
        run.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(run.params, 0.1 if run.stage == "detector" else 1.0)
        run.opt.step()
        run.sched.step()
        done = step + 1
        rows.add({"loss": loss.item(), **parts}, done)
        if done % cfg.checkpoint_every == 0 and done < run.total:
            run.save_checkpoint(ckpt, done)
        if run.clock.share() >= 1:
            break
    rows.flush(step + 1)
    return step


def _finish(run: _Run, cfg: GroundingTrainConfig, out: Path, step: int) -> dict:
    """Save the trained model to ``<out>/grounding/<stage>`` and its log to ``<out>/logs/<stage>_training.json``."""
    run.model.eval()
    save_float16(run.model, out / "grounding" / run.stage, run.processor)
    n_params = sum(p.numel() for p in run.model.parameters())
    log = dict(
        stage=run.stage,
        config=dataclasses.asdict(cfg),
        steps_done=step + 1 if run.total else 0,
        steps_planned=run.total,
        seconds=round(run.clock.seconds, 1),
        parameters=n_params,
        machine=machine(torch.device("cpu")),
        losses=run.losses,
    )
    atomic_write(out / "logs" / f"{run.stage}_training.json", json.dumps(log, indent=1))
    return log


def train_stage(stage: str, cfg: GroundingTrainConfig, out: Path, data: GroundingData | None = None) -> dict:
    """Train one model (``"detector"`` or ``"segmenter"``), resuming from ``<out>/<stage>_checkpoint.pt``.

    Saves ``<out>/grounding/<stage>`` and ``<out>/logs/<stage>_training.json``; returns the log.
    """
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}: choose from {STAGES}.")
    torch.set_num_threads(cfg.threads)
    out = Path(out)
    data = data if data is not None else training_data(cfg)
    run = _start(stage, cfg)
    ckpt = out / f"{stage}_checkpoint.pt"
    seconds = 0.0
    if ckpt.is_file():
        seconds = run.resume(torch.load(ckpt, weights_only=False))
        print(f"{stage}: resuming at step {run.start}", flush=True)
    run.clock.restart(seconds)  # the clock of a resumed run goes on from where it stopped
    step = _train_steps(run, cfg, data, ckpt)
    log = _finish(run, cfg, out, step)
    ckpt.unlink(missing_ok=True)
    return log
