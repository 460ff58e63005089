"""Same config and seed on CPU: byte-identical outputs, twice in a row.

Two multiruns of two anchors (training, then the fusion callback) in two sweep dirs, each with
its own data cache (so the built-in benchmark is generated twice too), then ``python -m
sing_lit.fuse`` on the anchors; plus the MLR construction twice. metrics.json holds no
run-dependent value (absolute paths, times): those go to run_info.json. The last test relaunches
a half-finished multirun with ``ckpt_path=last`` and gets the same bytes again.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from python_runs import run_python
from sing_lit.data.mlr import build_mlr
from sing_lit.data.readers.prid2011 import read_prid2011
from tiny_prid import write_tiny_prid

SMALL = ["debug=tiny", "model.net.sr_net.channels=[8,4]", "logger=[]", "~callbacks.pictures"]
JOBS = ("0_x2", "1_x3")


def run(module: str, args: list[str], cwd: Path, cache: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env["SING_LIT_CACHE"] = str(cache)
    proc = run_python(["-m", module, *args], cwd, env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def sweep_args(sweep: Path) -> list[str]:
    return ["-m", "+anchor=1/2,1/3", *SMALL, f"hydra.sweep.dir={sweep}"]


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("determinism")
    for name in ("a", "b"):
        run("sing_lit.train", sweep_args(base / name / "mr"), base, base / name / "cache")
    return base / "a", base / "b"


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_training_twice_gives_identical_metrics(sweeps):
    a, b = sweeps
    for job in JOBS:
        for name in ("metrics.json", "trial_0/metrics.json", "split.json"):
            assert (a / "mr" / job / name).read_bytes() == (b / "mr" / job / name).read_bytes(), (job, name)
        text = (a / "mr" / job / "metrics.json").read_text()
        assert str(a) not in text and not re.search(r"\d{4}-\d\d-\d\d[T ]\d\d:", text)  # no paths, no times
        info = json.loads((a / "mr" / job / "run_info.json").read_text())
        assert info["run_dir"] == str((a / "mr" / job).resolve()) and info["started"] <= info["finished"]
        assert isinstance(info["cpu"]["capability"], str) and info["cpu"]["capability"]  # e.g. AVX2, AVX512
        assert info["cpu"]["threads"] >= 1
    assert files(a / "cache") == files(b / "cache")  # the built-in benchmark, generated twice


def test_fusion_twice_gives_identical_results(sweeps, tmp_path):
    a, b = sweeps
    for name in ("metrics.json", "table.md", "table.csv"):
        assert (a / "mr" / "fuse" / name).read_bytes() == (b / "mr" / "fuse" / name).read_bytes(), name
    # A third time, from the command line, on the other sweep's anchors (same bytes, other paths).
    out = tmp_path / "fuse"
    anchors = ",".join(str(b / "mr" / job) for job in JOBS)
    run("sing_lit.fuse", [f"anchors=[{anchors}]", f"hydra.run.dir={out}"], tmp_path, b / "cache")
    assert (out / "metrics.json").read_bytes() == (a / "mr" / "fuse" / "metrics.json").read_bytes()
    assert str(b) not in (out / "metrics.json").read_text()
    sources = [x["source"] for x in json.loads((out / "run_info.json").read_text())["anchors"]]
    assert sources == [str((b / "mr" / job).resolve()) for job in JOBS]


def test_mlr_construction_is_deterministic(tmp_path):
    records = read_prid2011(write_tiny_prid(tmp_path / "prid"))
    built = []
    for cache in ("c1", "c2"):
        out, ratio_of = build_mlr(records, tmp_path / cache, "prid2011", lr_camera=0, seed=3)
        built.append(([(Path(r.path).name, r.genuine_lr) for r in out], sorted(ratio_of.values())))
    assert built[0] == built[1] and any(lr for _, lr in built[0][0])
    assert files(tmp_path / "c1") == files(tmp_path / "c2")


@pytest.mark.slow
def test_relaunched_multirun_reuses_finished_anchors(sweeps, tmp_path):
    """A sweep whose x3 job died: relaunched with ckpt_path=last, x2 is reused (not retrained), x3
    is trained, the fusion stage runs, and every result matches the uninterrupted sweep's bytes."""
    a, _ = sweeps
    sweep = tmp_path / "mr"
    shutil.copytree(a / "mr", sweep)
    shutil.rmtree(sweep / "1_x3" / "trial_0")
    (sweep / "1_x3" / "metrics.json").unlink()
    shutil.rmtree(sweep / "fuse")
    x2_best = sweep / "0_x2" / "trial_0" / "checkpoints" / "best.ckpt"
    mtime = x2_best.stat().st_mtime_ns
    proc = run("sing_lit.train", [*sweep_args(sweep), "ckpt_path=last"], tmp_path, a / "cache")
    out = proc.stdout + proc.stderr
    assert "trial 0: finished earlier" in out and "starting fresh" in out
    assert x2_best.stat().st_mtime_ns == mtime
    for name in ("0_x2/metrics.json", "1_x3/metrics.json", "1_x3/trial_0/metrics.json", "fuse/metrics.json"):
        assert (sweep / name).read_bytes() == (a / "mr" / name).read_bytes(), name
