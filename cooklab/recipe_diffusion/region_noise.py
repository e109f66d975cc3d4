"""Region-aware noise (Recipe Diffusion, Eq. 5-7).

The reference latent ``L_j`` is noised twice with the *same* Gaussian sample ``eps``:
lightly inside the container mask, strongly outside, and the two are combined by the mask
resized to the latent grid:

    L_container  = AddNoise(L_j, sigma_object)                               (5)
    L_background = AddNoise(L_j, sigma_base)                                 (6)
    L_combined   = M_resized * L_container + (1 - M_resized) * L_background  (7)

with ``sigma_object < sigma_base`` (paper: 0.9 and 0.999). ``AddNoise`` and the meaning of a
level are defined in ``noise_levels.py``. Denoising then starts at the *base* level's
timestep, so the container keeps more of the reference frame than the sampler assumes:
that mismatch is the mechanism. With ``sigma_object == sigma_base`` Eq. 7 is plain img2img
noising of ``L_j``.

Everything here is a pure function of tensors; ``add_noise`` is passed in (normally
``NoiseLevels.add_noise``) so the maths can be run and plotted without a model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange

from ..errors import ConfigError

AddNoise = Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]


def resize_mask(
    mask: torch.Tensor, latent_hw: tuple[int, int], image_hw: tuple[int, int] | None = None
) -> torch.Tensor:
    """Resize a [H, W] mask to the latent grid [h, w] by area averaging (a soft mask in [0, 1]).

    Each latent cell covers ``fh x fw = (H / h) x (W / w)`` pixels (8 x 8 for the SD VAE), and
    its value is their mean:

        M_resized[i, j] = 1 / (fh fw) * sum_{a < fh, b < fw} M[i fh + a, j fw + b]

    The mask must have the image size (``image_hw``) or already the latent size; anything
    else is refused, because a mask of another size almost always belongs to another image.
    """
    hw = tuple(mask.shape[-2:])
    if hw == tuple(latent_hw):
        return mask.float()
    if image_hw is not None and hw != tuple(image_hw):
        raise ConfigError(
            f"mask has size {hw[0]}x{hw[1]} but the frame is {image_hw[0]}x{image_hw[1]} pixels "
            f"(latent {latent_hw[0]}x{latent_hw[1]}): pass a mask of the image size or of the latent size."
        )
    (height, width), (h, w) = hw, latent_hw
    if height % h or width % w:  # cells of unequal size: F.interpolate's overlapping area windows
        return F.interpolate(mask.float()[None, None], size=tuple(latent_hw), mode="area")[0, 0]  # [h, w]
    fh, fw = height // h, width // w
    cells = rearrange(mask.float(), "(h fh) (w fw) -> (fh fw) h w", fh=fh, fw=fw)  # the fh fw pixels over every cell
    # Summed in raster order, then divided by fh and fw: the arithmetic of F.interpolate(mode="area") on the CPU, so
    # the
    # soft edges are bit-identical to it (einops' reduce(..., "mean") sums in another order: last-bit differences).
    return sum(cells) / fh / fw  # [h, w]


def combine_by_mask(mask: torch.Tensor, inside: torch.Tensor, outside: torch.Tensor) -> torch.Tensor:
    """Eq. 7: M * inside + (1 - M) * outside. mask [h, w]; inside/outside [B, C, h, w]."""
    m = rearrange(
        mask.to(device=inside.device, dtype=inside.dtype), "h w -> 1 1 h w"
    )  # broadcast over batch and channels
    return m * inside + (1 - m) * outside


@dataclass
class RegionNoise:
    """The three latents of Eq. 5-7 and the per-pixel coefficients of the combined one."""

    combined: torch.Tensor  # [B, C, h, w]  L_combined (Eq. 7), the start of denoising
    container: torch.Tensor  # [B, C, h, w]  L_container (Eq. 5)
    background: torch.Tensor  # [B, C, h, w]  L_background (Eq. 6)
    mask: torch.Tensor  # [h, w] the mask on the latent grid
    signal_map: torch.Tensor  # [h, w]  a(x): L_combined = a * L_j + b * eps per pixel
    sigma_map: torch.Tensor  # [h, w]  b(x): the noise standard deviation per pixel


def noise_coefficient_map(mask: torch.Tensor, inside: float, outside: float) -> torch.Tensor:
    """A per-pixel map equal to ``inside`` in the mask and ``outside`` elsewhere (Eq. 7 on scalars)."""
    return mask.float() * inside + (1 - mask.float()) * outside


def region_aware_noise(
    reference: torch.Tensor,
    noise: torch.Tensor,
    mask: torch.Tensor,
    object_noise: float,
    base_noise: float,
    add_noise: AddNoise,
) -> RegionNoise:
    """Eq. 5-7. reference, noise: [B, C, h, w]; mask: [h, w] in [0, 1] on the latent grid."""
    if tuple(mask.shape) != tuple(reference.shape[-2:]):
        raise ConfigError(
            f"mask {tuple(mask.shape)} is not on the latent grid {tuple(reference.shape[-2:])}: resize it with "
            "resize_mask first."
        )
    container = add_noise(reference, noise, object_noise)  # (5)
    background = add_noise(reference, noise, base_noise)  # (6)
    combined = combine_by_mask(mask, container, background)  # (7)
    # The forward process is linear in (x0, eps); read each level's coefficients off it.
    one, zero = torch.ones(1, 1, 1, 1), torch.zeros(1, 1, 1, 1)
    a_obj, b_obj = add_noise(one, zero, object_noise).item(), add_noise(zero, one, object_noise).item()
    a_base, b_base = add_noise(one, zero, base_noise).item(), add_noise(zero, one, base_noise).item()
    return RegionNoise(
        combined=combined,
        container=container,
        background=background,
        mask=mask.float().cpu(),
        signal_map=noise_coefficient_map(mask.cpu(), a_obj, a_base),
        sigma_map=noise_coefficient_map(mask.cpu(), b_obj, b_base),
    )
