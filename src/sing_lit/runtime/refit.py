"""``data.protocol.val_mode=refit``: validate on held-out people, then retrain on all training people.

The paper holds part of the training people out to choose the checkpoint and the fusion sigma, so
its final models train on fewer people than the benchmark's split gives (CUHK03: 1,094 of 1,367).
With ``refit`` each anchor's trial runs twice:

1. the holdout run (``trial_<k>/holdout/``): trained on the training people, validated on the
   validation people; its best checkpoint (by ``val/rank1``) gives the epoch count, and it is the
   model whose validation distances choose the fusion sigma;
2. the refit run (``trial_<k>/``): trained on the training and validation people with the same
   config, schedule included, and stopped after that many epochs; no validation (its training
   people are the validation people). Its last checkpoint (``final.ckpt``) is tested and fused.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L

from sing_lit.runtime.anchors import load_checkpoint
from sing_lit.runtime.cli import UserError

VAL_MODES = ("holdout", "refit")
HOLDOUT_DIR = "holdout"  # the holdout run of a refit trial: trial_<k>/holdout/
REFIT_CHECKPOINT = "final"  # the refit run's checkpoint: trial_<k>/checkpoints/final.ckpt


def val_mode(protocol) -> str:
    """``data.protocol.val_mode`` (``holdout`` when absent), checked."""
    mode = str(protocol.get("val_mode", "holdout"))
    if mode not in VAL_MODES:
        raise UserError(f"data.protocol.val_mode={mode!r} is not allowed; expected one of {list(VAL_MODES)}")
    return mode


def holdout_epochs(best_checkpoint: str | Path) -> int:
    """How many epochs the holdout run had trained when it saved its best checkpoint."""
    if not best_checkpoint:
        raise UserError("data.protocol.val_mode=refit needs the holdout run's best checkpoint to choose the epoch "
                        "count, but it saved none (was it a fast_dev_run?); train without debug settings")
    ckpt = load_checkpoint(best_checkpoint)
    return int(ckpt["epoch"]) + 1  # Lightning records the 0-based epoch the checkpoint was saved in


class StopAfterEpochs(L.Callback):
    """Stops training after ``epochs`` epochs whatever ``trainer.max_epochs`` is, so that the learning-rate
    schedule (planned over ``max_epochs``) follows the holdout run's epoch for epoch up to there."""

    def __init__(self, epochs: int) -> None:
        if epochs < 1:
            raise UserError(f"the refit run needs >= 1 epoch, got {epochs}")
        self.epochs = int(epochs)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch + 1 >= self.epochs:
            trainer.should_stop = True
