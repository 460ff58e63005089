"""The synthetic benchmark: layout, determinism, caching, genuine LR sizes, fairness, bad input."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sing_lit.data import synthetic
from sing_lit.data.records import DatasetError
from sing_lit.data.synthetic import build_synthetic_benchmark

SMALL = dict(num_ids=8, hr_images_per_id=2, lr_images_per_id=3)


def _files(records) -> dict[str, bytes]:
    """Image bytes keyed by path relative to the benchmark folder."""
    return {str(Path(r.path).relative_to(Path(r.path).parents[1])): Path(r.path).read_bytes() for r in records}


def test_layout_and_records(tmp_path):
    recs = build_synthetic_benchmark(tmp_path, **SMALL)
    assert len(recs) == 8 * (2 + 3)
    assert recs == sorted(recs, key=lambda r: (r.cam, r.pid, r.path))
    for cam, per_id in ((0, 2), (1, 3)):
        view = [r for r in recs if r.cam == cam]
        assert Counter(r.pid for r in view) == {pid: per_id for pid in range(8)}
        assert all(r.genuine_lr == (cam == 1) for r in view)
    folder = Path(recs[0].path).parents[1]
    assert folder.name.startswith("synthetic_") and folder.parent == tmp_path.resolve()
    lines = (folder / "manifest.csv").read_text().splitlines()
    assert lines[0] == "path,pid,cam,lr" and len(lines) == 1 + len(recs)
    assert Path(recs[0].path).name == "0000_00.png" and Path(recs[0].path).parent.name == "cam0"
    for r in recs:
        assert Path(r.path).is_absolute()
        with Image.open(r.path) as img:
            assert img.mode == "RGB"
            if r.cam == 0:
                assert img.size == (32, 64)  # PIL sizes are (width, height)


def test_same_seed_same_bytes_other_seed_other_images(tmp_path):
    a = _files(build_synthetic_benchmark(tmp_path / "a", **SMALL, seed=3))
    b = _files(build_synthetic_benchmark(tmp_path / "b", **SMALL, seed=3))
    c = _files(build_synthetic_benchmark(tmp_path / "c", **SMALL, seed=4))
    assert a == b
    assert a.keys() == c.keys()
    assert sum(a[k] != c[k] for k in a) == len(a)


def test_more_identities_leave_the_first_ones_unchanged(tmp_path):
    small = _files(build_synthetic_benchmark(tmp_path, num_ids=3))
    large = _files(build_synthetic_benchmark(tmp_path, num_ids=5))
    assert all(large[k] == v for k, v in small.items())


def test_cache_is_reused_without_rendering(tmp_path, monkeypatch):
    first = build_synthetic_benchmark(tmp_path, **SMALL)
    mtimes = {r.path: Path(r.path).stat().st_mtime_ns for r in first}

    def fail(*args, **kwargs):
        raise AssertionError("cached benchmark was rendered again")

    monkeypatch.setattr(synthetic, "_render_image", fail)
    second = build_synthetic_benchmark(tmp_path, **SMALL)
    assert second == first
    assert {r.path: Path(r.path).stat().st_mtime_ns for r in second} == mtimes
    # Another argument is another benchmark, in its own folder.
    with pytest.raises(AssertionError, match="rendered again"):
        build_synthetic_benchmark(tmp_path, **SMALL, seed=1)


def test_interrupted_build_leaves_nothing(tmp_path, monkeypatch):
    render, calls = synthetic._render_image, []

    def crash_midway(*args, **kwargs):
        calls.append(1)
        if len(calls) > 10:
            raise RuntimeError("killed")
        return render(*args, **kwargs)

    monkeypatch.setattr(synthetic, "_render_image", crash_midway)
    with pytest.raises(RuntimeError, match="killed"):
        build_synthetic_benchmark(tmp_path, **SMALL)
    assert list(tmp_path.iterdir()) == []  # no final folder, no temp folder left behind
    monkeypatch.setattr(synthetic, "_render_image", render)
    assert len(build_synthetic_benchmark(tmp_path, **SMALL)) == 40


def test_lr_images_have_genuine_sizes_in_the_ratio_range(tmp_path):
    lo, hi, (h, w) = 0.25, 0.5, (64, 32)
    recs = build_synthetic_benchmark(tmp_path, num_ids=8, lr_images_per_id=3, hr_size=(h, w), lr_ratios=(lo, hi))
    sizes = []
    for r in recs:
        if r.cam == 1:
            with Image.open(r.path) as img:
                sizes.append(img.size[::-1])
    for lh, lw in sizes:
        assert lh < h and lw < w
        # round() moves a side by at most half a pixel
        assert lo - 0.5 / h <= lh / h <= hi + 0.5 / h and lo - 0.5 / w <= lw / w <= hi + 0.5 / w
    assert len(set(sizes)) >= 2
    heights = [lh for lh, _ in sizes]
    assert min(heights) <= 22 and max(heights) >= 26  # the draws reach both ends, 1/3 in between


def test_lr_sides_never_below_four_pixels(tmp_path):
    recs = build_synthetic_benchmark(tmp_path, num_ids=2, hr_size=(16, 16), lr_ratios=(0.1, 0.1))
    with Image.open(recs[-1].path) as img:
        assert img.size == (4, 4)


def _clean_render(ident) -> np.ndarray:
    """An identity on a flat grey background, neutral pose and light: identity cues only."""
    img = np.full((64, 32, 3), 0.5)
    synthetic._render_person(img, ident, synthetic._neutral_view())
    return img


def _quarter(img: np.ndarray) -> np.ndarray:
    pil = Image.fromarray(np.round(img * 255).astype(np.uint8))
    return np.asarray(pil.resize((8, 16), Image.Resampling.BICUBIC), dtype=float) / 255


def test_coarse_cues_are_shared_and_fine_cues_vanish_at_low_resolution():
    ids = [synthetic._sample_identity(0, pid) for pid in range(40)]
    coarse = [(i.upper, i.lower, i.body) for i in ids]
    # Colour and body type alone cannot tell everyone apart.
    assert max(Counter(coarse).values()) >= 3
    full = [_clean_render(i) for i in ids]
    low = [_quarter(x) for x in full]
    same, other = [], []
    for a in range(len(ids)):
        for b in range(a + 1, len(ids)):
            d_full = np.abs(full[a] - full[b]).mean()
            d_low = np.abs(low[a] - low[b]).mean()
            (same if coarse[a] == coarse[b] else other).append(d_low / d_full)
    # What separates same-looking people at HR mostly disappears at 1/4; coarse differences stay.
    assert len(same) >= 5
    assert np.median(same) < 0.5
    assert np.median(other) > 0.7
    # ... yet at HR every same-looking pair differs clearly somewhere.
    assert all(
        np.abs(full[a] - full[b]).max() > 0.25
        for a in range(len(ids))
        for b in range(a + 1, len(ids))
        if coarse[a] == coarse[b]
    )


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        (dict(num_ids=1), "num_ids=1"),
        (dict(hr_images_per_id=0), "hr_images_per_id=0"),
        (dict(lr_images_per_id=0), "lr_images_per_id=0"),
        (dict(hr_size=(15, 32)), "hr_size=[15, 32]"),
        (dict(lr_ratios=(0.0, 0.5)), "lr_ratios=[0.0, 0.5]"),
        (dict(lr_ratios=(0.5, 1.5)), "lr_ratios=[0.5, 1.5]"),
        (dict(lr_ratios=(0.5, 0.25)), "lr_ratios=[0.5, 0.25]"),
        (dict(seed=-1), "seed=-1"),
    ],
)
def test_bad_arguments_are_named(tmp_path, kwargs, name):
    with pytest.raises(DatasetError, match=re.escape(name)):
        build_synthetic_benchmark(tmp_path, **kwargs)
    assert list(tmp_path.iterdir()) == []
