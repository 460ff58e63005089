"""Single-shot re-id ranking metrics: L2 distances, CMC and mAP.

The paper (Evaluation Protocol) reports the Cumulative Match Characteristic of
LR probes against an HR gallery under the L2 metric of Eq. (1). Everything
here is vectorised over probes; only blocks of ``block_size`` probes are
looped over, to bound memory on large (e.g. 5,000 x 5,000) problems.

Tie rule (pessimistic): a wrong gallery item at exactly the same distance as a
true match is ranked *before* that match. Results therefore never depend on the
gallery order, and ties can only lower the scores. mAP uses the same order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

DEFAULT_RANKS: tuple[int, ...] = (1, 5, 10, 20)
# The metric names every table, metrics.json and logger uses: ranking ones (computed here), then the SR ones
# (sing_lit.evaluation.sr_quality) the re-id models with an SR net add.
RANK_NAMES: tuple[str, ...] = tuple(f"rank{k}" for k in DEFAULT_RANKS)
RANK_METRICS: tuple[str, ...] = (*RANK_NAMES, "mAP")
EVAL_METRICS: tuple[str, ...] = (*RANK_METRICS, "psnr", "ssim")


def pairwise_l2(probe: Tensor, gallery: Tensor, *, float64: bool = False) -> Tensor:
    """Euclidean distances between every probe and gallery feature (Eq. (1)).

    Uses ``|p|^2 + |g|^2 - 2 p.g``; rounding can make that slightly negative,
    so it is clamped at 0 before the square root.

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
    sq = (probe * probe).sum(1, keepdim=True) + (gallery * gallery).sum(1)[None, :]
    sq = torch.addmm(sq, probe, gallery.T, alpha=-2.0)
    return sq.clamp_min_(0.0).sqrt_()


def _check(dist: Tensor, probe_pids: Tensor, gallery_pids: Tensor) -> None:
    if dist.ndim != 2:
        raise ValueError(f"dist must be (Nq, Ng), got shape {tuple(dist.shape)}")
    if probe_pids.shape != (dist.shape[0],) or gallery_pids.shape != (dist.shape[1],):
        raise ValueError(
            f"dist {tuple(dist.shape)} needs probe_pids ({dist.shape[0]},) and gallery_pids "
            f"({dist.shape[1]},), got {tuple(probe_pids.shape)} and {tuple(gallery_pids.shape)}"
        )
    if torch.isnan(dist).any():
        raise ValueError("dist contains NaN; distances must be comparable numbers")


def _first_match_and_ap(dist: Tensor, match: Tensor, block_size: int) -> tuple[Tensor, Tensor]:
    """0-based position of the first true match and AP per probe, pessimistic ties.

    One sort per block: after sorting by distance, the j-th true match (1-based)
    sits at 1-based position ``j + W``, where W counts the wrong items at a
    distance <= its own (found with ``searchsorted(right=True)`` on the sorted
    row). Tied true matches share W and take consecutive positions, so their
    order among themselves does not change the AP.
    """
    first, ap = [], []
    for start in range(0, dist.shape[0], block_size):
        d = dist[start : start + block_size]
        d_sorted, order = d.sort(dim=1)
        m_sorted = match[start : start + block_size].gather(1, order)
        # Index one past the last item tied with each position's distance.
        tie_end = torch.searchsorted(d_sorted, d_sorted, right=True)
        wrong_cum = torch.cumsum(~m_sorted, dim=1)
        wrong_upto = torch.nn.functional.pad(wrong_cum, (1, 0)).gather(1, tie_end)
        j = torch.cumsum(m_sorted, dim=1)  # 1-based index among true matches
        precision = j.double() / (j + wrong_upto).double()
        n_pos = m_sorted.sum(1)
        ap.append((precision * m_sorted).sum(1) / n_pos)
        # argmax returns the first maximum, i.e. the first true match in sort order.
        first.append(wrong_upto.gather(1, m_sorted.byte().argmax(1, keepdim=True))[:, 0])
    return torch.cat(first), torch.cat(ap)


def cmc_curve(
    dist: Tensor, probe_pids: Tensor, gallery_pids: Tensor, *, block_size: int = 1024
) -> Tensor:
    """Full CMC curve in percent, length Ng (entry k is the rank-(k+1) rate)."""
    return _evaluate(dist, probe_pids, gallery_pids, block_size)[0]


def _evaluate(
    dist: Tensor, probe_pids: Tensor, gallery_pids: Tensor, block_size: int
) -> tuple[Tensor, Tensor]:
    _check(dist, probe_pids, gallery_pids)
    match = probe_pids.to(gallery_pids.device)[:, None] == gallery_pids[None, :]
    missing = int((~match.any(1)).sum())
    if missing:
        raise ValueError(
            f"{missing} of {dist.shape[0]} probes have no true match in the gallery; "
            "single-shot evaluation needs every probe identity in the gallery"
        )
    first, ap = _first_match_and_ap(dist, match, block_size)
    n_gallery = dist.shape[1]
    hits = torch.bincount(first, minlength=n_gallery).cumsum(0)
    return 100.0 * hits.double() / dist.shape[0], 100.0 * ap.mean()


def cmc_and_map(
    dist: Tensor,
    probe_pids: Tensor,
    gallery_pids: Tensor,
    ranks: Sequence[int] = DEFAULT_RANKS,
    *,
    block_size: int = 1024,
) -> dict[str, float | list[float]]:
    """CMC at the given ranks, mAP and the full CMC curve, all in percent.

    Ties are resolved pessimistically (see the module docstring). A rank
    beyond the gallery size reads the last point of the curve (100%).

    Args:
        dist: (Nq, Ng) probe-to-gallery distances, smaller is more similar.
        probe_pids: (Nq,) probe identities.
        gallery_pids: (Ng,) gallery identities.
        ranks: 1-based ranks to report as ``rank{k}``.
        block_size: probes processed at once (memory ~ block_size * Ng * 30 bytes).

    Returns:
        ``{"rank1": ..., "rank5": ..., "mAP": ..., "cmc": [...]}``.

    Raises:
        ValueError: bad shapes, NaN distances, a rank < 1, or probes without a
            true match in the gallery (the message says how many).

    Example:
        >>> d = torch.tensor([[0.1, 0.2], [0.3, 0.3]])
        >>> out = cmc_and_map(d, torch.tensor([0, 1]), torch.tensor([0, 1]), ranks=(1,))
        >>> out["rank1"], out["mAP"]
        (50.0, 75.0)
    """
    if any(k < 1 for k in ranks):
        raise ValueError(f"ranks are 1-based and must be >= 1, got {tuple(ranks)}")
    cmc, m_ap = _evaluate(dist, probe_pids, gallery_pids, block_size)
    out: dict[str, float | list[float]] = {
        f"rank{k}": float(cmc[min(k, cmc.numel()) - 1]) for k in ranks
    }
    out["mAP"] = float(m_ap)
    out["cmc"] = cmc.tolist()
    return out


# ---- PLACEHOLDER: replaced at merge by the fast version of branch `eval` (same signature) ----------------------
def rank_metrics(
    dist: Tensor,
    probe_pids: Tensor,
    gallery_pids: Tensor,
    *,
    probe_cams: Tensor | None = None,
    gallery_cams: Tensor | None = None,
    gallery_junk: Tensor | None = None,
    ranks: Sequence[int] = DEFAULT_RANKS,
) -> dict[str, float | int | list[float]]:
    """Query/gallery ranking metrics: CMC, mAP and mINP in percent, many true matches per query.

    PLACEHOLDER: a simple brute-force version (one query at a time), to be replaced when branch ``eval``
    (the fast version, same signature and results) is merged.

    For each query, the gallery items flagged in ``gallery_junk`` and, when cameras are given, the items of
    the query's own person seen by the query's own camera are removed from its ranking (the Market-1501
    benchmark's rule). A query with no true match left is excluded from every metric and not counted in
    ``num_valid_queries``. Ties are pessimistic (module docstring): the j-th true match (by distance) sits
    at position ``j + W_j``, W_j the wrong items at a distance <= its own. CMC counts the first match's
    position, AP = mean_j j / (j + W_j), INP = |G| / R_hard with R_hard the last match's position
    (Ye et al., TPAMI 2021).

    Returns:
        ``{"rank{k}", "mAP", "mINP", "cmc" (length Ng), "num_valid_queries", "num_queries"}``.

    Raises:
        ValueError: bad shapes, NaN distances, a rank < 1, cameras for one side only, or no valid query.
    """
    if any(k < 1 for k in ranks):
        raise ValueError(f"ranks are 1-based and must be >= 1, got {tuple(ranks)}")
    _check(dist, probe_pids, gallery_pids)
    if (probe_cams is None) != (gallery_cams is None):
        raise ValueError("give probe_cams and gallery_cams together (camera-aware filtering), or neither")
    n_q, n_g = dist.shape
    d = dist.detach().double().cpu().numpy()
    qp, gp = probe_pids.cpu().numpy(), gallery_pids.cpu().numpy()
    keep_all = np.ones(n_g, bool) if gallery_junk is None else ~gallery_junk.cpu().numpy().astype(bool)
    if keep_all.shape != (n_g,):
        raise ValueError(f"gallery_junk must be ({n_g},), got {tuple(gallery_junk.shape)}")
    cams = None if probe_cams is None else (probe_cams.cpu().numpy(), gallery_cams.cpu().numpy())
    if cams is not None and (cams[0].shape != (n_q,) or cams[1].shape != (n_g,)):
        raise ValueError(f"probe_cams must be ({n_q},) and gallery_cams ({n_g},), got {cams[0].shape}, {cams[1].shape}")
    hits, aps, inps = np.zeros(n_g), [], []
    for i in range(n_q):
        keep = keep_all if cams is None else keep_all & ~((gp == qp[i]) & (cams[1] == cams[0][i]))
        di, match = d[i, keep], gp[keep] == qp[i]
        if not match.any():
            continue
        match_d, wrong_d = np.sort(di[match]), np.sort(di[~match])
        j = np.arange(1, len(match_d) + 1)
        pos = j + np.searchsorted(wrong_d, match_d, side="right")
        hits[pos[0] - 1:] += 1
        aps.append(float(np.mean(j / pos)))
        inps.append(len(match_d) / float(pos[-1]))
    if not aps:
        raise ValueError(f"none of the {n_q} queries has a true match left in the gallery after filtering")
    cmc = 100.0 * hits / len(aps)
    out: dict[str, float | int | list[float]] = {f"rank{k}": float(cmc[min(k, n_g) - 1]) for k in ranks}
    out.update(mAP=100.0 * float(np.mean(aps)), mINP=100.0 * float(np.mean(inps)), cmc=cmc.tolist(),
               num_valid_queries=len(aps), num_queries=n_q)
    return out
