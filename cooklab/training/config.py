"""What ``cooklab train-lora CONFIG.yaml`` reads: a LoRA training run on multi-step canvases, as pydantic models.

A small example (``data/toykitchen/lora/train.yaml`` trained the shipped Toy Kitchen adapter)::

    name: toy-lora
    out: ../../../outputs/lora/toy            # checkpoints/, adapter/, loss.jsonl, training.json
    model: toy                                # "toy", "tiny", a hub id or a local folder (a Flux pipeline)
    data: {toy: {count: 400, steps: 4, first_seed: 5000}}   # or folder: / jsonl: / recipegen:; toy: generator: NAME
    lora: {rank: 16, alpha: 16, dropout: 0.0, target_modules: attention+feed_forward}  # or attention, or [names]
    canvas: {height: 64, width: 64, regional: true, flexible_rope: true, cscc: true, lam: 0.2, alpha: 0.1}
    train: {steps: 1000, learning_rate: 1.0e-4, grad_accum: 1, checkpoint_every: 250, seed: 0,
            sigma_sampling: uniform, sigma_shift: false, latents: sample}

Relative paths are read from the config file's folder. ``data.toy`` renders the recipes of a recipe generator
(``generator:``, default ``random_toy_recipe``; ``data.RECIPE_GENERATORS`` lists them) from ``first_seed`` on; a
``first_seed`` below ``FIRST_TRAINING_SEED`` (5000) is refused: the evaluation's recipes are drawn from those seeds.

The defaults of the three training switches are what diffusers' Flux LoRA script
(``examples/dreambooth/train_dreambooth_lora_flux.py``) does when given no option:

* ``lora.target_modules: attention+feed_forward`` -- its default ``target_modules`` (``--lora_layers`` unset): the
  attention projections and the double blocks' feed-forward layers (``LORA_TARGET_PRESETS``); ``attention`` is the
  projections alone, a list names modules one by one (each must match a module of the transformer);
* ``train.sigma_sampling: uniform``, ``train.sigma_shift: false`` -- its ``--weighting_scheme none``: sigma uniform
  in (0, 1), not shifted (FLUX.1's scheduler shifts dynamically, so its training table is unshifted);
  ``logit_normal`` (``logit_mean``, ``logit_std``) and ``mode`` (``mode_scale``) are its other schemes, and
  ``sigma_shift: true`` shifts sigma as the sampler shifts the canvas (``noise_levels.py``);
* ``train.latents: sample`` -- its ``latent_dist.sample()``: a fresh draw from the VAE posterior at every step
  (seeded by ``train.seed``); ``mode`` takes the posterior's mode, the same x_0 every time.

The shipped Toy Kitchen adapter predates the switches: its ``train.yaml`` states the settings it was trained with
(``attention``, ``logit_normal`` shifted, ``mode``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..cookanything.lora import LoraSpec, target_modules_of
from ..evaluation.config import exactly_one_source
from ..resources import find_shipped, installed_output

_STRICT = ConfigDict(extra="forbid", allow_inf_nan=False)  # .inf / .nan in a float field: refused, named


#: Toy recipe seeds below this one are held out, never trained on: the evaluation configs (``data/eval``: 1000 ...),
#: the demo (971), the benchmarks (0 ..., 1000 ...) and the LoRA settings study's validation recipes (3000 ...) draw
#: their recipes from them. Training recipes start here.
FIRST_TRAINING_SEED = 5000


def held_out_seed_problem(first_seed: int) -> str | None:
    """Why training recipes from ``first_seed`` on would use held-out seeds (``FIRST_TRAINING_SEED``), or None."""
    if first_seed >= FIRST_TRAINING_SEED:
        return None
    return (
        f"first_seed={first_seed}: recipe seeds below {FIRST_TRAINING_SEED} are held out for evaluation (the "
        f"evaluation configs, the demo, the benchmarks, the LoRA settings study); start training recipes at "
        f"{FIRST_TRAINING_SEED} or above"
    )


class ToyData(BaseModel):
    """Rendered true frames of random Toy Kitchen recipes ``generator(first_seed + k, steps)``, k < count.

    ``generator`` names a recipe generator of ``data.RECIPE_GENERATORS`` (``random_toy_recipe``, the default; world
    v3's ``random_recipe_v3``). Seeds start at ``FIRST_TRAINING_SEED`` or above.
    """

    model_config = _STRICT
    count: int = Field(ge=1, le=1_000_000)
    steps: int = Field(4, ge=2, le=8)
    first_seed: int = FIRST_TRAINING_SEED  # the evaluation's toy recipes start at 1000: training recipes stay apart
    generator: str = "random_toy_recipe"

    @field_validator("first_seed")
    @classmethod
    def _not_held_out(cls, value: int) -> int:
        problem = held_out_seed_problem(value)
        if problem:
            raise ValueError(problem)
        return value


class DataSource(BaseModel):
    """Exactly one of: Toy Kitchen renders, a folder layout,
    a JSONL manifest, a RecipeGen-style layout (``data.py``).
    """

    model_config = _STRICT
    toy: ToyData | None = None
    folder: Path | None = None
    jsonl: Path | None = None
    recipegen: Path | None = None
    limit: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _one(self):
        return exactly_one_source(self, "data source")


class LoraSettings(BaseModel):
    """The adapter (``cooklab.cookanything.lora.LoraSpec``)."""

    model_config = _STRICT
    rank: int = Field(16, ge=1, le=1024)
    alpha: float = Field(16.0, gt=0)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    # a preset of LORA_TARGET_PRESETS or module names; default: the modules diffusers' Flux LoRA script adapts
    target_modules: Literal["attention", "attention+feed_forward"] | list[str] = "attention+feed_forward"

    @field_validator("target_modules")
    @classmethod
    def _names(cls, value):
        if isinstance(value, list) and not value:
            raise ValueError("give a preset ('attention', 'attention+feed_forward') or at least one module name")
        return value

    def spec(self) -> LoraSpec:
        return LoraSpec(self.rank, self.alpha, self.dropout, target_modules_of(self.target_modules))


class CanvasSettings(BaseModel):
    """The canvas every training example is laid out on: the arguments of ``CookAnything.prepare_canvas``."""

    model_config = _STRICT
    height: int = Field(512, ge=16)  # of one region
    width: int = Field(512, ge=16)
    regional: bool = True
    flexible_rope: bool = True
    rope_step_axis: bool = False
    cscc: bool = True
    alpha: float = Field(0.1, ge=0.0, le=1.0)
    lam: float = Field(0.2, ge=0.0)
    image_attention: Literal["region", "global"] = "region"
    max_sequence_length: int | None = Field(None, ge=1, le=512)

    def kwargs(self) -> dict:
        return self.model_dump()


class TrainSettings(BaseModel):
    """Optimisation: steps, learning rate, accumulation,
    precision, checkpoints, the rectified-flow timestep sampling.
    """

    model_config = _STRICT
    steps: int = Field(1000, ge=1)  # optimizer steps
    learning_rate: float = Field(1e-4, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    lr_scheduler: Literal["constant", "constant_with_warmup", "linear", "cosine"] = "constant_with_warmup"
    warmup_steps: int = Field(0, ge=0)
    grad_accum: int = Field(1, ge=1)  # canvases per optimizer step
    max_grad_norm: float = Field(1.0, gt=0)
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"
    gradient_checkpointing: bool = False
    guidance: float = Field(
        3.5, ge=0
    )  # the guidance embedding's value for guidance-distilled models (FLUX.1-dev); unused otherwise
    # the noise levels (noise_levels.py): u drawn as diffusers' weighting schemes, then the canvas's time shift or not
    sigma_sampling: Literal["uniform", "logit_normal", "mode"] = "uniform"  # diffusers' Flux LoRA script's default
    sigma_shift: bool = False  # True: sigma = shift(u) for the canvas's N P tokens, as the sampler shifts
    logit_mean: float = 0.0  # logit_normal: u = sigmoid(N(logit_mean, logit_std))
    logit_std: float = Field(1.0, gt=0)
    mode_scale: float = Field(1.29, ge=-1.0, le=1.75)  # mode: SD3's s (diffusers' default); monotone for s <= 2/(pi-2)
    # x_0 of each picture: a draw from the VAE posterior (diffusers' scripts) or its mode (deterministic)
    latents: Literal["sample", "mode"] = "sample"
    checkpoint_every: int = Field(250, ge=1)
    keep_checkpoints: int = Field(2, ge=1)
    log_every: int = Field(1, ge=1)
    seed: int = 0


class TrainLoraConfig(BaseModel):
    """A whole LoRA training run (see the module doc)."""

    model_config = _STRICT
    name: str = Field(min_length=1)
    out: Path
    model: str = "toy"
    data: DataSource
    lora: LoraSettings = Field(default_factory=LoraSettings)
    canvas: CanvasSettings = Field(default_factory=CanvasSettings)
    train: TrainSettings = Field(default_factory=TrainSettings)


def load_train_config(path: str | os.PathLike) -> TrainLoraConfig:
    """Read and validate a training config; relative paths are taken from the file's folder.

    ``path`` is a file, or the shipped one by its path in the repository (``data/toykitchen/lora/train.yaml``:
    found from any folder, ``cooklab.resources``); the ``out`` of a config read from an installed wheel goes
    under the current folder.
    """
    from ..evaluation.config import read_yaml_model

    path = find_shipped(path, "toykitchen", "lora")
    config = read_yaml_model(
        path, TrainLoraConfig, "training config", "cooklab/training/config.py, data/toykitchen/lora/train.yaml"
    )
    base = path.parent
    resolve = lambda p: p if p is None or p.is_absolute() else Path(os.path.normpath(base / p))  # noqa: E731
    data = config.data.model_copy(
        update={k: resolve(getattr(config.data, k)) for k in ("folder", "jsonl", "recipegen")}
    )
    model = config.model
    if model not in ("toy", "tiny") and (base / model).exists():
        model = str(base / model)
    out = installed_output(path, config.out) or resolve(config.out)
    return config.model_copy(update={"out": out, "data": data, "model": model})
