"""Which LoRA settings make training-based CookAnything more consistent? The study's grid, its rows and its choice.

A small grid of training settings, each trained on the same recipe sequences and scored by the Toy Kitchen oracle
on held-out *validation* recipes against training-free CookAnything (``benchmarks/lora_settings_study.py`` runs it):

    sigma         "uniform"  u ~ U(0, 1), unshifted (diffusers' Flux LoRA script; today's default)
                  "shifted"  sigmoid(N(0, 1)), shifted as the sampler shifts the canvas (the shipped adapter's)
    learning rate the AdamW step size (warm-up, then constant)
    targets       "attention" (the projections) or "attention+feed_forward" (diffusers' default)
    steps         optimizer steps: read off one run's checkpoints (a constant schedule after the warm-up, the data
                  order and the noise draws do not depend on the planned length, so the checkpoint at step s is
                  the adapter a run of s steps ends with)

Each (run, steps) is a row; ``training-free`` (no adapter, every mechanism on, lambda = 0.2) is the baseline. For a
row r and the baseline b, over the (recipe, seed) pairs P both have (matched by recipe and seed)::

    gain      = 1/|P| sum_p (c_r(p) - c_b(p))          c: oracle container consistency of the pair's frames
    95 % CI   = cluster bootstrap over recipes (``evaluation.result_tables.table``: the evaluation's own code)

The choice (``choose``): among rows with every planned pair and whose oracle step faithfulness is not clearly lower
(its Δ's upper bound >= 0: an adapter that copies frame 1 into every region would be consistent and useless), the
row with the highest lower bound of the gain (ties: the higher mean, then fewer steps). The gain is *backed* when
that lower bound is above 0. Twelve or so intervals are compared, so the chosen gain is confirmed on other recipes
(``cooklab evaluate`` on the evaluation's recipes) before it is reported.

Validation recipes are ``generator(VALIDATION_FIRST_SEED + k)``: held out from training (below
``config.FIRST_TRAINING_SEED``) and apart from every shipped evaluation config's recipes (tested), so the setting is
not picked on the recipes it is then reported on.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..errors import ConfigError
from ..evaluation.config import TableSpec
from ..evaluation.result_tables import table
from .config import FIRST_TRAINING_SEED, TrainLoraConfig

SIGMA_PRESETS = {
    "uniform": {"sigma_sampling": "uniform", "sigma_shift": False},
    "shifted": {"sigma_sampling": "logit_normal", "logit_mean": 0.0, "logit_std": 1.0, "sigma_shift": True},
}
TARGET_PRESETS = ("attention", "attention+feed_forward")
BASELINE = "training-free"
CONSISTENCY = "oracle_container_consistency"  # what the choice maximises
FAITHFULNESS = "oracle_step_faithfulness"  # what it must not clearly lose
METRICS = (CONSISTENCY, FAITHFULNESS, "oracle_state_accuracy")
TABLE = "LoRA settings study"
VALIDATION_FIRST_SEED = 3000  # validation recipes: held out (< FIRST_TRAINING_SEED), apart from data/eval's
GENERATION_PARAMS = {"lam": 0.2}  # CookAnything's call in every row: every mechanism on, lambda = 0.2


@dataclass(frozen=True)
class Variant:
    """One training run of the grid: sigma sampling, learning rate and LoRA targets."""

    sigma: str
    learning_rate: float
    targets: str

    @property
    def name(self) -> str:
        """The run's folder name, e.g. ``uniform-lr0.0005-attention``."""
        return f"{self.sigma}-lr{self.learning_rate:g}-{self.targets}"

    def label(self, steps: int) -> str:
        """The row of this run's adapter after ``steps`` optimizer steps."""
        return f"LoRA {self.sigma}, lr {self.learning_rate:g}, {self.targets}, {steps} steps"

    def train_config(self, base: TrainLoraConfig, out: Path, steps: tuple[int, ...]) -> TrainLoraConfig:
        """``base`` with this run's settings, trained to ``max(steps)`` with a checkpoint at every step count.

        Checkpoints every ``gcd(steps)`` steps, all kept: ``out/checkpoints/step-<s>/adapter`` for each s.
        """
        every = math.gcd(*steps)
        data = base.model_dump()
        data["name"], data["out"] = f"{base.name}-{self.name}", out
        data["lora"]["target_modules"] = self.targets
        data["train"].update(
            SIGMA_PRESETS[self.sigma],
            learning_rate=self.learning_rate,
            steps=max(steps),
            lr_scheduler="constant_with_warmup",
            checkpoint_every=every,
            keep_checkpoints=max(steps) // every,
        )
        return TrainLoraConfig.model_validate(data)


@dataclass(frozen=True)
class StudyGrid:
    """The settings compared: every (sigma, learning rate, targets) is one run, read off at every step count."""

    sigma: tuple[str, ...] = ("uniform", "shifted")
    learning_rates: tuple[float, ...] = (5e-4, 2e-3)
    targets: tuple[str, ...] = TARGET_PRESETS
    steps: tuple[int, ...] = (750, 1500)

    def __post_init__(self):
        wrong = [s for s in self.sigma if s not in SIGMA_PRESETS] + [
            t for t in self.targets if t not in TARGET_PRESETS
        ]
        if wrong:
            raise ConfigError(
                f"{wrong}: choose sigma from {list(SIGMA_PRESETS)}, targets from {list(TARGET_PRESETS)}."
            )
        if not self.steps or min(self.steps) < 1 or len(set(self.steps)) != len(self.steps):
            raise ConfigError(f"steps={self.steps}: give distinct step counts of at least 1.")

    def variants(self) -> list[Variant]:
        """Every run, in grid order."""
        return [Variant(*point) for point in itertools.product(self.sigma, self.learning_rates, self.targets)]

    def rows(self) -> dict[str, tuple[Variant, int]]:
        """Row label -> (run, steps), every run at every step count."""
        return {v.label(s): (v, s) for v in self.variants() for s in sorted(self.steps)}


def result_row(
    label: str, recipe: str, seed: int, metrics: dict[str, float], variant: Variant | None = None, steps: int = 0
) -> dict:
    """One unit as ``cooklab evaluate`` stores it in ``results.jsonl`` (what ``result_tables`` reads), plus the
    run's settings: ``variant`` None is the training-free baseline."""
    params = dict(GENERATION_PARAMS) | ({"lora": f"{variant.name}@{steps}"} if variant else {})
    settings = None
    if variant is not None:
        settings = {"sigma": variant.sigma, "learning_rate": variant.learning_rate, "targets": variant.targets}
        settings["steps"] = steps
    return {
        "label": label,
        "method": "cookanything",
        "params": params,
        "recipe": recipe,
        "seed": seed,
        "metrics": {m: {"value": v} for m, v in metrics.items()},
        "settings": settings,
    }


def study_table(rows: list[dict], labels: list[str]) -> dict:
    """Every row's means and paired Δ to the baseline with 95 % intervals (recipes resampled), by
    ``evaluation.result_tables.table``."""
    spec = TableSpec(name=TABLE, metrics=list(METRICS), methods=[BASELINE, *labels], baseline=BASELINE)
    return table(rows, spec, list(METRICS))


@dataclass(frozen=True)
class Choice:
    """The chosen row, its consistency gain (mean, 95 % interval) and whether the interval clears 0."""

    label: str
    variant: Variant
    steps: int
    gain: tuple[float, float, float]
    faithfulness: tuple[float, float, float]
    backed: bool


def choose(t: dict, grid: StudyGrid, planned_pairs: int) -> Choice | None:
    """The row with the best interval-backed consistency gain (the module doc's rule); None when no row qualifies.

    t: ``study_table``'s table; planned_pairs: the (recipe, seed) pairs every row must have.
    """
    runs = grid.rows()
    candidates = []
    for row in t["rows"]:
        if row["label"] not in runs:
            continue
        gain, faithful = row["deltas"][CONSISTENCY], row["deltas"][FAITHFULNESS]
        complete = gain[4] == planned_pairs
        if complete and not math.isnan(gain[0]) and not faithful[2] < 0:
            variant, steps = runs[row["label"]]
            candidates.append(Choice(row["label"], variant, steps, gain[:3], faithful[:3], gain[1] > 0))
    if not candidates:
        return None
    return max(candidates, key=lambda c: (c.gain[1], c.gain[0], -c.steps))


def shipped_yaml(base_file: Path, choice: Choice, toy: dict | None = None) -> str:
    """The train.yaml the study would ship: ``base_file`` (as written) with the chosen settings, the study's toy data
    (``toy``: the fields it changed, e.g. ``generator``, ``count``) and a header stating the evidence."""
    data = yaml.safe_load(Path(base_file).read_text(encoding="utf-8"))
    if toy:
        data["data"]["toy"].update(toy)
    data.setdefault("lora", {})["target_modules"] = choice.variant.targets
    train = data.setdefault("train", {})
    for key in ("sigma_sampling", "sigma_shift", "logit_mean", "logit_std", "mode_scale"):
        train.pop(key, None)
    train.update(
        SIGMA_PRESETS[choice.variant.sigma],
        learning_rate=choice.variant.learning_rate,
        steps=choice.steps,
        lr_scheduler="constant_with_warmup",
    )
    d, lo, hi = choice.gain
    verdict = "clear of 0" if choice.backed else "NOT clear of 0: no setting is backed"
    header = (
        f"# chosen by benchmarks/lora_settings_study.py: {choice.label}\n"
        f"# oracle consistency gain over training-free {d:+.3f} [{lo:+.3f}, {hi:+.3f}] ({verdict})\n"
    )
    return header + yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=119)


def check_validation_seeds(first_seed: int, count: int, evaluation: dict[str, range]) -> range:
    """The validation seeds ``first_seed`` ... ``first_seed + count - 1``; a ``ConfigError`` when they reach the
    training seeds or share a seed with an evaluation config's recipes (``evaluation``: name -> its seeds)."""
    seeds = range(first_seed, first_seed + count)
    if first_seed < 0 or seeds.stop > FIRST_TRAINING_SEED:
        raise ConfigError(
            f"validation recipes {seeds.start}..{seeds.stop - 1}: keep them in 0..{FIRST_TRAINING_SEED - 1}, the "
            "held-out seeds (training recipes start at config.FIRST_TRAINING_SEED); lower --first-seed or --recipes."
        )
    shared = [name for name, used in evaluation.items() if set(seeds) & set(used)]
    if shared:
        raise ConfigError(
            f"validation recipes {seeds.start}..{seeds.stop - 1} share seeds with the evaluation config(s) {shared}: "
            "the setting would be picked on the recipes it is reported on; choose another --first-seed."
        )
    return seeds


def evaluation_seeds(folder: Path | None = None) -> dict[str, range]:
    """The toy recipe seeds of every evaluation config in ``folder`` (default: the shipped ``data/eval``)."""
    from ..evaluation.config import load_config
    from ..resources import shipped

    out = {}
    for path in sorted((folder or shipped("eval")).glob("*.yaml")):
        toy = load_config(path).recipes.toy
        if toy is not None:
            out[path.name] = range(toy.first_seed, toy.first_seed + toy.count)
    return out
