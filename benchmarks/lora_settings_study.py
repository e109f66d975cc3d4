"""Benchmark: the LoRA settings study -- which sigma sampling, steps, learning rate and targets make training-based
CookAnything more consistent than training-free CookAnything (issue 30)?

Every run of the grid (``cooklab.training.settings_study.StudyGrid``: sigma sampling x learning rate x targets) is
trained by ``cooklab train-lora``'s trainer on the base config's recipe sequences, with a checkpoint at every step
count of the grid. Then each (run, steps) adapter and training-free CookAnything (the baseline, no adapter) draw the
validation recipes ``generator(first_seed + k)`` for every seed, exactly as ``cooklab evaluate`` draws its
``cookanything`` rows (``evaluation.methods``, lambda = 0.2, every mechanism on); the Toy Kitchen oracle scores each
sequence. Rows are paired with the baseline by (recipe, seed), intervals clustered by recipe
(``evaluation.result_tables``), and the setting with the best interval-backed consistency gain is chosen
(``settings_study.choose``; the rule is in its module doc).

Jobs: the baseline and one per run, ``--jobs`` at once in processes of their own (they share the GPU). Each job
writes its rows to ``OUT/rows/<job>.jsonl``, the whole file atomically after every unit; a run's training resumes
from its checkpoints. So a stopped study -- killed, or past ``--max-minutes`` (training stops after the step it is
in, generation before the next unit) -- continues where it stopped when the same command runs again. At the end:
``OUT/results.jsonl`` (every row, the format of ``cooklab evaluate``), ``OUT/tables.md``, ``OUT/choice.json`` and
``OUT/chosen/`` (the chosen adapter, the train.yaml it would ship, its loss log), and the train.yaml printed.

    python benchmarks/lora_settings_study.py --smoke                      # CPU, toy model, tiny sizes: ~2 min
    python benchmarks/lora_settings_study.py --config data/toykitchen/lora_v3_train.yaml --model "$WORK/flux" \\
        --out "$WORK/lora-study" --max-minutes 4 --jobs 9                 # GPU: the v3 study (gpu_lora_study.sh)

The base config names the recipes (``data: {toy: {generator: NAME, ...}}``): ``random_toy_recipe`` in the shipped
``data/toykitchen/lora/train.yaml``, world v3's ``random_recipe_v3`` in ``data/toykitchen/lora_v3_train.yaml``
(registered in ``cooklab.training.data.RECIPE_GENERATORS`` with world v3); ``--generator`` overrides it.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere in the checkout

import argparse
import json
import math
import multiprocessing
import shutil
import time
from dataclasses import dataclass

import torch

from cooklab.errors import ConfigError
from cooklab.evaluation.config import GenerationSettings
from cooklab.evaluation.result_tables import markdown
from cooklab.fileio import atomic_write
from cooklab.training import settings_study as study
from cooklab.training.config import TrainLoraConfig, load_train_config
from cooklab.training.data import recipe_generator
from cooklab.training.trainer import ADAPTER_DIR, CHECKPOINTS, LOSS_LOG

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_CONFIG = ROOT / "data" / "toykitchen" / "lora" / "train.yaml"
SMOKE_GRID = study.StudyGrid(learning_rates=(5e-4,), targets=("attention",), steps=(1, 2))


class TimeLimit(Exception):
    """Raised in a job past the study's deadline: the job stops and keeps what it wrote."""


@dataclass
class Study:
    """What every job needs (sent to the job processes)."""

    base: TrainLoraConfig
    grid: study.StudyGrid
    recipes: list  # [(recipe id, ToyRecipe)]: the validation recipes
    seeds: list[int]
    generation: GenerationSettings
    out: Path
    deadline: float  # time.time() after which jobs stop
    threads: int

    @property
    def planned_pairs(self) -> int:
        return len(self.recipes) * len(self.seeds)


def adapter_at(run: Path, steps: int) -> Path:
    """The adapter folder of a run's checkpoint after ``steps`` optimizer steps."""
    return run / CHECKPOINTS / f"step-{steps:06d}" / ADAPTER_DIR


def train(variant: study.Variant, s: Study) -> bool:
    """Train one run to its last step count (resuming its checkpoints); False when stopped by the time limit."""
    from cooklab.cookanything.lora import WEIGHT_NAME
    from cooklab.training.trainer import LoraTrainer

    run = s.out / "runs" / variant.name
    if all((adapter_at(run, n) / WEIGHT_NAME).is_file() for n in s.grid.steps):
        return True
    if time.time() > s.deadline:
        return False

    def stop_at_deadline(step, loss):
        if time.time() > s.deadline:
            raise TimeLimit

    run.mkdir(parents=True, exist_ok=True)
    try:
        LoraTrainer(variant.train_config(s.base, run, s.grid.steps), progress=False).run(callback=stop_at_deadline)
    except TimeLimit:
        return False
    return True


def read_rows(path: Path) -> list[dict]:
    """The rows a job wrote (none when it has not started)."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _value(result) -> float | None:
    value = result.value
    return None if value is None or math.isnan(value) else float(value)


def evaluate(job: str, targets: list[tuple], s: Study) -> bool:
    """Draw and score every validation (recipe, seed) of each target ``(label, adapter or None, variant, steps)``,
    skipping the units already in ``OUT/rows/<job>.jsonl``; False when stopped by the time limit."""
    from cooklab.evaluation.methods import METHODS
    from cooklab.metrics import score
    from cooklab.runs import load_pipeline

    path = s.out / "rows" / f"{job}.jsonl"
    rows = read_rows(path)
    done = {(r["label"], r["recipe"], r["seed"]) for r in rows}
    pipes = None
    for label, adapter, variant, steps in targets:
        for recipe_id, toy in s.recipes:
            for seed in s.seeds:
                if (label, recipe_id, seed) in done:
                    continue
                if time.time() > s.deadline:
                    return False
                if pipes is None:
                    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
                    pipes = {"flux": load_pipeline("cookanything", s.base.model, device=device), "adapters": {}}
                params = dict(study.GENERATION_PARAMS)
                if adapter is not None:
                    params["lora"] = label
                    pipes["adapters"][label] = adapter
                images = METHODS["cookanything"].run(pipes, toy.to_recipe(), seed, s.generation, params, None)
                scores = {m: _value(r) for m, r in score(images, toy, study.METRICS, device=None).items()}
                rows.append(study.result_row(label, recipe_id, seed, scores, variant, steps))
                atomic_write(path, "".join(json.dumps(r) + "\n" for r in rows))
    return True


def run_job(job: study.Variant | None, s: Study) -> tuple[str, bool, float]:
    """One job: the baseline (``job`` None) or one run, trained then evaluated; (name, finished, seconds)."""
    torch.set_num_threads(s.threads)
    start = time.perf_counter()
    if job is None:
        finished = evaluate(study.BASELINE, [(study.BASELINE, None, None, 0)], s)
        return study.BASELINE, finished, time.perf_counter() - start
    finished = train(job, s)
    if finished:
        run = s.out / "runs" / job.name
        targets = [(job.label(n), adapter_at(run, n), job, n) for n in sorted(s.grid.steps)]
        finished = evaluate(job.name, targets, s)
    return job.name, finished, time.perf_counter() - start


def run_jobs(s: Study, jobs: int) -> bool:
    """Every job, ``jobs`` at once (in this process when 1); True when all finished."""
    todo = [None, *s.grid.variants()]
    if jobs == 1:
        results = (run_job(job, s) for job in todo)
    else:
        with multiprocessing.get_context("spawn").Pool(jobs) as pool:
            results = pool.starmap(run_job, [(job, s) for job in todo])
    finished = True
    for name, done, seconds in results:
        print(f"job {name}: {'finished' if done else 'stopped by the time limit'} after {seconds:.0f} s", flush=True)
        finished &= done
    return finished


def write_choice(s: Study, config_file: Path, complete: bool) -> study.Choice | None:
    """Merge the jobs' rows into ``results.jsonl``, write ``tables.md``, ``choice.json`` and ``chosen/``."""
    names = [study.BASELINE, *(v.name for v in s.grid.variants())]
    rows = [r for name in names for r in read_rows(s.out / "rows" / f"{name}.jsonl")]
    atomic_write(s.out / "results.jsonl", "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    t = study.study_table(rows, list(s.grid.rows()))
    atomic_write(s.out / "tables.md", markdown(t))
    print(markdown(t))
    choice = study.choose(t, s.grid, s.planned_pairs)
    summary = {"complete": complete, "planned_pairs": s.planned_pairs, "rows": len(rows), "chosen": None}
    if choice is not None:
        summary["chosen"] = {
            "label": choice.label,
            "settings": {**vars(choice.variant), "steps": choice.steps},
            "gain": choice.gain,
            "faithfulness": choice.faithfulness,
            "backed": choice.backed,
        }
        bundle = s.out / "chosen"
        shutil.rmtree(bundle, ignore_errors=True)
        run = s.out / "runs" / choice.variant.name
        shutil.copytree(adapter_at(run, choice.steps), bundle / ADAPTER_DIR)
        log = [r for r in read_rows(run / LOSS_LOG) if r["step"] <= choice.steps]
        atomic_write(bundle / LOSS_LOG, "".join(json.dumps(r) + "\n" for r in log))
        toy = s.base.data.toy
        shipped = study.shipped_yaml(config_file, choice, {"count": toy.count, "generator": toy.generator})
        atomic_write(bundle / "train.yaml", shipped)
        print(f"the train.yaml the study would ship ({bundle / 'train.yaml'}):\n")
        print((bundle / "train.yaml").read_text(encoding="utf-8"))
    else:
        print("no row has every planned pair without a clear loss of faithfulness: nothing to ship.")
    atomic_write(s.out / "choice.json", json.dumps(summary, indent=1))
    if not complete:
        print("INCOMPLETE: the time limit stopped some jobs; run the same command again to continue.")
    return choice


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", type=Path, default=SHIPPED_CONFIG, help="the base train-lora config (its data, model)")
    p.add_argument("--model", help="the Flux pipeline to train and draw with (default: the config's)")
    p.add_argument("--generator", help="the recipe generator (default: the config's data.toy.generator)")
    p.add_argument("--out", type=Path, help="default: outputs/lora-study (--smoke: outputs/lora-study-smoke)")
    p.add_argument("--sigma", nargs="+", choices=list(study.SIGMA_PRESETS))
    p.add_argument("--lr", type=float, nargs="+", help="learning rates")
    p.add_argument("--targets", nargs="+", choices=list(study.TARGET_PRESETS))
    p.add_argument("--steps", type=int, nargs="+", help="step counts, read off one run's checkpoints")
    p.add_argument("--recipes", type=int, help="validation recipes (default 25; --smoke 2)")
    p.add_argument("--first-seed", type=int, default=study.VALIDATION_FIRST_SEED)
    p.add_argument("--seeds", type=int, nargs="+", help="noise seeds per recipe (default 0 1; --smoke 0)")
    p.add_argument("--inference-steps", type=int, help="denoising steps (default 30, as the study's table; --smoke 2)")
    p.add_argument("--true-cfg", type=float, default=3.0)
    p.add_argument("--count", type=int, help="training recipes (default: the config's; --smoke 4)")
    p.add_argument("--jobs", type=int, default=1, help="jobs at once, one process each")
    p.add_argument("--threads", type=int, default=1, help="torch threads per job")
    p.add_argument("--max-minutes", type=float, default=60.0, help="stop and keep what is done after this long")
    p.add_argument("--smoke", action="store_true", help="tiny sizes: the whole study on a CPU in a few minutes")
    return p.parse_args(argv)


def build(args: argparse.Namespace) -> Study:
    """The study the arguments describe (``--smoke``: tiny defaults)."""
    smoke = args.smoke
    grid = SMOKE_GRID if smoke else study.StudyGrid()
    picked = {"sigma": args.sigma, "learning_rates": args.lr, "targets": args.targets, "steps": args.steps}
    grid = study.StudyGrid(**{k: tuple(v) if v else getattr(grid, k) for k, v in picked.items()})
    base = load_train_config(args.config)
    if base.data.toy is None:
        raise ConfigError(f"{args.config}: the study trains on toy recipes; give data: {{toy: ...}}.")
    toy = base.data.toy.model_copy(
        update={
            "generator": args.generator or base.data.toy.generator,
            "count": args.count or (4 if smoke else base.data.toy.count),
        }
    )
    base = base.model_copy(
        update={"data": base.data.model_copy(update={"toy": toy}), "model": args.model or base.model}
    )
    generate = recipe_generator(toy.generator)
    count = args.recipes or (2 if smoke else 25)
    seeds = study.check_validation_seeds(args.first_seed, count, study.evaluation_seeds())
    c = base.canvas
    return Study(
        base=base,
        grid=grid,
        recipes=[(f"toy-{seed}", generate(seed, toy.steps)) for seed in seeds],
        seeds=args.seeds or ([0] if smoke else [0, 1]),
        generation=GenerationSettings(
            num_inference_steps=args.inference_steps or (2 if smoke else 30),
            guidance=3.0,
            true_cfg=args.true_cfg,
            height=c.height,
            width=c.width,
        ),
        out=args.out or ROOT / "outputs" / ("lora-study-smoke" if smoke else "lora-study"),
        deadline=time.time() + 60 * args.max_minutes,
        threads=args.threads,
    )


def main(argv=None) -> study.Choice | None:
    """Run (or continue) the study, then write and print its table and choice."""
    args = parse(argv)
    s = build(args)
    s.out.mkdir(parents=True, exist_ok=True)
    print(
        f"LoRA settings study: {len(s.grid.variants())} runs x steps {sorted(s.grid.steps)}, {len(s.recipes)} "
        f"recipes x {len(s.seeds)} seeds, model {s.base.model}, recipes {s.base.data.toy.generator}, out {s.out}",
        flush=True,
    )
    complete = run_jobs(s, args.jobs)
    return write_choice(s, args.config, complete)


if __name__ == "__main__":
    main()
