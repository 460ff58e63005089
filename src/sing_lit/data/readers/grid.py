"""QMUL GRID (Loy et al. 2009): underground-station crops of genuinely mixed, low resolution.

Two layouts are read:

- the original download, ``underground_reid/probe`` (250 people, genuinely LR:
  ``genuine_lr=True``) and ``underground_reid/gallery`` (the same 250 people in HR plus 775
  distractors named ``0000_...``);
- a flat folder of the same file names (probe/gallery split lost). Then ``probe`` decides which
  image of a person seen two or more times is the probe (``genuine_lr``):

  - ``"smaller_box"`` (default): the image with the smallest box area ``W*H`` (from the file
    name; ties go to the first name in sorted order) - the far, smaller view;
  - ``"lower_camera"``: the image from the lowest camera number ``C`` (ties: first name). Every
    GRID pair is seen by two adjacent cameras (1-2, 2-3, 4-5, 5-6), lower number first in the
    original probe folder (``probe/0001_1_...`` vs ``gallery/0001_2_...``), and 755 of the 775
    distractors are in cameras 2, 3 and 5, each the higher camera of a pair (the gallery side). This is the
    camera-role split the literature's protocol needs (``data=grid_standard``).

  People seen once are HR distractors either way.

Distractors named ``0000`` are all different people, so each gets its own id
``DISTRACTOR_PID_OFFSET + k`` (k = rank of its file name), above every real 4-digit id.
"""

from __future__ import annotations

import re
from collections import defaultdict
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
either the original download (<root> may also be underground_reid/ itself):
<root>/
`-- underground_reid/
    |-- probe/                              250 images, genuinely LR (genuine_lr)
    |   |-- 0001_1_25004_107_32_106_221.jpeg  person 0001, camera 1 (-> cam 0), frame 25004, box x y w h
    |   `-- ...
    `-- gallery/                            1,025 images: the 250 people in HR + 775 distractors 0000_*
        `-- ...
or a flat folder of the same names (the smaller box of each person seen twice is marked LR):
<root>/
|-- 0001_1_25004_107_32_106_221.jpeg
|-- 0001_2_25023_116_134_128_330.jpeg
`-- ..."""

NAME = re.compile(r"(\d{4})_(\d)_\d+_\d+_\d+_(\d+)_(\d+)\.jpe?g", re.IGNORECASE)
EXAMPLE = "PPPP_C_FFFFF_X_Y_W_H.jpeg, e.g. 0001_1_25004_107_32_106_221.jpeg"
DISTRACTOR_PID = 0
DISTRACTOR_PID_OFFSET = 10_000
NUM_CAMERAS = 8
PROBE_RULES = ("smaller_box", "lower_camera")


def _split_dir(root: Path) -> Path | None:
    """The folder holding probe/ and gallery/, if this is the original layout."""
    for folder in (root / "underground_reid", root):
        if (folder / "probe").is_dir() and (folder / "gallery").is_dir():
            return folder
    return None


def looks_like(root: str | Path) -> bool:
    root = as_root(root)
    split = _split_dir(root)
    return has_match(split / "probe", NAME) if split else has_match(root, NAME)


def _parse(path: Path) -> tuple[int, int, int]:
    """(pid, cam, box area) of one GRID file."""
    match = parse_name(NAME, path, EXAMPLE, EXPECTED_TREE)
    camera = int(match.group(2))
    if not 1 <= camera <= NUM_CAMERAS:
        raise layout_error(f"camera {camera} in {path} is outside 1-{NUM_CAMERAS}", EXPECTED_TREE)
    return int(match.group(1)), camera - 1, int(match.group(3)) * int(match.group(4))


def _distinct_distractors(records: list[ImageRecord]) -> list[ImageRecord]:
    ranked = sorted(r.path for r in records if r.pid == DISTRACTOR_PID)
    new_pid = {path: DISTRACTOR_PID_OFFSET + k for k, path in enumerate(ranked)}
    return [ImageRecord(r.path, new_pid.get(r.path, r.pid), r.cam, r.genuine_lr) for r in records]


def _read_split(folder: Path) -> list[ImageRecord]:
    records = []
    for view, genuine_lr in (("probe", True), ("gallery", False)):
        for path in image_files(folder / view):
            pid, cam, _ = _parse(path)
            records.append(ImageRecord(str(path), pid, cam, genuine_lr))
    return records


def _read_flat(root: Path, probe: str) -> list[ImageRecord]:
    by_pid: dict[int, list[tuple[int, Path, int]]] = defaultdict(list)
    records = []
    for path in image_files(root):
        pid, cam, area = _parse(path)
        if pid == DISTRACTOR_PID:
            records.append(ImageRecord(str(path), pid, cam))
        else:
            by_pid[pid].append((area, path, cam))
    # smaller_box: key (area, name); lower_camera: key (camera, name)
    order = (lambda v: (v[0], v[1])) if probe == "smaller_box" else (lambda v: (v[2], v[1]))
    for pid, views in by_pid.items():
        chosen = min(views, key=order) if len(views) > 1 else None
        records += [ImageRecord(str(path), pid, cam, (area, path, cam) == chosen) for area, path, cam in views]
    return records


def read_grid(root: str | Path, probe: str = "smaller_box") -> list[ImageRecord]:
    """Read GRID from its original probe/gallery layout or from a flat folder.

    ``probe`` (flat layout only; the original folders say it themselves): ``"smaller_box"`` or
    ``"lower_camera"``, which image of a pair is the probe, see the module docstring.

    Example:
        >>> records = read_grid("/data/grid")  # doctest: +SKIP
        >>> len(records), sum(r.genuine_lr for r in records)  # doctest: +SKIP
        (1275, 250)
    """
    if probe not in PROBE_RULES:
        raise ValueError(f"data.reader.probe={probe!r} is not a GRID probe rule; allowed: {', '.join(PROBE_RULES)}")
    root = require_dir(as_root(root), EXPECTED_TREE)
    split = _split_dir(root)
    records = _read_split(split) if split else _read_flat(root, probe)
    return sorted_records(_distinct_distractors(records), root, EXPECTED_TREE)
