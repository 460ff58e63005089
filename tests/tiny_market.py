"""Tiny Market-1501 and DukeMTMC-reID downloads in their original file naming, written with PIL.

The same people in both: 7 training people (one, 0025, seen by one camera only), 4 query people, the
gallery with 0000 distractors and -1 junk boxes. Query 0009 (camera 4) has gallery images only from
camera 4: camera-aware evaluation leaves it no true match, so it is excluded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

# (folder, pid, camera 1..N, images)
LAYOUT = [
    ("bounding_box_train", 2, 1, 2), ("bounding_box_train", 2, 2, 2), ("bounding_box_train", 2, 3, 1),
    ("bounding_box_train", 7, 1, 2), ("bounding_box_train", 7, 4, 2),
    ("bounding_box_train", 10, 2, 2), ("bounding_box_train", 10, 3, 2), ("bounding_box_train", 10, 5, 1),
    ("bounding_box_train", 11, 1, 1), ("bounding_box_train", 11, 6, 2),
    ("bounding_box_train", 12, 3, 2), ("bounding_box_train", 12, 4, 2),
    ("bounding_box_train", 20, 2, 2), ("bounding_box_train", 20, 5, 2),
    ("bounding_box_train", 25, 6, 2),
    ("query", 3, 1, 1), ("query", 3, 2, 1), ("query", 5, 3, 1), ("query", 8, 1, 1), ("query", 9, 4, 1),
    ("bounding_box_test", 3, 1, 1), ("bounding_box_test", 3, 3, 2),
    ("bounding_box_test", 5, 1, 1), ("bounding_box_test", 5, 2, 1), ("bounding_box_test", 5, 3, 1),
    ("bounding_box_test", 8, 2, 1), ("bounding_box_test", 8, 5, 1),
    ("bounding_box_test", 9, 4, 2),
    ("bounding_box_test", 0, 1, 1), ("bounding_box_test", 0, 2, 1), ("bounding_box_test", 0, 6, 1),
    ("bounding_box_test", -1, 1, 1), ("bounding_box_test", -1, 3, 1),
]
TRAIN_IDS = [2, 7, 10, 11, 12, 20, 25]
QUERY_IDS = [3, 5, 8, 9]
SIZE = (16, 32)  # (width, height): Market's 64x128 boxes, 4x smaller


def market_name(pid: int, cam: int, frame: int) -> str:
    """``0002_c1s1_000451_03.jpg``: person, camera, sequence, frame, box."""
    return f"{'-1' if pid == -1 else f'{pid:04d}'}_c{cam}s1_{frame:06d}_0{frame % 10}.jpg"


def duke_name(pid: int, cam: int, frame: int) -> str:
    """``0005_c2_f0046985.jpg``: person, camera, frame."""
    return f"{'-1' if pid == -1 else f'{pid:04d}'}_c{cam}_f{frame:07d}.jpg"


NAMING = {"market1501": market_name, "dukemtmc": duke_name}


def write_tiny(root: Path, dataset: str = "market1501", size: tuple[int, int] = SIZE) -> Path:
    """Write the layout under ``root`` in ``dataset``'s naming; random pixels, seeded."""
    rng = np.random.default_rng(0)
    frame = 100
    for folder, pid, cam, count in LAYOUT:
        (root / folder).mkdir(parents=True, exist_ok=True)
        for _ in range(count):
            frame += 37
            pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / folder / NAMING[dataset](pid, cam, frame), quality=95)
    return root
