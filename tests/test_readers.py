"""Dataset readers on tiny layouts written with each download's exact naming, plus the real data."""

from __future__ import annotations

import io
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sing_lit.data.readers import READERS, detect_layout
from sing_lit.data.readers.caviar import read_caviar
from sing_lit.data.readers.cuhk03 import EXTRACTED, PAIR_OFFSETS, read_cuhk03
from sing_lit.data.readers.dukemtmc import read_dukemtmc
from sing_lit.data.readers.grid import DISTRACTOR_PID_OFFSET, read_grid
from sing_lit.data.readers.manifest import read_manifest
from sing_lit.data.readers.market1501 import read_market1501
from sing_lit.data.readers.prid2011 import read_prid2011
from sing_lit.data.readers.sysu import read_sysu
from sing_lit.data.readers.viper import read_viper
from sing_lit.data.records import DatasetError, ImageRecord
from sing_lit.data.stats import describe, format_description
from sing_lit.inspect import verify_images

SHARED_DATA = Path(
    os.environ.get("SING_LIT_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data")
)


def write_image(path: Path, size: tuple[int, int] = (8, 16), value: int = 128) -> Path:
    """A tiny RGB image (width, height); the format follows the suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (value, 255 - value, 7)).save(path)
    return path


def layout(root: Path, names: list[str], size: tuple[int, int] = (8, 16)) -> Path:
    for name in names:
        write_image(root / name, size)
    return root


def triples(records: list[ImageRecord], root: Path) -> list[tuple[str, int, int, bool]]:
    return [(str(Path(r.path).relative_to(root)), r.pid, r.cam, r.genuine_lr) for r in records]


def assert_sorted_absolute(records: list[ImageRecord]) -> None:
    assert all(os.path.isabs(r.path) and os.path.isfile(r.path) for r in records)
    assert records == sorted(records, key=lambda r: (r.cam, r.pid, r.path))


# --- one test per reader, on the original naming -------------------------------------------------


def test_viper(tmp_path: Path) -> None:
    layout(tmp_path, ["cam_a/000_45.bmp", "cam_a/001_0.bmp", "cam_b/000_90.bmp", "cam_b/002_180.bmp"])
    (tmp_path / "cam_a" / "Thumbs.db").write_bytes(b"x")  # non-image files are ignored
    records = read_viper(tmp_path)
    assert_sorted_absolute(records)
    assert triples(records, tmp_path) == [
        ("cam_a/000_45.bmp", 0, 0, False),
        ("cam_a/001_0.bmp", 1, 0, False),
        ("cam_b/000_90.bmp", 0, 1, False),
        ("cam_b/002_180.bmp", 2, 1, False),
    ]
    assert detect_layout(tmp_path) == ["viper"]


@pytest.mark.parametrize("sub", ["", "caviarRAW"])
def test_caviar_camera_2_is_genuinely_lr(tmp_path: Path, sub: str) -> None:
    layout(
        tmp_path,
        [
            "caviarRAW/0001001.jpg",
            "caviarRAW/0001010.jpg",
            "caviarRAW/0001011.jpg",
            "caviarRAW/0001020.jpg",
            "caviarRAW/0072005.jpg",
        ],
    )
    records = read_caviar(tmp_path / sub)
    assert triples(records, tmp_path) == [
        ("caviarRAW/0001001.jpg", 1, 0, False),
        ("caviarRAW/0001010.jpg", 1, 0, False),
        ("caviarRAW/0072005.jpg", 72, 0, False),  # a one-camera person is kept
        ("caviarRAW/0001011.jpg", 1, 1, True),
        ("caviarRAW/0001020.jpg", 1, 1, True),
    ]


def test_caviar_image_number_out_of_range(tmp_path: Path) -> None:
    layout(tmp_path, ["caviarRAW/0001021.jpg"])
    with pytest.raises(DatasetError, match="0001021.jpg"):
        read_caviar(tmp_path)


@pytest.mark.parametrize("sub", ["", "single_shot"])
def test_prid2011(tmp_path: Path, sub: str) -> None:
    layout(
        tmp_path,
        ["single_shot/cam_a/person_0001.png", "single_shot/cam_b/person_0001.png", "single_shot/cam_b/person_0749.png"],
    )
    records = read_prid2011(tmp_path / sub)
    assert triples(records, tmp_path) == [
        ("single_shot/cam_a/person_0001.png", 1, 0, False),
        ("single_shot/cam_b/person_0001.png", 1, 1, False),
        ("single_shot/cam_b/person_0749.png", 749, 1, False),
    ]
    assert detect_layout(tmp_path / sub) == ["prid2011"]


MARKET = [
    "bounding_box_train/0002_c1s1_000451_03.jpg",
    "bounding_box_train/0002_c6s1_001201_01.jpg",
    "bounding_box_test/0005_c2s1_000301_01.jpg",
    "bounding_box_test/0000_c1s1_000001_01.jpg",
    "bounding_box_test/-1_c3s1_000002_01.jpg",
    "query/0005_c3s2_000101_00.jpg",
]


def test_market1501_excludes_junk_and_distractors(tmp_path: Path) -> None:
    layout(tmp_path, MARKET)
    records = read_market1501(tmp_path)
    assert triples(records, tmp_path) == [
        ("bounding_box_train/0002_c1s1_000451_03.jpg", 2, 0, False),
        ("bounding_box_test/0005_c2s1_000301_01.jpg", 5, 1, False),
        ("query/0005_c3s2_000101_00.jpg", 5, 2, False),
        ("bounding_box_train/0002_c6s1_001201_01.jpg", 2, 5, False),
    ]
    train = {r.pid for r in records if "bounding_box_train" in r.path}
    test = {r.pid for r in records if "bounding_box_train" not in r.path}
    assert train.isdisjoint(test)
    assert detect_layout(tmp_path) == ["market1501"]


def test_dukemtmc(tmp_path: Path) -> None:
    layout(
        tmp_path,
        [
            "bounding_box_train/0001_c2_f0046182.jpg",
            "bounding_box_test/0019_c8_f0001234.jpg",
            "bounding_box_test/0000_c1_f0000001.jpg",
            "query/0019_c1_f0000999.jpg",
        ],
    )
    assert triples(read_dukemtmc(tmp_path), tmp_path) == [
        ("query/0019_c1_f0000999.jpg", 19, 0, False),
        ("bounding_box_train/0001_c2_f0046182.jpg", 1, 1, False),
        ("bounding_box_test/0019_c8_f0001234.jpg", 19, 7, False),
    ]
    assert detect_layout(tmp_path) == ["dukemtmc"]


def test_market_reader_rejects_duke_names(tmp_path: Path) -> None:
    layout(
        tmp_path,
        [
            "bounding_box_train/0001_c2_f0046182.jpg",
            "bounding_box_test/0001_c1_f0000001.jpg",
            "query/0001_c1_f0000002.jpg",
        ],
    )
    with pytest.raises(DatasetError, match="0001_c2_f0046182.jpg") as err:
        read_market1501(tmp_path)
    assert "bounding_box_train/" in str(err.value)


def test_grid_original_probe_gallery(tmp_path: Path) -> None:
    layout(
        tmp_path,
        [
            "underground_reid/probe/0001_1_25004_107_32_106_221.jpeg",
            "underground_reid/gallery/0001_2_25023_116_134_128_330.jpeg",
            "underground_reid/gallery/0000_3_30001_1_2_40_90.jpeg",
            "underground_reid/gallery/0000_5_30002_1_2_40_90.jpeg",
        ],
    )
    records = read_grid(tmp_path)
    assert triples(records, tmp_path) == [
        ("underground_reid/probe/0001_1_25004_107_32_106_221.jpeg", 1, 0, True),
        ("underground_reid/gallery/0001_2_25023_116_134_128_330.jpeg", 1, 1, False),
        ("underground_reid/gallery/0000_3_30001_1_2_40_90.jpeg", DISTRACTOR_PID_OFFSET, 2, False),
        ("underground_reid/gallery/0000_5_30002_1_2_40_90.jpeg", DISTRACTOR_PID_OFFSET + 1, 4, False),
    ]
    assert read_grid(tmp_path / "underground_reid") == records


def test_grid_flat_marks_the_smaller_box_lr(tmp_path: Path) -> None:
    layout(
        tmp_path,
        [
            "0001_1_25004_107_32_106_221.jpeg",
            "0001_2_25023_116_134_128_330.jpeg",
            "0002_5_25008_169_19_94_224.jpeg",
            "0002_4_25009_1_1_50_100.jpeg",
            "0300_6_30000_1_1_20_40.jpeg",
        ],
    )
    records = read_grid(tmp_path)
    assert triples(records, tmp_path) == [
        ("0001_1_25004_107_32_106_221.jpeg", 1, 0, True),
        ("0001_2_25023_116_134_128_330.jpeg", 1, 1, False),
        ("0002_4_25009_1_1_50_100.jpeg", 2, 3, True),
        ("0002_5_25008_169_19_94_224.jpeg", 2, 4, False),
        ("0300_6_30000_1_1_20_40.jpeg", 300, 5, False),  # seen once: an HR distractor, even if small
    ]
    assert detect_layout(tmp_path) == ["grid"]


def test_grid_flat_lower_camera_rule_takes_the_lower_camera_as_probe(tmp_path: Path) -> None:
    layout(
        tmp_path,
        [
            "0001_2_25023_116_134_10_20.jpeg",  # smaller box, but the higher camera
            "0001_1_25004_107_32_106_221.jpeg",
            "0002_5_25008_169_19_94_224.jpeg",
            "0002_4_25009_1_1_50_100.jpeg",
            "0300_6_30000_1_1_20_40.jpeg",
        ],
    )
    records = read_grid(tmp_path, probe="lower_camera")
    assert {name: lr for name, _, _, lr in triples(records, tmp_path)} == {
        "0001_1_25004_107_32_106_221.jpeg": True,
        "0001_2_25023_116_134_10_20.jpeg": False,
        "0002_4_25009_1_1_50_100.jpeg": True,
        "0002_5_25008_169_19_94_224.jpeg": False,
        "0300_6_30000_1_1_20_40.jpeg": False,  # seen once: an HR distractor
    }
    # the default rule still marks the smaller box
    assert [r.genuine_lr for r in read_grid(tmp_path) if r.pid == 1] == [False, True]


def test_grid_rejects_an_unknown_probe_rule(tmp_path: Path) -> None:
    layout(tmp_path, ["0001_1_25004_107_32_106_221.jpeg"])
    with pytest.raises(ValueError, match=r"data\.reader\.probe='largest'.*smaller_box, lower_camera"):
        read_grid(tmp_path, probe="largest")


def test_sysu_selects_images_per_camera_deterministically(tmp_path: Path) -> None:
    names = [f"cam1/0001/{i:03d}.jpg" for i in range(8)] + ["cam2/0001/a.jpg", "cam2/0001/b.jpg"]
    layout(tmp_path, names + [f"cam1/0002/x{i}.png" for i in range(4)])
    everything = read_sysu(tmp_path, images_per_camera=None)
    assert Counter((r.pid, r.cam) for r in everything) == {(1, 0): 8, (1, 1): 2, (2, 0): 4}
    picked = read_sysu(tmp_path, images_per_camera=3, seed=0)
    assert Counter((r.pid, r.cam) for r in picked) == {(1, 0): 3, (1, 1): 2, (2, 0): 3}
    assert set(picked) <= set(everything)
    assert read_sysu(tmp_path, images_per_camera=3, seed=0) == picked
    assert {tuple(read_sysu(tmp_path, images_per_camera=3, seed=s)) for s in range(6)} != {tuple(picked)}
    assert detect_layout(tmp_path) == ["sysu"]


def test_sysu_rejects_images_outside_person_folders(tmp_path: Path) -> None:
    layout(tmp_path, ["cam1/0001/a.jpg", "cam2/0001/b.jpg", "cam2/stray.jpg"])
    with pytest.raises(DatasetError, match="stray.jpg.*person folder"):
        read_sysu(tmp_path)


CUHK03_NAMES = ["1_001_1_01.png", "1_001_2_06.png", "1_843_1_02.png", "2_001_1_01.png", "5_049_2_10.jpg"]


def test_cuhk03_extracted_layout(tmp_path: Path) -> None:
    layout(tmp_path, [f"images_labeled/{n}" for n in CUHK03_NAMES] + ["images_detected/1_001_1_01.png"])
    labeled = read_cuhk03(tmp_path, subset="labeled")
    assert sorted((Path(r.path).name, r.pid, r.cam) for r in labeled) == [
        ("1_001_1_01.png", 0, 0),
        ("1_001_2_06.png", 0, 1),
        ("1_843_1_02.png", 842, 0),
        ("2_001_1_01.png", 843, 2),
        ("5_049_2_10.jpg", 1466, 9),
    ]
    detected = read_cuhk03(tmp_path, subset="detected")
    assert [(r.pid, r.cam) for r in detected] == [(0, 0)]  # the same person keeps the same pid
    assert len(read_cuhk03(tmp_path)) == 6
    assert PAIR_OFFSETS == (0, 843, 1283, 1360, 1418)


def test_cuhk03_both_needs_both_subsets(tmp_path: Path) -> None:
    layout(tmp_path, ["images_labeled/1_001_1_01.png"])
    with pytest.raises(DatasetError, match="images_detected"):
        read_cuhk03(tmp_path, subset="both")
    with pytest.raises(DatasetError, match="subset"):
        read_cuhk03(tmp_path, subset="manual")


def test_cuhk03_person_out_of_range(tmp_path: Path) -> None:
    layout(tmp_path, ["images_labeled/3_078_1_01.png"])  # pair 3 has 77 people
    with pytest.raises(DatasetError, match="3_078_1_01.png"):
        read_cuhk03(tmp_path, subset="labeled")


def write_cuhk03_mat(path: Path, people: dict[str, list[list[np.ndarray | None]]]) -> None:
    """A MATLAB v7.3 file shaped like cuhk-03.mat: per subset a 5x1 cell (stored 1x5) of refs to
    per-pair (10, people) cells of refs to (3, W, H) uint8 images; an empty cell is a 2-element array."""
    import h5py

    with h5py.File(path, "w") as f:
        refs = f.create_group("#refs#")
        counter = iter(range(10**6))
        for subset, pairs in people.items():
            pair_refs = []
            for persons in pairs:
                cells = np.empty((10, len(persons)), dtype=h5py.ref_dtype)
                for j, images in enumerate(persons):
                    for i in range(10):
                        hwc = images[i] if i < len(images) else None
                        data = np.zeros(2, np.uint64) if hwc is None else hwc.transpose(2, 1, 0)
                        cells[i, j] = refs.create_dataset(str(next(counter)), data=data).ref
                pair_refs.append(refs.create_dataset(str(next(counter)), data=cells).ref)
            table = np.empty((1, len(pair_refs)), dtype=h5py.ref_dtype)
            table[0, :] = pair_refs
            f.create_dataset(subset, data=table)


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_cuhk03_mat_is_extracted_once_into_the_cache_not_the_root(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(6, 4, 3), dtype=np.uint8)  # H x W x C, not square: catches a wrong transpose
    other = rng.integers(0, 256, size=(5, 3, 3), dtype=np.uint8)
    empty = [None] * 5
    pairs = [[[img, None, None, None, None, other], [other]], [[*empty, img]], [], [], []]
    root, cache = tmp_path / "shared" / "cuhk03", tmp_path / "cache"
    (root / "cuhk03_release").mkdir(parents=True)
    write_cuhk03_mat(root / "cuhk03_release" / "cuhk-03.mat", {"labeled": pairs, "detected": pairs[:1] + [[]] * 4})
    before = tree(root)
    for folder in (root / "cuhk03_release", root):  # a read-only shared mount
        folder.chmod(0o555)
    try:
        records = read_cuhk03(root, subset="both", cache_dir=cache)
    finally:
        for folder in (root, root / "cuhk03_release"):
            folder.chmod(0o755)
    assert tree(root) == before  # nothing written into the dataset root (even where root could write)
    got = sorted((Path(r.path).parent.name, Path(r.path).name, r.pid, r.cam) for r in records)
    assert got == [
        ("detected", "1_001_1_01.png", 0, 0),
        ("detected", "1_001_2_06.png", 0, 1),
        ("detected", "1_002_1_01.png", 1, 0),
        ("labeled", "1_001_1_01.png", 0, 0),
        ("labeled", "1_001_2_06.png", 0, 1),
        ("labeled", "1_002_1_01.png", 1, 0),
        ("labeled", "2_001_2_06.png", 843, 3),
    ]
    assert all(Path(r.path).is_relative_to(cache) for r in records)
    (first,) = [Path(r.path) for r in records if r.path.endswith("labeled/1_001_1_01.png")]
    np.testing.assert_array_equal(np.asarray(Image.open(first)), img)
    (root / "cuhk03_release" / "cuhk-03.mat").unlink()  # the cache is read from now on
    assert read_cuhk03(root, cache_dir=cache) == records


def test_cuhk03_unreadable_mat_leaves_no_cache(tmp_path: Path) -> None:
    (tmp_path / "cuhk-03.mat").write_bytes(b"MATLAB 5.0 MAT-file, not HDF5")
    with pytest.raises(DatasetError, match="cuhk-03.mat"):
        read_cuhk03(tmp_path, subset="labeled", cache_dir=tmp_path / "cache")
    assert not (tmp_path / EXTRACTED).exists()
    assert not list((tmp_path / "cache").rglob("*.png")) if (tmp_path / "cache").exists() else True


def test_manifest(tmp_path: Path) -> None:
    write_image(tmp_path / "imgs" / "a.jpg")
    write_image(tmp_path / "imgs" / "b.png")
    absolute = write_image(tmp_path / "elsewhere" / "c.bmp")
    (tmp_path / "manifest.csv").write_text(
        f"path,pid,camera,lr\nimgs/a.jpg,bob,north,0\nimgs/b.png,alice,south,true\n{absolute},bob,south,\n"
    )
    records = read_manifest(tmp_path)
    assert triples(records, tmp_path) == [
        ("imgs/a.jpg", 1, 0, False),
        ("imgs/b.png", 0, 1, True),
        ("elsewhere/c.bmp", 1, 1, False),
    ]
    assert read_manifest(tmp_path / "manifest.csv") == records
    (tmp_path / "ints.csv").write_text("path,pid,camera\nimgs/a.jpg,7,3\n")
    assert [(r.pid, r.cam, r.genuine_lr) for r in read_manifest(tmp_path / "ints.csv")] == [(7, 3, False)]
    assert "manifest" in detect_layout(tmp_path)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("file,id,cam\nimgs/a.jpg,1,1\n", "header"),
        ("path,pid,camera\nimgs/missing.jpg,1,1\n", "missing.jpg"),
        ("path,pid,camera,lr\nimgs/a.jpg,1,1,maybe\n", "lr='maybe'"),
        ("path,pid,camera\nimgs/a.jpg,1,1\nimgs/a.jpg,2,1\n", "twice"),
        ("path,pid,camera\n", "no images"),
    ],
)
def test_manifest_errors(tmp_path: Path, text: str, problem: str) -> None:
    write_image(tmp_path / "imgs" / "a.jpg")
    (tmp_path / "m.csv").write_text(text)
    with pytest.raises(DatasetError, match=problem) as err:
        read_manifest(tmp_path / "m.csv")
    assert str(tmp_path / "m.csv") in str(err.value) and "expected layout" in str(err.value)


# --- bad input: every reader fails loudly, naming the path and the expected layout ----------------


@pytest.mark.parametrize("name", sorted(READERS))
def test_missing_root(tmp_path: Path, name: str) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DatasetError) as err:
        READERS[name](missing)
    assert str(missing) in str(err.value) and "expected layout:\n" in str(err.value)


@pytest.mark.parametrize("name", sorted(READERS))
def test_layout_no_reader_matches(tmp_path: Path, name: str) -> None:
    write_image(tmp_path / "photos" / "holiday.jpg")
    (tmp_path / "notes.txt").write_text("hi")
    assert detect_layout(tmp_path) == []
    with pytest.raises(DatasetError) as err:
        READERS[name](tmp_path)
    assert str(tmp_path) in str(err.value) and "expected layout:\n" in str(err.value)


@pytest.mark.parametrize(
    ("name", "files", "stray"),
    [
        ("viper", ["cam_a/000_45.bmp", "cam_b/000_90.bmp"], "cam_a/000_45 copy.bmp"),
        (
            "prid2011",
            ["single_shot/cam_a/person_0001.png", "single_shot/cam_b/person_0001.png"],
            "single_shot/cam_b/person_1.png",
        ),
        ("caviar", ["caviarRAW/0001001.jpg"], "caviarRAW/0001001.JPG.jpg"),
        ("market1501", MARKET, "query/0005_c3s2_000101.jpg"),
        ("grid", ["0001_1_25004_107_32_106_221.jpeg"], "0001_1_25004.jpeg"),
        (
            "cuhk03",
            ["images_labeled/1_001_1_01.png", "images_detected/1_001_1_01.png"],
            "images_detected/6_001_1_01.png",
        ),
    ],
)
def test_unparseable_file_name_is_an_error(tmp_path: Path, name: str, files: list[str], stray: str) -> None:
    layout(tmp_path, files)
    (tmp_path / Path(files[0]).parent / ".DS_Store").write_bytes(b"\0")  # hidden files are ignored
    READERS[name](tmp_path)
    write_image(tmp_path / stray)
    with pytest.raises(DatasetError) as err:
        READERS[name](tmp_path)
    message = str(err.value)
    assert str(tmp_path / stray) in message and "expected layout:\n" in message


def test_truncated_jpeg_is_reported(tmp_path: Path) -> None:
    layout(tmp_path, ["0001_1_25004_107_32_106_221.jpeg"])
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 32, 3), dtype=np.uint8)).save(buffer, "JPEG")
    broken = tmp_path / "0001_2_25023_116_134_128_330.jpeg"
    broken.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    from sing_lit.data.readers.grid import EXPECTED_TREE

    records = read_grid(tmp_path)  # readers parse names only; decoding is inspect's check
    with pytest.raises(DatasetError) as err:
        verify_images(records, EXPECTED_TREE)
    assert str(broken) in str(err.value) and "expected layout:\n" in str(err.value)


# --- statistics --------------------------------------------------------------------------------


def test_describe_counts_people_cameras_and_resolutions(tmp_path: Path) -> None:
    write_image(tmp_path / "caviarRAW" / "0001001.jpg", (40, 130))
    write_image(tmp_path / "caviarRAW" / "0001011.jpg", (20, 60))
    write_image(tmp_path / "caviarRAW" / "0001012.jpg", (10, 30))
    write_image(tmp_path / "caviarRAW" / "0002001.jpg", (40, 300))
    d = describe(read_caviar(tmp_path))
    assert (d["images"], d["people"], d["cameras"], d["people_multi_camera"]) == (4, 2, 2, 1)
    assert d["images_per_camera"] == {0: 2, 1: 2} and d["people_per_camera"] == {0: 2, 1: 1}
    lr, hr = d["resolution"]["lr"], d["resolution"]["hr"]
    assert {k: v for k, v in lr["height_histogram"].items() if v} == {"0-31": 1, "48-63": 1}
    assert {k: v for k, v in hr["height_histogram"].items() if v} == {"128-191": 1, ">=256": 1}
    assert lr["width_range"] == (10, 20) and hr["height_range"] == (130, 300)
    text = format_description(d)
    assert "people: 2" in text and "LR sizes: width 10-20 px, height 30-60 px" in text


# --- the real data shipped with the project (skipped where absent) -------------------------------


def real(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"{path} not present")
    return path


def test_real_prid2011() -> None:
    records = read_prid2011(real("prid_2011"))
    cams_of: dict[int, set[int]] = {}
    for r in records:
        cams_of.setdefault(r.pid, set()).add(r.cam)
    assert Counter(r.cam for r in records) == {0: 385, 1: 749}
    assert sorted(p for p, c in cams_of.items() if len(c) == 2) == list(range(1, 201))
    assert not any(r.genuine_lr for r in records)


def test_real_grid() -> None:
    root = real("grid")
    records = read_grid(root)
    per_pid = Counter(r.pid for r in records)
    assert len(records) == 1275 and Counter(per_pid.values()) == {2: 250, 1: 775}
    lr = [r for r in records if r.genuine_lr]
    assert len(lr) == 250 and {r.pid for r in lr} == {p for p, n in per_pid.items() if n == 2}
    # The flagged image of each pair really is the smaller one on disk.
    sizes = {r.path: Image.open(r.path).size for r in records if per_pid[r.pid] == 2}
    for r in lr:
        other = next(o for o in records if o.pid == r.pid and o.path != r.path)
        assert sizes[r.path][0] * sizes[r.path][1] <= sizes[other.path][0] * sizes[other.path][1]
    assert detect_layout(root) == ["grid"]


def test_real_grid_lower_camera_probes() -> None:
    records = read_grid(real("grid"), probe="lower_camera")
    cams: dict[int, list[tuple[int, bool]]] = {}
    for r in records:
        cams.setdefault(r.pid, []).append((r.cam, r.genuine_lr))
    pairs = {p: sorted(v) for p, v in cams.items() if len(v) == 2}
    assert len(pairs) == 250 and sum(r.genuine_lr for r in records) == 250
    # every pair is two different cameras; the probe is the lower one (file-name camera 1-6 -> cam 0-5)
    assert all(a[0] < b[0] and a[1] and not b[1] for a, b in pairs.values())
    assert Counter((a[0] + 1, b[0] + 1) for a, b in pairs.values()) == {(4, 5): 116, (1, 2): 108, (5, 6): 25, (2, 3): 1}
