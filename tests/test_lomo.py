"""LOMO (Liao et al., CVPR 2015) against hand-worked cases and brute-force references."""

import colorsys
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sing_lit.baselines.lomo import (
    lomo,
    lomo_part_slices,
    max_occurrence_histogram,
    min_image_side,
    retinex,
    rgb_to_hsv,
    siltp,
)


def constant_image(rgb, h=128, w=48):
    return np.broadcast_to(np.array(rgb, np.uint8), (1, h, w, 3)).copy()


def test_dimension_is_26960_at_128x48():
    feats = lomo(np.random.default_rng(0).integers(0, 256, (2, 128, 48, 3), dtype=np.uint8))
    assert feats.shape == (2, 26960) and feats.dtype == np.float32
    # (8^3 + 2 * 3^4) bins x (24 + 11 + 5) strips
    sizes = {name: s.stop - s.start for name, s in lomo_part_slices(128).items()}
    assert sizes == {"hsv": 512 * 40, "siltp_r3": 81 * 40, "siltp_r5": 81 * 40}


@pytest.mark.parametrize("use_retinex", [False, True])
@pytest.mark.parametrize(
    ("rgb", "code"),
    [
        # pure red: H = 0 -> bin 0, S = 1 -> bin 7, V = 1 -> bin 7; code = V*64 + S*8 + H = 504
        ((255, 0, 0), 504),
        # green is max: H = (2 + (60-100)/90)/6 = 0.259 -> 2; S = 90/150 = 0.6 -> 4; V = 150/255 -> 4
        ((100, 150, 60), 4 * 64 + 4 * 8 + 2),
    ],
)
def test_constant_colour_puts_all_hsv_mass_in_one_bin(rgb, code, use_retinex):
    # Retinex has no contrast to restore in a constant image and passes it through
    hsv = lomo(constant_image(rgb), use_retinex=use_retinex)[0, lomo_part_slices(128)["hsv"]].reshape(40, 512)
    expected = np.zeros((40, 512))
    expected[:, code] = 1 / np.sqrt(40)  # every strip counts 100 pixels: log(101) each, then unit norm
    np.testing.assert_allclose(hsv, expected, atol=1e-6)


def test_rgb_to_hsv_matches_colorsys():
    rgb = np.random.default_rng(1).random((200, 3))
    rgb[:10] = rgb[:10, :1]  # greys: hue and saturation 0
    expected = np.array([colorsys.rgb_to_hsv(*p) for p in rgb])
    np.testing.assert_allclose(rgb_to_hsv(rgb), expected, atol=1e-12)


def test_siltp_flat_patch_is_all_equal_code():
    assert not siltp(np.full((1, 20, 20), 0.4), radius=3).any()


def test_siltp_hand_worked_code():
    img = np.full((1, 9, 9), 0.5)
    img[0, 4, 7] = 0.2  # right < 0.35: digit 1, weight 1
    img[0, 1, 4] = 0.9  # up > 0.65: digit 2, weight 3
    img[0, 4, 1] = 0.5  # left within [0.35, 0.65]: digit 0, weight 9
    img[0, 7, 4] = 0.1  # down < 0.35: digit 1, weight 27
    assert siltp(img, radius=3, tau=0.3)[0, 4, 4] == 1 + 2 * 3 + 0 * 9 + 1 * 27


def brute_force_max_occurrence(codes, n_bins, window=10, step=5):
    n, h, w = codes.shape
    rows = range(0, h - window + 1, step)
    cols = range(0, w - window + 1, step)
    out = np.zeros((n, len(rows), n_bins), np.int64)
    for i in range(n):
        for s, r in enumerate(rows):
            for c in cols:
                hist = np.bincount(codes[i, r : r + window, c : c + window].ravel(), minlength=n_bins)
                out[i, s] = np.maximum(out[i, s], hist)
    return out


def test_max_occurrence_matches_brute_force():
    codes = np.random.default_rng(2).integers(0, 7, (5, 33, 27))
    np.testing.assert_array_equal(max_occurrence_histogram(codes, 7), brute_force_max_occurrence(codes, 7))


@pytest.mark.parametrize(
    ("h", "w", "a_count", "b_count"),
    [
        (128, 48, 100, 100),  # level 0: windows at x=0 and x=25 lie wholly in one half
        (64, 24, 100, 80),  # level 1: window x=10..19 holds 8 right-half columns at best
        (32, 12, 60, 40),  # level 2: the single window column straddles the halves
    ],
)
def test_max_occurrence_takes_per_bin_max_across_halves(h, w, a_count, b_count):
    codes = np.zeros((1, h, w), np.int64)
    codes[..., : w // 2] = 3
    codes[..., w // 2 :] = 7
    hist = max_occurrence_histogram(codes, 9)[0]
    expected = np.zeros_like(hist)
    expected[:, 3], expected[:, 7] = a_count, b_count
    np.testing.assert_array_equal(hist, expected)


def test_log_and_normalisation_give_unit_norm_parts():
    feats = lomo(np.random.default_rng(3).integers(0, 256, (3, 128, 48, 3), dtype=np.uint8))
    assert (feats >= 0).all()
    for part in lomo_part_slices(128).values():
        np.testing.assert_allclose(np.linalg.norm(feats[:, part], axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("shape", [(43, 48), (128, 43), (20, 20)])
def test_too_small_images_raise(shape):
    assert min_image_side() == 44  # floor(s / 4) >= 2 * 5 + 1 (SILTP R=5) >= 10 (window)
    with pytest.raises(ValueError, match=rf"{shape[0]}x{shape[1]}.*>= 44"):
        lomo(np.zeros((1, *shape, 3), np.uint8))


def test_smallest_allowed_size_works():
    # levels 44, 22, 11 px tall hold (44-10)//5+1 = 7, 3 and 1 strips
    assert lomo(np.zeros((1, 44, 44, 3), np.uint8)).shape == (1, 674 * (7 + 3 + 1))


def test_rejects_non_uint8():
    with pytest.raises(ValueError, match="uint8"):
        lomo(np.zeros((1, 128, 48, 3), np.float32))


def test_deterministic_and_batch_independent():
    images = np.random.default_rng(4).integers(0, 256, (3, 128, 48, 3), dtype=np.uint8)
    first = lomo(images)
    np.testing.assert_array_equal(first, lomo(images))
    np.testing.assert_allclose(lomo(images[1:2])[0], first[1], atol=1e-7)


def test_retinex_output_range():
    out = retinex(np.random.default_rng(5).integers(0, 256, (2, 128, 48, 3), dtype=np.uint8))
    assert out.shape == (2, 128, 48, 3) and out.min() >= 0 and out.max() <= 1
    assert out.min() == 0 and out.max() == 1  # the 1%/99% stretch spans [0, 1]


PRID = Path(os.environ.get("SING_LIT_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data")) / "prid_2011"


def brute_force_siltp_strip(rgb: np.ndarray, radius: int, top: int, tau: float = 0.3) -> np.ndarray:
    """SILTP counts of one 10-row strip by pixel loops: MATLAB's rgb2gray (rounded), replicated border,
    neighbours right/up/left/down weighted 1/3/9/27, then the per-bin max over the strip's 10x10 windows."""
    gray = np.floor(rgb.astype(np.float64) @ [0.298936021293775, 0.587043074451121, 0.114020904255103] + 0.5) / 255
    h, w = gray.shape
    at = lambda i, j: gray[min(max(i, 0), h - 1), min(max(j, 0), w - 1)]  # noqa: E731
    codes = np.zeros((10, w), int)
    for i in range(top, top + 10):
        for j in range(w):
            c = gray[i, j]
            for k, (di, dj) in enumerate(((0, radius), (-radius, 0), (0, -radius), (radius, 0))):
                nb = at(i + di, j + dj)
                codes[i - top, j] += 3**k * (1 if nb < (1 - tau) * c else 2 if nb > (1 + tau) * c else 0)
    windows = [np.bincount(codes[:, j:j + 10].ravel(), minlength=81) for j in range(0, w - 9, 5)]
    return np.max(windows, 0)


@pytest.mark.skipif(not PRID.is_dir(), reason="../shared/data/prid_2011 is absent")
def test_real_images_regression():
    """Two real PRID crops (person 1, both cameras, 128x64 as stored): size, brute-force SILTP strips,
    and pinned values of hand-checked bins (a change to any LOMO step moves them)."""
    images = np.stack([np.asarray(Image.open(PRID / f"single_shot/cam_{c}/person_0001.png").convert("RGB"))
                       for c in "ab"])
    feats = lomo(images)
    assert feats.shape == (2, 26960)  # (512 + 2 * 81) x (24 + 11 + 5) strips; the width only sets windows per strip
    parts = lomo_part_slices(128)
    for radius in (3, 5):
        part = feats[:, parts[f"siltp_r{radius}"]]
        for n in range(2):
            for strip in (0, 11, 23):  # top, middle and bottom strips of pyramid level 0
                counts = brute_force_siltp_strip(images[n], radius, 5 * strip)
                got = part[n, 81 * strip: 81 * (strip + 1)]
                # log(x + 1), then one scale for the whole part: its unit-norm factor
                np.testing.assert_allclose(got, np.log1p(counts) * (got.max() / np.log1p(counts.max())), rtol=1e-5)
    # bin 0 of strip 0 is the flat background code: all 100 pixels of a window; the part's norm then
    # pins log(101) / ||part||
    assert [brute_force_siltp_strip(im, r, 0)[0] for im in images for r in (3, 5)] == [100] * 4
    np.testing.assert_allclose(feats[:, parts["siltp_r3"].start], [0.08218856, 0.06259319], rtol=1e-5)
    np.testing.assert_allclose(feats[:, parts["siltp_r5"].start], [0.07377421, 0.05725854], rtol=1e-5)
    # HSV (after Retinex): the largest bins of image 0
    np.testing.assert_allclose(feats[:, [6471, 9024, 6983]],
                               [[0.05783678, 0.05738872, 0.05738872], [0.0428932, 0.03724576, 0.02128387]], rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(feats[:, parts["hsv"]], axis=1), 1.0, rtol=1e-6)
