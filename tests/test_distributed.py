"""Scale-out: DDP on 2 CPU processes (gloo), evaluation that N processes agree with 1 on, rank-0-only
writes, a crashing rank, the submitit launcher with the fusion stage, bf16, and one-line errors.

DDP runs are subprocesses (Lightning re-runs the entry point for rank 1) with a timeout: a test
that hangs fails. ``OMP_NUM_THREADS=1`` in every run compared for exact equality: Lightning gives
each DDP process ``cpu_count / N`` threads, and float sums depend on the thread count.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
import torch

from python_runs import run_python
from sing_lit.data.eval_shard import BatchShard
from sing_lit.data.resumable import EpochPermutation
from sing_lit.evaluation.gather import gather_eval_set, unique_by_index
from wandb_offline import offline_runs

TINY = ["debug=tiny"]
DDP2 = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.precision=32-true", "trainer.devices=2"]
EVAL_KEYS = ("rank1", "rank5", "rank10", "rank20", "mAP", "psnr", "ssim", "cmc")


def run(args: list[str], cwd: Path, cache: Path, module: str = "sing_lit.train", timeout: float = 240,
        **env_extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_") and k != "HYDRA_FULL_ERROR"}
    env.update(SING_LIT_CACHE=str(cache), WANDB_MODE="offline", PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1",
               **env_extra)
    return run_python(["-m", module, *args], cwd, env, timeout)


def check_ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"


def only(paths) -> Path:
    paths = sorted(paths)
    assert len(paths) == 1, paths
    return paths[0]


def error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, f"exit {proc.returncode}\n{proc.stderr[-3000:]}"
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return only(line for line in proc.stderr.splitlines() if line.startswith("error:"))


# ---- pieces, in process -----------------------------------------------------------------------------
def test_unique_by_index_drops_repeats_and_sorts():
    rows = {"index": torch.tensor([3, 1, 0, 2, 0, 1]), "pid": torch.tensor([30, 10, 0, 20, 0, 10])}
    out = unique_by_index(rows)
    assert out["index"].tolist() == [0, 1, 2, 3] and out["pid"].tolist() == [0, 10, 20, 30]


def test_gather_on_one_process_keeps_arrival_order_without_index():
    recs = [{"pid": torch.tensor([5, 6]), "feat": torch.ones(2, 3)}, {"pid": torch.tensor([7]), "feat": torch.zeros(1, 3)}]
    out = gather_eval_set(object(), recs)
    assert out["pid"].tolist() == [5, 6, 7] and out["index"].tolist() == [0, 1, 2]
    assert gather_eval_set(object(), []) is None


@pytest.mark.parametrize(("n", "batch", "world"), [(10, 3, 2), (5, 2, 2), (2, 128, 2), (7, 2, 3), (8, 2, 4)])
def test_batch_shards_cover_the_one_process_batches(n, batch, world):
    shards = [list(BatchShard(n, batch, world, r)) for r in range(world)]
    assert len({len(s) // batch + (len(s) % batch > 0) for s in shards}) == 1  # same number of batches per rank
    one_process = [tuple(range(i, min(n, i + batch))) for i in range(0, n, batch)]
    for s in shards:  # cut like the DataLoader does: each piece is a batch of the one-process batching
        assert all(tuple(s[i:i + batch]) in one_process for i in range(0, len(s), batch))
    assert sorted({i for s in shards for i in s}) == list(range(n))


def test_training_shares_are_disjoint_and_equal():
    shares = [list(EpochPermutation(11, seed=3, num_replicas=3, rank=r)) for r in range(3)]
    assert [len(s) for s in shares] == [3, 3, 3]
    assert len(set().union(*shares)) == 9 and set().union(*shares) <= set(range(11))
    assert list(EpochPermutation(11, seed=3)) == list(EpochPermutation(11, seed=3, num_replicas=1, rank=0))


def test_learning_rates_scale_with_processes():
    from types import SimpleNamespace

    from sing_lit.models.sing_net import build_sing_net
    from sing_lit.models.small_cnn import SmallCNN
    from sing_lit.models.sr_net import SRNet
    from sing_lit.sing.module import SINGModule

    def module(scale_lr: bool) -> SINGModule:
        net = lambda num_classes: build_sing_net(num_classes, backbone=lambda: SmallCNN(widths=(4,)),  # noqa: E731
                                                 sr_net=lambda: SRNet(channels=(4, 2)), feat_dim=5)
        m = SINGModule(net=net, num_classes=3, optimizer=torch.optim.Adam, lr_sr=1e-4, lr_reid=1e-3, scale_lr=scale_lr)
        m._trainer = SimpleNamespace(world_size=4)
        return m

    lrs = {g["name"]: g["lr"] for g in module(True).configure_optimizers().param_groups}  # no scheduler here
    assert lrs == {"reid": pytest.approx(4e-3), "sr": pytest.approx(4e-4)}
    lrs = {g["name"]: g["lr"] for g in module(False).configure_optimizers().param_groups}
    assert lrs == {"reid": pytest.approx(1e-3), "sr": pytest.approx(1e-4)}


def test_synthetic_lr_stream_is_the_same_in_every_rank(tiny_cfg):
    """Each rank builds its data itself: x^{h2l} must come out bit-identical (no RNG involved)."""
    import hydra

    cfg = tiny_cfg()
    sets = []
    for _ in range(2):
        dm = hydra.utils.instantiate(cfg.data, trial=0, split_out=None)
        dm.setup("fit")
        sets.append(dm)
    assert torch.equal(sets[0].train_set.h2l, sets[1].train_set.h2l)
    assert torch.equal(sets[0].eval_sets["val"][1].h2l, sets[1].eval_sets["val"][1].h2l)


def test_slurm_launcher_config_maps_to_sbatch(compose_cfg, tmp_path, monkeypatch):
    """hydra/launcher=slurm with trainer=ddp_multinode: the sbatch script the plugin would submit."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    import submitit
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
    from omegaconf import OmegaConf

    cfg = compose_cfg(["hydra/launcher=slurm", "trainer=ddp_multinode", "hydra.launcher.partition=gpu",
                       f"hydra.sweep.dir={tmp_path}", "hydra.job.name=train"], return_hydra_config=True)
    params = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    params.pop("_target_")
    monkeypatch.setattr(submitit.SlurmExecutor, "affinity", classmethod(lambda cls: 2))  # no srun here
    # what BaseSubmititLauncher.launch does with its params
    executor = submitit.AutoExecutor(folder=params.pop("submitit_folder"), cluster="slurm",
                                     slurm_max_num_timeout=params.pop("max_num_timeout"))
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(**{k if k in base else f"slurm_{k}": v for k, v in params.items()})
    text = executor._executor._make_submission_file_text("python -m x", "uid")
    for flag in ("--nodes=2", "--ntasks-per-node=8", "--gpus-per-node=8", "--partition=gpu", "--time=240",
                 "--mem=32GB", "--cpus-per-task=8"):
        assert flag in text, text


def test_missing_plugin_is_one_error_line(capsys):
    from sing_lit.runtime.cli import require_plugins

    require_plugins(["+anchor=1/2", "hydra/launcher=basic"], find_spec=lambda m: None)  # nothing needed
    with pytest.raises(SystemExit) as exit_:
        require_plugins(["hydra/launcher=submitit_slurm"], find_spec=lambda m: None)
    assert exit_.value.code == 2
    line = capsys.readouterr().err.strip()
    assert line.startswith("error: hydra/launcher=submitit_slurm") and "pip install 'sing_lit[cluster]'" in line


# ---- bad input, on the command line -------------------------------------------------------------
@pytest.mark.parametrize(("args", "names"), [
    (["trainer.devices=64"], ["trainer.devices=64", "CPU cores"]),
    (["trainer=gpu"], ["trainer.devices=1", "0 CUDA GPU(s)", "trainer=cpu"]),
], ids=["too_many_cpu_processes", "gpu_without_gpu"])
def test_too_many_devices(tmp_path, cli_in_process, args, names):
    if "trainer=gpu" in args and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    line = error_line(cli_in_process([*TINY, *args], tmp_path))
    for name in names:
        assert name in line, line
    assert not (tmp_path / "outputs").exists() or not list((tmp_path / "outputs").rglob("*.ckpt"))


def test_optuna_search_without_the_plugin(tmp_path, cache_dir):
    try:
        import hydra_plugins.hydra_optuna_sweeper  # noqa: F401
    except ImportError:
        line = error_line(run(["hparams_search=sing_optuna", *TINY], tmp_path, cache_dir, timeout=60))
        assert "hydra-optuna-sweeper" in line and "pip install 'sing_lit[optuna]'" in line
        return
    proc = run(["hparams_search=sing_optuna", *TINY, "hydra.sweeper.n_trials=2",
                "hydra.sweeper.sampler.n_startup_trials=1"], tmp_path, cache_dir)
    check_ok(proc)
    best = only(tmp_path.glob("multirun/train/synthetic/*/optimization_results.yaml"))
    assert "best_value" in best.read_text()


# ---- DDP: 2 CPU processes ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ddp_sweep(tmp_path_factory, cache_dir) -> tuple[Path, subprocess.CompletedProcess]:
    """Two anchors in one multirun (basic launcher, in one process), each job on 2 DDP processes, with
    W&B (offline) and CSV loggers; then the fusion stage. Run once for this module."""
    cwd = tmp_path_factory.mktemp("ddp_sweep")
    proc = run(["-m", "+anchor=1/2,1/3", *TINY, *DDP2, "logger=[wandb,csv]"], cwd, cache_dir)
    check_ok(proc)
    return only(cwd.glob("multirun/train/synthetic/*")), proc


@pytest.mark.slow
def test_ddp_jobs_write_once_and_fuse(ddp_sweep):
    sweep, proc = ddp_sweep
    out = proc.stdout + proc.stderr
    assert out.count("All distributed processes registered. Starting with 2 processes") == 2  # ranks per job
    jobs = sorted(p for p in sweep.iterdir() if p.name[0].isdigit())
    assert [j.name for j in jobs] == ["0_x2", "1_x3"]
    for job in jobs:
        assert [p.relative_to(job).as_posix() for p in job.rglob("checkpoints")] == ["trial_0/checkpoints"]
        assert sorted(p.name for p in (job / "trial_0" / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
        runs = offline_runs(job)
        assert len(runs) == 1 and len(list(job.rglob("offline-run-*"))) == 1  # one W&B run, from rank 0
        assert (job / "trial_0" / "wandb_id").read_text().strip() == runs[0].run_id
        assert runs[0].values("val/rank1") and runs[0].values("test/rank1")
        metrics = json.loads((job / "metrics.json").read_text())
        assert metrics["test"]["rank1"]["n"] == 1 and 0 <= metrics["test"]["rank1"]["mean"] <= 100
        assert len(list(job.glob(".hydra"))) == 1 and not list(job.rglob("lightning_logs"))
        assert (job / "train_ddp_rank1.log").is_file()  # rank 1 ran this job (not the sweep), in this dir
        assert len(list((job / "trial_0" / "pictures").glob("sr_grid_epoch*.png"))) == 1
        # 2 processes: data.batch_size per process, the learning rates doubled (model.scale_lr)
        csv = (job / "logs" / "trial_0" / "metrics.csv").read_text().splitlines()
        header, rows = csv[0].split(","), [line.split(",") for line in csv[1:]]
        col = header.index("lr-Adam/reid")
        assert float(next(r[col] for r in rows if r[col])) == pytest.approx(2 * 1e-3)
    assert (sweep / "fuse" / "metrics.json").is_file() and "SING fused (Eq. 6-8)" in proc.stdout


@pytest.mark.slow
def test_ddp_evaluation_equals_one_process(ddp_sweep, tmp_path, cache_dir):
    """The same checkpoint evaluated on 1 and on 2 processes: every metric exactly equal."""
    best = ddp_sweep[0] / "1_x3" / "trial_0" / "checkpoints" / "best.ckpt"
    results = {}
    for n, extra in ((1, []), (2, DDP2)):
        proc = run([f"ckpt_path={best}", *extra, f"hydra.run.dir=eval_{n}"], tmp_path, cache_dir,
                   module="sing_lit.evaluate")
        check_ok(proc)
        results[n] = json.loads((tmp_path / f"eval_{n}" / "metrics.json").read_text())
    assert (results[1]["world_size"], results[2]["world_size"]) == (1, 2)
    for stage in ("val", "test"):
        assert {k: results[2][stage][k] for k in EVAL_KEYS} == {k: results[1][stage][k] for k in EVAL_KEYS}, stage


@pytest.mark.slow
@pytest.mark.parametrize("rank", [0, 1])
def test_a_crashing_rank_fails_the_job(tmp_path, cache_dir, rank):
    """One rank raises at the start of training while the other waits in a collective: the job must end,
    and no rank may outlive it (``subprocess.run`` would wait for its output pipes)."""
    (tmp_path / "crash_rank.py").write_text(
        "import lightning as L\n"
        "class CrashOnRank(L.Callback):\n"
        "    def __init__(self, rank):\n        self.rank = rank\n"
        "    def on_train_start(self, trainer, pl_module):\n"
        "        if trainer.global_rank == self.rank:\n            raise RuntimeError('rank crashed on purpose')\n")
    start = time.monotonic()
    proc = run([*TINY, *DDP2, "+callbacks.crash._target_=crash_rank.CrashOnRank", f"+callbacks.crash.rank={rank}"],
               tmp_path, cache_dir, timeout=120, PYTHONPATH=str(tmp_path))
    assert proc.returncode != 0 and time.monotonic() - start < 100
    assert "rank crashed on purpose" in proc.stderr
    assert not list(tmp_path.rglob("metrics.json"))


# ---- submitit launcher: the anchors as separate jobs, then the fusion stage -----------------------
@pytest.mark.slow
def test_submitit_local_multirun_ends_with_the_fusion_table(tmp_path, cache_dir):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    proc = run(["-m", "+anchor=1/2,1/3,1/4", *TINY, "hydra/launcher=submitit_local"], tmp_path, cache_dir, timeout=300)
    check_ok(proc)
    sweep = only(tmp_path.glob("multirun/train/synthetic/*"))
    assert (sweep / ".submitit").is_dir()  # the jobs ran as submitit jobs
    assert sorted(p.name for p in sweep.iterdir() if p.name[0].isdigit()) == ["0_x2", "1_x3", "2_x4"]
    assert "SING fused (Eq. 6-8)" in proc.stdout and "M1/2+M1/3+M1/4" in proc.stdout
    fused = json.loads((sweep / "fuse" / "metrics.json").read_text())
    assert [a["name"] for a in fused["anchors"]] == ["x2", "x3", "x4"]


# ---- mixed precision -------------------------------------------------------------------------------
@pytest.mark.slow
def test_bf16_mixed_on_cpu(tmp_path, cache_dir):
    x = torch.ones(2, 2)
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert (x @ x).dtype == torch.bfloat16
    except (RuntimeError, AssertionError) as err:
        pytest.skip(f"bf16 autocast does not run on this CPU build of torch: {err}")
    proc = run([*TINY, "trainer.precision=bf16-mixed"], tmp_path, cache_dir)
    check_ok(proc)
    assert "Using bfloat16 Automatic Mixed Precision (AMP)" in proc.stdout + proc.stderr
    metrics = json.loads((only(tmp_path.glob("outputs/train/synthetic/x2/*")) / "metrics.json").read_text())
    for k in ("rank1", "mAP", "psnr", "ssim"):
        v = metrics["test"][k]["mean"]
        assert v == v and v != float("inf"), k  # finite
