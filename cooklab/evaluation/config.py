"""What an evaluation runs: the YAML file ``cooklab evaluate CONFIG.yaml`` reads, as pydantic models.

An evaluation is a product: every **method** (with every point of its parameter grid) x every
**recipe** x every **seed** is one *unit*, generated and scored on its own (``run.py``). A small
example (``data/eval/toy_small.yaml`` is the one CI runs)::

    name: toy-small
    out: outputs/eval/toy-small            # units, results.jsonl, tables.md, plots
    model: {sd: toy, flux: toy}            # "toy", "tiny", a hub id or a local folder per backbone
    generation: {num_inference_steps: 30, guidance: 3.0, true_cfg: 3.0, height: 64, width: 64}
    recipes: {toy: {count: 25, steps: 4, first_seed: 1000}}
    seeds: [0, 1]
    methods:
      - {name: independent}
      - {name: region_aware_kv}
      - {name: cookanything, grid: {lam: [0.0, 0.5, 1.0]}}
    metrics: [oracle_container_consistency, oracle_step_faithfulness]
    clip: toy                              # the CLIP metrics' backbone: "toy" (Toy Kitchen CLIP), hub id or folder
    # dino: toy                            # the DINOv2 metrics' ("toy": the Toy Kitchen CLIP's vision tower)
    # backbones: {step_faithfulness_mc: laion/CLIP-ViT-H-14-laion2B-s32B-b79K}   # one metric's own backbone
    tables:
      - {name: "Recipe Diffusion, Table II", layout: recipe_diffusion, baseline: independent}

Method names and their parameters are listed by ``methods.METHODS``; a ``grid`` maps a parameter
to the values to sweep (every combination is a row), ``params`` fixes parameters.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..checks import finite_number
from ..errors import ConfigError
from ..resources import find_shipped, installed_output

_STRICT = ConfigDict(extra="forbid", allow_inf_nan=False)  # .inf / .nan in a float field: refused, named


class GenerationSettings(BaseModel):
    """Sampler settings shared by every method.

    A method's ``params: {guidance: ...}`` overrides its backbone's CFG scale.
    """

    model_config = _STRICT
    num_inference_steps: int = Field(30, ge=1, le=1000)
    guidance: float = Field(7.5, ge=0.0)  # SD: classifier-free guidance scale (guidance_scale)
    true_cfg: float = Field(1.0, ge=0.0)  # Flux: true classifier-free guidance scale (true_cfg_scale; 1 = off)
    flux_guidance: float = Field(
        3.5, ge=0.0
    )  # Flux.1-dev: the distilled guidance embedding (guidance_scale); unused by models without one
    height: int = Field(512, ge=8)
    width: int = Field(512, ge=8)


class ToyRecipes(BaseModel):
    """Random Toy Kitchen recipes ``random_toy_recipe(first_seed + k, steps)``, k < count.

    The oracle knows what each shows. ``world: v3`` draws world-v3 recipes instead
    (``random_recipe_v3``: later steps refer back, the cut kept through cooking; 4 to 8 steps), ids ``toy-v3-<seed>``.
    """

    model_config = _STRICT
    count: int = Field(ge=1, le=100_000)
    steps: int = Field(4, ge=2, le=8)
    first_seed: int = 1000
    world: Literal["v2", "v3"] = "v2"  # the Toy Kitchen world (cooklab.toykitchen.worlds): v2 today's, v3 refers back

    @model_validator(mode="after")
    def _v3_steps(self) -> ToyRecipes:
        if self.world == "v3" and self.steps < 4:
            raise ValueError(f"steps: {self.steps}: a world-v3 recipe has 4 to 8 steps; set steps: 4 or more.")
        return self


SOURCES = ("toy", "folder", "jsonl", "recipegen")


def exactly_one_source(model: BaseModel, what: str) -> BaseModel:
    """A validator's check that ``model`` sets exactly one of ``SOURCES`` (recipes to evaluate, examples to train)."""
    given = [k for k in SOURCES if getattr(model, k) is not None]
    if len(given) != 1:
        raise ValueError(f"give exactly one {what} (toy, folder, jsonl or recipegen), not {given or 'none'}")
    return model


class RecipeSource(BaseModel):
    """Where the recipes come from: exactly one of the four."""

    model_config = _STRICT
    toy: ToyRecipes | None = None
    folder: Path | None = (
        None  # every .yaml / .yml / .json / .txt recipe file in it (cooklab.load_recipe), sorted by name
    )
    jsonl: Path | None = None  # a .json list of recipes or a .jsonl file, one recipe object per line
    recipegen: Path | None = None  # a RecipeGen-style layout: one folder per recipe (``recipe_sets.py``)
    limit: int | None = Field(None, ge=1)  # the first ``limit`` recipes only

    @model_validator(mode="after")
    def _one_source(self) -> RecipeSource:
        return exactly_one_source(self, "recipe source")


class MethodSpec(BaseModel):
    """One method of ``methods.METHODS``, with fixed ``params`` and a ``grid`` of values to sweep."""

    model_config = _STRICT
    name: str
    label: str | None = None  # the row name in tables (default: the name, then the grid point)
    params: dict[str, Any] = {}
    grid: dict[str, list[Any]] = {}

    @field_validator("grid")
    @classmethod
    def _non_empty(cls, grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
        empty = [k for k, v in grid.items() if not v]
        if empty:
            raise ValueError(f"grid values of {empty} are empty lists: give at least one value each")
        return grid

    @model_validator(mode="after")
    def _finite_numbers(self) -> MethodSpec:
        """Refuse NaN and infinity in ``params`` and ``grid`` (``cooklab.checks.finite_number``) when the file is read,
        not when the units that use them run."""
        values = [(f"params.{k}", v) for k, v in self.params.items()]
        values += [(f"grid.{k}", v) for k, vs in self.grid.items() for v in vs]
        for where, value in values:
            if isinstance(value, float):
                finite_number(where, value)
        return self

    def points(self) -> list[dict[str, Any]]:
        """Every parameter set of this method: ``params`` updated with each combination of the grid, in order."""
        keys = list(self.grid)
        return [
            {**self.params, **dict(zip(keys, values))} for values in itertools.product(*(self.grid[k] for k in keys))
        ]


class TableSpec(BaseModel):
    """One results table: rows = methods (grid points), columns = metrics, paired differences to ``baseline``."""

    model_config = _STRICT
    name: str
    layout: Literal["recipe_diffusion", "cookanything", "custom"] = "custom"
    metrics: list[str] | None = None  # the columns (default: the layout's, of those the evaluation measured)
    methods: list[str] | None = None  # row labels to include (default: every row)
    baseline: str | None = None  # the row label every other row is compared with, pair by pair


class SweepSpec(BaseModel):
    """A plot of one method's parameter against metrics (``x: metrics[0], y: metrics[1]`` with ``tradeoff``)."""

    model_config = _STRICT
    method: str
    param: str
    metrics: list[str] = Field(min_length=1)
    tradeoff: bool = False  # plot metrics[1] against metrics[0], one point per parameter value
    fixed: dict[str, Any] = {}  # the other parameters of the rows plotted (default: rows that set only `param`)


class EvalConfig(BaseModel):
    """A whole evaluation (see the module doc)."""

    model_config = _STRICT
    name: str = Field(min_length=1)
    out: Path
    model: dict[Literal["sd", "flux"], str] = {"sd": "toy", "flux": "toy"}
    generation: GenerationSettings = GenerationSettings()
    recipes: RecipeSource
    seeds: list[int] = Field([0], min_length=1)
    methods: list[MethodSpec] = Field(min_length=1)
    metrics: list[str] = Field(min_length=1)
    clip: str = "toy"  # "toy": the Toy Kitchen CLIP; else a hub id or folder
    dino: str = "facebook/dinov2-base"  # "toy": the Toy Kitchen CLIP's vision tower (not DINOv2); else as clip
    backbones: dict[
        str, str
    ] = {}  # a metric's own backbone (e.g. step_faithfulness_mc: laion/CLIP-ViT-H-14-...), over clip / dino
    masks: str = (
        "oracle"  # container masks for region-aware noise, inpainting and dino_l2_masked (cooklab generate --masks)
    )
    adapters: dict[
        str, Path
    ] = {}  # LoRA adapters by name (folders of pytorch_lora_weights.safetensors); methods take `lora: NAME`
    tables: list[TableSpec] = []
    sweeps: list[SweepSpec] = []

    @model_validator(mode="after")
    def _backbone_metrics(self) -> EvalConfig:
        """Every ``backbones:`` key is a metric of ``metrics:`` that reads a CLIP or DINOv2 backbone."""
        from ..metrics import BACKBONE_KIND

        wrong = [m for m in self.backbones if m not in BACKBONE_KIND or m not in self.metrics]
        if wrong:
            raise ValueError(
                f"backbones: {wrong} are not metrics of `metrics:` that read a CLIP or DINOv2 backbone; give a "
                f"backbone only to listed metrics of {sorted(BACKBONE_KIND)}"
            )
        return self

    def backbone_for(self, metric: str) -> str:
        """The backbone ``metric`` reads: its ``backbones:`` entry, else ``clip:`` or ``dino:`` by its kind."""
        from ..metrics import BACKBONE_KIND

        return self.backbones.get(metric) or (self.clip if BACKBONE_KIND[metric] == "clip" else self.dino)

    @field_validator("seeds", mode="before")
    @classmethod
    def _seed_count(cls, value: Any) -> Any:
        """``seeds: 3`` means seeds 0, 1, 2."""
        return list(range(value)) if isinstance(value, int) else value


def read_yaml_model(path: Path, model: type[BaseModel], what: str, example: str):
    """``model`` from the YAML mapping in ``path``.

    Raises a ``ConfigError`` naming the file, each bad field and where the format is.
    """
    if not path.is_file():
        raise ConfigError(f"{what} {str(path)!r} not found: pass a YAML file ({example}).")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path} must hold a mapping of the fields of a {what}, not {type(data).__name__} (the format: {example})."
        )
    try:
        return model(**data)
    except ValidationError as error:
        lines = [f"  {'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in error.errors()]
        raise ConfigError(
            f"{path} is not a valid {what}:\n" + "\n".join(lines) + f"\nFix those fields (the format: {example})."
        ) from None


def load_config(path: str | os.PathLike[str]) -> EvalConfig:
    """Read and check an evaluation file; a ``ConfigError`` that names the field and the fix when it is wrong.

    ``path`` is a file, or a shipped config by name (``toy_small``, ``data/eval/toy_small.yaml``: found from any
    folder, ``cooklab.resources``). Relative paths in it (``out``, recipe folders) are relative to the file's
    folder; the ``out`` of a config read from an installed wheel goes under the current folder instead.
    """
    path = find_shipped(path, "eval")
    config = read_yaml_model(
        path, EvalConfig, "evaluation config", "cooklab/evaluation/config.py, data/eval/toy_small.yaml"
    )
    base = path.resolve().parent
    out = installed_output(path, config.out) or (base / config.out if not config.out.is_absolute() else config.out)
    fix = {"out": out}
    source = config.recipes
    for key in ("folder", "jsonl", "recipegen"):
        value = getattr(source, key)
        if value is not None and not value.is_absolute():
            source = source.model_copy(update={key: base / value})
    adapters = {name: p if p.is_absolute() else base / p for name, p in config.adapters.items()}
    return config.model_copy(update={**fix, "recipes": source, "adapters": adapters})
