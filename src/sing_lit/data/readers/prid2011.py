"""PRID2011 single-shot (Hirzer et al. 2011): 385 people in camera A, 749 in B, 200 in both."""

from __future__ import annotations

import re
from pathlib import Path

from sing_lit.data.readers._common import as_root, camera_folder_records, has_match, require_dir, sorted_records
from sing_lit.data.records import ImageRecord

EXPECTED_TREE = """\
<root>/                     the PRID2011 download (prid_2011/), or single_shot/ itself
`-- single_shot/
    |-- cam_a/              camera A -> cam 0
    |   |-- person_0001.png
    |   `-- ...             person_0001 .. person_0385
    `-- cam_b/              camera B -> cam 1
        |-- person_0001.png
        `-- ...             person_0001 .. person_0749 (0001-0200 are also in cam_a)"""

CAMERAS = {"cam_a": 0, "cam_b": 1}
NAME = re.compile(r"person_(\d{4})\.png", re.IGNORECASE)


def _single_shot_dir(root: Path) -> Path:
    """Accept the download root or ``single_shot`` itself (the folder that holds cam_a/cam_b)."""
    return root / "single_shot" if (root / "single_shot").is_dir() else root


def looks_like(root: str | Path) -> bool:
    folder = _single_shot_dir(as_root(root))
    return all(has_match(folder / cam, NAME) for cam in CAMERAS)


def read_prid2011(root: str | Path) -> list[ImageRecord]:
    """Read PRID2011's single-shot part; the multi-shot part is not used by the paper.

    Example:
        >>> records = read_prid2011("/data/prid_2011")  # doctest: +SKIP
        >>> sum(r.cam == 0 for r in records)  # doctest: +SKIP
        385
    """
    root = require_dir(as_root(root), EXPECTED_TREE)
    records = camera_folder_records(_single_shot_dir(root), CAMERAS, NAME, "person_NNNN.png, e.g. person_0001.png",
                                    EXPECTED_TREE, "PRID2011")
    return sorted_records(records, root, EXPECTED_TREE)
