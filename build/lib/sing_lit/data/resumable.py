"""A training DataLoader whose order is a pure function of (seed, epoch), resumable mid-epoch.

Lightning saves the state of a train loader that has ``state_dict``/``load_state_dict`` in every
checkpoint (``fit_loop.combined_loader``) and restores it before iterating. Here that state is
(epoch, batches consumed). With the same seed, a run killed mid-epoch and resumed from its
``last.ckpt`` sees exactly the batches the uninterrupted run would have seen.

The sampler yields *keys* ``epoch * n + i``: the dataset maps a key to item ``i mod n`` and
seeds its per-item augmentation with the key (see :class:`sing_lit.data.streams.TrainStreams`),
so no draw depends on the global RNG or on the worker that loads the item.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler


class EpochPermutation(DistributedSampler):
    """Keys ``epoch * n + i`` over a permutation of ``range(n)`` drawn from (seed, epoch).

    ``set_epoch`` is called by Lightning before each epoch. After :meth:`resume_at`, the next
    pass over *that* epoch leaves out its first ``skip`` items (mid-epoch resume); Lightning may
    set another epoch before iterating (the saved one was complete), which is then whole.

    Under DDP, rank r of R takes every R-th key of the same permutation, after leaving out the
    ``n mod R`` keys that do not divide evenly: disjoint shares of one length, and ``skip`` counts
    this rank's keys. A DistributedSampler only so that Lightning keeps it instead of wrapping it.
    """

    def __init__(self, n: int, seed: int, shuffle: bool = True, num_replicas: int = 1, rank: int = 0) -> None:
        # No DistributedSampler.__init__: it wants a dataset and, without num_replicas, a process group.
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is not in 0..{num_replicas - 1}")
        self.n, self.seed, self.shuffle = int(n), int(seed) % 2**64, shuffle
        self.num_replicas, self.rank = int(num_replicas), int(rank)
        self.epoch = 0
        self._resume: tuple[int, int] | None = None  # (epoch, keys of this rank to skip)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def resume_at(self, epoch: int, skip: int) -> None:
        self.epoch = int(epoch)
        self._resume = (int(epoch), int(skip)) if skip else None

    def pending_skip(self) -> int:
        """Keys the next pass leaves out: the resume point's, if this is the resumed epoch."""
        return self._resume[1] if self._resume is not None and self._resume[0] == self.epoch else 0

    def order(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.n)
        return np.random.default_rng([self.seed, epoch]).permutation(self.n)

    def __len__(self) -> int:
        return self.n // self.num_replicas

    def __iter__(self) -> Iterator[int]:
        epoch, skip = self.epoch, self.pending_skip()
        self._resume = None
        base = epoch * self.n
        share = self.order(epoch)[:len(self) * self.num_replicas][self.rank::self.num_replicas]
        for i in share[skip:]:
            yield base + int(i)


class ResumableLoader(DataLoader):
    """A shuffling, batch-dropping DataLoader whose state is (epoch, batches consumed).

    Lightning's fetcher does not prefetch from a loader with a length, so the batches this
    loader has handed out when a checkpoint is saved are the batches the model has trained on.

    Args:
        dataset: a dataset that accepts keys ``epoch * len(dataset) + i`` (e.g. ``TrainStreams``).
        batch_size: full batches only (``drop_last``), so a skip of k batches is k * batch_size keys.
        seed: the order's seed; the run's seed (plus the trial) in ``sing_lit.train``.
        epoch_batches: how many batches the trainer takes per epoch (``limit_train_batches`` may
            stop it early), so a state saved at the end of an epoch points at the next one.
    """

    def __init__(self, dataset: Dataset, batch_size: int, seed: int, shuffle: bool = True,
                 num_workers: int = 0, epoch_batches: Callable[[], float] | None = None, **kwargs: Any) -> None:
        import torch.distributed as dist

        # DDP: the loader is built after the process group starts; each rank takes its share.
        world, rank = (dist.get_world_size(), dist.get_rank()) if dist.is_available() and dist.is_initialized() else (1, 0)
        sampler = EpochPermutation(len(dataset), seed, shuffle, num_replicas=world, rank=rank)
        # A private generator: creating the iterator then draws nothing from the global RNG.
        super().__init__(dataset, batch_size=batch_size, sampler=sampler, drop_last=True, num_workers=num_workers,
                         persistent_workers=num_workers > 0, generator=torch.Generator().manual_seed(int(seed) % 2**63),
                         **kwargs)
        self.epoch_batches = epoch_batches
        self._state = {"epoch": 0, "batches": 0}

    def __iter__(self) -> Iterator[Any]:
        sampler: EpochPermutation = self.sampler  # type: ignore[assignment]
        self._state = {"epoch": sampler.epoch, "batches": sampler.pending_skip() // self.batch_size}
        return self._counted(super().__iter__())

    def _counted(self, batches: Iterator[Any]) -> Iterator[Any]:
        for batch in batches:
            self._state["batches"] += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        per_epoch = min(len(self), self.epoch_batches() if self.epoch_batches is not None else len(self))
        if self._state["batches"] >= per_epoch:  # the epoch is over: resume at the start of the next
            return {"epoch": self._state["epoch"] + 1, "batches": 0}
        return dict(self._state)

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue where ``state`` stopped: the rest of its epoch, or the next epoch if it was complete."""
        sampler: EpochPermutation = self.sampler  # type: ignore[assignment]
        epoch, batches = int(state["epoch"]), int(state["batches"])
        if batches >= len(self):
            epoch, batches = epoch + 1, 0
        sampler.resume_at(epoch, batches * self.batch_size)
        self._state = {"epoch": epoch, "batches": batches}
