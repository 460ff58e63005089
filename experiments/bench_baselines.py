"""Time the hand-crafted baselines of SING's Table 2 (LOMO + XQDA / NFST); prints JSON.

LOMO throughput on 256 random 128x48 images; XQDA and NFST training on VIPeR-sized data:
632 LOMO descriptors (26,960-d) of 316 synthetic identities x 2 views (a random image
and a noisy, shifted copy). Run:

    PYTHONPATH=src python experiments/bench_baselines.py
"""

from __future__ import annotations

import json
import os
import statistics
import time

import numpy as np

from sing_lit.baselines import NFST, XQDA
from sing_lit.baselines.lomo import lomo

N_IMAGES, N_IDS, HEIGHT, WIDTH = 256, 316, 128, 48


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def two_views(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Blocky random identities; view b is view a shifted by 2 px plus pixel noise."""
    base = rng.integers(0, 256, (N_IDS, HEIGHT // 8, WIDTH // 8, 3)).repeat(8, 1).repeat(8, 2)
    noisy = np.roll(base, 2, axis=1) + rng.normal(0, 12, base.shape)
    return base.astype(np.uint8), np.clip(noisy, 0, 255).astype(np.uint8)


def main() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (N_IMAGES, HEIGHT, WIDTH, 3), dtype=np.uint8)
    lomo(images[:8])  # warm the blur-matrix cache
    lomo_s = [timed(lomo, images)[1] for _ in range(3)]

    view_a, view_b = two_views(rng)
    (feats_a, feats_b), feature_s = timed(lambda: (lomo(view_a), lomo(view_b)))
    ids = np.arange(N_IDS)
    xqda, xqda_s = timed(XQDA().fit, feats_a, ids, feats_b, ids)
    nfst, nfst_s = timed(NFST().fit, np.concatenate([feats_a, feats_b]), np.concatenate([ids, ids]))
    rank1 = {
        name: float((model.distance(feats_a, feats_b).argmin(1) == ids).mean())  # training-set sanity only
        for name, model in (("xqda", xqda), ("nfst", nfst))
    }
    print(
        json.dumps(
            {
                "cpu_threads": os.cpu_count(),
                "lomo": {
                    "images": N_IMAGES,
                    "size": [HEIGHT, WIDTH],
                    "dim": int(feats_a.shape[1]),
                    "seconds_runs": [round(s, 3) for s in lomo_s],
                    "images_per_s_median": round(N_IMAGES / statistics.median(lomo_s), 1),
                },
                "train_features": {"n": 2 * N_IDS, "dim": int(feats_a.shape[1]), "lomo_seconds": round(feature_s, 2)},
                "xqda": {"train_seconds": round(xqda_s, 2), "subspace_dim": int(xqda.projection_.shape[1])},
                "nfst": {"train_seconds": round(nfst_s, 2), "null_dim": int(nfst.null_dim_), "kernel": nfst.kernel},
                "train_rank1_sanity": rank1,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
