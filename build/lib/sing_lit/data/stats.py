"""What a dataset holds: people, cameras, and how low the resolution of its LR images really is.

Image sizes are read from file headers (``PIL.Image.open(path).size``), never by decoding
pixels, so describing Market-1501 takes seconds.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from typing import Any

from PIL import Image

from sing_lit.data.records import DatasetError, ImageRecord

# Image height bins (px). The paper's HR images are 128-160 px tall; its LR ones 1/2-1/4 of that.
HEIGHT_BINS = (0, 32, 48, 64, 96, 128, 192, 256)


def _size(path: str) -> tuple[int, int]:
    try:
        with Image.open(path) as img:
            return img.size
    except (OSError, SyntaxError, ValueError) as err:
        raise DatasetError(f"cannot read the image header of {path} ({err}); expected a readable image") from err


def image_sizes(records: Sequence[ImageRecord], workers: int = 4) -> list[tuple[int, int]]:
    """(width, height) of every record's image, from headers only."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(_size, [r.path for r in records]))


def height_bin(height: int) -> str:
    """Label of the ``HEIGHT_BINS`` bin ``height`` falls in, e.g. ``"64-95"`` or ``">=256"``."""
    for low, high in pairwise(HEIGHT_BINS):
        if height < high:
            return f"{low}-{high - 1}"
    return f">={HEIGHT_BINS[-1]}"


def describe(records: Sequence[ImageRecord], workers: int = 4) -> dict[str, Any]:
    """Counts and a resolution histogram of a dataset.

    Returns:
        A dict with ``images``, ``people``, ``cameras``, ``people_multi_camera`` (people seen by
        two or more cameras: "in both cameras" for two-camera datasets), ``images_per_camera``,
        ``people_per_camera``, and per resolution group (``"lr"``: genuinely LR images, ``"hr"``:
        the others) ``images``, ``height_histogram`` (bin label -> count, all bins listed),
        ``width_range`` and ``height_range`` (min, max; None for an empty group).

    Example:
        >>> print(format_description(describe(read_prid2011("/data/prid_2011"))))  # doctest: +SKIP
    """
    cams_of: dict[int, set[int]] = defaultdict(set)
    for r in records:
        cams_of[r.pid].add(r.cam)
    people_per_camera: Counter[int] = Counter(cam for cams in cams_of.values() for cam in cams)
    sizes = image_sizes(records, workers)
    resolution = {}
    for group, genuine_lr in (("lr", True), ("hr", False)):
        group_sizes = [s for r, s in zip(records, sizes, strict=True) if r.genuine_lr == genuine_lr]
        histogram = {height_bin(low): 0 for low in HEIGHT_BINS}
        histogram.update(Counter(height_bin(h) for _, h in group_sizes))
        widths, heights = [w for w, _ in group_sizes], [h for _, h in group_sizes]
        resolution[group] = {
            "images": len(group_sizes),
            "height_histogram": histogram,
            "width_range": (min(widths), max(widths)) if widths else None,
            "height_range": (min(heights), max(heights)) if heights else None,
        }
    return {
        "images": len(records),
        "people": len(cams_of),
        "cameras": len({r.cam for r in records}),
        "people_multi_camera": sum(len(cams) > 1 for cams in cams_of.values()),
        "images_per_camera": dict(sorted(Counter(r.cam for r in records).items())),
        "people_per_camera": dict(sorted(people_per_camera.items())),
        "resolution": resolution,
    }


def format_description(d: dict[str, Any]) -> str:
    """Human-readable lines for the output of `describe`."""
    lines = [
        f"images: {d['images']}",
        f"people: {d['people']}",
        f"people seen by 2+ cameras: {d['people_multi_camera']}",
        f"cameras: {d['cameras']}",
        "camera  images  people",
    ]
    lines += [f"{cam:>6}  {n:>6}  {d['people_per_camera'][cam]:>6}" for cam, n in d["images_per_camera"].items()]
    lr, hr = d["resolution"]["lr"], d["resolution"]["hr"]
    lines += [
        f"genuinely LR images: {lr['images']}, HR (or to be down-sampled) images: {hr['images']}",
        "height (px)    LR      HR",
    ]
    lines += [
        f"{label:>11}  {lr['height_histogram'][label]:>6}  {hr['height_histogram'][label]:>6}"
        for label in hr["height_histogram"]
    ]
    for name, group in (("LR", lr), ("HR", hr)):
        if group["images"]:
            (w0, w1), (h0, h1) = group["width_range"], group["height_range"]
            lines.append(f"{name} sizes: width {w0}-{w1} px, height {h0}-{h1} px")
    return "\n".join(lines)
