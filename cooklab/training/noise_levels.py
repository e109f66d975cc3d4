"""The noise levels LoRA training draws: the distribution of sigma in the rectified-flow loss.

Training sees ``x_sigma = (1 - sigma) x_0 + sigma eps`` at one sigma per canvas, so the distribution of sigma
decides which noise levels the adapter learns: low sigma (little noise) is where the fine detail -- the
ingredients -- is drawn, high sigma where the layout is. Two choices, both in ``TrainSettings``:

    u ~ p(u)        (``sigma_sampling``, drawn by diffusers' ``compute_density_for_timestep_sampling``)
        uniform       u ~ U(0, 1)                                      diffusers' weighting_scheme "none"
        logit_normal  u = sigmoid(n),  n ~ N(logit_mean, logit_std)      Esser et al. 2024 (SD3), Sec. 3.1
        mode          u = 1 - v - s (cos^2(pi v / 2) - 1 + v),  v ~ U(0, 1),  s = mode_scale   (SD3, Sec. 3.1)

    sigma = u                                       (sigma_shift: false)
    sigma = e^mu / (e^mu + 1 / u - 1)               (sigma_shift: true; ``shift_sigma``: the time shift the
                                                     sampler applies to this canvas of N P image tokens, mu from
                                                     N P; with a static scheduler shift s: s u / (1 + (s - 1) u))

The default, ``uniform`` without the shift, is what diffusers' Flux LoRA script does by default
(``examples/dreambooth/train_dreambooth_lora_flux.py``: ``--weighting_scheme none`` -> a uniform ``u`` -> the
timestep ``floor(1000 u)`` of the scheduler's training table, whose sigmas FLUX.1's scheduler
(``use_dynamic_shifting``) leaves unshifted). That script reads sigma as ``1 - floor(1000 u) / 1000``; cooklab
uses ``u`` itself, as SD3 defines the densities over sigma: the same distribution for ``uniform`` and for a
logit-normal of mean 0 (both symmetric about 1/2, up to the 1/1000 grid), mirrored about 1/2 for ``mode`` and for
``logit_mean != 0``.

With the shift the median moves up: a logit-normal of mean 0 has median 1/2, shifted
``sigmoid(mu)`` -- 0.76 for four 512 x 512 regions (4096 tokens, mu = 1.15). ``noise_level_summary`` writes
the distribution actually used into ``training.json``.
"""

from __future__ import annotations

import torch

from ..cookanything.flow_matching import shift_sigma

SIGMA_SAMPLINGS = ("uniform", "logit_normal", "mode")
_DIFFUSERS_SCHEME = {"uniform": "none", "logit_normal": "logit_normal", "mode": "mode"}  # their weighting_scheme


def sample_sigmas(
    train, scheduler_config, image_seq_len: int, generator: torch.Generator, count: int = 1
) -> torch.Tensor:
    """``count`` noise levels sigma [count] for a canvas of ``image_seq_len`` image tokens, drawn from ``generator``.

    train: the ``TrainSettings`` (``sigma_sampling``, ``sigma_shift``, ``logit_mean``, ``logit_std``,
    ``mode_scale``); scheduler_config: the pipeline's scheduler config (its time shift).
    """
    from diffusers.training_utils import compute_density_for_timestep_sampling

    u = compute_density_for_timestep_sampling(
        weighting_scheme=_DIFFUSERS_SCHEME[train.sigma_sampling],
        batch_size=count,
        logit_mean=train.logit_mean,
        logit_std=train.logit_std,
        mode_scale=train.mode_scale,
        generator=generator,
    )  # [count] in (0, 1)
    return shift_sigma(u, scheduler_config, image_seq_len) if train.sigma_shift else u


def noise_level_summary(train, scheduler_config, image_seq_lens, draws: int = 100_000) -> dict:
    """The sigma distribution of a run, for its log: the switches, and per canvas length the median,
    the 10th / 90th percentiles and P(sigma < 0.3) of ``draws`` draws (a generator of its own, seed 0).
    """
    canvases = []
    for length in sorted(set(image_seq_lens)):
        sigma = sample_sigmas(train, scheduler_config, length, torch.Generator().manual_seed(0), draws).double()
        q10, q50, q90 = torch.quantile(sigma, torch.tensor([0.1, 0.5, 0.9], dtype=sigma.dtype)).tolist()
        canvases.append(
            {
                "image_tokens": length,
                "median": round(q50, 4),
                "p10": round(q10, 4),
                "p90": round(q90, 4),
                "below_0.3": round(float((sigma < 0.3).double().mean()), 4),
            }
        )
    return {
        "sampling": train.sigma_sampling,
        "shift": train.sigma_shift,
        **(
            {"logit_mean": train.logit_mean, "logit_std": train.logit_std}
            if train.sigma_sampling == "logit_normal"
            else {}
        ),
        **({"mode_scale": train.mode_scale} if train.sigma_sampling == "mode" else {}),
        "canvases": canvases,
    }
