"""Training-based CookAnything: LoRA fine-tuning of the Flux transformer on multi-step canvases.

``config.py`` (what ``cooklab train-lora CONFIG.yaml`` reads; the held-out recipe seeds), ``data.py`` (recipes
with one picture per step: Toy Kitchen renders of a recipe generator, folder / JSONL / RecipeGen-style layouts,
pictures in step order), ``noise_levels.py`` (the distribution of the noise level sigma: uniform, logit-normal or
SD3's mode, shifted or not), ``trainer.py`` (the rectified-flow objective on ``CookAnything.prepare_canvas``'s
canvas, checkpoints, resume), ``settings_study.py`` (the LoRA settings study's grid, rows, paired table and choice;
``benchmarks/lora_settings_study.py`` runs it). The modules (and with them torch and diffusers) are imported on
first use.
"""

_NAMES = {
    "TrainLoraConfig": "config",
    "load_train_config": "config",
    "Example": "data",
    "load_examples": "data",
    "write_toy_folder": "data",
    "RECIPE_GENERATORS": "data",
    "recipe_generator": "data",
    "step_pictures": "data",
    "natural_key": "data",
    "LoraTrainer": "trainer",
    "TrainResult": "trainer",
    "train_lora": "trainer",
    "flow_matching_loss": "trainer",
    "encode_canvas": "trainer",
    "canvas_attention": "trainer",
    "shift_sigma": "noise_levels",
    "encode_posterior": "trainer",
    "canvas_latents": "trainer",
    "sample_sigmas": "noise_levels",
    "noise_level_summary": "noise_levels",
}

__all__ = sorted(_NAMES)


def __getattr__(name: str):
    if name in _NAMES:
        import importlib

        return getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)
    raise AttributeError(f"module 'cooklab.training' has no attribute {name!r}")
