"""Fetching from the Hugging Face Hub: repo ids, offline mode, and errors that name the fix.

Every cooklab loader that takes "a hub id or a local folder" (``cooklab.models.load_sd`` /
``load_flux``, ``cooklab.grounding.GroundedSAM``) shares these helpers:

* ``is_repo_id(text)``: is ``text`` shaped like a hub id (``"org/name"``)? Checked before
  asking the network, so a typo in a folder name fails at once.
* ``is_offline()``: is ``HF_HUB_OFFLINE`` set (now, or when huggingface_hub was imported)?
* ``hub_kwargs(kwargs)``: the ``from_pretrained`` keywords that also matter for fetching
  (``cache_dir``, ``revision``, ``token``, ``local_files_only``), plus
  ``local_files_only=True`` when offline, so a missing file is reported at once instead of
  after the network retries.
* ``HUB_ERRORS``: the exceptions that mean "cannot get these files" (hub, network, diffusers).
* ``explain_hub_error(repo_id, error)``: turns one of them into a ``CheckpointError`` that says
  what went wrong (gated, not found, offline, unreachable) and the command that fixes it.
"""

from __future__ import annotations

import os
from typing import Any

import httpx
import huggingface_hub
from huggingface_hub.errors import EntryNotFoundError, GatedRepoError, HFValidationError, RepositoryNotFoundError
from huggingface_hub.utils import validate_repo_id

from .errors import CheckpointError

__all__ = ["HUB_ERRORS", "explain_hub_error", "hub_kwargs", "is_offline", "is_repo_id"]

#: Errors the hub, the network and diffusers raise for "cannot get these files"
#: (huggingface_hub's errors and diffusers' EnvironmentError are OSError subclasses).
HUB_ERRORS = (OSError, EntryNotFoundError, httpx.HTTPError)


def is_offline() -> bool:
    """True when HF_HUB_OFFLINE is set now or was set when huggingface_hub was imported."""
    flag = os.environ.get("HF_HUB_OFFLINE", "").strip().lower()
    return huggingface_hub.constants.HF_HUB_OFFLINE or flag in ("1", "true", "yes", "on")


def is_repo_id(text: str) -> bool:
    """True when ``text`` is a valid hub repo id such as ``"org/name"`` (no network)."""
    try:
        validate_repo_id(text)
    except HFValidationError:
        return False
    return True


def hub_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The from_pretrained keywords that also matter for fetching files (``local_files_only`` when offline)."""
    names = ("cache_dir", "revision", "token", "local_files_only")
    hub = {name: kwargs[name] for name in names if name in kwargs}
    if is_offline():
        hub["local_files_only"] = True  # answer from the cache at once, never retry the network
    return hub


def explain_hub_error(repo_id: str, error: BaseException) -> CheckpointError:
    """Turn a hub / network failure into a CheckpointError that says how to fix it."""
    chain, cause = [], error
    while cause is not None and len(chain) < 10:  # diffusers re-raises hub errors as OSError
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    download = (
        f"download it on a machine with hub access (`hf download {repo_id} --local-dir DIR`) "
        "and pass DIR instead of the id"
    )
    if any(isinstance(e, GatedRepoError) for e in chain):
        problem = "is a gated repository and this machine has no access to it"
        fix = f"accept its license on https://huggingface.co/{repo_id} and run `hf auth login`, or {download}"
    elif any(isinstance(e, RepositoryNotFoundError) for e in chain):
        problem = "was not found on the Hugging Face Hub (misspelled, private, or gated)"
        fix = f"check the id; for a private or gated repo run `hf auth login`; or {download}"
    elif is_offline():
        problem = "is not in the local Hugging Face cache, and HF_HUB_OFFLINE is set so the hub was not asked"
        fix = f"{download}, or unset HF_HUB_OFFLINE if this machine can reach the hub"
    else:
        problem = "could not be fetched: the Hugging Face Hub could not be reached or the repo is missing/gated"
        fix = f"{download}; for a gated repo run `hf auth login`"
    return CheckpointError(f"{repo_id!r} {problem} ({type(error).__name__}: {error}). Fix: {fix}.")
