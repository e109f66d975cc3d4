"""Named mask providers: what a name such as ``"grounded-sam"`` builds for the pictures of a model set.

A pipeline given ``mask_provider="grounded-sam"`` asks ``named_mask_provider(name, pipe)``: the
registry looks up the model set the pipeline was loaded from (``cooklab.models.model_set_of``)
and builds the provider that reads that set's pictures. A set that ships a detector + segmenter
trained on its pictures (``ModelSet.grounding``, e.g. the Toy Kitchen's) gets that pair, offline;
any other pipeline gets the hub's GroundingDINO + SAM. ``register_mask_provider`` adds a name.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import ConfigError
from ..models import ModelSet, model_set_of
from .provider import MaskProvider

__all__ = ["MASK_PROVIDERS", "named_mask_provider", "register_mask_provider"]

#: name -> factory(model set of the pipeline or None, device) -> provider
MASK_PROVIDERS: dict[str, Callable[[ModelSet | None, object], MaskProvider]] = {}


def register_mask_provider(name: str, factory: Callable[[ModelSet | None, object], MaskProvider]) -> None:
    """Make ``name`` build ``factory(model_set, device)`` (a provider of the same name is replaced)."""
    MASK_PROVIDERS[name] = factory


def named_mask_provider(name: str, pipe=None, device=None) -> MaskProvider:
    """The provider ``name`` builds for the pictures of ``pipe``'s model set (None: no set), on ``device``."""
    if name not in MASK_PROVIDERS:
        names = " or ".join(repr(known) for known in MASK_PROVIDERS)
        raise ConfigError(f"mask_provider={name!r}: use {names} or pass a provider object (image, phrase) -> mask.")
    return MASK_PROVIDERS[name](model_set_of(pipe) if pipe is not None else None, device)


def grounded_sam(model_set: ModelSet | None, device) -> MaskProvider:
    """``"grounded-sam"``: the GroundingDINO + SAM trained on the set's pictures when it has them, else the hub's."""
    from .grounded_sam import GroundedSAM

    if model_set is not None and model_set.grounding is not None:
        return GroundedSAM.toy(model_set.grounding, device=device)
    return GroundedSAM(device=device)


register_mask_provider("grounded-sam", grounded_sam)
