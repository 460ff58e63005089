"""DukeMTMC-reID (Zheng et al. 2017): the Market-1501 layout with Duke's file names."""

from __future__ import annotations

import re
from pathlib import Path

from sing_lit.data.readers._common import as_root, has_match
from sing_lit.data.readers.market1501 import read_market_style
from sing_lit.data.records import ImageRecord

EXPECTED_TREE = """\
<root>/                         the unpacked DukeMTMC-reID/
|-- bounding_box_train/
|   |-- 0001_c2_f0046182.jpg    person 0001, camera 2 (-> cam 1), frame 0046182
|   `-- ...
|-- bounding_box_test/          (pid -1 and 0000, if present, are handled as in Market-1501)
|   `-- ...
`-- query/
    `-- ..."""

NAME = re.compile(r"(-1|\d{4})_c(\d)_f\d{7}\.jpg", re.IGNORECASE)


def looks_like(root: str | Path) -> bool:
    return has_match(as_root(root) / "bounding_box_train", NAME)


def read_dukemtmc(root: str | Path, distractors: bool = False) -> list[ImageRecord]:
    """Read DukeMTMC-reID's train, test and query boxes (cameras c1..c8 -> cam 0..7).

    Duke's gallery-only people (its 408 distractor identities) have ids of their own and are always
    read; ``distractors`` keeps any 0000 boxes as in :func:`~sing_lit.data.readers.market1501.read_market1501`.

    Example:
        >>> records = read_dukemtmc("data/DukeMTMC-reID", distractors=True)  # doctest: +SKIP
    """
    return read_market_style(root, NAME, "PPPP_cC_fFFFFFFF.jpg, e.g. 0001_c2_f0046182.jpg", EXPECTED_TREE,
                             distractors)
