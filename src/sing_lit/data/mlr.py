"""MLR construction (the paper's "Datasets" paragraph): down-sample the LR view.

One view of a dataset is turned into a Multiple-Low-Resolution view: each of its images
is down-sampled by a ratio drawn per image from a set ({1/2, 1/3, 1/4} by default) and
kept at that genuine small size, which the fusion weights (Eq. 7) need. Which view is LR:

- ``genuine``: the reader's ``genuine_lr`` images (CAVIAR camera 2, the synthetic benchmark);
  nothing is resampled;
- an int ``k``: camera ``k`` (VIPeR, SYSU, PRID);
- ``one_per_pair``: one random camera of each camera pair ``cam // 2`` (CUHK03);
- ``one_per_person``: one random camera per person (the single-shot Market-1501, DukeMTMC-reID);
- ``query_and_one_per_person``: MLR-Market-1501 / MLR-DukeMTMC-reID (the query/gallery protocol,
  :mod:`sing_lit.data.query_gallery`): every image of the download's ``query`` subset, and one random
  camera of each ``train`` person seen by two cameras or more; the ``gallery`` subset stays HR.

Down-sampled images are cached as PNGs in a folder keyed by every input, written atomically.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

from sing_lit.data.images import load_rgb, resample_filter, scaled_size
from sing_lit.data.records import DatasetError, ImageRecord
from sing_lit.runtime.atomic import build_dir_atomic

MLR_VERSION = 1
QUERY_GALLERY_VIEW = "query_and_one_per_person"
POLICIES = ("genuine", "one_per_pair", "one_per_person", QUERY_GALLERY_VIEW, "<camera index>")


def lr_view(records: Sequence[ImageRecord], lr_camera: str | int, seed: int) -> list[bool]:
    """For each record, whether it belongs to the LR view under the policy ``lr_camera``."""
    if lr_camera == "genuine":
        flags = [r.genuine_lr for r in records]
        if not any(flags):
            raise DatasetError(
                "mlr.lr_camera=genuine but the dataset has no genuinely low-resolution camera; "
                f"choose a camera to down-sample instead, one of {POLICIES}"
            )
        return flags
    if isinstance(lr_camera, int) or (isinstance(lr_camera, str) and lr_camera.isdigit()):
        cam = int(lr_camera)
        cams = sorted({r.cam for r in records})
        if cam not in cams:
            raise DatasetError(f"mlr.lr_camera={cam} is not a camera of this dataset; cameras present: {cams}")
        return [r.cam == cam for r in records]
    if lr_camera == QUERY_GALLERY_VIEW:
        return _query_and_one_per_person(records, seed)
    rng = np.random.default_rng([seed, 7])
    if lr_camera == "one_per_pair":
        pairs = sorted({r.cam // 2 for r in records})
        chosen = {p: 2 * p + int(rng.integers(2)) for p in pairs}
        return [r.cam == chosen[r.cam // 2] for r in records]
    if lr_camera == "one_per_person":
        cams_of: dict[int, list[int]] = {}
        for r in records:
            cams_of.setdefault(r.pid, [])
            if r.cam not in cams_of[r.pid]:
                cams_of[r.pid].append(r.cam)
        chosen = {pid: sorted(c)[int(rng.integers(len(c)))] for pid, c in sorted(cams_of.items())}
        return [r.cam == chosen[r.pid] and len(cams_of[r.pid]) > 1 for r in records]
    raise DatasetError(f"unknown mlr.lr_camera={lr_camera!r}; allowed: {POLICIES}")


def _query_and_one_per_person(records: Sequence[ImageRecord], seed: int) -> list[bool]:
    subsets = {r.subset for r in records}
    if not {"train", "query", "gallery"} <= subsets:
        raise DatasetError(f"mlr.lr_camera={QUERY_GALLERY_VIEW} needs a download with train, query and gallery "
                           f"subsets (Market-1501, DukeMTMC-reID), got subsets {sorted(subsets)}")
    train = [i for i, r in enumerate(records) if r.subset == "train"]
    flags = [r.subset == "query" for r in records]
    for i, f in zip(train, lr_view([records[i] for i in train], "one_per_person", seed)):
        flags[i] = f
    return flags


def draw_ratios(n: int, ratios: Sequence[float], seed: int) -> list[float]:
    """One down-sampling ratio per LR image, drawn uniformly from the set ``ratios``."""
    if not ratios or any(not 0 < m <= 1 for m in ratios):
        raise DatasetError(f"mlr.ratios must be a non-empty list of values in (0, 1], got {list(ratios)}")
    ratios = [float(m) for m in ratios]
    rng = np.random.default_rng([seed, 11])
    return [ratios[int(i)] for i in rng.integers(len(ratios), size=n)]


def build_mlr(
    records: Sequence[ImageRecord],
    cache_root: str | Path,
    dataset: str,
    lr_camera: str | int = "genuine",
    ratios: Sequence[float] = (1 / 2, 1 / 3, 1 / 4),
    seed: int = 0,
    resample: str = "bicubic",
    workers: int = 2,
) -> tuple[list[ImageRecord], dict[str, float]]:
    """Return records whose ``genuine_lr`` marks the LR view, LR paths pointing at the cache.

    Returns:
        (records, ratio_of): ``ratio_of`` maps each down-sampled image's cached path to
        its ratio (empty for ``genuine`` policies).
    """
    resample_filter(resample)  # fail on a bad filter name before any work
    flags = lr_view(records, lr_camera, seed)
    if lr_camera == "genuine":
        return [replace(r, genuine_lr=f) for r, f in zip(records, flags)], {}
    lr_idx = [i for i, f in enumerate(flags) if f]
    drawn = draw_ratios(len(lr_idx), ratios, seed)
    key_src = json.dumps([MLR_VERSION, dataset, str(lr_camera), [float(m) for m in ratios], seed, resample,
                          [records[i].path for i in lr_idx]])
    key = hashlib.sha1(key_src.encode()).hexdigest()[:12]
    folder = Path(cache_root) / f"mlr_{dataset}_{key}"
    names = [f"{n:06d}_{Path(records[i].path).stem}.png" for n, i in enumerate(lr_idx)]

    def build(tmp: Path) -> None:
        def one(n: int) -> None:
            img = load_rgb(records[lr_idx[n]].path)
            h, w = scaled_size((img.height, img.width), drawn[n])
            img.resize((w, h), resample_filter(resample)).save(tmp / names[n])

        with ThreadPoolExecutor(max(1, workers)) as pool:
            list(pool.map(one, range(len(lr_idx))))
        (tmp / "ratios.json").write_text(json.dumps(dict(zip(names, drawn)), indent=0), encoding="utf-8")

    if not (folder / "ratios.json").exists():
        build_dir_atomic(folder, build)
    out = [replace(r, genuine_lr=False) for r in records]
    ratio_of: dict[str, float] = {}
    for n, i in enumerate(lr_idx):
        path = str(folder / names[n])
        out[i] = replace(records[i], path=path, genuine_lr=True)
        ratio_of[path] = drawn[n]
    return out, ratio_of
