"""data.in_memory=false: memory-mapped training streams with the in-memory path's keys, flips and bytes."""

from __future__ import annotations

import pickle

import hydra
import torch

from sing_lit.data.resumable import ResumableLoader
from sing_lit.data.streaming import MappedImages

# debug=tiny with a smaller SR net, no pictures and no loggers: seconds on CPU.
SMALL = ["model.net.sr_net.channels=[8,4]", "logger=[]", "~callbacks.pictures"]


def _dm(cfg, **kw):
    dm = hydra.utils.instantiate(cfg.data, trial=0, split_out=None, **kw)
    dm.setup("fit")
    return dm


def _batches(dm, num_workers: int, epochs: int = 2) -> list[dict]:
    loader = ResumableLoader(dm.train_set, batch_size=4, seed=dm.seed, num_workers=num_workers)
    out = []
    for epoch in range(epochs):
        loader.sampler.set_epoch(epoch)
        out += list(loader)
    return out


def test_streams_hold_no_images_and_give_the_same_batches(tiny_cfg):
    cfg = tiny_cfg("+anchor=1/3")
    mem, mapped = _dm(cfg), _dm(cfg, in_memory=False)
    for name in ("lr", "hr", "h2l"):
        stream = getattr(mapped.train_set, name)
        assert isinstance(stream, MappedImages) and stream.array.base is not None  # a view of the mapped file
        assert torch.equal(stream[torch.arange(len(stream))], getattr(mem.train_set, name))
        assert len(pickle.dumps(stream)) < 1000  # a spawned worker gets the path, not the pixels
    a, b = _batches(mem, num_workers=0), _batches(mapped, num_workers=2)
    assert len(a) == len(b) > 0
    assert all(torch.equal(x[k], y[k]) and x[k].dtype == y[k].dtype for x, y in zip(a, b) for k in x)
    # Written once: a second DataModule maps the same files.
    again = _dm(cfg, in_memory=False)
    assert again.train_set.hr.path == mapped.train_set.hr.path


def test_no_synthetic_stream_writes_no_h2l(tiny_cfg):
    dm = _dm(tiny_cfg("+anchor=1/2", "model.synthetic_stream=false"), in_memory=False)
    assert dm.train_set.h2l is None and "h2l" not in dm.train_set[0]


def test_training_from_the_mapped_streams_gives_byte_identical_metrics(run_cli, tmp_path):
    runs = {}
    for name, extra in (("mem", []), ("mapped", ["data.in_memory=false", "data.num_workers=2"])):
        proc = run_cli(["debug=tiny", "+anchor=1/3", *SMALL, *extra, f"hydra.run.dir={tmp_path / name}"], tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
        runs[name] = tmp_path / name
    for rel in ("metrics.json", "trial_0/metrics.json"):
        assert (runs["mem"] / rel).read_bytes() == (runs["mapped"] / rel).read_bytes(), rel
