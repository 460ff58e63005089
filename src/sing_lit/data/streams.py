"""Torch datasets over in-memory uint8 tensors: the three training streams and eval sets."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from sing_lit.data.augment import augment_views
from sing_lit.runtime.errors import ConfigError


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
                 hr_label: torch.Tensor, flip: bool = True, seed: int = 0, pad: int = 0, erase_p: float = 0.0,
                 color: float = 0.0) -> None:
        if len(lr) == 0 or len(hr) == 0:
            raise ValueError(f"training needs LR and HR images, got {len(lr)} LR and {len(hr)} HR")
        if pad < 0 or not 0 <= erase_p <= 1:
            raise ConfigError(f"data.augment.pad must be >= 0 and data.augment.erase_p in [0, 1], got {pad}, {erase_p}")
        if not 0 <= color < 1:
            raise ConfigError(f"data.augment.color must be in [0, 1), got {color}")
        self.lr, self.lr_label, self.hr, self.h2l, self.hr_label = lr, lr_label, hr, h2l, hr_label
        self.flip, self.seed = flip, int(seed) % 2**64  # SeedSequence takes non-negative ints
        self.pad, self.erase_p, self.color = int(pad), float(erase_p), float(color)

    def __len__(self) -> int:
        return max(len(self.lr), len(self.hr))

    def __getitem__(self, key: int) -> dict[str, torch.Tensor]:
        i = int(key) % len(self)
        return self.item(key, i % len(self.lr), i % len(self.hr))

    def item(self, key: int, li: int, hi: int, lr_from_h2l: bool = False) -> dict[str, torch.Tensor]:
        """The training item of LR image ``li`` and HR image ``hi``, flipped and augmented by (seed, key).

        ``lr_from_h2l``: the LR slot holds the synthetic LR of HR image ``li`` (a person seen in HR only).
        """
        lr = self.h2l[li] if lr_from_h2l else self.lr[li]
        lr_label = self.hr_label[li] if lr_from_h2l else self.lr_label[li]
        hr = self.hr[hi]
        h2l = self.h2l[hi] if self.h2l is not None else None
        if self.flip:
            flip_lr, flip_hr = np.random.default_rng([self.seed, int(key)]).random(2) < 0.5
            if flip_lr:
                lr = lr.flip(-1)
            if flip_hr:
                hr = hr.flip(-1)
                h2l = h2l.flip(-1) if h2l is not None else None
        if self.pad or self.erase_p or self.color:
            rng = np.random.default_rng([self.seed, int(key), 1])  # its own stream: flips stay as without it
            (lr,) = augment_views([lr], rng, self.pad, self.erase_p, self.color)
            hr, h2l = augment_views([hr, h2l], rng, self.pad, self.erase_p, self.color)
        item = {"lr": lr, "lr_label": lr_label, "hr": hr, "hr_label": self.hr_label[hi]}
        if h2l is not None:
            item["h2l"] = h2l
        return item


class IdentityStreams(TrainStreams):
    """PK sampling over the same images: batches of P identities x K items, each item an LR and an HR
    image of one person, so every batch holds both resolutions of the same people (what a
    cross-resolution triplet loss needs; Hermans et al. 2017).

    An epoch is every identity that has an HR training image, K times: keys ``epoch * len + i`` with
    ``i // K`` indexing a permutation of the identities drawn from (seed, epoch), and the images of the
    K items drawn from (seed, key). Read it with an unshuffled :class:`~sing_lit.data.resumable.ResumableLoader`
    and ``batch_size = P * K``. A person seen in HR only fills the LR slot with the synthetic LR of one of
    their HR images; a person seen in LR only has no HR image to pair with and is left out.

    ``two_view_fraction``: None draws every identity once per epoch. A fraction f in (0, 1] gives the people
    seen in both views (their genuine LR paired with their HR images: the only cross-camera pairs of a
    single-shot benchmark) at least that share of the epoch's places: round(f * identities) places, filled
    by cycling through a permutation of them; the other places go to a permutation of the rest, cut to
    fit. The epoch keeps its length, and no one-view person comes twice in it. Where the two-view people
    already hold that share (e.g. MLR-Market, the built-in benchmark), the epoch is drawn as with None.
    """

    def __init__(self, *args, k: int = 4, two_view_fraction: float | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if k < 1:
            raise ConfigError(f"data.pk_k must be >= 1, got {k}")
        if two_view_fraction is not None and not 0 < float(two_view_fraction) <= 1:
            raise ConfigError(f"data.pk_two_view_fraction must be null or in (0, 1], got {two_view_fraction}")
        self.k = int(k)
        self.two_view_fraction = None if two_view_fraction is None else float(two_view_fraction)
        hr_of: dict[int, list[int]] = {}
        lr_of: dict[int, list[int]] = {}
        for i, y in enumerate(self.hr_label.tolist()):
            hr_of.setdefault(y, []).append(i)
        for i, y in enumerate(self.lr_label.tolist()):
            lr_of.setdefault(y, []).append(i)
        self.ids = sorted(hr_of)
        self.hr_of, self.lr_of = hr_of, lr_of
        self.two_view = np.array([i for i, y in enumerate(self.ids) if y in lr_of], dtype=np.int64)
        if self.two_view_fraction is not None and len(self.two_view) == 0:
            raise ConfigError("data.pk_two_view_fraction is set, but no training person is seen in both views")
        if self.h2l is None and any(y not in lr_of for y in self.ids):
            raise ConfigError("PK sampling of people seen in HR only needs the synthetic-LR stream "
                             "(data.synthetic_stream=true)")

    def __len__(self) -> int:
        return len(self.ids) * self.k

    def identity_order(self, epoch: int) -> np.ndarray:
        """The epoch's permutation of the identities, drawn from (seed, epoch); kept for the epoch's items."""
        if getattr(self, "_order", (None,))[0] != epoch:
            rng = np.random.default_rng([self.seed, epoch, 2])
            n = len(self.ids)
            n_two = 0 if self.two_view_fraction is None else round(self.two_view_fraction * n)
            if n_two <= len(self.two_view):  # off, or the two-view people already hold that share
                order = rng.permutation(n)
            else:
                rest = np.setdiff1d(np.arange(n), self.two_view)
                two = np.resize(rng.permutation(self.two_view), n_two)
                order = rng.permutation(np.concatenate([two, rng.permutation(rest)[:n - n_two]]))
            self._order = (epoch, order)
        return self._order[1]

    def __getitem__(self, key: int) -> dict[str, torch.Tensor]:
        epoch, i = divmod(int(key), len(self))
        person = self.ids[int(self.identity_order(epoch)[i // self.k])]
        rng = np.random.default_rng([self.seed, int(key), 3])
        hrs, lrs = self.hr_of[person], self.lr_of.get(person)
        hi = hrs[int(rng.integers(len(hrs)))]
        if lrs:
            return self.item(key, lrs[int(rng.integers(len(lrs)))], hi)
        return self.item(key, hrs[int(rng.integers(len(hrs)))], hi, lr_from_h2l=True)


class EvalImages(Dataset):
    """Probe or gallery images with person ids, genuine pixel areas and (gallery) synthetic LR.

    ``cams``: each image's camera, given only under the query/gallery protocol, whose evaluation is
    camera-aware (:mod:`sing_lit.evaluation.protocol`); items then carry ``cam``. Single-shot sets have none.
    """

    def __init__(self, images: torch.Tensor, pids: torch.Tensor, areas: torch.Tensor,
                 h2l: torch.Tensor | None = None, cams: torch.Tensor | None = None) -> None:
        self.images, self.pids, self.areas, self.h2l, self.cams = images, pids, areas, h2l, cams

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        # index: merges DDP ranks' shares without DistributedSampler's repeats (sing_lit.evaluation.gather)
        item = {"image": self.images[i], "pid": self.pids[i], "area": self.areas[i], "index": i}
        if self.h2l is not None:
            item["h2l"] = self.h2l[i]
        if self.cams is not None:
            item["cam"] = self.cams[i]
        return item
