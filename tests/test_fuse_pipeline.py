"""The anchors -> fusion pipeline end to end (subprocesses, tiny settings) and its refusals."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from cli_checks import assert_one_error_line, run_in_process
from python_runs import run_python

TINY = ["debug=tiny", "data.reader.num_ids=12", "trainer.max_epochs=1", "logger=csv"]


def run(args: list[str], cwd: Path, cache: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "SING_LIT_CACHE": str(cache), "HYDRA_FULL_ERROR": "0"}
    return run_python(["-m", *args], cwd, env, timeout=600)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> tuple[Path, Path, subprocess.CompletedProcess]:
    """One tiny multirun of the three anchors, shared by the tests below (copied before damage)."""
    base = tmp_path_factory.mktemp("pipeline")
    cache = base / "cache"
    proc = run(["sing_lit.train", "-m", "+anchor=1/2,1/3,1/4", *TINY, f"hydra.sweep.dir={base / 'mr'}"], base, cache)
    return base, cache, proc


def test_multirun_fires_the_fusion_stage_once(sweep):
    base, _, proc = sweep
    assert proc.returncode == 0, proc.stderr[-3000:]
    mr = base / "mr"
    assert sorted(p.name for p in mr.iterdir() if p.is_dir()) == ["0_x2", "1_x3", "2_x4", "fuse"]
    assert proc.stdout.count("**Fusion:") == 1
    result = json.loads((mr / "fuse" / "metrics.json").read_text())
    assert [a["name"] for a in result["anchors"]] == ["x2", "x3", "x4"]
    assert len(result["table4"]) == 7 and "M1/2+M1/3+M1/4" in result["table4"]
    trial = result["trials"][0]
    assert trial["sigma"] in result["sigma_grid"]
    assert [row["sigma"] for row in trial["sigma_cv_curve"]] == result["sigma_grid"]
    assert set(result["table"]) == {"SING fused (Eq. 6-8)", "mean of anchors (unweighted)",
                                    "best single anchor (by val)"}
    for name in ("table.md", "table.csv", "cmc.png"):
        assert (mr / "fuse" / name).stat().st_size > 0
    assert (mr / "fuse" / "cmc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def copy_sweep(sweep, tmp_path: Path) -> Path:
    base, _, proc = sweep
    assert proc.returncode == 0, proc.stderr[-3000:]
    dst = tmp_path / "mr"
    shutil.copytree(base / "mr", dst)
    shutil.rmtree(dst / "fuse")
    return dst  # metrics.json holds checkpoint paths relative to the job dir: the copy works as is


def fuse(args: list[str], tmp_path: Path, cache: Path) -> subprocess.CompletedProcess:
    return run(["sing_lit.fuse", *args, f"hydra.run.dir={tmp_path / 'fuse_out'}"], tmp_path, cache)


@pytest.fixture
def bad_fuse(monkeypatch, capsys):
    """``fuse``'s run in this process, for the bad inputs (refused before any work)."""

    def _fuse(args: list[str], tmp_path: Path, cache: Path) -> subprocess.CompletedProcess:
        return run_in_process([*args, f"hydra.run.dir={tmp_path / 'fuse_out'}"], tmp_path,
                              {"SING_LIT_CACHE": str(cache)}, monkeypatch, capsys, "sing_lit.fuse")

    return _fuse


def test_fuse_command_on_a_multirun_dir(sweep, tmp_path):
    mr = copy_sweep(sweep, tmp_path)
    proc = fuse([f"multirun_dir={mr}"], tmp_path, sweep[1])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| SING fused (Eq. 6-8) |" in proc.stdout
    assert json.loads((tmp_path / "fuse_out" / "metrics.json").read_text())["task"] == "fuse"


def test_a_failed_anchor_job_is_named(sweep, tmp_path, bad_fuse):
    mr = copy_sweep(sweep, tmp_path)
    (mr / "1_x3" / "metrics.json").unlink()
    assert_one_error_line(bad_fuse([f"multirun_dir={mr}"], tmp_path, sweep[1]), "1_x3")
    assert not (tmp_path / "fuse_out" / "metrics.json").exists()


def test_a_missing_checkpoint_is_named(sweep, tmp_path, bad_fuse):
    mr = copy_sweep(sweep, tmp_path)
    (mr / "2_x4" / "trial_0" / "checkpoints" / "best.ckpt").unlink()
    assert_one_error_line(bad_fuse([f"multirun_dir={mr}"], tmp_path, sweep[1]), "2_x4", "does not exist")


def test_a_corrupt_checkpoint_is_named(sweep, tmp_path, bad_fuse):
    mr = copy_sweep(sweep, tmp_path)
    ckpt = mr / "0_x2" / "trial_0" / "checkpoints" / "best.ckpt"
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    assert_one_error_line(bad_fuse([f"multirun_dir={mr}"], tmp_path, sweep[1]), "0_x2", "corrupt or truncated")


def test_a_missing_anchor_job_is_never_silently_dropped(sweep, tmp_path, bad_fuse):
    mr = copy_sweep(sweep, tmp_path)
    shutil.rmtree(mr / "1_x3")
    assert_one_error_line(bad_fuse([f"multirun_dir={mr}"], tmp_path, sweep[1]), "1/3", "fewer anchors")


def test_two_anchors_with_the_same_ratio(sweep, tmp_path, bad_fuse):
    mr = copy_sweep(sweep, tmp_path)
    proc = bad_fuse([f"anchors=[{mr / '1_x3'},{mr / '1_x3'}]"], tmp_path, sweep[1])
    assert_one_error_line(proc, "same ratio")


def test_anchors_with_different_input_sizes_or_datasets(sweep, tmp_path, bad_fuse):
    base, cache, _ = sweep
    mr = copy_sweep(sweep, tmp_path)
    other = tmp_path / "other_x3"
    proc = run(["sing_lit.train", "+anchor=1/3", *TINY, "data.input_size=[48,24]", f"hydra.run.dir={other}"],
               tmp_path, cache)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert_one_error_line(bad_fuse([f"anchors=[{mr / '0_x2'},{other}]"], tmp_path, cache), "input sizes")
    other_data = tmp_path / "other_data_x3"
    proc = run(["sing_lit.train", "+anchor=1/3", *TINY, "data.reader.seed=1", f"hydra.run.dir={other_data}"],
               tmp_path, cache)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert_one_error_line(bad_fuse([f"anchors=[{mr / '0_x2'},{other_data}]"], tmp_path, cache), "x3")
