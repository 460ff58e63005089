"""VIPeR (Gray and Tao 2008): 632 people, one 128x48 image per camera; the paper's MLR-VIPeR."""

from __future__ import annotations

import re
from pathlib import Path

from sing_lit.data.readers._common import as_root, camera_folder_records, has_match, require_dir, sorted_records
from sing_lit.data.records import ImageRecord

EXPECTED_TREE = """\
<root>/                     the unpacked VIPeR download (e.g. VIPeR/)
|-- cam_a/                  camera A -> cam 0
|   |-- 000_45.bmp          person 000 seen at 45 degrees
|   `-- ...                 632 images, one per person
`-- cam_b/                  camera B -> cam 1
    |-- 000_90.bmp
    `-- ..."""

CAMERAS = {"cam_a": 0, "cam_b": 1}
NAME = re.compile(r"(\d{3})_(\d+)\.bmp", re.IGNORECASE)


def looks_like(root: str | Path) -> bool:
    root = as_root(root)
    return all(has_match(root / cam, NAME) for cam in CAMERAS)


def read_viper(root: str | Path) -> list[ImageRecord]:
    """Read VIPeR's ``cam_a``/``cam_b`` folders.

    Example:
        >>> records = read_viper("data/VIPeR")  # doctest: +SKIP
        >>> len({r.pid for r in records})  # doctest: +SKIP
        632
    """
    root = require_dir(as_root(root), EXPECTED_TREE)
    records = camera_folder_records(root, CAMERAS, NAME, "PPP_ANGLE.bmp, e.g. 000_45.bmp", EXPECTED_TREE, "VIPeR")
    return sorted_records(records, root, EXPECTED_TREE)
