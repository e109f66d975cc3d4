"""The ``autoencoder`` stage of ``cooklab toykitchen train``: the toy ``AutoencoderKL``, trained or widened.

Reconstruction MSE (food pixels weighted: ``food_weighted_mse``) plus a small KL term,
``L = ||D(z) - x||^2 + beta KL(q(z|x) || N(0, I))``, ``z ~ q(z|x)``. Its latent mean and standard deviation
give the pipelines' ``shift_factor`` / ``scaling_factor``; the ``sd`` and ``flux`` stages read it back with
``load_autoencoder`` and ``encode_all``.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import CheckpointError
from . import architectures as toy
from .training_config import TrainConfig
from .training_loop import TrainingLoop, autocast, save_float16, write_log


def _images(data, idx, device) -> torch.Tensor:
    """uint8 [B, H, W, 3] rows -> float [B, 3, H, W] in [-1, 1]."""
    x = data[idx].to(device, non_blocking=True).permute(0, 3, 1, 2).float()
    return x / 127.5 - 1


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
    loop = TrainingLoop(vae.parameters(), cfg, cfg.vae_steps, cfg.vae_lr, ema=False)
    gen = torch.Generator().manual_seed(cfg.seed)
    step = 0
    for step in range(cfg.vae_steps):
        idx = torch.randint(len(images), (batch,), generator=gen)
        x = _images(images, idx, device)  # [B, 3, 64, 64]
        with autocast(device):
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
    write_log(
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


def load_autoencoder(out: Path, device):
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
