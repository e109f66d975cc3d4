"""Score a run folder: measure the frames of a finished run and add the numbers to its page.

    result = score_run(ScoreRun(Path("outputs/demo/region_aware_kv")))
    result.metrics["oracle_step_faithfulness"].value
    print("\\n".join(summary_lines(result)))

``cooklab score RUN_FOLDER`` is this function with settings from the command line. A run folder
is what ``cooklab generate`` / ``cooklab demo`` wrote (``cooklab.report``): ``settings.json``
(the frames, in order), ``recipe.yaml`` (the recipe with its step metadata; a folder from
before it existed gives the step texts from ``settings.json``, without ingredient lists),
``frame_NN.png`` and ``index.html``. ``score_run`` reads them, runs
``cooklab.metrics.score`` and writes

* ``metrics.json``: every ``MetricResult``'s value, per_item and record, the metrics skipped
  and why, the device and batch size (atomically, ``cooklab.fileio.atomic_write``);
* ``index.html`` again, through ``cooklab.report.render_html``, with a metrics table.

Which metrics (``ScoreRun.metrics=None``): the Toy Kitchen oracle's, when the run drew a Toy
Kitchen recipe (``toy_recipe``: its description names the seed, and the seed's recipe has the
run's step texts, so the oracle knows what every step must show); the CLIP metrics when a
CLIP loads (``clip=``; else, for a run drawn by the Toy Kitchen models (``toy_run``), the Toy
Kitchen CLIP the run was made for (``cooklab.models.toy_clip``, shipped, offline), and for any
other run the default hub CLIP if it is in the cache); DINO-L2 likewise, and masked DINO-L2 with
it when the frames' container masks can be found (``ScoreRun.masks``: the Toy Kitchen oracle for a
Toy Kitchen recipe or a run of the toy models; GroundingDINO + SAM or a box when asked); the
judge's when a ``VisionJudge`` is given. A backbone that is not there is skipped with the
command that fetches it; asking for a metric by name (``metrics=[...]``) makes a missing
backbone an error instead.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from cooklab.backbones import DEFAULT_BATCH_SIZE, clip_backbone, dino_backbone, resolve_device
from cooklab.errors import CheckpointError, ConfigError, RecipeError
from cooklab.fileio import atomic_write
from cooklab.images import read_picture
from cooklab.metrics import (
    CLIP_METRICS,
    DEFAULT_CLIP,
    DEFAULT_DINO,
    DINO_METRICS,
    ORACLE_METRICS,
    TOY_RECIPE_METRICS,
    MetricResult,
    VisionJudge,
    score,
)
from cooklab.metrics.dino_distance import container_masks
from cooklab.metrics.judge import JUDGE_METRICS
from cooklab.recipe import Recipe, load_recipe
from cooklab.report import METRICS_FILE, RECIPE_FILE, jsonable, render_html
from cooklab.toykitchen.recipes import ToyRecipe, random_toy_recipe

__all__ = [
    "RunFolder",
    "ScoreResult",
    "ScoreRun",
    "frame_masks",
    "read_run",
    "score_run",
    "summary_lines",
    "toy_recipe",
    "toy_run",
]

#: ``clip="toy"`` (``cooklab score --clip toy``): the Toy Kitchen CLIP, as ``clip: toy`` in an evaluation config
TOY_CLIP = "toy"
_TOY_SEED = re.compile(r"^Toy Kitchen recipe \(seed (\d+)\)$")  # ToyRecipe.to_recipe()'s description


@dataclass
class ScoreRun:
    """What to measure in a run folder, and with what."""

    folder: Path  # a folder written by cooklab generate / cooklab demo
    metrics: Sequence[str] | None = None  # names from cooklab.metrics.METRICS; None: what can run here (module doc)
    clip: Any = None  # CLIP: "toy", hub id, local folder or built ClipBackbone; None: the Toy Kitchen CLIP for a
    #                   run of the toy models (toy_run), else DEFAULT_CLIP when it loads
    dino: Any = None  # DINOv2: hub id, local folder or built DinoBackbone; None: DEFAULT_DINO when it loads
    judge: VisionJudge | None = None  # the vision-language judge for the judge_* metrics
    device: str = "auto"  # where the backbones run: "auto" (CUDA when available), "cpu", "cuda", ...
    batch_size: int = DEFAULT_BATCH_SIZE  # frames per backbone forward pass
    pairs: str = "consecutive"  # frame pairs of the sequence metrics: "consecutive" or "all"
    masks: str | None = (
        None  # container masks for dino_l2_masked: "oracle", "grounded-sam", "box:x0,y0,x1,y1", "none";
    )
    #                           None: the oracle for a Toy Kitchen run, else none


@dataclass
class RunFolder:
    """What ``read_run`` found in a run folder."""

    folder: Path
    settings: dict[str, Any]  # settings.json
    recipe: Recipe  # recipe.yaml (or the step texts of settings.json)
    images: list[Any]  # the frames, one PIL image per step
    toy: ToyRecipe | None  # the Toy Kitchen recipe with its expectations, when the run drew one


@dataclass
class ScoreResult:
    """What ``score_run`` measured and wrote."""

    metrics: dict[str, MetricResult]
    skipped: dict[str, str] = field(default_factory=dict)  # metric family -> why it did not run, with the fix
    path: Path | None = None  # metrics.json
    index: Path | None = None  # index.html


def _not_a_run(folder: Path) -> ConfigError:
    """The error for a folder without settings.json, naming the runs inside it when there are some.

    (A folder of runs is what ``cooklab demo`` writes.)
    """
    runs = sorted(p.name for p in folder.iterdir() if (p / "settings.json").is_file()) if folder.is_dir() else []
    hint = (
        f" It holds the runs {', '.join(runs)}: score each, e.g. `cooklab score {folder / runs[0]}`."
        if runs
        else " Pass a folder written by `cooklab generate --out FOLDER` or one of the runs `cooklab demo` writes."
    )
    return ConfigError(f"{str(folder)!r} is not a run folder (no settings.json).{hint}")


def _recipe(folder: Path, settings: dict[str, Any]) -> Recipe:
    """recipe.yaml, or for a folder written before it existed the title and step texts of settings.json."""
    if (folder / RECIPE_FILE).is_file():
        return load_recipe(folder / RECIPE_FILE)
    steps = [{"text": frame["text"], "container": frame.get("container")} for frame in settings["frames"]]
    recipe = settings["recipe"]
    return Recipe(title=recipe["title"], description=recipe.get("description"), steps=steps)


def toy_recipe(recipe: Recipe) -> ToyRecipe | None:
    """The Toy Kitchen recipe ``recipe`` was made from (``random_toy_recipe(seed, n).to_recipe()``), or None.

    The seed is read from the description ``ToyRecipe.to_recipe`` writes; the recipe of that seed
    counts only if its title and every step text are the run's.
    """
    found = _TOY_SEED.match(recipe.description or "")
    if found is None or not 2 <= len(recipe) <= 8:
        return None
    toy = random_toy_recipe(int(found.group(1)), len(recipe))
    return toy if toy.title == recipe.title and list(toy.texts) == recipe.texts else None


def toy_run(run: RunFolder) -> bool:
    """True for a run drawn by the Toy Kitchen models (``settings.json``: ``"model": "toy"``): the toy world's
    pictures, which the Toy Kitchen CLIP and the oracle read."""
    return run.settings.get("model") == "toy"


def read_run(folder: str | Path) -> RunFolder:
    """The settings, recipe and frames of a run folder; a ``ConfigError`` naming the fix when something is missing
    or a frame cannot be read."""
    folder = Path(folder)
    path = folder / "settings.json"
    if not path.is_file():
        raise _not_a_run(folder)
    try:
        settings = json.loads(path.read_text(encoding="utf-8"))
        frames = settings["frames"]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise ConfigError(
            f"{str(path)!r} is not a cooklab settings.json ({type(error).__name__}: {error}). "
            "Fix: write the run again with `cooklab generate`."
        ) from None
    missing = [frame["image"] for frame in frames if not (folder / frame["image"]).is_file()]
    if missing:
        raise ConfigError(
            f"the run in {str(folder)!r} lacks {', '.join(missing)}: it is incomplete (interrupted, or files were "
            "removed). Fix: write it again with the command in its settings.json "
            f"({settings.get('command') or 'cooklab generate'})."
        )
    try:
        recipe = _recipe(folder, settings)
    except RecipeError as error:
        raise ConfigError(f"the run's recipe cannot be read: {error}") from None
    if len(recipe) != len(frames):
        raise ConfigError(
            f"{RECIPE_FILE} has {len(recipe)} steps but settings.json {len(frames)} frames: the folder mixes two "
            "runs. Fix: write it again with `cooklab generate`."
        )
    fix = (
        "the frame was cut short or damaged: write the run again with the command in its settings.json "
        f"({settings.get('command') or 'cooklab generate'})."
    )
    images = [read_picture(folder / frame["image"], fix) for frame in frames]
    return RunFolder(folder, settings, recipe, images, toy_recipe(recipe))


def _backbone(load, source, default: str, required: bool, name: str, option: str, skipped: dict[str, str]):
    """A loaded backbone; when it is not required and cannot load, None and the reason in ``skipped``."""
    try:
        return load(source or default)
    except CheckpointError as error:
        if required:
            raise
        skipped[name] = f"{error} Or pass {option} ID_OR_FOLDER."
        return None


def frame_masks(run: RunFolder, spec: str | None, device) -> list | None:
    """Each frame's container mask for ``dino_l2_masked`` (``ScoreRun.masks``), or None when there are none to find.

    The provider looks for the step's container (``Step.container``; a step without one has no mask)
    in the frame itself: the oracle reads the palette, GroundingDINO + SAM detects the phrase.
    """
    from cooklab.runs import mask_provider

    spec = spec if spec is not None else ("oracle" if run.toy is not None or toy_run(run) else "none")
    if spec == "none":
        return None
    if spec == "oracle" and run.toy is None and not toy_run(run):
        raise ConfigError(
            f"--masks oracle reads Toy Kitchen pictures: {str(run.folder)!r} was not drawn by the toy models. "
            "Fix: --masks grounded-sam (GroundingDINO + SAM) or --masks box:X0,Y0,X1,Y1."
        )
    provider = mask_provider(spec)
    if provider == "grounded-sam":  # the toy pair for pictures of the Toy Kitchen models
        from cooklab.grounding.grounded_sam import named_grounded_sam

        provider = named_grounded_sam(toy=run.settings.get("model") == "toy", device=device)
    return container_masks(run.images, [step.container for step in run.recipe.steps], provider)


def _load_clip(source, device, batch_size: int):
    """The CLIP backbone ``source`` names, read as ``cooklab evaluate`` reads a config's ``clip:``
    (``evaluation.scoring_backbones.load_backbone``: ``TOY_CLIP`` is the Toy Kitchen CLIP), with ``batch_size``."""
    from cooklab.evaluation.scoring_backbones import load_backbone

    return clip_backbone(load_backbone("clip", source, device=device), batch_size=batch_size)


def _plan(run: RunFolder, config: ScoreRun, device) -> tuple[list[str], Any, Any, dict[str, str]]:
    """(metrics to run, CLIP backbone or None, DINO backbone or None, skipped families and why)."""
    skipped: dict[str, str] = {}
    asked = list(config.metrics) if config.metrics is not None else None
    if asked is not None and "dino_l2_masked" in asked and config.masks == "none":
        raise ConfigError("dino_l2_masked measures the container regions: leave out --masks none, or the metric.")
    if asked is not None and run.toy is None and any(m in TOY_RECIPE_METRICS for m in asked):
        raise ConfigError(
            f"the oracle_* metrics need a Toy Kitchen run: {str(run.folder)!r} did not draw a Toy Kitchen recipe "
            "(data/toykitchen/recipes, cooklab.toykitchen.random_toy_recipe). Fix: leave them out of --metrics."
        )
    if asked is not None and config.judge is None and any(m in JUDGE_METRICS for m in asked):
        raise ConfigError(
            "the judge_* metrics ask a vision-language model: pass --judge MODEL (and --judge-base-url URL for a "
            "server other than OpenAI's)."
        )
    want_clip = any(m in CLIP_METRICS for m in asked) if asked is not None else True
    want_dino = any(m in DINO_METRICS for m in asked) if asked is not None else True
    load_clip = partial(_load_clip, device=device, batch_size=config.batch_size)
    load_dino = partial(dino_backbone, device=device, batch_size=config.batch_size)
    # a backbone named on the command line, or needed by a metric named there, must load; a default may be skipped
    clip = (
        _backbone(
            load_clip,
            config.clip,
            TOY_CLIP if toy_run(run) else DEFAULT_CLIP,  # the CLIP the run's pictures were made for
            asked is not None or config.clip is not None,
            "clip",
            "--clip",
            skipped,
        )
        if want_clip
        else None
    )
    dino = (
        _backbone(
            load_dino,
            config.dino,
            DEFAULT_DINO,
            asked is not None or config.dino is not None,
            "dino",
            "--dino",
            skipped,
        )
        if want_dino
        else None
    )
    if asked is None:
        asked = [
            *(ORACLE_METRICS if run.toy is not None else ()),
            *(CLIP_METRICS if clip is not None else ()),
            *(DINO_METRICS if dino is not None else ()),
            *(JUDGE_METRICS if config.judge is not None else ()),
        ]
        if run.toy is None:
            skipped["oracle"] = (
                "the run did not draw a Toy Kitchen recipe, so the oracle does not know what its steps must show."
            )
    if not asked:
        raise ConfigError("no metric can run on this run here: " + " ".join(skipped.values()))
    return asked, clip, dino, skipped


def score_run(config: ScoreRun) -> ScoreResult:
    """Measure the run in ``config.folder``, write ``metrics.json`` and the page again with a metrics table.

    See the module doc.
    """
    run = read_run(config.folder)
    device = resolve_device(config.device)
    metrics, clip, dino, skipped = _plan(run, config, device)
    masks = frame_masks(run, config.masks, device) if "dino_l2_masked" in metrics else None
    if "dino_l2_masked" in metrics and (masks is None or not any(m is not None for m in masks)):
        why = (
            "no step names a container, or no container was found in any frame"
            if masks is not None
            else "the run is not a Toy Kitchen run, so no masks without --masks"
        )
        if config.metrics is not None:
            raise ConfigError(
                f"dino_l2_masked: {why}. Fix: --masks grounded-sam or --masks box:X0,Y0,X1,Y1, "
                "or leave the metric out."
            )
        metrics.remove("dino_l2_masked")
        skipped["dino_l2_masked"] = (
            f"{why}; pass --masks grounded-sam (GroundingDINO + SAM) or --masks box:X0,Y0,X1,Y1."
        )
    results = score(
        run.images,
        run.toy or run.recipe,
        metrics,
        clip=clip,
        dino=dino,
        masks=masks,
        pairs=config.pairs,
        device=device,
        batch_size=config.batch_size,
        judge=config.judge,
    )
    data = jsonable(
        {
            "run": run.folder.name,
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "device": str(device),
            "batch_size": config.batch_size,
            "metrics": {name: dataclasses.asdict(result) for name, result in results.items()},
            "skipped": skipped,
        }
    )
    path = atomic_write(
        run.folder / METRICS_FILE, json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    )
    storyboard = "storyboard.png" if (run.folder / "storyboard.png").is_file() else None
    index = atomic_write(run.folder / "index.html", render_html(run.settings, storyboard, metrics=data["metrics"]))
    return ScoreResult(results, skipped, path, index)


def summary_lines(result: ScoreResult) -> list[str]:
    """What ``cooklab score`` prints: one line per metric (value and what measured it), then what was skipped, why."""
    lines = [f"  {name:<30} {r.value:8.4f}   ({r.record.get('backbone')})" for name, r in result.metrics.items()]
    lines += [f"skipped {name}: {why}" for name, why in result.skipped.items()]
    return lines
