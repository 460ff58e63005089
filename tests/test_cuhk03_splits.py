"""CUHK03's own splits: the official 20 test sets of cuhk-03.mat and the 767/700 new protocol, as trials.

The .mat files are tiny ones written here with the real files' structure: cuhk-03.mat (MATLAB v7.3 =
HDF5) keeps ``testsets`` as a cell array, i.e. HDF5 object references to (2, people) double arrays
(MATLAB's (people, 2) of camera pair and person, column-major); the new-protocol files are MATLAB v5.
Expected pids are written out by hand: pair 1 has 843 people, so pair 2's person 1 is pid 843.
"""

from __future__ import annotations

from pathlib import Path

import hydra
import numpy as np
import pytest
from hydra.errors import InstantiationException
from PIL import Image

from sing_lit.data.readers.cuhk03_splits import benchmark_test_sets, official_test_sets
from sing_lit.data.records import DatasetError
from sing_lit.runtime.errors import ConfigError

# (pair, person) of the tiny dataset: everyone has one image from each camera of their pair.
PEOPLE = [(1, p) for p in range(1, 7)] + [(2, 1), (2, 2)]
PIDS = {(1, p): p - 1 for p in range(1, 7)} | {(2, 1): 843, (2, 2): 844}
OFFICIAL = [[(1, 2), (2, 1)], [(1, 6), (1, 5)]]  # two "official" test sets of 2 people


def write_images(root: Path) -> None:
    rng = np.random.default_rng(0)
    folder = root / "images_labeled"
    folder.mkdir(parents=True)
    for pair, person in PEOPLE:
        for cam, img in ((1, 1), (2, 6)):
            pixels = rng.integers(0, 256, size=(32, 16, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{pair}_{person:03d}_{cam}_{img:02d}.png")


def write_testsets(path: Path, sets: list[list[tuple[int, int]]]) -> None:
    """``testsets`` as MATLAB v7.3 writes a 20x1 cell of (100, 2) doubles (here: len(sets) cells)."""
    import h5py

    with h5py.File(path, "a") as f:
        refs = f.require_group("#refs#")
        cells = np.empty((1, len(sets)), dtype=h5py.ref_dtype)  # MATLAB's (n, 1), transposed
        for i, rows in enumerate(sets):
            cells[0, i] = refs.create_dataset(f"testset{i}", data=np.asarray(rows, dtype=np.float64).T).ref
        f.create_dataset("testsets", data=cells)


@pytest.fixture
def cuhk03(tmp_path: Path) -> Path:
    root = tmp_path / "cuhk03"
    write_images(root)
    write_testsets(root / "cuhk-03.mat", OFFICIAL)
    return root


def test_official_test_sets_are_read_and_mapped_to_the_readers_pids(cuhk03: Path) -> None:
    assert official_test_sets(cuhk03) == [[1, 843], [4, 5]]
    assert benchmark_test_sets(cuhk03, "official") == [[1, 843], [4, 5]]
    with pytest.raises(ConfigError, match="splits='odd'"):
        benchmark_test_sets(cuhk03, "odd")


def instantiate_data(cfg, **kw):
    """``hydra.utils.instantiate(cfg.data)``, raising what the datamodule raised (Hydra wraps it)."""
    try:
        return hydra.utils.instantiate(cfg.data, split_out=None, **kw)
    except InstantiationException as err:
        raise err.__cause__ from None


def cuhk03_data(compose_cfg, root: Path, *overrides: str):
    cfg = compose_cfg(["data=cuhk03", f"data.root={root}", "data.reader.subset=labeled", "data.input_size=[16,8]",
                       "data.protocol.val_ids=2", *overrides])
    dm = instantiate_data(cfg)
    dm._prepare_records()
    return dm


def test_trials_are_the_official_splits(cuhk03: Path, compose_cfg) -> None:
    dm = cuhk03_data(compose_cfg, cuhk03, "data.protocol.trials=2", "data.protocol.test_ids=2")
    assert dm.protocol["splits"] == "official"  # the default of data=cuhk03
    everyone = sorted(PIDS.values())
    for trial, expected in zip(dm.trials, ([1, 843], [4, 5])):
        assert trial.test == expected
        assert len(trial.val) == 2 and len(trial.train) == 4
        assert sorted(trial.train + trial.val + trial.test) == everyone
        assert sorted(trial.test_gallery) == trial.test and sorted(trial.val_gallery) == trial.val
    assert dm.split_meta["protocol"]["splits"] == "official"
    again = cuhk03_data(compose_cfg, cuhk03, "data.protocol.trials=2", "data.protocol.test_ids=2")
    assert again.trials == dm.trials  # the validation draw is seeded
    random = cuhk03_data(compose_cfg, cuhk03, "data.protocol.trials=2", "data.protocol.test_ids=2",
                         "data.protocol.splits=random")
    assert [t.test for t in random.trials] != [[1, 843], [4, 5]]


@pytest.mark.parametrize(("overrides", "error", "needles"), [
    (["data.protocol.trials=3", "data.protocol.test_ids=2"], ConfigError, ["trials=3", "has 2 split(s)"]),
    (["data.protocol.trials=1"], ConfigError, ["test_ids=100", "set data.protocol.test_ids=2"]),
    (["data.protocol.trials=1", "data.protocol.test_ids=2", "data.protocol.splits=new"], DatasetError,
     ["cuhk03_new_protocol_config_labeled.mat"]),
    (["data.protocol.trials=1", "data.protocol.test_ids=2", "+data.protocol.tets_ids=2"], ConfigError,
     ["tets_ids"]),
])
def test_impossible_protocols_are_refused(cuhk03: Path, compose_cfg, overrides, error, needles) -> None:
    with pytest.raises(error) as info:
        cuhk03_data(compose_cfg, cuhk03, *overrides)
    for needle in needles:
        assert needle in str(info.value)


def test_official_splits_need_the_mat_and_people_it_tests(tmp_path: Path, compose_cfg) -> None:
    root = tmp_path / "extracted_only"
    write_images(root)
    with pytest.raises(DatasetError, match="cuhk-03.mat"):
        cuhk03_data(compose_cfg, root, "data.protocol.trials=1", "data.protocol.test_ids=2")
    write_testsets(root / "cuhk-03.mat", [[(1, 1), (3, 1)]])  # pair 3 has no images here
    with pytest.raises(DatasetError, match=r"\[1283\]"):  # 843 + 440: pair 3's first person
        cuhk03_data(compose_cfg, root, "data.protocol.trials=1", "data.protocol.test_ids=2")


def test_datasets_without_benchmark_splits_refuse_them(compose_cfg) -> None:
    cfg = compose_cfg(["data=prid2011", "data.root=/nowhere", "data.protocol.splits=official"])
    with pytest.raises(ConfigError, match="no benchmark splits"):
        instantiate_data(cfg)


def write_new_protocol(path: Path, train: list[tuple[int, int]], test: list[tuple[int, int]]) -> None:
    """A MATLAB v5 file shaped like cuhk03_new_protocol_config_*.mat: filelist (a cell of names) and
    1-based rows of it in train_idx / query_idx / gallery_idx (query: camera 1 images, gallery: camera 2)."""
    sio = pytest.importorskip("scipy.io")
    names = [f"{pair}_{person:03d}_{cam}_{img:02d}.png" for pair, person in PEOPLE for cam, img in ((1, 1), (2, 6))]
    filelist = np.empty((len(names), 1), dtype=object)
    for i, name in enumerate(names):
        filelist[i, 0] = name

    def rows(people, cams=(1, 2)):
        return np.array([[i + 1] for i, n in enumerate(names)
                         if (int(n[0]), int(n[2:5])) in people and int(n[6]) in cams], dtype=np.float64)

    labels = np.array([[PIDS[(int(n[0]), int(n[2:5]))] + 1] for n in names], dtype=np.float64)
    sio.savemat(str(path), {"filelist": filelist, "labels": labels, "train_idx": rows(train),
                            "query_idx": rows(test, (1,)), "gallery_idx": rows(test, (2,))})


def test_new_protocol_train_and_test_people(cuhk03: Path, compose_cfg) -> None:
    train, test = PEOPLE[:4], PEOPLE[4:]  # test: pair 1's people 5, 6 and pair 2's 1, 2
    write_new_protocol(cuhk03 / "cuhk03_new_protocol_config_labeled.mat", train, test)
    assert benchmark_test_sets(cuhk03, "new") == [[4, 5, 843, 844]]
    dm = cuhk03_data(compose_cfg, cuhk03, "data=cuhk03_new", "data.protocol.test_ids=4")
    (trial,) = dm.trials
    assert trial.test == [4, 5, 843, 844] and sorted(trial.train + trial.val) == [0, 1, 2, 3]
    with pytest.raises(ConfigError, match="has 1 split"):
        cuhk03_data(compose_cfg, cuhk03, "data=cuhk03_new", "data.protocol.test_ids=4", "data.protocol.trials=2")
    # the detected boxes' file must split the people the same way
    write_new_protocol(cuhk03 / "cuhk03_new_protocol_config_detected.mat", train, test)
    assert benchmark_test_sets(cuhk03, "new") == [[4, 5, 843, 844]]
    write_new_protocol(cuhk03 / "cuhk03_new_protocol_config_detected.mat", PEOPLE[2:], PEOPLE[:2])
    with pytest.raises(DatasetError, match="split the identities differently"):
        benchmark_test_sets(cuhk03, "new")


def test_new_protocol_file_that_overlaps_train_and_test(cuhk03: Path) -> None:
    write_new_protocol(cuhk03 / "cuhk03_new_protocol_config_labeled.mat", PEOPLE[:5], PEOPLE[4:])
    with pytest.raises(DatasetError, match=r"\[4\].*both in train_idx"):
        benchmark_test_sets(cuhk03, "new")


def test_config_comments_give_the_split_sizes(compose_cfg) -> None:
    """conf/data/cuhk03*.yaml say 1,094 / 273 / 100 and 614 / 153 / 700: what the protocol draws from 1,467."""
    for name, n_test in (("cuhk03", 100), ("cuhk03_new", 700)):
        p = compose_cfg([f"data={name}", "data.root=/nowhere"]).data.protocol
        assert p.test_ids == n_test and p.val_mode == "holdout"
        rest = 1467 - n_test
        n_val = round(rest * p.val_ids)
        assert (rest - n_val, n_val) == {"cuhk03": (1094, 273), "cuhk03_new": (614, 153)}[name]
