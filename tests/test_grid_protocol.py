"""GRID's literature protocol (Loy et al. 2009): one-camera people as test-gallery distractors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sing_lit.data.records import ImageRecord
from sing_lit.data.splits import load_trials, make_trials, save_trials

SHARED_DATA = Path(
    os.environ.get("SING_LIT_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data")
)


def records(root: Path) -> list[ImageRecord]:
    """People 1-8 in both views, 20-24 HR only (distractors), 30 LR only."""
    out = []
    for p in range(1, 9):
        out += [ImageRecord(str(root / f"{p}_lr.png"), p, 0, True), ImageRecord(str(root / f"{p}_hr.png"), p, 1, False)]
    out += [ImageRecord(str(root / f"{p}_hr.png"), p, 1, False) for p in range(20, 25)]
    out.append(ImageRecord(str(root / "30_lr.png"), 30, 0, True))
    return out


@pytest.mark.parametrize("one_camera_in_train", [False, True])
def test_distractors_join_every_test_gallery_and_never_train(tmp_path: Path, one_camera_in_train: bool) -> None:
    trials = make_trials(records(tmp_path), tmp_path, num_trials=3, test_ids=4, val_ids=2,
                         one_camera_ids_in_train=one_camera_in_train, distractors_in_test_gallery=True)
    for t in trials:
        assert len(t.test) == 4 and len(t.val) == 2
        assert sorted(t.test_gallery) == sorted(t.test) + [20, 21, 22, 23, 24]
        assert all(t.test_gallery[p] == f"{p}_hr.png" for p in t.test_gallery)
        assert sorted(t.val_gallery) == t.val  # the validation gallery gets no distractors
        # only the LR-only person 30 follows one_camera_ids_in_train
        assert sorted(t.train) == sorted(set(range(1, 9)) - set(t.test) - set(t.val)) + ([30] if one_camera_in_train else [])


def test_without_the_switch_nothing_changes(tmp_path: Path) -> None:
    """The switch off reproduces the single-shot protocol draw for draw (committed split files stay valid)."""
    plain = make_trials(records(tmp_path), tmp_path, num_trials=2, test_ids=4, val_ids=2)
    switched = make_trials(records(tmp_path), tmp_path, num_trials=2, test_ids=4, val_ids=2,
                           distractors_in_test_gallery=True)
    for a, b in zip(plain, switched):
        assert (a.test, a.val, a.val_gallery) == (b.test, b.val, b.val_gallery)
        assert {p: b.test_gallery[p] for p in a.test} == a.test_gallery
        assert set(a.train) - set(b.train) == {20, 21, 22, 23, 24}


def test_split_file_round_trip_keeps_the_distractors(tmp_path: Path) -> None:
    recs = records(tmp_path)
    trials = make_trials(recs, tmp_path, num_trials=2, test_ids=4, val_ids=2, distractors_in_test_gallery=True)
    save_trials(tmp_path / "split.json", trials, {"dataset": "toy"})
    loaded, meta = load_trials(tmp_path / "split.json", recs, tmp_path)
    assert loaded == trials and meta["dataset"] == "toy"


@pytest.mark.skipif(not (SHARED_DATA / "grid").is_dir(), reason="../shared/data/grid is absent")
def test_real_grid_standard_eval_set_is_125_probes_against_900_gallery_images(compose_cfg) -> None:
    import hydra

    cfg = compose_cfg(["data=grid_standard", f"data.root={SHARED_DATA / 'grid'}", "data.input_size=[16,8]"])
    dm = hydra.utils.instantiate(cfg.data, split_out=None)
    dm.setup_eval()
    trial = dm.trials[0]
    assert (len(trial.test), len(trial.val), len(trial.train), len(dm.trials)) == (125, 25, 100, 10)
    probe, gallery = dm.eval_sets["test"]
    assert len(probe.pids) == 125 and len(gallery.pids) == 900
    assert set(probe.pids.tolist()) <= set(gallery.pids.tolist())
    # the 775 distractors are people 251-1025 of the flat folder, never trained on
    distractors = set(gallery.pids.tolist()) - set(trial.test)
    assert len(distractors) == 775 and not distractors & set(trial.train + trial.val)
    probe_names = {Path(r.path).name for r in dm.records if r.genuine_lr and r.pid in set(trial.test)}
    assert all(int(name.split("_")[1]) < 6 for name in probe_names)  # lower camera of each pair
