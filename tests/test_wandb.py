"""W&B (offline), TensorBoard and combined loggers, read back from what the runs wrote.

Every run is a subprocess whose environment has no ``WANDB_*`` variable: offline mode must
come from ``conf/logger/wandb.yaml``, and nothing leaks into later tests.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch
from PIL import Image

from python_runs import run_python
from sing_lit.sing.fusion import METRICS
from wandb_offline import offline_runs, read_run

TINY = ["debug=tiny"]
EVAL_KEYS = [f"{s}/{m}" for s in ("val", "test")
             for m in ("rank1", "rank5", "rank10", "rank20", "mAP", "mINP", "psnr", "ssim")]
# recipe=strong (model.h2l_reid_weight=0): x^h2l trains F_sr only, so it has no cross-entropy to log
LOSSES = ["loss", "loss_sr", "loss_reid", "loss_reid_hr", "loss_reid_lr"]


def run_clean(args: list[str], cwd: Path, cache: Path, home: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_") and k != "HYDRA_FULL_ERROR"}
    env.update(SING_LIT_CACHE=str(cache), PYTHONUNBUFFERED="1")
    if home is not None:  # no ~/.netrc, no wandb settings: as on a machine that never ran `wandb login`
        env.update(HOME=str(home), WANDB_CONFIG_DIR=str(home / ".config" / "wandb"))
    return run_python(["-m", "sing_lit.train", *args], cwd, env, timeout=600)


def check_ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"


def only(paths: list) -> Path:
    assert len(paths) == 1, paths
    return paths[0]


# ---- config composition (in process, nothing starts) ---------------------------------------------
def test_logger_lists_compose(compose_cfg):
    cfg = compose_cfg(["logger=[wandb,csv]"])
    assert list(cfg.logger) == ["wandb", "csv"]
    assert cfg.logger.wandb.offline is True and cfg.logger.wandb.project == "sing_lit"
    assert cfg.logger.csv._target_.endswith("CSVLogger")
    assert list(compose_cfg(["logger=[csv,tensorboard]"]).logger) == ["csv", "tensorboard"]
    assert compose_cfg(["logger=wandb", "logger.wandb.offline=false"]).logger.wandb.offline is False


def test_fuse_config_takes_the_wandb_logger(compose_cfg, tmp_path):
    from sing_lit.runtime.wandb_runs import fusion_wandb_init, sweep_group

    assert "logger" not in compose_cfg(config_name="fuse")
    cfg = compose_cfg(["logger=wandb"], config_name="fuse")
    init = fusion_wandb_init(cfg.logger, tmp_path / "mr" / "fuse", sweep_group(tmp_path / "mr"))
    assert init["job_type"] == "fuse" and init["mode"] == "offline" and init["name"] == "fuse"
    assert init["group"] == f"{tmp_path.name}-mr" and init["dir"] == str(tmp_path / "mr" / "fuse")
    assert fusion_wandb_init(compose_cfg(["logger=csv"], config_name="fuse").logger, tmp_path, "g") is None


# ---- one anchor with logger=[wandb,csv], then a resume ------------------------------------------
@pytest.fixture(scope="module")
def wandb_run(tmp_path_factory, cache_dir) -> Path:
    cwd = tmp_path_factory.mktemp("wandb_run")
    proc = run_clean(["+anchor=1/3", *TINY, "logger=[wandb,csv]", "trainer.max_epochs=2",
                      "trainer.log_every_n_steps=1"], cwd, cache_dir)
    check_ok(proc)
    return only(sorted(cwd.glob("outputs/train/synthetic/x3/*")))


def test_offline_run_logs_metrics_config_and_names(wandb_run):
    run = read_run(only(sorted((wandb_run / "wandb").glob("offline-run-*"))))
    assert (run.project, run.group, run.job_type, run.name) == ("sing_lit", "synthetic", "x3", "synthetic-x3-trial0")
    keys = run.keys
    missing = [k for k in EVAL_KEYS + [f"train/{n}_step" for n in LOSSES] + [f"train/{n}_epoch" for n in LOSSES]
               + ["lr-Adam/reid", "lr-Adam/sr"] if k not in keys]
    assert not missing, sorted(keys)
    assert not [k for k in keys if "loss_reid_h2l" in k]
    assert len(run.values("val/rank1")) == 2 and len(run.values("lr-Adam/sr")) == 2  # one per epoch
    # the logged numbers are the run's numbers
    metrics = json.loads((wandb_run / "metrics.json").read_text())
    assert run.values("test/rank1") == [pytest.approx(metrics["test"]["rank1"]["mean"])]
    assert run.values("test/mAP") == [pytest.approx(metrics["test"]["mAP"]["mean"])]
    # the resolved Hydra config
    assert run.config["anchor"] == {"name": "x3", "label": "1/3", "ratio": pytest.approx(1 / 3)}
    assert run.config["logger"]["wandb"]["offline"] is True and run.config["data"]["name"] == "synthetic"
    assert run.config["model"]["alpha"] == 1.0
    # the id is kept for a resume
    assert (wandb_run / "trial_0" / "wandb_id").read_text().strip() == run.run_id
    ckpt = torch.load(wandb_run / "trial_0" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["sing_lit"]["wandb_id"] == run.run_id
    # and the CSV logger still writes its file next to it
    header = (wandb_run / "logs" / "trial_0" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"val/rank1", "train/loss_sr_epoch", "lr-Adam/reid"} <= set(header)


def test_offline_run_holds_the_pictures(wandb_run):
    run = read_run(only(sorted((wandb_run / "wandb").glob("offline-run-*"))))
    for name in ("sr_grid", "ranked", "cmc"):
        images = run.images(f"pictures/{name}")
        assert len(images) == 2, (name, images)  # epochs 0 and 1
        local = wandb_run / "trial_0" / "pictures" / f"{name}_epoch001.png"
        with Image.open(images[-1]) as logged, Image.open(local) as png:
            assert logged.size == png.size and logged.format == "PNG"
            if name != "cmc":  # drawn by us: the very same pixels
                assert logged.convert("RGB").tobytes() == png.convert("RGB").tobytes()
    assert len(run.images("pictures/cmc_test")) == 1


def test_resume_continues_the_same_wandb_run(wandb_run, cache_dir, tmp_path):
    first = read_run(only(sorted((wandb_run / "wandb").glob("offline-run-*"))))
    last = wandb_run / "trial_0" / "checkpoints" / "last.ckpt"
    proc = run_clean(["+anchor=1/3", *TINY, "logger=wandb", f"ckpt_path={last}", "trials=[0]",
                      "trainer.max_epochs=3", "test=false"], tmp_path, cache_dir)
    check_ok(proc)
    resumed = read_run(only(sorted(tmp_path.glob("outputs/train/synthetic/x3/*/wandb/offline-run-*"))))
    assert resumed.run_id == first.run_id
    assert max(row["epoch"] for row in resumed.history if "val/rank1" in row) == 2  # the resumed run goes on


def test_tensorboard_logger(tmp_path, cache_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    proc = run_clean([*TINY, "logger=tensorboard"], tmp_path, cache_dir)
    check_ok(proc)
    tb = only(sorted(tmp_path.glob("outputs/train/synthetic/x2/*/tb/trial_0")))
    acc = EventAccumulator(str(tb), size_guidance={"images": 0})
    acc.Reload()
    assert {"val/rank1", "val/psnr", "train/loss_sr_epoch", "test/mAP", "lr-Adam/sr"} <= set(acc.Tags()["scalars"])
    assert {"pictures/sr_grid", "pictures/ranked"} <= set(acc.Tags()["images"])
    assert not list(tmp_path.rglob("offline-run-*"))


# ---- bad input ---------------------------------------------------------------------------------------
def test_wandb_that_cannot_start_fails_before_training(tmp_path, cache_dir):
    home = tmp_path / "home"
    home.mkdir()
    proc = run_clean([*TINY, "logger=wandb", "logger.wandb.offline=false"], tmp_path, cache_dir, home=home)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "W&B could not start" in errors[0] and "logger.wandb.offline=true" in errors[0]
    assert not list(tmp_path.rglob("*.ckpt")) and not list(tmp_path.rglob("pictures"))


# ---- the three anchors and the fusion stage, one W&B run each --------------------------------------
@pytest.mark.slow
def test_multirun_gives_one_wandb_run_per_job_in_one_group(tmp_path, cache_dir):
    proc = run_clean(["-m", "+anchor=1/2,1/3,1/4", *TINY, "logger=wandb"], tmp_path, cache_dir)
    check_ok(proc)
    sweep = only(sorted(tmp_path.glob("multirun/train/synthetic/*")))
    runs = {r.job_type: r for r in offline_runs(sweep)}
    assert sorted(runs) == ["fuse", "x2", "x3", "x4"] and len(offline_runs(sweep)) == 4
    assert len({r.run_id for r in runs.values()}) == 4
    assert {r.group for r in runs.values()} == {f"synthetic-{sweep.name}"}
    assert runs["x2"].name == "synthetic-0_x2-trial0" and runs["fuse"].name == "fuse"
    for job, jt in (("0_x2", "x2"), ("1_x3", "x3"), ("2_x4", "x4")):
        assert list((sweep / job / "wandb").glob(f"offline-run-*-{runs[jt].run_id}"))
        assert "val/rank1" in runs[jt].keys and runs[jt].images("pictures/sr_grid")

    fuse, result = runs["fuse"], json.loads((sweep / "fuse" / "metrics.json").read_text())
    assert list((sweep / "fuse" / "wandb").glob(f"offline-run-*-{fuse.run_id}"))
    fused = result["table"]["SING fused (Eq. 6-8)"]
    for m in METRICS:
        assert fuse.values(f"fuse/{m}") == [pytest.approx(fused[m]["mean"])]
    row = only(fuse.history)
    table = json.loads((fuse.dir / "files" / row["fuse/results/path"]).read_text())
    by_model = {r[1]: dict(zip(table["columns"], r)) for r in table["data"]}
    assert len(by_model) == 3 + 7  # fused, mean, best + the 7 anchor subsets
    assert by_model["SING fused (Eq. 6-8)"]["rank1_mean"] == pytest.approx(fused["rank1"]["mean"])
    sigma_cv = json.loads((fuse.dir / "files" / row["fuse/sigma_cv/path"]).read_text())
    assert [r[1] for r in sigma_cv["data"]] == result["sigma_grid"]
    assert "_wandb/visualize/fuse/sigma_cv_plot" in fuse.config
    with Image.open(only(fuse.images("fuse/cmc"))) as img, Image.open(sweep / "fuse" / "cmc.png") as png:
        assert img.size == png.size
