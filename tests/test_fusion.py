"""Eq. (6)-(8) against direct NumPy computations; sigma selection against a brute-force search."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from sing_lit.sing.fusion import (
    fuse_distances,
    fusion_weights,
    mean_fusion,
    resolution_ratio,
    select_sigma,
)
from sing_lit.sing.fusion_stage import fuse_precomputed

ANCHORS = (1 / 2, 1 / 3, 1 / 4)
PROBE_HW = np.array([(32, 16), (43, 21), (64, 32), (40, 20), (50, 25), (30, 14)] * 5)
GALLERY_HW = np.array([(128, 64)] * 12)


def rank1_and_map(dist, probe_pids, gallery_pids):
    """Independent reference: per-probe sort with wrong items first on ties."""
    r1, aps = [], []
    for q in range(dist.shape[0]):
        order = sorted(
            range(dist.shape[1]), key=lambda g: (dist[q, g], gallery_pids[g] == probe_pids[q])
        )
        hits = np.array([gallery_pids[g] == probe_pids[q] for g in order])
        r1.append(hits[0])
        pos = np.flatnonzero(hits) + 1
        aps.append(np.mean(np.arange(1, len(pos) + 1) / pos))
    return 100 * np.mean(r1), 100 * np.mean(aps)


def numpy_fused(dists, probe_hw, gallery_hw, anchors, sigma):
    """Eq. (7), (8), (6) written out directly."""
    r = np.sqrt(probe_hw.prod(1) / gallery_hw.prod(1).mean())
    w = np.exp(-((r[:, None] - np.array(anchors)[None, :]) ** 2) / sigma**2)
    return r, w, np.einsum("aqg,qa->qg", dists, w)


@pytest.fixture
def problem():
    """Anchor distances where the anchor nearest each probe's ratio is the most reliable."""
    rng = np.random.default_rng(0)
    n_q, n_g = len(PROBE_HW), len(GALLERY_HW)
    gallery_pids = np.arange(n_g)
    probe_pids = rng.integers(0, n_g, n_q)
    r = np.sqrt(PROBE_HW.prod(1) / GALLERY_HW.prod(1).mean())
    truth = (probe_pids[:, None] != gallery_pids[None, :]).astype(float)
    noise = np.stack([(0.6 + 8 * np.abs(r - m)[:, None]) * rng.random((n_q, n_g)) for m in ANCHORS])
    return 0.5 * truth[None] + noise, probe_pids, gallery_pids


def test_resolution_ratio_hand_sizes():
    r = resolution_ratio(torch.tensor([32 * 16, 43 * 21, 64 * 32]), torch.tensor([128 * 64] * 3))
    np.testing.assert_allclose(r.numpy(), [0.25, np.sqrt(903 / 8192), 0.5])
    mixed = resolution_ratio(torch.tensor([512]), torch.tensor([128 * 64, 64 * 32]))
    np.testing.assert_allclose(mixed.numpy(), [np.sqrt(512 / 5120)])


@pytest.mark.parametrize("anchors", [ANCHORS, ANCHORS[:2], ANCHORS[1:], (ANCHORS[0],)])
def test_weights_and_fusion_match_numpy(anchors, problem):
    dists = problem[0][[ANCHORS.index(m) for m in anchors]]
    r_np, w_np, fused_np = numpy_fused(dists, PROBE_HW, GALLERY_HW, anchors, sigma=0.1)
    r = resolution_ratio(torch.from_numpy(PROBE_HW.prod(1)), torch.from_numpy(GALLERY_HW.prod(1)))
    np.testing.assert_allclose(r.numpy(), r_np)
    raw = fusion_weights(r, anchors, 0.1, normalize=False)
    np.testing.assert_allclose(raw.numpy(), w_np, rtol=1e-12)
    np.testing.assert_allclose(
        fuse_distances(torch.from_numpy(dists), raw).numpy(), fused_np, rtol=1e-12
    )
    # Normalised weights rescale each probe's row by 1 / sum(w): same ranking.
    w = fusion_weights(r, anchors, 0.1)
    np.testing.assert_allclose(w.numpy(), w_np / w_np.sum(1, keepdims=True), rtol=1e-12)
    fused = fuse_distances(torch.from_numpy(dists), w).numpy()
    np.testing.assert_allclose(fused, fused_np / w_np.sum(1, keepdims=True), rtol=1e-12)
    if len(anchors) == 1:
        assert np.array_equal(fused, dists[0])  # single anchor: exactly the plain D_i


def test_tiny_sigma_does_not_underflow_to_nan():
    r = torch.tensor([0.9, 0.26])
    assert fusion_weights(r, ANCHORS, 1e-4, normalize=False).sum() == 0
    w = fusion_weights(r, ANCHORS, 1e-4)
    assert w.tolist() == [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    d = torch.rand(3, 2, 5, dtype=torch.float64)
    assert torch.equal(fuse_distances(d, w), torch.stack([d[0, 0], d[2, 1]]))


def test_mean_fusion():
    d = torch.rand(3, 4, 5)
    torch.testing.assert_close(mean_fusion(d), (d[0] + d[1] + d[2]) / 3)


def test_select_sigma_matches_brute_force(problem):
    dists, probe_pids, gallery_pids = problem
    grid = [0.01, 0.03, 0.05, 0.1, 0.2, 0.5, 1.0, 5.0]
    ref = []
    for sigma in grid:
        _, _, fused = numpy_fused(dists, PROBE_HW, GALLERY_HW, ANCHORS, sigma)
        ref.append(rank1_and_map(fused, probe_pids, gallery_pids))
    r = resolution_ratio(torch.from_numpy(PROBE_HW.prod(1)), torch.from_numpy(GALLERY_HW.prod(1)))
    args = (
        torch.from_numpy(dists),
        r,
        ANCHORS,
        torch.from_numpy(probe_pids),
        torch.from_numpy(gallery_pids),
        grid,
    )
    for metric, col in (("rank1", 0), ("mAP", 1)):
        best, curve = select_sigma(*args, metric=metric)
        np.testing.assert_allclose([row[metric] for row in curve], [x[col] for x in ref], atol=1e-9)
        scores = [round(x[col], 9) for x in ref]
        assert best == max(s for s, v in zip(grid, scores) if v == max(scores))
    assert len({row["rank1"] for row in curve}) > 1  # sigma actually matters here


def test_select_sigma_ties_go_to_largest():
    d = torch.rand(1, 6, 6, dtype=torch.float64)
    pids = torch.arange(6)
    best, curve = select_sigma(d, torch.full((6,), 0.3), [0.5], pids, pids, [2.0, 0.5, 1.0])
    assert best == 2.0 and len({row["rank1"] for row in curve}) == 1


def test_table4_subsets_match_numpy(problem):
    """The subset rows of the fusion stage (what table4.md and metrics.json's ``table4`` hold), with sigma
    fixed at 0.1 by a one-point grid, against a NumPy reference of Eq. (6)-(8)."""
    dists, probe_pids, gallery_pids = problem
    r = resolution_ratio(torch.from_numpy(PROBE_HW.prod(1)), torch.from_numpy(GALLERY_HW.prod(1)))
    role = {"dists": torch.from_numpy(dists), "q_pid": torch.from_numpy(probe_pids),
            "g_pid": torch.from_numpy(gallery_pids), "r": r}
    result = fuse_precomputed({"val": role, "test": role}, list(ANCHORS), ["x2", "x3", "x4"], 0, [0.1], "rank1")
    out = result["subsets"]
    assert set(result["sigma_per_subset"].values()) == {0.1}
    names = ["M1/2", "M1/3", "M1/4", "M1/2+M1/3", "M1/2+M1/4", "M1/3+M1/4", "M1/2+M1/3+M1/4"]
    assert list(out) == names
    subsets = [s for k in (1, 2, 3) for s in itertools.combinations(range(3), k)]
    for name, subset in zip(names, subsets):
        anchors = [ANCHORS[i] for i in subset]
        _, _, fused = numpy_fused(dists[list(subset)], PROBE_HW, GALLERY_HW, anchors, 0.1)
        r1, m_ap = rank1_and_map(fused, probe_pids, gallery_pids)
        assert out[name]["rank1"] == pytest.approx(r1) and out[name]["mAP"] == pytest.approx(m_ap)


def test_errors():
    r, d, pids = torch.full((2,), 0.3), torch.rand(2, 2, 3), torch.arange(3)
    with pytest.raises(ValueError, match="sigma"):
        fusion_weights(r, ANCHORS, 0.0)
    with pytest.raises(ValueError, match="distinct"):
        fusion_weights(r, (0.5, 0.5), 1.0)
    with pytest.raises(ValueError, match="empty"):
        fusion_weights(r, (), 1.0)
    with pytest.raises(ValueError, match=r"\(2, 2, 3\).*\(2, 3\)"):
        fuse_distances(d, torch.ones(2, 3))
    with pytest.raises(ValueError, match="A = 3"):
        select_sigma(d, r, ANCHORS, pids[:2], pids, [1.0])
    with pytest.raises(ValueError, match=r"r must be \(2,\)"):
        select_sigma(d, torch.ones(3), (0.5, 0.25), pids[:2], pids, [1.0])
    with pytest.raises(ValueError, match="rank1.*mAP"):
        select_sigma(d, r, (0.5, 0.25), pids[:2], pids, [1.0], metric="rank2")
    with pytest.raises(ValueError, match="sigma"):
        select_sigma(d, r, (0.5, 0.25), pids[:2], pids, [1.0, -1.0])
    with pytest.raises(ValueError, match="positive"):
        resolution_ratio(torch.tensor([0]), torch.tensor([10]))
