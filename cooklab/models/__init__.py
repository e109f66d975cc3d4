"""Where cooklab's models come from: tiny random pipelines, the trained Toy Kitchen models, real checkpoints.

Three kinds of models, all returned as the stock diffusers pipelines
(``StableDiffusionPipeline``, ``FluxPipeline``):

* ``tiny_sd`` and ``tiny_flux`` (``tiny.py``): **tiny, random weights, built in code**; no file, no
  network, a fraction of a second on a CPU. Their images are noise, but every tensor has the
  shape and the code path of the full-size model: the tests and the benchmarks use them.
* ``toy_sd`` and ``toy_flux`` (``toy.py``): **trained**, the Toy Kitchen models shipped in
  ``data/toykitchen/``. They draw recognisable pictures of the Toy Kitchen's world and are the
  offline default of the demo, ``cooklab generate`` and the notebooks. ``toy_clip`` is the CLIP
  trained on the same world, the offline backbone of ``cooklab.metrics``' CLIP measures;
  ``toy_autoencoder`` the autoencoder the next Toy Kitchen model sets are trained on
  (``docs/toykitchen.md``). The GroundingDINO + SAM trained on the same world load with
  ``cooklab.grounding.GroundedSAM.toy()``.
* ``load_sd`` and ``load_flux`` (``checkpoints.py``): real checkpoints (a Hugging Face Hub id or a
  local folder), with a ``CheckpointError`` that says what to do when the files are of another
  family or cannot be reached.

The modules:

* ``tiny``        -- the tiny configs and ``tiny_sd`` / ``tiny_flux``
* ``toy``         -- ``TOY_DIR`` and the loaders of the shipped Toy Kitchen models
* ``checkpoints`` -- ``load_sd`` / ``load_flux`` for real checkpoints, ``describe(pipe)``
* ``devices``     -- ``default_device()`` and ``default_dtype(device, family)``
* ``sets``        -- the registry of named model sets: ``ModelSet``, ``model_set_of(pipe)``

The naming rule for models: ``tiny_*`` means random weights from a config in code (as in
``cooklab.grounding.tiny``), ``toy_*`` the trained Toy Kitchen models.
"""

from .checkpoints import describe, load_flux, load_sd
from .devices import default_device, default_dtype
from .sets import MODEL_SETS, ModelSet, model_set_of, register_model_set
from .tiny import TINY_T5_MAX_LENGTH, tiny_flux, tiny_sd
from .toy import TOY_DIR, toy_autoencoder, toy_clip, toy_dino, toy_flux, toy_sd

__all__ = [
    "MODEL_SETS",
    "TINY_T5_MAX_LENGTH",
    "TOY_DIR",
    "ModelSet",
    "default_device",
    "default_dtype",
    "describe",
    "load_flux",
    "load_sd",
    "model_set_of",
    "register_model_set",
    "tiny_flux",
    "tiny_sd",
    "toy_autoencoder",
    "toy_clip",
    "toy_dino",
    "toy_flux",
    "toy_sd",
]
