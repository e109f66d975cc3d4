"""Training the Toy Kitchen model sets from scratch (``cooklab toykitchen train``).

Three stages, each a plain training loop over rendered scenes and freshly sampled captions:

1. **autoencoder** -- ``AutoencoderKL``: reconstruction MSE plus a small KL term,
   ``L = ||D(z) - x||^2 + beta KL(q(z|x) || N(0, I))``, ``z ~ q(z|x)``. Its latent mean and
   standard deviation give the pipelines' ``shift_factor`` / ``scaling_factor``.
2. **sd** -- ``UNet2DConditionModel`` and the CLIP text encoder together, v-prediction on the
   cosine schedule: ``z_t = sqrt(a_t) z_0 + sqrt(1 - a_t) eps``, target
   ``v = sqrt(a_t) eps - sqrt(1 - a_t) z_0``, ``L = ||v_theta(z_t, t, c) - v||^2``.
3. **flux** -- ``FluxTransformer2DModel`` with its CLIP and T5 encoders, rectified flow:
   ``z_s = (1 - s) z_0 + s eps``, target ``eps - z_0``, ``s`` logit-normal and shifted by the
   same ``mu`` the pipeline uses at 64x64.
4. **clip** -- the Toy Kitchen CLIP (``clip.py``, the metrics' backbone): image and text towers
   together, CLIP's symmetric InfoNCE with a learned temperature (``clip.contrastive_loss``);
   on renders and on frames the toy pipelines generated, captioned by what the oracle reads in them
   (``generated.py``; the pipelines of the ``sd`` / ``flux`` stages when ``<out>`` holds them, else the
   shipped ones). Saved to ``<out>/clip`` with its held-out retrieval accuracy.

Captions of the diffusion stages are dropped to "" 10 % of the time (classifier-free guidance). Weights are averaged
with an EMA (diffusers' ``EMAModel``) and the averages are what is saved, in float16, as
``save_pretrained`` folders ``<out>/sd`` and ``<out>/flux`` (the CLIP stage keeps its last weights,
no EMA, in ``<out>/clip``); each stage writes a JSON log
(``<out>/<stage>_training.json``: losses, steps, seconds, machine).

Stages ``sd`` and ``flux`` read the autoencoder stage's output, so they can run as two processes
at once on one GPU. Everything is seeded; CUDA kernels are not bit-deterministic, so a rerun on
a GPU gives close, not identical, weights.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..backbones.clip import clip_backbone
from ..errors import CheckpointError
from ..fileio import atomic_write
from ..models.toy import IMAGE_SIZE, T5_MAX_LENGTH, TOY_DIR, toy_flux, toy_sd
from . import architectures as toy
from .captions import random_caption
from .dataset import render_dataset

STAGES = ("autoencoder", "sd", "flux", "clip")


@dataclass
class TrainConfig:
    """One training run. ``PRESETS`` holds the GPU run that made the shipped weights and a reduced CPU run."""

    seed: int = 0
    images: int = 120_000  # rendered scenes (each gets a new random caption every time it is drawn)
    batch: int = 256
    vae_steps: int = 3000
    sd_steps: int = 8000
    flux_steps: int = 8000
    clip_steps: int = 4000
    vae_lr: float = 1e-3
    lr: float = 4e-4
    clip_lr: float = 1e-3
    clip_batch: int = 256  # pictures per contrastive batch (each one's negatives are the other B - 1 captions)
    clip_generated: int = 2000  # frames each toy pipeline generates for the CLIP stage (generated.py); 0: renders only
    clip_generated_share: float = 0.5  # share of each CLIP batch drawn from those frames
    clip_generation_steps: int = 20  # sampling steps of those frames
    clip_hard_negatives: bool = (
        True  # one caption per picture with one fact changed (clip.caption_pair, NegCLIP's loss)
    )
    vae_latent_channels: int = 4  # latent channels of the autoencoder (16 x 16 x C latents)
    vae_food_weight: float = 1.0  # loss weight of food pixels (``food_weighted_mse``); 1: plain MSE
    vae_batch: int | None = None  # pictures per autoencoder step (default: ``batch``)
    vae_init: str | None = (
        None  # continue from this autoencoder folder (widened by ``widen_latent``) instead of from scratch
    )
    init_from: str | None = None  # continue the sd / flux stages from the sets in this folder (<init_from>/sd, /flux)
    warmup: int = 250
    kl_weight: float = 1e-5
    caption_dropout: float = 0.1
    ema_decay: float = 0.9995
    max_minutes: float | None = None  # stop a stage early after this long (the log records the steps done)
    stop_after: int | None = None  # stop each stage after this many steps (its schedule still spans *_steps)
    workers: int = 1  # processes rendering the dataset
    flux_bf16: bool = False  # bf16 autocast for the Flux stage (float32 + TF32 made the shipped weights)


PRESETS = {
    "gpu": TrainConfig(),
    "cpu": TrainConfig(
        images=8000,
        batch=32,
        vae_steps=600,
        sd_steps=2000,
        flux_steps=2000,
        clip_batch=128,
        clip_steps=3000,
        clip_generated=1200,
    ),
    "smoke": TrainConfig(
        images=48,
        batch=4,
        vae_steps=2,
        sd_steps=2,
        flux_steps=2,
        clip_batch=4,
        clip_steps=2,
        warmup=1,
        clip_generated=2,
        clip_generation_steps=2,
    ),
}


def lr_factor(step: int, total: int, warmup: int, floor: float = 0.1, time_share: float = 0.0) -> float:
    """Linear warm-up, then cosine decay to ``floor`` over the steps, or over a time limit if that comes first
    (``time_share``: the share of the limit spent), so that a run stopped by the clock still ends annealed."""
    if step < warmup:
        return (step + 1) / warmup
    progress = max((step - warmup) / max(1, total - warmup), time_share)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


class _Loop:
    """Bookkeeping shared by the stages: optimiser with schedule, EMA, loss log, time limit."""

    def __init__(self, params, cfg: TrainConfig, total: int, lr: float, ema: bool = True):
        from diffusers.training_utils import EMAModel

        self.params = [p for p in params if p.requires_grad]
        self.opt = torch.optim.AdamW(self.params, lr=lr, weight_decay=0.01)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lambda s: lr_factor(s, total, cfg.warmup))
        self.ema = (
            EMAModel(self.params, decay=cfg.ema_decay, use_ema_warmup=True, power=2 / 3, foreach=True) if ema else None
        )
        self.total, self.cfg = total, cfg
        self.losses: list[tuple[int, float]] = []
        self.start = time.perf_counter()
        self._acc, self._n = 0.0, 0

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
        self._n += 1
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
        if self.ema is not None:
            self.ema.copy_to(self.params)


def machine(device: torch.device) -> str:
    """The machine a training log records: the GPU's name, or the CPU and its torch threads."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}"
    cpu = f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    return f"{cpu}, torch {torch.__version__}"


def _write_log(out: Path, stage: str, cfg: TrainConfig, loop: _Loop, steps: int, device, extra=None) -> None:
    import diffusers

    log = dict(
        stage=stage,
        config=dataclasses.asdict(cfg),
        steps_done=steps,
        seconds=round(loop.seconds, 1),
        machine=machine(device),
        diffusers=diffusers.__version__,
        losses=loop.losses,
        **(extra or {}),
    )
    atomic_write(out / f"{stage}_training.json", json.dumps(log, indent=1))


def _images(data, idx, device) -> torch.Tensor:
    """uint8 [B, H, W, 3] rows -> float [B, 3, H, W] in [-1, 1]."""
    x = data[idx].to(device, non_blocking=True).permute(0, 3, 1, 2).float()
    return x / 127.5 - 1


def _autocast(device, enabled: bool = True):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled and device.type == "cuda")


def food_weighted_mse(recon: torch.Tensor, x: torch.Tensor, food: torch.Tensor, weight: float) -> torch.Tensor:
    """``sum_p w_p ||D(z)_p - x_p||^2 / sum_p w_p`` over pixels ``p``, ``w_p = weight`` on food, 1 elsewhere.

    recon, x: [B, 3, H, W]; food: [B, H, W] bool. With ``weight`` 1 this is the plain MSE. A diced carrot or a
    grain of rice covers a few pixels of a 64 x 64 picture, so the plain MSE barely notices when the
    autoencoder smears it into the container colour; weighting food pixels makes it notice.
    """
    w = 1 + (weight - 1) * food.to(x.dtype)[:, None]  # [B, 1, H, W]
    return (w * (recon - x) ** 2).sum() / (w.sum() * x.shape[1])


def widen_latent(vae, latent_channels: int):
    """A copy of ``vae`` with ``latent_channels`` latent channels that decodes exactly as ``vae`` does.

    The encoder's last convolution gains output rows (new means from small random weights, new log-variances
    with bias -6, a posterior std of 0.05) and the decoder's first convolution gains input columns of zeros,
    so the new channels start unread and training teaches both sides to use them. Used to continue
    training an autoencoder with more latent channels (``TrainConfig.vae_init``).
    """
    old = vae.config.latent_channels
    if latent_channels == old:
        return vae
    if latent_channels < old:
        raise ValueError(f"latent_channels {latent_channels} < {old}: an autoencoder can only be widened.")
    wide = toy.build_vae(latent_channels)
    state = {k: v.clone() for k, v in vae.state_dict().items()}
    enc_w, enc_b = state["encoder.conv_out.weight"], state["encoder.conv_out.bias"]  # [2 * old, C, 3, 3], [2 * old]
    new = latent_channels - old
    gen = torch.Generator().manual_seed(0)
    mean_w = torch.cat([enc_w[:old], 1e-3 * torch.randn((new, *enc_w.shape[1:]), generator=gen)])
    logvar_w = torch.cat([enc_w[old:], torch.zeros((new, *enc_w.shape[1:]))])
    state["encoder.conv_out.weight"] = torch.cat([mean_w, logvar_w])  # [2 * latent_channels, C, 3, 3]
    state["encoder.conv_out.bias"] = torch.cat([enc_b[:old], torch.zeros(new), enc_b[old:], torch.full((new,), -6.0)])
    dec_w = state["decoder.conv_in.weight"]  # [C', old, 3, 3]
    state["decoder.conv_in.weight"] = torch.cat([dec_w, torch.zeros((dec_w.shape[0], new, *dec_w.shape[2:]))], dim=1)
    wide.load_state_dict(state)
    return wide


def train_autoencoder(cfg: TrainConfig, out: Path, device: torch.device, data) -> None:
    """Train (or, with ``cfg.vae_init``, continue training) the autoencoder; save it to ``<out>/autoencoder``.

    Loss ``food_weighted_mse(D(z), x) + beta KL(q(z|x) || N(0, I)) / (3 H W)``, ``z ~ q(z|x)``. The saved
    config carries the latent statistics the pipelines need: ``shift_factor`` = mean, ``scaling_factor`` = 1 / std.
    """
    from diffusers import AutoencoderKL

    torch.manual_seed(cfg.seed)
    if cfg.vae_init:
        vae = widen_latent(
            AutoencoderKL.from_pretrained(cfg.vae_init, torch_dtype=torch.float32), cfg.vae_latent_channels
        )
    else:
        vae = toy.build_vae(cfg.vae_latent_channels)
    vae = vae.to(device).train()
    images, food = torch.from_numpy(data.images), torch.from_numpy(data.food)
    batch = cfg.vae_batch or cfg.batch
    loop = _Loop(vae.parameters(), cfg, cfg.vae_steps, cfg.vae_lr, ema=False)
    gen = torch.Generator().manual_seed(cfg.seed)
    step = 0
    for step in range(cfg.vae_steps):
        idx = torch.randint(len(images), (batch,), generator=gen)
        x = _images(images, idx, device)  # [B, 3, 64, 64]
        with _autocast(device):
            post = vae.encode(x).latent_dist  # mean, std of q(z|x): [B, C, 16, 16]
            recon = vae.decode(post.sample()).sample
        loss = (
            food_weighted_mse(recon.float(), x, food[idx].to(device), cfg.vae_food_weight)
            + cfg.kl_weight * post.kl().float().mean() / x[0].numel()
        )
        if not loop.step(loss, step):
            break
    vae.eval()
    latents = encode_all(vae, images, device)  # [n, C, 16, 16]
    mean, std = float(latents.mean()), float(latents.std())
    with torch.no_grad():
        x = _images(images, torch.arange(min(512, len(images))), device)
        recon_mse = float(F.mse_loss(vae.decode(vae.encode(x).latent_dist.mode()).sample, x))
    vae.register_to_config(shift_factor=mean, scaling_factor=1.0 / std)
    save_float16(vae.cpu(), out / "autoencoder")
    _write_log(
        out,
        "autoencoder",
        cfg,
        loop,
        step + 1,
        device,
        dict(latent_mean=mean, latent_std=std, reconstruction_mse=recon_mse),
    )


@torch.no_grad()
def encode_all(vae, images: torch.Tensor, device) -> torch.Tensor:
    """Posterior means of every picture, on ``device``: [n, C, 16, 16] float32."""
    return torch.cat(
        [
            vae.encode(_images(images, torch.arange(i, min(i + 512, len(images))), device)).latent_dist.mode()
            for i in range(0, len(images), 512)
        ]
    ).float()


def _load_autoencoder(out: Path, device):
    """The autoencoder stage's output (``<out>/autoencoder``) and its latent mean and std."""
    from diffusers import AutoencoderKL

    folder = out / "autoencoder"
    if not (folder / "config.json").is_file():
        raise CheckpointError(
            f"no autoencoder in {folder}: run the autoencoder stage first "
            f"(`cooklab toykitchen train --out {out} --stages autoencoder`)."
        )
    vae = AutoencoderKL.from_pretrained(folder, torch_dtype=torch.float32).to(device).eval()
    return vae, vae.config.shift_factor, 1.0 / vae.config.scaling_factor


def _caption_pairs(data, idx, rng: np.random.Generator) -> tuple[list[str], list[str]]:
    """A fresh caption per picture and its hard negative (``clip.caption_pair``); half written as a sentence, both
    alike."""
    from .clip import caption_pair

    positives, negatives = [], []
    for i in idx.tolist():
        pos, neg = caption_pair(data.scenes[i], rng)
        if rng.random() < 0.5:
            pos, neg = pos[:1].upper() + pos[1:] + ".", neg[:1].upper() + neg[1:] + "."
        positives.append(pos)
        negatives.append(neg)
    return positives, negatives


def _captions(data, idx, rng: np.random.Generator, dropout: float) -> list[str]:
    """A fresh caption per picture; half written as a recipe step ("Chop the carrots in the bowl."); 10 % empty."""
    texts = []
    for i in idx.tolist():
        text = "" if rng.random() < dropout else random_caption(data.scenes[i], rng)
        texts.append(text[:1].upper() + text[1:] + "." if text and rng.random() < 0.5 else text)
    return texts


class _Tokens:
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


def load_widened(module: torch.nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    """Load ``state`` into ``module``; a tensor smaller than the module's goes into its leading corner, the rest zeros.

    For a denoiser continued on an autoencoder with more latent channels: the U-Net's ``conv_in`` gains input
    columns and its ``conv_out`` output rows; Flux's ``x_embedder`` / ``proj_out`` gain the features of the new
    channels, which ``FluxPipeline._pack_latents`` puts after the old ones (feature ``4 c + 2 dy + dx``). Zero
    columns read nothing of the new channels, zero rows predict 0 for them: the model starts as it was. Returns
    the names of the widened tensors.
    """
    target = module.state_dict()
    widened = []
    for name, value in state.items():
        want = target[name]
        if value.shape != want.shape:
            if value.dim() != want.dim() or any(a > b for a, b in zip(value.shape, want.shape)):
                raise ValueError(f"{name}: {tuple(value.shape)} does not fit in {tuple(want.shape)}.")
            grown = torch.zeros_like(want)
            grown[tuple(slice(0, n) for n in value.shape)] = value
            state[name] = grown
            widened.append(name)
    module.load_state_dict(state)
    return widened


def _continue_from(pipe, folder: Path, parts: tuple[str, ...]) -> dict[str, list[str]]:
    """Copy the weights of ``parts`` (component names) from the set in ``folder`` into ``pipe`` (``load_widened``)."""
    from diffusers import DiffusionPipeline

    if not (folder / "model_index.json").is_file():
        raise CheckpointError(
            f"init_from: no model set in {folder} to continue from (a folder like data/toykitchen/sd)."
        )
    trained = DiffusionPipeline.from_pretrained(folder, torch_dtype=torch.float32, local_files_only=True)
    return {part: load_widened(getattr(pipe, part), getattr(trained, part).state_dict()) for part in parts}


def train_sd(cfg: TrainConfig, out: Path, device: torch.device, data) -> None:
    """The ``sd`` stage: the SD-style set around the trained autoencoder, into ``<out>/sd``."""
    from diffusers import DDPMScheduler

    torch.manual_seed(cfg.seed + 1)
    vae, _, std = _load_autoencoder(out, device)
    scale = 1.0 / std
    latents = encode_all(vae, torch.from_numpy(data.images), device) * scale  # SD: z_0 = scale * z (no shift)
    pipe = toy.build_sd(vae.to("cpu"), scale)
    extra = (
        dict(continued=_continue_from(pipe, Path(cfg.init_from) / "sd", ("unet", "text_encoder")))
        if cfg.init_from
        else {}
    )
    unet, text_encoder, tokens = (
        pipe.unet.to(device).train(),
        pipe.text_encoder.to(device).train(),
        _Tokens(pipe.tokenizer),
    )
    noise_sched = DDPMScheduler(
        **{k: v for k, v in toy.SD_SCHEDULER.items() if k not in ("set_alpha_to_one", "timestep_spacing")}
    )
    loop = _Loop([*unet.parameters(), *text_encoder.parameters()], cfg, cfg.sd_steps, cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    rng = np.random.default_rng(cfg.seed + 1)
    step = 0
    for step in range(cfg.sd_steps):
        idx = torch.randint(len(latents), (cfg.batch,), generator=gen)
        z0 = latents[idx.to(device)]  # [B, 4, 16, 16]
        ids = tokens(_captions(data, idx, rng, cfg.caption_dropout), device)  # [B, 32]
        eps = torch.randn(z0.shape, generator=gen).to(device)
        t = torch.randint(0, noise_sched.config.num_train_timesteps, (cfg.batch,), generator=gen).to(device)
        zt = noise_sched.add_noise(z0, eps, t)
        target = noise_sched.get_velocity(z0, eps, t)
        with _autocast(device):
            cond = text_encoder(ids)[0]  # [B, 32, 128] last hidden state, as the pipeline reads it
            pred = unet(zt, t, cond).sample
        if not loop.step(F.mse_loss(pred.float(), target), step):
            break
    loop.finish()
    pipe.unet, pipe.text_encoder = unet.eval().cpu(), text_encoder.eval().cpu()
    save_float16(pipe, out / "sd")
    _write_log(out, "sd", cfg, loop, step + 1, device, dict(scaling_factor=scale, **extra))


def train_flux(cfg: TrainConfig, out: Path, device: torch.device, data) -> None:
    """The ``flux`` stage: the Flux-style set around the trained autoencoder, into ``<out>/flux``."""
    from ..cookanything.flexible_rope import canvas_image_ids
    from ..cookanything.flow_matching import pack_images, shift_sigma, time_shift_mu

    torch.manual_seed(cfg.seed + 2)
    vae, mean, std = _load_autoencoder(out, device)
    scale = 1.0 / std
    latents = (encode_all(vae, torch.from_numpy(data.images), device) - mean) * scale  # Flux: (z - shift) * scale
    pipe = toy.build_flux(vae.to("cpu"), scale, mean)
    parts = ("transformer", "text_encoder", "text_encoder_2")
    extra = dict(continued=_continue_from(pipe, Path(cfg.init_from) / "flux", parts)) if cfg.init_from else {}
    transformer = pipe.transformer.to(device).train()
    clip, t5 = pipe.text_encoder.to(device).train(), pipe.text_encoder_2.to(device).train()
    b, c, h, w = latents[:1].shape
    img_ids = canvas_image_ids(1, h // 2, w // 2, device=device)  # [64, 3]: (0, row, col)
    txt_ids = torch.zeros(T5_MAX_LENGTH, 3, device=device)
    sc = pipe.scheduler.config
    mu = time_shift_mu(sc, img_ids.shape[0])
    loop = _Loop([*transformer.parameters(), *clip.parameters(), *t5.parameters()], cfg, cfg.flux_steps, cfg.lr)
    clip_tokens, t5_tokens = _Tokens(pipe.tokenizer), _Tokens(pipe.tokenizer_2)
    gen = torch.Generator().manual_seed(cfg.seed + 2)
    rng = np.random.default_rng(cfg.seed + 2)
    step = 0
    for step in range(cfg.flux_steps):
        idx = torch.randint(len(latents), (cfg.batch,), generator=gen)
        z0 = latents[idx.to(device)]  # [B, 4, 16, 16]
        texts = _captions(data, idx, rng, cfg.caption_dropout)
        clip_ids, t5_ids = clip_tokens(texts, device), t5_tokens(texts, device)  # [B, 32], [B, 64]
        eps = torch.randn(z0.shape, generator=gen).to(device)
        u = torch.sigmoid(torch.randn(cfg.batch, generator=gen)).to(device)  # logit-normal in (0, 1)
        s = shift_sigma(u, sc, img_ids.shape[0])  # the pipeline's time shift at this image size
        zs = (1 - s)[:, None, None, None] * z0 + s[:, None, None, None] * eps
        target = pack_images(eps - z0)  # [B, 64, 16]
        with _autocast(device, cfg.flux_bf16):
            pooled = clip(clip_ids).pooler_output  # [B, 128]
            seq = t5(t5_ids)[0]  # [B, 64, 128]
            pred = transformer(
                hidden_states=pack_images(zs),
                timestep=s,
                guidance=None,
                pooled_projections=pooled,
                encoder_hidden_states=seq,
                txt_ids=txt_ids,
                img_ids=img_ids,
                return_dict=False,
            )[0]
        if not loop.step(F.mse_loss(pred.float(), target), step):
            break
    loop.finish()
    pipe.transformer, pipe.text_encoder, pipe.text_encoder_2 = (
        transformer.eval().cpu(),
        clip.eval().cpu(),
        t5.eval().cpu(),
    )
    save_float16(pipe, out / "flux")
    _write_log(out, "flux", cfg, loop, step + 1, device, dict(scaling_factor=scale, shift_factor=mean, mu=mu, **extra))


def _generators(out: Path, device: torch.device) -> tuple[dict, dict[str, str]]:
    """The toy pipelines that draw the CLIP stage's generated frames: ``<out>/sd`` and ``<out>/flux`` when this output
    folder holds them (trained by an earlier stage), else the shipped ones (``data/toykitchen``)."""
    folders = {
        name: out / name if (out / name / "model_index.json").is_file() else TOY_DIR / name for name in ("sd", "flux")
    }
    pipes = {"sd": toy_sd(folders["sd"], device=device), "flux": toy_flux(folders["flux"], device=device)}
    return pipes, {k: str(v) for k, v in folders.items()}


def train_clip(cfg: TrainConfig, out: Path, device: torch.device, data) -> None:
    """The Toy Kitchen CLIP: image and text towers trained together on (picture, fresh caption) pairs.

    Pictures: ``data``'s renders and, for a share ``cfg.clip_generated_share`` of every batch,
    frames the toy pipelines generated, captioned by what the oracle reads in them (``generated.py``;
    ``cfg.clip_generated`` frames per pipeline, cached in ``<out>/work/clip_generated``).
    Loss: ``clip.contrastive_loss`` (symmetric InfoNCE, learned temperature) over batches of
    ``cfg.clip_batch`` pairs, with one hard-negative caption per picture when ``cfg.clip_hard_negatives``
    (``clip.caption_pair``: the same template with one ingredient or the colour changed).
    No caption dropout (an empty caption matches every picture) and no EMA.
    """
    from .clip import build_clip, contrastive_loss, heldout_retrieval, pixels, save_clip, trim
    from .generated import GeneratedConfig, generate_corpus

    sources = [(data, torch.from_numpy(data.images))]  # (dataset, [n, 64, 64, 3] uint8)
    shares = [1.0]
    extra = {}
    if cfg.clip_generated > 0:
        pipes, folders = _generators(out, device)
        gcfg = GeneratedConfig(frames=cfg.clip_generated, seed=cfg.seed, num_inference_steps=cfg.clip_generation_steps)
        t = time.perf_counter()
        corpus, stats = generate_corpus(pipes, gcfg, out / "work" / "clip_generated")
        print(f"  generated frames: {stats} ({time.perf_counter() - t:.0f} s)", flush=True)
        extra["generated"] = dict(config=dataclasses.asdict(gcfg), pipelines=folders, counts=stats)
        if len(corpus):
            sources.append((corpus, torch.from_numpy(corpus.images)))
            shares = [1 - cfg.clip_generated_share, cfg.clip_generated_share]
    counts = [round(cfg.clip_batch * s) for s in shares]
    counts[0] = cfg.clip_batch - sum(counts[1:])  # pictures per batch from each source

    torch.manual_seed(cfg.seed + 3)
    tokenizer = toy.clip_tokenizer()
    model = build_clip(tokenizer).to(device).train()
    tokens = _Tokens(tokenizer)
    loop = _Loop(model.parameters(), cfg, cfg.clip_steps, cfg.clip_lr, ema=False)
    gen = torch.Generator().manual_seed(cfg.seed + 3)
    rng = np.random.default_rng(cfg.seed + 3)
    step = 0
    for step in range(cfg.clip_steps):
        batch, texts, negatives = [], [], []
        for (dataset, images), count in zip(sources, counts):
            idx = torch.randint(len(images), (count,), generator=gen)
            batch.append(images[idx])
            if cfg.clip_hard_negatives:
                pos, neg = _caption_pairs(dataset, idx, rng)
                texts, negatives = texts + pos, negatives + neg
            else:
                texts += _captions(dataset, idx, rng, dropout=0.0)
        x = pixels(torch.cat(batch).to(device))  # [B, 3, 64, 64]
        ids = trim(tokens(texts, device), tokenizer.eos_token_id)  # [B, L <= 32]
        neg_ids = trim(tokens(negatives, device), tokenizer.eos_token_id) if negatives else None  # [B, L' <= 32]
        with _autocast(device):
            loss = contrastive_loss(model, x, ids, neg_ids)
        if not loop.step(loss.float(), step):
            break
    model.eval().cpu()
    retrieval = heldout_retrieval(clip_backbone(model, tokenizer=tokenizer))
    print(f"  held-out retrieval: {retrieval}", flush=True)
    extra.update(
        retrieval=retrieval,
        temperature=float(1 / model.logit_scale.detach().exp()),
        parameters=sum(p.numel() for p in model.parameters()),
    )
    _write_log(out, "clip", cfg, loop, step + 1, device, extra)
    save_clip(model, tokenizer, out / "clip")


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


def train(out, preset: str = "gpu", stages=STAGES, device=None, **overrides) -> TrainConfig:
    """Run the chosen stages into ``out``; returns the config used."""
    cfg = dataclasses.replace(PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None})
    out = Path(out)
    (out / "work").mkdir(parents=True, exist_ok=True)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.backends.cuda.matmul.allow_tf32 = True  # float32 matrix products on tensor cores (GPU only)
    t = time.perf_counter()
    data = render_dataset(cfg.images, cfg.seed, IMAGE_SIZE, workers=cfg.workers)
    print(f"rendered {len(data)} scenes in {time.perf_counter() - t:.1f} s", flush=True)
    for stage in STAGES:
        if stage in stages:
            print(f"stage {stage} on {device}", flush=True)
            {"autoencoder": train_autoencoder, "sd": train_sd, "flux": train_flux, "clip": train_clip}[stage](
                cfg, out, device, data
            )
    return cfg
