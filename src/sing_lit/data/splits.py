"""The paper's 10-trial single-shot protocol as versioned JSON split files.

A split file holds, per trial, the train / validation / test identities and, for the
validation and test identities, the file name of the one HR gallery image drawn for each
(paths relative to the dataset root): ids and names only, never images. Reading a split
file back makes every run of every user use the same identities and the same gallery.
It records the ``data.protocol`` it was drawn under, and is refused under another one.

Trials are seeded draws (:func:`make_trials`, ``protocol.splits=random``) or a benchmark's own
test sets with seeded validation people (:func:`benchmark_trials`, e.g. CUHK03's official splits).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sing_lit.data.records import DatasetError, ImageRecord
from sing_lit.runtime.atomic import write_text_atomic
from sing_lit.runtime.errors import ConfigError

SPLIT_FORMAT = "sing_lit.split/v1"

# data.protocol's keys and their defaults (conf/data/base.yaml sets the same).
PROTOCOL_DEFAULTS = {"trials": 10, "test_ids": "half", "val_ids": 0.2, "one_camera_ids_in_train": True, "seed": 0,
                     "distractors_in_test_gallery": False, "splits": "random", "val_mode": "holdout"}
# What decides a split file's identities, so what it records and is checked against. val_mode is not
# among them: it decides what the final models train on, not who is in which role.
SPLIT_KEYS = tuple(k for k in PROTOCOL_DEFAULTS if k != "val_mode")


@dataclass
class Trial:
    """One random split: identities per role and the gallery image of each val/test identity."""

    train: list[int]
    val: list[int]
    test: list[int]
    val_gallery: dict[int, str] = field(default_factory=dict)
    test_gallery: dict[int, str] = field(default_factory=dict)


def select_trials(num_trials: int, trials: Sequence[int] | None) -> list[int]:
    """The trials a run works on: all ``num_trials`` of the protocol (``trials=null``), or the listed ones."""
    chosen = list(range(num_trials)) if trials is None else [int(t) for t in trials]
    bad = [t for t in chosen if not 0 <= t < num_trials]
    if bad or not chosen:
        raise ConfigError(f"trials={bad or list(trials or [])} do not exist: data.protocol.trials={num_trials} "
                          f"allows 0..{num_trials - 1}")
    return chosen


def _views(records: Sequence[ImageRecord]) -> tuple[dict[int, list[str]], dict[int, list[str]]]:
    lr: dict[int, list[str]] = {}
    hr: dict[int, list[str]] = {}
    for r in records:
        (lr if r.genuine_lr else hr).setdefault(r.pid, []).append(r.path)
    return lr, hr


def make_trials(
    records: Sequence[ImageRecord],
    root: str | Path,
    num_trials: int = 10,
    test_ids: int | str = "half",
    val_ids: int | float = 0.2,
    one_camera_ids_in_train: bool = True,
    seed: int = 0,
    distractors_in_test_gallery: bool = False,
) -> list[Trial]:
    """Draw ``num_trials`` seeded identity splits.

    Only people seen in both views can be tested. ``test_ids="half"`` takes half of them
    (VIPeR 316/316, CAVIAR 25/25, PRID 100/100); an int takes that many (CUHK03's 100).
    ``val_ids`` (a count, or a fraction of the remaining two-view people) are held out of
    training for model selection and the fusion stage's sigma.

    ``distractors_in_test_gallery``: people seen in the HR view only join every trial's test
    gallery (one image each) instead of training - GRID's literature protocol (Loy et al. 2009),
    125 probes against 125 + 775 gallery images. People seen in the LR view only still follow
    ``one_camera_ids_in_train``.
    """
    if num_trials < 1:
        raise DatasetError(f"protocol.trials must be >= 1, got {num_trials}")
    lr, hr = _views(records)
    both = sorted(set(lr) & set(hr))
    single = sorted((set(lr) | set(hr)) - set(both))
    distractors = sorted(set(hr) - set(both)) if distractors_in_test_gallery else []
    if distractors:
        single = [p for p in single if p not in set(distractors)]
    if len(both) < 4:
        raise DatasetError(
            f"the dataset at {root} has {len(both)} people with images in both the LR and the HR view; "
            "the single-shot protocol needs at least 4 (2 to test, 2 to train)"
        )
    n_test = len(both) // 2 if test_ids == "half" else int(test_ids)
    if not 1 <= n_test <= len(both) - 2:
        raise DatasetError(
            f"protocol.test_ids={test_ids!r} is impossible with {len(both)} two-view people; "
            f"allowed: 'half' or an int in [1, {len(both) - 2}]"
        )
    n_val = _val_count(val_ids, len(both) - n_test)
    root = Path(root)
    trials = []
    for t in range(num_trials):
        rng = np.random.default_rng([seed, t])
        order = [both[i] for i in rng.permutation(len(both))]
        test, val, train = sorted(order[:n_test]), sorted(order[n_test:n_test + n_val]), order[n_test + n_val:]
        train = sorted(train + (single if one_camera_ids_in_train else []))

        val_gallery, test_gallery = _draw_gallery(val, hr, rng, root), _draw_gallery(test, hr, rng, root)
        test_gallery.update(_draw_gallery(distractors, hr, rng, root))  # drawn last: the draws above stay as they were
        trials.append(Trial(train=train, val=val, test=test, val_gallery=val_gallery, test_gallery=test_gallery))
    return trials


def _val_count(val_ids: int | float, rest: int) -> int:
    """How many of the ``rest`` two-view people after the test draw are held out for validation."""
    n_val = int(round(rest * val_ids)) if isinstance(val_ids, float) else int(val_ids)
    if not 0 <= n_val <= rest - 2:
        raise DatasetError(f"protocol.val_ids={val_ids!r} leaves fewer than 2 training people ({rest} two-view people left)")
    if 0 < n_val < 2:
        n_val = 2 if rest - 2 >= 2 else 0
    return n_val


def benchmark_trials(
    records: Sequence[ImageRecord],
    root: str | Path,
    test_sets: Sequence[Sequence[int]],
    num_trials: int,
    test_ids: int | str,
    val_ids: int | float = 0.2,
    one_camera_ids_in_train: bool = True,
    seed: int = 0,
    splits: str = "official",
) -> list[Trial]:
    """Trials on a benchmark's own test sets (``data.protocol.splits``, e.g. CUHK03's 20 official ones).

    Trial t tests the people of ``test_sets[t]``; the validation people (``val_ids``) are drawn, seeded,
    from the other two-view people and the one-image galleries are drawn, as :func:`make_trials` does.
    ``test_ids`` must be the sets' size: a config that says otherwise is refused, never overruled.
    """
    if not 1 <= num_trials <= len(test_sets):
        raise ConfigError(f"data.protocol.trials={num_trials}, but data.protocol.splits={splits} has "
                          f"{len(test_sets)} split(s): set data.protocol.trials to 1..{len(test_sets)}")
    lr, hr = _views(records)
    both = sorted(set(lr) & set(hr))
    single = sorted((set(lr) | set(hr)) - set(both))
    root = Path(root)
    trials = []
    for t in range(num_trials):
        test = sorted(set(test_sets[t]))
        if str(test_ids) != str(len(test)):
            raise ConfigError(f"data.protocol.test_ids={test_ids!r}, but split {t} of data.protocol.splits={splits} "
                              f"tests {len(test)} people: set data.protocol.test_ids={len(test)}")
        absent = [p for p in test if p not in lr or p not in hr]
        if absent:
            raise DatasetError(f"split {t} of data.protocol.splits={splits} tests people {absent[:10]} who have no "
                               f"image in the LR or the HR view under {root}; the protocol needs both")
        chosen = set(test)
        rest = [p for p in both if p not in chosen]
        n_val = _val_count(val_ids, len(rest))
        rng = np.random.default_rng([seed, t])
        order = [rest[i] for i in rng.permutation(len(rest))]
        val, train = sorted(order[:n_val]), sorted(order[n_val:] + (single if one_camera_ids_in_train else []))
        trials.append(Trial(train=train, val=val, test=test, val_gallery=_draw_gallery(val, hr, rng, root),
                            test_gallery=_draw_gallery(test, hr, rng, root)))
    return trials


def _draw_gallery(ids: list[int], hr: dict[int, list[str]], rng: np.random.Generator, root: Path) -> dict[int, str]:
    """One random HR image per person (relative path), the single-shot gallery (keys: the gallery's people,
    the test people first and then any distractors)."""
    return {p: str(Path(hr[p][int(rng.integers(len(hr[p])))]).relative_to(root)) for p in ids}


def save_trials(path: str | Path, trials: Sequence[Trial], meta: dict) -> None:
    """Write a split file atomically: metadata, then one compact JSON line per trial (diff-friendly)."""
    head = json.dumps({"format": SPLIT_FORMAT, **meta}, indent=2)[:-2]
    rows = [json.dumps({"train": t.train, "val": t.val, "test": t.test,
                        "val_gallery": {str(k): v for k, v in t.val_gallery.items()},
                        "test_gallery": {str(k): v for k, v in t.test_gallery.items()}}) for t in trials]
    write_text_atomic(path, head + ',\n  "trials": [\n    ' + ",\n    ".join(rows) + "\n  ]\n}\n")


def split_protocol(protocol: dict) -> dict[str, str]:
    """The protocol a split file records: :data:`SPLIT_KEYS` as strings, absent keys at their defaults."""
    full = {**PROTOCOL_DEFAULTS, **protocol}
    return {k: str(full[k]) for k in SPLIT_KEYS}


def check_split_protocol(path: Path, doc: dict, protocol: dict) -> None:
    """Refuse a split file whose recorded protocol is not ``protocol`` (keys it predates read as their defaults)."""
    recorded = doc.get("protocol")
    dataset = doc.get("dataset", "<name>")
    remake = (f"python -m sing_lit.make_splits data={dataset} data.root=<root> <your data.protocol overrides> "
              f"out={path} overwrite=true")
    if not isinstance(recorded, dict):
        raise DatasetError(f"split file {path} records no protocol, so it cannot be checked against data.protocol; "
                           f"regenerate it: {remake}")
    ours, theirs = split_protocol(protocol), split_protocol(recorded)
    diff = [k for k in SPLIT_KEYS if ours[k] != theirs[k]]
    if not diff:
        return
    hint = (" (to run only some of its trials, keep data.protocol.trials and pass trials=[0,1,...])"
            if diff == ["trials"] else "")
    raise DatasetError(
        f"split file {path} was drawn under another data.protocol than this config's: "
        + "; ".join(f"{k} is {theirs[k]} in the file but {ours[k]} in the config" for k in diff)
        + f". Either use the file's protocol ({' '.join(f'data.protocol.{k}={theirs[k]}' for k in diff)}){hint}, "
        f"or point data.split_file elsewhere (data.split_file=null draws the trials from data.protocol), "
        f"or regenerate it: {remake}")


def read_split_doc(path: Path) -> dict:
    """A split file's JSON document; one error naming the file when it is missing or not JSON."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as err:
        raise DatasetError(f"split file not found: {path}") from err
    except json.JSONDecodeError as err:
        raise DatasetError(f"split file {path} is not valid JSON ({err})") from err


def load_trials(path: str | Path, records: Sequence[ImageRecord], root: str | Path,
                protocol: dict | None = None) -> tuple[list[Trial], dict]:
    """Read a split file and check it against the dataset on disk (and against ``protocol``, the
    config's ``data.protocol``, when given: see :func:`check_split_protocol`)."""
    path = Path(path)
    doc = read_split_doc(path)
    if doc.get("format") != SPLIT_FORMAT:
        raise DatasetError(f"split file {path} has format {doc.get('format')!r}; expected {SPLIT_FORMAT!r}")
    if protocol is not None:
        check_split_protocol(path, doc, protocol)
    lr, hr = _views(records)
    hr_names = {p: {str(Path(x).relative_to(root)) for x in xs} for p, xs in hr.items()}
    trials = []
    for k, t in enumerate(doc["trials"]):
        trial = Trial(train=list(t["train"]), val=list(t["val"]), test=list(t["test"]),
                      val_gallery={int(a): b for a, b in t["val_gallery"].items()},
                      test_gallery={int(a): b for a, b in t["test_gallery"].items()})
        known = set(lr) | set(hr)
        missing_ids = sorted(set(trial.train + trial.val + trial.test) - known)
        if missing_ids:
            raise DatasetError(f"split file {path} trial {k} names people absent from {root}: {missing_ids[:10]}")
        for role, ids in (("val", trial.val), ("test", trial.test)):
            no_lr = [p for p in ids if p not in lr]
            if no_lr:
                raise DatasetError(
                    f"split file {path} trial {k}: {role} people {no_lr[:10]} have no image in the LR view under "
                    f"this data config, but the protocol needs both views"
                )
        for p, name in {**trial.val_gallery, **trial.test_gallery}.items():
            if name not in hr_names.get(p, set()):
                raise DatasetError(f"split file {path} trial {k} names gallery image {name!r} of person {p}, "
                                   f"which is not an HR image under {root}")
        trials.append(trial)
    return trials, {k: v for k, v in doc.items() if k != "trials"}
