"""MLR construction and the split protocol: determinism, ratios, sizes, split files, bad input."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sing_lit.data.mlr import build_mlr, lr_view
from sing_lit.data.records import DatasetError, ImageRecord
from sing_lit.data.splits import load_trials, make_trials, save_trials

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def two_camera_dataset(root: Path, people: int = 12, size=(64, 32)) -> list[ImageRecord]:
    rng = np.random.default_rng(0)
    recs = []
    for cam in (0, 1):
        (root / f"cam{cam}").mkdir(parents=True, exist_ok=True)
        for pid in range(people):
            p = root / f"cam{cam}" / f"{pid:04d}.png"
            Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(p)
            recs.append(ImageRecord(str(p), pid, cam))
    return recs


def digest(paths) -> str:
    h = hashlib.sha1()
    for p in sorted(paths):
        h.update(Path(p).read_bytes())
    return h.hexdigest()


def test_mlr_same_seed_identical_files_and_sizes(tmp_path):
    recs = two_camera_dataset(tmp_path / "d")
    a, ra = build_mlr(recs, tmp_path / "c1", "toy", lr_camera=0, seed=3)
    b, rb = build_mlr(recs, tmp_path / "c2", "toy", lr_camera=0, seed=3)
    assert list(ra.values()) == list(rb.values())
    assert digest(ra) == digest(rb)
    assert [Image.open(p).size for p in ra] == [Image.open(p).size for p in rb]
    c, rc = build_mlr(recs, tmp_path / "c3", "toy", lr_camera=0, seed=4)
    assert list(rc.values()) != list(ra.values())


def test_mlr_ratios_follow_the_configured_set_and_sizes(tmp_path):
    recs = two_camera_dataset(tmp_path / "d", people=30)
    ratios = [1 / 2, 1 / 3, 1 / 4]
    out, ratio_of = build_mlr(recs, tmp_path / "c", "toy", lr_camera=1, ratios=ratios, seed=0)
    assert len(ratio_of) == 30 and set(ratio_of.values()) == set(ratios)
    for path, m in ratio_of.items():
        w, h = Image.open(path).size
        assert (h, w) == (round(64 * m), round(32 * m))
    lr = [r for r in out if r.genuine_lr]
    assert {r.cam for r in lr} == {1} and len(lr) == 30
    # HR records untouched
    assert all(not r.genuine_lr and Path(r.path).parent.name == "cam0" for r in out if r.cam == 0)


def test_mlr_cache_is_reused_and_atomic(tmp_path, monkeypatch):
    recs = two_camera_dataset(tmp_path / "d")
    _, r1 = build_mlr(recs, tmp_path / "c", "toy", lr_camera=0, seed=0)
    mtimes = [Path(p).stat().st_mtime_ns for p in r1]
    _, r2 = build_mlr(recs, tmp_path / "c", "toy", lr_camera=0, seed=0)
    assert [Path(p).stat().st_mtime_ns for p in r2] == mtimes

    import sing_lit.data.mlr as mlr

    def boom(*a, **k):
        raise RuntimeError("crash mid-build")

    monkeypatch.setattr(mlr, "scaled_size", boom)
    with pytest.raises(RuntimeError):
        build_mlr(recs, tmp_path / "c", "toy", lr_camera=0, seed=99)
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == [Path(next(iter(r1))).parent.name]


def test_lr_view_policies():
    recs = [ImageRecord(f"/x/{p}_{c}.png", p, c) for p in range(20) for c in range(4)]
    pair = lr_view(recs, "one_per_pair", seed=0)
    for p in range(20):
        chosen = [r.cam for r, f in zip(recs, pair) if f and r.pid == p]
        assert len(chosen) == 2 and {c // 2 for c in chosen} == {0, 1}
    person = lr_view(recs, "one_per_person", seed=0)
    for p in range(20):
        assert sum(f for r, f in zip(recs, person) if r.pid == p) == 1
    with pytest.raises(DatasetError, match="lr_camera=7"):
        lr_view(recs, 7, seed=0)
    with pytest.raises(DatasetError, match="no genuinely low-resolution"):
        lr_view(recs, "genuine", seed=0)
    with pytest.raises(DatasetError, match="unknown mlr.lr_camera"):
        lr_view(recs, "sideways", seed=0)


def test_bad_ratio_set_is_refused(tmp_path):
    recs = two_camera_dataset(tmp_path / "d", people=4)
    with pytest.raises(DatasetError, match="mlr.ratios"):
        build_mlr(recs, tmp_path / "c", "toy", lr_camera=0, ratios=[1.5])


def test_trials_are_deterministic_disjoint_and_round_trip(tmp_path):
    recs = two_camera_dataset(tmp_path / "d", people=20)
    out, _ = build_mlr(recs, tmp_path / "c", "toy", lr_camera=0, seed=0)
    t1 = make_trials(out, tmp_path / "d", num_trials=3, test_ids="half", val_ids=0.2, seed=5)
    t2 = make_trials(out, tmp_path / "d", num_trials=3, test_ids="half", val_ids=0.2, seed=5)
    assert [vars(t) for t in t1] == [vars(t) for t in t2]
    assert len({tuple(t.test) for t in t1}) == 3  # trials differ
    for t in t1:
        assert len(t.test) == 10 and len(t.val) == 2 and len(t.train) == 8
        assert not set(t.train) & set(t.test) and not set(t.val) & set(t.test) and not set(t.train) & set(t.val)
        assert set(t.test_gallery) == set(t.test)
        assert all(name.startswith("cam1/") for name in t.test_gallery.values())  # HR view
    save_trials(tmp_path / "split.json", t1, {"dataset": "toy"})
    back, meta = load_trials(tmp_path / "split.json", out, tmp_path / "d")
    assert [vars(t) for t in back] == [vars(t) for t in t1] and meta["dataset"] == "toy"


def test_split_file_naming_missing_images_is_refused(tmp_path):
    recs = two_camera_dataset(tmp_path / "d", people=8)
    out, _ = build_mlr(recs, tmp_path / "c", "toy", lr_camera=0, seed=0)
    trials = make_trials(out, tmp_path / "d", num_trials=1, seed=0)
    save_trials(tmp_path / "split.json", trials, {"dataset": "toy"})
    doc = json.loads((tmp_path / "split.json").read_text())
    pid = next(iter(doc["trials"][0]["test_gallery"]))
    doc["trials"][0]["test_gallery"][pid] = "cam1/9999.png"
    (tmp_path / "split.json").write_text(json.dumps(doc))
    with pytest.raises(DatasetError, match="9999.png"):
        load_trials(tmp_path / "split.json", out, tmp_path / "d")
    with pytest.raises(DatasetError, match="not found"):
        load_trials(tmp_path / "nope.json", out, tmp_path / "d")


def test_protocol_needs_people_in_both_views(tmp_path):
    recs = [r for r in two_camera_dataset(tmp_path / "d", people=6) if r.cam == 1 or r.pid < 2]
    out, _ = build_mlr(recs, tmp_path / "c", "toy", lr_camera=0, seed=0)
    with pytest.raises(DatasetError, match="both the LR and the HR view"):
        make_trials(out, tmp_path / "d", num_trials=1)
    recs = two_camera_dataset(tmp_path / "e", people=6)
    out, _ = build_mlr(recs, tmp_path / "c", "toy", lr_camera=0, seed=0)
    with pytest.raises(DatasetError, match="test_ids=50"):
        make_trials(out, tmp_path / "e", num_trials=1, test_ids=50)


@pytest.mark.skipif(not (SHARED / "prid_2011").is_dir(), reason="../shared/data/prid_2011 absent")
@pytest.mark.parametrize("through_link", [False, True], ids=["as_is", "through_a_symlink"])
def test_shipped_prid_split_matches_the_real_data(tmp_path, through_link):
    from sing_lit.data.readers.prid2011 import read_prid2011
    from sing_lit.runtime.cli import PACKAGE_DIR

    root = SHARED / "prid_2011"
    if through_link:  # datasets on mounted disks are usually reached through a link
        (tmp_path / "link").symlink_to(root, target_is_directory=True)
        root = tmp_path / "link"
    out, ratio_of = build_mlr(read_prid2011(root), tmp_path, "prid2011", lr_camera=0, seed=0)
    assert len(ratio_of) == 385  # all of cam_a
    trials, meta = load_trials(PACKAGE_DIR / "splits" / "prid2011.json", out, root)
    assert len(trials) == 10
    for t in trials:
        assert len(t.test) == 100 and all(1 <= p <= 200 for p in t.test)
        assert all(name.startswith("single_shot/cam_b/") for name in t.test_gallery.values())
    # The shipped file is exactly what the protocol draws from the real data.
    fresh = make_trials(out, root, num_trials=10, test_ids="half", val_ids=0.2,
                        one_camera_ids_in_train=True, seed=0)
    assert [vars(t) for t in fresh] == [vars(t) for t in trials]
