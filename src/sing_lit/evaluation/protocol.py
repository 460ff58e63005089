"""Which ranking evaluation an eval set gets: the paper's single-shot one, or the camera-aware query/gallery one.

An eval set carries camera ids only under the query/gallery protocol (``data.protocol.kind=query_gallery``:
MLR-Market-1501, MLR-DukeMTMC-reID; :mod:`sing_lit.data.query_gallery`). Then a query's own person seen by
its own camera is removed from its gallery and a query may have many true matches
(:func:`sing_lit.evaluation.ranking.rank_metrics`). Without cameras, the single-shot evaluation of the paper
(:func:`sing_lit.evaluation.ranking.cmc_and_map`, which refuses probes without a true match) runs. The
training module, ``sing_lit.evaluate`` and the fusion stage all go through :func:`evaluate_ranking`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor

from sing_lit.evaluation.ranking import RANK_METRICS, cmc_and_map, rank_metrics

# Both protocols report the same metrics (rank-k, mAP, mINP; with one true match per probe INP is AP).
# EXTRA_METRICS: ones only some results carry (tables show them where present); none today.
EXTRA_METRICS: tuple[str, ...] = ()
REPORTED_METRICS: tuple[str, ...] = (*RANK_METRICS, *EXTRA_METRICS)


def evaluate_ranking(dist: Tensor, probe_pids: Tensor, gallery_pids: Tensor, probe_cams: Tensor | None = None,
                     gallery_cams: Tensor | None = None) -> dict[str, Any]:
    """Single-shot CMC and mAP without cameras; camera-aware CMC, mAP and mINP with them.

    Example:
        >>> import torch
        >>> d = torch.tensor([[0.1, 0.2]])
        >>> evaluate_ranking(d, torch.tensor([5]), torch.tensor([5, 5]))["rank1"]
        100.0
        >>> out = evaluate_ranking(d, torch.tensor([5]), torch.tensor([5, 5]), torch.tensor([0]), torch.tensor([0, 1]))
        >>> out["mAP"], out["num_valid_queries"]   # the same-camera match is removed: the other one ranks 1st
        (100.0, 1)
    """
    if probe_cams is None and gallery_cams is None:
        return cmc_and_map(dist, probe_pids, gallery_pids)
    if probe_cams is None or gallery_cams is None:
        raise ValueError("the probe set and the gallery must both carry camera ids (query/gallery protocol) "
                         "or neither (single-shot)")
    return rank_metrics(dist, probe_pids, gallery_pids, probe_cams=probe_cams, gallery_cams=gallery_cams)


def reported(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The scalar metrics that tables and metrics.json report (:data:`REPORTED_METRICS` present in ``metrics``)."""
    return {k: float(metrics[k]) for k in REPORTED_METRICS if k in metrics}


def table_columns(rows: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Columns of a result table: the ranking metrics, plus any of :data:`EXTRA_METRICS` some row has."""
    return [m for m in REPORTED_METRICS if m in RANK_METRICS or any(m in row for row in rows.values())]
