"""What the Toy Kitchen's training stages share: the learning-rate schedule, the loop, logs and float16 saving.

``TrainingLoop`` is the bookkeeping of one stage (AdamW with ``lr_factor``'s warm-up and cosine decay, an
optional EMA, the loss log, the time and step limits); ``write_log`` writes ``<out>/<stage>_training.json``
with the machine (``machine``) that ran it; ``save_float16`` writes a ``save_pretrained`` folder in float16.

**Resume** (``TrainConfig.resume``, the ``sd`` and ``flux`` stages): a stage stopped by its time limit has saved its
set (the EMA weights, float16) and a log whose ``steps_done`` is short of its plan; ``resume_point`` reads that
log, the stage continues from the saved set at step ``steps_done`` of the same schedule, and ``write_log`` adds
this call's losses, steps and seconds to the earlier ones (``calls``). AdamW's moments are not saved (they would
triple the files a GPU call brings back): they restart, so the learning rate warms up again over ``warmup``
steps to the schedule's value; the EMA restarts from the saved average.
The toy GroundingDINO and SAM (``grounding_training.py``) use the schedule, ``machine`` and ``save_float16``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import shutil
import time
from pathlib import Path

import torch

from ..errors import ConfigError
from ..fileio import atomic_write
from .training_config import TrainConfig


def lr_factor(step: int, total: int, warmup: int, floor: float = 0.1, time_share: float = 0.0) -> float:
    """Linear warm-up, then cosine decay to ``floor`` over the steps, or over a time limit if that comes first
    (``time_share``: the share of the limit spent), so that a run stopped by the clock still ends annealed."""
    if step < warmup:
        return (step + 1) / warmup
    progress = max((step - warmup) / max(1, total - warmup), time_share)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


class TrainingLoop:
    """Bookkeeping shared by the stages: optimiser with schedule, EMA, loss log, time limit."""

    def __init__(self, params, cfg: TrainConfig, total: int, lr: float, ema: bool = True, start: int = 0):
        from diffusers.training_utils import EMAModel

        self.params = [p for p in params if p.requires_grad]
        self.opt = torch.optim.AdamW(self.params, lr=lr, weight_decay=0.01)
        if start:  # resumed at step ``start``: the schedule's value, warmed up again (fresh AdamW moments)
            schedule = lambda s: lr_factor(s + start, total, cfg.warmup) * min(1.0, (s + 1) / max(1, cfg.warmup))  # noqa: E731
        else:
            schedule = lambda s: lr_factor(s, total, cfg.warmup)  # noqa: E731
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, schedule)
        self.ema = (
            EMAModel(self.params, decay=cfg.ema_decay, use_ema_warmup=True, power=2 / 3, foreach=True) if ema else None
        )
        self.total, self.cfg = total, cfg
        self.losses: list[tuple[int, float]] = []
        self.start = time.perf_counter()
        self._acc, self._n, self._step = 0.0, 0, 0

    def step(self, loss: torch.Tensor, step: int) -> bool:
        """Apply one update; False when the stage should stop."""
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.opt.step()
        self.sched.step()
        if self.ema is not None:
            self.ema.step(self.params)
        self._acc += float(loss.detach())
        self._n, self._step = self._n + 1, step + 1
        if self._n == 100 or step == self.total - 1:
            self.losses.append((step + 1, self._acc / self._n))
            print(f"  step {step + 1}/{self.total}  loss {self._acc / self._n:.4f}  {self.seconds:.0f} s", flush=True)
            self._acc, self._n = 0.0, 0
        limit, stop = self.cfg.max_minutes, self.cfg.stop_after
        return not ((limit is not None and self.seconds > 60 * limit) or (stop is not None and step + 1 >= stop))

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start

    def finish(self) -> None:
        """Log the loss of the steps since the last logged one (a stage stopped early), then copy in the EMA."""
        if self._n:
            self.losses.append((self._step, self._acc / self._n))
        if self.ema is not None:
            self.ema.copy_to(self.params)


def machine(device: torch.device) -> str:
    """The machine a training log records: the GPU's name, or the CPU and its torch threads."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}"
    cpu = f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    return f"{cpu}, torch {torch.__version__}"


def resume_point(out: Path, stage: str, cfg: TrainConfig) -> dict | None:
    """The earlier log of a stopped ``stage`` to continue (``cfg.resume``), or None to start from step 0.

    None without ``cfg.resume`` or without a log and a saved set in ``out``; a ``ConfigError`` when the saved
    run planned another number of steps (the schedule would not be the same).
    """
    log_file, folder = out / f"{stage}_training.json", out / stage
    if not (cfg.resume and log_file.is_file() and (folder / "model_index.json").is_file()):
        return None
    log = json.loads(log_file.read_text())
    planned, total = log["config"][f"{stage}_steps"], getattr(cfg, f"{stage}_steps")
    if planned != total:
        raise ConfigError(
            f"resume: {log_file} planned {planned} {stage} steps, this run {total}; pass --{stage}-steps {planned}."
        )
    return log


def write_log(out, stage, cfg: TrainConfig, loop: TrainingLoop, steps: int, device, extra=None, earlier=None) -> None:
    """``<out>/<stage>_training.json``; after a resume (``earlier``: the stopped run's log) the calls add up."""
    import diffusers

    before = (
        []
        if earlier is None
        else earlier.get("calls", [dict(steps_done=earlier["steps_done"], seconds=earlier["seconds"])])
    )
    calls = [*before, dict(steps_done=steps, seconds=round(loop.seconds, 1))]
    log = dict(
        stage=stage,
        config=dataclasses.asdict(cfg),
        steps_done=steps,
        seconds=round(sum(c["seconds"] for c in calls), 1),
        machine=machine(device),
        diffusers=diffusers.__version__,
        losses=[*(earlier or {}).get("losses", []), *loop.losses],
        **(extra or {}),
    )
    if earlier is not None:
        log["calls"] = calls
    atomic_write(out / f"{stage}_training.json", json.dumps(log, indent=1))


def autocast(device, enabled: bool = True):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled and device.type == "cuda")


def save_float16(pipe, folder: Path, *extras) -> None:
    """A pipeline or a model as float16 safetensors, and ``extras`` (processors, tokenizers) with it, written to a
    temporary folder and moved into place."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    pipe.to(torch.float16)
    pipe.save_pretrained(tmp, safe_serialization=True)
    for extra in extras:
        extra.save_pretrained(tmp)
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
