"""An explorer of region-aware noise (Recipe Diffusion, Eq. 5-7) on a real generation: on vs uniform, pictures first.

    noise_explorer(pipe, two_steps, mask_provider=provider, measure=oracle_consistency, **call)

When it is built, the explorer generates the recipe (normally two steps: frame 1 and the frame
made from it) once with uniform noise and once per object level, all on the same seed, under
``cooklab.trace(capture=["noise"])``. Frame 2 starts from the *real* latent ``L_1`` of frame 1
(its picture encoded by the VAE), noised by Eq. 5-7::

    L_combined = M * AddNoise(L_1, object level) + (1 - M) * AddNoise(L_1, base level)   # on
    L_uniform  = AddNoise(L_1, base level)                                                # off

with the same Gaussian sample. The toggle switches between the two runs, the level slider between
the cached object levels, so nothing is generated while the controls move. The first figure shows
the pictures (frame 1 with the container mask, the frame made from it), titled with the measure of
the shown run and of the other setting; the second shows the start latent of that frame
(``noise_map_figure``: the mask, the noise and signal coefficients, the latent's channels and the
latent decoded by the VAE). ipywidgets is imported inside the function.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import torch

from ...instrument import trace
from ...recipe_diffusion.noise_levels import NoiseLevels
from ...recipe_diffusion.records import NoiseRecord
from ..common import TITLE_PT, draw_image, draw_outline, new_subplots
from ..recipe_diffusion import noise_map_figure
from . import panels
from .measures import Measure, measure_label

__all__ = ["noise_explorer"]


@dataclass
class _Run:
    """One cached generation: its pictures, the start noise of the explored frame and that start decoded."""

    images: list  # the recipe's frames (PIL), in order
    noise: NoiseRecord  # how the explored frame's start latent was made (Eq. 5-7, or uniform)
    decoded: object  # that start latent [C, h, w] decoded by the VAE (PIL)
    label: str  # the measure of ``images`` ("" without a measure)


def _level_options(levels: NoiseLevels, object_levels, base_noise: float) -> list[tuple[str, float]]:
    """The slider's options "0.7 → t=666", one per object level; refuses levels that share a timestep.

    Two levels on the same timestep give the same start latent (``NoiseLevels``: k = floor(N s)
    steps run from index N - k), and a level on the base level's timestep is uniform noise.
    """
    n, base_index = levels.num_inference_steps, levels.index(base_noise)
    seen = {}
    for level in sorted(object_levels):
        i = levels.index(level)
        if i <= base_index:
            raise ValueError(
                f"levels: {level} lands on index {i}, not after base_noise={base_noise} (index {base_index}) with "
                f"num_inference_steps={n}: region-aware noise would be uniform there; use object levels below "
                f"{levels.steps_run(base_noise) / n:.3f}."
            )
        if i in seen:
            raise ValueError(
                f"levels: {seen[i]} and {level} both land on index {i} (t={levels.timestep(level):g}) with "
                f"num_inference_steps={n}: they give the same start latent; keep one of them."
            )
        seen[i] = level
    return [(f"{level:g} → t={levels.timestep(level):g}", level) for level in seen.values()]


def _generate(pipe, recipe, frame: int, measure: Measure | None, **call) -> _Run:
    """One traced run of ``pipe`` (``call``: its arguments); keeps the pictures and ``frame``'s start noise."""
    with trace(pipe, capture=["noise"]) as tr:
        out = pipe(recipe, **call)
    if frame not in tr.noise:
        raise ValueError(
            f"frame={frame}: that frame does not start from an earlier one (frame 0 starts from pure noise); pick "
            f"one of {sorted(tr.noise)} (1 is the second)."
        )
    record = tr.noise[frame]
    start = record.noised[None].to(device=pipe.device, dtype=pipe.pipe.vae.dtype)  # [1, C, h, w]
    with torch.no_grad():
        decoded = pipe.decode_image(start)  # PIL, the picture's size
    return _Run(out.images, record, decoded, measure_label(measure, out.images))


def _cache_runs(pipe, recipe, options, base_noise, masks, mask_provider, frame, measure, call) -> dict:
    """{None: the uniform run, level: the region-aware run at that object level}, on the same seed."""
    uniform = dict(sequential=True, kv_sharing=False, region_aware=False, start_from="reference")
    runs = {None: _generate(pipe, recipe, frame, measure, base_noise=base_noise, **uniform, **call)}
    for _, level in options:
        run = _generate(
            pipe,
            recipe,
            frame,
            measure,
            variant="region_aware",
            masks=masks,
            mask_provider=mask_provider,
            object_noise=level,
            base_noise=base_noise,
            **call,
        )
        if run.noise.region is None:
            raise ValueError(
                f"masks / mask_provider: frame {frame + 1} got no container mask ({run.noise.fallback}), so it "
                "starts from uniform noise; pass a mask for it (masks=) or a provider that finds the container."
            )
        runs[level] = run
    return runs


def _setting(level: float | None, base: float, levels: NoiseLevels) -> str:
    """The setting of a run in words, with the timesteps its levels land on."""
    outside = f"{base:g} (t={levels.timestep(base):g})"
    if level is None:
        return f"uniform noise {outside} everywhere"
    return f"object level {level:g} (t={levels.timestep(level):g}) in the mask, {outside} outside"


def _pictures_figure(run: _Run, frame: int, heading: str):
    """The run's frames in a row; the explored frame's reference with the container mask's outline (red)."""
    n = len(run.images)
    width = max(3.3 * n + 0.4, 7.0)  # inches: the pictures, wider than the title, set the width of on and off alike
    fig, axes = new_subplots(1, n, figsize=(width, 3.9), squeeze=False, layout="constrained")
    reference = run.noise.reference
    region = run.noise.region
    for i, (ax, image) in enumerate(zip(axes[0], run.images, strict=True)):
        role = " (reference)" if i == reference else " ← made from it" if i == frame else ""
        draw_image(ax, image, f"recipe step {i + 1}{role}")
        if i == reference and region is not None:
            draw_outline(ax, region.mask, (image.height, image.width))
    fig.suptitle(heading, fontsize=TITLE_PT)
    return fig


def noise_explorer(
    pipe,
    recipe,
    *,
    levels=(0.5, 0.7, 0.9),
    object_noise: float = 0.7,
    base_noise: float = 0.999,
    masks=None,
    mask_provider=None,
    measure: Measure | None = None,
    frame: int = 1,
    seed: int = 0,
    num_inference_steps: int = 20,
    **call,
):
    """Region-aware noise on vs uniform noise, on a real generation of ``recipe``, pictures first.

    pipe: a ``RecipeDiffusion``; recipe: what it generates (two steps are enough: frame 1 and the
    frame made from it). levels: the object levels to cache (each on its own timestep, all before
    the base level's; the slider steps through them); object_noise: the one shown first.
    masks / mask_provider: as for ``pipe`` (frame ``frame`` must get a container mask).
    measure: pictures -> title label (``oracle_consistency`` in the Toy Kitchen, None for a real
    checkpoint). frame: the frame whose start latent is shown (0-based; 1, the second, starts from
    frame 1's latent). call: the pipeline's other arguments (height, width, guidance_scale, ...).
    Controls: ``mechanism`` (True: region-aware noise, False: uniform ``base_noise``), ``object_noise``.
    """
    import ipywidgets as widgets

    sched = type(pipe.scheduler).from_config(pipe.scheduler.config)  # a copy: the pipeline's own stays untouched
    sched.set_timesteps(num_inference_steps)
    steps = NoiseLevels(sched, num_inference_steps)
    options = _level_options(steps, levels, base_noise)
    if object_noise not in [value for _, value in options]:
        raise ValueError(f"object_noise={object_noise}: choose one of levels={sorted(levels)}.")
    call = dict(call, seed=seed, num_inference_steps=num_inference_steps)
    runs = _cache_runs(pipe, recipe, options, base_noise, masks, mask_provider, frame, measure, call)
    # fixed colour scales: the signal coefficient is at most 1, the noise coefficient at most its value at level 1
    coefficient_max = (max(1.0, steps.coefficients(1.0)[1]), 1.0)

    mechanism = panels.mechanism_toggle(
        widgets, "region-aware noise", on="on: object level in the mask", off=f"off: uniform {base_noise:g}"
    )
    level = widgets.SelectionSlider(
        options=options,
        value=object_noise,
        description="object level (in the mask)",
        continuous_update=False,
        style={"description_width": "initial"},
        layout=widgets.Layout(width="420px"),
    )
    info = widgets.HTML()
    out = widgets.Output()

    def draw():
        shown = level.value if mechanism.value else None
        other = None if mechanism.value else level.value
        run = runs[shown]
        info.value = _levels_html(steps, level.value, base_noise, mechanism.value)
        heading = _heading(run, runs[other], shown, other, steps, base_noise, seed)
        panels.show_figures(
            _pictures_figure(run, frame, heading),
            noise_map_figure(
                run.noise,
                decoded=run.decoded,
                title=f"start of recipe step {frame + 1} (from step {run.noise.reference + 1}'s latent)",
                coefficient_max=coefficient_max,
            ),
        )

    for w in (mechanism, level):
        w.observe(lambda _: panels.redraw(out, draw), names="value")
    panels.redraw(out, draw)
    return panels.panel(widgets, [[mechanism], [level], [info]], out, dict(mechanism=mechanism, object_noise=level))


def _heading(run: _Run, other_run: _Run, shown, other, steps: NoiseLevels, base: float, seed: int) -> str:
    """ "region-aware noise on: object level 0.7 (t=666) ...: oracle consistency 1/1 (uniform 0.999: 0/1), seed 0"."""
    state = "on" if shown is not None else "off"
    heading = f"region-aware noise {state}: {_setting(shown, base, steps)}"
    if not run.label:  # no measure
        return f"{heading}, seed {seed}"
    other_name = f"uniform {base:g}" if other is None else f"object level {other:g}"
    other_value = other_run.label.rsplit(" ", 1)[-1]  # "oracle consistency 0/1" -> "0/1"
    return f"{heading}\n{run.label} ({other_name}: {other_value}), seed {seed}"


def _levels_html(steps: NoiseLevels, level: float, base: float, on: bool) -> str:
    """The level -> (index, timestep) mapping of both levels as a line of HTML."""
    n = steps.num_inference_steps

    def where(name, s):
        return f"{name} {s:g} → index {steps.index(s)}, t = {steps.timestep(s):g}"

    used = "" if on else " (not used: the toggle is off)"
    return (
        f"{html.escape(where('object level', level))}{used} &nbsp;|&nbsp; {html.escape(where('base level', base))}"
        f" &nbsp;|&nbsp; denoising runs {steps.steps_run(base)} of {n} steps from index {steps.index(base)}"
    )
