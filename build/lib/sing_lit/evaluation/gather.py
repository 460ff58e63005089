"""One eval set's per-item records from every DDP rank, each dataset item exactly once, in index order.

Under DDP, Lightning gives each rank a DistributedSampler's share of the val/test sets; to give
every rank the same number of items it repeats the first ones. CMC, mAP, PSNR and SSIM must see
the whole probe set and gallery, without those repeats, in the same order as one process would,
so that N processes report exactly the metrics of one.
"""

from __future__ import annotations

import torch


def unique_by_index(rows: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Keep the first row of each ``rows["index"]`` value and sort all rows by it.

    Example:
        >>> out = unique_by_index({"index": torch.tensor([2, 0, 1, 0]), "x": torch.tensor([20, 0, 10, 0])})
        >>> out["index"].tolist(), out["x"].tolist()
        ([0, 1, 2], [0, 10, 20])
    """
    index = rows["index"]
    order = torch.argsort(index, stable=True)
    sorted_index = index[order]
    first = torch.ones_like(sorted_index, dtype=torch.bool)
    first[1:] = sorted_index[1:] != sorted_index[:-1]
    keep = order[first]
    return {k: v[keep] for k, v in rows.items()}


def _world_size(module) -> int:
    trainer = getattr(module, "_trainer", None)
    return int(trainer.world_size) if trainer is not None else 1


def gather_eval_set(module, records: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor] | None:
    """Concatenate this rank's records (dicts of per-item tensors), gather every rank's, de-duplicate.

    Records carry ``index``, the item's index in its dataset (:class:`sing_lit.data.streams.EvalImages`);
    records without it (one process, hand-made batches) are numbered in arrival order.
    Every rank calls this (it is a collective) and gets the same result; None for an empty set.
    """
    if not records:
        return None
    rows = {k: torch.cat([r[k] for r in records]) for k in records[0] if k != "index"}
    n = len(rows["pid"])
    rows["index"] = (torch.cat([r["index"] for r in records]) if "index" in records[0]
                     else torch.arange(n, device=rows["pid"].device))
    world = _world_size(module)
    if world > 1:
        # all_gather needs one shape on every rank: pad to the longest share, then cut the padding off.
        sizes = module.all_gather(torch.tensor([n], device=rows["pid"].device)).flatten().tolist()
        longest = max(sizes)
        gathered = {}
        for k, v in rows.items():
            padded = torch.cat([v, v.new_zeros((longest - n, *v.shape[1:]))]) if n < longest else v
            parts = module.all_gather(padded)  # (world, longest, ...)
            gathered[k] = torch.cat([parts[r, :sizes[r]] for r in range(world)])
        rows = gathered
    return unique_by_index(rows)
