"""Resuming ``sing_lit.train``: which checkpoint a trial continues from, and which trials are done.

``ckpt_path=last`` means this run's own ``trial_<k>/checkpoints/last.ckpt`` for every trial
(same ``hydra.run.dir``, or the same ``hydra.sweep.dir`` in a multirun): a finished trial (its
``metrics.json`` exists; it is written atomically, last) is reused, an interrupted one resumes
from its ``last.ckpt``, and one that never saved a checkpoint starts fresh. Any other value is
one checkpoint file, for one trial.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from sing_lit.runtime.anchors import load_checkpoint
from sing_lit.runtime.cli import UserError

log = logging.getLogger("sing_lit.train")

LAST = "last"


def finished_trial(cfg: DictConfig, k: int, out_dir: Path) -> dict[str, Any] | None:
    """With ``ckpt_path=last``, the result of trial ``k`` if an earlier launch finished it."""
    path = out_dir / "metrics.json"
    if str(cfg.ckpt_path) != LAST or not path.is_file():
        return None
    try:
        result = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None  # not ours (ours are written atomically): train the trial again
    if result.get("trial") != k:
        return None
    log.info("trial %d: finished earlier (%s), not retrained", k, path)
    return result


def remove_partial_writes(ckpt_dir: Path) -> list[Path]:
    """Delete the temp files of checkpoint writes that a kill interrupted (``.<name>.ckpt.<random>.tmp``, see
    :func:`sing_lit.runtime.atomic.atomic_path`); the checkpoints themselves were never touched by them."""
    stale = sorted(ckpt_dir.glob(".*.ckpt.*.tmp")) if ckpt_dir.is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
        log.info("removed %s, left by an interrupted checkpoint write", path)
    return stale


def resume_checkpoint(cfg: DictConfig, k: int, out_dir: Path) -> tuple[str | None, dict[str, Any]]:
    """The checkpoint trial ``k`` resumes from (checked to load and to fit the config) and its
    ``sing_lit`` metadata, or (None, {})."""
    if cfg.ckpt_path is None:
        return None, {}
    if str(cfg.ckpt_path) == LAST:
        remove_partial_writes(out_dir / "checkpoints")
        path = out_dir / "checkpoints" / "last.ckpt"
        if not path.is_file():
            log.info("trial %d: ckpt_path=last but %s does not exist yet: starting fresh", k, path)
            return None, {}
        log.info("trial %d: resuming from %s", k, path)
    else:
        path = Path(str(cfg.ckpt_path))
    meta = load_checkpoint(path)["sing_lit"]  # one clear error for a missing, corrupt or foreign file
    ours, theirs = cfg.model.net.backbone._target_, meta.get("backbone")
    if theirs != ours:
        raise UserError(f"checkpoint {path} was trained with backbone {theirs}, but this run builds {ours}; "
                        "pick the backbone= it was trained with, or another checkpoint")
    return str(path), meta


def check_fits_data(ckpt_path: str, meta: dict[str, Any], num_classes: int) -> None:
    """A resumed checkpoint's classifier must have one output per training identity of this run."""
    theirs = meta.get("num_classes")
    if theirs is not None and int(theirs) != num_classes:
        raise UserError(f"checkpoint {ckpt_path} was trained on {theirs} identities, but this run's data has "
                        f"{num_classes}: it belongs to another dataset, split or trial")
