"""LoRA training of the Flux transformer on multi-step canvases: CookAnything's training-based mode.

Each training example is a recipe and one picture per step. The pictures become one canvas
exactly as CookAnything lays out a generation (region n = step n, stacked top to bottom), and the
transformer is trained with Flux's rectified-flow objective:

    x_sigma = (1 - sigma) x_0 + sigma eps,      v = eps - x_0,      L = || f_theta(x_sigma, sigma, C) - v ||^2

* ``x_0`` [1, N P, C 4]: each picture VAE-encoded on its own, ``(z - shift) * scale`` as ``FluxPipeline``
  expects, packed (``pack_latents``) region after region; ``z`` a fresh draw from the VAE posterior at every
  step (``train.latents: sample``, as diffusers' Flux LoRA script) or its mode (``mode``: deterministic);
* ``sigma``: drawn by ``noise_levels.sample_sigmas`` -- by default uniform in (0, 1) and unshifted, as
  diffusers' Flux LoRA script; ``logit_normal`` / ``mode`` and the canvas's time shift
  (``train.sigma_shift``: the levels the sampler visits for N P image tokens) are switches;
* ``C``: ``CookAnything.prepare_canvas`` -- the same text stream (each step's T5 encoding, CSCC with
  lambda, the whole-description slot), region layout, Flexible RoPE ids and SRC processors as
  inference. One code path: nothing here re-implements a mechanism.

Only the LoRA's A and B are trained (``cooklab.cookanything.lora``). accelerate runs it on a CPU,
one GPU or several (``accelerate launch -m cooklab train-lora CONFIG``; each process takes every
P-th example), with mixed precision, gradient accumulation and gradient checkpointing as options.
Checkpoints hold the adapter, optimizer, learning-rate schedule, every random state and the step,
so a resumed run takes the same next step as one never stopped (tested). ``loss.jsonl`` keeps the
rows up to the step a run starts from (none for a fresh start), a checkpoint past ``train.steps``
is refused rather than trained backwards, and the finished adapter replaces the old one by
renames, the old one kept until the new one is in place.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..console import ProgressBar
from ..cookanything.flow_matching import pack_latents
from ..cookanything.lora import WEIGHT_NAME, add_lora, load_lora_state_dict, save_lora
from ..cookanything.pipeline import CookAnything
from ..errors import ConfigError
from ..fileio import atomic_write
from ..versions import package_versions
from .config import LoraSettings, TrainLoraConfig
from .data import Example, load_examples
from .noise_levels import noise_level_summary, sample_sigmas

LOSS_LOG = "loss.jsonl"
ADAPTER_DIR = "adapter"
OLD_ADAPTER_DIR = "adapter.old"  # the previous adapter while a new one is swapped in (LoraTrainer._replace_adapter)
CHECKPOINTS = "checkpoints"


@dataclass
class TrainResult:
    """What a run did: the adapter it wrote, the loss of every optimizer step it ran, where it started."""

    adapter: Path
    losses: dict[int, float] = field(default_factory=dict)  # optimizer step (1-based) -> mean loss
    resumed_from: int = 0  # the checkpoint step the run continued from (0: a fresh start)
    seconds: float = 0.0
    main_process: bool = True  # False in the other processes of a several-process run (they write nothing)


def encode_posterior(pipe, images, height: int, width: int):
    """The VAE posterior of each step picture, encoded on its own:
    diffusers' ``DiagonalGaussianDistribution`` of mean and std [N, C, H/8, W/8]."""
    vae = pipe.vae
    pixels = torch.cat(
        [pipe.image_processor.preprocess(im, height=height, width=width) for im in images]
    )  # [N, 3, H, W]
    pixels = pixels.to(device=vae.device, dtype=vae.dtype)
    with torch.no_grad():
        return vae.encode(pixels).latent_dist


def canvas_latents(posterior, vae_config, latents: str = "mode", generator: torch.Generator | None = None):
    """x_0 [1, N P, C 4] from the posterior: its mode, or a sample ``mean + std eps`` with eps from ``generator``
    (``latents="sample"``, as diffusers' Flux LoRA script), normalised as Flux expects, packed."""
    z = posterior.mode() if latents == "mode" else posterior.sample(generator)  # [N, C, H/8, W/8]
    z = (z - vae_config.shift_factor) * vae_config.scaling_factor
    return pack_latents(z)  # [1, N P, C 4]


def encode_canvas(pipe, images, height: int, width: int, latents: str = "mode", generator=None) -> torch.Tensor:
    """x_0 [1, N P, C 4]: each step picture VAE-encoded on its own (the posterior's mode, or a sample drawn from
    ``generator``), normalised as Flux expects, packed."""
    return canvas_latents(encode_posterior(pipe, images, height, width), pipe.vae.config, latents, generator)


@contextmanager
def canvas_attention(ca: CookAnything, canvas):
    """The canvas's SRC processors on the transformer for forward *and* backward
    (gradient checkpointing recomputes in backward).
    """
    with ca.attention_processors(canvas.state, install=bool(canvas.state.layers)):
        yield


def flow_matching_loss(
    ca: CookAnything, canvas, x0: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor, guidance: float, model=None
) -> torch.Tensor:
    """The rectified-flow loss of one canvas at noise level ``sigma`` (a 0-d tensor); call it inside
    ``canvas_attention``.

    x0, noise [1, N P, C 4]; model: the transformer to call (default the pipeline's).
    """
    pipe = ca.pipe
    x_sigma = (1 - sigma) * x0 + sigma * noise  # [1, N P, C 4]
    target = noise - x0
    g = (
        torch.full([1], guidance, device=x0.device, dtype=torch.float32)
        if pipe.transformer.config.guidance_embeds
        else None
    )
    text = canvas.text
    pred = ca.predict(x_sigma, sigma * 1000, g, text.embeds, text.pooled, canvas.txt_ids, canvas.img_ids, model=model)
    return torch.nn.functional.mse_loss(pred.float(), target.float())


class LoraTrainer:
    """One training run of ``config`` (use ``train_lora``); holds the pipeline, the adapter, optimizer and caches."""

    def __init__(self, config: TrainLoraConfig, progress: bool = True):
        from accelerate import Accelerator

        from ..runs import load_pipeline

        self.config, self.progress = config, progress
        t = config.train
        try:
            self.accelerator = Accelerator(
                mixed_precision=t.mixed_precision,
                gradient_accumulation_steps=t.grad_accum,
                cpu=not torch.cuda.is_available(),
            )
        except ValueError as error:  # accelerate keeps one precision per process
            raise ConfigError(
                f"train.mixed_precision={t.mixed_precision!r}, but this Python process already ran accelerate "
                f"with another precision ({error}). Restart the kernel / process, or train with the same "
                "mixed_precision as before."
            ) from error
        self.examples = load_examples(config.data)
        self.ca = load_pipeline("cookanything", config.model, seed=t.seed, device=self.accelerator.device)
        pipe = self.ca.pipe
        self.spec = config.lora.spec()
        self.params = add_lora(pipe.transformer, self.spec)
        if t.gradient_checkpointing:
            pipe.transformer.enable_gradient_checkpointing()
        pipe.transformer.train()
        self.optimizer = torch.optim.AdamW(self.params, lr=t.learning_rate, weight_decay=t.weight_decay)
        from diffusers.optimization import get_scheduler

        self.lr_scheduler = get_scheduler(
            t.lr_scheduler, self.optimizer, num_warmup_steps=t.warmup_steps, num_training_steps=t.steps
        )
        self.model, self.optimizer = self.accelerator.prepare(pipe.transformer, self.optimizer)
        rank = self.accelerator.process_index
        self.generator = torch.Generator("cpu").manual_seed(t.seed * 1000 + rank)  # noise and sigma of every example
        torch.manual_seed(t.seed * 1000 + rank)  # LoRA dropout
        self.step, self.micro = 0, 0  # optimizer steps done; examples this process has used
        self._cache: dict[int, tuple] = {}
        self._order: tuple[int, torch.Tensor | None] = (-1, None)  # (epoch, its permutation of the examples)

    # ---- data ----------------------------------------------------------------------------------
    def example_index(self, micro: int) -> int:
        """Which example this process uses for its ``micro``-th canvas:
        a fresh permutation every epoch, each process every P-th.
        """
        world, rank = self.accelerator.num_processes, self.accelerator.process_index
        position = micro * world + rank
        epoch, offset = divmod(position, len(self.examples))
        if self._order[0] != epoch:  # drawn once per epoch, not once per canvas
            self._order = (
                epoch,
                torch.randperm(
                    len(self.examples), generator=torch.Generator().manual_seed(self.config.train.seed + epoch)
                ),
            )
        return int(self._order[1][offset])

    def canvas_of(self, index: int):
        """(canvas, posterior) of one example, built once: the conditioning from ``prepare_canvas``, the pictures'
        VAE posterior (``encode_posterior``; ``canvas_latents`` draws x_0 from it)."""
        if index not in self._cache:
            ex: Example = self.examples[index]
            c = self.config.canvas
            canvas = self.ca.prepare_canvas(ex.recipe, **c.kwargs())
            posterior = encode_posterior(self.ca.pipe, ex.images(c.height), canvas.height, canvas.width)
            self._cache[index] = (canvas, posterior)
        return self._cache[index]

    # ---- one optimizer step ---------------------------------------------------------------------
    def _micro_step(self) -> tuple[float, float]:
        t = self.config.train
        canvas, posterior = self.canvas_of(self.example_index(self.micro))
        shape = (1, canvas.layout.image_len, self.ca.pipe.transformer.config.in_channels)  # [1, N P, C 4]
        # one generator, drawn in this order: noise, sigma, then x_0's posterior sample (none for latents="mode")
        noise = torch.randn(shape, generator=self.generator)
        sigma = sample_sigmas(t, self.ca.pipe.scheduler.config, shape[1], self.generator)[0]
        x0 = canvas_latents(posterior, self.ca.pipe.vae.config, t.latents, self.generator)
        noise, sigma = noise.to(x0.device, x0.dtype), sigma.to(x0.device)
        with self.accelerator.accumulate(self.model), canvas_attention(self.ca, canvas):
            loss = flow_matching_loss(self.ca, canvas, x0, noise, sigma, t.guidance, model=self.model)
            self.accelerator.backward(loss)
            if self.accelerator.sync_gradients:
                self.accelerator.clip_grad_norm_(self.params, t.max_grad_norm)
            self.optimizer.step()
            self.optimizer.zero_grad()
        self.micro += 1
        return float(self.accelerator.gather(loss.detach()[None]).mean()), float(sigma)

    def run(self, resume: bool = True, callback=None) -> TrainResult:
        """Train to ``train.steps`` optimizer steps (from the last checkpoint when ``resume``); returns what was done.

        callback: ``callback(step, loss)`` after every optimizer step (a live loss plot, an early stop by raising).
        """
        t, out = self.config.train, Path(self.config.out)
        start = time.perf_counter()
        resumed = self.resume() if resume else 0
        if self.accelerator.is_main_process:
            if not resume and (out / CHECKPOINTS).exists():
                shutil.rmtree(out / CHECKPOINTS)
            self._trim_log(resumed)
            restore_adapter(out)
        result = TrainResult(out / ADAPTER_DIR, resumed_from=resumed, main_process=self.accelerator.is_main_process)
        bar = ProgressBar(
            total=t.steps,
            initial=self.step,
            desc=f"train-lora {self.config.name}",
            enabled=self.progress and self.accelerator.is_local_main_process,
        )
        losses, sigmas = [], []
        while self.step < t.steps:
            loss, sigma = self._micro_step()
            losses.append(loss)
            sigmas.append(sigma)
            if self.micro % t.grad_accum:
                continue
            self.lr_scheduler.step()
            self.step += 1
            mean = sum(losses) / len(losses)
            result.losses[self.step] = mean
            if self.accelerator.is_main_process and (self.step % t.log_every == 0 or self.step == t.steps):
                self._log(
                    {
                        "step": self.step,
                        "loss": mean,
                        "lr": self.lr_scheduler.get_last_lr()[0],
                        "sigma": sum(sigmas) / len(sigmas),
                    }
                )
            losses, sigmas = [], []
            bar.update(1)
            bar.set_postfix(loss=f"{mean:.4f}")
            if callback is not None:
                callback(self.step, mean)
            if self.step % t.checkpoint_every == 0 or self.step == t.steps:
                self.checkpoint()
        bar.close()
        self._finish(result, time.perf_counter() - start)
        return result

    # ---- logs, checkpoints, resume -------------------------------------------------------------
    def _log(self, row: dict) -> None:
        with open(Path(self.config.out) / LOSS_LOG, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")

    def _unwrapped(self):
        return self.accelerator.unwrap_model(self.model)

    def checkpoint(self) -> Path:
        """``checkpoints/step-NNNNNN``: adapter, optimizer,
        schedule, random states, step; written whole or not at all.
        """
        out = Path(self.config.out) / CHECKPOINTS
        final, tmp = out / f"step-{self.step:06d}", out / f".tmp-step-{self.step:06d}"
        acc = self.accelerator
        if acc.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        acc.wait_for_everyone()
        torch.save(
            {
                "generator": self.generator.get_state(),
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            },
            tmp / f"rng-{acc.process_index}.pt",
        )  # every process's random state
        if acc.is_main_process:
            save_lora(self._unwrapped(), tmp / ADAPTER_DIR, self.spec)
            torch.save(
                {
                    "step": self.step,
                    "micro": self.micro,
                    "optimizer": self.optimizer.state_dict(),
                    "lr_scheduler": self.lr_scheduler.state_dict(),
                    "processes": acc.num_processes,
                },
                tmp / "state.pt",
            )
            atomic_write(tmp / "config.json", self.config.model_dump_json(indent=1))
        acc.wait_for_everyone()
        if acc.is_main_process:
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
            for old in sorted(out.glob("step-*"))[: -self.config.train.keep_checkpoints]:
                shutil.rmtree(old)
        acc.wait_for_everyone()
        return final

    def resume(self) -> int:
        """Continue from the last complete checkpoint under ``out``
        (0 when there is none); refuses another run's checkpoint.
        """
        from safetensors.torch import load_file

        folders = sorted((Path(self.config.out) / CHECKPOINTS).glob("step-*"))
        if not folders:
            return 0
        last = folders[-1]
        saved = json.loads((last / "config.json").read_text(encoding="utf-8"))
        mine = json.loads(self.config.model_dump_json())
        if LoraSettings.model_validate(saved.get("lora", {})).spec() == self.spec:  # a preset equals its names
            saved["lora"] = mine["lora"]
        if isinstance((saved.get("data") or {}).get("toy"), dict):  # written before data.toy.generator existed
            saved["data"]["toy"] = {"generator": "random_toy_recipe", **saved["data"]["toy"]}
        for key in ("model", "data", "lora", "canvas"):
            if saved.get(key) != mine.get(key):
                raise ConfigError(
                    f"{last} was trained with another {key} ({saved.get(key)} vs {mine.get(key)}): resume with the "
                    f"config it was made with, or give another out folder (or run with --no-resume to start over)."
                )
        state = torch.load(last / "state.pt", weights_only=False)
        if state["step"] > self.config.train.steps:
            raise ConfigError(
                f"{last} is at step {state['step']}, past train.steps={self.config.train.steps} (--steps): give "
                f"--steps {state['step']} or more to continue it, or --no-resume to start over (a run is never "
                "trained backwards)."
            )
        if state["processes"] != self.accelerator.num_processes:
            raise ConfigError(
                f"{last} was written by {state['processes']} process(es), this run has "
                f"{self.accelerator.num_processes}: "
                "resume with the same number, or start over (--no-resume)."
            )
        weights = load_file(last / ADAPTER_DIR / WEIGHT_NAME)
        load_lora_state_dict(self._unwrapped(), {k.removeprefix("transformer."): v for k, v in weights.items()})
        self.optimizer.load_state_dict(state["optimizer"])
        self.lr_scheduler.load_state_dict(state["lr_scheduler"])
        rng = torch.load(last / f"rng-{self.accelerator.process_index}.pt", weights_only=False)
        self.generator.set_state(rng["generator"])
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        self.step, self.micro = state["step"], state["micro"]
        return self.step

    def noise_levels(self) -> dict:
        """The sigma distribution this run draws from, per canvas length of its examples (``noise_level_summary``)."""
        c, f = self.config.canvas, self.ca.pipe.vae_scale_factor * 2  # the VAE's factor, 2 x 2 patches per token
        tokens = (c.height // f) * (c.width // f)  # image tokens of one region (P)
        lengths = {len(example.recipe) * tokens for example in self.examples}
        return noise_level_summary(self.config.train, self.ca.pipe.scheduler.config, lengths)

    def _trim_log(self, resumed: int) -> None:
        """Keep the rows of ``loss.jsonl`` up to the step the run starts from: no duplicate rows, ever.

        ``resumed`` is 0 for a fresh start (``--no-resume``, or no checkpoint yet: a run killed
        before its first one), which starts a new log; else the checkpoint's step, after which rows
        logged by the stopped run are dropped.
        """
        log = Path(self.config.out) / LOSS_LOG
        if not log.is_file():
            return
        rows = [
            line
            for line in log.read_text(encoding="utf-8").splitlines()
            if line and json.loads(line)["step"] <= resumed
        ]
        atomic_write(log, "".join(r + "\n" for r in rows))

    def _replace_adapter(self) -> None:
        """Write the adapter to ``out/.tmp-adapter``, then swap it in for ``out/adapter`` by renames alone.

        The old adapter is renamed to ``out/adapter.old`` (``OLD_ADAPTER_DIR``), the new one to
        ``out/adapter``, then the old one is deleted: at every moment one complete adapter is at
        ``adapter`` or, between the two renames, at ``adapter.old`` (``restore_adapter`` puts it back
        after a kill there). Nothing is deleted before the new adapter is in place.
        """
        out = Path(self.config.out)
        tmp, final, old = out / ".tmp-adapter", out / ADAPTER_DIR, out / OLD_ADAPTER_DIR
        shutil.rmtree(tmp, ignore_errors=True)
        save_lora(self._unwrapped(), tmp, self.spec)
        restore_adapter(out)
        shutil.rmtree(old, ignore_errors=True)  # left by an earlier swap, with adapter in place
        if final.exists():
            os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)

    def _finish(self, result: TrainResult, seconds: float) -> None:
        out = Path(self.config.out)
        result.seconds = seconds
        if not self.accelerator.is_main_process:
            return
        self._replace_adapter()
        info = {
            "name": self.config.name,
            "steps": self.step,
            "resumed_from": result.resumed_from,
            "seconds": round(seconds, 1),
            "processes": self.accelerator.num_processes,
            "device": str(self.accelerator.device),
            "trainable_parameters": sum(p.numel() for p in self.params),
            "examples": len(self.examples),
            "target_modules": list(self.spec.target_modules),
            "latents": self.config.train.latents,
            "noise_levels": self.noise_levels(),
            "config": json.loads(self.config.model_dump_json()),
            "versions": package_versions("torch", "diffusers", "transformers", "peft", "accelerate", "cooklab"),
        }
        atomic_write(out / "training.json", json.dumps(info, indent=1))


def restore_adapter(out: Path) -> None:
    """Put ``out/adapter.old`` back as ``out/adapter`` when a run was killed between the two renames of a swap."""
    if not (out / ADAPTER_DIR).exists() and (out / OLD_ADAPTER_DIR).is_dir():
        os.replace(out / OLD_ADAPTER_DIR, out / ADAPTER_DIR)


def train_lora(config: TrainLoraConfig, resume: bool = True, progress: bool = True, callback=None) -> TrainResult:
    """Train a LoRA on ``config``'s canvases (``cooklab train-lora``);
    resumes from ``out/checkpoints`` unless ``resume=False``.

    callback: ``callback(step, loss)`` after every optimizer step (``cooklab.viz.training.LiveLoss`` draws it).
    """
    Path(config.out).mkdir(parents=True, exist_ok=True)
    return LoraTrainer(config, progress=progress).run(resume=resume, callback=callback)
