"""Evaluate a checkpoint: ``python -m sing_lit.evaluate ckpt_path=<best.ckpt> [trainer=ddp ...]``.

Rebuilds the data and the network from the config stored in the checkpoint, then runs
``trainer.validate`` and ``trainer.test`` on its trial's identities. On N processes the metrics
are the same as on one (see :mod:`sing_lit.evaluation.gather`). Rank 0 writes
``<output dir>/metrics.json`` (``val`` and ``test``: rank-1/5/10/20, mAP, mINP, PSNR, SSIM, CMC; under the
query/gallery protocol, ``data=market1501`` or ``data=dukemtmc``, camera-aware; ``val`` is null
for a model of ``data.protocol.val_mode=refit``, which trained on the validation people).
``eval.rerank=true`` ranks both by k-reciprocal re-ranking (:mod:`sing_lit.evaluation.rerank`); metrics.json
then records its settings under ``rerank``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from omegaconf import DictConfig, OmegaConf

from sing_lit.evaluation.protocol import EXTRA_METRICS, table_columns
from sing_lit.evaluation.ranking import EVAL_METRICS
from sing_lit.evaluation.rerank import rerank_from_config
from sing_lit.reporting.report import format_table, summarize
from sing_lit.runtime.anchors import data_config, data_overrides, load_checkpoint
from sing_lit.runtime.atomic import write_json_atomic
from sing_lit.runtime.cli import CONFIG_DIR, require_plugins, run_guarded
from sing_lit.runtime.distributed import check_devices, ddp_job, is_global_zero, track, use_job_command

METRICS = (*EVAL_METRICS, *EXTRA_METRICS)  # mINP only under the query/gallery protocol


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Validate and test ``cfg.ckpt_path``; return ``{"val": {...}, "test": {...}}``."""
    check_devices(cfg.trainer)
    rerank = rerank_from_config(cfg.get("eval"))
    ckpt_path = str(Path(cfg.ckpt_path).resolve())
    meta = load_checkpoint(ckpt_path)["sing_lit"]
    config = OmegaConf.create(meta["config"])
    data = data_config(meta, **data_overrides(cfg))
    datamodule = hydra.utils.instantiate(data, trial=meta["data"]["trial"], split_out=None)
    model = hydra.utils.instantiate(config.model, num_classes=meta["num_classes"])
    model.rerank = rerank
    use_job_command("sing_lit.evaluate")
    result: dict[str, Any] = {"task": "evaluate", "checkpoint": ckpt_path}
    if rerank is not None:
        result["rerank"] = rerank.describe()
    with ddp_job():
        trainer: L.Trainer = hydra.utils.instantiate(cfg.trainer, default_root_dir=cfg.paths.output_dir)
        track(trainer)
        # A refit model (data.protocol.val_mode=refit) trained on the validation people: no validation score.
        refit = meta["data"].get("trained_on") == "train+val"
        stages = [("test", trainer.test)] if refit else [("val", trainer.validate), ("test", trainer.test)]
        for stage, run in stages:
            run(model, datamodule=datamodule, ckpt_path=ckpt_path, verbose=False)
            result[stage] = {**{m: model.last_eval[m] for m in METRICS if m in model.last_eval},
                             "cmc": model.last_eval["cmc"]}
        if refit:
            result["val"] = None
            result["note"] = "trained on the validation people (val_mode=refit): no validation score"
        result["world_size"] = trainer.world_size
    if is_global_zero():
        write_json_atomic(Path(cfg.paths.output_dir) / "metrics.json", result)
        rows = {stage: summarize([result[stage]], METRICS) for stage in ("val", "test") if result[stage]}
        print(format_table(rows, metrics=table_columns(rows),
                           title=f"{ckpt_path} on {trainer.world_size} process(es)"
                                 + (f", {rerank.label()}" if rerank else "")))
    return result


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="evaluate")
def main(cfg: DictConfig) -> None:
    run_guarded(lambda: evaluate(cfg))


def cli() -> None:
    """``python -m sing_lit.evaluate``: a missing Hydra plugin named first, then :func:`main`."""
    require_plugins(sys.argv[1:])
    main()


if __name__ == "__main__":
    cli()
