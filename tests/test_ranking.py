"""CMC / mAP against an independent brute-force reference with explicit pessimistic ties."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sing_lit.evaluation.ranking import cmc_and_map, cmc_curve, pairwise_l2


def brute_force(dist, probe_pids, gallery_pids):
    """Per-probe loop: sort by (distance, is_match) so wrong items win every tie."""
    dist, qp, gp = np.asarray(dist), list(probe_pids), list(gallery_pids)
    n_q, n_g = dist.shape
    cmc, aps = np.zeros(n_g), []
    for q in range(n_q):
        order = sorted(range(n_g), key=lambda g: (dist[q, g], gp[g] == qp[q]))
        hits = [gp[g] == qp[q] for g in order]
        cmc[hits.index(True) :] += 1
        found, precisions = 0, []
        for pos, hit in enumerate(hits, start=1):
            if hit:
                found += 1
                precisions.append(found / pos)
        aps.append(sum(precisions) / len(precisions))
    return 100 * cmc / n_q, 100 * float(np.mean(aps))


def test_hand_made_3x4():
    dist = torch.tensor([[0.5, 0.2, 0.9, 0.7], [0.3, 0.1, 0.3, 0.4], [0.2, 0.6, 0.2, 0.2]])
    gallery = torch.tensor([10, 20, 30, 10])
    out = cmc_and_map(dist, torch.tensor([10, 20, 30]), gallery)
    # Probe 10: first match 2nd, AP (1/2 + 2/3) / 2. Probe 20: 1st, AP 1.
    # Probe 30: its match ties with two wrong items at 0.2 -> 3rd, AP 1/3.
    assert out["cmc"] == pytest.approx([100 / 3, 200 / 3, 100, 100])
    assert out["rank1"] == pytest.approx(100 / 3)
    assert out["rank5"] == out["rank10"] == out["rank20"] == 100
    assert out["mAP"] == pytest.approx(100 * (7 / 12 + 1 + 1 / 3) / 3)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("block_size", [7, 1024])
def test_matches_brute_force_with_ties(seed, block_size):
    rng = np.random.default_rng(seed)
    n_q, n_g = 40, 30
    gallery_pids = rng.integers(0, 8, n_g)  # several true matches per probe
    probe_pids = rng.choice(gallery_pids, n_q)
    dist = rng.integers(0, 5, (n_q, n_g)).astype(np.float32)  # many exact ties
    ref_cmc, ref_map = brute_force(dist, probe_pids, gallery_pids)
    out = cmc_and_map(
        torch.from_numpy(dist),
        torch.from_numpy(probe_pids),
        torch.from_numpy(gallery_pids),
        block_size=block_size,
    )
    np.testing.assert_allclose(out["cmc"], ref_cmc, atol=1e-9)
    assert out["mAP"] == pytest.approx(ref_map, abs=1e-9)
    for k in (1, 5, 10, 20):
        assert out[f"rank{k}"] == pytest.approx(ref_cmc[k - 1])


def test_result_does_not_depend_on_gallery_order():
    rng = np.random.default_rng(0)
    dist = torch.from_numpy(rng.integers(0, 3, (20, 25)).astype(np.float64))
    gallery = torch.from_numpy(rng.integers(0, 5, 25))
    probes = gallery[torch.from_numpy(rng.integers(0, 25, 20))]
    perm = torch.from_numpy(rng.permutation(25))
    a = cmc_and_map(dist, probes, gallery)
    b = cmc_and_map(dist[:, perm], probes, gallery[perm])
    assert a == b


def test_cmc_curve_is_the_cmc_entry():
    dist = torch.tensor([[0.3, 0.1], [0.2, 0.4]])
    pids = torch.tensor([0, 1])
    assert cmc_curve(dist, pids, pids).tolist() == [0.0, 100.0]


def test_pairwise_l2_matches_cdist():
    g = torch.Generator().manual_seed(0)
    p, q = torch.randn(9, 16, generator=g), torch.randn(11, 16, generator=g)
    ref = torch.cdist(p.double(), q.double())
    torch.testing.assert_close(pairwise_l2(p, q, float64=True), ref)
    torch.testing.assert_close(pairwise_l2(p, q), ref.float(), atol=1e-5, rtol=1e-5)
    # Identical rows: rounding may go negative before sqrt; must give 0, never NaN.
    assert torch.all(pairwise_l2(p, p).diagonal() < 1e-2)
    assert not torch.isnan(pairwise_l2(p * 1e3, p * 1e3)).any()


def test_pairwise_l2_over_several_row_blocks_and_empty_inputs():
    # 1,500 x 3,000 float32 distances are processed in row blocks of 699 (8 MiB): 699 + 699 + 102 rows.
    g = torch.Generator().manual_seed(1)
    p, q = torch.randn(1500, 8, generator=g), torch.randn(3000, 8, generator=g)
    torch.testing.assert_close(pairwise_l2(p, q), torch.cdist(p.double(), q.double()).float(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(pairwise_l2(p, q, float64=True), torch.cdist(p.double(), q.double()))
    assert pairwise_l2(torch.zeros(0, 8), q).shape == (0, 3000) and pairwise_l2(p, torch.zeros(0, 8)).shape == (1500, 0)


def test_errors():
    pids = torch.tensor([0, 1])
    with pytest.raises(ValueError, match="1 of 2 probes have no true match"):
        cmc_and_map(torch.zeros(2, 2), torch.tensor([0, 5]), pids)
    with pytest.raises(ValueError, match=r"\(2, 3\)"):
        cmc_and_map(torch.zeros(2, 3), pids, pids)
    with pytest.raises(ValueError, match="NaN"):
        cmc_and_map(torch.full((2, 2), float("nan")), pids, pids)
    with pytest.raises(ValueError, match=">= 1"):
        cmc_and_map(torch.zeros(2, 2), pids, pids, ranks=(0,))
    with pytest.raises(ValueError, match="same D"):
        pairwise_l2(torch.zeros(2, 3), torch.zeros(2, 4))
