"""Train SING anchor models: ``python -m sing_lit.train +anchor=1/3 [data=... data.root=...]``.

For each trial of the dataset's protocol: build the data, the model, the callbacks, the
loggers and the trainer from their ``_target_`` configs, fit, then test the best checkpoint
(by ``val/rank1``). Writes ``<run>/trial_<k>/`` (checkpoints, logs, metrics) and
``<run>/metrics.json`` with the mean and std over trials.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from lightning.pytorch.loggers import WandbLogger
from omegaconf import DictConfig, OmegaConf

from sing_lit.cli import CONFIG_DIR, UserError, run_guarded
from sing_lit.report import format_table, summarize
from sing_lit.utils.atomic import write_json_atomic, write_text_atomic
from sing_lit.wandb_runs import finish_wandb, resume_id, start_wandb, train_run_names

log = logging.getLogger("sing_lit.train")

METRICS = ("rank1", "rank5", "rank10", "rank20", "mAP", "psnr", "ssim")


def check_config(cfg: DictConfig) -> None:
    """Fail early, with the value and what is allowed, on config values that cannot work."""
    ratio = cfg.anchor.ratio
    if not isinstance(ratio, (int, float)) or not 0 < float(ratio) < 1:
        raise UserError(f"anchor.ratio={ratio!r} is not allowed: it must be a number in (0, 1); "
                        "pick an anchor with +anchor=1/2, +anchor=1/3 or +anchor=1/4")
    if "/" in str(cfg.anchor.name):
        raise UserError(f"anchor.name={cfg.anchor.name!r} must not contain '/': it names run dirs and loggers")
    # Checked again by SINGModule; here so a bad value fails before the data is built.
    if not isinstance(cfg.model.alpha, (int, float)) or cfg.model.alpha < 0:
        raise UserError(f"model.alpha={cfg.model.alpha!r} is not allowed: it weighs L_sr in Eq. (5) and must be >= 0")
    for key in ("lr_sr", "lr_reid"):
        value = cfg.model[key]
        if not isinstance(value, (int, float)) or value < 0 or (key == "lr_reid" and value == 0):
            raise UserError(f"model.{key}={value!r} is not allowed: learning rates must be numbers "
                            f"{'> 0' if key == 'lr_reid' else '>= 0'}")
    if cfg.trials is not None and cfg.ckpt_path is not None and len(cfg.trials) != 1:
        raise UserError("ckpt_path resumes one trial: also set trials=[k]")


def trial_indices(cfg: DictConfig) -> list[int]:
    n = int(cfg.data.protocol.trials)
    chosen = list(range(n)) if cfg.trials is None else [int(t) for t in cfg.trials]
    bad = [t for t in chosen if not 0 <= t < n]
    if bad:
        raise UserError(f"trials={bad} do not exist: data.protocol.trials={n} allows 0..{n - 1}")
    if cfg.ckpt_path is not None and len(chosen) != 1:
        raise UserError("ckpt_path resumes one trial: also set trials=[k] (or data.protocol.trials=1)")
    return chosen


def train_trial(cfg: DictConfig, k: int, out_dir: Path) -> dict[str, Any]:
    """Fit and test one trial; return its val/test metrics and best checkpoint."""
    L.seed_everything(int(cfg.seed) + k, workers=True, verbose=False)
    datamodule = hydra.utils.instantiate(cfg.data, trial=k, split_out=str(out_dir.parent / "split.json"))
    datamodule.setup("fit")
    model = hydra.utils.instantiate(cfg.model, num_classes=datamodule.num_classes)
    model.meta = {
        "config": OmegaConf.to_container(cfg, resolve=True),
        "anchor": OmegaConf.to_container(cfg.anchor, resolve=True),
        "data": datamodule.signature(),
        "num_classes": datamodule.num_classes,
        "backbone": cfg.model.net.backbone._target_,
    }
    loggers = []
    for name, lg_cfg in (cfg.get("logger") or {}).items():
        extra = {"version": f"trial_{k}"} if name in ("csv", "tensorboard") else {}
        if name == "wandb":
            extra = {key: v for key, v in train_run_names(cfg, k).items() if lg_cfg.get(key) is None}
            if cfg.ckpt_path is not None:
                extra["id"] = resume_id(cfg.ckpt_path)  # resuming continues the checkpoint's W&B run
        loggers.append(hydra.utils.instantiate(lg_cfg, **extra))
    callbacks = []
    for name, cb_cfg in (cfg.get("callbacks") or {}).items():
        if name == "lr_monitor" and not loggers:
            continue  # LearningRateMonitor refuses a trainer without loggers
        extra = {"dirpath": str(out_dir / "checkpoints")} if name == "model_checkpoint" else {}
        callbacks.append(hydra.utils.instantiate(cb_cfg, **extra))
    trainer: L.Trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False,
                                                 default_root_dir=str(out_dir))
    result: dict[str, Any] = {"trial": k, "num_classes": datamodule.num_classes}
    failed = True
    try:
        for lg in loggers:
            if isinstance(lg, WandbLogger):  # start it now: a bad W&B set-up fails before training
                model.meta["wandb_id"] = start_wandb(lg)
                write_text_atomic(out_dir / "wandb_id", model.meta["wandb_id"] + "\n")
            lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
        trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.ckpt_path)
        ckpt_cb = trainer.checkpoint_callback
        best = ckpt_cb.best_model_path if ckpt_cb is not None else ""
        # Paths relative to the run dir: a copied or moved run dir stays usable (and
        # metrics.json stays byte-identical between two runs of the same config).
        run_dir = out_dir.parent
        result["best_checkpoint"] = os.path.relpath(best, run_dir) if best else ""
        last = ckpt_cb.last_model_path if ckpt_cb is not None else ""
        result["last_checkpoint"] = os.path.relpath(last, run_dir) if last else ""
        if ckpt_cb is not None and ckpt_cb.best_model_score is not None:
            result["val_rank1_best"] = float(ckpt_cb.best_model_score)
        if cfg.test and not trainer.fast_dev_run:
            trainer.test(model, datamodule=datamodule, ckpt_path=best or None, verbose=False)
            result["test"] = {m: model.last_eval[m] for m in METRICS}
            result["test_cmc"] = model.last_eval["cmc"]
        failed = False
    finally:
        finish_wandb(loggers, failed)  # every trial and job gets its own W&B run
    write_json_atomic(out_dir / "metrics.json", result)
    return result


def train(cfg: DictConfig) -> dict[str, Any]:
    check_config(cfg)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    out = Path(cfg.paths.output_dir)
    results = [train_trial(cfg, k, out / f"trial_{k}") for k in trial_indices(cfg)]
    summary = {
        "task": "train",
        "dataset": cfg.data.name,
        "anchor": OmegaConf.to_container(cfg.anchor, resolve=True),
        "backbone": cfg.model.net.backbone._target_,
        "sr": None if cfg.model.net.get("sr_net") is None else cfg.model.net.sr_net._target_,
        "synthetic_stream": bool(cfg.model.synthetic_stream),
        "alpha": float(cfg.model.alpha),
        "trials": results,
        "test": summarize([r["test"] for r in results if "test" in r], METRICS),
    }
    write_json_atomic(out / "metrics.json", summary)
    if summary["test"]:
        print(format_table({f"SING {cfg.anchor.label} ({cfg.data.name})": summary["test"]},
                           title=f"test, mean ± std over {len(results)} trial(s)"))
    return summary


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def main(cfg: DictConfig) -> float | None:
    summary = run_guarded(lambda: train(cfg))
    rank1 = summary["test"].get("rank1", {}).get("mean") if summary else None
    return None if rank1 is None or math.isnan(rank1) else rank1


if __name__ == "__main__":
    main()
