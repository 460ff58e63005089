"""SINGModule's single-shot evaluation (val/test) against a brute-force reference.

Probes (dataloader 0) are LR images matched through F_sr then F_fe; the gallery (dataloader 1)
is one HR image per person through F_fe only, plus its synthetic LR for PSNR/SSIM of F_sr.
"""

from __future__ import annotations

import math

import pytest
import torch

from sing_lit.models.sing_net import build_sing_net
from sing_lit.models.small_cnn import SmallCNN
from sing_lit.models.sr_net import SRNet
from sing_lit.sing.module import SINGModule

H, W = 16, 8


def make_module(residual: bool = False) -> SINGModule:
    def net(num_classes):
        torch.manual_seed(0)
        return build_sing_net(num_classes, backbone=lambda: SmallCNN(widths=(4,)),
                              sr_net=lambda: SRNet(channels=(4, 2), residual=residual), feat_dim=5)

    module = SINGModule(net=net, num_classes=3, optimizer=torch.optim.Adam).eval()
    if residual:  # a zero correction: F_sr is exactly the identity on its bicubic input
        torch.nn.init.zeros_(module.net.sr_net.body[-1].weight)
    module.logged = {}
    # Trainer-less: capture what would be logged
    module.log_dict = lambda metrics, **kw: module.logged.update(metrics)
    return module


def eval_data(seed: int = 0, n_ids: int = 7, n_probes: int = 13):
    g = torch.Generator().manual_seed(seed)
    gallery_pids = torch.randperm(100, generator=g)[:n_ids]
    probe_pids = gallery_pids[torch.randint(n_ids, (n_probes,), generator=g)]
    probe_pids[:n_ids] = gallery_pids  # every identity has at least one probe

    def images(n):
        return torch.randint(0, 256, (n, 3, H, W), generator=g, dtype=torch.uint8)

    probe = {"image": images(n_probes), "pid": probe_pids, "area": torch.full((n_probes,), 32.0, dtype=torch.float64)}
    gallery = {"image": images(n_ids), "pid": gallery_pids, "area": torch.full((n_ids,), 128.0, dtype=torch.float64),
               "h2l": images(n_ids)}
    return probe, gallery


def batches(data: dict, size: int):
    n = len(data["pid"])
    return [{k: v[i:i + size] for k, v in data.items()} for i in range(0, n, size)]


def run_eval(module: SINGModule, probe: dict, gallery: dict, stage: str = "val") -> dict:
    step = module.validation_step if stage == "val" else module.test_step
    with torch.no_grad():
        # interleave loaders and uneven batch sizes: accumulation must not depend on either
        for i, b in enumerate(batches(probe, 5)):
            step(b, i, dataloader_idx=0)
        for i, b in enumerate(batches(gallery, 3)):
            step(b, i, dataloader_idx=1)
        (module.on_validation_epoch_end if stage == "val" else module.on_test_epoch_end)()
    return module.last_eval


def brute_force(module: SINGModule, probe: dict, gallery: dict) -> dict:
    """Per-probe loops over plain Euclidean distances; AP from precision at every hit."""
    with torch.no_grad():
        q = module.net.lr_features(probe["image"].double().div(255).float()).double()
        g = module.net.hr_features(gallery["image"].double().div(255).float()).double()
    n_g = len(g)
    cmc, aps, inps = torch.zeros(n_g, dtype=torch.float64), [], []
    for i in range(len(q)):
        d = [math.sqrt(sum((q[i, k] - g[j, k]).item() ** 2 for k in range(q.shape[1]))) for j in range(n_g)]
        order = sorted(range(n_g), key=lambda j: d[j])
        hits = [int(gallery["pid"][j] == probe["pid"][i]) for j in order]
        first = hits.index(1)
        cmc[first:] += 1
        precisions = [sum(hits[:r + 1]) / (r + 1) for r in range(n_g) if hits[r]]
        aps.append(sum(precisions) / len(precisions))
        inps.append(sum(hits) / (max(r for r in range(n_g) if hits[r]) + 1))
    cmc = 100 * cmc / len(q)
    return {"rank1": cmc[0].item(), "rank5": cmc[min(5, n_g) - 1].item(), "mAP": 100 * sum(aps) / len(aps),
            "mINP": 100 * sum(inps) / len(inps), "cmc": cmc.tolist()}


def hand_psnr(module: SINGModule, gallery: dict) -> float:
    with torch.no_grad():
        hr = gallery["image"].double() / 255
        sr = module.net.super_resolve(gallery["h2l"].float() / 255).double().clamp(0, 1)
    values = [10 * math.log10(1.0 / ((sr[i] - hr[i]) ** 2).mean().item()) for i in range(len(hr))]
    return sum(values) / len(values)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_validation_metrics_match_brute_force(seed):
    module = make_module()
    probe, gallery = eval_data(seed)
    out = run_eval(module, probe, gallery)
    ref = brute_force(module, probe, gallery)
    assert out["stage"] == "val"
    assert out["rank1"] == pytest.approx(ref["rank1"], abs=1e-9)
    assert out["rank5"] == pytest.approx(ref["rank5"], abs=1e-9)
    assert out["mAP"] == pytest.approx(ref["mAP"], abs=1e-6)
    assert out["mINP"] == pytest.approx(ref["mINP"], abs=1e-6)
    assert out["cmc"] == pytest.approx(ref["cmc"][:20], abs=1e-9)
    assert out["psnr"] == pytest.approx(hand_psnr(module, gallery), abs=1e-4)
    assert -1 <= out["ssim"] <= 1
    for k in ("rank1", "rank5", "rank10", "rank20", "mAP", "mINP", "psnr", "ssim"):
        assert module.logged[f"val/{k}"] == pytest.approx(out[k])
    assert module._eval == {}  # the epoch's buffers are cleared


def test_test_stage_uses_test_keys_and_same_numbers():
    probe, gallery = eval_data(3)
    val = run_eval(make_module(), probe, gallery, "val")
    module = make_module()
    test = run_eval(module, probe, gallery, "test")
    assert test["stage"] == "test" and set(module.logged) == {f"test/{k}" for k in
                                                              ("rank1", "rank5", "rank10", "rank20", "mAP", "mINP",
                                                               "psnr", "ssim")}
    assert {k: v for k, v in test.items() if k != "stage"} == {k: v for k, v in val.items() if k != "stage"}


def test_perfect_sr_gives_ssim_one():
    """Identity F_sr (residual SRNet, zero correction) on a gallery whose synthetic LR is the HR image."""
    module = make_module(residual=True)
    probe, gallery = eval_data(4)
    gallery["h2l"] = gallery["image"].clone()
    out = run_eval(module, probe, gallery)
    assert out["ssim"] == pytest.approx(1.0, abs=1e-6)
    assert out["psnr"] > 60 or math.isinf(out["psnr"])


def test_perfect_features_give_full_scores():
    """A probe that is its own gallery image (F_sr identity, eval-mode BN) ranks first."""
    module = make_module(residual=True)
    _, gallery = eval_data(5)
    probe = {"image": gallery["image"].clone(), "pid": gallery["pid"].clone(), "area": gallery["area"].clone()}
    out = run_eval(module, probe, gallery)
    assert out["rank1"] == 100.0 and out["mAP"] == pytest.approx(100.0) and out["mINP"] == pytest.approx(100.0)


def test_no_gallery_logs_nothing():
    module = make_module()
    probe, _ = eval_data(6)
    with torch.no_grad():
        module.validation_step(probe, 0, dataloader_idx=0)
        module.on_validation_epoch_end()
    assert module.logged == {} and module._eval == {}
