"""Time Multi-Resolution Adaptive Fusion (Eq. (6)-(8)) and its evaluation; prints JSON.

Synthetic single-shot problem: 3 anchors, 1,000 LR probes x 1,000 HR gallery
identities, 256-d features. An anchor's features are noisier the further a
probe's ratio r is from the anchor's m_i, so fusion and sigma actually matter.
Feature extraction is excluded. Run:

    PYTHONPATH=src python experiments/bench_fusion.py
"""

from __future__ import annotations

import json
import time

import torch

from sing_lit.evaluation.ranking import cmc_and_map, pairwise_l2
from sing_lit.sing.fusion import (
    fuse_distances,
    fusion_weights,
    resolution_ratio,
    select_sigma,
)
from sing_lit.sing.fusion_stage import fuse_precomputed

ANCHORS = (1 / 2, 1 / 3, 1 / 4)
N_PROBE, N_GALLERY, DIM = 1000, 1000, 256
SIGMA_GRID = [0.01 * 1.35**k for k in range(20)]


def make_problem(g: torch.Generator):
    """Random identities, genuine sizes and per-anchor features."""
    gallery_pids = torch.arange(N_GALLERY)
    probe_pids = torch.randint(0, N_GALLERY, (N_PROBE,), generator=g)
    gallery_hw = torch.stack(
        [
            torch.randint(120, 137, (N_GALLERY,), generator=g),
            torch.randint(60, 69, (N_GALLERY,), generator=g),
        ],
        1,
    )
    scale = torch.tensor(ANCHORS)[torch.randint(0, 3, (N_PROBE,), generator=g)]
    scale = scale * (1 + 0.15 * torch.randn(N_PROBE, generator=g))  # genuine sizes vary around m_i
    probe_hw = (torch.tensor([128.0, 64.0]) * scale[:, None]).round().clamp_min(4)
    r = resolution_ratio(probe_hw.prod(1), gallery_hw.prod(1).double())
    centres = torch.randn(N_GALLERY, DIM, generator=g)
    probe_feats, gallery_feats = [], []
    for m in ANCHORS:
        noise = (2.0 + 16 * (r - m).abs()).float()[:, None]
        probe_feats.append(centres[probe_pids] + noise * torch.randn(N_PROBE, DIM, generator=g))
        gallery_feats.append(centres + 0.6 * torch.randn(N_GALLERY, DIM, generator=g))
    return probe_feats, gallery_feats, r, probe_pids, gallery_pids


def main() -> None:
    g = torch.Generator().manual_seed(0)
    probe_feats, gallery_feats, r, probe_pids, gallery_pids = make_problem(g)
    seconds = {}

    t0 = time.perf_counter()
    anchor_dists = torch.stack([pairwise_l2(p, q) for p, q in zip(probe_feats, gallery_feats)])
    seconds["distances"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    fused = fuse_distances(anchor_dists, fusion_weights(r, ANCHORS, sigma=0.1))
    seconds["fusion"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    fused_metrics = cmc_and_map(fused, probe_pids, gallery_pids)
    seconds["evaluate_once"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    best_sigma, curve = select_sigma(anchor_dists, r, ANCHORS, probe_pids, gallery_pids, SIGMA_GRID)
    seconds["select_sigma_20"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    role = {"dists": anchor_dists, "q_pid": probe_pids, "g_pid": gallery_pids, "r": r}
    table4 = fuse_precomputed({"val": role, "test": role}, list(ANCHORS), [str(m) for m in ANCHORS], 0,
                              [best_sigma], "rank1")["subsets"]
    seconds["table4_subsets"] = time.perf_counter() - t0

    seconds["total"] = sum(seconds.values())
    report = {
        "problem": {"anchors": len(ANCHORS), "probes": N_PROBE, "gallery": N_GALLERY, "dim": DIM},
        "torch_threads": torch.get_num_threads(),
        "seconds": {k: round(v, 4) for k, v in seconds.items()},
        "fused_sigma0.1": {k: round(fused_metrics[k], 2) for k in ("rank1", "mAP")},
        "best_sigma": round(best_sigma, 4),
        "sigma_curve_rank1": {f"{row['sigma']:.4g}": round(row["rank1"], 1) for row in curve},
        "table4_rank1": {name: round(m["rank1"], 1) for name, m in table4.items()},
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
