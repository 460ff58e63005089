"""LOMO + XQDA / NFST under the literature's plain protocol (Liao et al. 2015): no SR, no fusion.

Each trial trains one model on all non-test people (the split's train + val identities) and
ranks every probe (LR view, bicubic-upscaled to 128x48) against the test gallery (HR view,
plus distractors where the split names them). Prints JSON: per trial and mean ± std of rank-1,
-10 and -20 for each variant. LOMO is computed once per image per LOMO variant.

    PYTHONPATH=src python experiments/lomo_xqda_protocol.py data=grid_standard \\
        data.root=../shared/data/grid --trials 10
    PYTHONPATH=src python experiments/lomo_xqda_protocol.py data=prid2011 \\
        data.root=../shared/data/prid_2011 --trials 3 --variants xqda,xqda_eig,nfst

Variants: ``xqda`` (``XQDA.m``'s SVD subspace), ``xqda_eig`` (the paper's generalised
eigenvectors), ``nfst``; a ``+noretinex`` suffix drops Retinex from LOMO.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile

import hydra
import numpy as np
import torch
from hydra import compose, initialize_config_dir

from sing_lit.baselines import NFST, XQDA
from sing_lit.baselines.lomo import lomo
from sing_lit.data.images import load_rgb, resize
from sing_lit.evaluation.ranking import cmc_and_map
from sing_lit.runtime.cli import CONFIG_DIR

SIZE = (128, 48)
RANKS = (1, 10, 20)


def datamodule(overrides: list[str]):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        tmp = tempfile.mkdtemp(prefix="lomo_protocol_")
        cfg = compose("train", overrides=[f"paths.output_dir={tmp}", *overrides])
    dm = hydra.utils.instantiate(cfg.data, split_out=None)
    dm._prepare_records()
    return dm


def features(paths: list[str], lr: set[str], retinex: bool, cache: dict) -> np.ndarray:
    """LOMO of each image at 128x48 (LR ones bicubic-upscaled, HR ones bicubic-resized), cached by path."""
    todo = [p for p in dict.fromkeys(paths) if (p, retinex) not in cache]
    for start in range(0, len(todo), 256):
        chunk = todo[start:start + 256]
        imgs = np.stack([np.asarray(resize(load_rgb(p), SIZE, "bicubic"), dtype=np.uint8) for p in chunk])
        for p, f in zip(chunk, lomo(imgs, use_retinex=retinex)):
            cache[(p, retinex)] = f
    return np.stack([cache[(p, retinex)] for p in paths])


def run_trial(dm, trial, variant: str, cache: dict) -> dict[str, float]:
    method, _, flag = variant.partition("+")
    retinex = flag != "noretinex"
    train_ids = set(trial.train) | set(trial.val)
    tr = [r for r in dm.records if r.pid in train_ids]
    tr_lr, tr_hr = [r for r in tr if r.genuine_lr], [r for r in tr if not r.genuine_lr]
    root = dm.data_root
    by_name = {str(r.path).removeprefix(str(root) + "/"): r for r in dm.records if not r.genuine_lr}
    probes = [r for r in dm.records if r.genuine_lr and r.pid in set(trial.test)]
    gallery = [by_name[trial.test_gallery[p]] for p in sorted(trial.test_gallery)]
    lr_paths = {r.path for r in dm.records if r.genuine_lr}
    f = lambda recs: features([r.path for r in recs], lr_paths, retinex, cache)  # noqa: E731
    y = lambda recs: np.array([r.pid for r in recs])  # noqa: E731
    if method == "nfst":
        model = NFST().fit(np.concatenate([f(tr_lr), f(tr_hr)]), np.concatenate([y(tr_lr), y(tr_hr)]))
    else:
        model = XQDA(subspace="eig" if method == "xqda_eig" else "svd").fit(f(tr_lr), y(tr_lr), f(tr_hr), y(tr_hr))
    dist = torch.from_numpy(np.asarray(model.distance(f(probes), f(gallery)), dtype=np.float64))
    out = cmc_and_map(dist, torch.from_numpy(y(probes)), torch.from_numpy(y(gallery)), ranks=RANKS)
    return {f"rank{k}": round(float(out[f"rank{k}"]), 2) for k in RANKS} | {
        "n_probe": len(probes), "n_gallery": len(gallery), "n_train_lr": len(tr_lr), "n_train_hr": len(tr_hr)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of the train config, e.g. data=grid_standard")
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--variants", default="xqda")
    args = parser.parse_args()
    dm = datamodule(args.overrides)
    cache: dict = {}
    report = {"overrides": args.overrides, "trials": args.trials}
    for variant in args.variants.split(","):
        rows = [run_trial(dm, dm.trials[k], variant, cache) for k in range(args.trials)]
        summary = {f"rank{k}": (round(statistics.mean(r[f"rank{k}"] for r in rows), 2),
                                round(statistics.pstdev(r[f"rank{k}"] for r in rows), 2)) for k in RANKS}
        report[variant] = {"mean_std": summary, "per_trial": rows}
        print(variant, json.dumps(summary), flush=True)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
