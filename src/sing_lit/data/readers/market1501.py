"""Market-1501 (Zheng et al. 2015), and the Market-style layout DukeMTMC-reID shares.

The paper pre-trains its re-id net on Market-1501. Each record keeps the download's own subset
(``train``, ``query``, ``gallery``: :attr:`ImageRecord.subset`), which the MLR-Market query/gallery
protocol uses (:mod:`sing_lit.data.query_gallery`). Junk boxes (pid -1) are always left out: the
benchmark marks them "of zero influence to the re-identification accuracy", and its evaluation
removes them from every query's ranking, which is the same as leaving them out of the gallery.
Distractor boxes (pid 0000, in ``bounding_box_test``) are kept as gallery items that match no
query with ``distractors=True`` (``data=market1501``), left out otherwise (the single-shot split,
which needs every person in two views). Train and test identities are disjoint in the download, so
the raw pids keep them distinct; query and gallery share pids on purpose.
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
|-- bounding_box_test/          (pid -1 = junk: left out; 0000 = distractor: gallery-only with data=market1501)
|   `-- ...
`-- query/
    `-- ..."""

# The download's folders and the subset each one is.
SUBSETS = {"bounding_box_train": "train", "bounding_box_test": "gallery", "query": "query"}
FOLDERS = tuple(SUBSETS)
NAME = re.compile(r"(-1|\d{4})_c(\d)s\d_\d{6}_\d{2}\.jpg", re.IGNORECASE)
JUNK_PID, DISTRACTOR_PID = -1, 0
EXCLUDED_PIDS = (JUNK_PID, DISTRACTOR_PID)


def read_market_style(root: str | Path, name: re.Pattern[str], example: str, expected_tree: str,
                      distractors: bool = False) -> list[ImageRecord]:
    """Read the three Market-style folders; ``name`` captures (pid, camera 1..N).

    Junk (pid -1) is left out; distractors (pid 0) are kept, in the gallery only, when ``distractors``.
    """
    root = require_dir(as_root(root), expected_tree)
    records = []
    for folder, subset in SUBSETS.items():
        for path in image_files(require_dir(root / folder, expected_tree, f"folder {folder}")):
            match = parse_name(name, path, example, expected_tree)
            pid = int(match.group(1))
            keep = pid not in EXCLUDED_PIDS or (distractors and pid == DISTRACTOR_PID and subset == "gallery")
            if keep:
                records.append(ImageRecord(str(path), pid, int(match.group(2)) - 1, subset=subset))
    return sorted_records(records, root, expected_tree)


def looks_like(root: str | Path) -> bool:
    return has_match(as_root(root) / "bounding_box_train", NAME)


def read_market1501(root: str | Path, distractors: bool = False) -> list[ImageRecord]:
    """Read Market-1501's train, test and query boxes (cameras c1..c6 -> cam 0..5).

    Args:
        root: the unpacked ``Market-1501-v15.09.15/``.
        distractors: keep the 0000 distractor boxes of ``bounding_box_test`` (as gallery items, pid 0).

    Example:
        >>> records = read_market1501("data/Market-1501-v15.09.15", distractors=True)  # doctest: +SKIP
        >>> sorted({r.subset for r in records})  # doctest: +SKIP
        ['gallery', 'query', 'train']
    """
    return read_market_style(root, NAME, "PPPP_cCsS_FFFFFF_BB.jpg, e.g. 0002_c1s1_000451_03.jpg", EXPECTED_TREE,
                             distractors)
