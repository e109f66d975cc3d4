"""One generation run, start to finish: load a pipeline, call it (traced or not), time it, write its folder.

    pipe = load_pipeline("recipe-diffusion", "toy")
    run = Run(recipe, Path("outputs/pancakes"), model="toy", pipeline="recipe-diffusion", call=dict(seed=0),
              trace=True)
    result = run_and_report(pipe, run)
    print(result_summary(result), "open", result.index)

``run_and_report`` calls ``pipe(run.recipe, **run.call)`` (inside ``cooklab.trace`` when
``run.trace``), then writes the run with ``cooklab.report.write_run`` (frames, storyboard,
settings.json, index.html) and, for a traced run, ``trace_summary.txt`` and the figures named in
``run.figures`` (see ``TRACE_FIGURES``); ``result_summary`` says in one line what the run did.
``cooklab generate`` and ``cooklab demo`` (``cooklab.demo``) are this function with settings taken
from the command line and from ``cooklab.named_runs``.

Also here: the container masks of a Recipe Diffusion run from a spec (``mask_provider``), what a
run with a named offline model must say about it (``model_notes``: ``toy`` draws toy-world
pictures, ``tiny`` noise), the Toy Kitchen oracle's container consistency in words
(``consistency_text``), the text of ``trace_summary.txt``
(``trace_summary``, numbers from ``cooklab.instrument.summaries``), and the notes a CookAnything
output brings itself (``span_notes``: steps the token limit cut).
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cooklab
from cooklab.errors import ConfigError
from cooklab.report import atomic_write, check_run_folder, is_canvas_output, write_figure, write_run

__all__ = [
    "DEFAULT_FIGURES",
    "SMALL_MODELS",
    "TOY_NOTE",
    "TRACE_FIGURES",
    "Run",
    "RunResult",
    "consistency_text",
    "load_pipeline",
    "mask_provider",
    "model_notes",
    "one_thread",
    "quiet_loading",
    "result_summary",
    "run_and_report",
    "span_notes",
    "step_numbers",
    "torch_device",
    "toy_words_note",
    "trace_figure",
    "trace_summary",
    "write_trace",
]

SMALL_MODELS = ("toy", "tiny")  # built offline by name; small enough for the CPU
TOY_NOTE = (
    "The images come from the Toy Kitchen SD model (cooklab.models.toy_sd), a small diffusion model trained on the "
    "procedural Toy Kitchen world (docs/toykitchen.md): 64x64 top views of one container with food on a table."
)
TOY_FLUX_NOTE = (
    "The images come from the Toy Kitchen Flux model (cooklab.models.toy_flux), a small Flux-style transformer "
    "trained on the procedural Toy Kitchen world (docs/toykitchen.md): 64x64 regions, true classifier-free "
    "guidance (it has no guidance embedding)."
)
TINY_NOTE = (
    "The tiny model (cooklab.models.tiny_sd) has random weights, so the images are noise (--model toy draws real "
    "pictures); the run still exercises every mechanism (sequential frames, K/V sharing, region-aware noise)."
)
TINY_FLUX_NOTE = (
    "The tiny model (cooklab.models.tiny_flux) has random weights, so the images are noise (--model toy draws real "
    "pictures); the run still exercises every mechanism (Step-wise Regional Control, Flexible RoPE, Cross-Step "
    "Consistency Control) on a canvas of 64x64 regions."
)
_MODEL_NOTES = {
    ("toy", "recipe-diffusion"): TOY_NOTE,
    ("toy", "cookanything"): TOY_FLUX_NOTE,
    ("tiny", "recipe-diffusion"): TINY_NOTE,
    ("tiny", "cookanything"): TINY_FLUX_NOTE,
}
# the figures a traced run can write: file -> what it shows (each written only when the trace holds its data)
TRACE_FIGURES = {
    "trace_reference_share.png": "Recipe Diffusion: each frame's attention share on its reference, per denoising step",
    "trace_reference_share_map.png": "Recipe Diffusion: where the last frame's queries attend to its reference",
    "trace_noise.png": "Recipe Diffusion: the noise of the first frame started from a reference",
    "trace_text_image.png": "CookAnything: where the canvas reads each step's text",
    "trace_base_contribution.png": "CookAnything: what the whole-description branch changes, per layer and step",
}
DEFAULT_FIGURES = {"recipe-diffusion": ("trace_reference_share.png",), "cookanything": ("trace_text_image.png",)}


# ---- models, masks, notes --------------------------------------------------------------


def load_pipeline(pipeline: str, model: str, seed: int = 0, device=None, scheduler: str | None = None):
    """A ``RecipeDiffusion`` (``pipeline="recipe-diffusion"``) or ``CookAnything`` (``"cookanything"``) for ``model``.

    ``"toy"``: the Toy Kitchen models (``cooklab.models.toy_sd`` / ``toy_flux``); ``"tiny"``:
    random weights drawn from ``seed`` (``tiny_sd`` / ``tiny_flux``); anything else: a hub id or
    a local folder (``from_pretrained``). ``scheduler``: a diffusers scheduler class name
    (e.g. ``"DDIMScheduler"``) that replaces the model's own, built from its config.
    """
    canvas = pipeline == "cookanything"
    wrapper = cooklab.CookAnything if canvas else cooklab.RecipeDiffusion
    if model == "toy":
        pipe = wrapper.from_pipe((cooklab.models.toy_flux if canvas else cooklab.models.toy_sd)(device=device))
    elif model == "tiny":
        pipe = wrapper.from_pipe((cooklab.models.tiny_flux if canvas else cooklab.models.tiny_sd)(seed, device=device))
    else:
        pipe = wrapper.from_pretrained(model, device=device)
    if scheduler is not None:
        import diffusers

        pipe.scheduler = getattr(diffusers, scheduler).from_config(pipe.scheduler.config)
    return pipe


def torch_device(name: str | None, small: bool):
    """The torch device for ``--device NAME`` (None: the library's choice); the small offline models (toy, tiny)
    default to the CPU."""
    import torch

    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "--device cuda: no CUDA device is available here (torch.cuda.is_available() is False); use --device cpu."
        )
    if name is None and small:
        return torch.device("cpu")
    return None if name is None else torch.device(name)


def mask_provider(spec: str | None):
    """The container masks of a Recipe Diffusion run from a spec (``cooklab generate --masks SPEC``): "oracle" (the Toy
    Kitchen's ``OracleMaskProvider``), "grounded-sam" (GroundingDINO + SAM, built by the pipeline) or "box:x0,y0,x1,y1"
    (a ``BoxMaskProvider``, pixels); None gives None (no masks)."""
    if spec is None:
        return None
    if spec == "oracle":
        from cooklab.toykitchen.oracle import OracleMaskProvider

        return OracleMaskProvider()
    if spec == "grounded-sam":
        return "grounded-sam"  # RecipeDiffusion builds it once, on the pipeline's device
    if spec.startswith("box:"):
        try:
            box = tuple(float(v) for v in spec[4:].split(","))
        except ValueError:
            box = ()
        if len(box) == 4:
            from cooklab.grounding import BoxMaskProvider

            return BoxMaskProvider(box)
    raise ConfigError(
        f"--masks {spec!r}: use 'oracle', 'grounded-sam' or 'box:x0,y0,x1,y1' (pixels, e.g. box:16,16,48,48)."
    )


def toy_words_note(recipe) -> str | None:
    """A note when a recipe uses words the Toy Kitchen models never saw (None when every word is theirs)."""
    from cooklab.toykitchen.captions import WORDS

    known = set(WORDS)
    unknown = sorted({w for text in recipe.texts for w in re.findall(r"[a-z]+", text.lower()) if w not in known})
    if not unknown:
        return None
    shown = ", ".join(unknown[:6]) + (" ..." if len(unknown) > 6 else "")
    return (
        f"the Toy Kitchen models know only the toy world's words, and this recipe has others ({shown}): expect "
        "toy-world pictures that follow the words they know. Toy recipes: data/toykitchen/recipes, "
        "cooklab.toykitchen.random_toy_recipe."
    )


def model_notes(model: str, pipeline: str, recipe) -> list[str]:
    """What the page of a run with ``model`` must say about its pictures: for ``toy`` where they come from (and
    the recipe's words the toy models never saw), for ``tiny`` that they are noise; nothing for other models."""
    notes = [_MODEL_NOTES[model, pipeline]] if (model, pipeline) in _MODEL_NOTES else []
    if model == "toy":
        notes += [note for note in [toy_words_note(recipe)] if note]
    return notes


@contextlib.contextmanager
def one_thread(enabled: bool = True):
    """Run torch on one CPU thread inside the block (the toy and tiny models' ops are too small to split).

    On a busy machine torch's intra-op threads wait on each other: a tiny U-Net call measured
    ~2 s with 2 threads and ~0.015 s with 1, a 4-frame toy_sd run 92 s with 2 and 9 s with 1
    (a shared 2-core machine). The previous setting is restored afterwards.
    """
    import torch

    before = torch.get_num_threads()
    if enabled:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def quiet_loading():
    """Silence the loaders' progress bars and the CLIP truncation warnings inside the block (the demo's output).

    The toy CLIP reads 32 tokens; CookAnything's whole description is longer, and diffusers warns about the
    cut on every call. The demo prints its own lines instead; loggers and bars are restored afterwards.
    """
    import diffusers.utils.logging as dlog
    import transformers.utils.logging as tlog

    before = dlog.get_verbosity(), tlog.get_verbosity(), dlog.is_progress_bar_enabled(), tlog.is_progress_bar_enabled()
    dlog.set_verbosity_error()
    tlog.set_verbosity_error()
    dlog.disable_progress_bar()
    tlog.disable_progress_bar()
    try:
        yield
    finally:
        dlog.set_verbosity(before[0])
        tlog.set_verbosity(before[1])
        if before[2]:
            dlog.enable_progress_bar()
        if before[3]:
            tlog.enable_progress_bar()


# ---- the run ---------------------------------------------------------------------------


@dataclass
class Run:
    """One pipeline call to make and write: what ``run_and_report`` needs besides the pipeline."""

    recipe: Any  # a cooklab.Recipe (or anything the pipeline takes as one)
    out_dir: Path  # the run's folder
    model: str  # what the user asked for ("toy", "tiny", a hub id or a folder), recorded in settings.json
    pipeline: str  # "recipe-diffusion" or "cookanything", recorded in settings.json
    call: dict[str, Any] = field(default_factory=dict)  # keyword arguments of pipe(recipe, ...)
    command: str | None = None  # the command line, recorded in settings.json
    notes: list[str] = field(default_factory=list)  # lines shown at the top of the page
    trace: bool = False  # record the call with cooklab.trace and write trace_summary.txt and figures
    capture: Sequence[str] | None = None  # what the trace records (None: everything the pipeline records)
    figures: Sequence[str] | None = None  # TRACE_FIGURES to write (None: DEFAULT_FIGURES of the pipeline)
    single_thread: bool = False  # run torch on one CPU thread (small models on the CPU)
    quiet: bool = False  # silence the libraries' warnings and progress bars during the call
    overwrite: bool = False  # out_dir may hold an earlier cooklab run, to be replaced (report.check_run_folder)


@dataclass
class RunResult:
    """What ``run_and_report`` made."""

    out: Any  # the pipeline's output (RecipeDiffusionOutput or CookAnythingOutput)
    index: Path  # the run's index.html
    seconds: float  # wall time of the pipeline call
    notes: list[str]  # notes the output brought itself (added to the page after Run.notes)
    trace: Any = None  # the Trace of a traced run
    trace_files: list[Path] = field(default_factory=list)  # trace_summary.txt, then the figures written


def run_and_report(pipe, run: Run) -> RunResult:
    """Call ``pipe(run.recipe, **run.call)``, time it, and write the run folder; see the module doc.

    ``run.out_dir`` is checked first (``cooklab.report.check_run_folder``): a new folder, or an
    earlier cooklab run with ``run.overwrite``; anything else is a ``ConfigError`` before generating.
    """
    check_run_folder(run.out_dir, run.overwrite)
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        if run.quiet:
            stack.enter_context(quiet_loading())
        stack.enter_context(one_thread(run.single_thread))
        trace = stack.enter_context(cooklab.trace(pipe, capture=run.capture)) if run.trace else None
        out = pipe(run.recipe, **run.call)
    seconds = time.perf_counter() - start
    added = span_notes(out)
    index = write_run(
        out,
        run.out_dir,
        model=run.model,
        pipeline=run.pipeline,
        command=run.command,
        notes=[*run.notes, *added],
        overwrite=run.overwrite,
    )
    result = RunResult(out, index, seconds, added, trace)
    if trace is not None:
        figures = DEFAULT_FIGURES[run.pipeline] if run.figures is None else run.figures
        result.trace_files = write_trace(trace, out, run.out_dir, figures)
    return result


def result_summary(result: RunResult) -> str:
    """One line about a finished run: frames, time and where the mechanisms acted (CookAnything: the canvas)."""
    out, seconds = result.out, result.seconds
    if not is_canvas_output(out):
        region = [f.index for f in out.frames if f.region_aware]
        shared = [f.index for f in out.frames if f.kv_reference is not None]
        return (
            f"{len(out.frames)} frames in {seconds:.1f} s; K/V sharing on steps {step_numbers(shared)}; "
            f"region-aware noise on steps {step_numbers(region)}"
        )
    s = out.settings
    mechanisms = [
        name for key, name in (("regional", "SRC"), ("flexible_rope", "Flexible RoPE"), ("cscc", "CSCC")) if s[key]
    ]
    chunks = s["chunks"]
    where = f"one {s['width']}x{len(out.images) * s['height']} canvas"
    if len(chunks) > 1:
        anchor = "no anchor" if s["anchor"] == "none" else f"{s['anchor_regions']} anchor region(s) {s['anchor']}"
        where = f"{len(chunks)} canvases of at most {s['chunk_size']} regions ({anchor})"
    return (
        f"{len(out.images)} steps on {where} in {seconds:.1f} s "
        f"({s['num_inference_steps']} denoising steps); {', '.join(mechanisms) or 'no mechanism (plain Flux)'}"
        + (f"; regional attention: {s['attention_backend']}" if s["regional"] else "")
        + (f"; true CFG {s['true_cfg_scale']:g}" if s.get("true_cfg_scale", 1.0) > 1 else "")
    )


def consistency_text(kept: Sequence[bool]) -> str:
    """The oracle's container consistency in words: ``"container kept in 2 of 3 later frames"``.

    kept: ``cooklab.toykitchen.oracle.container_consistency(images)``, one bool per frame 2..N (frame n
    keeps the container when its colour is frame 1's and its mask overlaps frame 1's with IoU >= 0.5).
    """
    if not kept:
        return "one frame only: no later frame to compare with the first"
    return f"container kept in {sum(kept)} of {len(kept)} later frames"


def step_numbers(frames: Sequence[int]) -> str:
    """Frame indices (0-based) as the step numbers a cook reads: "2, 4, 5" -> "3, 5, 6"."""
    return ", ".join(str(i + 1) for i in frames) or "none"


def span_notes(out) -> list[str]:
    """Notes a CookAnything output tells itself: steps the whole description's token limit cut (none for
    Recipe Diffusion)."""
    spans = getattr(out, "spans", None)
    if spans is None or not spans.truncated_steps:
        return []
    limit, chunks = out.settings.get("max_sequence_length"), out.settings.get("chunks") or []
    if out.settings.get("chunk_text") == "window" and len(chunks) > 1:  # each chunk read its own window
        cut = ", ".join(map(str, out.settings["truncated_steps"]))
        note = f"A chunk's own steps are cut at --max-sequence-length {limit}: step(s) {cut} lose tokens in their "
        return [note + "chunk's base prompt and CSCC window."] if cut else []
    return [
        f"The whole description ({spans.n_tokens} T5 tokens kept) is cut at --max-sequence-length {limit}: "
        f"step(s) {step_numbers(spans.truncated_steps)} lose tokens in the base branch's prompt and in CSCC; "
        "each step's span is on the page."
    ]


# ---- the trace -------------------------------------------------------------------------


def trace_figure(trace, name: str):
    """The figure ``name`` (a file of ``TRACE_FIGURES``) drawn from ``trace``; None when the trace lacks its data."""
    from cooklab import viz

    if name == "trace_reference_share.png":
        return viz.reference_share_curve_figure(trace)  # empty axes when no frame shared K/V
    if name == "trace_reference_share_map.png":
        return (
            viz.reference_share_figure(trace, max(k[0] for k in trace.reference_share))
            if trace.reference_share
            else None
        )
    if name == "trace_noise.png":
        return viz.noise_map_figure(trace.noise[min(trace.noise)]) if trace.noise else None
    if name == "trace_text_image.png":
        return viz.text_image_figure(trace) if trace.text_image else None
    if name == "trace_base_contribution.png":
        return viz.base_contribution_figure(trace) if trace.base_contribution else None
    raise ValueError(f"trace figure {name!r}: choose from {', '.join(TRACE_FIGURES)}.")


def write_trace(trace, out, out_dir: Path, figures: Sequence[str]) -> list[Path]:
    """Write ``trace_summary.txt`` and the ``figures`` the trace holds data for; returns the paths written."""
    written = [atomic_write(Path(out_dir) / "trace_summary.txt", trace_summary(trace, out))]
    for name in figures:
        figure = trace_figure(trace, name)
        if figure is not None:
            written.append(write_figure(figure, Path(out_dir) / name))
    return written


def trace_summary(trace, out) -> str:
    """The text of ``trace_summary.txt``: what the trace captured and what it adds up to, per frame or step."""
    if is_canvas_output(out):
        return _canvas_trace_summary(trace, out)
    from cooklab.instrument import reference_share_means

    lines = [f"cooklab trace of {out.recipe.title!r} ({out.settings.get('model')})", "", trace.summary(), ""]
    lines.append(
        "reference share per frame (mean attention mass on the reference frame's keys; 0 = ignored, "
        "0.5 = as much as its own):"
    )
    means = reference_share_means(trace)
    for info in out.frames:
        if info.kv_reference is None or info.index not in means:
            lines.append(f"  frame {info.index}: no K/V reference")
            continue
        per_step = ", ".join(f"{value:.3f}" for value in trace.reference_share_curve(info.index).values())
        lines.append(
            f"  frame {info.index} (K/V from frame {info.kv_reference}): mean {means[info.index]:.3f}; "
            f"per step {per_step}"
        )
    if trace.noise:
        lines += ["", "noise applied to each frame started from a reference (sigma = noise std of the latent):"]
        for frame, record in sorted(trace.noise.items()):
            parts = [f"{where} sigma {s['sigma']:.3f}" for where, s in record.stats().items()]
            kind = "region-aware" if record.region is not None else "uniform"
            lines.append(f"  frame {frame} from frame {record.reference}: {kind}; " + ", ".join(parts))
    return "\n".join(lines) + "\n"


def _canvas_trace_summary(trace, out) -> str:
    """What a CookAnything trace saw, in numbers a reader can check against the settings."""
    from cooklab.instrument import base_contribution_curve, cscc_delta_means, text_image_region_shares

    n = len(out.images)
    lines = [
        f"cooklab trace of {out.recipe.title!r} ({out.settings.get('model')}), CookAnything canvas of {n} regions",
        "",
        trace.summary(),
        "",
    ]
    lines.append(
        "text -> image attention: of the attention mass the canvas's image tokens put on step n's text, the share "
        f"that comes from region n itself (1 = only its own region reads it; about 1/{n} = {1 / n:.3f} if every "
        "region read it alike):"
    )
    counts = trace.canvas.token_counts
    for step, share in enumerate(text_image_region_shares(trace)):
        if share is None:
            lines.append(f"  step {step + 1}: nothing captured")
            continue
        lines.append(f"  step {step + 1}: {share:.3f} ({counts[step]} T5 tokens incl. </s>)")
    base = base_contribution_curve(trace)
    if base:
        values = ", ".join(f"{value:.3f}" for value in base.values())
        lines += [
            "",
            f"base branch's share of the image output (|alpha (z_base - z_regional)| / |z|, mean over layers), "
            f"per denoising step: {values}",
        ]
    elif not out.settings.get("regional"):
        lines += ["", "base branch: none (--no-regional)"]
    canvas = trace.canvas
    if canvas.cscc_delta_norm is not None and canvas.spans is not None:
        parts = [
            f"step {step + 1}: " + ("-" if mean is None else f"{mean:.3f}")
            for step, mean in enumerate(cscc_delta_means(trace))
        ]
        lines += ["", "CSCC: mean norm of lam * C_recipe added to each fused step token: " + "; ".join(parts)]
    return "\n".join(lines) + "\n"
