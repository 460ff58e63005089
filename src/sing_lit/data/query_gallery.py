"""The query/gallery protocol of Market-style downloads: MLR-Market-1501 and MLR-DukeMTMC-reID.

``data.protocol.kind=query_gallery`` (``data=market1501``, ``data=dukemtmc``) evaluates as the
cross-resolution literature does (CAD-Net, ICCV 2019; INTACT, CVPR 2020; PS-HRNet, TIP 2021), on the
download's own folders:

- **test**: every image of ``query/`` is a probe, down-sampled by a ratio drawn per image from
  ``data.mlr.ratios`` ({1/2, 1/3, 1/4}); the gallery is the whole of ``bounding_box_test/`` at full
  resolution: every image of the query people plus the distractors (Market's 0000 boxes, Duke's
  gallery-only people), the junk boxes (-1) left out as the benchmark ignores them. The evaluation is
  camera-aware: a query's own person seen by its own camera is removed from its gallery, so a query
  has many true matches, or none (then it is excluded and not counted in ``num_valid_queries``);
  see :mod:`sing_lit.evaluation.protocol`.
- **training**: the people of ``bounding_box_train/``, with one random camera of each person seen by
  two cameras or more down-sampled the same way (the genuinely-LR stream SING needs), the other
  cameras HR. That is the MLR construction the papers describe for their training sets, "the images
  of one camera down-sampled", as we read them; their text could not be checked offline here.
- **validation** (model selection, the fusion stage's sigma): ``data.protocol.val_ids`` training
  people (a count, or a fraction of them), drawn among those seen by two cameras or more, are held out
  of training. Their down-sampled camera's images are the probes and their HR images the gallery,
  evaluated camera-aware like the test set.
- **trials**: the folders are one fixed split. Trial ``k`` redraws every random choice of the
  protocol: the MLR view (each LR image's ratio and each training person's LR camera) from seed
  ``data.mlr.seed + k``, the held-out validation people from ``(data.protocol.seed, k)``. Trial 0 is
  the literature's single run; ``data.protocol.trials=N`` gives the spread over N draws.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sing_lit.data.mlr import QUERY_GALLERY_VIEW
from sing_lit.data.records import DatasetError, ImageRecord
from sing_lit.data.splits import read_split_doc
from sing_lit.runtime.atomic import write_text_atomic
from sing_lit.runtime.errors import ConfigError

KIND = "query_gallery"
SPLIT_FORMAT = "sing_lit.split.query_gallery/v1"
DEFAULTS = {"trials": 1, "val_ids": 100, "seed": 0}
# single-shot keys that a query/gallery config must leave null: the download fixes what they would choose
NOT_APPLICABLE = ("test_ids", "one_camera_ids_in_train", "distractors_in_test_gallery")


@dataclass
class QueryGalleryTrial:
    """One trial: the training people, the held-out validation people, and the query people (test)."""

    train: list[int]
    val: list[int]
    test: list[int]


def protocol_settings(protocol: Mapping[str, Any], mlr: Mapping[str, Any]) -> dict[str, Any]:
    """``data.protocol`` of a query/gallery config (``kind`` removed), checked, with the defaults filled in."""
    set_keys = [k for k in NOT_APPLICABLE if protocol.get(k) not in (None, False)]
    if set_keys:
        raise ConfigError(f"data.protocol.{set_keys[0]}={protocol[set_keys[0]]!r} does not apply to "
                          f"data.protocol.kind={KIND}: the test people are the download's query/ folder and the "
                          f"gallery its bounding_box_test/; set it to null (or use data=<name>_single_shot)")
    if mlr.get("lr_camera") != QUERY_GALLERY_VIEW:
        raise ConfigError(f"data.protocol.kind={KIND} needs data.mlr.lr_camera={QUERY_GALLERY_VIEW} (every query "
                          f"image and one camera per training person down-sampled), got {mlr.get('lr_camera')!r}")
    out = {**DEFAULTS, **{k: v for k, v in protocol.items() if k not in NOT_APPLICABLE}}
    if not isinstance(out["trials"], int) or out["trials"] < 1:
        raise ConfigError(f"data.protocol.trials must be an int >= 1, got {out['trials']!r}")
    return out


def _people(records: Sequence[ImageRecord], root: str | Path) -> tuple[dict[int, set[int]], list[int]]:
    """Training people -> their cameras, and the query people; checks the subsets a query/gallery split needs."""
    cams: dict[int, set[int]] = {}
    for r in records:
        if r.subset == "train":
            cams.setdefault(r.pid, set()).add(r.cam)
    query = sorted({r.pid for r in records if r.subset == "query"})
    gallery = {r.pid for r in records if r.subset == "gallery"}
    if not cams or not query or not gallery:
        raise DatasetError(f"the dataset at {root} has {len(cams)} training, {len(query)} query and {len(gallery)} "
                           "gallery people; the query/gallery protocol needs all three folders (bounding_box_train, "
                           "query, bounding_box_test)")
    shared = sorted(set(cams) & (set(query) | gallery))
    if shared:
        raise DatasetError(f"the dataset at {root}: people {shared[:10]} are both in bounding_box_train and in "
                           "query/bounding_box_test; the protocol needs disjoint training and test people")
    return cams, query


def make_query_gallery_trials(records: Sequence[ImageRecord], root: str | Path, num_trials: int = 1,
                              val_ids: int | float = 100, seed: int = 0) -> list[QueryGalleryTrial]:
    """The trials of the query/gallery protocol (module docstring): ``val_ids`` (a count, or a fraction of the
    training people) held out per trial, drawn from ``(seed, k)`` among those seen by two cameras or more."""
    cams, query = _people(records, root)
    two_cams = sorted(p for p, c in cams.items() if len(c) > 1)
    n_val = int(round(len(cams) * val_ids)) if isinstance(val_ids, float) else int(val_ids)
    if not 0 <= n_val <= len(two_cams) or len(cams) - n_val < 2:
        raise DatasetError(f"data.protocol.val_ids={val_ids!r} ({n_val} people) is impossible: the dataset at {root} "
                           f"has {len(cams)} training people, {len(two_cams)} of them seen by two cameras or more "
                           f"(validation needs their LR and HR images), and training needs 2 left")
    trials = []
    for k in range(num_trials):
        order = np.random.default_rng([seed, k]).permutation(len(two_cams))
        val = sorted(two_cams[i] for i in order[:n_val])
        trials.append(QueryGalleryTrial(train=sorted(set(cams) - set(val)), val=val, test=query))
    return trials


def query_gallery_records(records: Sequence[ImageRecord], trial: QueryGalleryTrial,
                          role: str) -> tuple[list[ImageRecord], list[ImageRecord]]:
    """Probe and gallery records of ``role``: the query folder against the whole gallery folder (``test``), or
    the validation people's LR training images against their HR ones (``val``)."""
    if role == "test":
        return [r for r in records if r.subset == "query"], [r for r in records if r.subset == "gallery"]
    wanted = set(trial.val)
    held_out = [r for r in records if r.subset == "train" and r.pid in wanted]
    return [r for r in held_out if r.genuine_lr], [r for r in held_out if not r.genuine_lr]


def save_query_gallery_trials(path: str | Path, trials: Sequence[QueryGalleryTrial], meta: dict) -> None:
    """Write the split file atomically: metadata, then one compact JSON line per trial (people only)."""
    head = json.dumps({"format": SPLIT_FORMAT, **meta}, indent=2)[:-2]
    rows = [json.dumps({"train": t.train, "val": t.val, "test": t.test}) for t in trials]
    write_text_atomic(path, head + ',\n  "trials": [\n    ' + ",\n    ".join(rows) + "\n  ]\n}\n")


def split_meta(dataset: str, protocol: Mapping[str, Any], mlr: Mapping[str, Any]) -> dict[str, Any]:
    """What a query/gallery split file records about the settings that drew it."""
    return {"dataset": dataset, "protocol": {"kind": KIND, **{k: str(v) for k, v in protocol.items()}},
            "mlr": {k: str(v) for k, v in mlr.items()}}


def query_gallery_trials(records: Sequence[ImageRecord], root: str | Path, dataset: str, protocol: Mapping[str, Any],
                         mlr: Mapping[str, Any], split_file: str | None = None,
                         split_out: str | None = None) -> tuple[list[QueryGalleryTrial], dict]:
    """The trials a run uses and their metadata: read from ``split_file`` when it exists, else drawn from
    ``protocol`` (:func:`protocol_settings`) and written to ``split_out`` for the record."""
    if split_file and Path(split_file).exists():
        return load_query_gallery_trials(split_file, records, root, protocol)
    trials = make_query_gallery_trials(records, root, num_trials=protocol["trials"], val_ids=protocol["val_ids"],
                                       seed=protocol["seed"])
    meta = split_meta(dataset, protocol, mlr)
    if split_out:
        save_query_gallery_trials(split_out, trials, meta)
    return trials, meta


def load_query_gallery_trials(path: str | Path, records: Sequence[ImageRecord], root: str | Path,
                              protocol: Mapping[str, Any]) -> tuple[list[QueryGalleryTrial], dict]:
    """Read a query/gallery split file; refuse one drawn with another ``data.protocol`` or not of this dataset."""
    path = Path(path)
    doc = read_split_doc(path)
    if doc.get("format") != SPLIT_FORMAT:
        raise DatasetError(f"split file {path} has format {doc.get('format')!r}; data.protocol.kind={KIND} reads "
                           f"{SPLIT_FORMAT!r} (written by python -m sing_lit.make_splits with the same data config)")
    theirs = doc.get("protocol", {})
    for key in DEFAULTS:
        if str(theirs.get(key)) != str(protocol[key]):
            raise DatasetError(f"split file {path} was drawn with protocol.{key}={theirs.get(key)}, but the config "
                               f"says data.protocol.{key}={protocol[key]}; use the same settings or another file")
    cams, query = _people(records, root)
    trials = []
    for k, t in enumerate(doc["trials"]):
        trial = QueryGalleryTrial(train=list(t["train"]), val=list(t["val"]), test=list(t["test"]))
        bad_val = [p for p in trial.val if len(cams.get(p, ())) < 2]
        if trial.test != query or sorted(trial.train + trial.val) != sorted(cams) or bad_val:
            raise DatasetError(f"split file {path} trial {k} does not fit the dataset at {root}: its training, "
                               "validation and query people must be this download's"
                               + (f" (validation people {bad_val[:10]} are not training people seen by two "
                                  "cameras)" if bad_val else ""))
        trials.append(trial)
    return trials, {k: v for k, v in doc.items() if k != "trials"}
