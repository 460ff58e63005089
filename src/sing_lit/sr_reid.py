"""Table 2, hand-crafted rows: super-resolve, then re-identify with LOMO + XQDA / NFST, fused over anchors.

``python -m sing_lit.sr_reid [data=prid2011 data.root=...] ['trials=[0]'] [sr_methods=[bicubic]]``

For each trial and anchor ratio m the LR side (genuine/MLR LR training images, the synthetic
LR x^{h2l} made at ratio m, and the val/test probes) is brought to the input size by bilinear
or bicubic interpolation, or by an SRCNN trained alone by MSE on that anchor's (x^{h2l}, x^h)
pairs. LOMO describes every image; XQDA learns a cross-view metric (LR view vs HR view) and NFST
a null space of both views pooled. Each (SR, re-id) pair gives one distance matrix per anchor,
fused by Eq. (6)-(8) with sigma picked on the validation identities (:mod:`sing_lit.fuse`).

Writes ``<output dir>/<sr>_<reid>/`` (the fusion files of one method) and, last, the summary
``metrics.json``, ``table.md`` and ``table.csv``; timings go to ``run_info.json``.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from sing_lit.baselines.lomo import lomo, min_image_side
from sing_lit.baselines.nfst import NFST
from sing_lit.baselines.srcnn_training import train_srcnn
from sing_lit.baselines.xqda import XQDA
from sing_lit.data.splits import select_trials
from sing_lit.models.sr_net import SRNet
from sing_lit.reporting.report import format_table, table_csv
from sing_lit.runtime.atomic import write_json_atomic, write_text_atomic
from sing_lit.runtime.cli import CONFIG_DIR, UserError, run_guarded
from sing_lit.runtime.run_info import write_run_info
from sing_lit.sing.fusion import METRICS, anchor_name, resolution_ratio
from sing_lit.sing.fusion_stage import BEST, FUSED, fuse_precomputed, write_fusion

# Method name -> the label of Table 2; the interpolation that brings LR images to the input size.
SR_LABELS = {"bilinear": "Bilinear", "bicubic": "Bicubic", "srcnn": "SRCNN"}
UPSCALE_OF = {"bilinear": "bilinear", "bicubic": "bicubic", "srcnn": "bicubic"}
REID_LABELS = {"xqda": "XQDA", "nfst": "NFST"}


def method_label(sr: str, reid: str) -> str:
    return f"{SR_LABELS[sr]} + {REID_LABELS[reid]}"


def check_config(cfg: DictConfig) -> tuple[list[str], list[str], list[float]]:
    """The SR methods, re-id methods and anchor ratios (descending), or a UserError naming the bad key."""
    if str(cfg.data.protocol.get("val_mode", "holdout")) != "holdout":
        raise UserError(f"data.protocol.val_mode={cfg.data.protocol.val_mode}: sing_lit.sr_reid fits its methods on "
                        "the training people and picks sigma on the held-out ones (val_mode=holdout) only")
    need, size = min_image_side(), list(cfg.input_size)
    if len(size) != 2 or min(size) < need:
        raise UserError(f"input_size={size} is too small for LOMO: expected [height, width] with both sides "
                        f">= {need} px (the minimum 44 holds a 10x10 window at LOMO's coarsest pyramid level)")
    chosen = {}
    for key, allowed in (("sr_methods", SR_LABELS), ("reid_methods", REID_LABELS)):
        names = list(cfg[key] or [])
        bad = [n for n in names if n not in allowed]
        if bad or not names:
            raise UserError(f"{key}={names}: {f'unknown method(s) {bad}' if bad else 'no method given'}; "
                            f"expected a list of {', '.join(allowed)}")
        chosen[key] = list(dict.fromkeys(names))
    anchors = sorted({float(m) for m in cfg.anchors or []}, reverse=True)
    if len(anchors) < 2:
        raise UserError(f"anchors={list(cfg.anchors or [])}: fusion needs at least 2 distinct anchor ratios, "
                        "e.g. [0.5, 0.3333333333333333, 0.25]")
    return chosen["sr_methods"], chosen["reid_methods"], anchors


def build_datamodule(cfg: DictConfig, ratio: float, trial: int, upscale: str):
    """The trial's images at ``input_size``, LR ones upscaled by ``upscale``, x^{h2l} made at ``ratio``."""
    dm = hydra.utils.instantiate(cfg.data, anchor_ratio=ratio, trial=trial, split_out=None, seed=int(cfg.seed) + trial,
                                 upscale=upscale, input_size=list(cfg.input_size), synthetic_stream=True)
    dm.setup("fit")
    for role, what in (("val", "validation identities to pick sigma (data.protocol.val_ids > 0)"),
                       ("test", "test identities (data.protocol.test_ids)")):
        if dm.eval_sets[role] is None:
            raise UserError(f"the {role} split of {dm.name} trial {trial} is empty; fusion needs {what}")
    return dm


def lomo_features(images: torch.Tensor, use_retinex: bool, chunk: int = 256) -> np.ndarray:
    """(N, D) float32 LOMO descriptors of (N, 3, H, W) uint8 images."""
    hwc = images.permute(0, 2, 3, 1).contiguous().numpy()
    return np.concatenate([lomo(hwc[i:i + chunk], use_retinex) for i in range(0, len(hwc), chunk)]).astype(np.float32)


@torch.no_grad()
def super_resolve(sr: torch.nn.Module, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """``sr`` applied to (N, 3, H, W) uint8 images: clamped to [0, 1] and rounded back to uint8."""
    sr.eval()
    out = [sr(images[i:i + batch_size].float().div(255.0)).clamp(0, 1).mul(255.0).round().to(torch.uint8)
           for i in range(0, len(images), batch_size)]
    return torch.cat(out) if out else images.clone()


def fit_srcnn(cfg: DictConfig, train_set, seed: int) -> tuple[SRNet, dict[str, float]]:
    """SRCNN trained alone (MSE, Eq. (2)) on the anchor's (x^{h2l}, x^h) training pairs, then frozen."""
    torch.manual_seed(seed)  # the initial weights
    sr = SRNet(channels=list(cfg.srcnn.channels), kernel_sizes=list(cfg.srcnn.kernel_sizes),
               residual=bool(cfg.srcnn.residual))
    stats = train_srcnn(sr, train_set.hr, train_set.h2l, steps=int(cfg.srcnn.steps), lr=float(cfg.srcnn.lr),
                        batch_size=int(cfg.srcnn.batch_size), seed=seed)
    return sr, stats


def lr_images(dm, sr: torch.nn.Module | None) -> dict[str, torch.Tensor]:
    """The LR side of one (trial, anchor, SR): training LR, synthetic LR, val and test probes."""
    sets = {"train_lr": dm.train_set.lr, "train_h2l": dm.train_set.h2l,
            "val": dm.eval_sets["val"][0].images, "test": dm.eval_sets["test"][0].images}
    return sets if sr is None else {name: super_resolve(sr, images) for name, images in sets.items()}


def hr_images(dm) -> dict[str, torch.Tensor]:
    """The HR side (always bicubic, the same for every SR method and anchor): training HR, val/test galleries."""
    return {"train": dm.train_set.hr, "val": dm.eval_sets["val"][1].images, "test": dm.eval_sets["test"][1].images}


def reid_distances(method: str, cfg: DictConfig, lr: dict[str, np.ndarray], hr: dict[str, np.ndarray],
                   lr_label: np.ndarray, hr_label: np.ndarray) -> dict[str, torch.Tensor]:
    """Train one re-id method on LOMO features; (Nq, Ng) probe x gallery distances for val and test.

    XQDA: probe view = training LR + synthetic LR images, gallery view = HR images (cross-view).
    NFST: one null space of all training images of both views pooled.
    """
    x_lr = np.concatenate([lr["train_lr"], lr["train_h2l"]])
    y_lr = np.concatenate([lr_label, hr_label])  # x^{h2l} shares its HR image's label
    if method == "xqda":
        model = XQDA(lambda_=float(cfg.xqda.lambda_), max_dims=cfg.xqda.max_dims).fit(x_lr, y_lr, hr["train"], hr_label)
    else:
        model = NFST(kernel=cfg.nfst.kernel).fit(np.concatenate([x_lr, hr["train"]]), np.concatenate([y_lr, hr_label]))
    return {role: torch.from_numpy(np.asarray(model.distance(lr[role], hr[role]), dtype=np.float64))
            for role in ("val", "test")}


class Timer:
    """Seconds spent per phase, summed over trials, anchors and methods."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    def __call__(self, phase: str, fn, *args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            self.seconds[phase] += time.perf_counter() - start


def lr_features(dm, sr_name: str, sr: torch.nn.Module | None, cache: dict[tuple[str, str], np.ndarray],
                retinex: bool, timer: Timer) -> dict[str, np.ndarray]:
    """LOMO of the LR side. Without an SR net only x^{h2l} depends on the anchor ratio m; the genuine LR
    training images and the probes are described once per method and taken from ``cache`` afterwards."""
    feats = {}
    for name, images in timer("sr", lr_images, dm, sr).items():
        reusable = sr is None and name != "train_h2l"
        if reusable and (sr_name, name) in cache:
            feats[name] = cache[(sr_name, name)]
            continue
        feats[name] = timer("lomo", lomo_features, images, retinex)
        if reusable:
            cache[(sr_name, name)] = feats[name]
    return feats


def run_trial(cfg: DictConfig, trial: int, sr_methods: Sequence[str], reid_methods: Sequence[str],
              anchors: Sequence[float], timer: Timer) -> tuple[dict[tuple[str, str], dict], dict[str, Any]]:
    """Per (SR, re-id) method the fusion input of :func:`sing_lit.sing.fusion_stage.fuse_precomputed`; SRCNN stats per anchor."""
    retinex = bool(cfg.lomo.retinex)
    dists = {(s, r): {"val": [], "test": []} for s in sr_methods for r in reid_methods}
    hr: dict[str, np.ndarray] | None = None
    meta: dict[str, dict] = {}
    unsr_cache: dict[tuple[str, str], np.ndarray] = {}
    srcnn_stats: dict[str, Any] = {}
    for ratio in anchors:
        for upscale in sorted({UPSCALE_OF[s] for s in sr_methods}):
            dm = timer("data", build_datamodule, cfg, ratio, trial, upscale)
            if hr is None:  # HR images are bicubic whatever the SR method and anchor: describe them once
                hr = {name: timer("lomo", lomo_features, images, retinex) for name, images in hr_images(dm).items()}
                for role in ("val", "test"):
                    probe, gallery = dm.eval_sets[role]
                    meta[role] = {"q_pid": probe.pids, "g_pid": gallery.pids,
                                  "r": resolution_ratio(probe.areas, gallery.areas)}
                    if probe.cams is not None:  # the query/gallery protocol: camera-aware evaluation
                        meta[role].update(q_cam=probe.cams, g_cam=gallery.cams)
            lr_label, hr_label = dm.train_set.lr_label.numpy(), dm.train_set.hr_label.numpy()
            for sr_name in [s for s in sr_methods if UPSCALE_OF[s] == upscale]:
                sr = None
                if sr_name == "srcnn":
                    sr, srcnn_stats[anchor_name(ratio)] = timer("srcnn_train", fit_srcnn, cfg, dm.train_set,
                                                                      int(cfg.seed) + trial)
                lr = lr_features(dm, sr_name, sr, unsr_cache, retinex, timer)
                for reid in reid_methods:
                    d = timer(reid, reid_distances, reid, cfg, lr, hr, lr_label, hr_label)
                    for role in ("val", "test"):
                        dists[(sr_name, reid)][role].append(d[role])
    fusion_inputs = {key: {role: {"dists": torch.stack(per_role[role]), **meta[role]} for role in ("val", "test")}
                     for key, per_role in dists.items()}
    return fusion_inputs, srcnn_stats


def summary_tables(fused: dict[str, dict], single: dict[str, dict], dataset: str, n_trials: int) -> tuple[str, str]:
    """(markdown, csv) of the fused rows and the best single anchor of every method (keyed by label)."""
    md = "\n\n".join([
        format_table(fused, title=f"Table 2 (hand-crafted rows), {dataset}, {n_trials} trial(s): SR, then LOMO + "
                                  "re-id, fused over anchors (Eq. 6-8)"),
        format_table(single, title="Best single anchor (by val)"),
    ])
    csv = table_csv({**fused, **{f"{name} (best single anchor)": row for name, row in single.items()}})
    return md, csv


def run_sr_reid(cfg: DictConfig) -> dict[str, Any]:
    """Every (SR, re-id) pair over the chosen trials, fused over anchors; writes the result files."""
    started = time.perf_counter()
    sr_methods, reid_methods, anchors = check_config(cfg)
    trials = select_trials(int(cfg.data.protocol.trials), cfg.trials)
    out_dir = Path(cfg.paths.output_dir)
    sigma_grid, metric = list(cfg.fusion.sigma_grid), str(cfg.fusion.metric)
    names = [anchor_name(m) for m in anchors]
    timer = Timer()
    per_method: dict[tuple[str, str], list] = defaultdict(list)
    srcnn_stats: dict[str, Any] = {}
    for k in trials:
        inputs, stats = run_trial(cfg, k, sr_methods, reid_methods, anchors, timer)
        if stats:
            srcnn_stats[str(k)] = stats
        for key, d in inputs.items():
            per_method[key].append(timer("fusion", fuse_precomputed, d, anchors, names, k, sigma_grid, metric))
    anchor_info = [{"name": n, "ratio": m} for n, m in zip(names, anchors)]
    results = {}
    for (sr, reid), trial_results in per_method.items():
        results[(sr, reid)] = write_fusion(
            trial_results, anchor_info, out_dir / f"{sr}_{reid}", sigma_grid, metric,
            title=f"{method_label(sr, reid)}, {cfg.data.name}, trials {trials}",
            extra={"sr_method": sr, "reid_method": reid, "dataset": cfg.data.name})
    fused = {method_label(*k): r["table"][FUSED] for k, r in results.items()}
    single = {method_label(*k): r["table"][BEST] for k, r in results.items()}
    md, csv = summary_tables(fused, single, cfg.data.name, len(trials))
    summary = {
        "task": "sr_reid", "dataset": cfg.data.name, "input_size": list(cfg.input_size), "trials": trials,
        "anchors": anchor_info, "sr_methods": sr_methods, "reid_methods": reid_methods,
        "metric": metric, "sigma_grid": sigma_grid, "metrics": list(METRICS),
        "table": fused,
        "table_single": single,
        "table4": {method_label(*k): r["table4"] for k, r in results.items()},
        "sigma": {method_label(*k): r["sigma"] for k, r in results.items()},
        "method_dirs": {method_label(sr, reid): f"{sr}_{reid}" for sr, reid in results},
        "srcnn_stats": srcnn_stats,
        "config": config_record(cfg),
    }
    write_text_atomic(out_dir / "table.md", md + "\n")
    write_text_atomic(out_dir / "table.csv", csv)
    timings = {phase: round(s, 2) for phase, s in sorted(timer.seconds.items())}
    write_run_info(out_dir, timings_s={**timings, "total": round(time.perf_counter() - started, 2)})
    write_json_atomic(out_dir / "metrics.json", summary)
    print(md)
    return summary


def config_record(cfg: DictConfig) -> dict[str, Any]:
    """The settings that determine the numbers; paths (run-dependent) are left to run_info.json."""
    record = {k: OmegaConf.to_container(cfg[k], resolve=True) if OmegaConf.is_config(cfg[k]) else cfg[k]
              for k in ("seed", "input_size", "lomo", "srcnn", "xqda", "nfst", "fusion")}
    data = OmegaConf.to_container(cfg.data, resolve=True)
    for key in ("root", "cache_dir", "split_out", "split_file", "anchor_ratio", "input_size", "upscale"):
        data.pop(key, None)
    return {**record, "data": data}


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="sr_reid")
def main(cfg: DictConfig) -> None:
    run_guarded(lambda: run_sr_reid(cfg))


if __name__ == "__main__":
    main()
