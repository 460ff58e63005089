"""The fusion-eval stage (Eq. 6-8): ``python -m sing_lit.fuse multirun_dir=<sweep>`` or ``anchors=[...]``.

Resolves the anchors from the command line and runs :func:`sing_lit.sing.fusion_stage.run_fusion`
(which writes metrics.json, table.md, table.csv and cmc.png into the output dir).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from sing_lit.evaluation.rerank import rerank_from_config
from sing_lit.runtime.anchors import AnchorRun, anchor_from_checkpoint, anchor_from_run_dir, data_overrides
from sing_lit.runtime.cli import CONFIG_DIR, UserError, run_guarded
from sing_lit.runtime.pipeline import anchor_groups
from sing_lit.runtime.wandb_runs import fusion_group, fusion_wandb_init
from sing_lit.sing.fusion_stage import run_fusion


def resolve_anchors(cfg: DictConfig) -> list[AnchorRun]:
    """Anchors from ``anchors=[ckpt or run dir, ...]`` or from ``multirun_dir=...``."""
    if cfg.multirun_dir:
        groups = anchor_groups(cfg.multirun_dir)
        if len(groups) != 1:
            raise UserError(f"{cfg.multirun_dir} holds {len(groups)} sweeps of anchors (other overrides vary); "
                            "pass the run dirs of one group with anchors=[...]")
        return next(iter(groups.values()))
    if not cfg.anchors:
        raise UserError("give anchors=[<checkpoint or run dir>,...] or multirun_dir=<sweep dir>")
    return [anchor_from_run_dir(p) if Path(p).is_dir() else anchor_from_checkpoint(p) for p in cfg.anchors]


def fuse_from_config(cfg: DictConfig) -> dict[str, Any]:
    anchors = resolve_anchors(cfg)
    wandb_init = fusion_wandb_init(cfg.get("logger"), cfg.paths.output_dir,
                                   fusion_group(cfg.multirun_dir, [a.source for a in anchors]))
    return run_fusion(anchors, cfg.paths.output_dir, list(cfg.fusion.sigma_grid), cfg.fusion.metric,
                      wandb_init=wandb_init, data=data_overrides(cfg), rerank=rerank_from_config(cfg.get("eval")))


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="fuse")
def main(cfg: DictConfig) -> None:
    run_guarded(lambda: fuse_from_config(cfg))


if __name__ == "__main__":
    main()
