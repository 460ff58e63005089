"""Query/gallery ranking metrics (CMC, mAP, mINP with camera filtering and junk) against brute force.

The reference sorts every query's whole gallery with Python's ``sorted`` (wrong items first on equal
distances: the pessimistic tie rule), filters explicitly, and reads the metrics off the hit list.
"""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
import torch

import sing_lit.evaluation.ranking as ranking
from sing_lit.evaluation.ranking import cmc_and_map, rank_metrics


def brute_force(dist, q_pid, g_pid, q_cam=None, g_cam=None, junk=None):
    dist = np.asarray(dist, dtype=np.float64)
    n_q, n_g = dist.shape
    junk = np.zeros(n_g, bool) if junk is None else np.asarray(junk)
    cmc, aps, inps, valid = np.zeros(n_g), [], [], 0
    for q in range(n_q):
        kept = []
        for g in range(n_g):
            if junk[g]:
                continue
            if q_cam is not None and g_pid[g] == q_pid[q] and g_cam[g] == q_cam[q]:
                continue  # the query's person seen by the query's camera: removed
            kept.append(g)
        order = sorted(kept, key=lambda g: (dist[q, g], g_pid[g] == q_pid[q]))
        hits = [bool(g_pid[g] == q_pid[q]) for g in order]
        if not any(hits):
            continue
        valid += 1
        cmc[hits.index(True):] += 1
        found, precisions = 0, []
        for pos, hit in enumerate(hits, start=1):
            if hit:
                found += 1
                precisions.append(found / pos)
                last = pos
        aps.append(sum(precisions) / len(precisions))
        inps.append(found / last)
    if valid == 0:
        return None
    return {"cmc": 100 * cmc / valid, "mAP": 100 * float(np.mean(aps)), "mINP": 100 * float(np.mean(inps)),
            "num_valid_queries": valid, "num_queries": n_q}


def problem(seed: int, n_q: int = 30, n_g: int = 45, levels: int = 5):
    """Quantised distances (many exact ties), distractor ids, junk, three cameras, queries without matches."""
    rng = np.random.default_rng(seed)
    g_pid = rng.integers(0, 9, n_g)  # ids 7 and 8 are queried by nobody below: distractors
    q_pid = rng.integers(0, 7, n_q)
    q_pid[:2] = 11  # never in the gallery
    q_cam, g_cam = rng.integers(0, 3, n_q), rng.integers(0, 3, n_g)
    junk = rng.random(n_g) < 0.15
    dist = rng.integers(0, levels, (n_q, n_g)).astype(np.float32)
    return dist, q_pid, g_pid, q_cam, g_cam, junk


def check(out, ref, ranks=(1, 5, 10, 20)):
    np.testing.assert_allclose(out["cmc"], ref["cmc"], atol=1e-9)
    assert out["mAP"] == pytest.approx(ref["mAP"], abs=1e-9)
    assert out["mINP"] == pytest.approx(ref["mINP"], abs=1e-9)
    for k in ranks:
        assert out[f"rank{k}"] == pytest.approx(ref["cmc"][min(k, len(ref["cmc"])) - 1], abs=1e-9)
    assert (out["num_queries"], out["num_valid_queries"]) == (ref["num_queries"], ref["num_valid_queries"])


def test_docstring_examples():
    assert doctest.testmod(ranking, raise_on_error=False).failed == 0


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("block_size", [1, 4, 128])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])  # the two ways of placing wrong items (_wrong_upto)
def test_camera_filtering_junk_and_ties_match_brute_force(seed, block_size, dtype):
    dist, q_pid, g_pid, q_cam, g_cam, junk = problem(seed)
    ref = brute_force(dist, q_pid, g_pid, q_cam, g_cam, junk)
    assert ref["num_valid_queries"] < len(q_pid)  # some queries are left without a match
    t = torch.from_numpy
    out = rank_metrics(t(dist.astype(dtype)), t(q_pid), t(g_pid), probe_cams=t(q_cam), gallery_cams=t(g_cam),
                       gallery_junk=t(junk), block_size=block_size)
    check(out, ref)


@pytest.mark.parametrize("seed", range(4))
def test_without_cameras_or_junk_many_matches(seed):
    dist, q_pid, g_pid, *_ = problem(seed, levels=3)
    ref = brute_force(dist, q_pid, g_pid)
    check(rank_metrics(torch.from_numpy(dist), torch.from_numpy(q_pid), torch.from_numpy(g_pid)), ref)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64, torch.int64])
def test_dtypes_and_signed_distances(dtype):
    # Negative "distances" (e.g. minus a similarity), signed zeros and infinities rank like numbers.
    dist, q_pid, g_pid, q_cam, g_cam, junk = problem(3, levels=4)
    dist = dist - 2  # -2..1, exact in every dtype
    if dtype.is_floating_point:
        dist[0, :5], dist[1, :5] = -0.0, np.inf
        dist[2, :5] = -np.inf
    ref = brute_force(dist, q_pid, g_pid, q_cam, g_cam, junk)
    t = torch.from_numpy
    out = rank_metrics(t(dist).to(dtype), t(q_pid), t(g_pid), probe_cams=t(q_cam), gallery_cams=t(g_cam),
                       gallery_junk=t(junk))
    check(out, ref)


def test_agrees_with_a_full_sort_on_a_larger_continuous_problem():
    """120 x 2,500 with real-valued distances from features: a full argsort per query (independent of the
    binning) gives the same CMC, AP and INP."""
    g = torch.Generator().manual_seed(0)
    n_ids = 60
    centres = torch.randn(n_ids + 40, 16, generator=g)
    g_pid = torch.randint(0, n_ids + 40, (2500,), generator=g)  # ids >= 60: distractors
    q_pid = torch.randint(0, n_ids, (120,), generator=g)
    q_cam, g_cam = torch.randint(0, 4, (120,), generator=g), torch.randint(0, 4, (2500,), generator=g)
    junk = torch.rand(2500, generator=g) < 0.05
    q = centres[q_pid] + 0.9 * torch.randn(120, 16, generator=g)
    gal = centres[g_pid] + 0.9 * torch.randn(2500, 16, generator=g)
    dist = torch.cdist(q.double(), gal.double()).numpy()
    cmc, aps, inps = np.zeros(2500), [], []
    for i in range(120):
        keep = ~junk.numpy() & ~((g_pid.numpy() == q_pid[i].item()) & (g_cam.numpy() == q_cam[i].item()))
        d, hit = dist[i, keep], g_pid.numpy()[keep] == q_pid[i].item()
        hit = hit[np.lexsort((hit, d))]  # by distance, wrong items first on ties
        pos = np.flatnonzero(hit) + 1
        if pos.size == 0:
            continue
        cmc[pos[0] - 1:] += 1
        aps.append(np.mean(np.arange(1, pos.size + 1) / pos))
        inps.append(pos.size / pos[-1])
    out = rank_metrics(torch.from_numpy(dist), q_pid, g_pid, probe_cams=q_cam, gallery_cams=g_cam, gallery_junk=junk)
    assert out["num_valid_queries"] == len(aps)
    np.testing.assert_allclose(out["cmc"], 100 * cmc / len(aps), atol=1e-9)
    assert out["mAP"] == pytest.approx(100 * np.mean(aps), abs=1e-9)
    assert out["mINP"] == pytest.approx(100 * np.mean(inps), abs=1e-9)


def test_hand_computed_market_style_query():
    """One query, person 3 seen by camera 1, against 8 gallery images (hand-ranked below).

    gallery:  0     1     2      3     4     5      6     7
    pid       3     3     0      3     5     -1     3     5
    cam       1     2     4      3     2     2      5     6
    dist      0.1   0.5   0.3    0.5   0.2   0.05   0.9   0.5
    Image 0 (person 3, camera 1) is removed, image 5 is junk. Kept, by distance with wrong items
    first on ties: 4 (wrong, 0.2), 2 (distractor, 0.3), 7 (wrong, 0.5), 1 and 3 (matches, 0.5),
    6 (match, 0.9): matches at positions 4, 5, 6.
    """
    d = torch.tensor([[0.1, 0.5, 0.3, 0.5, 0.2, 0.05, 0.9, 0.5]])
    out = rank_metrics(d, torch.tensor([3]), torch.tensor([3, 3, 0, 3, 5, -1, 3, 5]),
                       probe_cams=torch.tensor([1]), gallery_cams=torch.tensor([1, 2, 4, 3, 2, 2, 5, 6]),
                       gallery_junk=torch.tensor([False] * 5 + [True, False, False]), ranks=(1, 3, 4, 100))
    assert out["cmc"] == [0.0, 0.0, 0.0, 100.0, 100.0, 100.0, 100.0, 100.0]
    assert (out["rank1"], out["rank3"], out["rank4"], out["rank100"]) == (0.0, 0.0, 100.0, 100.0)
    assert out["mAP"] == pytest.approx(100 * (1 / 4 + 2 / 5 + 3 / 6) / 3)
    assert out["mINP"] == pytest.approx(100 * 3 / 6)
    # Without the cameras, image 0 counts: a true match, ranked first; the others move one place down.
    plain = rank_metrics(d, torch.tensor([3]), torch.tensor([3, 3, 0, 3, 5, -1, 3, 5]),
                         gallery_junk=torch.tensor([False] * 5 + [True, False, False]))
    assert plain["rank1"] == 100.0 and plain["mAP"] == pytest.approx(100 * (1 + 2 / 5 + 3 / 6 + 4 / 7) / 4)


def test_queries_without_a_match_are_counted_and_skipped():
    d = torch.tensor([[0.1, 0.2, 0.3], [0.3, 0.2, 0.1], [0.5, 0.5, 0.5]])
    # query 1's only same-id image is from its camera; query 2's id is not in the gallery
    out = rank_metrics(d, torch.tensor([1, 2, 9]), torch.tensor([1, 2, 3]),
                       probe_cams=torch.tensor([0, 1, 0]), gallery_cams=torch.tensor([1, 1, 1]))
    assert (out["num_queries"], out["num_valid_queries"]) == (3, 1)
    assert out["rank1"] == 100.0 and out["mAP"] == 100.0 and out["mINP"] == 100.0
    with pytest.raises(ValueError, match="none of the 2 queries has a true match left"):
        rank_metrics(d[1:], torch.tensor([2, 9]), torch.tensor([1, 2, 3]),
                     probe_cams=torch.tensor([1, 0]), gallery_cams=torch.tensor([1, 1, 1]))


@pytest.mark.parametrize("seed", range(4))
def test_single_shot_cmc_and_map_agrees_with_brute_force(seed):
    rng = np.random.default_rng(seed)
    g_pid = rng.permutation(40)[:25]  # one image per gallery person
    q_pid = rng.choice(g_pid, 35)
    dist = rng.integers(0, 6, (35, 25)).astype(np.float32)
    ref = brute_force(dist, q_pid, g_pid)
    out = cmc_and_map(torch.from_numpy(dist), torch.from_numpy(q_pid), torch.from_numpy(g_pid),
                      block_size=int(rng.integers(1, 40)))
    check(out, ref)
    # one true match: INP equals AP for every query
    assert out["mINP"] == pytest.approx(out["mAP"])


def test_result_does_not_depend_on_gallery_order():
    dist, q_pid, g_pid, q_cam, g_cam, junk = problem(5)
    perm = np.random.default_rng(0).permutation(len(g_pid))
    t = torch.from_numpy
    a = rank_metrics(t(dist), t(q_pid), t(g_pid), probe_cams=t(q_cam), gallery_cams=t(g_cam), gallery_junk=t(junk))
    b = rank_metrics(t(dist[:, perm]), t(q_pid), t(g_pid[perm]), probe_cams=t(q_cam), gallery_cams=t(g_cam[perm]),
                     gallery_junk=t(junk[perm]))
    assert a == b


def test_nan_in_a_compared_distance_is_refused():
    dist, q_pid, g_pid, q_cam, g_cam, junk = problem(1)
    t = torch.from_numpy
    kw = {"probe_cams": t(q_cam), "gallery_cams": t(g_cam), "gallery_junk": t(junk)}
    wrong = int(np.flatnonzero((g_pid != q_pid[5]) & ~junk)[0])
    bad = dist.copy()
    bad[5, wrong] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        rank_metrics(t(bad), t(q_pid), t(g_pid), **kw)
    bad = dist.copy()
    bad[0, int(np.flatnonzero(~junk)[0])] = np.nan  # query 0 has no match (id 11): still refused
    with pytest.raises(ValueError, match="NaN"):
        rank_metrics(t(bad), t(q_pid), t(g_pid), **kw)
    bad = dist.copy()
    bad[:, junk] = np.nan  # junk is never compared
    assert rank_metrics(t(bad), t(q_pid), t(g_pid), **kw) == rank_metrics(t(dist), t(q_pid), t(g_pid), **kw)


def test_bad_inputs_name_what_was_expected():
    d, pids = torch.zeros(2, 3), torch.tensor([0, 1])
    g = torch.tensor([0, 1, 2])
    with pytest.raises(ValueError, match="both probe_cams and gallery_cams"):
        rank_metrics(d, pids, g, probe_cams=pids)
    with pytest.raises(ValueError, match=r"probe_cams \(2,\) and gallery_cams \(3,\)"):
        rank_metrics(d, pids, g, probe_cams=pids, gallery_cams=pids)
    with pytest.raises(ValueError, match=r"bool mask of shape \(3,\).*int64"):
        rank_metrics(d, pids, g, gallery_junk=torch.tensor([0, 1, 0]))
    with pytest.raises(ValueError, match=r"probe_pids \(2,\) and gallery_pids \(3,\)"):
        rank_metrics(d, pids, pids)
    with pytest.raises(ValueError, match="block_size"):
        rank_metrics(d, pids, g, block_size=0)
    with pytest.raises(ValueError, match=">= 1"):
        rank_metrics(d, pids, g, ranks=(0,))


def test_map_of_a_perfect_ranking_is_100():
    d = torch.tensor([[0.0, 1.0, 2.0, 3.0]])
    out = rank_metrics(d, torch.tensor([1]), torch.tensor([1, 1, 2, 2]))
    assert out["mAP"] == out["mINP"] == 100.0 and math.isclose(out["cmc"][0], 100.0)
