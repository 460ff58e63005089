"""Time re-id evaluation at Market-1501 scale: ranking metrics and L2 distances, each against a reference; prints JSON.

Seeded synthetic query/gallery problem (issue 14): 3,368 queries x 15,913 gallery images, 2,048-d
float32 features, 751 identities. Queries are on camera 0; each identity has about 20 gallery images
spread uniformly over 6 cameras, so about a sixth of them share the query's camera and are removed
by the protocol (and sit close to the query: same-camera images look alike, which is why they are
removed); about 16.7 true matches per query remain. (The issue's "about 21" is 15,913 / 751.) The
gallery also holds distractors (id 0, no query has it) and junk images (id -1, ``gallery_junk``).
Features are identity centres plus a camera offset plus noise of varying strength, so the ranking
is far from perfect (the JSON gives rank-1, mAP, mINP).

Measured in one run, best of ``--repeats``, each pair alternated so both see the same machine:

- ``ranking``: :func:`sing_lit.evaluation.ranking.rank_metrics` (CMC + mAP + mINP, camera filtering
  and junk included) over ``numpy.sort(dist, axis=1)`` on the same matrix (target <= 0.7);
- ``distances``: :func:`sing_lit.evaluation.ranking.pairwise_l2` over a plain ``probe @ gallery.T``
  of the same shapes (target <= 1.25).

Peak RSS per step: ``import sing_lit`` keeps freed memory in the heap (runtime/allocator.py), so
the peak of a process that ran other steps first says little about this one. Each step therefore
runs once more in a fresh subprocess that loads its inputs (features, or the distance matrix and
ids) from .npy files: ``rss_before_mb`` is that process's RSS with torch imported and the inputs
loaded, ``peak_rss_mb`` its peak RSS during the step (the kernel's peak counter is reset just
before, ``echo 5 > /proc/self/clear_refs``; where that is refused, the process's whole peak,
``ru_maxrss``, and ``rss_peak_reset`` is false) and ``step_mb`` the difference: what the step
itself needed.

    PYTHONPATH=src python experiments/bench_eval.py [--small] [--repeats 3] [--random-features]

``--small`` is a seconds-long smoke run (400 x 2,000, 64-d); ``--random-features`` gives features
that carry no identity, the slow case for ranking (hardest true matches deep in the gallery).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from sing_lit.evaluation.ranking import pairwise_l2, rank_metrics

MARKET = {"queries": 3368, "gallery": 15913, "dim": 2048, "ids": 751, "distractors": 600, "junk": 300}
SMALL = {"queries": 400, "gallery": 2000, "dim": 64, "ids": 90, "distractors": 80, "junk": 40}
CAMERAS = 6


def make_problem(size: dict[str, int], seed: int, random_features: bool = False) -> dict[str, torch.Tensor]:
    """Seeded query/gallery features, ids, cameras and junk mask (see the module docstring)."""
    g = torch.Generator().manual_seed(seed)
    n_ids, dim = size["ids"], size["dim"]
    n_id_gallery = size["gallery"] - size["distractors"] - size["junk"]
    q_pid = 1 + torch.arange(size["queries"]) % n_ids  # ids 1..n_ids, every one queried
    g_pid = torch.cat([1 + torch.arange(n_id_gallery) % n_ids,
                       torch.zeros(size["distractors"], dtype=torch.long),
                       torch.full((size["junk"],), -1, dtype=torch.long)])
    q_cam = torch.zeros(size["queries"], dtype=torch.long)
    g_cam = torch.randint(0, CAMERAS, (size["gallery"],), generator=g)
    junk = g_pid == -1
    # Centres: one per id (index = pid), one per distractor and junk image, each near one of 50 "looks"
    # shared by many people (the hard negatives); a camera offset per camera (view changes); per-image
    # noise; L2-normalised, as re-id features usually are. The scales set the difficulty.
    n_centres = n_ids + 1 + size["distractors"] + size["junk"]
    looks = torch.randn(50, dim, generator=g)
    centres = looks[torch.randint(0, 50, (n_centres,), generator=g)] + 0.5 * torch.randn(n_centres, dim, generator=g)
    cam_offset = 0.45 * torch.randn(CAMERAS, dim, generator=g)
    g_centre = g_pid.clone()
    g_centre[g_pid <= 0] = n_ids + 1 + torch.arange(size["distractors"] + size["junk"])

    def features(centre: torch.Tensor, cam: torch.Tensor) -> torch.Tensor:
        noise = (0.8 + 0.4 * torch.rand(len(centre), 1, generator=g)) * torch.randn(len(centre), dim, generator=g)
        base = 0.0 if random_features else centres[centre]
        return torch.nn.functional.normalize(base + cam_offset[cam] + noise, dim=1)

    return {"probe": features(q_pid, q_cam), "gallery": features(g_centre, g_cam), "q_pid": q_pid, "g_pid": g_pid,
            "q_cam": q_cam, "g_cam": g_cam, "junk": junk}


def _rss_mb(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_mb(reset: bool) -> float:
    hwm = _rss_mb("VmHWM") if reset else None
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def step_calls(inputs: dict) -> dict:
    """The four measured calls on ``inputs`` (features, ids, cameras, junk mask, distance matrix)."""
    return {
        "matmul": lambda: inputs["probe"] @ inputs["gallery"].T,
        "pairwise_l2": lambda: pairwise_l2(inputs["probe"], inputs["gallery"]),
        "numpy_sort": lambda: np.sort(inputs["dist"].numpy(), axis=1),
        "ranking": lambda: rank_metrics(inputs["dist"], inputs["q_pid"], inputs["g_pid"], probe_cams=inputs["q_cam"],
                                        gallery_cams=inputs["g_cam"], gallery_junk=inputs["junk"]),
    }


NEEDS = {"matmul": ("probe", "gallery"), "pairwise_l2": ("probe", "gallery"), "numpy_sort": ("dist",),
         "ranking": ("dist", "q_pid", "g_pid", "q_cam", "g_cam", "junk")}


def rss_child(step: str, folder: Path) -> None:
    """In a fresh process: load the step's inputs, run it once, print its RSS as JSON."""
    inputs = {k: torch.from_numpy(np.load(folder / f"{k}.npy")) for k in NEEDS[step]}
    before = _rss_mb("VmRSS") or 0.0
    reset = _reset_peak()
    out = step_calls(inputs)[step]()
    peak = _peak_mb(reset)
    del out
    print(json.dumps({"rss_before_mb": round(before, 1), "peak_rss_mb": round(peak, 1),
                      "step_mb": round(peak - before, 1), "rss_peak_reset": reset}))


def rss_of_steps(inputs: dict) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        for k, v in inputs.items():
            np.save(Path(tmp) / f"{k}.npy", v.numpy())
        out = {}
        for step in NEEDS:
            proc = subprocess.run([sys.executable, __file__, "--rss-step", step, "--rss-inputs", tmp],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                sys.exit(f"error: the peak-RSS run of step {step} failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
            out[step] = json.loads(proc.stdout)
    return out


def timed(fn) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", action="store_true", help="a seconds-long smoke run (400 x 2,000, 64-d)")
    ap.add_argument("--repeats", type=int, default=3, help="best of this many runs of each timed call")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--random-features", action="store_true", help="features without identity (slow ranking case)")
    ap.add_argument("--rss-step", choices=sorted(NEEDS), help=argparse.SUPPRESS)  # internal: one step's RSS
    ap.add_argument("--rss-inputs", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.rss_step:
        rss_child(args.rss_step, Path(args.rss_inputs))
        return
    size = SMALL if args.small else MARKET
    p = make_problem(size, args.seed, args.random_features)
    p["dist"] = pairwise_l2(p["probe"], p["gallery"])
    calls = step_calls(p)
    times: dict[str, list[float]] = {k: [] for k in calls}
    for pair in (("matmul", "pairwise_l2"), ("numpy_sort", "ranking")):
        for _ in range(args.repeats):  # the two calls of a pair alternate: both see the same machine
            for name in pair:
                t, out = timed(calls[name])
                times[name].append(t)
                if name == "ranking":
                    metrics = out
                del out
    rss = rss_of_steps(p)

    best = {k: min(v) for k, v in times.items()}
    g_pid, q_pid = p["g_pid"].numpy(), p["q_pid"].numpy()
    same_id = (g_pid[None, :] == q_pid[:, None]) & ~p["junk"].numpy()[None, :]
    true = same_id & (p["g_cam"].numpy()[None, :] != p["q_cam"].numpy()[:, None])
    report = {
        "bench": "eval",
        "problem": {**{k: size[k] for k in ("queries", "gallery", "dim", "ids")},
                    "cameras": CAMERAS, "distractors": size["distractors"], "junk": size["junk"],
                    "same_id_gallery_per_query": round(float(same_id.sum(1).mean()), 2),
                    "true_matches_per_query": round(float(true.sum(1).mean()), 2),
                    "random_features": args.random_features, "seed": args.seed},
        "torch_threads": torch.get_num_threads(),
        "repeats": args.repeats,
        "ranking": {"rank_metrics_s": round(best["ranking"], 6), "numpy_sort_s": round(best["numpy_sort"], 6),
                    "ratio": round(best["ranking"] / best["numpy_sort"], 3), "target": 0.7},
        "distances": {"pairwise_l2_s": round(best["pairwise_l2"], 6), "matmul_s": round(best["matmul"], 6),
                      "ratio": round(best["pairwise_l2"] / best["matmul"], 3), "target": 1.25},
        "metrics": {k: round(float(metrics[k]), 2) for k in ("rank1", "rank5", "mAP", "mINP")}
        | {"num_valid_queries": metrics["num_valid_queries"]},
        "seconds_all_repeats": {k: [round(x, 6) for x in v] for k, v in times.items()},
        "peak_rss_mb": {k: {m: v[m] for m in ("rss_before_mb", "peak_rss_mb", "step_mb")} for k, v in rss.items()},
        "rss_peak_reset": all(v["rss_peak_reset"] for v in rss.values()),
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
