"""k-reciprocal re-ranking against a dense brute-force reference written from the paper's equations."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from python_runs import run_python
from sing_lit.evaluation.ranking import cmc_and_map, pairwise_l2
from sing_lit.evaluation.rerank import Rerank, k_reciprocal_rerank, rerank_from_config
from sing_lit.runtime.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def reference(q_g: np.ndarray, q_q: np.ndarray, g_g: np.ndarray, k1: int, k2: int, lam: float) -> np.ndarray:
    """Zhong et al. (CVPR 2017) as the module docstring states it, one image and one pair at a time on the dense
    N x N matrix."""
    nq, ng = q_g.shape
    d = np.block([[q_q, q_g], [q_g.T, g_g]]).astype(np.float64)
    n = nq + ng
    np.fill_diagonal(d, 0.0)  # an image's distance to itself
    # Ranking list of each image: itself first, then by distance, equal distances by index.
    ranking = [sorted(range(n), key=lambda j, i=i: (j != i, d[i, j], j)) for i in range(n)]

    def knn(i: int, k: int) -> list[int]:
        return ranking[i][:k]

    def reciprocal(i: int, k: int) -> set[int]:  # R(i, k); k+1 since the list holds i itself
        return {j for j in knn(i, k + 1) if i in knn(j, k + 1)}

    scaled = np.zeros_like(d)
    for i in range(n):
        top = max(d[i, j] ** 2 for j in range(n))
        for j in range(n):
            scaled[i, j] = d[i, j] ** 2 / top if top > 0 else 0.0
    v = np.zeros((n, n))
    for i in range(n):
        r = reciprocal(i, k1)
        r_star = set(r)
        for q in r:  # the 1/2-k1 expansion into R*(i)
            rq = reciprocal(q, round(k1 / 2))
            if len(r & rq) >= 2 / 3 * len(rq):
                r_star |= rq
        for j in r_star:  # Gaussian kernel
            v[i, j] = math.exp(-scaled[i, j])
        v[i] /= v[i].sum()
    v_qe = np.zeros_like(v)
    for i in range(n):  # local query expansion
        for j in knn(i, k2):
            v_qe[i] += v[j] / k2
    out = np.zeros((nq, ng))
    for p in range(nq):
        for g in range(ng):  # Jaccard distance, then the final distance
            num = sum(min(v_qe[p, j], v_qe[nq + g, j]) for j in range(n))
            den = sum(max(v_qe[p, j], v_qe[nq + g, j]) for j in range(n))
            out[p, g] = (1 - lam) * (1 - num / den) + lam * scaled[p, nq + g]
    return out


def problem(seed: int, nq: int = 15, ng: int = 40, dim: int = 6, ids: int = 8, quantise: float | None = None):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(ids, dim, generator=g) * 2
    q_ids, g_ids = torch.randint(0, ids, (nq,), generator=g), torch.randint(0, ids, (ng,), generator=g)
    q = centres[q_ids] + torch.randn(nq, dim, generator=g)
    gal = centres[g_ids] + torch.randn(ng, dim, generator=g)
    parts = [pairwise_l2(q, gal, float64=True), pairwise_l2(q, q, float64=True), pairwise_l2(gal, gal, float64=True)]
    if quantise:  # many exactly equal distances: the tie rule decides
        parts = [torch.round(p / quantise) * quantise for p in parts]
    return parts, q_ids, g_ids


@pytest.mark.parametrize(("seed", "k1", "k2", "lam"), [(0, 4, 2, 0.3), (1, 6, 3, 0.3), (2, 5, 1, 0.0),
                                                       (3, 7, 4, 0.5), (4, 3, 3, 1.0), (5, 20, 6, 0.3)])
def test_matches_the_brute_force_reference(seed, k1, k2, lam):
    parts, _, _ = problem(seed)
    expected = reference(*(p.numpy() for p in parts), k1, k2, lam)
    got = k_reciprocal_rerank(*parts, k1=k1, k2=k2, lambda_value=lam)
    assert got.dtype == torch.float64 and got.shape == (15, 40)
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-9, rtol=0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ties_follow_the_documented_rule(seed):
    """Distances rounded to 0.5: many ties, some at the k-th neighbour, and duplicates at distance 0."""
    parts, _, _ = problem(seed, quantise=0.5)
    assert all(len(torch.unique(row)) < len(row) for row in parts[0])
    expected = reference(*(p.numpy() for p in parts), 5, 3, 0.3)
    got = k_reciprocal_rerank(*parts, k1=5, k2=3)
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-9, rtol=0)


def test_float32_inputs_match_to_1e5():
    parts, _, _ = problem(7)
    expected = reference(*(p.numpy() for p in parts), 6, 3, 0.3)
    got = k_reciprocal_rerank(*(p.float() for p in parts), k1=6, k2=3)
    assert got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-5, rtol=0)


def test_the_block_size_does_not_change_the_result():
    parts, _, _ = problem(3, nq=23, ng=57)
    whole = k_reciprocal_rerank(*parts, k1=6, k2=3, block_size=4096)
    for block in (1, 5, 16, 23, 24):
        assert torch.equal(k_reciprocal_rerank(*parts, k1=6, k2=3, block_size=block), whole), block


def test_the_diagonals_are_self_distances_whatever_they_hold():
    parts, _, _ = problem(4)
    q_g, q_q, g_g = parts
    noisy = [q_g, q_q + 0.3 * torch.eye(15, dtype=q_q.dtype), g_g + 0.3 * torch.eye(40, dtype=g_g.dtype)]
    assert torch.equal(k_reciprocal_rerank(*noisy, k1=5, k2=2), k_reciprocal_rerank(*parts, k1=5, k2=2))


def test_lambda_one_keeps_the_original_ranking():
    parts, _, _ = problem(5)
    got = k_reciprocal_rerank(*parts, k1=5, k2=3, lambda_value=1.0)
    assert torch.equal(got.argsort(dim=1, stable=True), parts[0].argsort(dim=1, stable=True))


def test_re_ranking_improves_map_on_a_clustered_problem():
    """A smoke test, not a proof: 30 identities, 6 gallery images each, noisy queries."""
    g = torch.Generator().manual_seed(0)
    ids, per_id, dim = 30, 6, 16
    centres = torch.randn(ids, dim, generator=g)
    g_ids = torch.arange(ids).repeat_interleave(per_id)
    q_ids = torch.arange(ids).repeat(2)
    gal = centres[g_ids] + 0.45 * torch.randn(len(g_ids), dim, generator=g)
    q = centres[q_ids] + 0.6 * torch.randn(len(q_ids), dim, generator=g)
    plain = cmc_and_map(pairwise_l2(q, gal), q_ids, g_ids)["mAP"]
    re_ranked = cmc_and_map(Rerank(k1=8, k2=3).distances(q, gal), q_ids, g_ids)["mAP"]
    assert re_ranked > plain + 1.0, (plain, re_ranked)


def test_bad_shapes_and_values_give_one_clear_error():
    parts, _, _ = problem(0, nq=4, ng=6)
    q_g, q_q, g_g = parts
    with pytest.raises(ValueError, match=r"q_q \(Nq, Nq\)"):
        k_reciprocal_rerank(q_g, g_g, q_q)
    with pytest.raises(ValueError, match="one dtype"):
        k_reciprocal_rerank(q_g.float(), q_q, g_g)
    with pytest.raises(ValueError, match="finite distances >= 0"):
        k_reciprocal_rerank(q_g - 10, q_q, g_g)
    bad = q_g.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="finite distances >= 0"):
        k_reciprocal_rerank(bad, q_q, g_g)
    with pytest.raises(ValueError, match="2-D floating-point"):
        k_reciprocal_rerank(q_g.long(), q_q, g_g)
    for kwargs, key in (({"k1": 0}, "eval.rerank_k1"), ({"k2": 2.5}, "eval.rerank_k2"),
                        ({"lambda_value": 1.5}, "eval.rerank_lambda"), ({"block_size": 0}, "block_size"),
                        ({"k1": 10}, "k1=10, k2=2 needs at least 11 images")):
        with pytest.raises(ConfigError, match=key):
            k_reciprocal_rerank(q_g, q_q, g_g, **{"k1": 3, "k2": 2, **kwargs})


def test_config_node():
    assert rerank_from_config(None) is None and rerank_from_config({"rerank": False}) is None
    on = rerank_from_config({"rerank": True, "rerank_k1": 10, "rerank_k2": 3, "rerank_lambda": 0.2})
    assert on == Rerank(10, 3, 0.2)
    assert on.describe() == {"method": "k-reciprocal (Zhong et al. 2017)", "k1": 10, "k2": 3, "lambda": 0.2}
    with pytest.raises(ConfigError, match="eval.rerank must be true or false"):
        rerank_from_config({"rerank": "yes"})
    with pytest.raises(ConfigError, match="eval.rerank_k2"):
        rerank_from_config({"rerank": True, "rerank_k2": 0})


def test_benchmark_small_mode_prints_its_json():
    proc = run_python([REPO / "experiments" / "bench_rerank.py", "--small"], REPO, os.environ, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert set(report) >= {"problem", "torch_threads", "seconds", "peak_rss_gib", "target_peak_rss_gib",
                           "map_plain", "map_reranked", "rank1_plain", "rank1_reranked"}
    assert set(report["seconds"]) == {"distances", "rerank"}
    assert set(report["peak_rss_gib"]) == {"before_rerank", "after_rerank"}
    assert report["problem"]["queries"] > 0 and report["seconds"]["rerank"] > 0
