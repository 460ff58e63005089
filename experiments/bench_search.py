"""Time a search on CPU: 1,000 LR queries x 5,000 HR gallery images through 3 anchors; prints JSON.

Images come from the built-in benchmark (generated once into the cache). The anchors are the
default built-in-benchmark networks (small_cnn backbone + SRCNN, ``conf/train.yaml``) with seeded,
untrained weights: speed does not depend on what the weights learned. Measured in one run:

- feature extraction in images/s (one image through one anchor) for eager torch and for
  onnxruntime (the graphs of :mod:`sing_lit.api.export`), same batches, same thread count;
- the search's parts, each timed on its own (I/O: read + decode + resize + content hashes;
  features; ranking: Eq. 6-8, sort, CMC/mAP), and the whole :func:`sing_lit.api.search.search`
  (no feature cache), so ``whole / sum_of_parts`` shows any overhead hidden between them; the
  separate timings run at other moments, so on a shared CPU the whole call's own split of its time
  (``whole_over_its_own_parts``) is the steadier measure.

Feature extraction is timed ``--repeats`` times for eager torch and for onnxruntime, alternating, and the
best time of each is kept, so that the ratio compares the two side by side on a shared, noisy CPU.

    PYTHONPATH=src python experiments/bench_search.py [--queries 1000 --gallery 5000] [overrides ...]

Overrides change the anchors' networks, e.g. ``backbone=mobilenet_v2 model.net.backbone.pretrained=false sr=fsrcnn``
(the real-data recipe's nets; the weights are seeded and untrained either way).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import hydra
import numpy as np
import torch
from hydra import compose, initialize_config_dir

from sing_lit.api.export import FeaturePath, export_graph
from sing_lit.api.model import Anchor, SINGModel
from sing_lit.api.search import content_hashes, evaluate, pid_from_name, search
from sing_lit.data.synthetic import build_synthetic_benchmark
from sing_lit.runtime.cli import CONFIG_DIR

ANCHORS = ("1/2", "1/3", "1/4")


def anchors_model(overrides: tuple[str, ...] = ()) -> SINGModel:
    anchors = []
    for k, name in enumerate(ANCHORS):
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            cfg = compose("train", overrides=[f"+anchor={name}", "paths.root_dir=.", "paths.output_dir=.",
                                              *overrides])
        torch.manual_seed(k)
        net = hydra.utils.instantiate(cfg.model.net)(num_classes=100)
        anchors.append(Anchor(str(cfg.anchor.name), float(cfg.anchor.ratio), net))
        input_size = tuple(cfg.data.input_size)
    return SINGModel(anchors, sigma=0.1, input_size=input_size, batch_size=128)


def onnx_features(sessions, batch: torch.Tensor, batch_size: int) -> list[np.ndarray]:
    out = []
    for s in sessions:
        parts = [s.run(None, {"image": batch[i:i + batch_size].numpy().astype(np.float32) / np.float32(255)})[0]
                 for i in range(0, batch.shape[0], batch_size)]
        out.append(np.concatenate(parts))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--gallery", type=int, default=5000)
    ap.add_argument("--cache", default=os.environ.get("SING_LIT_CACHE", ".data_cache"))
    ap.add_argument("--repeats", type=int, default=3, help="alternating timings of eager vs onnxruntime features")
    ap.add_argument("overrides", nargs="*", help="train-config overrides for the anchors' networks, e.g. "
                    "backbone=mobilenet_v2 model.net.backbone.pretrained=false sr=fsrcnn (default: the built-in benchmark's)")
    args = ap.parse_args()
    import onnxruntime as ort

    per_id = 4
    records = build_synthetic_benchmark(args.cache, num_ids=max(-(-args.gallery // per_id), args.queries),
                                        hr_images_per_id=per_id,
                                        lr_images_per_id=1)
    queries = [r.path for r in records if r.genuine_lr][:args.queries]
    gallery = [r.path for r in records if not r.genuine_lr][:args.gallery]
    model = anchors_model(tuple(args.overrides))
    threads = torch.get_num_threads()
    model.encode(queries[:64], lr=True)  # warm-up (allocator, first-call costs)

    # The parts, each on its own.
    t = time.perf_counter()
    q_prep, g_prep = model.prepare(queries, lr=True), model.prepare(gallery, lr=False)
    content_hashes(gallery)
    t_io = time.perf_counter() - t
    t = time.perf_counter()
    q_enc, g_enc = model.encode(q_prep, lr=True), model.encode(g_prep, lr=False)
    t_feat = time.perf_counter() - t
    t = time.perf_counter()
    fused = model.fuse(q_enc, g_enc)
    fused.distances.argsort(dim=1, stable=True)[:, :10]
    evaluate(fused, [pid_from_name(p) for p in queries], [pid_from_name(p) for p in gallery])
    t_rank = time.perf_counter() - t

    # The whole search, no feature cache.
    whole = search(model, queries, gallery, top_k=10, cache_dir=None, progress=False)

    # onnxruntime on the same prepared batches.
    n_images = (len(queries) + len(gallery)) * len(model.anchors)
    with tempfile.TemporaryDirectory() as tmp:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        sessions = {}
        for a in model.anchors:
            for role, probe in (("probe", True), ("gallery", False)):
                path = Path(tmp) / f"{a.name}_{role}.onnx"
                export_graph(FeaturePath(a.net, probe), q_prep.images[:2].float() / 255, path)
                sessions.setdefault(role, []).append(ort.InferenceSession(str(path), opts,
                                                                          providers=["CPUExecutionProvider"]))
        onnx_features(sessions["probe"], q_prep.images[:64], 64)  # warm-up
        t_onnx, t_eager = float("inf"), t_feat
        for _ in range(args.repeats):
            t = time.perf_counter()
            oq = onnx_features(sessions["probe"], q_prep.images, model.batch_size)
            og = onnx_features(sessions["gallery"], g_prep.images, model.batch_size)
            t_onnx = min(t_onnx, time.perf_counter() - t)
            t = time.perf_counter()
            model.encode(q_prep, lr=True), model.encode(g_prep, lr=False)
            t_eager = min(t_eager, time.perf_counter() - t)
    diff = max(float(np.abs(oq[i] - q_enc.features[i].numpy()).max()) for i in range(len(model.anchors)))
    diff = max(diff, *(float(np.abs(og[i] - g_enc.features[i].numpy()).max()) for i in range(len(model.anchors))))

    parts = t_io + t_feat + t_rank
    print(json.dumps({
        "bench": "search", "device": "cpu", "threads": threads, "queries": len(queries), "gallery": len(gallery),
        "anchors": len(model.anchors), "input_size": list(model.input_size),
        "weights": "untrained (seeded) networks: " + (" ".join(args.overrides) or "the defaults, small_cnn + SRCNN"),
        "features_images_per_s": {"torch_eager": round(n_images / t_eager, 1), "onnxruntime": round(n_images / t_onnx, 1)},
        "onnxruntime_speedup": round(t_eager / t_onnx, 3),
        "feature_timing": f"best of {args.repeats + 1} eager and {args.repeats} onnxruntime runs, alternating",
        "onnxruntime_max_abs_feature_diff": diff,
        "parts_s": {"io": round(t_io, 3), "features": round(t_feat, 3), "ranking": round(t_rank, 3),
                    "sum": round(parts, 3)},
        "whole_search_s": round(whole.timings["total"], 3),
        "whole_search_parts_s": {k: round(v, 3) for k, v in whole.timings.items() if k != "total"},
        "whole_over_parts": round(whole.timings["total"] / parts, 3),
        # the same call's own parts: what it spent outside I/O, features and ranking (no timing noise between runs)
        "whole_over_its_own_parts": round(whole.timings["total"] / sum(v for k, v in whole.timings.items()
                                                                       if k != "total"), 4),
        "targets": {"onnxruntime_speedup >= 1.5": t_eager / t_onnx >= 1.5,
                    "whole_over_parts <= 1.2": whole.timings["total"] / parts <= 1.2},
    }, indent=2))


if __name__ == "__main__":
    main()
