"""Anchor models on disk: find a sweep's jobs, load checkpoints, check they belong together."""

from __future__ import annotations

import copy
import json
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hydra
import torch
import yaml
from omegaconf import DictConfig, OmegaConf

from sing_lit.models.sing_net import SINGNet
from sing_lit.runtime.cli import UserError


@dataclass
class AnchorRun:
    """One trained anchor: its name, ratio and the best checkpoint of each trial.

    ``val_checkpoints``: per trial, the model whose validation distances choose sigma where that is not
    the tested one (``data.protocol.val_mode=refit``: the holdout run's best checkpoint).
    """

    name: str
    ratio: float
    source: Path
    checkpoints: dict[int, Path]
    val_checkpoints: dict[int, Path] = field(default_factory=dict)

    def val_checkpoint(self, trial: int) -> Path:
        """The checkpoint of trial ``trial`` that the validation people were held out of."""
        return self.val_checkpoints.get(trial, self.checkpoints[trial])


def _read_json(path: Path, what: str) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as err:
        raise UserError(f"{what}: {path} is missing (the job did not finish; see its log next to it)") from err
    except json.JSONDecodeError as err:
        raise UserError(f"{what}: {path} is not valid JSON ({err})") from err


def anchor_from_run_dir(run_dir: str | Path) -> AnchorRun:
    """An anchor from a finished ``sing_lit.train`` run dir (its ``metrics.json``)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"anchor run dir {run_dir} does not exist")
    metrics = _read_json(run_dir / "metrics.json", f"anchor job {run_dir.name} failed or is unfinished")
    ckpts, val_ckpts = {}, {}
    for t in metrics.get("trials", []):
        best = t.get("best_checkpoint") or ""
        if not best:
            raise UserError(f"anchor job {run_dir.name}: trial {t.get('trial')} saved no checkpoint "
                            "(was it a fast_dev_run?); train it again without debug settings")
        ckpts[int(t["trial"])] = run_dir / best  # relative to the run dir (absolute paths still work)
        if t.get("holdout_checkpoint"):  # val_mode=refit
            val_ckpts[int(t["trial"])] = run_dir / t["holdout_checkpoint"]
    if not ckpts:
        raise UserError(f"anchor job {run_dir.name}: {run_dir / 'metrics.json'} lists no trained trial")
    anchor = metrics["anchor"]
    return AnchorRun(name=anchor["name"], ratio=float(anchor["ratio"]), source=run_dir, checkpoints=ckpts,
                     val_checkpoints=val_ckpts)


def anchor_from_checkpoint(path: str | Path) -> AnchorRun:
    """An anchor from one checkpoint file (one trial)."""
    path = Path(path)
    meta = load_checkpoint(path)["sing_lit"]
    trial = int(meta["data"]["trial"])
    # A refit checkpoint names its holdout run's checkpoint, relative to its own folder.
    val = {trial: path.parent / meta["holdout_checkpoint"]} if meta.get("holdout_checkpoint") else {}
    return AnchorRun(name=meta["anchor"]["name"], ratio=float(meta["anchor"]["ratio"]), source=path,
                     checkpoints={trial: path}, val_checkpoints=val)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """``torch.load`` a sing_lit checkpoint with one clear error for missing/corrupt/foreign files."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, OSError, ValueError) as err:
        raise UserError(f"checkpoint {path} is corrupt or truncated ({type(err).__name__}: {first_sentence(err)}); "
                        "use another checkpoint or train again") from err
    if not isinstance(ckpt, dict) or "sing_lit" not in ckpt or "state_dict" not in ckpt:
        raise UserError(f"checkpoint {path} is not a sing_lit checkpoint (no 'sing_lit' metadata); "
                        "expected a file written by python -m sing_lit.train")
    return ckpt


def data_config(meta: dict[str, Any], root: str | None = None, cache_dir: str | None = None) -> DictConfig:
    """The data config a checkpoint was trained with, with ``data.root`` (and ``data.cache_dir``) replaced
    when given: a run dir copied to another machine finds its dataset where that machine keeps it."""
    cfg = OmegaConf.create(meta["config"]["data"])
    if root is not None:
        cfg.root = str(root)
    if cache_dir is not None:
        cfg.cache_dir = str(cache_dir)
    if cfg.name != "synthetic" and not Path(cfg.root).exists():  # the built-in benchmark is rebuilt from its seed
        raise UserError(f"data.root {cfg.root} (where this checkpoint's {cfg.name} data was) does not exist"
                        + ("" if root is not None else "; pass data.root=<the dataset folder on this machine>"))
    return cfg


def data_overrides(cfg: DictConfig) -> dict[str, str]:
    """``data.root=...`` / ``data.cache_dir=...`` given to ``sing_lit.fuse`` or ``sing_lit.evaluate``."""
    data = cfg.get("data") or {}
    return {k: str(data[k]) for k in ("root", "cache_dir") if data.get(k) is not None}


def first_sentence(err: BaseException) -> str:
    """The first sentence of an error (torch's zip errors go on for a paragraph)."""
    text = (str(err).strip().splitlines() or [type(err).__name__])[0]
    return text.split(". ")[0].rstrip(".")


def build_net(ckpt: dict[str, Any], path: str | Path) -> SINGNet:
    """Rebuild the anchor's SINGNet from the config stored in its checkpoint and load its weights."""
    meta = ckpt["sing_lit"]
    net_cfg = copy.deepcopy(meta["config"]["model"]["net"])
    # The checkpoint holds every weight: never read pretrained files or the network to rebuild it.
    if isinstance(net_cfg.get("backbone"), dict) and "pretrained" in net_cfg["backbone"]:
        net_cfg["backbone"]["pretrained"] = False
    net = hydra.utils.instantiate(net_cfg)(num_classes=meta["num_classes"])
    state = {k[len("net."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
    try:
        net.load_state_dict(state)
    except RuntimeError as err:
        # torch's first line is "Error(s) in loading state_dict for SINGNet:"; the next one says what.
        lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
        first = lines[1] if len(lines) > 1 else lines[0] if lines else type(err).__name__
        first = first if len(first) <= 300 else first[:300] + " ..."
        raise UserError(f"checkpoint {path} does not fit the network its config describes "
                        f"({meta.get('backbone')}): {first}") from err
    return net.eval()


def check_compatible(anchors: list[AnchorRun], metas: dict[str, dict]) -> None:
    """Refuse anchors that cannot be fused, naming which anchor and why."""
    seen: dict[float, str] = {}
    for a in anchors:
        if a.ratio in seen:
            raise UserError(f"anchors {seen[a.ratio]} and {a.name} have the same ratio {a.ratio}; "
                            "fusion needs one anchor per ratio")
        seen[a.ratio] = a.name
    ref_name = anchors[0].name
    ref = metas[ref_name]
    for a in anchors[1:]:
        meta = metas[a.name]
        for key, what in (("dataset", "datasets"), ("root", "dataset roots"), ("split", "splits"),
                          ("input_size", "input sizes"), ("mlr", "MLR constructions"),
                          ("upscale", "LR upscaling filters"), ("trained_on", "training people (val_mode)")):
            if meta["data"].get(key) != ref["data"].get(key):
                raise UserError(f"anchor {a.name} ({a.source}) was trained on different {what} than anchor "
                                f"{ref_name}: {meta['data'].get(key)} vs {ref['data'].get(key)}")


def check_trial(anchors: list[AnchorRun], metas: dict[str, dict], trial: int) -> None:
    """Each anchor's trial-``trial`` checkpoint holds its ratio and that trial, and the anchors can be fused."""
    for a in anchors:
        if abs(float(metas[a.name]["anchor"]["ratio"]) - a.ratio) > 1e-9 or metas[a.name]["data"]["trial"] != trial:
            raise UserError(f"anchor {a.name}: checkpoint {a.checkpoints[trial]} holds ratio "
                            f"{metas[a.name]['anchor']['ratio']} trial {metas[a.name]['data']['trial']}, "
                            f"expected ratio {a.ratio} trial {trial}")
    check_compatible(anchors, metas)


def sweep_jobs(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """The jobs of a Hydra multirun dir: their dirs and task overrides, in job order."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise UserError(f"multirun dir {sweep_dir} does not exist")
    jobs = []
    for d in sorted(p for p in sweep_dir.iterdir() if (p / ".hydra" / "overrides.yaml").is_file()):
        overrides = yaml.safe_load((d / ".hydra" / "overrides.yaml").read_text()) or []
        jobs.append({"dir": d, "overrides": list(overrides)})
    return jobs
