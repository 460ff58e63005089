"""W&B runs: their names, an early start with a one-line error, resume ids, and the fusion stage's run.

Naming, the same for every job of one sweep (``conf/logger/wandb.yaml`` can override each):

- group: ``<sweep dir parent>-<sweep dir>`` in a multirun (``synthetic-2024-05-01_12-00-00``),
  the dataset name for a single run;
- job_type: the anchor name (``x2``, ``x3``, ``x4``), ``fuse`` for the fusion stage;
- name: ``<data>-<job dir>-trial<k>`` (``synthetic-0_x2-trial0``), ``fuse`` for the fusion stage.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from sing_lit.runtime.cli import UserError
from sing_lit.sing.fusion import METRICS


def sweep_group(sweep_dir: str | Path) -> str:
    """The W&B group of a sweep: its dir name with its parent's (which holds the dataset name)."""
    p = Path(sweep_dir).resolve()
    return f"{p.parent.name}-{p.name}" if p.parent.name else p.name


def train_run_names(cfg: DictConfig, trial: int) -> dict[str, str]:
    """group, job_type and name of one anchor job's trial (see the module docstring)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    multirun = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    job = Path(cfg.paths.output_dir).name if multirun else cfg.anchor.name
    group = sweep_group(HydraConfig.get().sweep.dir) if multirun else str(cfg.data.name)
    return {"group": group, "job_type": str(cfg.anchor.name), "name": f"{cfg.data.name}-{job}-trial{trial}"}


def _cannot_start(err: BaseException) -> UserError:
    first = next((line.strip() for line in str(err).splitlines() if line.strip()), type(err).__name__)
    return UserError(f"W&B could not start ({type(err).__name__}: {first}); log offline with "
                     "logger.wandb.offline=true (the default), run `wandb login` first, or pick logger=csv")


def start_wandb(logger: Any) -> str:
    """Start a WandbLogger's run now and return its id.

    Lightning starts it lazily, mid-fit; starting it here makes a bad W&B set-up (no API key,
    no network when online) fail before any training, with one actionable line.
    """
    try:
        return logger.experiment.id
    except Exception as err:  # wandb raises its own errors, OSError, ValueError, TypeError ...
        raise _cannot_start(err) from err


def resume_id(ckpt_path: str | Path) -> str | None:
    """The W&B run id a checkpoint was trained under, so resuming continues that run."""
    from sing_lit.runtime.anchors import load_checkpoint

    meta = load_checkpoint(ckpt_path).get("sing_lit", {})
    if meta.get("wandb_id"):
        return str(meta["wandb_id"])
    id_file = Path(ckpt_path).resolve().parent.parent / "wandb_id"  # <run>/trial_<k>/wandb_id
    if not id_file.is_file():
        return None
    return id_file.read_text().strip() or None


def finish_wandb(loggers: list, failed: bool = False) -> None:
    """``wandb.finish()`` if a WandbLogger started a run, so the next trial or job gets its own."""
    from lightning.pytorch.loggers import WandbLogger

    if any(isinstance(lg, WandbLogger) for lg in loggers):
        import wandb

        if wandb.run is not None:
            wandb.finish(exit_code=1 if failed else 0)


# ---- the fusion stage ------------------------------------------------------------------------------
def fusion_wandb_init(logger_cfg: Mapping | None, out_dir: str | Path, group: str | None) -> dict[str, Any] | None:
    """``wandb.init`` kwargs for the fusion stage when the config's ``logger`` holds ``wandb``, else None.

    The run lives in ``<out_dir>/wandb/``; the logger's ``save_dir`` (a train job's dir) is not used.
    """
    if not logger_cfg or "wandb" not in logger_cfg:
        return None
    w = logger_cfg["wandb"]
    out_dir = Path(out_dir)
    return {"project": w.get("project") or "sing_lit", "entity": w.get("entity"),
            "mode": "offline" if w.get("offline", True) else None, "dir": str(out_dir),
            "group": w.get("group") or group, "job_type": "fuse",
            "name": out_dir.name if out_dir.name.startswith("fuse") else f"fuse-{out_dir.name}"}


def fusion_group(multirun_dir: str | Path | None, sources: list[Path]) -> str | None:
    """The train jobs' group: that of the sweep the anchors come from, when they come from one."""
    if multirun_dir:
        return sweep_group(multirun_dir)
    parents = {Path(s).resolve().parent for s in sources if Path(s).is_dir()}
    if len(parents) == 1 and len(sources) == len([s for s in sources if Path(s).is_dir()]):
        parent = parents.pop()
        if (parent / "multirun.yaml").is_file():
            return sweep_group(parent)
    return None


@contextmanager
def fusion_run(init: Mapping[str, Any]) -> Iterator[Any]:
    """A W&B run around the fusion stage, started first so a bad set-up fails before the work."""
    import wandb

    if wandb.run is not None:  # never log into a train job's run
        wandb.finish()
    Path(init["dir"]).mkdir(parents=True, exist_ok=True)
    try:
        run = wandb.init(**{k: v for k, v in init.items() if v is not None})
    except Exception as err:
        raise _cannot_start(err) from err
    failed = True
    try:
        yield run
        failed = False
    finally:
        run.finish(exit_code=1 if failed else 0)


def log_fusion(run: Any, result: Mapping[str, Any], out_dir: str | Path) -> None:
    """Log the fusion results: a table (mean ± std per row), the sigma CV curve, the CMC curves."""
    import wandb

    stat_cols = [f"{m}_{s}" for m in METRICS for s in ("mean", "std")]
    rows = [[part, name, *[stats.get(m, {}).get(s) for m in METRICS for s in ("mean", "std")],
             next(iter(stats.values()), {}).get("n")]
            for part, table in (("fusion", result["table"]), ("table4", result["table4"]))
            for name, stats in table.items()]
    results = wandb.Table(columns=["part", "model", *stat_cols, "trials"], data=rows)

    metric = result["metric"]
    curve = [[str(t["trial"]), row["sigma"], *[row.get(m) for m in METRICS]]
             for t in result["trials"] for row in t["sigma_cv_curve"]]
    sigma_cv = wandb.Table(columns=["trial", "sigma", *METRICS], data=curve)

    trials = result["trials"]
    cmc_rows = []
    for name in result["table"]:
        n = min(len(t["rows"][name]["cmc"]) for t in trials)
        cmc_rows += [[name, i + 1, sum(t["rows"][name]["cmc"][i] for t in trials) / len(trials)] for i in range(n)]
    cmc = wandb.Table(columns=["model", "rank", "matching_rate"], data=cmc_rows)

    fused = next(iter(result["table"].values()))
    run.config.update({"anchors": result["anchors"], "metric": metric, "sigma_grid": result["sigma_grid"]},
                      allow_val_change=True)
    payload: dict[str, Any] = {
        "fuse/results": results,
        "fuse/sigma_cv": sigma_cv,
        "fuse/cmc_table": cmc,
        "fuse/cmc_plot": wandb.plot.line(cmc, "rank", "matching_rate", stroke="model", title="CMC (mean over trials)"),
        **{f"fuse/{m}": fused[m]["mean"] for m in METRICS if m in fused},
    }
    if curve:
        payload["fuse/sigma_cv_plot"] = wandb.plot.line(sigma_cv, "sigma", metric, stroke="trial",
                                                        title=f"sigma cross-validation ({metric} on val)")
    sigmas = [s for s in result["sigma"] if s is not None]
    if sigmas:
        payload["fuse/sigma"] = sum(sigmas) / len(sigmas)
    cmc_png = Path(out_dir) / "cmc.png"
    if cmc_png.is_file():
        payload["fuse/cmc"] = wandb.Image(str(cmc_png), caption="CMC (mean over trials)")
    run.log(payload)
