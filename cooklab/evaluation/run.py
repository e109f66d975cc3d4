"""Run an evaluation: every (method row, recipe, seed) generated, scored and stored; then the tables.

``evaluate(config)`` is ``cooklab evaluate CONFIG.yaml``:

1. **units** -- rows (each method at each grid point) x recipes x seeds, in that order (``units``);
2. **split** -- under ``accelerate launch --num_processes P`` process ``p`` takes units
   ``p, p + P, p + 2P, ...`` (``accelerate.PartialState``; one process without it);
3. **each unit** -- skipped when finished (``store.load_unit``: each metric stored with this run's
   scoring key, ``scoring_keys``), its stale or missing metrics scored again from its frames, else
   generated (``methods.METHODS``), its frames and then ``unit.json`` written atomically (``store``);
4. **merge** -- after every process is done, the main process reads every ``unit.json`` in unit
   order, scores the set-level metrics of each row from the saved frames (``set_scoring``), writes
   ``results.jsonl`` and then ``tables.md`` and the sweep plots (``result_tables.py``).

Killing the command at any point and running it again redoes only unfinished units and gives the
same ``results.jsonl`` as a run that was never stopped. Before anything is written, ``out`` is
checked (a new folder or an earlier evaluation; units made with other settings are refused, so
``config.json`` always describes the units); the main process holds ``out/evaluate.lock`` while
it runs, so a second evaluation on the same ``out`` is refused instead of doing the work twice.
"""

from __future__ import annotations

import json
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..console import ProgressBar
from ..errors import ConfigError
from ..fileio import atomic_write, check_output_folder, folder_lock
from ..recipe import Recipe
from ..toykitchen.recipes import ToyRecipe
from ..versions import package_versions
from . import store
from .config import EvalConfig
from .methods import METHODS, method
from .recipe_sets import load_recipes
from .scoring_backbones import metric_backbones
from .scoring_keys import PROTOCOL, Measured, check_keyed, fresh_scores, scoring_keys
from .set_scoring import add_set_metrics, check_set_metrics, unit_metrics


@dataclass
class Row:
    """One row of a table: a method at one grid point."""

    label: str
    method: str
    params: dict[str, Any]


def rows(config: EvalConfig) -> list[Row]:
    """Every (method, grid point) of the config, labelled ``name`` or ``name k=v, ...`` (grid keys only).

    Labels must be unique.
    """
    out = []
    for spec in config.methods:
        for point in spec.points():
            method(spec.name, point)  # checks the name and the parameters now, not after hours of generation
            swept = ", ".join(f"{k}={point[k]}" for k in spec.grid)
            base = spec.label or spec.name
            out.append(Row(f"{base} {swept}" if swept else base, spec.name, point))
    labels = [r.label for r in out]
    twice = sorted({x for x in labels if labels.count(x) > 1})
    if twice:
        raise ConfigError(f"rows {twice} appear twice: give the methods distinct `label:`s.")
    return out


def _generation_key(config: EvalConfig, row: Row) -> str:
    backbone = METHODS[row.method].backbone
    parts = [config.model[backbone], config.generation.model_dump(), row.method, row.params, config.masks]
    if (
        "lora" in row.params
    ):  # the adapter's weights, not its path: a retrained adapter is a new unit, a moved one is not
        parts.append(adapter_digest(config, row.params["lora"]))
    return store.key(parts)


def adapter_digest(config: EvalConfig, name: str) -> str:
    """sha256 of the named adapter's weight file (a ``ConfigError`` naming the fix when it is missing)."""
    import hashlib

    from ..cookanything.lora import WEIGHT_NAME

    if name not in config.adapters:
        raise ConfigError(
            f"lora: {name!r} is not one of the config's adapters {sorted(config.adapters)}: add it under "
            f"`adapters: {{{name}: path/to/adapter}}`."
        )
    weights = config.adapters[name] / WEIGHT_NAME
    if not weights.is_file():
        raise ConfigError(
            f"adapter {name!r}: no {weights}. Train it with `cooklab train-lora CONFIG` (it writes OUT/adapter)."
        )
    return hashlib.sha256(weights.read_bytes()).hexdigest()[:16]


def units(config: EvalConfig, recipes) -> list[store.Unit]:
    """Rows x recipes x seeds, in that order."""
    return [
        store.Unit(r.label, r.method, r.params, recipe_id, seed, _generation_key(config, r))
        for r in rows(config)
        for recipe_id, _ in recipes
        for seed in config.seeds
    ]


def _process() -> tuple[Any, int, int]:
    """(accelerate state or None, this process's index, number of processes)."""
    try:
        from accelerate import PartialState
    except ImportError:  # accelerate is a dependency; without it, one process
        return None, 0, 1
    state = PartialState(cpu=True) if _cpu_only() else PartialState()
    return state, state.process_index, state.num_processes


def _cpu_only() -> bool:
    import torch

    return not torch.cuda.is_available()


def _pipelines(config: EvalConfig, needed: set[str], device) -> dict:
    from ..runs import load_pipeline

    names = {"sd": "recipe-diffusion", "flux": "cookanything"}
    pipes = {b: load_pipeline(names[b], config.model[b], device=device) for b in sorted(needed)}
    pipes["adapters"] = dict(config.adapters)  # where a method's `lora: NAME` is read from
    return pipes


def _masks(config: EvalConfig, device=None, built: bool = False):
    """The config's mask provider; ``built``: "grounded-sam" as a provider object (else the pipelines build it)."""
    from ..runs import mask_provider

    provider = mask_provider(config.masks)
    if built and provider == "grounded-sam":  # the toy pair when every backbone is a Toy Kitchen model
        from ..grounding.grounded_sam import named_grounded_sam

        provider = named_grounded_sam(toy=all(model == "toy" for model in config.model.values()), device=device)
    return provider


def _unit_masks(images, recipe: Recipe, backbones: dict) -> list | None:
    """Each frame's container mask for the mask metrics (None when none is measured or there are no frames)."""
    from ..metrics.dino_distance import container_masks

    if backbones.get("masks") is None or images is None:
        return None
    return container_masks(images, [s.container for s in recipe.steps], backbones["masks"])


def _score(images, recipe: Recipe | ToyRecipe, metrics: list[str], backbones: dict, masks) -> dict[str, dict]:
    """``{metric: {value, per_item}}`` of one unit's frames (a ``ToyRecipe`` gives the oracle its expectations)."""
    from ..metrics import score

    if not metrics:
        return {}
    results = score(images, recipe, metrics, backbones=backbones["metrics"], masks=masks, device=None, **PROTOCOL)
    return {name: {"value": r.value, "per_item": r.per_item} for name, r in results.items()}


def _backbones(config: EvalConfig, device) -> dict:
    """``metrics``: each per-unit metric's CLIP / DINOv2 (``scoring_backbones``), ``weights``: each one's
    ``weights_digest``; ``masks``: the mask provider.

    They are loaded even when every unit is finished: a stored number counts only with the weights
    that made it, so a backbone that cannot load is a ``ConfigError`` naming the fix.
    """
    from ..backbones import weights_digest
    from ..errors import CheckpointError
    from ..metrics import BACKBONE_KIND, MASK_METRICS

    metrics = unit_metrics(config)
    try:
        loaded = metric_backbones(config, metrics, device)
    except CheckpointError as error:
        sources = sorted({f"{m}: {config.backbone_for(m)!r}" for m in metrics if m in BACKBONE_KIND})
        raise ConfigError(
            f"{', '.join(sources)}: a backbone among these cannot be loaded, so no score stored in {config.out} is "
            f"reused (a score counts only with the weights that made it). {error} Or set `clip:` / `dino:` / "
            "`backbones:` to backbones that load (`toy`: the Toy Kitchen CLIP and its vision tower)."
        ) from error
    digests = {id(b): weights_digest(b.model) for b in loaded.values()}  # each backbone hashed once
    out: dict[str, Any] = {"metrics": loaded, "weights": {m: digests[id(b)] for m, b in loaded.items()}}
    if any(m in MASK_METRICS for m in config.metrics):
        out["masks"] = _masks(config, device, built=True)
    return out


def _check_metrics(config: EvalConfig, recipes) -> None:
    from ..metrics import METRICS, TOY_RECIPE_METRICS

    unknown = [m for m in config.metrics if m not in METRICS]
    if unknown:
        raise ConfigError(f"unknown metric(s) {unknown}: choose from {list(METRICS)}.")
    check_keyed(unit_metrics(config))
    if any(m in TOY_RECIPE_METRICS for m in config.metrics) and not all(isinstance(r, ToyRecipe) for _, r in recipes):
        raise ConfigError(
            "the oracle_* metrics need Toy Kitchen recipes (recipes: {toy: ...}): leave them out for other recipes."
        )
    check_set_metrics(config, recipes)


LOCK_FILE = "evaluate.lock"  # held by the main process while it runs: a second run on the same out is refused


def _is_evaluation_folder(folder: Path) -> bool:
    """True when ``folder`` holds an earlier evaluation of cooklab: its ``config.json`` or its ``units/``."""
    try:
        saved = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        saved = None
    return (isinstance(saved, dict) and {"name", "methods", "recipes"} <= set(saved)) or (folder / "units").is_dir()


def check_evaluation_folder(config: EvalConfig, todo: list[store.Unit]) -> None:
    """Check ``config.out`` before anything is written or generated (``ConfigError`` naming the fix).

    It must be new or empty, or hold an earlier evaluation (resumed; nothing is removed); a file, or
    a folder of other files, is refused. Every finished unit there must have been generated with
    this config's settings (``store.load_unit`` refuses another config's), so ``config.json`` is
    written only for a config its units were made with.
    """
    check_output_folder(
        config.out,
        overwrite=True,  # an earlier evaluation is resumed: it keeps every file
        holds_previous=_is_evaluation_folder,
        what="evaluation",
        ignore=(LOCK_FILE,),
    )
    for unit in todo:
        store.load_unit(unit, config.out)


def _run_unit(config: EvalConfig, unit: store.Unit, recipe, index: int, cache: dict) -> None:
    """Generate (or reuse the frames of) one unit, score it and write its ``unit.json``; a finished unit is skipped.

    A unit is finished when each metric's stored scoring key equals this run's (``scoring_keys``);
    the metrics whose key changed are scored again from the saved frames. ``cache`` holds what the
    units share, built on first use: ``pipes``, ``backbones``, ``masks`` and the ``device``.
    """
    out = config.out
    record = store.load_unit(unit, out)
    plain: Recipe = recipe.to_recipe() if isinstance(recipe, ToyRecipe) else recipe
    if cache.get("backbones") is None:
        cache["backbones"] = _backbones(config, cache["device"])
    backbones = cache["backbones"]
    images = None
    if record is not None and backbones.get("masks") is not None:  # the masks' digest is part of a key
        images = store.load_frames(unit, out, len(plain))
    masks = _unit_masks(images, plain, backbones)
    kept = (
        fresh_scores(record, scoring_keys(Measured(config, backbones["weights"], masks), unit_metrics(config)))
        if record
        else {}
    )
    if record is not None and set(kept) == set(record["metrics"]) == set(unit_metrics(config)):
        return  # finished: every metric scored with this run's inputs
    if record is not None and images is None:
        images = store.load_frames(unit, out, len(plain))
    seconds = record["seconds"] if record is not None else None
    if images is None:  # no frames (or one missing): generated anew, so every metric is scored anew
        m = METHODS[unit.method]
        pipes = cache["pipes"]
        if m.backbone not in pipes:
            pipes.update(_pipelines(config, {m.backbone}, cache["device"]))
        if cache.get("masks") is None:
            cache["masks"] = _masks(config)
        start = time.perf_counter()
        images = m.run(pipes, plain, unit.seed, config.generation, unit.params, cache["masks"])
        seconds = time.perf_counter() - start
        store.save_frames(unit, out, images)
        kept = {}
    masks = masks if masks is not None else _unit_masks(images, plain, backbones)  # of the new frames
    keys = scoring_keys(Measured(config, backbones["weights"], masks), unit_metrics(config))
    scored = {**kept, **_score(images, recipe, [m for m in unit_metrics(config) if m not in kept], backbones, masks)}
    store.save_unit(
        unit,
        out,
        dict(
            label=unit.label,
            method=unit.method,
            params=unit.params,
            recipe=unit.recipe_id,
            seed=unit.seed,
            steps=len(plain),
            metrics={m: scored[m] for m in unit_metrics(config)},
            scoring=keys,
            seconds=seconds,
            generation=unit.generation,
            process=index,
            versions=package_versions("torch", "diffusers", "cooklab"),
        ),
    )


def _merge(config: EvalConfig, todo: list[store.Unit], by_id: dict, device=None) -> Path:
    """The main process, after every process is done: every ``unit.json`` and the set metrics (``set_scoring``,
    recomputed from the frames) into ``results.jsonl``, then the tables."""
    out = config.out
    records = [store.load_unit(u, out) for u in todo]
    missing = sum(r is None for r in records)
    if missing:
        raise ConfigError(
            f"{missing} of {len(todo)} units are unfinished after every process stopped: run the command again."
        )
    add_set_metrics(config, todo, records, by_id, device)
    lines = [
        json.dumps({k: r[k] for k in ("label", "method", "params", "recipe", "seed", "metrics")}, sort_keys=True)
        for r in records
    ]
    path = atomic_write(out / store.RESULTS_FILE, "\n".join(lines) + "\n")
    from .result_tables import write_reports

    write_reports(config, out)
    return path


def evaluate(config: EvalConfig, progress: bool = True) -> Path | None:
    """Run (or resume) the evaluation in ``config.out``.

    The main process checks ``config.out`` first (``check_evaluation_folder``), then holds
    ``out/evaluate.lock`` (``cooklab.fileio.folder_lock``) until it is done: a second evaluation on
    the same ``out`` is refused, naming the run that holds it (a lock left by a killed run is taken
    over); the other processes wait for it (when it refuses, the launcher stops them). Returns the
    path of ``results.jsonl`` (None in processes other than the main one).
    """
    recipes = load_recipes(config.recipes)
    _check_metrics(config, recipes)
    todo = units(config, recipes)
    by_id = dict(recipes)
    state, index, count = _process()
    if index == 0:
        check_evaluation_folder(config, todo)
    lock = folder_lock(config.out, what="cooklab evaluate", name=LOCK_FILE) if index == 0 else nullcontext()
    with lock:
        if index == 0:
            atomic_write(config.out / "config.json", config.model_dump_json(indent=1) + "\n")
        if state is not None:
            state.wait_for_everyone()  # the other processes start once out is checked, locked and described
        cache = {"pipes": {}, "device": state.device if state is not None else None}
        desc = f"evaluate {config.name}" + (f" [{index + 1}/{count}]" if count > 1 else "")
        for unit in ProgressBar(todo[index::count], desc=desc, enabled=progress):
            _run_unit(config, unit, by_id[unit.recipe_id], index, cache)
        if state is not None:
            state.wait_for_everyone()
        path = _merge(config, todo, by_id, cache["device"]) if index == 0 else None
        if state is not None:
            state.wait_for_everyone()
    return path
