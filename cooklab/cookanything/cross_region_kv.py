"""Cross-region K/V sharing: Recipe Diffusion's K/V sharing carried onto CookAnything's canvas.

Recipe Diffusion (Eq. 1-4) lets frame i's self-attention see the keys and values of its
reference frame j, computed while j was denoised at the same timestep:

    K+ = [K_j ; K_i],   V+ = [V_j ; V_i],   Attn(Q_i, K+, V+) = softmax(Q_i K+^T / sqrt(d)) V+

On a CookAnything canvas every step is a region of one sequence, denoised together, so the
reference region's keys and values at the same timestep are already in the layer: sharing is a
change of the regional branch's mask, not a cache. With Step-wise Regional Control region n's
image queries see ``[C_n, I_n]``; with cross-region sharing they see ``[C_n, I_j, I_n]`` where
``j = ref(n)`` is the step's reference (the metadata's ``reference_step``, else the previous
step; ``Recipe.reference_frames``). Attention over the union of keys under a mask is exactly
``softmax`` over the concatenation ``[K_j ; K_n]`` (the order of keys does not matter), so this is
Eq. 1-4 with nothing cached. Text queries are unchanged (in Recipe Diffusion the sharing is in
self-attention only), and so is the base branch (it already sees the whole canvas).

Only the image-to-image entries of the paper's 2N x 2N group mask change:

    M_ij = 1  if  i = j  or  |i - j| = N  or  (i = N + n and j = N + ref(n))

A region with no reference (the first step) keeps its own keys only: sharing a region with
itself is SRC unchanged (``references[n] = n``), which the tests hold exactly.
"""

from __future__ import annotations

import torch

from ..errors import ConfigError


def canvas_references(reference_frames: list[int | None]) -> tuple[int, ...]:
    """``ref(n)`` for every region: its reference region, or n itself where there is none (no sharing)."""
    refs = tuple(n if j is None else int(j) for n, j in enumerate(reference_frames))
    for n, j in enumerate(refs):
        if not 0 <= j <= n:
            raise ConfigError(
                f"region {n + 1} cannot share the keys of region {j + 1}: a reference must be an earlier step."
            )
    return refs


def shared_image_pairs(group_ids: torch.Tensor, is_image: torch.Tensor, references: tuple[int, ...]) -> torch.Tensor:
    """[T, T] True where an image query of region n may see an image key of region ref(n) (T = N L + N P tokens)."""
    ref = torch.as_tensor(references, device=group_ids.device)[group_ids]  # [T] ref(group of each token)
    return is_image[:, None] & is_image[None, :] & (group_ids[None, :] == ref[:, None])


def group_mask_with_references(n_regions: int, references: tuple[int, ...]) -> torch.Tensor:
    """The paper's 2N x 2N group mask with region n's image group also seeing region ref(n)'s
    (for figures and tests).
    """
    i = torch.arange(2 * n_regions)
    d = (i[:, None] - i[None, :]).abs()
    mask = (d == 0) | (d == n_regions)  # SRC: C_n with I_n
    for n, j in enumerate(references):
        mask[n_regions + n, n_regions + j] = True
    return mask
