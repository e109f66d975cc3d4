"""What ``cooklab.trace`` computes from one U-Net attention call (Recipe Diffusion).

``Trace.observe_attention`` receives, from the layer's hook point, the tensors the layer's
SDPA call consumes, and keeps the conditional half of the CFG batch:

    q [h, P, d]        image queries (after ``norm_q``)
    k [h, K, d]        K = n_ref + P in self-attention (reference frame's keys first, Eq. 1)
                       K = T (77 CLIP tokens) in cross-attention

It recomputes the head-mean attention weights explicitly,

    A = mean_heads softmax(q k^T / sqrt(d))        [P, K]

a block of ``chunk_elements`` scores at a time (whole grid rows of queries), and reduces each
block right away, so no ``[h, P, K]`` tensor is ever held:

* reference share  ``sum_{k < n_ref} A[p, k]``  -> ``[rows, cols]`` (Eq. 3's mass on K_ref);
* self-attention   ``A`` with queries averaged and keys summed per pooled cell
                   -> ``[Gh, Gw, S, Gh, Gw]``, S = 2 (reference, own) or 1;
* cross-attention  ``A[:, t]`` for the kept prompt tokens t -> ``[K, rows, cols]`` (K = T_prompt
                   unless the trace keeps only some words' tokens), and the mass on the prompt's
                   words ``sum_{t not start/end} A[:, t]`` -> ``[rows, cols]``.

Pooling to the stored size happens on the compute device; ``Trace`` moves the result to the CPU.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch

from .pooling import pool


def attention_rows(q: torch.Tensor, k: torch.Tensor, cols: int, chunk_elements: int) -> Iterator[torch.Tensor]:
    """Head-mean ``softmax(q k^T / sqrt(d))`` in blocks of whole grid rows of queries.

    Yields [c, K] blocks with c % cols == 0.
    """
    heads, n_q, d = q.shape
    chunk = max(cols, (chunk_elements // (heads * k.shape[1])) // cols * cols)
    scale = 1.0 / math.sqrt(d)
    for s in range(0, n_q, chunk):
        yield torch.softmax(q[:, s : s + chunk] @ k.transpose(1, 2) * scale, dim=-1).mean(0)  # [c, K]


def cross_attention_map(
    q, k, columns: list[int], content: list[int], rows: int, cols: int, size: tuple[int, int], chunk_elements: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """([K, size] attention of every image query to each prompt token in ``columns``, [size] its mass on ``content``).

    columns: the K token positions kept (all the prompt's tokens, or the words a trace was
    asked for); content: the positions of the prompt's words (start/end tokens left out),
    whose summed attention ``sum_{t in content} A[p, t]`` a word map is renormalised by.
    """
    kept, mass = [], []
    for block in attention_rows(q, k, cols, chunk_elements):  # [c, T]
        kept.append(block[:, columns])  # [c, K]
        mass.append(block[:, content].sum(-1))  # [c]
    a = torch.cat(kept).T.reshape(len(columns), rows, cols)  # [K, rows, cols]
    return pool(a, size), pool(torch.cat(mass).reshape(rows, cols), size)


def self_attention_maps(
    q,
    k,
    n_ref: int,
    rows: int,
    cols: int,
    share_size: tuple[int, int],
    grid_size: tuple[int, int] | None,
    chunk_elements: int,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(reference share [share_size], pooled self-attention [Gh, Gw, S, Gh, Gw] or None when ``grid_size`` is None).

    The pooled map keeps key *mass*: each block of keys is summed (average-pool times the
    block area), so every pooled query row still sums to 1 over ``S, Gh, Gw``.
    """
    parts = 2 if n_ref else 1  # S: (reference | own) key grids
    share, pooled = [], []
    for a in attention_rows(q, k, cols, chunk_elements):  # [c, n_ref + P]
        share.append(a[:, :n_ref].sum(-1))  # [c]
        if grid_size is not None:
            a = a.reshape(-1, parts, rows, cols)  # keys laid on (ref | own) grids
            pooled.append(pool(a, grid_size) * (rows * cols / (grid_size[0] * grid_size[1])))  # key mass kept
    share = pool(torch.cat(share).reshape(rows, cols), share_size)
    if grid_size is None:
        return share, None
    gh, gw = grid_size
    a = torch.cat(pooled).reshape(rows, cols, parts * gh * gw).permute(2, 0, 1)  # [S Gh Gw, rows, cols]
    a = pool(a, grid_size).permute(1, 2, 0).reshape(gh, gw, parts, gh, gw)  # queries averaged: [Gh, Gw, S, Gh, Gw]
    return share, a
