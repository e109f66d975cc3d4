"""How a "noise level" maps onto a scheduler's timesteps.

Recipe Diffusion talks about noise *levels*: frame ``i`` starts from the reference
latent "noised to 0.999", and region-aware noise uses 0.9 inside the container mask.
cooklab gives a level ``s`` in ``[0, 1]`` exactly the meaning diffusers gives
``strength`` in ``StableDiffusionImg2ImgPipeline``, so that "equal noise levels give
plain img2img" holds bit for bit:

    N  = num_inference_steps
    k  = min(floor(N * s), N)            # denoising steps that will be run
    j  = (N - k) * scheduler.order       # position in scheduler.timesteps
    t  = scheduler.timesteps[j]          # the training timestep of that position
    AddNoise(x0, eps, s) = scheduler.add_noise(x0, eps, t)

``AddNoise`` is whatever forward process the scheduler defines at ``t``:
``sqrt(abar_t) x0 + sqrt(1 - abar_t) eps`` for DDIM/DDPM/PNDM, ``x0 + sigma_t eps`` for
Euler/Heun/LMS (whose ``scale_model_input`` later divides by ``sqrt(sigma_t^2 + 1)``),
``alpha_t x0 + sigma_t eps`` for DPM-Solver. ``k == 0`` (a level below ``1/N``) means no
noise at all: the latent is returned unchanged.

Two details make this correct for every scheduler family, not only DDIM:

* sigma-based schedulers (Euler, DPM-Solver, Heun ...) look up the noise of
  ``add_noise`` through their ``begin_index`` once it is set. Each level therefore sets
  ``begin_index`` to its own position before adding noise, and the pipeline sets it to the
  denoising start afterwards (``set_begin_index``), exactly as img2img does.
* with few steps two levels can land on the same position (N=5: 0.999 and 0.9 both give
  k=4). They then add the same noise; ``NoiseLevels.index`` tells you so.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import repeat

from ..checks import finite_number


def check_level(name: str, level: float) -> float:
    """Validate a noise level (a float in [0, 1]) and return it as float."""
    return finite_number(
        name, level, low=0.0, high=1.0, hint="a noise level is a number between 0 and 1; the paper uses 0.999 and 0.9"
    )


@dataclass
class NoiseLevels:
    """The noise-level <-> timestep mapping of one scheduler after ``set_timesteps(N)``."""

    scheduler: object
    num_inference_steps: int

    @property
    def order(self) -> int:
        return int(getattr(self.scheduler, "order", 1))

    def steps_run(self, level: float) -> int:
        """k = min(floor(N * s), N): how many denoising steps a latent at this level needs."""
        n = self.num_inference_steps
        return min(int(n * level), n)

    def index(self, level: float) -> int:
        """Position in ``scheduler.timesteps`` where denoising from this level starts (len == clean)."""
        return (self.num_inference_steps - self.steps_run(level)) * self.order

    def timestep(self, level: float) -> float | None:
        """The training timestep of this level, or None when the level adds no noise."""
        j = self.index(level)
        ts = self.scheduler.timesteps
        return None if j >= len(ts) else float(ts[j])

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, level: float) -> torch.Tensor:
        """AddNoise(x0, eps, s): the scheduler's forward process at the level's timestep.

        x0, noise: [B, C, h, w] latents (scaled by the VAE's scaling factor).
        """
        j = self.index(level)
        ts = self.scheduler.timesteps
        if j >= len(ts):
            return x0
        if hasattr(self.scheduler, "set_begin_index"):
            self.scheduler.set_begin_index(j)
        t = repeat(ts[j : j + 1], "1 -> b", b=x0.shape[0])  # [B]: the level's timestep for every latent of the batch
        return self.scheduler.add_noise(x0, noise, t)

    def coefficients(self, level: float) -> tuple[float, float]:
        """(signal, noise) coefficients a, b with AddNoise(x0, eps, s) = a * x0 + b * eps (float32)."""
        zero, one = torch.zeros(1, 1, 1, 1), torch.ones(1, 1, 1, 1)
        return self.add_noise(one, zero, level).item(), self.add_noise(zero, one, level).item()
