"""An explorer of region-aware noise (Recipe Diffusion, Eq. 5-7): sliders for the two levels and the steps.

    noise_explorer(None, mask, pipe.scheduler, 20)   # a toy latent on the mask's grid
    noise_explorer(out.latents[0], mask, pipe.scheduler, 20)

Each change recomputes ``region_aware_noise`` on a copy of the scheduler and draws
``noise_map_figure``; a line above the figure says which timestep each level lands on, with
warnings where the setting defeats the method. ipywidgets is imported inside the function.
"""

from __future__ import annotations

import html

import torch

from ...grounding import to_mask_tensor
from ...recipe_diffusion.noise_levels import NoiseLevels
from ...recipe_diffusion.region_noise import region_aware_noise, resize_mask
from ..recipe_diffusion import noise_map_figure
from . import panels

__all__ = ["noise_explorer"]


def _toy_latent(latent_hw: tuple[int, int], channels: int = 4) -> torch.Tensor:
    """A smooth stand-in for a reference latent ([1, C, h, w]): a few waves, unit scale."""
    h, w = latent_hw
    y = torch.linspace(-1, 1, h)[:, None]
    x = torch.linspace(-1, 1, w)[None, :]
    waves = [torch.sin(3 * x + k) * torch.cos(2 * y - k) for k in range(channels)]
    return torch.stack(waves)[None]


def _noise_sliders(widgets, object_noise: float, base_noise: float, num_inference_steps: int):
    """The explorer's three sliders: object_noise, base_noise (levels in [0, 1]) and num_inference_steps."""
    slider = dict(
        min=0.0,
        max=1.0,
        step=0.001,
        readout_format=".3f",
        continuous_update=False,
        style={"description_width": "initial"},
    )
    obj = widgets.FloatSlider(value=object_noise, description="object_noise (in mask)", **slider)
    base = widgets.FloatSlider(value=base_noise, description="base_noise (outside)", **slider)
    steps = widgets.IntSlider(
        value=num_inference_steps,
        min=1,
        max=100,
        description="num_inference_steps",
        continuous_update=False,
        style={"description_width": "initial"},
    )
    return obj, base, steps


def noise_explorer(
    reference_latent,
    mask,
    scheduler,
    num_inference_steps: int = 20,
    object_noise: float = 0.9,
    base_noise: float = 0.999,
    seed: int = 0,
):
    """Region-aware noise (Eq. 5-7) with sliders for the two levels and the number of steps.

    reference_latent: ``[1, C, h, w]`` (e.g. ``out.latents[0]``) or None for a smooth toy
    latent on the mask's grid. mask: ``[h, w]`` on the latent grid or an image-sized mask
    (area-resized to the grid). scheduler: any diffusers scheduler; a copy is made from its
    config, so the pipeline's own scheduler is left alone. Shows the timestep index each
    level lands on and warns when both land on the same one (then Eq. 7 is uniform noise).
    """
    import ipywidgets as widgets

    mask = to_mask_tensor(mask)
    latent_hw = tuple(reference_latent.shape[-2:]) if reference_latent is not None else tuple(mask.shape)
    mask = resize_mask(mask, latent_hw)  # [h, w]
    reference = _toy_latent(latent_hw) if reference_latent is None else reference_latent.detach().float().cpu()
    noise = torch.randn(reference.shape, generator=torch.Generator().manual_seed(seed))
    sched = type(scheduler).from_config(scheduler.config)
    sched.set_timesteps(num_inference_steps)
    # fixed colour scales while the sliders move: the signal coefficient is at most 1,
    # sigma at most its value at level 1
    coefficient_max = (max(1.0, NoiseLevels(sched, num_inference_steps).coefficients(1.0)[1]), 1.0)

    obj, base, steps = _noise_sliders(widgets, object_noise, base_noise, num_inference_steps)
    info = widgets.HTML()
    out = widgets.Output()

    def draw():
        n = steps.value
        sched.set_timesteps(n)
        levels = NoiseLevels(sched, n)
        region = region_aware_noise(reference, noise, mask, obj.value, base.value, levels.add_noise)
        i_obj, i_base = levels.index(obj.value), levels.index(base.value)
        t_obj, t_base = levels.timestep(obj.value), levels.timestep(base.value)
        info.value = _levels_html(obj.value, base.value, n, i_obj, i_base, t_obj, t_base, levels.steps_run(base.value))
        panels.show_figures(
            noise_map_figure(
                mask=mask,
                sigma_map=region.sigma_map,
                signal_map=region.signal_map,
                noised=region.combined[0],
                object_noise=obj.value,
                base_noise=base.value,
                object_timestep=t_obj,
                base_timestep=t_base,
                title=f"{type(sched).__name__}, N={n}",
                coefficient_max=coefficient_max,
            )
        )

    for w in (obj, base, steps):
        w.observe(lambda _: panels.redraw(out, draw), names="value")
    panels.redraw(out, draw)
    return panels.panel(
        widgets,
        [[obj, base], [steps], [info]],
        out,
        dict(object_noise=obj, base_noise=base, num_inference_steps=steps),
    )


def _levels_html(obj, base, n, i_obj, i_base, t_obj, t_base, base_steps) -> str:
    """The level -> (index, timestep) mapping as a line of HTML, with warnings."""

    def where(level, i, t):
        if t is None:
            return f"{level:.3f} → no noise (index {i} = end)"
        return f"{level:.3f} → index {i}, t = {t:g}"

    lines = [
        f"object: {where(obj, i_obj, t_obj)} &nbsp;|&nbsp; base: {where(base, i_base, t_base)} "
        f"&nbsp;|&nbsp; denoising runs {base_steps} of {n} steps from index {i_base}"
    ]
    warn = []
    if i_obj == i_base:
        warn.append(
            f"both levels land on index {i_obj} with N={n}: region-aware noise equals uniform noise here "
            "(use more steps or levels further apart)."
        )
    if obj > base:
        warn.append(
            "object_noise is above base_noise: the container gets more noise than the background "
            "(the paper uses object < base)."
        )
    if base_steps == 0:
        warn.append("base_noise runs no denoising step at this N: the pipeline refuses this setting.")
    lines += [f"<span style='color:#b00'>⚠ {html.escape(w)}</span>" for w in warn]
    return "<br>".join(lines)
