"""experiments/bench_accuracy.py: paired differences and pooling reports of disjoint trials."""

from __future__ import annotations

import importlib.util
import json
import random
import statistics
import sys
from pathlib import Path

import pytest

from sing_lit.reporting.report import pooled
from sing_lit.runtime.cli import UserError

REPO = Path(__file__).resolve().parents[1]


def load_bench():
    sys.path.insert(0, str(REPO / "experiments"))
    try:
        spec = importlib.util.spec_from_file_location("bench_accuracy", REPO / "experiments" / "bench_accuracy.py")
        bench = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(bench)
    finally:
        sys.path.remove(str(REPO / "experiments"))
    return bench


def stat(values):  # an independent summary: the standard library's mean and population std
    return {"mean": statistics.fmean(values), "std": statistics.pstdev(values), "n": len(values)}


def test_accuracy_bench_pretrains_on_the_source_with_the_targets_net_and_starts_both_deep_models_from_it(tmp_path):
    """experiments/bench_accuracy.py --pretrain: the source run keeps the target's backbone and logging, none of
    its data or budget, and composes to a re-id-only run; the deep studies then load its F_fe."""
    from conftest import compose_config

    bench = load_bench()
    target = ["data=prid2011", "data.root=/prid", "backbone=mobilenet_v2", "model.net.backbone.pretrained=false",
              "trainer.max_epochs=2", "logger=[csv]", "callbacks.pictures=null"]
    cmd = bench.pretrain_command(["data=grid", "data.root=/grid", "trainer.max_epochs=4"], target, tmp_path / "pre")
    overrides = cmd[cmd.index("sing_lit.train") + 1:]
    assert overrides == ["experiment=pretrain_source", "backbone=mobilenet_v2", "model.net.backbone.pretrained=false",
                         "logger=[csv]", "callbacks.pictures=null", "data=grid", "data.root=/grid",
                         "trainer.max_epochs=4", "model.channels_last=true", "ckpt_path=last",
                         f"hydra.run.dir={tmp_path / 'pre'}"]
    cfg = compose_config([f"paths.cache_dir={tmp_path}", *overrides[:-1]])
    assert cfg.data.name == "grid" and cfg.trainer.max_epochs == 4 and cfg.model.alpha == 0
    assert cfg.model.net.sr_net is None and cfg.model.net.backbone._target_.endswith("MobileNetV2")
    assert list(cfg.trials) == [0]
    init = bench.pretrained_fe(tmp_path / "pretrain")
    assert init == [f"model.init_from={tmp_path / 'pretrain' / 'trial_0' / 'checkpoints' / 'best.ckpt'}",
                    "model.init_parts=[fe]"]


def test_pooled_equals_the_statistics_of_the_union():
    rng = random.Random(0)
    parts = [[rng.uniform(0, 100) for _ in range(n)] for n in (3, 2, 1, 4)]
    got = pooled([stat(p) for p in parts])
    union = [v for p in parts for v in p]
    assert got["n"] == 10
    assert got["mean"] == pytest.approx(statistics.fmean(union), abs=1e-12)
    assert got["std"] == pytest.approx(statistics.pstdev(union), abs=1e-9)


def fake_report(trials, values, path: Path, pretrain=True):
    """accuracy.json as bench_accuracy writes it, from per-trial (rank1, mAP, best-anchor rank1) per study."""
    studies = {}
    labels = {"sing": "SING fused", "bicubic": "same recipe, sr=none, fused",
              "plain": "plain re-id net (HR + LR streams), sr=none, fused", "lomo_xqda": "LOMO+XQDA fused"}
    for study in values:
        label = labels[study]
        r1, m, best = zip(*values[study])
        studies[study] = {"label": label, "command": f"python {study} trials={trials}", "git_commit": "abc",
                          "cpu_s": 100.0 * len(trials), "wall_s": 50.0 * len(trials),
                          "fused": {"rank1": stat(r1), "mAP": stat(m)}, "best_single_anchor": {"rank1": stat(best),
                                                                                               "mAP": stat(m)},
                          "per_trial_fused_rank1": list(r1)}
        if pretrain and study != "lomo_xqda":
            studies[study]["cpu_s_with_pretrain"] = 100.0 * len(trials) + 40
    report = {"bench": "accuracy", "dataset": "prid2011", "trials": trials, "git_commit": "abc", "studies": studies}
    if pretrain:
        report["pretrain"] = {"command": "python pretrain", "cpu_s": 40.0, "wall_s": 20.0}
    path.mkdir(parents=True)
    (path / "accuracy.json").write_text(json.dumps(report))
    return path


def test_combine_pools_disjoint_trials_and_pairs_them_in_order(tmp_path):
    bench = load_bench()
    a = {"sing": [(40, 58, 38), (50, 60, 44), (45, 56, 45)], "bicubic": [(39, 54, 30), (44, 55, 41), (42, 53, 42)],
         "lomo_xqda": [(43, 55, 43), (43, 56, 44), (47, 57, 45)]}
    b = {"sing": [(43, 54, 38), (39, 53, 38)], "bicubic": [(33, 50, 33), (41, 52, 34)],
         "lomo_xqda": [(39, 51, 37), (37, 50, 36)]}
    report = bench.combine([fake_report([0, 1, 2], a, tmp_path / "a"), fake_report([3, 4], b, tmp_path / "b")])
    assert report["trials"] == [0, 1, 2, 3, 4]
    for study in a:
        rows = a[study] + b[study]
        for col, key in ((0, ("fused", "rank1")), (1, ("fused", "mAP")), (2, ("best_single_anchor", "rank1"))):
            got = report["studies"][study][key[0]][key[1]]
            assert got["mean"] == pytest.approx(statistics.fmean(r[col] for r in rows))
            assert got["std"] == pytest.approx(statistics.pstdev([r[col] for r in rows]))
        assert report["studies"][study]["cpu_s"] == 500.0
    assert report["pretrain"]["cpu_s"] == 80.0
    lomo = report["sing_minus_lomo_xqda_rank1_paired"]
    assert lomo["per_trial"] == [-3, 7, -2, 4, 2] and lomo["sing_ahead_in"] == 3 and lomo["trials"] == 5
    assert lomo["mean"] == pytest.approx(1.6) and lomo["std"] == pytest.approx(statistics.pstdev([-3, 7, -2, 4, 2]),
                                                                              abs=0.005)
    assert report["sing_minus_bicubic_rank1_paired"]["per_trial"] == [1, 6, 3, 10, -2]
    md = bench.markdown(report)
    assert "43.4 ± 3.9" in md and "trials [0, 1, 2, 3, 4], pooled from 2 runs" in md
    assert "SING ahead in 3 of 5" in md


def test_combine_refuses_what_cannot_be_pooled(tmp_path):
    bench = load_bench()
    v = {k: [(40, 50, 40)] for k in ("sing", "bicubic", "lomo_xqda")}
    a, b = fake_report([0], v, tmp_path / "a"), fake_report([0], v, tmp_path / "b")
    with pytest.raises(UserError, match="share trials"):
        bench.combine([a, b])
    c = fake_report([1], v, tmp_path / "c", pretrain=False)
    with pytest.raises(UserError, match="different studies"):
        bench.combine([a, c])
    with pytest.raises(UserError, match="does not exist"):
        bench.combine([a, tmp_path / "nowhere"])


def test_plain_study_is_table2s_bicubic_row_and_singles_paired_differences_include_it(tmp_path):
    """The bench's ``plain`` study composes to the same training config as Table 2's deep "Bicubic" job
    (experiment=table2_deep_plain with its sweep's sr=none), and SING is paired against it."""
    from omegaconf import OmegaConf

    from conftest import compose_config

    bench = load_bench()
    target = ["data=prid2011", "data.root=/prid", f"paths.cache_dir={tmp_path}"]
    cmd = bench.command("plain", target, [0, 1], tmp_path / "plain")
    overrides = cmd[cmd.index("-m", cmd.index("sing_lit.train")) + 1:]
    assert overrides[0] == "+anchor=1/2,1/3,1/4" and overrides[-2:] == ["ckpt_path=last",
                                                                        f"hydra.sweep.dir={tmp_path / 'plain'}"]
    ours = compose_config(["+anchor=1/3", *overrides[1:-2]])
    table2 = compose_config(["experiment=table2_deep_plain", "+anchor=1/3", "sr=none", *target, "trials=[0,1]"])
    a, b = (OmegaConf.to_container(c, resolve=False) for c in (ours, table2))
    a.pop("task_name"), b.pop("task_name")
    assert a == b
    assert ours.model.alpha == 0 and ours.model.synthetic_stream is False and ours.model.net.sr_net is None

    rows = {"sing": [(40, 58, 38), (50, 60, 44)], "bicubic": [(39, 54, 30), (44, 55, 41)],
            "plain": [(39, 55, 33), (43, 56, 40)], "lomo_xqda": [(43, 55, 43), (43, 56, 44)]}
    report = bench.combine([fake_report([0, 1], rows, tmp_path / "a")])
    assert report["sing_minus_plain_rank1_paired"]["per_trial"] == [1, 7]
    assert 'SING minus "plain' in bench.markdown(report)
