"""data.protocol.val_mode=refit: which people each stage trains on, the epochs it retrains for, where sigma
comes from. On the built-in benchmark with debug=tiny: 16 people, 8 tested, 2 (20% of 8, rounded) held
out for validation, 6 training; the refit run trains on those 6 + 2."""

from __future__ import annotations

import csv
import math
import shutil
from pathlib import Path

import hydra
import pytest
import torch

from conftest import TINY, compose_config
from sing_lit.runtime.anchors import AnchorRun, anchor_from_checkpoint, anchor_from_run_dir, check_compatible
from sing_lit.runtime.cli import UserError

REFIT = ("data.protocol.val_mode=refit", "logger=csv", "~callbacks.pictures")
EPOCHS = 2  # of the holdout runs below; limit_train_batches=2 (debug=tiny): 2 steps per epoch


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


@pytest.fixture(scope="module")
def refit_runs(tmp_path_factory, cache_dir) -> dict[str, Path]:
    """Two anchors trained with val_mode=refit (in this process), one run dir each."""
    from sing_lit.train import train

    base = tmp_path_factory.mktemp("refit")
    runs = {}
    for anchor in ("1/2", "1/4"):
        out = base / anchor.replace("/", "_")
        train(compose_config([f"paths.root_dir={base}", f"paths.output_dir={out}", f"paths.cache_dir={cache_dir}",
                              *TINY, f"+anchor={anchor}", f"trainer.max_epochs={EPOCHS}", *REFIT]))
        runs[anchor] = out
    return runs


def test_the_datamodule_of_the_refit_stage_trains_on_train_and_val(tiny_cfg):
    held = hydra.utils.instantiate(tiny_cfg().data, split_out=None)
    refit = hydra.utils.instantiate(tiny_cfg().data, split_out=None, refit=True)
    for dm in (held, refit):
        dm.setup("fit")
    trial = held.trials[0]
    assert refit.trials == held.trials
    assert (len(trial.train), len(trial.val), len(trial.test)) == (6, 2, 8)
    assert set(held.label_of) == set(trial.train)
    assert set(refit.label_of) == set(trial.train) | set(trial.val)
    assert set(refit.train_set.hr_label.tolist()) == set(range(8)) and held.num_classes == 6
    assert held.signature()["split"] == refit.signature()["split"]
    assert (held.signature()["trained_on"], refit.signature()["trained_on"]) == ("train", "train+val")


def best_epochs(metrics_csv: Path) -> int:
    """Epochs up to the holdout run's best val/rank1 (the first maximum, as ModelCheckpoint keeps it)."""
    rows = [r for r in csv.DictReader(metrics_csv.open()) if r.get("val/rank1")]
    scores = [float(r["val/rank1"]) for r in rows]
    return int(rows[scores.index(max(scores))]["epoch"]) + 1


def test_each_stage_trains_on_its_people_for_the_chosen_epochs(refit_runs):
    import json

    for out in refit_runs.values():
        split = json.loads((out / "split.json").read_text())
        assert split["val_mode"] == "refit"
        trial = split["trials"][0]
        train, val = trial["train"], trial["val"]
        holdout = load(out / "trial_0" / "holdout" / "checkpoints" / "best.ckpt")
        final = load(out / "trial_0" / "checkpoints" / "final.ckpt")
        assert holdout["sing_lit"]["data"]["trained_on"] == "train" and holdout["sing_lit"]["num_classes"] == 6
        assert final["sing_lit"]["data"]["trained_on"] == "train+val" and final["sing_lit"]["num_classes"] == 8
        assert len(train) == 6 and len(val) == 2  # the classifiers' rows: one per person trained on
        assert holdout["state_dict"]["net.reid_net.classifier.weight"].shape[0] == len(train)
        assert final["state_dict"]["net.reid_net.classifier.weight"].shape[0] == len(train) + len(val)
        metrics = json.loads((out / "trial_0" / "metrics.json").read_text())
        epochs = best_epochs(out / "logs" / "trial_0_holdout" / "metrics.csv")
        assert metrics["refit_epochs"] == epochs
        assert (final["epoch"], final["global_step"]) == (epochs - 1, 2 * epochs)
        assert metrics["holdout_checkpoint"] == "trial_0/holdout/checkpoints/best.ckpt"
        assert metrics["best_checkpoint"] == "trial_0/checkpoints/final.ckpt" and "test" in metrics
        assert "test" not in json.loads((out / "trial_0" / "holdout" / "metrics.json").read_text())
        # no validation in the refit run (its training people include the validation people)
        assert not any(r.get("val/rank1") for r in csv.DictReader((out / "logs" / "trial_0" / "metrics.csv").open()))
        assert json.loads((out / "metrics.json").read_text())["val_mode"] == "refit"


def test_sigma_is_chosen_with_the_holdout_runs(refit_runs, monkeypatch, tmp_path):
    from sing_lit.sing import fusion_stage

    anchors = sorted((anchor_from_run_dir(out) for out in refit_runs.values()), key=lambda a: -a.ratio)
    built = []
    real_build = fusion_stage.build_net
    monkeypatch.setattr(fusion_stage, "build_net", lambda ckpt, path: built.append(Path(path)) or real_build(ckpt, path))
    d = fusion_stage.anchor_distances(anchors, 0)
    holdout = [refit_runs[a] / "trial_0" / "holdout" / "checkpoints" / "best.ckpt" for a in ("1/2", "1/4")]
    final = [refit_runs[a] / "trial_0" / "checkpoints" / "final.ckpt" for a in ("1/2", "1/4")]
    assert built == holdout + final  # val distances (sigma, best single anchor) first, then test

    # The val distances are the holdout net's, computed here directly, not the refit net's.
    dm = hydra.utils.instantiate(load(final[0])["sing_lit"]["config"]["data"], trial=0, split_out=None)
    dm.setup_eval()
    probe, gallery = dm.eval_sets["val"]

    def dists(path: Path) -> torch.Tensor:
        net = real_build(load(path), path)
        with torch.no_grad():
            q = net.lr_features(probe.images.float() / 255)
            g = net.hr_features(gallery.images.float() / 255)
        return ((q[:, None] - g[None]) ** 2).sum(-1).sqrt()

    assert torch.allclose(d["val"]["dists"][0], dists(holdout[0]), atol=1e-4)
    assert not torch.allclose(d["val"]["dists"][0], dists(final[0]), atol=1e-4)

    result = fusion_stage.run_fusion(anchors, tmp_path / "fuse", [0.5, 1.0, 2.0], "rank1")
    assert result["sigma"][0] in (0.5, 1.0, 2.0) and math.isfinite(result["table"][fusion_stage.FUSED]["rank1"]["mean"])


def test_a_refit_checkpoint_finds_its_holdout_run_or_is_refused(refit_runs, tmp_path):
    from sing_lit.sing.fusion_stage import anchor_distances

    finals = [refit_runs[a] / "trial_0" / "checkpoints" / "final.ckpt" for a in ("1/2", "1/4")]
    anchors = [anchor_from_checkpoint(p) for p in finals]
    for a, out in zip(anchors, refit_runs.values()):
        assert a.val_checkpoint(0).resolve() == (out / "trial_0" / "holdout" / "checkpoints" / "best.ckpt").resolve()
    # Without its holdout run, a refit model's validation distances would be a training-set fit.
    bare = [AnchorRun(a.name, a.ratio, a.source, a.checkpoints) for a in anchors]
    with pytest.raises(UserError, match="x2: checkpoint .*final.ckpt was trained on the validation people"):
        anchor_distances(bare, 0)
    moved = tmp_path / "final.ckpt"
    shutil.copy(finals[0], moved)  # copied away from trial_0/holdout/
    with pytest.raises(UserError, match="does not exist"):
        anchor_distances([anchor_from_checkpoint(moved), anchors[1]], 0)


def test_refit_and_holdout_anchors_are_not_fused_together():
    meta = {"dataset": "synthetic", "root": "/r", "split": "s", "input_size": [64, 32], "mlr": {}, "upscale": "bicubic"}
    anchors = [AnchorRun("x2", 0.5, Path("a"), {}), AnchorRun("x4", 0.25, Path("b"), {})]
    metas = {"x2": {"data": {**meta, "trained_on": "train+val"}}, "x4": {"data": {**meta, "trained_on": "train"}}}
    with pytest.raises(UserError, match="training people"):
        check_compatible(anchors, metas)


def test_the_refit_run_keeps_the_holdout_schedule_and_stops_at_the_chosen_epoch(tiny_cfg, tmp_path, monkeypatch):
    """Forced to 1 epoch of a 3-epoch config: it stops after 2 steps, its learning rate where the 3-epoch
    schedule has it (warmup_cosine over 6 steps, warm-up int(0.1 * 6) = 0: factor 0.01 + 0.99 * (1 + cos(pi/3)) / 2),
    not annealed as a 1-epoch schedule would be (0.01)."""
    import sing_lit.train as train_module

    monkeypatch.setattr(train_module, "holdout_epochs", lambda path: 1)
    train_module.train(tiny_cfg("trainer.max_epochs=3", *REFIT))
    final = load(tmp_path / "out" / "trial_0" / "checkpoints" / "final.ckpt")
    assert (final["epoch"], final["global_step"], final["sing_lit"]["refit_epochs"]) == (0, 2, 1)
    factor = 0.01 + 0.99 * (1 + math.cos(math.pi * 2 / 6)) / 2
    lrs = [g["lr"] for g in final["optimizer_states"][0]["param_groups"]]
    assert lrs == pytest.approx([1e-3 * factor] * len(lrs))


def test_evaluate_gives_no_validation_score_for_a_refit_model(refit_runs, compose_cfg):
    from sing_lit.evaluate import evaluate

    ckpt = refit_runs["1/2"] / "trial_0" / "checkpoints" / "final.ckpt"
    result = evaluate(compose_cfg([f"ckpt_path={ckpt}"], config_name="evaluate"))
    assert result["val"] is None and result["test"]["rank1"] >= 0


def test_refit_refuses_a_one_file_resume(tiny_cfg):
    from sing_lit.train import check_config

    with pytest.raises(UserError, match="resume with ckpt_path=last"):
        check_config(tiny_cfg("data.protocol.val_mode=refit", "ckpt_path=/some/best.ckpt", "trials=[0]"))
    with pytest.raises(UserError, match="val_mode='sometimes'"):
        check_config(tiny_cfg("data.protocol.val_mode=sometimes"))


def test_sr_reid_runs_holdout_only(compose_cfg):
    from sing_lit.sr_reid import check_config

    with pytest.raises(UserError, match="val_mode=holdout"):
        check_config(compose_cfg(["data.protocol.val_mode=refit"], config_name="sr_reid"))
