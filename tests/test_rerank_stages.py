"""``eval.rerank=true`` end to end on the built-in benchmark (debug=tiny): train's test, the fusion stage, evaluate."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from cli_checks import call_main
from python_runs import run_python

# The tiny benchmark's val and test sets hold a few dozen images: k1 must stay below that.
RERANK = ["eval.rerank=true", "eval.rerank_k1=3", "eval.rerank_k2=2"]
SETTINGS = {"method": "k-reciprocal (Zhong et al. 2017)", "k1": 3, "k2": 2, "lambda": 0.3}
METRICS = ("rank1", "rank5", "rank10", "rank20", "mAP")


def run(args: list[str], cwd: Path, cache: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "SING_LIT_CACHE": str(cache), "HYDRA_FULL_ERROR": "0"}
    return run_python(["-m", *args], cwd, env, timeout=600)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> tuple[Path, Path]:
    """Two tiny anchors trained and fused with re-ranking on."""
    base = tmp_path_factory.mktemp("rerank")
    proc = run(["sing_lit.train", "-m", "+anchor=1/2,1/3", "debug=tiny", "logger=csv", *RERANK,
                f"hydra.sweep.dir={base / 'mr'}"], base, base / "cache")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return base / "mr", base / "cache"


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def copy_sweep(sweep, tmp_path: Path) -> Path:
    dst = tmp_path / "mr"
    shutil.copytree(sweep[0], dst)
    shutil.rmtree(dst / "fuse")
    return dst


def test_multirun_reranks_each_anchors_test_and_the_fusion(sweep):
    mr = sweep[0]
    fused = load(mr / "fuse" / "metrics.json")
    assert fused["rerank"] == SETTINGS
    assert "k-reciprocal re-ranking (k1=3, k2=2, lambda=0.3)" in (mr / "fuse" / "table.md").read_text()
    for job, name in (("0_x2", "M1/2"), ("1_x3", "M1/3")):
        anchor = load(mr / job / "metrics.json")
        assert anchor["test_rerank"] == SETTINGS
        # The module's test (its own features) and the fusion stage's single-anchor row (features extracted
        # again, then re-ranked per anchor) are two paths to the same numbers.
        single = fused["trials"][0]["subsets"][name]
        for m in METRICS:
            assert single[m] == pytest.approx(anchor["trials"][0]["test"][m], abs=1e-9), (job, m)


def test_fuse_command_follows_the_option(sweep, tmp_path):
    mr = copy_sweep(sweep, tmp_path)
    on = run(["sing_lit.fuse", f"multirun_dir={mr}", *RERANK, f"hydra.run.dir={tmp_path / 'on'}"], tmp_path, sweep[1])
    assert on.returncode == 0, on.stderr[-2000:]
    off = run(["sing_lit.fuse", f"multirun_dir={mr}", f"hydra.run.dir={tmp_path / 'off'}"], tmp_path, sweep[1])
    assert off.returncode == 0, off.stderr[-2000:]
    on_result, off_result = load(tmp_path / "on" / "metrics.json"), load(tmp_path / "off" / "metrics.json")
    assert on_result["table"] == load(sweep[0] / "fuse" / "metrics.json")["table"]
    assert on_result["rerank"] == SETTINGS and "rerank" not in off_result
    assert "re-ranking" not in (tmp_path / "off" / "table.md").read_text()
    assert on_result["table4"]["M1/2"]["mAP"] != off_result["table4"]["M1/2"]["mAP"]


def test_evaluate_reranks_val_and_test(sweep, tmp_path):
    ckpt = sweep[0] / "0_x2" / "trial_0" / "checkpoints" / "best.ckpt"
    proc = run(["sing_lit.evaluate", f"ckpt_path={ckpt}", *RERANK, f"hydra.run.dir={tmp_path / 'ev'}"],
               tmp_path, sweep[1])
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = load(tmp_path / "ev" / "metrics.json")
    assert result["rerank"] == SETTINGS
    anchor = load(sweep[0] / "0_x2" / "metrics.json")["trials"][0]["test"]
    for m in METRICS:
        assert result["test"][m] == pytest.approx(anchor[m], abs=1e-9), m


@pytest.mark.parametrize(("entry", "args", "names"), [
    ("fuse", ["eval.rerank=true"], ["val set of x2", "k1=20", "eval.rerank_k1"]),  # the paper's k1 needs 21 images; tiny has fewer
    ("fuse", ["eval.rerank=yes"], ["eval.rerank must be true or false"]),
    ("train", ["debug=tiny", "eval.rerank=true", "eval.rerank_lambda=2"], ["eval.rerank_lambda", "[0, 1]"]),
], ids=["k1_too_large", "not_a_bool", "lambda_out_of_range"])
def test_bad_settings_give_one_error_line(entry, args, names, sweep, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SING_LIT_CACHE", str(sweep[1]))
    extra = [f"multirun_dir={copy_sweep(sweep, tmp_path)}"] if entry == "fuse" else []
    code, err = call_main(entry, [*extra, *args, f"hydra.run.dir={tmp_path / 'run'}"], monkeypatch, capsys)
    assert code != 0 and "Traceback" not in err, err[-3000:]
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err[-3000:]
    for name in names:
        assert name in lines[0], lines[0]
    assert not (tmp_path / "run" / "metrics.json").exists()
