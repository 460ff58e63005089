"""Re-id ranking metrics: L2 distances (Eq. (1)), CMC, mAP and mINP, in percent.

One implementation, :func:`rank_metrics`, serves two protocols:

- the paper's **single-shot** protocol (Evaluation Protocol): LR probes against an HR gallery,
  every probe's identity in the gallery (:func:`cmc_and_map` refuses probes without one);
- the standard **query/gallery** protocol of Market-1501 and DukeMTMC-reID: many true matches per
  query; with camera ids, gallery images of the query's person taken by the query's camera are
  removed for that query (they count neither as matches nor as wrong); junk gallery images
  (``gallery_junk``, e.g. Market's id -1) are ignored for every query; distractors (ids that no
  query has, e.g. Market's 0000) are simply wrong matches. A query left without a true match is
  excluded from the averages (torchreid's and the Market devkit's practice) and counted.

Tie rule (pessimistic): a wrong gallery item at exactly the distance of a true match ranks
*before* it. Results never depend on the gallery order, and ties can only lower the scores.
True matches tied with each other take consecutive positions; their order among themselves
changes nothing.

No sort of the gallery: for each query only its few true-match distances are sorted. The j-th
true match (1-based) sits at position ``j + W_j``, W_j = wrong items at a distance <= its own, which
gives CMC (first match), AP (mean of ``j / (j + W_j)``) and INP (``n / (n + W_n)``, Ye et al. 2021)
exactly. One comparison pass over each block of ``block_size`` queries keeps the wrong items at most
as far as the query's hardest true match; only those are placed among the matches (see
:func:`_wrong_upto`). The cost is one read of the distance matrix plus work that grows with how deep
the hardest matches sit: far less than a sort for a trained model, about two sorts' worth when
features carry no identity (every query's last match deep in the gallery).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

DEFAULT_RANKS: tuple[int, ...] = (1, 5, 10, 20)
# The metric names every table, metrics.json and logger uses: ranking ones (computed here), then the SR ones
# (sing_lit.evaluation.sr_quality) the re-id models with an SR net add. Readers of result files written
# before mINP existed show it as missing ("-"), never fail (sing_lit.reporting.report).
RANK_NAMES: tuple[str, ...] = tuple(f"rank{k}" for k in DEFAULT_RANKS)
RANK_METRICS: tuple[str, ...] = (*RANK_NAMES, "mAP", "mINP")
EVAL_METRICS: tuple[str, ...] = (*RANK_METRICS, "psnr", "ssim")

# pairwise_l2's elementwise passes run on row blocks of about this size: they stay in cache (a few
# hundred KiB per thread on a many-core machine), and there are few enough blocks that the per-op
# start-up cost of the threads stays negligible.
_L2_BLOCK_BYTES = 1 << 23


def pairwise_l2(probe: Tensor, gallery: Tensor, *, float64: bool = False) -> Tensor:
    """Euclidean distances between every probe and gallery feature (Eq. (1)).

    Uses ``|p|^2 + |g|^2 - 2 p.g``: one matrix product into the output, then in-place passes over
    row blocks small enough to stay in cache. Rounding can make the square slightly negative, so
    it is clamped at 0 before the square root.

    Args:
        probe: (Nq, D) probe features.
        gallery: (Ng, D) gallery features.
        float64: accumulate (and return) in float64, for exact comparisons.

    Returns:
        (Nq, Ng) distances, in float64 if ``float64`` else in the inputs' dtype.

    Example:
        >>> pairwise_l2(torch.zeros(1, 2), torch.tensor([[3.0, 4.0]]))
        tensor([[5.]])
    """
    if probe.ndim != 2 or gallery.ndim != 2 or probe.shape[1] != gallery.shape[1]:
        raise ValueError(
            f"expected probe (Nq, D) and gallery (Ng, D) with the same D, "
            f"got {tuple(probe.shape)} and {tuple(gallery.shape)}"
        )
    if float64:
        probe, gallery = probe.double(), gallery.double()
    # -2 p.g straight from the product: scaling by a power of two is exact.
    out = torch.mm(probe * -2.0, gallery.T)
    p_sq = torch.einsum("ij,ij->i", probe, probe)[:, None]  # row dot products: no (N, D) temporary
    g_sq = torch.einsum("ij,ij->i", gallery, gallery)
    rows = max(1, _L2_BLOCK_BYTES // max(1, out.shape[1] * out.element_size()))
    for start in range(0, out.shape[0], rows):
        block = out[start : start + rows]
        block.add_(p_sq[start : start + rows]).add_(g_sq).clamp_min_(0.0).sqrt_()
    return out


def _numpy(x: Tensor | np.ndarray | Sequence, name: str) -> np.ndarray:
    if isinstance(x, Tensor):
        x = x.detach().cpu()
        return (x.float() if x.dtype == torch.bfloat16 else x).numpy()
    try:
        return np.asarray(x)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a tensor or array, got {type(x).__name__}") from err


def _inputs(dist, probe_pids, gallery_pids, probe_cams, gallery_cams, gallery_junk, block_size):
    """Validated numpy views: (dist, q_pid, g_pid, q_cam, g_cam, junk); cams and junk may be None."""
    d = _numpy(dist, "dist")
    if d.ndim != 2:
        raise ValueError(f"dist must be (Nq, Ng), got shape {tuple(d.shape)}")
    n_q, n_g = d.shape
    q_pid, g_pid = _numpy(probe_pids, "probe_pids"), _numpy(gallery_pids, "gallery_pids")
    if q_pid.shape != (n_q,) or g_pid.shape != (n_g,):
        raise ValueError(
            f"dist {tuple(d.shape)} needs probe_pids ({n_q},) and gallery_pids "
            f"({n_g},), got {tuple(q_pid.shape)} and {tuple(g_pid.shape)}"
        )
    if (probe_cams is None) != (gallery_cams is None):
        raise ValueError("give both probe_cams and gallery_cams (same-camera filtering), or neither")
    q_cam = g_cam = None
    if probe_cams is not None:
        q_cam, g_cam = _numpy(probe_cams, "probe_cams"), _numpy(gallery_cams, "gallery_cams")
        if q_cam.shape != (n_q,) or g_cam.shape != (n_g,):
            raise ValueError(
                f"dist {tuple(d.shape)} needs probe_cams ({n_q},) and gallery_cams ({n_g},), "
                f"got {tuple(q_cam.shape)} and {tuple(g_cam.shape)}"
            )
    junk = None
    if gallery_junk is not None:
        junk = _numpy(gallery_junk, "gallery_junk")
        if junk.shape != (n_g,) or junk.dtype != np.bool_:
            raise ValueError(
                f"gallery_junk must be a bool mask of shape ({n_g},) over the gallery, "
                f"got {junk.dtype} of shape {tuple(junk.shape)}"
            )
        junk = junk if junk.any() else None
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise ValueError(f"block_size must be an int >= 1, got {block_size!r}")
    if d.dtype == np.float16:
        d = d.astype(np.float32)  # exact, and float32 takes the fast path of _wrong_upto
    elif not np.issubdtype(d.dtype, np.floating):
        d = d.astype(np.float64)
    return np.ascontiguousarray(d), q_pid, g_pid, q_cam, g_cam, junk


def _wrong_upto(n: np.ndarray, match: np.ndarray, rows: np.ndarray, values: np.ndarray) -> np.ndarray:
    """W_j for every true match: wrong items of the same query at a distance <= its own.

    ``match`` holds each query's sorted true-match distances, row by row (``n`` per query);
    ``rows``/``values`` the wrong items to count (query, distance). Both ways order (query,
    distance) pairs in one 1-D array. float32: one integer key per item (query, order-preserving
    bits of the distance, then 0 for wrong and 1 for match, so that ties put wrong items first),
    one sort of all keys, and W_j = wrong items sorted before match j within its query. Other
    dtypes: (query, distance) as complex numbers, which numpy orders lexicographically, and one
    searchsorted bins each wrong item by the number of its query's matches strictly below it.
    """
    match_rows = np.repeat(np.arange(len(n)), n)
    if values.dtype == np.float32:
        def keys(r: np.ndarray, v: np.ndarray, is_match: int) -> np.ndarray:
            bits = (v + np.float32(0)).view(np.int32).astype(np.int64)  # + 0: -0.0 becomes +0.0
            order = (bits ^ ((bits >> 31) & 0x7FFFFFFF)) + (1 << 31)  # monotone in v, in [0, 2^32)
            return (r.astype(np.int64) << 33) | (order << 1) | is_match

        merged = np.concatenate([keys(match_rows, match, 1), keys(rows, values, 0)])
        merged.sort()
        wrong_before = np.flatnonzero(merged & 1) - np.arange(match.size)  # over all queries so far
        per_query = np.bincount(rows, minlength=len(n))
        return wrong_before - np.repeat(np.cumsum(per_query) - per_query, n)

    def keys(r: np.ndarray, v: np.ndarray) -> np.ndarray:
        k = np.empty(r.shape, np.complex128)
        k.real, k.imag = r, v
        return k

    bins = np.searchsorted(keys(match_rows, match), keys(rows, values), side="left")
    wrong_cum = np.cumsum(np.bincount(bins, minlength=match.size))
    return wrong_cum - np.concatenate(([0], wrong_cum))[np.repeat(np.cumsum(n) - n, n)]


def _nan_error() -> ValueError:
    return ValueError("dist contains NaN; distances must be comparable numbers")


def _per_query(d, q_pid, g_pid, q_cam, g_cam, junk, block_size):
    """Per query: n (true matches left), W_1 (wrong items ranked before the first), AP and INP (fractions)."""
    n_q, n_g = d.shape
    n_true, first = np.zeros(n_q, np.int64), np.zeros(n_q, np.int64)
    ap, inp = np.zeros(n_q), np.zeros(n_q)
    if n_q == 0 or n_g == 0:
        return n_true, first, ap, inp
    # The gallery grouped by identity: query q's same-id items are g_order[lo[q] : lo[q] + count[q]].
    g_order = np.argsort(g_pid, kind="stable")
    lo = np.searchsorted(g_pid[g_order], q_pid, "left")
    count = np.searchsorted(g_pid[g_order], q_pid, "right") - lo
    mask_buf = np.empty((min(block_size, n_q), n_g), dtype=bool)
    not_junk = None if junk is None else ~junk
    for s in range(0, n_q, block_size):
        e = min(s + block_size, n_q)
        b, db = e - s, d[s:e]
        slot = np.arange(count[s:e].max())
        present = slot < count[s:e, None]  # (b, c): same-id items of each query, padded
        same = g_order[np.minimum(lo[s:e, None] + slot, n_g - 1)]
        true = present.copy()
        if junk is not None:
            true &= ~junk[same]
        if q_cam is not None:
            true &= g_cam[same] != q_cam[s:e, None]
        match = db[np.arange(b)[:, None], same]
        match[~true] = np.inf
        if np.isnan(match).any():
            raise _nan_error()
        match.sort(axis=1)
        n = true.sum(1)
        valid = n > 0
        if not valid.all():  # queries without a match: still refuse NaN where a match would be compared
            none = np.flatnonzero(~valid)
            bad = np.isnan(db[none])
            if junk is not None:
                bad &= not_junk
            bad[np.nonzero(present[none])[0], same[none][present[none]]] = False
            if bad.any():
                raise _nan_error()
        if not valid.any():
            continue
        thr = np.full(b, -np.inf, dtype=d.dtype)
        thr[valid] = match[valid, n[valid] - 1]  # each query's hardest true match
        # Wrong items at most as far as the hardest match; "not >" keeps NaN in, to be refused below.
        cand = mask_buf[:b]
        np.greater(db, thr[:, None], out=cand)
        np.logical_not(cand, out=cand)
        if junk is not None:
            np.logical_and(cand, not_junk, out=cand)
        cand[np.nonzero(present)[0], same[present]] = False  # same id: a match, removed, or junk
        cand[~valid] = False
        flat = np.flatnonzero(cand)
        values = db.reshape(-1)[flat]
        if np.isnan(values).any():
            raise _nan_error()
        wrong_upto = _wrong_upto(n, match[slot < n[:, None]], flat // n_g, values)
        seg = np.cumsum(n) - n  # where each query's true matches start in wrong_upto
        j = np.arange(wrong_upto.size) - np.repeat(seg, n) + 1  # 1-based index among the query's matches
        position = j + wrong_upto
        heads, n_valid = seg[valid], n[valid]
        rows = s + np.flatnonzero(valid)
        n_true[rows] = n_valid
        first[rows] = wrong_upto[heads]
        ap[rows] = np.add.reduceat(j / position, heads) / n_valid
        inp[rows] = n_valid / position[heads + n_valid - 1]
    return n_true, first, ap, inp


def _check_ranks(ranks: Sequence[int]) -> None:
    if any(k < 1 for k in ranks):
        raise ValueError(f"ranks are 1-based and must be >= 1, got {tuple(ranks)}")


def rank_metrics(
    dist: Tensor,
    probe_pids: Tensor,
    gallery_pids: Tensor,
    *,
    probe_cams: Tensor | None = None,
    gallery_cams: Tensor | None = None,
    gallery_junk: Tensor | None = None,
    ranks: Sequence[int] = DEFAULT_RANKS,
    block_size: int = 128,
) -> dict[str, float | int | list[float]]:
    """CMC, mAP and mINP of a query/gallery ranking, in percent, pessimistic ties (module docstring).

    Args:
        dist: (Nq, Ng) query-to-gallery distances, smaller is more similar (any device; read on CPU).
        probe_pids: (Nq,) query identities.
        gallery_pids: (Ng,) gallery identities.
        probe_cams: (Nq,) query camera ids; with ``gallery_cams``, a query's same-id gallery items
            from its own camera are removed for that query.
        gallery_cams: (Ng,) gallery camera ids.
        gallery_junk: (Ng,) bool mask of gallery items ignored for every query.
        ranks: 1-based ranks to report as ``rank{k}``; one beyond the gallery reads the curve's end.
        block_size: queries per block (memory about block_size * Ng bytes plus the binned items).

    Returns:
        ``rank{k}``, ``mAP``, ``mINP`` (INP = true matches / position of the last one), ``cmc``
        (the full curve, length Ng, over valid queries), ``num_queries`` and ``num_valid_queries``
        (queries with a true match left; only they are averaged).

    Raises:
        ValueError: bad shapes, NaN among the compared distances, a rank < 1, one of the two
            camera arrays without the other, or no query with a true match left.

    Example:
        Query 0 (camera 0) against three gallery images of its person and one of another; the
        first is from camera 0 (removed), the last is junk (ignored):

        >>> d = torch.tensor([[0.1, 0.4, 0.3, 0.2]])
        >>> out = rank_metrics(d, torch.tensor([7]), torch.tensor([7, 7, 5, 7]),
        ...                    probe_cams=torch.tensor([0]), gallery_cams=torch.tensor([0, 1, 1, 2]),
        ...                    gallery_junk=torch.tensor([False, False, False, True]), ranks=(1, 2))
        >>> out["rank1"], out["rank2"], out["mAP"], out["mINP"], out["num_valid_queries"]
        (0.0, 100.0, 50.0, 50.0, 1)
    """
    _check_ranks(ranks)
    d, q_pid, g_pid, q_cam, g_cam, junk = _inputs(
        dist, probe_pids, gallery_pids, probe_cams, gallery_cams, gallery_junk, block_size
    )
    n_true, first, ap, inp = _per_query(d, q_pid, g_pid, q_cam, g_cam, junk, block_size)
    valid = n_true > 0
    n_valid = int(valid.sum())
    if n_valid == 0:
        raise ValueError(
            f"none of the {d.shape[0]} queries has a true match left in the gallery of {d.shape[1]} "
            "(after removing junk and same-camera images); check that query and gallery ids name the same people"
        )
    n_g = d.shape[1]
    cmc = 100.0 * np.cumsum(np.bincount(first[valid], minlength=n_g)[:n_g]) / n_valid
    out: dict[str, float | int | list[float]] = {f"rank{k}": float(cmc[min(k, n_g) - 1]) for k in ranks}
    out["mAP"] = float(100.0 * ap[valid].mean())
    out["mINP"] = float(100.0 * inp[valid].mean())
    out["cmc"] = cmc.tolist()
    out["num_queries"], out["num_valid_queries"] = int(d.shape[0]), n_valid
    return out


def cmc_and_map(
    dist: Tensor,
    probe_pids: Tensor,
    gallery_pids: Tensor,
    ranks: Sequence[int] = DEFAULT_RANKS,
    *,
    block_size: int = 128,
) -> dict[str, float | int | list[float]]:
    """The paper's single-shot evaluation: :func:`rank_metrics` for probes that all have a true match.

    No camera filtering, no junk. Ties are resolved pessimistically (module docstring).

    Args:
        dist: (Nq, Ng) probe-to-gallery distances, smaller is more similar.
        probe_pids: (Nq,) probe identities.
        gallery_pids: (Ng,) gallery identities.
        ranks: 1-based ranks to report as ``rank{k}``.
        block_size: probes processed at once (see :func:`rank_metrics`).

    Returns:
        ``{"rank1": ..., "rank5": ..., "mAP": ..., "mINP": ..., "cmc": [...], ...}`` as
        :func:`rank_metrics`.

    Raises:
        ValueError: bad shapes, NaN distances, a rank < 1, or probes without a
            true match in the gallery (the message says how many).

    Example:
        >>> d = torch.tensor([[0.1, 0.2], [0.3, 0.3]])
        >>> out = cmc_and_map(d, torch.tensor([0, 1]), torch.tensor([0, 1]), ranks=(1,))
        >>> out["rank1"], out["mAP"], out["mINP"]
        (50.0, 75.0, 75.0)
    """
    _check_ranks(ranks)
    d, q_pid, g_pid, *_ = _inputs(dist, probe_pids, gallery_pids, None, None, None, block_size)
    missing = int((~np.isin(q_pid, g_pid)).sum())
    if missing:
        raise ValueError(
            f"{missing} of {d.shape[0]} probes have no true match in the gallery; "
            "single-shot evaluation needs every probe identity in the gallery"
        )
    return rank_metrics(d, q_pid, g_pid, ranks=ranks, block_size=block_size)


def cmc_curve(
    dist: Tensor, probe_pids: Tensor, gallery_pids: Tensor, *, block_size: int = 128
) -> Tensor:
    """Full single-shot CMC curve in percent, length Ng (entry k is the rank-(k+1) rate)."""
    out = cmc_and_map(dist, probe_pids, gallery_pids, ranks=(1,), block_size=block_size)
    return torch.tensor(out["cmc"], dtype=torch.float64)
