"""Evaluate a checkpoint: ``python -m sing_lit.evaluate ckpt_path=<best.ckpt> [trainer=ddp ...]``.

Rebuilds the data and the network from the config stored in the checkpoint, then runs
``trainer.validate`` and ``trainer.test`` on its trial's identities. On N processes the metrics
are the same as on one (see :mod:`sing_lit.evaluation.gather`). Rank 0 writes
``<output dir>/metrics.json`` (``val`` and ``test``: rank-1/5/10/20, mAP, mINP, PSNR, SSIM, CMC).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from omegaconf import DictConfig, OmegaConf

from sing_lit.evaluation.ranking import EVAL_METRICS as METRICS
from sing_lit.reporting.report import format_table, summarize
from sing_lit.runtime.anchors import data_config, data_overrides, load_checkpoint
from sing_lit.runtime.atomic import write_json_atomic
from sing_lit.runtime.cli import CONFIG_DIR, require_plugins, run_guarded
from sing_lit.runtime.distributed import check_devices, ddp_job, is_global_zero, track, use_job_command


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Validate and test ``cfg.ckpt_path``; return ``{"val": {...}, "test": {...}}``."""
    check_devices(cfg.trainer)
    ckpt_path = str(Path(cfg.ckpt_path).resolve())
    meta = load_checkpoint(ckpt_path)["sing_lit"]
    config = OmegaConf.create(meta["config"])
    data = data_config(meta, **data_overrides(cfg))
    datamodule = hydra.utils.instantiate(data, trial=meta["data"]["trial"], split_out=None)
    model = hydra.utils.instantiate(config.model, num_classes=meta["num_classes"])
    use_job_command("sing_lit.evaluate")
    result: dict[str, Any] = {"task": "evaluate", "checkpoint": ckpt_path}
    with ddp_job():
        trainer: L.Trainer = hydra.utils.instantiate(cfg.trainer, default_root_dir=cfg.paths.output_dir)
        track(trainer)
        for stage, run in (("val", trainer.validate), ("test", trainer.test)):
            run(model, datamodule=datamodule, ckpt_path=ckpt_path, verbose=False)
            result[stage] = {**{m: model.last_eval[m] for m in METRICS}, "cmc": model.last_eval["cmc"]}
        result["world_size"] = trainer.world_size
    if is_global_zero():
        write_json_atomic(Path(cfg.paths.output_dir) / "metrics.json", result)
        print(format_table({stage: summarize([result[stage]], METRICS) for stage in ("val", "test")},
                           title=f"{ckpt_path} on {trainer.world_size} process(es)"))
    return result


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="evaluate")
def main(cfg: DictConfig) -> None:
    run_guarded(lambda: evaluate(cfg))


if __name__ == "__main__":
    require_plugins(sys.argv[1:])
    main()
