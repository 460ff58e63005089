"""Market-1501 (Zheng et al. 2015), and the Market-style layout DukeMTMC-reID shares.

The paper pre-trains its re-id net on Market-1501. Junk boxes (pid -1) and distractors
(pid 0000) are excluded by the benchmark's own definition. Train and test identities are
disjoint in the download, so the raw pids keep them distinct; query and gallery
(``bounding_box_test``) share pids on purpose.
"""

from __future__ import annotations

import re
from pathlib import Path

from sing_lit.data.readers._common import as_root, has_match, image_files, parse_name, require_dir, sorted_records
from sing_lit.data.records import ImageRecord

EXPECTED_TREE = """\
<root>/                         the unpacked Market-1501-v15.09.15/
|-- bounding_box_train/
|   |-- 0002_c1s1_000451_03.jpg person 0002, camera 1 (-> cam 0), sequence 1, frame 000451, box 03
|   `-- ...
|-- bounding_box_test/          (pid -1 = junk and 0000 = distractor are excluded)
|   `-- ...
`-- query/
    `-- ..."""

FOLDERS = ("bounding_box_train", "bounding_box_test", "query")
NAME = re.compile(r"(-1|\d{4})_c(\d)s\d_\d{6}_\d{2}\.jpg", re.IGNORECASE)
EXCLUDED_PIDS = (-1, 0)


def read_market_style(root: str | Path, name: re.Pattern[str], example: str, expected_tree: str) -> list[ImageRecord]:
    """Read the three Market-style folders; ``name`` captures (pid, camera 1..N)."""
    root = require_dir(as_root(root), expected_tree)
    records = []
    for folder in FOLDERS:
        for path in image_files(require_dir(root / folder, expected_tree, f"folder {folder}")):
            match = parse_name(name, path, example, expected_tree)
            pid = int(match.group(1))
            if pid not in EXCLUDED_PIDS:
                records.append(ImageRecord(str(path), pid, int(match.group(2)) - 1))
    return sorted_records(records, root, expected_tree)


def looks_like(root: str | Path) -> bool:
    return has_match(as_root(root) / "bounding_box_train", NAME)


def read_market1501(root: str | Path) -> list[ImageRecord]:
    """Read Market-1501's train, test and query boxes (cameras c1..c6 -> cam 0..5).

    Example:
        >>> records = read_market1501("data/Market-1501-v15.09.15")  # doctest: +SKIP
    """
    return read_market_style(root, NAME, "PPPP_cCsS_FFFFFF_BB.jpg, e.g. 0002_c1s1_000451_03.jpg", EXPECTED_TREE)
