"""``data.in_memory=false``: the three training streams as memory-mapped uint8 arrays, written once.

The in-memory path holds every training image of the LR, HR and synthetic-LR streams at the input
size in RAM, per anchor process and per DDP rank. Here each stream is written once, in chunks, to
``<cache_dir>/streams/<key>/<stream>.npy`` (the same pixels: the DataModule's own resize functions
make them) and read back with ``np.load(mmap_mode="r")``: a batch reads its images from the page
cache, which the processes, DataLoader workers and DDP ranks of one machine share, and no process
ever holds a whole stream. :class:`MappedImages` indexes like the in-memory uint8 tensor, so
:class:`sing_lit.data.streams.TrainStreams` (keys, flips, labels) is the same class on both paths
and a batch holds the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sing_lit.data.records import ImageRecord
from sing_lit.data.streams import TrainStreams

CHUNK = 256  # images decoded and resized at a time while a stream is written
FORMAT = 1   # bump when the bytes written for the same key change


class MappedImages:
    """A read-only ``(N, 3, H, W)`` uint8 array on disk that indexes like a tensor.

    ``images[i]`` (or an index array) returns a tensor copy of those images only. The file is
    opened lazily in each process, so pickling to a spawned worker sends the path, not the pixels.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._array: np.ndarray | None = None
        self.shape = tuple(self.array.shape)

    @property
    def array(self) -> np.ndarray:
        if self._array is None:
            self._array = np.load(self.path, mmap_mode="r")
        return self._array

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: Any) -> torch.Tensor:
        if isinstance(index, torch.Tensor):
            index = index.numpy()
        return torch.from_numpy(np.array(self.array[index]))

    def __getstate__(self) -> dict:
        return {"path": self.path, "shape": self.shape, "_array": None}


def stream_key(records: Sequence[ImageRecord], settings: dict) -> str:
    """Identifies the bytes of a stream: its images (path, size, mtime) and how they are resized."""
    h = hashlib.sha1(json.dumps({"format": FORMAT, **settings}, sort_keys=True).encode())
    for r in records:
        st = os.stat(r.path)
        h.update(f"{r.path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:20]


def write_stream(path: Path, paths: Sequence[str], load: Callable[[list[str]], list],
                 convert: Callable[[list], torch.Tensor], image_shape: tuple[int, int, int]) -> MappedImages:
    """Write ``convert(load(chunk))`` for consecutive chunks of ``paths`` to ``path`` (once), then map it.

    The file appears atomically (written under a temporary name, then renamed), so concurrent
    processes (DDP ranks, anchors) may both write it: the first rename wins, with the same bytes.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npy")
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(paths), *image_shape))
        for start in range(0, len(paths), CHUNK):
            out[start:start + CHUNK] = convert(load(list(paths[start:start + CHUNK]))).numpy()
        out.flush()
        del out
        os.replace(tmp, path)
    return MappedImages(path)


def mapped_train_streams(dm: Any, tr_lr: Sequence[ImageRecord], tr_hr: Sequence[ImageRecord]) -> TrainStreams:
    """The training streams of a :class:`~sing_lit.data.datamodule.SINGDataModule`, memory-mapped.

    Uses the DataModule's ``_load``, ``_inputs`` and ``_h2l``, so each image has the bytes the
    in-memory path gives it.
    """
    shape = (3, *dm.input_size)
    settings = {"input_size": list(dm.input_size), "upscale": dm.upscale, "anchor_ratio": dm.anchor_ratio,
                "resample": dm.mlr["resample"]}
    folder = Path(dm.cache_dir) / "streams" / dm.name

    def stream(name: str, records: Sequence[ImageRecord], convert: Callable[[list], torch.Tensor]) -> MappedImages:
        key = stream_key(records, {**settings, "stream": name})
        return write_stream(folder / f"{name}-{key}.npy", [r.path for r in records], dm._load, convert, shape)

    lr = stream("lr", tr_lr, lambda imgs: dm._inputs(imgs, lr=True))
    hr = stream("hr", tr_hr, lambda imgs: dm._inputs(imgs, lr=False))
    h2l = stream("h2l", tr_hr, dm._h2l) if dm.synthetic_stream else None
    return dm.streams(lr, torch.tensor([dm.label_of[r.pid] for r in tr_lr]), hr, h2l,
                      torch.tensor([dm.label_of[r.pid] for r in tr_hr]))
