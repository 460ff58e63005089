"""CUHK03's own identity splits (``data.protocol.splits``), as this suite's pids.

- ``official``: the 20 test sets of ``cuhk-03.mat`` (``testsets``; Li et al. 2014), 100 people each;
  the other 1,367 people train. MATLAB v7.3 keeps them as a cell array of (100, 2) arrays of
  (camera pair, person): in HDF5, object references to (2, 100) arrays (MATLAB's column-major order).
- ``new``: the one 767 / 700 split of Zhong et al. 2017
  (``cuhk03_new_protocol_config_{labeled,detected}.mat``, MATLAB v5, read with scipy): train people
  are those of ``train_idx``, test people those of ``query_idx`` and ``gallery_idx`` (1-based rows of
  ``filelist``, whose names give the pair and person). Only these identities are used: this suite
  tests every LR image of a test person against one HR image of each, not the file's query/gallery lists.

The pid of (pair, person) is :func:`sing_lit.data.readers.cuhk03.person_id`, the reader's.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from sing_lit.data.readers._common import as_root
from sing_lit.data.readers.cuhk03 import NAME, find_mat, person_id
from sing_lit.data.records import DatasetError
from sing_lit.runtime.errors import ConfigError, UserError

NEW_PROTOCOL_FILES = ("cuhk03_new_protocol_config_labeled.mat", "cuhk03_new_protocol_config_detected.mat")


def official_test_sets(root: str | Path) -> list[list[int]]:
    """The test pids of each of the 20 official splits in ``cuhk-03.mat``."""
    import h5py  # only the .mat layout needs it

    root = as_root(root)
    path = find_mat(root)
    if path is None:
        raise DatasetError(f"data.protocol.splits=official reads the test sets of cuhk-03.mat, which is not under "
                           f"{root} (nor {root / 'cuhk03_release'}); use data.protocol.splits=random for images "
                           "extracted without it")
    try:
        mat = h5py.File(path, "r")
    except OSError as err:
        raise DatasetError(f"cannot read {path} as MATLAB v7.3 (HDF5): {err}") from err
    with mat:
        if "testsets" not in mat:
            raise DatasetError(f"{path} has no 'testsets' cell array (found {sorted(mat)}); expected the official "
                               "release of CUHK03")
        sets = []
        for k, ref in enumerate(np.ravel(mat["testsets"][()])):
            rows = np.asarray(mat[ref][()])
            if rows.ndim != 2 or 2 not in rows.shape:
                raise DatasetError(f"{path}: testsets cell {k + 1} has shape {rows.shape}; expected (2, people) "
                                   "(a people x 2 array of camera pair and person)")
            rows = rows.T if rows.shape[0] == 2 else rows  # MATLAB's (people, 2), stored transposed
            try:
                pids = [person_id(int(pair), int(person)) for pair, person in rows]
            except ValueError as err:
                raise DatasetError(f"{path}: testsets cell {k + 1}: {err}") from err
            if len(set(pids)) != len(pids):
                raise DatasetError(f"{path}: testsets cell {k + 1} names a person twice")
            sets.append(sorted(pids))
    return sets


def _new_protocol_files(root: Path) -> list[Path]:
    folders = [root, root / "cuhk03_release"] + ([root.parent] if root.name == "cuhk03_release" else [])
    return [f / name for name in NEW_PROTOCOL_FILES for f in folders if (f / name).is_file()]


def _read_new_protocol(path: Path) -> tuple[set[int], set[int]]:
    """(train pids, test pids) of one new-protocol file."""
    try:
        from scipy.io import loadmat
    except ImportError as err:
        raise UserError(f"reading {path} needs scipy: pip install 'sing_lit[cuhk03]' (or pip install scipy)") from err
    try:
        mat = loadmat(str(path))
    except NotImplementedError as err:  # scipy's answer to a v7.3 file
        raise DatasetError(f"{path} is MATLAB v7.3; expected the MATLAB v5 file of Zhong et al.'s release") from err
    except (ValueError, OSError, TypeError) as err:
        raise DatasetError(f"cannot read {path} as a MATLAB file: {err}") from err
    missing = [k for k in ("filelist", "train_idx", "query_idx", "gallery_idx") if k not in mat]
    if missing:
        raise DatasetError(f"{path} lacks {missing}; expected Zhong et al.'s cuhk03_new_protocol_config file "
                           "(filelist, train_idx, query_idx, gallery_idx, labels)")
    pids = []
    for cell in np.ravel(mat["filelist"]):
        name = str(np.ravel(cell)[0]) if np.size(cell) else ""
        m = NAME.fullmatch(name)
        if m is None:
            raise DatasetError(f"{path}: filelist entry {name!r} is not named {{pair}}_{{person:03d}}_{{cam}}_{{img:02d}}.png")
        try:
            pids.append(person_id(int(m.group(1)), int(m.group(2))))
        except ValueError as err:
            raise DatasetError(f"{path}: filelist entry {name!r}: {err}") from err

    def people(key: str) -> set[int]:
        rows = np.ravel(mat[key]).astype(np.int64)
        if rows.size and (rows.min() < 1 or rows.max() > len(pids)):
            raise DatasetError(f"{path}: {key} holds rows outside 1..{len(pids)} of filelist")
        return {pids[i - 1] for i in rows}

    train, test = people("train_idx"), people("query_idx") | people("gallery_idx")
    if train & test:
        raise DatasetError(f"{path}: people {sorted(train & test)[:10]} are both in train_idx and in the test rows")
    return train, test


def new_protocol_test_sets(root: str | Path) -> list[list[int]]:
    """The test pids of the one 767 / 700 split (Zhong et al. 2017)."""
    root = as_root(root)
    files = _new_protocol_files(root)
    if not files:
        raise DatasetError(f"data.protocol.splits=new reads {' or '.join(NEW_PROTOCOL_FILES)}, neither of which is "
                           f"in {root} (or its cuhk03_release/); put one there or use data.protocol.splits=official")
    splits = {f: _read_new_protocol(f) for f in files}
    first, (train, test) = next(iter(splits.items()))
    for f, other in splits.items():
        if other != (train, test):
            raise DatasetError(f"{first} and {f} split the identities differently; keep the pair of Zhong et al.'s "
                               "release (or only one of them)")
    return [sorted(test)]


BENCHMARK_SPLITS: dict[str, Callable[[str | Path], list[list[int]]]] = {
    "official": official_test_sets,
    "new": new_protocol_test_sets,
}


def benchmark_test_sets(root: str | Path, splits: str) -> list[list[int]]:
    """The test pids of each of CUHK03's own splits of kind ``splits`` (``official`` or ``new``).

    Example:
        >>> sets = benchmark_test_sets("data/cuhk03", "official")  # doctest: +SKIP
        >>> len(sets), len(sets[0])  # doctest: +SKIP
        (20, 100)
    """
    if splits not in BENCHMARK_SPLITS:
        raise ConfigError(f"data.protocol.splits={splits!r}: CUHK03 has {sorted(BENCHMARK_SPLITS)} (or random)")
    return BENCHMARK_SPLITS[splits](root)
