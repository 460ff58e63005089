"""Torch datasets over in-memory uint8 tensors: the three training streams and eval sets."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset


class TrainStreams(Dataset):
    """Item i pairs LR image ``i mod N_l`` with HR image ``i mod N_h`` and its synthetic LR.

    The LR and HR images of a pair need not show the same person: Eq. (3) classifies each
    stream against its own label (y^l, y^h). The epoch covers every image of the larger view.
    A random horizontal flip is drawn once for an HR image and its synthetic LR, so the
    SR target stays aligned with its input. Items are also addressed by keys ``epoch * len + i``
    (see :class:`sing_lit.data.resumable.ResumableLoader`); the flips are drawn from (seed, key),
    never from the global RNG, so an item's augmentation does not depend on when or where it loads.
    """

    def __init__(self, lr: torch.Tensor, lr_label: torch.Tensor, hr: torch.Tensor, h2l: torch.Tensor | None,
                 hr_label: torch.Tensor, flip: bool = True, seed: int = 0) -> None:
        if len(lr) == 0 or len(hr) == 0:
            raise ValueError(f"training needs LR and HR images, got {len(lr)} LR and {len(hr)} HR")
        self.lr, self.lr_label, self.hr, self.h2l, self.hr_label = lr, lr_label, hr, h2l, hr_label
        self.flip, self.seed = flip, int(seed) % 2**64  # SeedSequence takes non-negative ints

    def __len__(self) -> int:
        return max(len(self.lr), len(self.hr))

    def __getitem__(self, key: int) -> dict[str, torch.Tensor]:
        i = int(key) % len(self)
        li, hi = i % len(self.lr), i % len(self.hr)
        lr, hr = self.lr[li], self.hr[hi]
        h2l = self.h2l[hi] if self.h2l is not None else None
        if self.flip:
            flip_lr, flip_hr = np.random.default_rng([self.seed, int(key)]).random(2) < 0.5
            if flip_lr:
                lr = lr.flip(-1)
            if flip_hr:
                hr = hr.flip(-1)
                h2l = h2l.flip(-1) if h2l is not None else None
        item = {"lr": lr, "lr_label": self.lr_label[li], "hr": hr, "hr_label": self.hr_label[hi]}
        if h2l is not None:
            item["h2l"] = h2l
        return item


class EvalImages(Dataset):
    """Probe or gallery images with person ids, genuine pixel areas and (gallery) synthetic LR."""

    def __init__(self, images: torch.Tensor, pids: torch.Tensor, areas: torch.Tensor,
                 h2l: torch.Tensor | None = None) -> None:
        self.images, self.pids, self.areas, self.h2l = images, pids, areas, h2l

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        # index: merges DDP ranks' shares without DistributedSampler's repeats (sing_lit.evaluation.gather)
        item = {"image": self.images[i], "pid": self.pids[i], "area": self.areas[i], "index": i}
        if self.h2l is not None:
            item["h2l"] = self.h2l[i]
        return item
