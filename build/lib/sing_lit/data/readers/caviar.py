"""CAVIAR4REID (Cheng et al. 2011): 72 people, a close HR camera and a distant, genuinely LR one.

Images 001-010 of a person come from camera 1 (HR, cam 0), 011-020 from camera 2 (genuinely
low resolution, cam 1, ``genuine_lr=True``). 22 people appear in camera 1 only; they are kept
here (the protocol decides what to do with one-camera people).
"""

from __future__ import annotations

import re
from pathlib import Path

from sing_lit.data.readers._common import (
    as_root,
    has_match,
    image_files,
    layout_error,
    parse_name,
    require_dir,
    sorted_records,
)
from sing_lit.data.records import ImageRecord

EXPECTED_TREE = """\
<root>/                     the CAVIAR4REID download, or caviarRAW/ itself
`-- caviarRAW/
    |-- 0001001.jpg         person 0001, image 001 (images 001-010: camera 1, HR -> cam 0)
    |-- 0001011.jpg         person 0001, image 011 (images 011-020: camera 2, LR -> cam 1)
    `-- ...                 72 people, 1,220 images"""

NAME = re.compile(r"(\d{4})(\d{3})\.jpg", re.IGNORECASE)
IMAGES_PER_CAMERA = 10


def _raw_dir(root: Path) -> Path:
    return root / "caviarRAW" if (root / "caviarRAW").is_dir() else root


def looks_like(root: str | Path) -> bool:
    return has_match(_raw_dir(as_root(root)), NAME)


def read_caviar(root: str | Path) -> list[ImageRecord]:
    """Read ``caviarRAW/PPPPIII.jpg``; camera 2 images are flagged ``genuine_lr``.

    Example:
        >>> records = read_caviar("data/CAVIAR4REID")  # doctest: +SKIP
        >>> sum(r.genuine_lr for r in records)  # doctest: +SKIP
        500
    """
    root = require_dir(as_root(root), EXPECTED_TREE)
    records = []
    for path in image_files(_raw_dir(root)):
        match = parse_name(NAME, path, "PPPPIII.jpg, e.g. 0001011.jpg", EXPECTED_TREE)
        image = int(match.group(2))
        if not 1 <= image <= 2 * IMAGES_PER_CAMERA:
            raise layout_error(f"image number {image} in {path} is outside 001-020", EXPECTED_TREE)
        cam = 0 if image <= IMAGES_PER_CAMERA else 1
        records.append(ImageRecord(str(path), int(match.group(1)), cam, genuine_lr=cam == 1))
    return sorted_records(records, root, EXPECTED_TREE)
