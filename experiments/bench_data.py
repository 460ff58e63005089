"""Benchmark: the DataModule must not be the bottleneck; MLR-CUHK03 must build in under 2 minutes.

Prints JSON:
- ``loader_batches_per_s``: training batches the DataModule delivers (built-in benchmark);
- ``train_steps_per_s``: SING training steps (forward + backward + step) of the default small
  backbone on the same batches; ``ratio`` = the first over the second (target >= 3);
- ``mlr_cuhk03_seconds``: reading a CUHK03-sized extracted layout (14,096 images written by
  this script) and building its MLR view (target < 120 s).

Run: ``python experiments/bench_data.py [--skip-cuhk03]``
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from sing_lit.data.datamodule import SINGDataModule
from sing_lit.data.mlr import build_mlr
from sing_lit.data.readers.cuhk03 import read_cuhk03
from sing_lit.data.synthetic import build_synthetic_benchmark
from sing_lit.models.sing_net import build_sing_net
from sing_lit.models.small_cnn import SmallCNN
from sing_lit.models.sr_net import SRNet
from sing_lit.sing.losses import sing_losses


def bench_loader(cache: Path, batches: int = 40) -> dict:
    dm = SINGDataModule(name="synthetic", root=str(cache), reader=partial(build_synthetic_benchmark, num_ids=200),
                        anchor_ratio=1 / 3, input_size=(64, 32), mlr={"lr_camera": "genuine"},
                        protocol={"trials": 1}, cache_dir=str(cache), batch_size=32)
    t0 = time.perf_counter()
    dm.setup("fit")
    setup_s = time.perf_counter() - t0
    loader = dm.train_dataloader()
    n, t0 = 0, time.perf_counter()
    while n < batches:
        for _ in loader:
            n += 1
            if n >= batches:
                break
    loader_rate = n / (time.perf_counter() - t0)
    net = build_sing_net(dm.num_classes, partial(SmallCNN, widths=(16, 32, 64, 128)),
                         partial(SRNet, channels=(64, 32), kernel_sizes=(9, 1, 5)))
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    batch_list = [b for _, b in zip(range(6), loader)]
    t0 = time.perf_counter()
    for b in batch_list:
        b = {k: v.float() / 255 if v.dtype == torch.uint8 else v for k, v in b.items()}
        loss = sing_losses(net, b, 1.0, True)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    step_rate = len(batch_list) / (time.perf_counter() - t0)
    return {"setup_seconds": round(setup_s, 2), "loader_batches_per_s": round(loader_rate, 1),
            "train_steps_per_s": round(step_rate, 2), "ratio": round(loader_rate / step_rate, 1), "target_ratio": 3}


def bench_cuhk03(tmp: Path) -> dict:
    """A CUHK03-sized extracted layout: 5 pairs, 1,467 people, ~9.6 images each, 160x60 crops."""
    root = tmp / "cuhk03"
    counts = [843, 440, 77, 58, 49]
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, size=(160, 60, 3), dtype=np.uint8)
    t0 = time.perf_counter()
    n = 0
    for sub in ("images_labeled", "images_detected"):
        (root / sub).mkdir(parents=True)
        for pair, count in enumerate(counts, start=1):
            for pid in range(1, count + 1):
                for cam in (1, 2):
                    for img in range(1, 3 if sub == "images_detected" else 4):
                        if n >= 14096:
                            break
                        Image.fromarray(np.roll(base, n, axis=1)).save(root / sub / f"{pair}_{pid:03d}_{cam}_{img:02d}.png",
                                                                       compress_level=1)
                        n += 1
    write_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    records = read_cuhk03(root)
    read_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    out, ratios = build_mlr(records, cache_root=tmp / "cache", dataset="cuhk03", lr_camera="one_per_pair", seed=0)
    mlr_s = time.perf_counter() - t0
    return {"cuhk03_images": len(records), "lr_images": len(ratios), "write_layout_seconds": round(write_s, 1),
            "read_seconds": round(read_s, 2), "mlr_build_seconds": round(mlr_s, 1),
            "mlr_cuhk03_seconds": round(read_s + mlr_s, 1), "target_seconds": 120}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--skip-cuhk03", action="store_true")
    args = parser.parse_args()
    torch.manual_seed(0)
    tmp = Path(tempfile.mkdtemp(prefix="sing_lit_bench_"))
    try:
        result = {"torch_threads": torch.get_num_threads(), **bench_loader(tmp)}
        if not args.skip_cuhk03:
            result.update(bench_cuhk03(tmp))
        print(json.dumps(result, indent=2))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
