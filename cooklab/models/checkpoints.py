"""Real checkpoints: ``load_sd`` and ``load_flux`` from a Hugging Face Hub id or a local folder, and ``describe``.

They read ``model_index.json`` first, so a checkpoint of the wrong family fails at once with a
``CheckpointError`` that says what was found and what to call instead, and they turn hub and
network failures into a ``CheckpointError`` that says how to get the files (``cooklab.hub``).
``load_sd`` also reads one original-format ``.safetensors`` / ``.ckpt`` file.
``describe(pipe)`` summarises any pipeline (class, source, device, dtype, parameter counts).
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import huggingface_hub
import torch
from diffusers import DiffusionPipeline, FluxPipeline, StableDiffusionPipeline
from safetensors import SafetensorError, safe_open

from ..errors import CheckpointError
from ..hub import HUB_ERRORS, explain_hub_error, hub_kwargs, is_repo_id
from .devices import default_device, default_dtype

__all__ = ["describe", "load_flux", "load_sd"]

_SD_HELP = "use cooklab.models.load_sd / cooklab.RecipeDiffusion with an SD 1.x/2.x checkpoint"
_FLUX_HELP = "use cooklab.models.load_flux / cooklab.CookAnything"


def _advice(found: str) -> str:
    """What to do with a checkpoint whose pipeline class is ``found``."""
    if found.startswith("Flux"):
        return f"this is a {found} checkpoint; {_FLUX_HELP}"
    if found.startswith("StableDiffusionXL"):
        return (
            f"this is a {found} (SDXL) checkpoint; SDXL is not supported by RecipeDiffusion yet, "
            "use an SD 1.x/2.x checkpoint such as stable-diffusion-v1-5/stable-diffusion-v1-5"
        )
    if found.startswith("StableDiffusion3"):
        return f"this is a {found} (SD3) checkpoint; SD3 is not supported, {_SD_HELP} or a FLUX.1 one"
    if found == "StableDiffusionPipeline":
        return f"this is a StableDiffusionPipeline checkpoint; {_SD_HELP}"
    return (
        f"this is a {found} checkpoint; cooklab supports plain text-to-image "
        "StableDiffusionPipeline (load_sd) and FluxPipeline (load_flux) checkpoints"
    )


def _read_model_index(id_or_path: str, loader: str, hub: dict[str, Any]) -> tuple[str, bool]:
    """Return (pipeline class in model_index.json, is_local) or raise CheckpointError."""
    path = Path(id_or_path).expanduser()
    if path.is_dir():
        index = path / "model_index.json"
        if not index.is_file():
            raise CheckpointError(
                f"{str(path)!r} has no model_index.json, so it is not a diffusers pipeline folder. "
                f"Pass a folder saved with pipe.save_pretrained(DIR) or downloaded with "
                f"`hf download <repo id> --local-dir DIR`, or a hub id, to {loader}."
            )
        try:
            config = json.loads(index.read_text())
        except (OSError, ValueError) as error:
            raise CheckpointError(f"cannot read {str(index)!r}: {error}") from error
        return str(config.get("_class_name")), True
    if path.exists():
        raise CheckpointError(
            f"{id_or_path!r} is a file, not a diffusers pipeline folder; pass the folder that holds "
            f"model_index.json (load_sd also takes a single .safetensors/.ckpt file) to {loader}."
        )
    if not is_repo_id(id_or_path):
        raise CheckpointError(
            f"{id_or_path!r} is not an existing folder, nor a valid Hugging Face Hub id like 'org/name'."
        )
    try:  # fetch only model_index.json (a few hundred bytes) before any weights
        index = huggingface_hub.hf_hub_download(id_or_path, "model_index.json", **hub)
    except HUB_ERRORS as error:
        raise explain_hub_error(id_or_path, error) from error
    return str(json.loads(Path(index).read_text()).get("_class_name")), False


def _single_file_kind(path: Path) -> str:
    """Guess the family of an original-format .safetensors/.ckpt file from its key names."""
    try:
        if path.suffix == ".safetensors":
            with safe_open(str(path), framework="pt") as file:  # reads the header only
                keys = list(file.keys())
        else:
            state = torch.load(str(path), map_location="cpu", mmap=True, weights_only=True)
            keys = list(state.get("state_dict", state))
    except (OSError, RuntimeError, pickle.UnpicklingError, SafetensorError) as error:
        raise CheckpointError(f"cannot read the checkpoint file {str(path)!r}: {error}") from error
    if any("double_blocks." in key for key in keys):
        return "FluxPipeline"
    if any("joint_blocks." in key for key in keys):
        return "StableDiffusion3Pipeline"
    if any(key.startswith("conditioner.embedders.") for key in keys):
        return "StableDiffusionXLPipeline"
    if any(key.startswith("model.diffusion_model.input_blocks.") for key in keys):
        return "StableDiffusionPipeline"
    return "unknown"


def _load_sd_single_file(path: Path, device, dtype, kwargs: dict[str, Any]) -> StableDiffusionPipeline:
    """load_sd for one original-format SD file (as published on Civitai or in the SD repos)."""
    device = torch.device(device) if device is not None else default_device()
    dtype = dtype or kwargs.pop("torch_dtype", None) or default_dtype(device, "sd")
    kind = _single_file_kind(path)
    if kind == "unknown":
        raise CheckpointError(
            f"{str(path)!r} does not look like a Stable Diffusion checkpoint (no "
            "'model.diffusion_model.input_blocks.*' weights); pass an SD 1.x/2.x file or a diffusers folder."
        )
    if kind != "StableDiffusionPipeline":
        raise CheckpointError(f"{str(path)!r}: {_advice(kind)}.")
    try:
        # The component configs come from the hub unless config=<local diffusers SD folder> is passed.
        pipe = StableDiffusionPipeline.from_single_file(str(path), dtype=dtype, **kwargs)
    except HUB_ERRORS as error:
        raise CheckpointError(
            f"{str(path)!r}: diffusers could not build the pipeline from this single file "
            f"({type(error).__name__}: {error}). It needs the SD component configs from the hub: "
            "pass config=<a local diffusers SD folder of the same version>, or convert the file "
            "on a machine with hub access and pass the saved folder."
        ) from error
    return pipe.to(device)


def _load_pipeline(pipeline_class, id_or_path: str, device, dtype, family: str, kwargs: dict[str, Any]):
    """Shared body of load_sd / load_flux: check model_index.json, load, check tokenizers, move."""
    loader = f"load_{family}"
    device = torch.device(device) if device is not None else default_device()
    old_name = kwargs.pop("torch_dtype", None)  # diffusers' former name for dtype
    dtype = dtype or old_name or default_dtype(device, family)
    hub = hub_kwargs(kwargs)
    found, is_local = _read_model_index(id_or_path, loader, hub)
    if found != pipeline_class.__name__:
        raise CheckpointError(f"{loader}({id_or_path!r}): {_advice(found)}.")
    source = str(Path(id_or_path).expanduser()) if is_local else id_or_path
    if not is_local:
        kwargs.update(hub)
    try:
        pipe = pipeline_class.from_pretrained(source, dtype=dtype, **kwargs)
    except HUB_ERRORS as error:
        if is_local:
            raise CheckpointError(
                f"{loader}: cannot load the folder {source!r} ({type(error).__name__}: {error})"
            ) from error
        raise explain_hub_error(id_or_path, error) from error
    for name in ("tokenizer", "tokenizer_2"):  # offline loads can give a 2-token tokenizer without an error
        tokenizer = getattr(pipe, name, None)
        if tokenizer is not None and len(tokenizer) <= 2:
            raise CheckpointError(
                f"{loader}({id_or_path!r}): {name} loaded with only {len(tokenizer)} tokens, so its files are "
                f"missing or incomplete; download the whole repo (`hf download <id> --local-dir DIR`) and pass DIR."
            )
    return pipe.to(device)


def load_sd(id_or_path: str, device=None, dtype=None, **from_pretrained_kwargs) -> StableDiffusionPipeline:
    """Load an SD 1.x / 2.x ``StableDiffusionPipeline`` from a hub id or a local folder.

    ``id_or_path`` is a hub id (``"stable-diffusion-v1-5/stable-diffusion-v1-5"``,
    ``"stabilityai/stable-diffusion-2-1-base"``), a folder written by
    ``save_pretrained`` / ``hf download``, or a single original-format
    ``.safetensors`` / ``.ckpt`` file (needs the hub for the component configs,
    or ``config=<local SD folder>``).

    The safety checker is disabled (``safety_checker=None,
    requires_safety_checker=False``): it needs an extra 1.2 GB model and blacks
    out images on false positives; apply your own filter if you publish images.

    ``device`` defaults to ``default_device()`` and ``dtype`` to
    ``default_dtype(device, "sd")`` (float16 on a GPU, float32 on the CPU).
    Other keywords go to ``StableDiffusionPipeline.from_pretrained``.

    Raises ``CheckpointError`` for a missing folder, a folder without
    ``model_index.json``, a checkpoint of another family (Flux, SDXL, SD3 ...),
    or a hub that cannot be reached (with the fix in the message).
    """
    kwargs = {"safety_checker": None, "requires_safety_checker": False, **from_pretrained_kwargs}
    path = Path(id_or_path).expanduser()
    if path.is_file() and path.suffix in (".safetensors", ".ckpt"):
        return _load_sd_single_file(path, device, dtype, kwargs)
    return _load_pipeline(StableDiffusionPipeline, id_or_path, device, dtype, "sd", kwargs)


def load_flux(id_or_path: str, device=None, dtype=None, **from_pretrained_kwargs) -> FluxPipeline:
    """Load a FLUX.1 ``FluxPipeline`` (dev or schnell) from a hub id or a local folder.

    ``id_or_path`` is ``"black-forest-labs/FLUX.1-dev"`` (gated: accept the
    license on its page and ``hf auth login``), ``"black-forest-labs/FLUX.1-schnell"``,
    or a folder written by ``save_pretrained`` / ``hf download``.

    ``device`` defaults to ``default_device()`` and ``dtype`` to
    ``default_dtype(device, "flux")`` (bfloat16 on a GPU, float32 on the CPU).
    The full model needs about 33 GB in bfloat16; on a smaller GPU pass
    ``device="cpu"`` and call ``pipe.enable_model_cpu_offload()``.
    Other keywords go to ``FluxPipeline.from_pretrained``.

    Raises ``CheckpointError`` like ``load_sd`` does.
    """
    if Path(id_or_path).expanduser().is_file():
        raise CheckpointError(
            f"load_flux({id_or_path!r}): single-file Flux checkpoints are not supported; pass a "
            "diffusers folder (`hf download black-forest-labs/FLUX.1-dev --local-dir DIR`) or a hub id."
        )
    return _load_pipeline(FluxPipeline, id_or_path, device, dtype, "flux", dict(from_pretrained_kwargs))


def describe(pipe: DiffusionPipeline) -> dict[str, Any]:
    """Summarise a pipeline for notebooks and for recording next to results.

    Returns ``{"class", "name_or_path", "device", "dtype", "parameters"}`` where
    ``parameters`` maps each model component to its parameter count and has a
    ``"total"`` entry.
    """
    counts = {
        name: sum(p.numel() for p in component.parameters())
        for name, component in pipe.components.items()
        if isinstance(component, torch.nn.Module)
    }
    counts["total"] = sum(counts.values())
    return {
        "class": type(pipe).__name__,
        "name_or_path": pipe.name_or_path,
        "device": str(pipe.device),
        "dtype": str(pipe.dtype).removeprefix("torch."),
        "parameters": counts,
    }
