"""Hydra multirun-end callback: once the anchor jobs are done, run the fusion-eval stage.

It reads the jobs' outputs from disk (``metrics.json`` and checkpoints), so it works the
same after the basic launcher or after cluster launchers like submitit. Jobs are grouped
by their overrides other than the anchor, so ``+anchor=1/2,1/3,1/4 model.alpha=0,1``
gives one fusion per alpha. A group missing an anchor that was asked for is an error,
never a silent fusion of fewer anchors.
"""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path
from typing import Any

import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from sing_lit.runtime.anchors import AnchorRun, anchor_from_run_dir, sweep_jobs
from sing_lit.runtime.cli import UserError

log = logging.getLogger("sing_lit.runtime.pipeline")

ANCHOR_OVERRIDE = re.compile(r"^\+{0,2}anchor=(.+)$")


def _anchor_of(overrides: list[str]) -> tuple[str | None, tuple[str, ...]]:
    anchor, rest = None, []
    for o in overrides:
        m = ANCHOR_OVERRIDE.match(o)
        if m:
            anchor = m.group(1)
        elif not o.lstrip("+~").startswith("ckpt_path="):  # a resumed relaunch is the same sweep
            rest.append(o)
    return anchor, tuple(sorted(rest))


def anchor_groups(sweep_dir: str | Path, asked: list[str] | None = None) -> dict[tuple[str, ...], list[AnchorRun]]:
    """Group a sweep's anchor jobs by their other overrides; check each group is complete."""
    jobs = sweep_jobs(sweep_dir)
    if asked is None:
        asked = asked_in_sweep(sweep_dir)
    groups: dict[tuple[str, ...], list[tuple[str, Path]]] = {}
    for job in jobs:
        anchor, rest = _anchor_of(job["overrides"])
        if anchor is not None:
            groups.setdefault(rest, []).append((anchor, job["dir"]))
    wanted = sorted(set(asked or [a for g in groups.values() for a, _ in g]))
    out = {}
    for rest, members in groups.items():
        have = sorted(a for a, _ in members)
        missing = sorted(set(wanted) - set(have))
        if missing:
            raise UserError(f"sweep {sweep_dir} ({' '.join(rest) or 'no other overrides'}) lacks anchor job(s) "
                            f"{missing}: refusing to fuse fewer anchors than asked for {wanted}")
        out[rest] = [anchor_from_run_dir(d) for _, d in sorted(members, key=lambda m: m[1].name)]
    return out


def asked_anchors(task_overrides: list[str]) -> list[str]:
    """Anchor choices of a sweep from its command-line overrides, e.g. ['1/2', '1/3', '1/4']."""
    for o in task_overrides:
        m = ANCHOR_OVERRIDE.match(o)
        if m:
            value = m.group(1)
            if value.startswith(("choice(", "range(")):
                value = value[value.index("(") + 1:-1]
            return [v.strip() for v in value.split(",") if v.strip()]
    return []


def asked_anchors_of(task_overrides: list[str], sweeper_params: dict | None) -> list[str]:
    """Anchor choices from the command line, else from ``hydra.sweeper.params`` (an experiment config)."""
    params = [f"{k}={v}" for k, v in (sweeper_params or {}).items()]
    return asked_anchors(list(task_overrides)) or asked_anchors(params)


def asked_in_sweep(sweep_dir: str | Path) -> list[str] | None:
    """The anchors a finished sweep asked for, from the ``multirun.yaml`` Hydra saves in it."""
    path = Path(sweep_dir) / "multirun.yaml"
    if not path.is_file():
        return None
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError:
        return None
    hydra_cfg = doc.get("hydra", {})
    return asked_anchors_of(list(hydra_cfg.get("overrides", {}).get("task", [])),
                            (hydra_cfg.get("sweeper") or {}).get("params")) or None


class FuseAnchorsCallback(Callback):
    """Runs :func:`sing_lit.sing.fusion_stage.run_fusion` at the end of a multirun over ``anchor``."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if not self.enabled:
            return
        asked = asked_anchors_of(list(config.hydra.overrides.task), config.hydra.sweeper.get("params"))
        if len(asked) < 2:
            log.info("multirun does not sweep over anchors: no fusion stage")
            return
        from sing_lit.evaluation.rerank import rerank_from_config
        from sing_lit.runtime.wandb_runs import fusion_wandb_init, sweep_group
        from sing_lit.sing.fusion_stage import run_fusion

        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            groups = anchor_groups(sweep_dir, asked)
            for i, (rest, anchors) in enumerate(sorted(groups.items())):
                out = sweep_dir / ("fuse" if len(groups) == 1 else f"fuse_{i}")
                log.info("fusing %s -> %s", [a.name for a in anchors], out)
                run_fusion(anchors, out, list(config.fusion.sigma_grid), config.fusion.metric,
                           title=f"{config.data.name}, {' '.join(rest) or 'defaults'}",
                           wandb_init=fusion_wandb_init(config.get("logger"), out, sweep_group(sweep_dir)),
                           info={"group_overrides": list(rest)}, rerank=rerank_from_config(config.get("eval")))
        except UserError as err:
            print(f"error: fusion stage: {err}", file=sys.stderr)
            sys.exit(2)
