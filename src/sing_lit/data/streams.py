"""Torch datasets over in-memory uint8 tensors: the three training streams and eval sets."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset


class TrainStreams(Dataset):
    """Item i pairs LR image ``i mod N_l`` with HR image ``i mod N_h`` and its synthetic LR.

    The LR and HR images of a pair need not show the same person: Eq. (3) classifies each
    stream against its own label (y^l, y^h). The epoch covers every image of the larger view.
    A random horizontal flip is drawn once for an HR image and its synthetic LR, so the
    SR target stays aligned with its input.
    """

    def __init__(self, lr: torch.Tensor, lr_label: torch.Tensor, hr: torch.Tensor, h2l: torch.Tensor | None,
                 hr_label: torch.Tensor, flip: bool = True) -> None:
        if len(lr) == 0 or len(hr) == 0:
            raise ValueError(f"training needs LR and HR images, got {len(lr)} LR and {len(hr)} HR")
        self.lr, self.lr_label, self.hr, self.h2l, self.hr_label = lr, lr_label, hr, h2l, hr_label
        self.flip = flip

    def __len__(self) -> int:
        return max(len(self.lr), len(self.hr))

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        li, hi = i % len(self.lr), i % len(self.hr)
        lr, hr = self.lr[li], self.hr[hi]
        h2l = self.h2l[hi] if self.h2l is not None else None
        if self.flip:
            if torch.rand(()) < 0.5:
                lr = lr.flip(-1)
            if torch.rand(()) < 0.5:
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
        item = {"image": self.images[i], "pid": self.pids[i], "area": self.areas[i]}
        if self.h2l is not None:
            item["h2l"] = self.h2l[i]
        return item
