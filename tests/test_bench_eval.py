"""experiments/bench_eval.py --small runs in a subprocess and prints the JSON the issue asks for."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from python_runs import run_python

REPO = Path(__file__).resolve().parents[1]


def test_bench_eval_small_prints_ratios_and_peak_rss():
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = run_python([REPO / "experiments" / "bench_eval.py", "--small", "--repeats", "1"], REPO, env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert report["problem"]["queries"] == 400 and report["problem"]["gallery"] == 2000
    assert report["problem"]["true_matches_per_query"] < report["problem"]["same_id_gallery_per_query"]
    for part, a, b in (("ranking", "rank_metrics_s", "numpy_sort_s"), ("distances", "pairwise_l2_s", "matmul_s")):
        r = report[part]
        assert r[a] > 0 and r[b] > 0 and r["ratio"] == pytest.approx(r[a] / r[b], rel=0.01)
        assert r["target"] == {"ranking": 0.7, "distances": 1.25}[part]
    assert set(report["peak_rss_mb"]) == {"matmul", "pairwise_l2", "numpy_sort", "ranking"}
    for step in report["peak_rss_mb"].values():
        assert step["peak_rss_mb"] >= step["rss_before_mb"] > 0
        assert step["step_mb"] == pytest.approx(step["peak_rss_mb"] - step["rss_before_mb"], abs=0.11)
    m = report["metrics"]
    assert 0 <= m["mINP"] <= m["mAP"] <= 100 and m["rank1"] <= m["rank5"] and m["num_valid_queries"] == 400
