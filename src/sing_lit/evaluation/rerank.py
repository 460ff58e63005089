"""k-reciprocal re-ranking (Zhong et al., CVPR 2017), bounded in memory by row blocks.

All images (Nq queries first, then Ng gallery images) form one set of N = Nq + Ng, with the
distance ``d(i, j)`` read from the three given parts (q-q, q-g, g-g); no N x N matrix is built.
Rows of it are assembled a block at a time, only the K nearest of each row are kept, the
k-reciprocal encodings V are sparse (indices + values, about 1.5 k1 entries a row, at most
(k1+1)(k1/2+2)), and the Jaccard distance is accumulated for a block of queries at a time from
an inverted index of the gallery's encodings. Memory beyond the inputs and the (Nq, Ng) result:
about ``32 * block_size * N`` bytes (a block of rows, or of float64 Jaccard terms), plus the sparse
encodings (0.6 GiB measured at block_size = 1024 and N = 19,281, Market-1501's size).

The method, with every choice the paper leaves open (see :func:`k_reciprocal_rerank`):

1. ``N(i, k)``: the first k images of i's ranking. The ranking is by the given distance; the image
   itself always comes first (``d(i, i) = 0``, whatever rounding left on the diagonals of q_q and
   g_g), and equal distances are ordered by index (queries before gallery images), so the result
   never depends on how a sort breaks ties.
2. ``R(i, k) = {j in N(i, k+1) : i in N(j, k+1)}``, the k-reciprocal neighbours (k+1 because the
   set holds i itself).
3. ``R*(i) = R(i, k1) ∪ R(q, h)`` for every ``q in R(i, k1)`` with
   ``|R(i, k1) ∩ R(q, h)| >= 2/3 |R(q, h)|``, with ``h = round(k1 / 2)`` (half to even,
   10 for k1 = 20). The paper's ">=" is used (the authors' code has ">"); it is tested in
   integers (``3 |∩| >= 2 |R(q, h)|``), so no rounding decides it.
4. ``V[i, j] = exp(-d~(i, j))`` for ``j in R*(i)``, else 0 (the paper's Gaussian kernel), each row
   normalised to sum 1 as in the authors' code, so that every image's neighbourhood weighs the
   same in the Jaccard distance. ``d~(i, j) = d(i, j)^2 / max_j' d(i, j')^2``: the given distances
   are plain L2 (:func:`sing_lit.evaluation.ranking.pairwise_l2`, SING's Eq. (1)), squared to make the
   kernel Gaussian in feature space, and normalised by their row's maximum over all N images (the
   authors' code does both), so the kernel does not depend on the scale of the features.
5. Local query expansion: ``V'[i] = mean of V[j] over j in N(i, k2)`` (i included).
6. Jaccard distance: ``d_J(p, g) = 1 - Σ_j min(V'[p, j], V'[g, j]) / Σ_j max(...)``
   over all N images; ``Σ max = Σ V'[p] + Σ V'[g] - Σ min`` (``min + max = a + b``), so only the
   sum of minima, non-zero where both encodings are, needs computing.
7. Final distance: ``d*(p, g) = (1 - λ) d_J(p, g) + λ d~(p, g)``, with the same
   normalised ``d~`` as in step 4 (λ = 1 ranks as the given distances do).

Encodings and the Jaccard part are computed in float64, on the CPU (inputs on a GPU are copied
there); the result has the dtype and device of ``q_g``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from sing_lit.evaluation.ranking import pairwise_l2
from sing_lit.runtime.errors import ConfigError

# (query entry, gallery entry) pairs expanded at once in the Jaccard step: 3 int64 + 2 float64 each.
_MAX_PAIRS = 1 << 22


class _Distances:
    """The (N, N) distance over queries then gallery, read on demand from its three parts."""

    def __init__(self, q_g: Tensor, q_q: Tensor, g_g: Tensor) -> None:
        self.q_g, self.q_q, self.g_g = q_g, q_q, g_g
        self.nq, self.ng = q_g.shape
        self.n = self.nq + self.ng

    def rows(self, start: int, stop: int) -> Tensor:
        """Rows ``start:stop`` (a fresh tensor), the diagonal set to 0."""
        nq, parts = self.nq, []
        if start < nq:
            a, b = start, min(stop, nq)
            parts.append(torch.cat([self.q_q[a:b], self.q_g[a:b]], dim=1))
        if stop > nq:
            a, b = max(start, nq) - nq, stop - nq
            parts.append(torch.cat([self.q_g[:, a:b].T, self.g_g[a:b]], dim=1))
        block = torch.cat(parts)  # always a copy
        own = torch.arange(stop - start)
        block[own, own + start] = 0
        return block

    def pairs(self, i: Tensor, j: Tensor) -> Tensor:
        """``d(i[t], j[t])`` for every t (0 where ``i[t] == j[t]``)."""
        nq = self.nq
        out = torch.empty(i.shape, dtype=self.q_g.dtype)
        iq, jq = i < nq, j < nq
        for mask, part, r, c in ((iq & jq, self.q_q, i, j), (iq & ~jq, self.q_g, i, j - nq),
                                 (~iq & jq, self.q_g, j, i - nq), (~iq & ~jq, self.g_g, i - nq, j - nq)):
            out[mask] = part[r[mask], c[mask]]
        out[i == j] = 0
        return out


def _nearest(block: Tensor, k: int) -> Tensor:
    """Indices of the k smallest entries of each row, by (value, column index).

    ``topk`` alone leaves ties unordered and, at the k-th value, leaves open which of the tied
    columns get in; rows where that choice arises are sorted in full (stable), the rest only reordered.
    """
    vals, idx = torch.topk(block, k, dim=1, largest=False, sorted=True)
    kth = vals[:, -1:]
    open_tie = (block == kth).sum(1) > (vals == kth).sum(1)
    idx, perm = idx.sort(dim=1)
    vals = vals.gather(1, perm)
    idx = idx.gather(1, vals.sort(dim=1, stable=True).indices)
    if open_tie.any():
        idx[open_tie] = block[open_tie].sort(dim=1, stable=True).indices[:, :k]
    return idx


def _reciprocal(nn: Tensor, block_size: int) -> Tensor:
    """``mask[i, a]``: whether i is among the neighbours of its neighbour ``nn[i, a]`` (step 2)."""
    out = torch.empty(nn.shape, dtype=torch.bool)
    for s in range(0, nn.shape[0], block_size):
        rows = torch.arange(s, min(s + block_size, nn.shape[0]))
        out[rows] = (nn[nn[rows]] == rows[:, None, None]).any(-1)
    return out


def _csr(rows: Tensor, n: int) -> Tensor:
    """Row pointers of entries sorted by row."""
    return torch.nn.functional.pad(torch.bincount(rows, minlength=n).cumsum(0), (1, 0))


def _expand_rows(ptr: Tensor, src: Tensor) -> tuple[Tensor, Tensor]:
    """For CSR row pointers ``ptr`` and rows ``src``: (which src item, entry position) of every entry."""
    lens = ptr[src + 1] - ptr[src]
    item = torch.repeat_interleave(torch.arange(src.numel()), lens)
    first = lens.cumsum(0) - lens
    return item, ptr[src][item] + torch.arange(item.numel()) - first[item]


def _encodings(dist: _Distances, nn: Tensor, k1: int, scale: Tensor, block_size: int
               ) -> tuple[Tensor, Tensor, Tensor]:
    """V of step 4 as CSR (row pointers, columns, float64 values)."""
    h = round(k1 / 2)
    nn1, nnh = nn[:, : k1 + 1], nn[:, : h + 1]
    r1, rh = _reciprocal(nn1, block_size), _reciprocal(nnh, block_size)
    rows_out, cols_out = [], []
    for s in range(0, dist.n, block_size):
        rows = torch.arange(s, min(s + block_size, dist.n))
        cand, cand_in = nn1[rows], r1[rows]  # R(i, k1) of each row: cand[cand_in]
        r1set = cand.masked_fill(~cand_in, -1)
        qh, qh_in = nnh[cand], rh[cand]  # R(q, h) of every candidate q: (B, k1+1, h+1)
        shared = ((qh[..., None] == r1set[:, None, None, :]).any(-1) & qh_in).sum(-1)
        accept = cand_in & (3 * shared >= 2 * qh_in.sum(-1))
        members = torch.cat([r1set, qh.masked_fill(~(accept[..., None] & qh_in), -1).flatten(1)], dim=1)
        members = members.sort(dim=1).values
        keep = members >= 0
        keep[:, 1:] &= members[:, 1:] != members[:, :-1]
        rows_out.append(rows[:, None].expand_as(members)[keep])
        cols_out.append(members[keep])
    rows, cols = torch.cat(rows_out), torch.cat(cols_out)
    d = dist.pairs(rows, cols).double()
    w = torch.exp(-((d / scale[rows]) ** 2))
    total = torch.zeros(dist.n, dtype=torch.float64).index_add_(0, rows, w)
    return _csr(rows, dist.n), cols, w / total[rows]


def _query_expansion(ptr: Tensor, cols: Tensor, vals: Tensor, nn: Tensor, k2: int, block_size: int
                     ) -> tuple[Tensor, Tensor, Tensor]:
    """V' of step 5 as CSR: each row the mean of the rows of its k2 nearest."""
    n = nn.shape[0]
    rows_out, cols_out, vals_out = [], [], []
    for s in range(0, n, block_size):
        rows = torch.arange(s, min(s + block_size, n))
        src = nn[rows, :k2].reshape(-1)
        item, pos = _expand_rows(ptr, src)
        key = rows.repeat_interleave(k2)[item] * n + cols[pos]
        key, inverse = torch.unique(key, sorted=True, return_inverse=True)
        summed = torch.zeros(key.numel(), dtype=torch.float64).index_add_(0, inverse, vals[pos])
        rows_out.append(key // n)
        cols_out.append(key % n)
        vals_out.append(summed / k2)
    rows = torch.cat(rows_out)
    return _csr(rows, n), torch.cat(cols_out), torch.cat(vals_out)


def _check(q_g: Tensor, q_q: Tensor, g_g: Tensor, k1: int, k2: int, lambda_value: float, block_size: int) -> None:
    check_settings(k1, k2, lambda_value, block_size)
    for name, x in (("q_g", q_g), ("q_q", q_q), ("g_g", g_g)):
        if not isinstance(x, Tensor) or x.ndim != 2 or not x.is_floating_point():
            raise ValueError(f"{name} must be a 2-D floating-point distance tensor, got "
                             f"{type(x).__name__} {tuple(getattr(x, 'shape', ()))}")
    nq, ng = q_g.shape
    if nq == 0 or ng == 0 or q_q.shape != (nq, nq) or g_g.shape != (ng, ng):
        raise ValueError(f"expected q_g (Nq, Ng), q_q (Nq, Nq) and g_g (Ng, Ng) with Nq, Ng >= 1, got "
                         f"{tuple(q_g.shape)}, {tuple(q_q.shape)} and {tuple(g_g.shape)}")
    if q_q.dtype != q_g.dtype or g_g.dtype != q_g.dtype:
        raise ValueError(f"q_g, q_q and g_g must share one dtype, got {q_g.dtype}, {q_q.dtype}, {g_g.dtype}")
    for name, x in (("q_g", q_g), ("q_q", q_q), ("g_g", g_g)):
        low, high = float(x.min()), float(x.max())  # NaN fails the first test, inf the second
        if not low >= 0 or not math.isfinite(high):
            raise ValueError(f"{name} must hold finite distances >= 0, got values in [{low}, {high}]")
    if k1 + 1 > nq + ng or k2 > nq + ng:
        raise ConfigError(f"re-ranking with k1={k1}, k2={k2} needs at least {max(k1 + 1, k2)} images (queries + "
                          f"gallery), got {nq} + {ng}; lower eval.rerank_k1 / eval.rerank_k2")


def check_settings(k1: int, k2: int, lambda_value: float, block_size: int = 1024) -> None:
    """Refuse settings that cannot work, naming the config key (``eval.rerank_*``)."""
    for name, key, v in (("k1", "eval.rerank_k1", k1), ("k2", "eval.rerank_k2", k2), ("block_size", "", block_size)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(f"{name}{f' ({key})' if key else ''} must be an integer >= 1, got {v!r}")
    if isinstance(lambda_value, bool) or not isinstance(lambda_value, (int, float)) or not 0 <= lambda_value <= 1:
        raise ConfigError(f"lambda_value (eval.rerank_lambda) must be a number in [0, 1], got {lambda_value!r}")


def k_reciprocal_rerank(
    q_g: Tensor,
    q_q: Tensor,
    g_g: Tensor,
    *,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    block_size: int = 1024,
) -> Tensor:
    """Re-ranked query-gallery distances ``(1 - λ) d_J + λ d~`` of Zhong et al. (CVPR 2017).

    The steps and the choices made where the paper leaves them open are listed in the module
    docstring: rankings by the given distances with the image itself first and ties by index,
    the paper's ``>= 2/3`` expansion rule with ``round(k1/2)``, the Gaussian kernel on squared
    distances normalised by their row's maximum, encodings normalised to sum 1, query expansion
    over the k2 nearest including the image, and ``λ`` weighting the same normalised squared
    distance. The defaults are the paper's (k1 = 20, k2 = 6, λ = 0.3).

    Args:
        q_g: (Nq, Ng) query-gallery distances (plain L2, or any non-negative distance, e.g. fused).
        q_q: (Nq, Nq) query-query distances.
        g_g: (Ng, Ng) gallery-gallery distances.
        k1: neighbourhood size of the k-reciprocal sets.
        k2: neighbours averaged by the local query expansion (1: none).
        lambda_value: weight of the original distance in the final one, in [0, 1].
        block_size: rows (images, then queries) processed at once; does not change the result.

    Returns:
        (Nq, Ng) distances in the dtype and on the device of ``q_g``, smaller is more similar.

    Raises:
        ValueError: shapes that do not fit, mixed dtypes, negative or non-finite distances.
        ConfigError: k1, k2, lambda_value or block_size out of range (a ``ValueError`` too).

    Example:
        >>> q, g = torch.randn(4, 8), torch.randn(30, 8)
        >>> d = k_reciprocal_rerank(pairwise_l2(q, g), pairwise_l2(q, q), pairwise_l2(g, g), k1=5, k2=2)
        >>> d.shape
        torch.Size([4, 30])
    """
    _check(q_g, q_q, g_g, k1, k2, lambda_value, block_size)
    device = q_g.device
    dist = _Distances(q_g.cpu(), q_q.cpu(), g_g.cpu())
    nq, ng, n = dist.nq, dist.ng, dist.n
    k = max(k1 + 1, k2)
    nn = torch.empty(n, k, dtype=torch.int64)
    row_max = torch.empty(n, dtype=torch.float64)
    for s in range(0, n, block_size):
        e = min(s + block_size, n)
        block = dist.rows(s, e)
        row_max[s:e] = block.max(dim=1).values.double()
        block[torch.arange(e - s), torch.arange(s, e)] = -1  # the image itself first, even among zeros
        nn[s:e] = _nearest(block, k)
        del block
    scale = torch.where(row_max > 0, row_max, torch.ones_like(row_max))  # an all-zero row: d~ = 0

    ptr, cols, vals = _encodings(dist, nn, k1, scale, block_size)
    if k2 > 1:
        ptr, cols, vals = _query_expansion(ptr, cols, vals, nn, k2, block_size)
    rows = torch.repeat_interleave(torch.arange(n), ptr[1:] - ptr[:-1])
    mass = torch.zeros(n, dtype=torch.float64).index_add_(0, rows, vals)

    # Inverted index of the gallery rows' encodings: for each column j, the gallery images g with V'[g, j] > 0.
    in_gallery = rows >= nq
    g_rows, g_cols, g_vals = rows[in_gallery] - nq, cols[in_gallery], vals[in_gallery]
    order = torch.argsort(g_cols * ng + g_rows)
    g_rows, g_vals = g_rows[order], g_vals[order]
    g_ptr = _csr(g_cols[order], n)

    out = torch.empty(nq, ng, dtype=q_g.dtype)
    for s in range(0, nq, block_size):
        e = min(s + block_size, nq)
        shared = torch.zeros((e - s) * ng, dtype=torch.float64)  # Σ_j min(V'[p, j], V'[g, j])
        lo, hi = int(ptr[s]), int(ptr[e])
        q_rows, q_cols, q_vals = rows[lo:hi] - s, cols[lo:hi], vals[lo:hi]
        pairs = (g_ptr[q_cols + 1] - g_ptr[q_cols]).cumsum(0)
        a = 0
        while a < q_cols.numel():  # chunks of query entries that expand to at most _MAX_PAIRS pairs
            base = int(pairs[a - 1]) if a else 0
            b = max(a + 1, int(torch.searchsorted(pairs, torch.tensor([base + _MAX_PAIRS]), right=True)))
            item, pos = _expand_rows(g_ptr, q_cols[a:b])
            shared.index_add_(0, q_rows[a:b][item] * ng + g_rows[pos],
                              torch.minimum(q_vals[a:b][item], g_vals[pos]))
            a = b
        shared = shared.view(e - s, ng)
        union = (mass[s:e, None] + mass[None, nq:]).sub_(shared)  # Σ_j max(V'[p, j], V'[g, j])
        final = shared.div_(union).neg_().add_(1).mul_(1 - lambda_value)  # (1 - λ) d_J, in place
        final.add_((dist.q_g[s:e].double() / scale[s:e, None]).square_(), alpha=lambda_value)
        out[s:e] = final
        del shared, union, final
    return out.to(device)


@dataclass(frozen=True)
class Rerank:
    """Re-ranking settings; :meth:`distances` turns probe and gallery features into re-ranked distances."""

    k1: int = 20
    k2: int = 6
    lambda_value: float = 0.3

    def __post_init__(self) -> None:
        check_settings(self.k1, self.k2, self.lambda_value)

    def distances(self, probe: Tensor, gallery: Tensor, *, where: str = "") -> Tensor:
        """Re-ranked (Nq, Ng) distances from the L2 distances (SING's Eq. (1)) of the features.

        ``where`` (e.g. ``"val set of x2"``) prefixes a too-small-set error, so the user knows which set.
        """
        try:
            return k_reciprocal_rerank(pairwise_l2(probe, gallery), pairwise_l2(probe, probe),
                                       pairwise_l2(gallery, gallery), k1=self.k1, k2=self.k2,
                                       lambda_value=self.lambda_value)
        except ConfigError as err:
            if not where:
                raise
            raise ConfigError(f"the {where}: {err}") from None

    def describe(self) -> dict[str, Any]:
        """What metrics files record about it."""
        return {"method": "k-reciprocal (Zhong et al. 2017)", "k1": self.k1, "k2": self.k2,
                "lambda": float(self.lambda_value)}

    def label(self) -> str:
        return f"k-reciprocal re-ranking (k1={self.k1}, k2={self.k2}, lambda={self.lambda_value})"


def rerank_from_config(eval_cfg: Mapping[str, Any] | None) -> Rerank | None:
    """The ``eval`` config node's re-ranking (``rerank``, ``rerank_k1``, ``rerank_k2``, ``rerank_lambda``),
    or None when it is off or the node is absent (configs written before it existed)."""
    if eval_cfg is None:
        return None
    on = eval_cfg.get("rerank", False)
    if not isinstance(on, bool):
        raise ConfigError(f"eval.rerank must be true or false, got {on!r}")
    if not on:
        return None
    return Rerank(k1=eval_cfg.get("rerank_k1", 20), k2=eval_cfg.get("rerank_k2", 6),
                  lambda_value=eval_cfg.get("rerank_lambda", 0.3))
