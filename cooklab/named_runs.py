"""Named runs: each pipeline's method and its ablations as keyword presets, shared by the demo, gallery and evaluation.

    run = NAMED_RUNS["cookanything_no_src"]
    pipe = load_pipeline(run.pipeline, "toy")
    out = pipe(recipe, **toy_call(run.pipeline, seed=0, steps=TOY_STEPS), **run.call)

A ``NamedRun`` is a name, the pipeline it calls (``"recipe-diffusion"``: ``RecipeDiffusion``;
``"cookanything"``: ``CookAnything``), the keyword arguments that make it what it is (a variant of
``RecipeDiffusion.VARIANTS``, a CookAnything switch turned off) and a title, one line about what it
shows. The callers add what they share: ``cooklab demo`` (``cooklab.demo``) pairs four of them on the
Toy Kitchen, ``cooklab gallery`` (``cooklab.gallery.ABLATIONS``) draws each pipeline's runs as an
ablation figure, and ``cooklab evaluate`` (``cooklab.evaluation.methods.METHODS``) compares the
method and its variants over recipes and seeds.

Also here: the settings the Toy Kitchen models are run with (``TOY_SIZE``, ``TOY_STEPS``,
``TOY_GUIDANCE``, ``DEMO_STEPS``) and ``toy_call``, the keyword arguments every Toy Kitchen run of one
pipeline shares. Nothing here imports torch, so the command line reads it before a model loads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DEMO_STEPS",
    "NAMED_RUNS",
    "PIPELINE_TITLES",
    "TOY_GUIDANCE",
    "TOY_SIZE",
    "TOY_STEPS",
    "NamedRun",
    "named_runs",
    "toy_call",
]

TOY_SIZE = 64  # the Toy Kitchen models are trained at 64x64; the tiny ones default to it too
TOY_STEPS = 30  # DDIM / flow-matching steps the Toy Kitchen models are evaluated with (docs/toykitchen.md)
TOY_GUIDANCE = 3.0  # classifier-free guidance of toy_sd; true CFG of toy_flux (it has no guidance embedding)
DEMO_STEPS = 20  # 20 give much the same toy pictures as 30 and keep the demo under a minute on a busy 2-core CPU
PIPELINE_TITLES = {"recipe-diffusion": "Recipe Diffusion", "cookanything": "CookAnything"}


@dataclass(frozen=True)
class NamedRun:
    """One named pipeline call: the pipeline, the keyword arguments that define the run, and what it shows."""

    name: str
    pipeline: str  # "recipe-diffusion" or "cookanything"
    call: Mapping[str, Any] = field(default_factory=dict)  # keyword arguments of pipe(recipe, ...)
    title: str = ""  # one line about the run (a gallery row's label, an evaluation method's summary)


def _runs(*runs: NamedRun) -> dict[str, NamedRun]:
    return {run.name: run for run in runs}


# {name: run}, each pipeline's full method first. Recipe Diffusion's runs are its variants
# (RecipeDiffusion.VARIANTS); CookAnything's switch off one mechanism each (CookAnything.__call__'s switches).
NAMED_RUNS: dict[str, NamedRun] = _runs(
    NamedRun(
        "region_aware_kv",
        "recipe-diffusion",
        dict(variant="region_aware_kv"),
        "region_aware_kv: region-aware noise + K/V sharing (the paper)",
    ),
    NamedRun(
        "region_aware",
        "recipe-diffusion",
        dict(variant="region_aware"),
        "region_aware: region-aware noise, no K/V sharing",
    ),
    NamedRun(
        "kv_sharing",
        "recipe-diffusion",
        dict(variant="kv_sharing"),
        "kv_sharing: K/V sharing, every frame from fresh noise",
    ),
    NamedRun(
        "independent",
        "recipe-diffusion",
        dict(variant="independent"),
        "independent: every frame on its own (plain SD)",
    ),
    NamedRun("cookanything", "cookanything", {}, "CookAnything: SRC + Flexible RoPE + CSCC (the paper)"),
    NamedRun(
        "cookanything_no_src",
        "cookanything",
        dict(regional=False),
        "without Step-wise Regional Control (regional=False)",
    ),
    NamedRun(
        "cookanything_no_flexible_rope",
        "cookanything",
        dict(flexible_rope=False),
        "without Flexible RoPE: one global grid of position ids",
    ),
    NamedRun(
        "cookanything_no_cscc",
        "cookanything",
        dict(cscc=False),
        "without Cross-Step Consistency Control (cscc=False)",
    ),
    NamedRun(
        "cookanything_no_base_branch",
        "cookanything",
        dict(alpha=0.0),
        "without the base branch (alpha = 0)",
    ),
)


def named_runs(pipeline: str) -> tuple[NamedRun, ...]:
    """The named runs of ``pipeline`` in registry order (its full method first)."""
    return tuple(run for run in NAMED_RUNS.values() if run.pipeline == pipeline)


def toy_call(
    pipeline: str, *, seed: int, steps: int, size: int = TOY_SIZE, guidance: float = TOY_GUIDANCE
) -> dict[str, Any]:
    """The keyword arguments every Toy Kitchen run of ``pipeline`` shares, without a progress bar.

    ``guidance`` is classifier-free guidance (``guidance_scale``) for Recipe Diffusion and true
    classifier-free guidance (``true_cfg_scale``) for CookAnything, since ``toy_flux`` has no
    guidance embedding.
    """
    call = dict(seed=seed, num_inference_steps=steps, height=size, width=size, progress=False)
    guidance_key = "guidance_scale" if pipeline == "recipe-diffusion" else "true_cfg_scale"
    return call | {guidance_key: guidance}
