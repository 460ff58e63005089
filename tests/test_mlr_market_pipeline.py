"""``python -m sing_lit.train -m +anchor=1/2,1/3,1/4 data=market1501|dukemtmc data.root=<download>`` end to end:
three anchors on the MLR-Market / MLR-Duke protocol, then the fusion stage, on tiny layouts in the original naming.

The test metrics the run reports are recomputed here from the checkpoint (features, plain Euclidean
distances, a brute-force camera-aware ranking), so they are known to be the camera-aware query/gallery ones.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import hydra
import numpy as np
import pytest
import torch

from python_runs import run_python
from sing_lit.runtime.anchors import build_net, data_config, load_checkpoint
from test_query_gallery import brute_force
from tiny_market import write_tiny

TINY = ["data.protocol.val_ids=2", "data.input_size=[32,16]", "data.batch_size=8", "trainer.max_epochs=1",
        "+trainer.limit_train_batches=2", "model.net.backbone.widths=[8,16]", "model.net.sr_net.channels=[8,4]",
        "logger=csv"]
FUSED, BEST = "SING fused (Eq. 6-8)", "best single anchor (by val)"


def run(module: str, args: list[str], cwd: Path, cache: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "SING_LIT_CACHE": str(cache), "HYDRA_FULL_ERROR": "0"}
    return run_python(["-m", module, *args], cwd, env, timeout=600)


@pytest.fixture(scope="module", params=["market1501", pytest.param("dukemtmc", marks=pytest.mark.slow)])
def sweep(request, tmp_path_factory):
    name = request.param
    base = tmp_path_factory.mktemp(f"mlr_{name}")
    root = write_tiny(base / "download", name)
    proc = run("sing_lit.train", ["-m", "+anchor=1/2,1/3,1/4", f"data={name}", f"data.root={root}", *TINY,
                                  f"hydra.sweep.dir={base / 'mr'}"], base, base / "cache")
    assert proc.returncode == 0, proc.stderr[-4000:]
    return name, base, proc


@torch.no_grad()
def recomputed_test_metrics(ckpt_path: Path) -> dict:
    """The checkpoint's test metrics from scratch: its net, its data config, cdist, the brute-force ranking."""
    ckpt = load_checkpoint(ckpt_path)
    net = build_net(ckpt, ckpt_path)
    dm = hydra.utils.instantiate(data_config(ckpt["sing_lit"]), trial=0, split_out=None)
    dm.setup_eval()
    probe, gallery = dm.eval_sets["test"]
    q = net.lr_features(probe.images.float() / 255).double()
    g = net.hr_features(gallery.images.float() / 255).double()
    dist = torch.cdist(q, g).numpy()
    return brute_force(dist, probe.pids.numpy(), gallery.pids.numpy(), probe.cams.numpy(), gallery.cams.numpy())


def test_three_anchors_then_fusion_on_the_query_gallery_protocol(sweep):
    name, base, proc = sweep
    mr = base / "mr"
    assert sorted(p.name for p in mr.iterdir() if p.is_dir()) == ["0_x2", "1_x3", "2_x4", "fuse"]
    assert proc.stdout.count("**Fusion:") == 1 and "mINP" in proc.stdout
    fused = json.loads((mr / "fuse" / "metrics.json").read_text())
    assert set(fused["table"][FUSED]) == {"rank1", "rank5", "rank10", "rank20", "mAP", "mINP"}
    assert "| mINP |" in (mr / "fuse" / "table.md").read_text()
    trial = fused["trials"][0]
    assert trial["sigma"] in fused["sigma_grid"] and "mINP" in trial["sigma_cv_curve"][0]
    split = json.loads((mr / "0_x2" / "split.json").read_text())
    assert split["format"] == "sing_lit.split.query_gallery/v1" and split["protocol"]["kind"] == "query_gallery"
    assert split["trials"][0]["test"] == [3, 5, 8, 9] and len(split["trials"][0]["val"]) == 2
    for job in ("0_x2", "1_x3", "2_x4"):
        metrics = json.loads((mr / job / "trial_0" / "metrics.json").read_text())
        ref = recomputed_test_metrics(mr / job / metrics["best_checkpoint"])
        assert ref["num_valid_queries"] == 4  # query 0009 (camera 4) has no match from another camera
        test = metrics["test"]
        assert test["rank1"] == pytest.approx(ref["cmc"][0], abs=1e-6)
        assert test["mAP"] == pytest.approx(ref["mAP"], abs=1e-6) and test["mINP"] == pytest.approx(ref["mINP"], abs=1e-6)
        assert metrics["test_cmc"] == pytest.approx(list(ref["cmc"][:20]), abs=1e-6)
    # the fusion stage ranks the same way: its best single anchor is that anchor's own test result
    best = fused["trials"][0]["rows"][BEST]
    anchor_test = json.loads((mr / f"{['x2', 'x3', 'x4'].index(best['anchor'])}_{best['anchor']}" / "trial_0" /
                              "metrics.json").read_text())["test"]
    for k in ("rank1", "mAP", "mINP"):
        assert best[k] == pytest.approx(anchor_test[k], abs=1e-9)


def test_evaluate_reports_the_same_camera_aware_metrics(sweep, tmp_path):
    name, base, _ = sweep
    if name != "market1501":
        pytest.skip("one dataset is enough for the evaluate entry point")
    job = base / "mr" / "0_x2"
    trained = json.loads((job / "trial_0" / "metrics.json").read_text())
    proc = run("sing_lit.evaluate", [f"ckpt_path={job / trained['best_checkpoint']}", f"hydra.run.dir={tmp_path}"],
               base, base / "cache")
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "metrics.json").read_text())
    for k in ("rank1", "rank5", "mAP", "mINP"):
        assert result["test"][k] == pytest.approx(trained["test"][k], abs=1e-9)
    assert np.isfinite(result["val"]["mINP"])
