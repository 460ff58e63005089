"""``python -m sing_lit.train`` end to end on the tiny synthetic benchmark, in subprocesses.

The literal commands of the README (``+anchor=1/3``, ``-m +anchor=1/2,1/3,1/4``) with
``debug=tiny``, resume from a checkpoint, what a checkpoint records, and one-line errors.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from cli_checks import assert_one_error_line

TINY = ["debug=tiny"]


def only_dir(pattern: str, root: Path) -> Path:
    found = sorted(root.glob(pattern))
    assert len(found) == 1, f"expected one {pattern} under {root}, found {found}"
    return found[0]


def check_ok(proc) -> None:
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"


def check_test_metrics(metrics: dict) -> None:
    for k in ("rank1", "mAP", "psnr", "ssim"):
        v = metrics["test"][k]
        assert v["n"] == 1 and v["mean"] == v["mean"], k  # present and not NaN
    assert 0 <= metrics["test"]["rank1"]["mean"] <= 100 and 0 <= metrics["test"]["mAP"]["mean"] <= 100
    assert metrics["test"]["psnr"]["mean"] > 0 and -1 <= metrics["test"]["ssim"]["mean"] <= 1


@pytest.fixture(scope="module")
def anchor_run(run_cli, tmp_path_factory) -> Path:
    """``python -m sing_lit.train +anchor=1/3 debug=tiny``, run once for this module."""
    cwd = tmp_path_factory.mktemp("anchor_run")
    proc = run_cli(["+anchor=1/3", *TINY], cwd)
    check_ok(proc)
    return only_dir("outputs/train/synthetic/x3/*", cwd)


def test_single_anchor_run_writes_metrics_and_best_checkpoint(anchor_run):
    metrics = json.loads((anchor_run / "metrics.json").read_text())
    assert metrics["anchor"] == {"name": "x3", "label": "1/3", "ratio": pytest.approx(1 / 3)}
    assert metrics["dataset"] == "synthetic" and metrics["synthetic_stream"] is True
    check_test_metrics(metrics)
    best = anchor_run / "trial_0" / "checkpoints" / "best.ckpt"
    assert best.is_file()
    assert anchor_run / metrics["trials"][0]["best_checkpoint"] == best  # relative to the run dir
    trial = json.loads((anchor_run / "trial_0" / "metrics.json").read_text())
    assert trial["test"]["rank1"] == metrics["test"]["rank1"]["mean"]
    assert (anchor_run / "split.json").is_file() and (anchor_run / ".hydra" / "config.yaml").is_file()


def test_without_a_monitor_the_trial_keeps_the_last_epoch_and_its_validation_score(run_cli, tmp_path):
    # conf/budget/prid2011.yaml's choice: best.ckpt is the latest epoch's model, and the score is its validation's
    run = tmp_path / "run"
    check_ok(run_cli(["+anchor=1/3", *TINY, "trainer.max_epochs=3", "callbacks.model_checkpoint.monitor=null",
                      "logger=[csv]", "~callbacks.pictures", f"hydra.run.dir={run}"], tmp_path))
    trial = json.loads((run / "trial_0" / "metrics.json").read_text())
    best, last = (torch.load(run / trial[k], map_location="cpu", weights_only=False)
                  for k in ("best_checkpoint", "last_checkpoint"))
    assert best["epoch"] == last["epoch"] == 2 and best["global_step"] == last["global_step"]
    rows = [r for r in csv.DictReader(open(run / "logs" / "trial_0" / "metrics.csv")) if r.get("val/rank1")]
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    assert trial["val_rank1_best"] == pytest.approx(float(rows[-1]["val/rank1"]))


def test_checkpoint_records_provenance(anchor_run):
    ckpt = torch.load(anchor_run / "trial_0" / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)
    meta = ckpt["sing_lit"]
    assert meta["anchor"]["name"] == "x3" and meta["anchor"]["ratio"] == pytest.approx(1 / 3)
    assert meta["config"]["anchor"] == meta["anchor"] and meta["config"]["data"]["name"] == "synthetic"
    assert meta["config"]["data"]["anchor_ratio"] == pytest.approx(1 / 3)
    data = meta["data"]
    assert data["dataset"] == "synthetic" and data["trial"] == 0 and data["input_size"] == [64, 32]
    assert isinstance(data["split"], str) and len(data["split"]) == 16
    assert meta["num_classes"] >= 2
    classifier = [v for k, v in ckpt["state_dict"].items() if k.endswith("classifier.weight")]
    assert len(classifier) == 1 and classifier[0].shape[0] == meta["num_classes"]
    assert ckpt["hyper_parameters"]["num_classes"] == meta["num_classes"]


def test_resume_from_best_checkpoint(anchor_run, run_cli, tmp_path):
    best = anchor_run / "trial_0" / "checkpoints" / "best.ckpt"
    proc = run_cli(["+anchor=1/3", *TINY, f"ckpt_path={best}", "trainer.max_epochs=2"], tmp_path)
    check_ok(proc)
    assert f"Restoring states from the checkpoint path at {best}" in proc.stdout + proc.stderr
    run = only_dir("outputs/train/synthetic/x3/*", tmp_path)
    last = torch.load(run / "trial_0" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    first = torch.load(best, map_location="cpu", weights_only=False)
    assert last["epoch"] == 1 and last["global_step"] == 2 * first["global_step"] > 0
    check_test_metrics(json.loads((run / "metrics.json").read_text()))


def test_fast_dev_run(run_cli, tmp_path):
    proc = run_cli(["debug=fast_dev_run", "data.reader.num_ids=16", "data.batch_size=8",
                    "model.net.backbone.widths=[8,16]"], tmp_path)
    check_ok(proc)
    run = only_dir("outputs/train/synthetic/x2/*", tmp_path)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test"] == {} and "test" not in metrics["trials"][0]
    # no best checkpoint (Lightning 2.6 still writes last.ckpt from ModelCheckpoint.on_train_end)
    assert not list(run.rglob("best*.ckpt")) and metrics["trials"][0]["best_checkpoint"] == ""


def test_multirun_over_the_three_anchors(run_cli, tmp_path):
    proc = run_cli(["-m", "+anchor=1/2,1/3,1/4", *TINY], tmp_path)
    check_ok(proc)
    sweep = only_dir("multirun/train/synthetic/*", tmp_path)
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir() and p.name[0].isdigit())
    assert jobs == ["0_x2", "1_x3", "2_x4"]
    for job, ratio in zip(jobs, (1 / 2, 1 / 3, 1 / 4), strict=True):
        metrics = json.loads((sweep / job / "metrics.json").read_text())
        assert metrics["anchor"]["ratio"] == pytest.approx(ratio) and metrics["anchor"]["name"] == job[2:]
        check_test_metrics(metrics)
        assert (sweep / job / "trial_0" / "checkpoints" / "best.ckpt").is_file()
    assert (sweep / "fuse" / "metrics.json").is_file()  # the fusion-eval stage ran after the sweep


# ---- bad input: one actionable line, no traceback ---------------------------------------------


@pytest.mark.parametrize(("overrides", "names"), [
    (["anchor.ratio=1.5"], ["anchor.ratio=1.5", "(0, 1)"]),
    (["anchor.ratio=0"], ["anchor.ratio=0", "(0, 1)"]),
    (["model.alpha=-1"], ["model.alpha", "-1"]),
    (["data.reader.num_ids=0"], ["num_ids=0"]),
], ids=["ratio_above_1", "ratio_0", "negative_alpha", "empty_dataset"])
def test_bad_values_give_one_error_line(cli_in_process, tmp_path, overrides, names):
    proc = cli_in_process([*TINY, *overrides], tmp_path)
    assert_one_error_line(proc, *names)
    assert proc.returncode == 2


def test_missing_mandatory_value(run_cli, tmp_path):
    from sing_lit.runtime.cli import CONFIG_DIR

    if not (Path(CONFIG_DIR) / "data" / "prid2011.yaml").exists():
        pytest.skip("conf/data/prid2011.yaml does not exist")
    proc = run_cli(["data=prid2011"], tmp_path)
    line = assert_one_error_line(proc, "data.root")
    assert "Missing mandatory value" in line and proc.returncode == 2


@pytest.mark.parametrize(("overrides", "names"), [
    (["backbone=nope"], ["nope", "small_cnn", "resnet50", "dgd"]),
    (["data=nope"], ["nope", "synthetic"]),
    (["model.alphaa=1"], ["model.alphaa", "not in struct"]),
], ids=["unknown_backbone", "unknown_data", "typo_key"])
def test_hydra_rejects_unknown_options(cli_in_process, tmp_path, overrides, names):
    proc = cli_in_process([*TINY, *overrides], tmp_path)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    for name in names:
        assert name in proc.stderr, proc.stderr[-3000:]
    assert not (tmp_path / "outputs").exists() or not list((tmp_path / "outputs").rglob("metrics.json"))
