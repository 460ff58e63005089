"""Under DDP, each rank evaluates whole batches of the one-process batching.

Lightning's DistributedSampler would give rank r the items r, r+R, r+2R, ...: each image would
be computed in another batch than on one process. CPU and GPU kernels do not promise per-image
results that ignore the rest of the batch, so features, PSNR and SSIM could differ in the last
bits. Here rank r takes batches r, r+R, ... of ``range(n)`` cut into ``batch_size`` chunks, so every
image is computed in exactly the batch it has on one process. Ranks that run out of batches
repeat another whole batch (bitwise the same results), which the evaluation drops again by
dataset index (:mod:`sing_lit.evaluation.gather`); every rank runs the same number of batches.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from torch.utils.data import DistributedSampler


class BatchShard(DistributedSampler):
    """Indices of rank ``rank``'s batches (see the module docstring); the short last batch comes last.

    Example:
        >>> list(BatchShard(5, batch_size=2, num_replicas=2, rank=0)), list(BatchShard(5, 2, 2, 1))
        ([0, 1, 4], [2, 3, 0, 1])
    """

    def __init__(self, n: int, batch_size: int, num_replicas: int, rank: int) -> None:
        # No DistributedSampler.__init__ (it wants a dataset); a DistributedSampler so Lightning keeps it.
        self.n, self.batch_size, self.num_replicas, self.rank = int(n), int(batch_size), int(num_replicas), int(rank)
        num_batches = max(1, math.ceil(self.n / self.batch_size))
        per_rank = math.ceil(num_batches / self.num_replicas)
        batches = [(self.rank + j * self.num_replicas) % num_batches for j in range(per_rank)]
        # The short last batch goes last, so the DataLoader cuts this stream into the same batches.
        batches.sort(key=lambda b: b == num_batches - 1)
        self.indices = [i for b in batches for i in range(b * self.batch_size, min(self.n, (b + 1) * self.batch_size))]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)

    def set_epoch(self, epoch: int) -> None:
        pass  # the same shares every epoch


def eval_sampler(n: int, batch_size: int) -> BatchShard | None:
    """This rank's :class:`BatchShard` when a process group is running, else None (plain order)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return None
    return BatchShard(n, batch_size, dist.get_world_size(), dist.get_rank())
