"""LightningDataModule: reader -> MLR view -> split trial -> in-memory streams at the input size."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader

from sing_lit.data.eval_shard import eval_sampler
from sing_lit.data.images import folder_images, load_rgb, resize, scaled_size, to_uint8_tensor
from sing_lit.data.mlr import QUERY_GALLERY_VIEW, build_mlr
from sing_lit.data.query_gallery import (
    QueryGalleryTrial,
    protocol_settings,
    query_gallery_records,
    query_gallery_trials,
)
from sing_lit.data.readers._common import as_root
from sing_lit.data.records import DatasetError, ImageRecord
from sing_lit.data.resumable import ResumableLoader
from sing_lit.data.splits import (
    PROTOCOL_DEFAULTS,
    Trial,
    benchmark_trials,
    load_trials,
    make_trials,
    save_trials,
    split_protocol,
)
from sing_lit.data.streams import EvalImages, IdentityStreams, TrainStreams
from sing_lit.runtime.errors import ConfigError

log = logging.getLogger(__name__)

# data.protocol.kind: the paper's single-shot split (sing_lit.data.splits), or the download's own
# query/gallery folders with camera-aware evaluation (sing_lit.data.query_gallery; MLR-Market, MLR-Duke)
PROTOCOL_KINDS = ("single_shot", "query_gallery")


class SINGDataModule(L.LightningDataModule):
    """Feeds SING's three training streams and the evaluation sets of one trial.

    Training: genuine (or MLR) LR images of the training people, HR images of the other
    view, and synthetic LR images made from each HR image at the anchor ratio m, all
    resized to ``input_size`` by bicubic interpolation (the paper's input policy).
    Validation/test: probe = every LR image of the val/test people; gallery = the one HR
    image per person that the split file names (for the test set also any distractors it names,
    ``protocol.distractors_in_test_gallery``). With ``protocol.kind=query_gallery`` the sets are the
    download's query and gallery folders instead, and carry camera ids (:mod:`sing_lit.data.query_gallery`).

    Args:
        name: dataset name, used for caches and split metadata.
        root: dataset root as downloaded (for the synthetic benchmark: its cache folder).
        reader: callable(root) -> list[ImageRecord] (a Hydra ``_partial_``).
        anchor_ratio: m, the down-sampling ratio of the synthetic LR stream.
        input_size: (height, width) every image is resized to; the paper uses 160x72.
        mlr: MLR construction, see :func:`sing_lit.data.mlr.build_mlr`
            (``lr_camera``, ``ratios``, ``seed``, ``resample``).
        protocol: ``kind`` (``single_shot``, the default, or ``query_gallery``) and ``trials``, ``test_ids``,
            ``val_ids``, ``one_camera_ids_in_train``, ``seed``, ``distractors_in_test_gallery``, see
            :func:`sing_lit.data.splits.make_trials` (``query_gallery``: ``trials``, ``val_ids``, ``seed``, see
            :func:`sing_lit.data.query_gallery.make_query_gallery_trials`); ``splits``: ``random`` (seeded
            draws) or a benchmark's own splits (``official``/``new``, read by ``benchmark_splits``, see
            :func:`sing_lit.data.splits.benchmark_trials`); ``val_mode``: ``holdout`` or ``refit`` (what
            ``sing_lit.train`` does with the validation people).
        benchmark_splits: callable(root, splits) -> the test pids of each of the dataset's own splits
            (a Hydra ``_partial_``, e.g. CUHK03's :func:`sing_lit.data.readers.cuhk03_splits.benchmark_test_sets`);
            None: the dataset has none, only ``protocol.splits=random``.
        split_file: versioned split file to read, refused if it records another ``protocol``; when absent
            the trials are drawn from ``protocol`` and written to ``split_out`` for the record.
        refit: train on the trial's training and validation people (the refit stage of
            ``protocol.val_mode=refit``); the validation set is then no held-out set.
        trial: which trial of the protocol this module serves.
        upscale: filter that brings LR images (genuine, MLR and synthetic) to the input size: ``bicubic``
            (the paper's policy) or ``bilinear`` (Table 2's bilinear "SR"); HR images are always bicubic.
        synthetic_stream: build the x^{h2l} stream (off for the Table 3 ablation).
        seed: the training order and flips are a pure function of (seed, epoch), see
            :class:`sing_lit.data.resumable.ResumableLoader`; ``sing_lit.train`` passes seed + trial.
        sampler: ``pairs`` (the paper's: item i pairs LR image i with HR image i, any people) or ``pk``
            (P identities x K items per batch, each an LR and an HR image of one person:
            :class:`sing_lit.data.streams.IdentityStreams`); ``pk_k`` is K, and batch_size must be a multiple of it.
            ``pk_two_view_fraction`` (null: off) is the share of each epoch's identities drawn from the people
            seen in both views (the cross-camera pairs), see :class:`~sing_lit.data.streams.IdentityStreams`.
        augment: ``pad`` (zero-pad then random crop back, in pixels), ``erase_p`` (random erasing
            probability) and ``color`` (brightness/contrast/saturation jitter strength), all off by
            default; see :mod:`sing_lit.data.augment`.
        in_memory: hold the training streams in RAM; ``False`` memory-maps them from files written
            once under ``cache_dir`` (:mod:`sing_lit.data.streaming`), with the same bytes per batch.
    """

    def __init__(
        self,
        name: str,
        root: str,
        reader: Callable[[str], list[ImageRecord]],
        anchor_ratio: float,
        input_size: Sequence[int] = (160, 72),
        mlr: dict | None = None,
        protocol: dict | None = None,
        benchmark_splits: Callable[[str, str], list[list[int]]] | None = None,
        split_file: str | None = None,
        split_out: str | None = None,
        trial: int = 0,
        cache_dir: str = ".data_cache",
        batch_size: int = 32,
        eval_batch_size: int = 128,
        num_workers: int = 0,
        flip: bool = True,
        upscale: str = "bicubic",
        synthetic_stream: bool = True,
        seed: int = 0,
        sampler: str = "pairs",
        pk_k: int = 4,
        pk_two_view_fraction: float | None = None,
        augment: dict | None = None,
        in_memory: bool = True,
        refit: bool = False,
    ) -> None:
        super().__init__()
        if sampler not in ("pairs", "pk"):
            raise ConfigError(f"data.sampler must be 'pairs' or 'pk', got {sampler!r}")
        if sampler == "pk" and (pk_k < 1 or batch_size % pk_k):
            raise ConfigError(f"data.sampler=pk needs data.batch_size ({batch_size}) to be a multiple of "
                             f"data.pk_k ({pk_k}) >= 1: a batch is P identities x K images")
        if not 0 < float(anchor_ratio) < 1:
            raise ConfigError(f"anchor.ratio must be in (0, 1), got {anchor_ratio}")
        if len(input_size) != 2 or min(input_size) < 8:
            raise ConfigError(f"data.input_size must be [height, width] with sides >= 8, got {list(input_size)}")
        if batch_size < 2:
            raise ConfigError(f"data.batch_size must be >= 2 (batch norm), got {batch_size}")
        if not callable(reader):
            raise ConfigError(f"data.reader must be a reader (a _target_ with _partial_: true), got {reader!r}")
        self.name, self.root, self.reader = name, str(root), reader
        self.anchor_ratio = float(anchor_ratio)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.mlr = {"lr_camera": "genuine", "ratios": [1 / 2, 1 / 3, 1 / 4], "seed": 0, "resample": "bicubic",
                    **(mlr or {})}
        protocol = dict(protocol or {})
        self.protocol_kind = str(protocol.pop("kind", "single_shot"))
        if self.protocol_kind not in PROTOCOL_KINDS:
            raise ConfigError(f"data.protocol.kind must be one of {list(PROTOCOL_KINDS)}, got {self.protocol_kind!r}")
        unknown = sorted(set(protocol) - set(PROTOCOL_DEFAULTS))
        if unknown:
            raise ConfigError(f"data.protocol has unknown key(s) {unknown}; expected some of "
                              f"{['kind', *PROTOCOL_DEFAULTS]}")
        if self.query_gallery:
            if protocol.get("splits", "random") != "random":
                raise ConfigError(f"data.protocol.splits={protocol['splits']!r} does not apply to "
                                  "data.protocol.kind=query_gallery: the download's folders are the split")
            self.protocol = {"splits": "random", "val_mode": "holdout", **protocol_settings(protocol, self.mlr)}
        elif self.mlr["lr_camera"] == QUERY_GALLERY_VIEW:
            raise ConfigError(f"data.mlr.lr_camera={QUERY_GALLERY_VIEW} is the query/gallery protocol's MLR view; "
                              "it needs data.protocol.kind=query_gallery (the single-shot split of Market-1501 and "
                              "DukeMTMC-reID is data=market1501_single_shot / data=dukemtmc_single_shot)")
        else:
            self.protocol = {**PROTOCOL_DEFAULTS, **protocol}
        if self.protocol["val_mode"] not in ("holdout", "refit"):
            raise ConfigError(f"data.protocol.val_mode must be 'holdout' or 'refit', got {self.protocol['val_mode']!r}")
        if self.protocol["splits"] != "random" and benchmark_splits is None:
            raise ConfigError(f"data.protocol.splits={self.protocol['splits']!r}, but data={name} has no benchmark "
                              "splits of its own (data.benchmark_splits is null): use data.protocol.splits=random")
        if self.protocol["splits"] != "random" and self.protocol.get("distractors_in_test_gallery"):
            raise ConfigError("data.protocol.distractors_in_test_gallery=true draws random splits; it cannot be "
                              f"combined with data.protocol.splits={self.protocol['splits']!r}")
        self.benchmark_splits, self.refit = benchmark_splits, bool(refit)
        self.split_file, self.split_out, self.trial = split_file, split_out, int(trial)
        self.cache_dir, self.batch_size, self.eval_batch_size = cache_dir, batch_size, eval_batch_size
        self.num_workers, self.flip, self.upscale = num_workers, flip, upscale
        self.synthetic_stream, self.seed = synthetic_stream, int(seed)
        self.sampler, self.pk_k, self.pk_two_view_fraction = sampler, int(pk_k), pk_two_view_fraction
        self.augment = {"pad": 0, "erase_p": 0.0, "color": 0.0, **(augment or {})}
        self.in_memory = bool(in_memory)
        self.records: list[ImageRecord] = []
        self._ready = False

    @property
    def query_gallery(self) -> bool:
        """Whether this is the query/gallery protocol (camera-aware evaluation sets), not the single-shot one."""
        return self.protocol_kind == "query_gallery"

    # ---- preparation ---------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        """Read, build the MLR view, pick the trial and load its images (once)."""
        if self._ready:
            return
        self._prepare_records()
        self._build_tensors(self.trials[self.trial])
        self._ready = True

    def setup_eval(self) -> None:
        """Like :meth:`setup` but only the val/test sets (the fusion stage needs no training data)."""
        if not hasattr(self, "trials"):
            self._prepare_records()
        if not hasattr(self, "eval_sets"):
            self.eval_sets = {role: self._eval_sets(role) for role in ("val", "test")}

    def _prepare_records(self) -> None:
        if not Path(self.root).exists() and self.name != "synthetic":
            raise DatasetError(f"data.root {self.root} does not exist; expected the {self.name} download folder")
        records = self.reader(self.root)
        if not records:
            raise DatasetError(f"dataset {self.name} at {self.root} has no images")
        # The synthetic builder writes into a keyed sub-folder of data.root.
        self.data_root = _common_root(records) if self.name == "synthetic" else as_root(self.root)  # as the readers: links kept
        # query/gallery: trial k redraws the MLR view from mlr.seed + k (sing_lit.data.query_gallery)
        mlr_seed = int(self.mlr["seed"]) + self.trial if self.query_gallery else self.mlr["seed"]
        self.records, self.ratio_of = build_mlr(records, cache_root=self.cache_dir, dataset=self.name,
                                                lr_camera=self.mlr["lr_camera"], ratios=self.mlr["ratios"],
                                                seed=mlr_seed, resample=self.mlr["resample"])
        self.trials = self._trials()
        if not 0 <= self.trial < len(self.trials):
            raise DatasetError(f"trial {self.trial} does not exist; the protocol has {len(self.trials)} trials")

    def _trials(self) -> list[Trial] | list[QueryGalleryTrial]:
        p = self.protocol
        if self.query_gallery:
            trials, self.split_meta = query_gallery_trials(self.records, self.data_root, self.name, p, self.mlr,
                                                           self.split_file, self.split_out)
            return trials
        if self.split_file and Path(self.split_file).exists():
            trials, meta = load_trials(self.split_file, self.records, self.data_root, protocol=p)
            self.split_meta = meta
            return trials
        if p["splits"] == "random":
            trials = make_trials(self.records, self.data_root, num_trials=p["trials"], test_ids=p["test_ids"],
                                 val_ids=p["val_ids"], one_camera_ids_in_train=p["one_camera_ids_in_train"],
                                 seed=p["seed"], distractors_in_test_gallery=bool(p["distractors_in_test_gallery"]))
        else:
            trials = benchmark_trials(self.records, self.data_root, self.benchmark_splits(self.root, p["splits"]),
                                      num_trials=int(p["trials"]), test_ids=p["test_ids"], val_ids=p["val_ids"],
                                      one_camera_ids_in_train=p["one_camera_ids_in_train"], seed=p["seed"],
                                      splits=p["splits"])
        # val_mode is recorded (what this run's final models trained on) but not part of the split's protocol.
        self.split_meta = {"dataset": self.name, "protocol": split_protocol(p), "val_mode": str(p["val_mode"]),
                           "mlr": {k: str(v) for k, v in self.mlr.items()}}
        if self.split_out:
            save_trials(self.split_out, trials, self.split_meta)
        return trials

    def _load(self, paths: list[str]) -> list:
        with ThreadPoolExecutor(2) as pool:
            return list(pool.map(load_rgb, paths))

    def _inputs(self, imgs: list, lr: bool) -> torch.Tensor:
        """Images at the input size: LR ones by ``upscale`` (the SR-free "SR" of Table 2), HR ones bicubic."""
        if not imgs:
            return torch.zeros(0, 3, *self.input_size, dtype=torch.uint8)
        how = self.upscale if lr else "bicubic"
        return torch.stack([to_uint8_tensor(resize(im, self.input_size, how)) for im in imgs])

    def _h2l(self, imgs: list) -> torch.Tensor:
        """x^{h2l}: the genuine HR image down-sampled by m, then bicubic-upscaled to the input size."""
        out = []
        for im in imgs:
            h, w = scaled_size((im.height, im.width), self.anchor_ratio)
            out.append(to_uint8_tensor(resize(resize(im, (h, w), self.mlr["resample"]), self.input_size, self.upscale)))
        return torch.stack(out)

    def _build_tensors(self, trial: Trial) -> None:
        train_ids = sorted(trial.train + (trial.val if self.refit else []))
        self.label_of = {p: i for i, p in enumerate(train_ids)}
        self.num_classes = len(train_ids)
        tr_lr = [r for r in self.records if r.pid in self.label_of and r.genuine_lr]
        tr_hr = [r for r in self.records if r.pid in self.label_of and not r.genuine_lr]
        if not tr_lr or not tr_hr:
            raise DatasetError(f"trial {self.trial} of {self.name} has {len(tr_lr)} LR and {len(tr_hr)} HR training "
                               "images; SING needs both views in training")
        if not self.in_memory:
            from sing_lit.data.streaming import mapped_train_streams

            self.train_set = mapped_train_streams(self, tr_lr, tr_hr)
            return self.setup_eval()
        lr_imgs, hr_imgs = self._load([r.path for r in tr_lr]), self._load([r.path for r in tr_hr])
        self.train_set = self.streams(
            self._inputs(lr_imgs, lr=True), torch.tensor([self.label_of[r.pid] for r in tr_lr]),
            self._inputs(hr_imgs, lr=False), self._h2l(hr_imgs) if self.synthetic_stream else None,
            torch.tensor([self.label_of[r.pid] for r in tr_hr]))
        self.setup_eval()

    def streams(self, lr, lr_label: torch.Tensor, hr, h2l, hr_label: torch.Tensor) -> TrainStreams:
        """The training dataset over these images (in RAM or memory-mapped): the paper's pairs or PK
        identities (``sampler``), flipped and augmented as configured."""
        cls, extra = (IdentityStreams, {"k": self.pk_k, "two_view_fraction": self.pk_two_view_fraction}) \
            if self.sampler == "pk" else (TrainStreams, {})
        return cls(lr, lr_label, hr, h2l, hr_label, flip=self.flip, seed=self.seed, pad=int(self.augment["pad"]),
                   erase_p=float(self.augment["erase_p"]), color=float(self.augment["color"]), **extra)

    def folder_pairs(self, folder: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(x^h, x^h2l) of every image in a folder: extra SR training pairs at the anchor ratio."""
        imgs = self._load([str(p) for p in folder_images(folder)])
        return self._inputs(imgs, lr=False), self._h2l(imgs)

    def eval_records(self, role: str) -> tuple[list[ImageRecord], list[ImageRecord]]:
        """Probe and gallery records of this trial's ``val`` or ``test`` identities, in the eval sets' order."""
        if role not in ("val", "test"):
            raise ConfigError(f"role must be 'val' or 'test', got {role!r}")
        if not hasattr(self, "trials"):
            self._prepare_records()
        trial = self.trials[self.trial]
        if self.query_gallery:
            return query_gallery_records(self.records, trial, role)
        ids, gallery = (trial.val, trial.val_gallery) if role == "val" else (trial.test, trial.test_gallery)
        return self._select(ids, gallery)

    def _select(self, ids: list[int], gallery: dict[int, str]) -> tuple[list[ImageRecord], list[ImageRecord]]:
        wanted = set(ids)
        probes = [r for r in self.records if r.genuine_lr and r.pid in wanted]
        by_name = {str(Path(r.path).relative_to(self.data_root)): r for r in self.records if not r.genuine_lr}
        return probes, [by_name[gallery[p]] for p in sorted(gallery)]  # the people of ``ids`` plus any distractors

    def _eval_sets(self, role: str) -> tuple[EvalImages, EvalImages] | None:
        trial = self.trials[self.trial]
        if not (trial.val if role == "val" else trial.test):
            return None
        probes, g_recs = self.eval_records(role)
        p_imgs, g_imgs = self._load([r.path for r in probes]), self._load([r.path for r in g_recs])

        def areas(imgs: list) -> torch.Tensor:
            return torch.tensor([im.width * im.height for im in imgs], dtype=torch.float64)

        def cams(recs: list[ImageRecord]) -> torch.Tensor | None:  # only the query/gallery evaluation reads them
            return torch.tensor([r.cam for r in recs]) if self.query_gallery else None

        probe = EvalImages(self._inputs(p_imgs, lr=True), torch.tensor([r.pid for r in probes]), areas(p_imgs),
                           cams=cams(probes))
        gal = EvalImages(self._inputs(g_imgs, lr=False), torch.tensor([r.pid for r in g_recs]), areas(g_imgs),
                         self._h2l(g_imgs), cams=cams(g_recs))
        return probe, gal

    # ---- loaders ---------------------------------------------------------------------
    def train_dataloader(self) -> ResumableLoader:
        # PK: the identity order is the dataset's own (seed, epoch) permutation; shuffling keys would break P x K.
        return ResumableLoader(self.train_set, batch_size=self.batch_size, seed=self.seed,
                               shuffle=self.sampler != "pk",
                               num_workers=self.num_workers,
                               epoch_batches=lambda: getattr(self.trainer, "num_training_batches", float("inf")))

    def _eval_loaders(self, role: str) -> list[DataLoader]:
        sets = self.eval_sets[role]
        if sets is None:
            raise DatasetError(f"the {role} split of {self.name} trial {self.trial} is empty; "
                               f"set data.protocol.{'val_ids' if role == 'val' else 'test_ids'} > 0")
        # DDP: each rank evaluates whole batches of the one-process batching (sing_lit.data.eval_shard)
        return [DataLoader(s, batch_size=self.eval_batch_size, sampler=eval_sampler(len(s), self.eval_batch_size),
                           shuffle=False, num_workers=self.num_workers)
                for s in sets]

    def val_dataloader(self) -> list[DataLoader]:
        return self._eval_loaders("val")

    def test_dataloader(self) -> list[DataLoader]:
        return self._eval_loaders("test")

    def signature(self) -> dict:
        """What two anchors must share to be fused: dataset, split, input size, MLR view."""
        trial = self.trials[self.trial]
        split = ([self.protocol_kind, trial.train, trial.val, trial.test] if self.query_gallery else
                 [trial.train, trial.val, trial.test, sorted(trial.test_gallery.items()), sorted(trial.val_gallery.items())])
        split_hash = hashlib.sha1(json.dumps(split).encode()).hexdigest()[:16]
        return {"dataset": self.name, "root": str(self.data_root), "trial": self.trial, "split": split_hash,
                "input_size": list(self.input_size), "mlr": {k: str(v) for k, v in self.mlr.items()},
                "upscale": self.upscale, "trained_on": "train+val" if self.refit else "train"}


def _common_root(records: Sequence[ImageRecord]) -> Path:
    return Path(os.path.commonpath([r.path for r in records]))
