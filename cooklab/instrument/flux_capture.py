"""What ``cooklab.trace`` computes from one Flux attention call (CookAnything).

``Trace.observe_regional`` receives, from ``RegionalFluxAttnProcessor``'s hook point, the
joint sequence's ``query, key [B, S, H, D]`` after RoPE, laid out as

    [ C_base (L_b) | C_1 (L) | ... | C_N (L) | I_1 (P) | ... | I_N (P) ]      S = layout.total

and, where SRC ran in this layer and step, the ``RegionalOutput`` (None: full attention).

**Text -> image attention.** For an image query ``p`` and step ``n``, the attention mass on
step n's real text tokens ``T_n`` (padding excluded, EOS included), in the attention the
layer actually computed:

    m[n, p] = mean_heads  sum_{k in T_n} A[p, k],      A = softmax(q k^T / sqrt(D)) over the keys p attends to

A sum of attention weights against an indicator is an attention *output*: with a value
``v[k] = 1 if k in T_n else 0``, ``sum_k A[p, k] v[k] = m[n, p]`` per head. So the mass is one
attention call with narrow indicator values, which fused SDPA kernels compute without ever
holding ``A`` (a kernel that does hold it gets blocks of ``chunk_elements`` scores):

* full attention (SRC off in this layer or step): SDPA of the image queries over the whole
  joint sequence, one value column per step;
* SRC: per region n, SDPA of I_n's queries over the keys the 2N x 2N group mask lets them
  see, ``[C_n, I_n]`` (``image_attention="global"``: ``[C_n, I_1..I_N]``), one value column
  marking C_n's real tokens. Step n's text is the only text they see, so their mass on
  every other step is exactly 0. With ``"region"`` that is ``L + P`` scores per query
  instead of the ``N L + N P`` (most of them masked) of the whole regional sequence.

Everything runs in float32, like the stored maps; the value columns are padded to 8, the
16-byte alignment fused SDPA kernels need.

**Per-token attention** (``text_key_mass``, capture ``"text_token_attention"``): the same
indicator-value attention with one value column per measured set of text keys -- one token per
column for per-token maps, a text's content tokens for its word mass -- so step n's per-token
maps summed over its real tokens are exactly ``m[n]``. Under SRC a column of base-prompt tokens
is read from the base branch (all image queries over ``[C_base, I_1..I_N]``).

**ConceptAttention scores** (``concept_scores``, capture ``"concept_attention"``): the dot
product of every image token's attention output with a text token's, ``o_x . o_c`` (Helbling et
al. 2025), read from the output the layer computed anyway.

**Base contribution** (Eq. 9, ``z = alpha z_base + (1 - alpha) z_regional``): how far the base
branch moves each image token's output from the regional branch's, relative to the output,

    mean over image tokens and heads of  |alpha (z_base - z_regional)| / |z|
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from ..cookanything.regional import RegionalOutput, RegionLayout

VALUE_COLUMNS = 8  # indicator values are padded to this width (16-byte aligned in float32)


def _padded(columns: int) -> int:
    return -(-columns // VALUE_COLUMNS) * VALUE_COLUMNS


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, chunk_elements: int) -> torch.Tensor:
    """SDPA over blocks of queries, at most ``chunk_elements`` scores each.

    q [..., Q, D], k [..., K, D], v [..., K, W] -> [..., Q, W].
    """
    chunk = max(1, chunk_elements // (q.shape[:-2].numel() * k.shape[-2]))
    return torch.cat(
        [F.scaled_dot_product_attention(q[..., s : s + chunk, :], k, v) for s in range(0, q.shape[-2], chunk)], dim=-2
    )


def text_image_mass(
    query: torch.Tensor,
    key: torch.Tensor,
    layout: RegionLayout,
    image_attention: str,
    regional: bool,
    token_counts: list[int],
    chunk_elements: int,
    references: tuple[int, ...] | None = None,
) -> torch.Tensor:
    """[N steps, N regions, rows, cols] mass of every image query on each step's real text (first batch element).

    query, key [B, S, H, D]; regional: whether the layer ran SRC (else full attention);
    token_counts: real tokens of each step's text, EOS included; chunk_elements bounds the
    scores of one SDPA call, should a kernel materialise them (fused kernels do not);
    references: ref(n) per region where cross-region K/V sharing ran (region n also saw I_ref(n)).
    """
    n, L, P, lb = layout.n_regions, layout.step_text_len, layout.region_tokens, layout.base_text_len
    q, k = query[:1].float(), key[:1].float()  # [1, S, H, D]
    heads = q.shape[2]
    real = torch.zeros(n, L, dtype=q.dtype, device=q.device)  # [N, L] 1 on each step's real (non-padding) tokens
    for i, c in enumerate(token_counts):
        real[i, : min(c, L)] = 1
    if regional:  # SRC's group mask: region n's queries see C_n and I_n ("global": C_n and every I_m)
        text = k[0, lb : lb + n * L].reshape(n, L, heads, -1)  # [N, L, H, D] C_n
        image = k[0, layout.text_len :].reshape(n, P, heads, -1)  # [N, P, H, D] I_n
        if image_attention == "global":
            image = image.reshape(1, n * P, heads, -1).expand(n, -1, -1, -1)  # [N, N P, H, D] every I_m
        qn = q[0, layout.text_len :].reshape(n, P, heads, -1).transpose(1, 2)  # [N, H, P, D] region n's image queries
        if references is not None and any(
            j != i for i, j in enumerate(references)
        ):  # [C_n, I_n, I_ref(n)], region by region
            own = torch.stack(
                [
                    _own_text_mass(
                        qn[i], torch.cat([text[i], image[i]] + ([image[j]] if j != i else [])), real[i], chunk_elements
                    )
                    for i, j in enumerate(references)
                ]
            )  # [N, P]
        else:
            keys = torch.cat([text, image], dim=1).transpose(1, 2)  # [N, H, L + P (or L + N P), D]
            v = torch.zeros(n, 1, keys.shape[2], VALUE_COLUMNS, dtype=q.dtype, device=q.device)  # [N, 1, K, 8]
            v[:, 0, :L, 0] = real  # column 0: C_n's real tokens
            own = _attend(qn, keys, v.expand(-1, heads, -1, -1), chunk_elements)[..., 0].mean(
                1
            )  # [N, P] mass on step n
        mass = torch.zeros(n, n, P, dtype=q.dtype, device=q.device)
        mass[range(n), range(n)] = own  # step n's text is masked out of every other region: exactly 0 there
    else:
        v = torch.zeros(layout.total, _padded(n), dtype=q.dtype, device=q.device)  # [S, W]
        v[lb : lb + n * L, :n] = torch.block_diag(*real[:, :, None])  # column n: step n's real tokens
        qi = q[0, layout.text_len :].transpose(0, 1)  # [H, N P, D] image queries
        kt = k[0].transpose(0, 1)  # [H, S, D]
        out = _attend(qi, kt, v.expand(heads, -1, -1), chunk_elements)  # [H, N P, W]
        mass = out.mean(0)[:, :n].T.reshape(n, n, P)  # [N steps, N regions, P]
    return mass.reshape(n, n, layout.rows, layout.cols)


def _own_text_mass(q: torch.Tensor, keys: torch.Tensor, real: torch.Tensor, chunk_elements: int) -> torch.Tensor:
    """[P] head-mean attention mass of one region's queries on its text's real tokens.

    q [H, P, D]: the region's queries; keys [K, H, D], whose first L are the region's text;
    ``real`` [L]: which of those L text tokens are real (not padding).
    """
    heads = q.shape[0]
    v = torch.zeros(1, keys.shape[0], VALUE_COLUMNS, dtype=q.dtype, device=q.device)  # [1, K, 8]
    v[0, : real.numel(), 0] = real
    return _attend(q, keys.transpose(0, 1), v.expand(heads, -1, -1), chunk_elements)[..., 0].mean(0)


def base_contribution(alpha: float, result: RegionalOutput, text_len: int) -> float:
    """Mean over image tokens and heads of |alpha (z_base - z_regional)| / |z| (Eq. 9's base share)."""
    diff = (alpha * (result.image_base - result.image_regional)).float().norm(dim=-1)  # [B, N P, H]
    out = result.out[:, text_len:].float().norm(dim=-1).clamp_min(1e-12)  # [B, N P, H]
    return float((diff / out).mean())


def text_key_mass(
    query: torch.Tensor,
    key: torch.Tensor,
    layout: RegionLayout,
    image_attention: str,
    regional: bool,
    columns: torch.Tensor,
    chunk_elements: int,
    references: tuple[int, ...] | None = None,
) -> torch.Tensor:
    """[W, N regions, rows, cols] head-mean mass of every image query on each column's text keys (first batch element).

    ``columns`` [text_len, W]: column w marks (1) the text keys it measures, at their
    positions in ``[C_base | C_1 .. C_N]``: one token (a per-token map, capture
    ``"text_token_attention"``) or a set (a text's content tokens). A column marks either base
    tokens or step tokens, never both. The mass is, as in ``text_image_mass``, an attention
    output with the columns as values:

    * full attention: SDPA of all image queries over the whole joint sequence;
    * SRC: region n's queries over the keys the group mask lets them see (``[C_n, I_n]``,
      ``"global"``: ``[C_n, I_1..I_N]``, with ``references`` also ``I_ref(n)``), values = the
      columns' rows of C_n (a column marking another step's tokens gets exactly 0 there); and
      the base branch, all image queries over ``[C_base, I_1..I_N]`` (full attention), values =
      the columns' rows of C_base. Each column is non-zero in one branch only; the two add.
    """
    n, L, P, lb, t = (
        layout.n_regions,
        layout.step_text_len,
        layout.region_tokens,
        layout.base_text_len,
        layout.text_len,
    )
    q, k = query[:1].float(), key[:1].float()  # [1, S, H, D]
    heads, width = q.shape[2], columns.shape[1]
    cols = torch.zeros(t, _padded(width), dtype=q.dtype, device=q.device)  # [text_len, W'] values of the text keys
    cols[:, :width] = columns.to(q.device, q.dtype)
    qi = q[0, t:].transpose(0, 1)  # [H, N P, D] every image query

    def mass(queries, keys, text_values):  # queries [H, Q, D], keys [K, H, D] (text first) -> [Q, W]
        v = torch.zeros(keys.shape[0], cols.shape[1], dtype=q.dtype, device=q.device)  # [K, W']
        v[: text_values.shape[0]] = text_values  # image keys: 0
        return _attend(queries, keys.transpose(0, 1), v.expand(heads, -1, -1), chunk_elements).mean(0)[:, :width]

    if not regional:
        return mass(qi, k[0], cols).T.reshape(width, n, layout.rows, layout.cols)
    image = k[0, t:].reshape(n, P, heads, -1)  # [N, P, H, D] I_n
    out = torch.cat(
        [
            mass(
                qi[:, i * P : (i + 1) * P],
                torch.cat(
                    [k[0, lb + i * L : lb + (i + 1) * L]]
                    + ([image.reshape(n * P, heads, -1)] if image_attention == "global" else [image[i]])
                    + ([image[j]] if references is not None and j != i and image_attention != "global" else [])
                ),
                cols[lb + i * L : lb + (i + 1) * L],
            )
            for i, j in enumerate(references if references is not None else range(n))
        ]
    )  # [N P, W] region n over C_n, I_n (and I_ref(n))
    if lb:  # the base branch: [C_base, I_1..I_N], full attention
        out = out + mass(qi, torch.cat([k[0, :lb], k[0, t:]]), cols[:lb])
    return out.T.reshape(width, n, layout.rows, layout.cols)


def concept_scores(output: torch.Tensor, layout: RegionLayout, positions: list[int]) -> torch.Tensor:
    """[K, N regions, rows, cols] ConceptAttention's output-space scores ``o_x . o_c`` (first batch element).

    output [B, S, H, D]: the layer's attention output over the joint sequence (before the
    output projection; under SRC the blended one, Eq. 9); positions: joint-sequence positions of
    the K text tokens used as concepts. ``o_x`` is an image token's output, ``o_c`` a concept
    token's, both with the heads concatenated (H D values), as Helbling et al. (2025) dot them.
    """
    o = output[0].float().flatten(1)  # [S, H D]
    scores = o[layout.text_len :] @ o[positions].T  # [N P, K]
    return scores.T.reshape(len(positions), layout.n_regions, layout.rows, layout.cols)
