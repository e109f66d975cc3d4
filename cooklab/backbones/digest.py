"""A backbone's weights as one short hash: what a stored score was measured with.

A score is only reusable with the weights that made it. The name of a backbone (a hub id, a
folder, ``"toy"``) does not pin them: a folder can be retrained, a hub id re-downloaded at another
revision. ``weights_digest(model)`` hashes the weights themselves::

    digest = sha256( for each (name, tensor) of model.state_dict(), sorted by name:
                     name, dtype, shape, the tensor's bytes )[:16 hex digits]

It does not depend on the device the model sits on, and it changes when any weight, name, shape
or dtype does. ``cooklab evaluate`` computes it once per backbone it loads and stores it in each
unit's scoring keys (``cooklab.evaluation.scoring_keys``).
"""

from __future__ import annotations

import hashlib

import torch

__all__ = ["weights_digest"]


@torch.no_grad()
def weights_digest(model: torch.nn.Module) -> str:
    """16 hex digits of sha256 over the model's state dict: names, dtypes, shapes and bytes, in name order."""
    sha = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        flat = tensor.detach().to("cpu").contiguous().reshape(-1)  # [numel], any dtype
        sha.update(f"{name}|{flat.dtype}|{tuple(tensor.shape)}|".encode())
        sha.update(flat.view(torch.uint8).numpy().tobytes())  # the raw bytes (bfloat16 has no numpy dtype)
    return sha.hexdigest()[:16]
