"""Resume: the training order is a pure function of (seed, epoch), the loader resumes mid-epoch,
RNG states round-trip through a checkpoint, and a run killed with SIGKILL and relaunched with
``ckpt_path=last`` ends exactly where the uninterrupted run ends (CPU, same seed)."""

from __future__ import annotations

import io
import json
import os
import random
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from python_runs import run_python, start_python
from sing_lit.data.resumable import ResumableLoader
from sing_lit.data.streams import TrainStreams
from sing_lit.runtime.rng import rng_states, set_rng_states


def streams(n: int = 12, seed: int = 0) -> TrainStreams:
    # Image i is the constant i in its left column and 255 elsewhere, so a flip shows.
    imgs = torch.full((n, 3, 4, 2), 255, dtype=torch.uint8)
    imgs[:, :, :, 0] = torch.arange(n, dtype=torch.uint8)[:, None, None]
    labels = torch.arange(n)
    return TrainStreams(imgs, labels, imgs.clone(), imgs.clone(), labels.clone(), flip=True, seed=seed)


def epoch_batches(loader: ResumableLoader, epoch: int) -> list[dict]:
    loader.sampler.set_epoch(epoch)  # what Lightning does before each epoch
    return list(loader)


def same(a: list[dict], b: list[dict]) -> bool:
    return len(a) == len(b) and all(torch.equal(x[k], y[k]) for x, y in zip(a, b) for k in x)


def test_order_and_flips_are_a_function_of_seed_and_epoch():
    a, b = ResumableLoader(streams(), 4, seed=3), ResumableLoader(streams(), 4, seed=3)
    assert len(a) == 3
    torch.manual_seed(0)
    first = epoch_batches(a, 0)
    torch.manual_seed(123)  # the global RNG plays no part
    assert same(first, epoch_batches(b, 0))
    assert not same(first, epoch_batches(b, 1))
    assert not same(first, epoch_batches(ResumableLoader(streams(), 4, seed=4), 0))
    labels = torch.cat([x["lr_label"] for x in first])
    assert sorted(labels.tolist()) == list(range(12)) and labels.tolist() != list(range(12))  # a permutation
    ds = streams()
    assert all(torch.equal(ds[k]["hr"], ds[k]["hr"]) for k in range(24))
    flipped = [bool(ds[k]["lr"][0, 0, 1] != 255) for k in range(24)]
    assert 0 < sum(flipped) < 24  # some flipped, some not, decided by the key


@pytest.mark.parametrize("consumed", [0, 1, 2])
def test_loader_resumes_mid_epoch(consumed):
    ref = ResumableLoader(streams(), 4, seed=0)
    epoch_batches(ref, 0)
    ref.sampler.set_epoch(1)
    it = iter(ref)
    seen = [next(it) for _ in range(consumed)]
    state = ref.state_dict()
    assert state == {"epoch": 1, "batches": consumed}
    rest = list(it)

    resumed = ResumableLoader(streams(), 4, seed=0)
    resumed.load_state_dict(state)
    resumed.sampler.set_epoch(1)
    assert same(list(resumed), rest)
    assert resumed.state_dict() == {"epoch": 2, "batches": 0}  # epoch 1 is over
    assert same(seen + rest, epoch_batches(ResumableLoader(streams(), 4, seed=0), 1))


def test_loader_after_a_complete_epoch_starts_the_next():
    loader = ResumableLoader(streams(), 4, seed=0)
    loader.load_state_dict({"epoch": 0, "batches": 3})
    assert loader.sampler.epoch == 1
    assert same(list(loader), epoch_batches(ResumableLoader(streams(), 4, seed=0), 1))


def test_limited_epoch_state_points_at_the_next_epoch():
    """With limit_train_batches the trainer stops an epoch early: that state is a complete epoch."""
    loader = ResumableLoader(streams(), 4, seed=0, epoch_batches=lambda: 2)
    it = iter(loader)
    next(it)
    assert loader.state_dict() == {"epoch": 0, "batches": 1}
    next(it)
    assert loader.state_dict() == {"epoch": 1, "batches": 0}
    # A mid-epoch state whose epoch Lightning does not resume (it sets another) skips nothing.
    other = ResumableLoader(streams(), 4, seed=0)
    other.load_state_dict({"epoch": 0, "batches": 1})
    assert same(epoch_batches(other, 1), epoch_batches(ResumableLoader(streams(), 4, seed=0), 1))


def test_rng_states_round_trip_through_a_weights_only_checkpoint():
    buffer = io.BytesIO()
    torch.save({"rng_states": rng_states()}, buffer)
    expected = (torch.rand(3), np.random.rand(3), random.random())
    buffer.seek(0)
    set_rng_states(torch.load(buffer, weights_only=True)["rng_states"])
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(expected[0], got[0]) and np.array_equal(expected[1], got[1]) and expected[2] == got[2]


# ---- end to end: SIGKILL mid-epoch, resume, compare ------------------------------------------------
# 24 identities: 5 batches per epoch, 2 epochs; last.ckpt after every step. model_checkpoint without a
# monitor keeps the latest epoch as best.ckpt, so the test metrics come from the final weights.
RESUME = ["debug=tiny", "model.net.sr_net.channels=[8,4]", "data.reader.num_ids=24", "trainer.max_epochs=2",
          "trainer.limit_train_batches=null", "callbacks.step_checkpoint.every_n_train_steps=1",
          "callbacks.model_checkpoint.monitor=null", "logger=[]", "~callbacks.pictures", "ckpt_path=last",
          # Known gap: with recipe=strong's per-step warm-up/cosine schedule a mid-epoch resume is not yet
          # bit-identical (the PK sampler and augmentations are: this passes with them on); README "Resuming".
          "scheduler=cosine_epochs", "model.scheduler_interval=epoch"]


def train_cmd(run_dir: Path, extra: tuple[str, ...] = ()) -> list[str]:
    return ["-m", "sing_lit.train", *RESUME, *extra, f"hydra.run.dir={run_dir}"]


def cli_env(cache_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    return {**env, "SING_LIT_CACHE": str(cache_dir), "PYTHONUNBUFFERED": "1"}


def last_step(path: Path) -> int | None:
    try:
        return int(torch.load(path, map_location="cpu", weights_only=False)["global_step"])
    except (FileNotFoundError, RuntimeError, EOFError):
        return None


@pytest.mark.slow
@pytest.mark.parametrize("extra", [(), ("data.in_memory=false", "data.num_workers=2")], ids=["in_memory", "streaming"])
def test_sigkill_mid_epoch_then_ckpt_path_last_reproduces_the_uninterrupted_run(tmp_path, cache_dir, extra):
    env = cli_env(cache_dir)
    straight = run_python(train_cmd(tmp_path / "straight", extra), tmp_path, env, timeout=300)
    assert straight.returncode == 0, straight.stderr[-3000:]

    run = tmp_path / "killed"
    last = run / "trial_0" / "checkpoints" / "last.ckpt"
    proc = start_python(train_cmd(run, extra), tmp_path, env, log=tmp_path / "killed.log")
    deadline = time.monotonic() + 240
    while proc.poll() is None and time.monotonic() < deadline:
        step = last_step(last) if last.exists() else None
        if step is not None and step >= 7:  # epoch 1, batch 2 of 5
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert "ckpt_path=last but" in (tmp_path / "killed.log").read_text()  # auto-resume: none yet, fresh
    killed_at = torch.load(last, map_location="cpu", weights_only=False)
    loader_state = killed_at["loops"]["fit_loop"]["state_dict"]["combined_loader"][0]
    assert 0 < loader_state["batches"] < 5, f"not killed mid-epoch: {loader_state}"
    assert not (run / "metrics.json").exists()

    resumed = run_python(train_cmd(run, extra), tmp_path, env, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from {last}" in resumed.stdout + resumed.stderr
    assert (run / "metrics.json").read_bytes() == (tmp_path / "straight" / "metrics.json").read_bytes()
    final = torch.load(last, map_location="cpu", weights_only=False)
    ref = torch.load(tmp_path / "straight" / "trial_0" / "checkpoints" / "last.ckpt", map_location="cpu",
                     weights_only=False)
    assert final["global_step"] == ref["global_step"] == 10
    assert all(torch.equal(final["state_dict"][k], ref["state_dict"][k]) for k in ref["state_dict"])
    info = json.loads((run / "run_info.json").read_text())
    assert info["trials"]["0"]["resumed_from"] == str(last.resolve())
