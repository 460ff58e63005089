"""The built-in synthetic benchmark: procedural pedestrians seen by an HR and a genuinely LR camera.

Camera 0 renders each person at ``hr_size``; camera 1 renders the same way, then down-samples
(PIL bicubic, antialiased) to a genuine scale drawn uniformly from ``lr_ratios`` per image, so
sizes span 1/2, 1/3, 1/4 and everything in between, and the LR camera has really lost detail.

It is built to be a fair LR re-id test, not one that flatters a method:

- coarse cues that survive down-sampling (upper/lower clothing colour, body type) come from small
  sets, so several identities share a coarse look (48 looks for 200 people at the defaults);
- fine cues tell those apart: zero-mean clothing patterns of 2-6 px period (their mean colour is
  the plain colour, so blurring erases them instead of shifting the colour), a 3 px logo, a 1 px
  bag strap with a small bag, a cap with a 1 px brim. Periods 2-4 vanish at every LR ratio,
  period 6 survives 1/2 but not 1/4, so lower resolution loses more identity information;
- views differ in illumination (camera-level colour cast and gamma, per-image gain), background
  clutter (random, some of it textured), pose (shift, scale, mirror, stride, arm swing) and
  sensor noise; the HR camera's images of one person differ by the same per-image jitter.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from sing_lit.data.records import DatasetError, ImageRecord
from sing_lit.runtime.atomic import build_dir_atomic

VERSION = 1  # bump whenever rendering changes: it is part of the cache key
MIN_HR_SIDE = 16
MIN_LR_SIDE = 4

_UPPER = np.array(
    [[0.75, 0.2, 0.2], [0.2, 0.3, 0.7], [0.25, 0.6, 0.3], [0.8, 0.75, 0.3], [0.8, 0.8, 0.78], [0.3, 0.3, 0.32]]
)
_LOWER = np.array([[0.2, 0.22, 0.4], [0.25, 0.25, 0.25], [0.6, 0.5, 0.35], [0.55, 0.58, 0.6]])
_ACCENT = np.array([[0.95, 0.95, 0.9], [0.1, 0.1, 0.1], [0.95, 0.8, 0.1], [0.1, 0.7, 0.9], [0.9, 0.3, 0.7]])
# Body types as (torso half-width / W, torso length / H, leg length / H, head radius / H).
_BODIES = ((0.15, 0.30, 0.44, 0.058), (0.2, 0.33, 0.40, 0.070))
_PATTERNS = ("plain", "hstripes", "vstripes", "checks", "dots", "diagonal")
_PERIODS = (2, 3, 4, 6)
_SKIN, _HAIR, _SHOE = np.array([0.85, 0.65, 0.5]), np.array([0.2, 0.13, 0.08]), np.array([0.12, 0.1, 0.1])
# Camera-level illumination (per-channel gain, gamma): the LR view is darker, bluer, more contrasted.
_CAMERA_LIGHT = ((np.array([1.0, 0.97, 0.9]), 1.0), (np.array([0.8, 0.88, 1.05]), 1.2))


@dataclass(frozen=True)
class _Identity:
    upper: int  # coarse: index in _UPPER
    lower: int  # coarse: index in _LOWER
    body: int  # coarse: index in _BODIES
    pattern: str  # fine cues from here on
    period: int
    pattern_on: tuple[bool, bool]  # (upper clothes, lower clothes)
    accent: int
    logo: int  # 0 none, 1 square, 2 cross, 3 bar
    strap: int  # 0 none, +-1 diagonal direction (with a bag at the low end)
    hat: int  # -1 none, else index in _ACCENT


@dataclass(frozen=True)
class _View:
    dx: float  # horizontal shift, fraction of W
    dy: float  # vertical shift, px
    scale: float
    stride: float  # feet spread, fraction of W
    swing: float  # arm swing, fraction of W
    mirror: bool
    gain: np.ndarray
    gamma: float


def _sample_identity(seed: int, pid: int) -> _Identity:
    # Stream tag 1 (images use 2) keeps the two seed sequences apart.
    rng = np.random.default_rng([1, seed, pid])
    on = int(rng.integers(3))
    return _Identity(
        upper=int(rng.integers(len(_UPPER))),
        lower=int(rng.integers(len(_LOWER))),
        body=int(rng.integers(len(_BODIES))),
        pattern=str(rng.choice(_PATTERNS)),
        period=int(rng.choice(_PERIODS)),
        pattern_on=(on != 1, on != 0),
        accent=int(rng.integers(len(_ACCENT))),
        logo=int(rng.integers(4)),
        strap=int(rng.integers(-1, 2)),
        hat=int(rng.integers(len(_ACCENT))) if rng.random() < 0.4 else -1,
    )


def _sample_view(rng: np.random.Generator, cam: int) -> _View:
    cast, gamma = _CAMERA_LIGHT[cam]
    return _View(
        dx=rng.uniform(-0.09, 0.09),
        dy=rng.uniform(-1.5, 1.5),
        scale=rng.uniform(0.92, 1.08),
        stride=rng.uniform(0.0, 0.15),
        swing=rng.uniform(-0.1, 0.1),
        mirror=bool(rng.random() < 0.5),
        gain=cast * rng.uniform(0.8, 1.2) * (1 + rng.normal(0, 0.05, 3)),
        gamma=gamma * rng.uniform(0.9, 1.1),
    )


def _neutral_view() -> _View:
    return _View(0.0, 0.0, 1.0, 0.05, 0.0, False, np.ones(3), 1.0)


def _alpha(d: np.ndarray) -> np.ndarray:
    """Coverage of a pixel by a shape from its signed distance (px): a 1 px antialiased edge."""
    return np.clip(0.5 - d, 0.0, 1.0)


def _capsule(yy, xx, y0, x0, y1, x1, r) -> np.ndarray:
    """Signed distance to a segment thickened by ``r``: limbs, straps."""
    vy, vx = y1 - y0, x1 - x0
    t = np.clip(((yy - y0) * vy + (xx - x0) * vx) / max(vy * vy + vx * vx, 1e-9), 0.0, 1.0)
    return np.hypot(yy - y0 - t * vy, xx - x0 - t * vx) - r


def _box(yy, xx, cy, cx, hy, hx, r=0.0) -> np.ndarray:
    """Signed distance to an axis-aligned box of half-sizes (hy, hx) with rounded corners ``r``."""
    qy, qx = np.abs(yy - cy) - hy + r, np.abs(xx - cx) - hx + r
    return np.hypot(np.maximum(qy, 0), np.maximum(qx, 0)) + np.minimum(np.maximum(qy, qx), 0) - r


def _paint(img: np.ndarray, alpha: np.ndarray, colour: np.ndarray) -> None:
    img += alpha[..., None] * (colour - img)


def _pattern(ident: _Identity, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """Zero-mean pattern with values in [-1, 2): a texture whose average is 0, so blurring erases it."""
    p, yi, xi = ident.period, np.floor(yy).astype(int), np.floor(xx).astype(int)
    marks = {
        "plain": np.zeros_like(yi, dtype=bool),
        "hstripes": yi % p < (p + 1) // 2,
        "vstripes": xi % p < (p + 1) // 2,
        "diagonal": (yi + xi) % p < (p + 1) // 2,
        "checks": ((yi // max(p // 2, 1)) + (xi // max(p // 2, 1))) % 2 == 1,
        "dots": (yi % p == 0) & (xi % p == 0),
    }[ident.pattern]
    density = {"plain": 0.0, "checks": 0.5, "dots": 1 / p**2}.get(ident.pattern, ((p + 1) // 2) / p)
    return (marks - density) * 2.0


def _render_person(img: np.ndarray, ident: _Identity, view: _View) -> None:
    """Paint one pedestrian over ``img`` (H, W, 3 floats), in place; geometry scales with H and W."""
    h, w = img.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    torso_hw, torso_len, leg_len, head_r = _BODIES[ident.body]
    s = view.scale
    tw, head_r = torso_hw * w * s, head_r * h * s
    cx = w / 2 + view.dx * w
    feet = h * 0.95 + view.dy
    hip = feet - leg_len * h * s
    shoulder = hip - torso_len * h * s
    head_cy = shoulder - 1.15 * head_r
    # Patterns live in pixel units anchored on the body, so they move with the person.
    ly, lx = yy - round(shoulder), xx - round(cx)
    tex = _pattern(ident, ly, lx)[..., None]
    accent = _ACCENT[ident.accent]

    def cloth(base: np.ndarray, patterned: bool) -> np.ndarray:
        if not patterned or ident.pattern == "plain":
            return base
        d = accent - base  # stripes alternate around the base colour, towards the accent colour
        return np.clip(base + 0.22 * tex * d / max(np.linalg.norm(d), 1e-6) * np.sqrt(3), 0, 1)

    upper, lower = cloth(_UPPER[ident.upper], ident.pattern_on[0]), cloth(_LOWER[ident.lower], ident.pattern_on[1])
    leg_r, stride = 0.42 * tw, view.stride * w / 2
    for side in (-1, 1):
        x_hip, x_foot = cx + side * 0.5 * tw, cx + side * (0.5 * tw + stride)
        _paint(img, _alpha(_capsule(yy, xx, hip, x_hip, feet - leg_r, x_foot, leg_r)), lower)
        _paint(img, _alpha(_box(yy, xx, feet - 0.6, x_foot + 0.3 * leg_r, 1.0, leg_r * 1.1, 0.5)), _SHOE)
    _paint(img, _alpha(_box(yy, xx, (shoulder + hip + 2) / 2, cx, (hip + 2 - shoulder) / 2, tw, 0.3 * tw)), upper)
    arm_r = 0.3 * tw
    for side in (-1, 1):
        x_hand = cx + side * (tw + arm_r) + side * view.swing * w
        arm = _capsule(yy, xx, shoulder + arm_r, cx + side * (tw + 0.3 * arm_r), hip - arm_r, x_hand, arm_r)
        _paint(img, _alpha(arm), upper)
        _paint(img, _alpha(np.hypot(yy - hip, xx - x_hand) - arm_r), _SKIN)
    head = _alpha((np.hypot((yy - head_cy) / head_r, (xx - cx) / (0.85 * head_r)) - 1) * 0.85 * head_r)
    _paint(img, head, _SKIN)
    top = head_cy - (0.1 if ident.hat >= 0 else 0.3) * head_r
    _paint(img, head * (yy < top), _HAIR if ident.hat < 0 else _ACCENT[ident.hat])
    if ident.hat >= 0:
        _paint(img, _alpha(_box(yy, xx, round(top) + 0.5, cx + 0.4 * head_r, 0.5, 1.2 * head_r)), _ACCENT[ident.hat])
    if ident.strap:
        x0, x1 = cx - ident.strap * 0.8 * tw, cx + ident.strap * (tw + 1)
        _paint(img, _alpha(_capsule(yy, xx, shoulder, x0, hip, x1, 0.5)), _SHOE)
        _paint(img, _alpha(_box(yy, xx, hip + 1, x1, 2.0, 1.5, 0.5)), _SHOE * 2)
    if ident.logo:
        cy_l, cx_l = round(shoulder + 0.3 * torso_len * h * s) + 0.5, round(cx + 0.45 * tw) + 0.5
        logo = {
            1: _box(yy, xx, cy_l, cx_l, 1.5, 1.5),
            2: np.minimum(_box(yy, xx, cy_l, cx_l, 1.5, 0.5), _box(yy, xx, cy_l, cx_l, 0.5, 1.5)),
            3: _box(yy, xx, cy_l, cx_l, 2.0, 0.5),
        }[ident.logo]
        _paint(img, _alpha(logo), accent)


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Muted wall with a floor band and 3-7 random rectangles/blobs, some striped like clothes."""
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    img = np.empty((h, w, 3))
    img[:] = rng.uniform(0.25, 0.7) * (1 + rng.normal(0, 0.08, 3))
    img *= (1 + rng.uniform(-0.15, 0.15) * (yy / h - 0.5))[..., None]
    _paint(img, (yy > h * rng.uniform(0.8, 0.9)).astype(float), rng.uniform(0.2, 0.6, 3))
    for _ in range(int(rng.integers(3, 8))):
        cy, cx, hy, hx = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(2, h / 4), rng.uniform(2, w / 3)
        if rng.random() < 0.6:
            d = _box(yy, xx, cy, cx, hy, hx)
        else:
            d = (np.hypot((yy - cy) / hy, (xx - cx) / hx) - 1) * min(hy, hx)
        colour = rng.uniform(0.1, 0.9, 3) * np.ones((h, w, 1))
        if rng.random() < 0.4:  # textured clutter: high frequencies are not only on people
            lines = (yy if rng.random() < 0.5 else xx).astype(int) % int(rng.integers(2, 9)) == 0
            colour = colour * (1 + 0.3 * lines[..., None])
        _paint(img, _alpha(d), colour)
    return img


def _render_image(
    seed: int, pid: int, cam: int, k: int, hr_size: tuple[int, int], lr_ratios: tuple[float, float]
) -> Image.Image:
    """Image ``k`` of person ``pid`` in camera ``cam``, at its genuine size; depends only on its arguments."""
    rng = np.random.default_rng([2, seed, pid, cam, k])
    h, w = hr_size
    view = _sample_view(rng, cam)
    img = _background(rng, h, w)
    _render_person(img, _sample_identity(seed, pid), view)
    if view.mirror:
        img = img[:, ::-1]
    img = np.clip(img * view.gain, 0, 1) ** view.gamma
    if cam == 1:
        r = rng.uniform(*lr_ratios)
        size = (max(MIN_LR_SIDE, round(w * r)), max(MIN_LR_SIDE, round(h * r)))
        hr = Image.fromarray(np.round(img * 255).astype(np.uint8))
        img = np.asarray(hr.resize(size, Image.Resampling.BICUBIC), dtype=float) / 255
    # Sensor noise comes last: the LR sensor adds its own after the optics removed the detail.
    img = img + rng.normal(0, 0.012, img.shape)
    return Image.fromarray(np.round(np.clip(img, 0, 1) * 255).astype(np.uint8))


def _check_args(num_ids, hr_images_per_id, lr_images_per_id, hr_size, lr_ratios, seed) -> None:
    if int(num_ids) < 2:
        raise DatasetError(f"num_ids={num_ids} is invalid; re-id needs at least 2 identities")
    for name, value in (("hr_images_per_id", hr_images_per_id), ("lr_images_per_id", lr_images_per_id)):
        if int(value) < 1:
            raise DatasetError(f"{name}={value} is invalid; every identity needs at least 1 image per camera")
    if len(hr_size) != 2 or min(hr_size) < MIN_HR_SIDE:
        raise DatasetError(f"hr_size={list(hr_size)} is invalid; expected (height, width) with sides >= {MIN_HR_SIDE}")
    if len(lr_ratios) != 2 or not 0 < lr_ratios[0] <= lr_ratios[1] <= 1:
        raise DatasetError(f"lr_ratios={list(lr_ratios)} is invalid; expected (lo, hi) with 0 < lo <= hi <= 1")
    if int(seed) < 0:
        raise DatasetError(f"seed={seed} is invalid; expected an int >= 0")


def build_synthetic_benchmark(
    root: str | Path,
    num_ids: int = 200,
    hr_images_per_id: int = 2,
    lr_images_per_id: int = 2,
    hr_size: tuple[int, int] = (64, 32),
    lr_ratios: tuple[float, float] = (0.25, 0.5),
    seed: int = 0,
) -> list[ImageRecord]:
    """Generate (once) and read the synthetic two-camera LR re-id benchmark.

    Camera 0 holds ``hr_images_per_id`` HR images per person (``hr_size`` = (height, width));
    camera 1 holds ``lr_images_per_id`` genuinely LR images whose linear scale is drawn
    uniformly in ``lr_ratios`` per image (rounded, >= 4 px per side). Images are PNGs under
    ``root/synthetic_<key>/cam{0,1}/{pid:04d}_{k:02d}.png``, with ``manifest.csv``
    (``path,pid,cam,lr``); the key hashes every argument and :data:`VERSION`, and an existing
    folder is reused. Image ``k`` of person ``pid`` depends only on (seed, pid, cam, k,
    hr_size, lr_ratios), so more people leave the first ones unchanged.

    Args:
        root: folder to hold the cached benchmark.
        num_ids: number of identities (pids 0..num_ids-1), each seen by both cameras.
        hr_images_per_id: images per person in the HR camera.
        lr_images_per_id: images per person in the LR camera.
        hr_size: (height, width) of HR images, >= 16 px per side.
        lr_ratios: (lo, hi) range of the LR images' scale, 0 < lo <= hi <= 1.
        seed: a non-negative int.

    Returns:
        Records with absolute paths, sorted by (cam, pid, path); LR ones have ``genuine_lr=True``.

    Raises:
        DatasetError: an argument is out of range, or the cached folder has no manifest.

    Example:
        >>> recs = build_synthetic_benchmark("/tmp/cache", num_ids=8)  # doctest: +SKIP
        >>> len(recs), recs[0].cam, recs[-1].genuine_lr  # doctest: +SKIP
        (32, 0, True)
    """
    _check_args(num_ids, hr_images_per_id, lr_images_per_id, hr_size, lr_ratios, seed)
    hr_size = (int(hr_size[0]), int(hr_size[1]))
    lr_ratios = (float(lr_ratios[0]), float(lr_ratios[1]))
    args = [VERSION, int(num_ids), int(hr_images_per_id), int(lr_images_per_id), hr_size, lr_ratios, int(seed)]
    key = hashlib.sha1(json.dumps(args).encode()).hexdigest()[:12]
    final = Path(root).resolve() / f"synthetic_{key}"

    def build(tmp: Path) -> None:
        rows = []
        for cam, per_id in ((0, int(hr_images_per_id)), (1, int(lr_images_per_id))):
            (tmp / f"cam{cam}").mkdir()
            for pid in range(int(num_ids)):
                for k in range(per_id):
                    rel = f"cam{cam}/{pid:04d}_{k:02d}.png"
                    _render_image(int(seed), pid, cam, k, hr_size, lr_ratios).save(tmp / rel)
                    rows.append((rel, pid, cam, cam))
        # The manifest is written last: its presence marks a complete build.
        with open(tmp / "manifest.csv", "w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows([("path", "pid", "cam", "lr"), *rows])
            f.flush()
            os.fsync(f.fileno())

    build_dir_atomic(final, build)
    manifest = final / "manifest.csv"
    if not manifest.is_file():
        raise DatasetError(f"{final} exists but has no manifest.csv; delete the folder to regenerate it")
    with open(manifest, newline="", encoding="utf-8") as f:
        records = [
            ImageRecord(str(final / row["path"]), int(row["pid"]), int(row["cam"]), row["lr"] == "1")
            for row in csv.DictReader(f)
        ]
    return sorted(records, key=lambda r: (r.cam, r.pid, r.path))
