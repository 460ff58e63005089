"""One Hydra job on several processes: rank checks, the command of each DDP rank, devices, clean-up.

Lightning's DDP strategy starts ranks 1..N-1 of a node by re-running the entry point. Its own
command re-runs ``sys.argv``, which under ``-m`` would re-run the whole sweep in every rank (or,
under submitit, the submitit worker). :func:`use_job_command` makes every rank run exactly the
current Hydra job instead: its task overrides, in run mode, in the same output dir. On SLURM the
ranks are SLURM tasks (``hydra/launcher=slurm``) and nothing is re-run.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

from sing_lit.runtime.cli import UserError

# Set by Lightning's launcher in the process that starts the other ranks.
LAUNCH_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")

_launchers: list[Any] = []  # launchers of the current job's trainers (see :func:`ddp_job`)

# Our evaluation removes DistributedSampler's padding duplicates (sing_lit.evaluation.gather).
warnings.filterwarnings("ignore", message=r".*it is recommended to use `Trainer\(devices=1, num_nodes=1\)`.*")
# val/ and test/ metrics are computed from every rank's features (gathered): each rank logs the same value.
warnings.filterwarnings("ignore", message=r".*It is recommended to use `self.log\('(val|test)/.*sync_dist=True.*")


def is_global_zero() -> bool:
    """True in the process of global rank 0 (or when not distributed).

    Before a Trainer exists the rank comes from the environment (``LOCAL_RANK`` of a DDP rank
    Lightning started, ``SLURM_PROCID``, ``RANK``); once one exists Lightning sets it.
    """
    from lightning.pytorch.utilities.rank_zero import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0


def job_command(local_rank: int, module: str) -> tuple[list[str], str]:
    """The command and cwd of DDP rank ``local_rank`` of the current Hydra job (run or multirun job)."""
    from hydra.core.hydra_config import HydraConfig

    hc = HydraConfig.get()
    command = [sys.executable, "-m", module, *hc.overrides.task,
               f'hydra.run.dir="{hc.runtime.output_dir}"', "hydra.mode=RUN", "hydra.output_subdir=null",
               f"hydra.job.name={hc.job.name}_ddp_rank{local_rank}"]
    return command, hc.runtime.cwd


def use_job_command(module: str) -> None:
    """Make Lightning's subprocess launcher start DDP ranks with :func:`job_command` of ``module``."""
    from lightning.pytorch.strategies.launchers import subprocess_script

    subprocess_script._hydra_subprocess_cmd = functools.partial(job_command, module=module)


def track(trainer: Any) -> None:
    """Remember a trainer's launcher, so :func:`ddp_job` can wait for (or stop) the ranks it starts."""
    launcher = getattr(trainer.strategy, "launcher", None)
    if launcher is not None and hasattr(launcher, "procs"):
        _launchers.append(launcher)


@contextlib.contextmanager
def ddp_job(timeout_s: float = 600) -> Iterator[None]:
    """Leave no DDP state behind one job.

    On success, wait for the ranks this process started, then close the process group and drop
    the launcher's environment, so the next job of an in-process sweep starts its own ranks. On
    failure, kill them: a rank blocked in a collective must not outlive its job.
    """
    before = {k: os.environ.get(k) for k in LAUNCH_ENV}
    _launchers.clear()
    ok = False
    try:
        yield
        ok = True
    finally:
        procs = [p for launcher in _launchers for p in launcher.procs]
        _launchers.clear()
        for p in procs:
            if not ok:
                p.kill()
            try:
                p.wait(timeout=timeout_s)
            except Exception:  # subprocess.TimeoutExpired: a rank that never ends is stopped
                p.kill()
        if procs:
            import torch.distributed as dist

            if dist.is_available() and dist.is_initialized():
                dist.destroy_process_group()
            for k, v in before.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def check_devices(trainer_cfg: Mapping[str, Any]) -> None:
    """Fail early, naming the value, when ``trainer.devices`` asks for more devices than exist."""
    devices = trainer_cfg.get("devices", 1)
    if not isinstance(devices, int) or isinstance(devices, bool) or devices < 1:
        return  # "auto", -1 or a device list: Lightning checks those
    accelerator = str(trainer_cfg.get("accelerator", "auto"))
    import torch

    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        have, what = torch.cuda.device_count(), "CUDA GPU(s)"
        fix = "trainer=cpu" if have == 0 else f"trainer.devices={have}"
    elif accelerator == "cpu":
        have, what = os.cpu_count() or 1, "CPU cores (one DDP process each)"
        fix = f"trainer.devices={have}"
    else:
        return
    if devices > have:
        raise UserError(f"trainer.devices={devices} but this machine has {have} {what}: set {fix}, or run on a "
                        "machine (or nodes, trainer=ddp_multinode) that has them")
