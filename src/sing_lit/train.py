"""Train SING anchor models: ``python -m sing_lit.train +anchor=1/3 [data=... data.root=...]``.

For each trial of the dataset's protocol: build the data, the model, the callbacks, the
loggers and the trainer from their ``_target_`` configs, fit, then test the best checkpoint
(by ``val/rank1``). Writes ``<run>/trial_<k>/`` (checkpoints, logs, metrics) and
``<run>/metrics.json`` with the mean and std over trials. ``data.protocol.val_mode=refit`` then
retrains each trial on the training and validation people (:mod:`sing_lit.runtime.refit`).
"""

from __future__ import annotations

import logging
import math
import os
import sys
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from lightning.pytorch.loggers import WandbLogger
from omegaconf import DictConfig, OmegaConf

from sing_lit.data.splits import select_trials
from sing_lit.evaluation.protocol import EXTRA_METRICS, table_columns
from sing_lit.evaluation.ranking import EVAL_METRICS
from sing_lit.evaluation.rerank import rerank_from_config
from sing_lit.reporting.report import format_table, summarize
from sing_lit.runtime.atomic import write_json_atomic, write_text_atomic
from sing_lit.runtime.checkpoint_io import AtomicCheckpointIO
from sing_lit.runtime.cli import CONFIG_DIR, UserError, require_plugins, run_guarded
from sing_lit.runtime.distributed import check_devices, ddp_job, is_global_zero, track, use_job_command
from sing_lit.runtime.refit import HOLDOUT_DIR, REFIT_CHECKPOINT, StopAfterEpochs, holdout_epochs, val_mode
from sing_lit.runtime.resume import LAST, check_fits_data, finished_trial, resume_checkpoint
from sing_lit.runtime.run_info import now_iso, write_run_info
from sing_lit.runtime.wandb_runs import finish_wandb, resume_id, start_wandb, train_run_names

log = logging.getLogger("sing_lit.train")
# what metrics.json reports per trial: rank-k, mAP, PSNR, SSIM, and mINP under the query/gallery protocol
METRICS = (*EVAL_METRICS, *EXTRA_METRICS)


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
    if val_mode(cfg.data.protocol) == "refit" and cfg.ckpt_path not in (None, LAST):
        raise UserError(f"ckpt_path={cfg.ckpt_path} resumes one training run, but data.protocol.val_mode=refit trains "
                        "two per trial (holdout, then refit): resume with ckpt_path=last")
    if cfg.trials is not None and cfg.ckpt_path not in (None, LAST) and len(cfg.trials) != 1:
        raise UserError("ckpt_path resumes one trial: also set trials=[k]")
    check_devices(cfg.trainer)
    rerank_from_config(cfg.get("eval"))


def trial_indices(cfg: DictConfig) -> list[int]:
    chosen = select_trials(int(cfg.data.protocol.trials), cfg.trials)
    if cfg.ckpt_path not in (None, LAST) and len(chosen) != 1:
        raise UserError("ckpt_path resumes one trial: also set trials=[k] (or data.protocol.trials=1)")
    return chosen


def train_trial(cfg: DictConfig, k: int, out_dir: Path, info: dict[str, Any] | None = None) -> dict[str, Any]:
    """Fit and test one trial; return its val/test metrics and best checkpoint.

    With ``data.protocol.val_mode=refit`` the trial is a holdout run (``trial_<k>/holdout/``, validated, not
    tested) and then a refit run on the training and validation people for the holdout run's best epoch
    count, which is tested (see :mod:`sing_lit.runtime.refit`). With ``ckpt_path=last`` a finished run is
    reused and an interrupted one resumed (see :mod:`sing_lit.runtime.resume`); ``info`` collects what
    happened, for ``run_info.json``.
    """
    info = {} if info is None else info
    if val_mode(cfg.data.protocol) == "holdout":
        return fit_trial(cfg, k, out_dir, info)
    holdout = fit_trial(cfg, k, out_dir / HOLDOUT_DIR, info.setdefault("holdout", {}), run_dir=out_dir.parent,
                        stage="holdout")
    return fit_trial(cfg, k, out_dir, info, stage="refit", holdout=holdout)


def fit_trial(cfg: DictConfig, k: int, out_dir: Path, info: dict[str, Any], run_dir: Path | None = None,
              stage: str = "train", holdout: dict[str, Any] | None = None) -> dict[str, Any]:
    """One training run of trial ``k`` into ``out_dir``: ``train`` (val_mode=holdout: fit, pick the best
    checkpoint on val, test it), or the ``holdout`` / ``refit`` run of val_mode=refit (``holdout``: the
    holdout run's result, whose best checkpoint sets the refit run's epochs and is kept for sigma)."""
    run_dir = out_dir.parent if run_dir is None else run_dir
    done = finished_trial(cfg, k, out_dir)
    if done is not None:
        info["reused"] = True
        return done
    refit_epochs = holdout_epochs(run_dir / holdout["best_checkpoint"]) if stage == "refit" else None
    ckpt_path, ckpt_meta = resume_checkpoint(cfg, k, out_dir)
    info["resumed_from"] = str(Path(ckpt_path).resolve()) if ckpt_path else None
    L.seed_everything(int(cfg.seed) + k, workers=True, verbose=False)
    split_out = str(run_dir / "split.json") if is_global_zero() else None  # DDP: rank 0 writes files
    datamodule = hydra.utils.instantiate(cfg.data, trial=k, split_out=split_out, seed=int(cfg.seed) + k,
                                         refit=stage == "refit")
    datamodule.setup("fit")
    if ckpt_path:
        check_fits_data(ckpt_path, ckpt_meta, datamodule.num_classes)
    model = hydra.utils.instantiate(cfg.model, num_classes=datamodule.num_classes)
    model.meta = {
        "config": OmegaConf.to_container(cfg, resolve=True),
        "anchor": OmegaConf.to_container(cfg.anchor, resolve=True),
        "data": datamodule.signature(),
        "num_classes": datamodule.num_classes,
        "backbone": cfg.model.net.backbone._target_,
        "stage": stage,
    }
    if stage == "refit":  # the fusion stage takes sigma's validation distances from the holdout run's model
        model.meta["holdout_checkpoint"] = os.path.relpath(run_dir / holdout["best_checkpoint"], out_dir / "checkpoints")
        model.meta["refit_epochs"] = refit_epochs
    suffix = "_holdout" if stage == "holdout" else ""
    loggers = []
    for name, lg_cfg in (cfg.get("logger") or {}).items():
        extra = {"version": f"trial_{k}{suffix}"} if name in ("csv", "tensorboard") else {}
        if name == "wandb":
            extra = {key: v for key, v in train_run_names(cfg, k).items() if lg_cfg.get(key) is None}
            if suffix and "name" in extra:
                extra["name"] += suffix.replace("_", "-")
            if ckpt_path is not None:
                extra["id"] = resume_id(ckpt_path)  # resuming continues the checkpoint's W&B run
        loggers.append(hydra.utils.instantiate(lg_cfg, **extra))
    callbacks: list[L.Callback] = []
    for name, cb_cfg in (cfg.get("callbacks") or {}).items():
        if cb_cfg is None:
            continue  # switched off on the command line: callbacks.<name>=null
        if name == "lr_monitor" and not loggers:
            continue  # LearningRateMonitor refuses a trainer without loggers
        if name == "step_checkpoint" and not cb_cfg.get("every_n_train_steps"):
            continue  # mid-epoch last.ckpt is off; model_checkpoint saves it every epoch
        extra = {"dirpath": str(out_dir / "checkpoints")} if name in ("model_checkpoint", "step_checkpoint") else {}
        if name == "model_checkpoint" and stage == "refit":  # no validation: the last epoch's model is the one
            extra.update(monitor=None, filename=REFIT_CHECKPOINT, save_on_train_epoch_end=True)
        callbacks.append(hydra.utils.instantiate(cb_cfg, **extra))
    trainer_extra: dict[str, Any] = {}
    if stage == "refit":  # its training people include the validation people: validating on them means nothing
        callbacks.append(StopAfterEpochs(refit_epochs))
        trainer_extra["limit_val_batches"] = 0
    # Atomic checkpoint files, never NaN weights, one clear line when the disk is full.
    trainer: L.Trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False,
                                                 default_root_dir=str(out_dir), plugins=[AtomicCheckpointIO()],
                                                 **trainer_extra)
    track(trainer)  # DDP: the ranks it starts end with the job (sing_lit.runtime.distributed.ddp_job)
    result: dict[str, Any] = {"trial": k, "num_classes": datamodule.num_classes}
    failed = True
    try:
        for lg in loggers:
            if isinstance(lg, WandbLogger) and trainer.is_global_zero:  # start it now: a bad set-up fails early
                model.meta["wandb_id"] = start_wandb(lg)
                write_text_atomic(out_dir / "wandb_id", model.meta["wandb_id"] + "\n")
            lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
        ckpt_cb = trainer.checkpoint_callback
        best = ckpt_cb.best_model_path if ckpt_cb is not None else ""
        # Paths relative to the run dir: a copied or moved run dir stays usable (and
        # metrics.json stays byte-identical between two runs of the same config).
        result["best_checkpoint"] = os.path.relpath(best, run_dir) if best else ""
        last = ckpt_cb.last_model_path if ckpt_cb is not None else ""
        result["last_checkpoint"] = os.path.relpath(last, run_dir) if last else ""
        if ckpt_cb is not None and ckpt_cb.best_model_score is not None:
            result["val_rank1_best"] = float(ckpt_cb.best_model_score)
        elif ckpt_cb is not None and ckpt_cb.monitor is None and "val/rank1" in trainer.callback_metrics:
            # monitor=null keeps the latest epoch's model (conf/budget/prid2011.yaml): its score is the last one
            result["val_rank1_best"] = float(trainer.callback_metrics["val/rank1"])
        if stage == "refit":  # model selection happened in the holdout run: its score is the trial's
            result.update(val_mode="refit", refit_epochs=refit_epochs, holdout_checkpoint=holdout["best_checkpoint"],
                          holdout_num_classes=holdout["num_classes"])
            if "val_rank1_best" in holdout:
                result["val_rank1_best"] = holdout["val_rank1_best"]
        if cfg.test and stage != "holdout" and not trainer.fast_dev_run:
            model.rerank = rerank_from_config(cfg.get("eval"))  # the test only: validation chose the checkpoint
            trainer.test(model, datamodule=datamodule, ckpt_path=best or None, verbose=False)
            result["test"] = {m: model.last_eval[m] for m in METRICS if m in model.last_eval}
            result["test_cmc"] = model.last_eval["cmc"]
        failed = False
    finally:
        finish_wandb(loggers, failed)  # every trial and job gets its own W&B run
    if trainer.is_global_zero:
        write_json_atomic(out_dir / "metrics.json", result)
    return result


def train(cfg: DictConfig) -> dict[str, Any]:
    check_config(cfg)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    out = Path(cfg.paths.output_dir)
    started = now_iso()
    trials_info: dict[int, dict[str, Any]] = {}
    use_job_command("sing_lit.train")  # DDP ranks re-run this job, not the whole sweep
    with ddp_job():
        results = [train_trial(cfg, k, out / f"trial_{k}", trials_info.setdefault(k, {}))
                   for k in trial_indices(cfg)]
    summary = {
        "task": "train",
        "dataset": cfg.data.name,
        "anchor": OmegaConf.to_container(cfg.anchor, resolve=True),
        "backbone": cfg.model.net.backbone._target_,
        "sr": None if cfg.model.net.get("sr_net") is None else cfg.model.net.sr_net._target_,
        "synthetic_stream": bool(cfg.model.synthetic_stream),
        "sr_training": str(cfg.model.get("sr_training", "joint")),
        "upscale": str(cfg.data.upscale),
        "val_mode": val_mode(cfg.data.protocol),
        "alpha": float(cfg.model.alpha),
        "trials": results,
        "test": summarize([r["test"] for r in results if "test" in r], METRICS),
    }
    rerank = rerank_from_config(cfg.get("eval"))
    if rerank is not None and cfg.test:
        summary["test_rerank"] = rerank.describe()
    if not is_global_zero():
        return summary  # under DDP every rank has the results; rank 0 writes them
    # metrics.json holds only what the config and seed determine; where and when go to run_info.json.
    write_run_info(out, started=started, trials=trials_info)
    write_json_atomic(out / "metrics.json", summary)
    if summary["test"]:
        method = ("SING" if summary["sr_training"] == "joint" else "SRCNN (separate) + re-id") if summary["sr"] \
            else f"{summary['upscale']}-only"
        rows = {f"{method} {cfg.anchor.label} ({cfg.data.name})": summary["test"]}
        print(format_table(rows, title=f"test, mean ± std over {len(results)} trial(s)"
                                       + (f", {rerank.label()}" if rerank else ""), metrics=table_columns(rows)))
    return summary


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Train; return the mean over trials of the kept checkpoint's ``val/rank1`` (the model-selection score:
    the best epoch's, or the last epoch's with ``callbacks.model_checkpoint.monitor=null``).

    That is the objective a Hydra sweeper maximises (``hparams_search=sing_optuna``): test
    identities never steer a search. None when no validation ran (``debug=fast_dev_run``).
    """
    summary = run_guarded(lambda: train(cfg))
    scores = [r["val_rank1_best"] for r in (summary or {}).get("trials", []) if "val_rank1_best" in r]
    if not scores or any(math.isnan(v) for v in scores):
        return None
    return sum(scores) / len(scores)


def cli() -> None:
    """``python -m sing_lit.train``: a missing Hydra plugin named first, then :func:`main`."""
    require_plugins(sys.argv[1:])
    main()


if __name__ == "__main__":
    cli()
