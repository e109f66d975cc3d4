"""The ``sd`` and ``flux`` stages of ``cooklab toykitchen train``: the two toy model sets around the autoencoder.

* **sd** -- ``UNet2DConditionModel`` and the CLIP text encoder together, v-prediction on the
  cosine schedule: ``z_t = sqrt(a_t) z_0 + sqrt(1 - a_t) eps``, target
  ``v = sqrt(a_t) eps - sqrt(1 - a_t) z_0``, ``L = ||v_theta(z_t, t, c) - v||^2``.
* **flux** -- ``FluxTransformer2DModel`` with its CLIP and T5 encoders, rectified flow:
  ``z_s = (1 - s) z_0 + s eps``, target ``eps - z_0``, ``s`` logit-normal and shifted by the
  same ``mu`` the pipeline uses at 64x64.

Both read the autoencoder stage's output (``autoencoder_training.load_autoencoder``), so they can run as two
processes at once on one GPU; ``init_from`` continues them from trained sets (``load_widened``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import CheckpointError
from ..models.toy import T5_MAX_LENGTH
from . import architectures as toy
from .autoencoder_training import encode_all, load_autoencoder
from .context_captions import ContextMix, context_count
from .panels import panel_batch
from .training_captions import BatchTokenizer, sample_captions
from .training_config import TrainConfig
from .training_loop import TrainingLoop, autocast, resume_point, save_float16, write_log
from .worlds import get_world, vocabulary


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


def continue_from(pipe, folder: Path, parts: tuple[str, ...]) -> dict[str, list[str]]:
    """Copy the weights of ``parts`` (component names) from the set in ``folder`` into ``pipe`` (``load_widened``).

    A text encoder whose tokenizer in ``pipe`` has another vocabulary gets its embedding rows moved by token
    (``remap_rows``). Returns, per part, the names of the tensors moved or widened.
    """
    from diffusers import DiffusionPipeline

    if not (folder / "model_index.json").is_file():
        raise CheckpointError(
            f"init_from: no model set in {folder} to continue from (a folder like data/toykitchen/sd)."
        )
    trained = DiffusionPipeline.from_pretrained(folder, torch_dtype=torch.float32, local_files_only=True)
    continued = {}
    for part in parts:
        state, moved = getattr(trained, part).state_dict(), []
        tokenizer = {"text_encoder": "tokenizer", "text_encoder_2": "tokenizer_2"}.get(part)
        if tokenizer is not None and getattr(trained, tokenizer).get_vocab() != getattr(pipe, tokenizer).get_vocab():
            embedding = getattr(trained, part).get_input_embeddings().weight
            moved = [n for n, t in state.items() if t.data_ptr() == embedding.data_ptr()]  # T5: shared, embed_tokens
            old, new = getattr(trained, tokenizer).get_vocab(), getattr(pipe, tokenizer).get_vocab()
            for name in moved:
                state[name] = remap_rows(state[name], old, new)
        continued[part] = moved + load_widened(getattr(pipe, part), state)
    return continued


def remap_rows(weight: torch.Tensor, old: dict[str, int], new: dict[str, int]) -> torch.Tensor:
    """An embedding table [V_old, D] moved to another vocabulary: row ``new[token]`` = row ``old[token]`` for every
    token of both, zeros for the new tokens ([V_new, D]).

    A later world adds words, and the CLIP tokenizer puts its start and end tokens after the words: by position they
    would land on new words. Moved by token, every known token keeps its row.
    """
    rows = torch.zeros(len(new), weight.shape[1], dtype=weight.dtype)  # [V_new, D]
    pairs = [(new[token], i) for token, i in old.items() if token in new]
    index_new, index_old = (torch.tensor(x) for x in zip(*pairs))
    rows[index_new] = weight[index_old]
    return rows


def _resumable(cfg: TrainConfig, out: Path, stage: str, pipe, parts: tuple[str, ...]) -> tuple[dict | None, dict]:
    """Where a stage starts: a stopped run of it in ``out`` (``resume_point``), else ``init_from``, else scratch.

    Returns the earlier log (None when not resuming) and the log's ``continued`` entry.
    """
    earlier = resume_point(out, stage, cfg)
    if earlier is not None:
        print(f"  resuming {stage} at step {earlier['steps_done']} from {out / stage}", flush=True)
        return earlier, dict(continued=continue_from(pipe, out / stage, parts))
    if cfg.init_from:
        return None, dict(continued=continue_from(pipe, Path(cfg.init_from) / stage, parts))
    return None, {}


def _context(cfg: TrainConfig, context, vae, device, shift: float, scale: float, seed: int, tokenizers) -> ContextMix:
    """The stage's ``ContextMix``: the pool's pictures encoded as the stage's latents (``(z - shift) * scale``)."""
    latents = None
    if context is not None and context_count(cfg.batch, cfg.context_share):
        latents = (encode_all(vae, torch.from_numpy(context.images), device) - shift) * scale  # [n, C, 16, 16]
    return ContextMix(context, latents, cfg.context_share, cfg.batch, seed, tokenizers)


def train_sd(cfg: TrainConfig, out: Path, device: torch.device, data, context=None) -> None:
    """The ``sd`` stage: the SD-style set around the trained autoencoder, into ``<out>/sd``.

    ``context``: the ``ContextPool`` of the run (``context_captions.py``), needed when ``cfg.context_share`` > 0.
    """
    from diffusers import DDPMScheduler

    torch.manual_seed(cfg.seed + 1)
    vae, _, std = load_autoencoder(out, device)
    scale = 1.0 / std
    latents = encode_all(vae, torch.from_numpy(data.images), device) * scale  # SD: z_0 = scale * z (no shift)
    pipe = toy.build_sd(vae, scale, vocabulary(get_world(cfg.world)))
    earlier, extra = _resumable(cfg, out, "sd", pipe, ("unet", "text_encoder"))
    start = earlier["steps_done"] if earlier else 0
    mix = _context(cfg, context, vae, device, 0.0, scale, cfg.seed + 11 + start, [pipe.tokenizer])
    vae.to("cpu")
    unet, text_encoder, tokens = (
        pipe.unet.to(device).train(),
        pipe.text_encoder.to(device).train(),
        BatchTokenizer(pipe.tokenizer),
    )
    noise_sched = DDPMScheduler(
        **{k: v for k, v in toy.SD_SCHEDULER.items() if k not in ("set_alpha_to_one", "timestep_spacing")}
    )
    loop = TrainingLoop([*unet.parameters(), *text_encoder.parameters()], cfg, cfg.sd_steps, cfg.lr, start=start)
    gen = torch.Generator().manual_seed(cfg.seed + 1 + start)
    rng = np.random.default_rng(cfg.seed + 1 + start)
    step = start - 1
    for step in range(start, cfg.sd_steps):
        idx = torch.randint(len(latents), (cfg.batch - mix.count,), generator=gen)
        z0, (texts,) = mix.add(
            latents[idx.to(device)], [sample_captions(data, idx, rng, cfg.caption_dropout)], cfg.caption_dropout
        )  # [B, 4, 16, 16], B captions (the last mix.count of them context pairs)
        ids = tokens(texts, device)  # [B, 32]
        eps = torch.randn(z0.shape, generator=gen).to(device)
        t = torch.randint(0, noise_sched.config.num_train_timesteps, (cfg.batch,), generator=gen).to(device)
        zt = noise_sched.add_noise(z0, eps, t)
        target = noise_sched.get_velocity(z0, eps, t)
        with autocast(device):
            cond = text_encoder(ids)[0]  # [B, 32, 128] last hidden state, as the pipeline reads it
            pred = unet(zt, t, cond).sample
        if not loop.step(F.mse_loss(pred.float(), target), step):
            break
    loop.finish()
    pipe.unet, pipe.text_encoder = unet.eval().cpu(), text_encoder.eval().cpu()
    save_float16(pipe, out / "sd")
    write_log(out, "sd", cfg, loop, step + 1, device, dict(scaling_factor=scale, **extra), earlier)


def _flux_loss(models, z0, texts, img_ids, txt_ids, gen, cfg: TrainConfig, sc, device) -> torch.Tensor:
    """Rectified flow's loss on latents ``z0`` [B, C, H, W] and their captions (CLIP's, T5's) at ``img_ids``."""
    from ..cookanything.flow_matching import pack_images, shift_sigma

    transformer, clip, t5, clip_tokens, t5_tokens = models
    clip_ids, t5_ids = clip_tokens(texts[0], device), t5_tokens(texts[1], device)  # [B, 32], [B, 64]
    eps = torch.randn(z0.shape, generator=gen).to(device)
    u = torch.sigmoid(torch.randn(z0.shape[0], generator=gen)).to(device)  # logit-normal in (0, 1)
    s = shift_sigma(u, sc, img_ids.shape[0])  # the pipeline's time shift at this image size
    zs = (1 - s)[:, None, None, None] * z0 + s[:, None, None, None] * eps
    target = pack_images(eps - z0)  # [B, P, 16], P = H / 2 x W / 2 tokens
    with autocast(device, cfg.flux_bf16):
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
    return F.mse_loss(pred.float(), target)


def train_flux(cfg: TrainConfig, out: Path, device: torch.device, data, context=None) -> None:
    """The ``flux`` stage: the Flux-style set around the trained autoencoder, into ``<out>/flux``.

    ``context``: the run's ``ContextPool`` (``cfg.context_share``); a share ``cfg.panel_share`` of the steps
    train on panel pictures (``panels.panel_batch``: one tall image, global RoPE ids) instead of single scenes.
    """
    from ..cookanything.flexible_rope import canvas_image_ids
    from ..cookanything.flow_matching import time_shift_mu

    torch.manual_seed(cfg.seed + 2)
    vae, mean, std = load_autoencoder(out, device)
    scale = 1.0 / std
    latents = (encode_all(vae, torch.from_numpy(data.images), device) - mean) * scale  # Flux: (z - shift) * scale
    pipe = toy.build_flux(vae, scale, mean, vocabulary(get_world(cfg.world), panels=cfg.panel_share > 0))
    earlier, extra = _resumable(cfg, out, "flux", pipe, ("transformer", "text_encoder", "text_encoder_2"))
    start = earlier["steps_done"] if earlier else 0
    mix = _context(cfg, context, vae, device, mean, scale, cfg.seed + 12 + start, [pipe.tokenizer, pipe.tokenizer_2])
    vae.to("cpu")
    transformer = pipe.transformer.to(device).train()
    clip, t5 = pipe.text_encoder.to(device).train(), pipe.text_encoder_2.to(device).train()
    models = (transformer, clip, t5, BatchTokenizer(pipe.tokenizer), BatchTokenizer(pipe.tokenizer_2))
    b, c, h, w = latents[:1].shape
    img_ids = canvas_image_ids(1, h // 2, w // 2, device=device)  # [64, 3]: (0, row, col)
    panel_ids = {n: canvas_image_ids(n, h // 2, w // 2, flexible=False, device=device) for n in (2, 3, 4)}
    txt_ids = torch.zeros(T5_MAX_LENGTH, 3, device=device)
    sc = pipe.scheduler.config
    mu = time_shift_mu(sc, img_ids.shape[0])
    loop = TrainingLoop(
        [*transformer.parameters(), *clip.parameters(), *t5.parameters()], cfg, cfg.flux_steps, cfg.lr, start=start
    )
    gen = torch.Generator().manual_seed(cfg.seed + 2 + start)
    rng = np.random.default_rng(cfg.seed + 2 + start)
    panel_rng = np.random.default_rng(cfg.seed + 13 + start)  # which steps are panel steps, and the panels' captions
    step = start - 1
    for step in range(start, cfg.flux_steps):
        if cfg.panel_share > 0 and panel_rng.random() < cfg.panel_share:
            panels = panel_batch(data, latents, gen, panel_rng, cfg.batch, cfg.caption_dropout)
            z0, texts, ids = panels.latents, [panels.captions] * 2, panel_ids[panels.panels]  # [B/n, 4, 16 n, 16]
        else:
            idx = torch.randint(len(latents), (cfg.batch - mix.count,), generator=gen)
            captions = sample_captions(data, idx, rng, cfg.caption_dropout)
            z0, texts = mix.add(latents[idx.to(device)], [captions, captions], cfg.caption_dropout)  # [B, 4, 16, 16]
            ids = img_ids
        if not loop.step(_flux_loss(models, z0, texts, ids, txt_ids, gen, cfg, sc, device), step):
            break
    loop.finish()
    pipe.transformer, pipe.text_encoder, pipe.text_encoder_2 = (
        transformer.eval().cpu(),
        clip.eval().cpu(),
        t5.eval().cpu(),
    )
    save_float16(pipe, out / "flux")
    extra = dict(scaling_factor=scale, shift_factor=mean, mu=mu, **extra)
    write_log(out, "flux", cfg, loop, step + 1, device, extra, earlier)
