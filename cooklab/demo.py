"""``cooklab demo``: both pipelines on a Toy Kitchen recipe, four runs in two pairs, offline, under a minute on a CPU.

    from cooklab.demo import run_demo
    index = run_demo(Path("outputs/demo"))   # outputs/demo/{independent,region_aware_kv,...}/ and index.html

Each pair shows one mechanism by its absence (``DEMO_COMPARISONS``): Recipe Diffusion's
``independent`` variant next to ``region_aware_kv`` (container masks from the toy world's oracle), and
CookAnything without Step-wise Regional Control next to the full method. The four are named runs of
``cooklab.named_runs`` made with ``cooklab.runs.run_and_report``: each writes its folder and page, the
full methods also their trace figures. Above them, ``compare.png`` and ``index.html``
(``cooklab.report.write_comparison``) show the runs in pairs, each row with the Toy Kitchen oracle's
container consistency. The folder must be new or empty, or an earlier demo with ``overwrite=True``
(``check_demo_folder``, before any model loads).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cooklab
from cooklab.fileio import check_output_folder
from cooklab.named_runs import DEMO_STEPS, NAMED_RUNS, TOY_GUIDANCE, TOY_SIZE, toy_call
from cooklab.recipe import resolve_recipe
from cooklab.report import COMPARE_FILE, check_run_folder, is_run_folder, write_comparison
from cooklab.runs import (
    TOY_NOTE,
    Run,
    consistency_text,
    load_pipeline,
    model_notes,
    quiet_loading,
    result_summary,
    run_and_report,
    step_numbers,
    toy_words_note,
)

__all__ = ["DEMO_COMPARISONS", "NO_SRC_NOTE", "DemoRow", "check_demo_folder", "run_demo"]


@dataclass(frozen=True)
class DemoRow:
    """One run of the demo: a named run (``cooklab.named_runs``), its row in ``compare.png`` and its page's extras."""

    name: str  # a name of NAMED_RUNS, also the run's folder
    label: str  # the row's label in compare.png and the link's text on the page
    remark: str | None = None  # after the row's consistency
    note: str | None = None  # on the run's page, after the model's notes
    masks: bool = False  # container masks from the Toy Kitchen oracle (and the page says so)
    capture: tuple[str, ...] = ()  # what the trace records; empty: the run is not traced
    figures: tuple[str, ...] = ()  # the trace figures to write (cooklab.runs.TRACE_FIGURES)


# compare.png: the demo's runs in pairs, the run without the mechanism first: {heading: (row, row)}
DEMO_COMPARISONS = {
    "Recipe Diffusion: independent vs region-aware noise + K/V sharing": (
        DemoRow(
            "independent",
            "independent: every frame from its own noise",
            note="Independent frames: every step from its own noise, for comparison.",
        ),
        DemoRow(
            "region_aware_kv",
            "region_aware_kv: from the previous frame, region-aware noise + K/V sharing",
            masks=True,
            # all mechanisms on, traced: reference share and the noise each frame started from
            capture=("reference_share", "noise"),
            figures=("trace_reference_share.png", "trace_reference_share_map.png", "trace_noise.png"),
        ),
    ),
    "CookAnything: without SRC vs with SRC": (
        DemoRow(
            "cookanything_no_src",
            "cookanything_no_src: one canvas, every region attends to all (Flexible RoPE, CSCC)",
            remark="trivially high: without SRC the regions become near-copies of one picture",
            note="Step-wise Regional Control off (regional=False): every region attends to the whole canvas "
            "and every step's text, for comparison with the cookanything run.",
        ),
        DemoRow(
            "cookanything",
            "cookanything: one canvas, Step-wise Regional Control (+ Flexible RoPE, CSCC)",
            # every mechanism on, traced: where each step's text is read on the canvas
            capture=("text_image_attention", "base_contribution"),
            figures=("trace_text_image.png", "trace_base_contribution.png"),
        ),
    ),
}
NO_SRC_NOTE = (
    "The oracle's consistency of cookanything_no_src is trivially high: without SRC every region attends to the "
    "whole canvas and the regions become near-copies of one picture, so the container stays because nothing "
    "changes, and the steps' food is almost never drawn (docs/toykitchen.md). Look at the pictures in compare.png, "
    "not only the numbers."
)
PAGE_NOTES = [
    "The images come from the Toy Kitchen models (cooklab.models.toy_sd for Recipe Diffusion, toy_flux for "
    "CookAnything), small diffusion models trained on the procedural Toy Kitchen world (docs/toykitchen.md).",
    "Under each row: the Toy Kitchen oracle's container consistency (cooklab.toykitchen.oracle."
    "container_consistency): the later frames with frame 1's container colour and a container mask overlapping "
    "frame 1's with IoU >= 0.5.",
]


def _mask_note(recipe) -> str:
    """Where the region-aware run's container masks come from, or that the recipe reopens no container."""
    reopened = [i for i, step in enumerate(recipe.steps) if step.reference_step is not None and step.container]
    if not reopened:
        return (
            "This recipe names no container that reappears (no reference_step), so no frame gets region-aware noise."
        )
    return (
        "Container masks for region-aware noise come from the Toy Kitchen oracle (cooklab.toykitchen.oracle."
        "OracleMaskProvider): the container's pixels in each reference frame, read by the world's palette, not a "
        f"detector; asked for the steps that reopen a container ({step_numbers(reopened)})."
    )


def _run(
    row: DemoRow, recipe, out: Path, steps: int, seed: int, command: str | None, mask_note: str, overwrite: bool
) -> Run:
    """The ``Run`` of one demo row: its named run's call on the Toy Kitchen settings, written to ``out / row.name``."""
    named = NAMED_RUNS[row.name]
    call = toy_call(named.pipeline, seed=seed, steps=steps) | dict(named.call)
    notes = model_notes("toy", named.pipeline, recipe)
    if row.masks:
        from cooklab.toykitchen.oracle import OracleMaskProvider

        call["mask_provider"] = OracleMaskProvider()
        notes.append(mask_note)
    if row.note:
        notes.append(row.note)
    return Run(
        recipe,
        out / row.name,
        model="toy",
        pipeline=named.pipeline,
        command=command,
        call=call,
        notes=notes,
        trace=bool(row.capture),
        capture=row.capture or None,
        figures=row.figures or None,
        single_thread=True,
        quiet=named.pipeline == "cookanything",
        overwrite=overwrite,
    )


def _make_runs(pipeline: str, runs: dict[str, Run], seed: int) -> dict:
    """The demo's runs of one pipeline: load its Toy Kitchen model on the CPU, make and write each run, print what
    it did and the oracle's container consistency; returns ``{name: (RunResult, kept)}`` with ``kept`` from
    ``container_consistency``."""
    import torch

    from cooklab.toykitchen.oracle import container_consistency

    with quiet_loading():
        pipe = load_pipeline(pipeline, "toy", seed, torch.device("cpu"))
    results = {}
    for name, run in runs.items():
        result = run_and_report(pipe, run)
        kept = container_consistency(result.out.images)  # [N - 1] bool: frames 2..N keep frame 1's container
        results[name] = result, kept
        print(f"{name}: {result_summary(result)}")
        print(f"  oracle: {consistency_text(kept)}")
        print(f"open {result.index}")
        if result.trace_files:
            print(f"  trace: {', '.join(p.name for p in result.trace_files)}")
    return results


def _is_demo_folder(folder: Path) -> bool:
    """True when ``folder`` holds an earlier demo of cooklab: one of its run folders is a cooklab run."""
    return any(is_run_folder(folder / row.name) for pair in DEMO_COMPARISONS.values() for row in pair)


def check_demo_folder(out: Path, overwrite: bool = False) -> None:
    """Check ``out`` and its four run folders before any model loads (``ConfigError`` naming the fix).

    ``out`` must be new or empty, or hold an earlier demo and ``overwrite``; so must each run's folder.
    """
    if check_output_folder(out, overwrite=overwrite, holds_previous=_is_demo_folder, what="demo"):
        for pair in DEMO_COMPARISONS.values():
            for row in pair:
                check_run_folder(out / row.name, overwrite)


def run_demo(
    out: Path,
    recipe: str | None = None,
    *,
    steps: int = DEMO_STEPS,
    seed: int = 0,
    command: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Make the demo's four runs in ``out`` and the comparison page above them; returns the page's path.

    recipe: a recipe file or shipped recipe name (None: the Toy Kitchen's demo recipe); steps:
    denoising steps per frame; seed: frame (CookAnything: region) i starts from the noise of
    ``seed + i``; command: the command line, recorded in each run's settings.json; overwrite:
    ``out`` holds an earlier demo, to be replaced (``check_demo_folder``; else ``out`` must be new or
    empty). Prints what it does and each run's result.
    """
    out = Path(out)
    check_demo_folder(out, overwrite)
    path = resolve_recipe(recipe)
    recipe = cooklab.load_recipe(path)
    print(
        f"demo: {recipe.title!r} from {path} ({len(recipe)} steps), Toy Kitchen models {TOY_SIZE}x{TOY_SIZE}, "
        f"{steps} denoising steps, guidance {TOY_GUIDANCE:g}"
    )
    words = toy_words_note(recipe)
    print(f"note: {TOY_NOTE}")
    mask_note = _mask_note(recipe)
    for note in [mask_note] + ([words] if words else []):
        print(f"note: {note}")

    pairs = [row for pair in DEMO_COMPARISONS.values() for row in pair]
    results = {}
    for pipeline in ("recipe-diffusion", "cookanything"):  # a recipe of more than 12 steps: CookAnything in chunks
        rows = [row for row in pairs if NAMED_RUNS[row.name].pipeline == pipeline]
        runs = {row.name: _run(row, recipe, out, steps, seed, command, mask_note, overwrite) for row in rows}
        results |= _make_runs(pipeline, runs, seed)

    rows, pages, group_titles = [], [], {}  # compare.png: one row per run, each pair under its heading
    for heading, pair in DEMO_COMPARISONS.items():
        group_titles[len(rows)] = heading
        for row in pair:
            result, kept = results[row.name]
            caption = f"{consistency_text(kept)} (oracle)" + (f"; {row.remark}" if row.remark else "")
            rows.append((row.label, result.out.images, caption))
            pages.append(result.index)
    print(f"note: {NO_SRC_NOTE}")
    index = write_comparison(
        out,
        rows,
        recipe.texts,
        pages=pages,
        group_titles=group_titles,
        notes=[*PAGE_NOTES, NO_SRC_NOTE],
        title=f"{recipe.title}: what the consistency mechanisms change",
    )
    print(f"compare: {out / COMPARE_FILE}; open {index}")
    return index
