"""Any dataset described by a CSV manifest: one row per image with its person and camera.

Columns ``path,pid,camera`` and an optional ``lr`` (1/0/true/false/yes/no, empty = 0) that marks
images from a genuinely low-resolution camera. Relative paths resolve against the CSV's folder.
``pid`` and ``camera`` are kept as ints when every value of the column is an int; otherwise the
distinct strings are sorted and numbered 0..N-1, so the mapping is the same on every run.
"""

from __future__ import annotations

import csv
from pathlib import Path

from sing_lit.data.readers._common import as_root, layout_error, sorted_records
from sing_lit.data.records import ImageRecord

EXPECTED_TREE = """\
<root>/manifest.csv         (or data.root pointing at any .csv file)
    path,pid,camera,lr      header; lr is optional
    images/a.jpg,0001,cam1,0
    images/b.jpg,0001,cam2,1
    /abs/path/c.png,alice,cam1,0
<root>/images/...           images, relative paths resolve against the CSV's folder"""

REQUIRED = ("path", "pid", "camera")
FLAGS = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False, "": False}


def _csv_path(root: Path) -> Path:
    return root / "manifest.csv" if root.is_dir() else root


def looks_like(root: str | Path) -> bool:
    csv_path = _csv_path(as_root(root))
    return csv_path.is_file() and csv_path.suffix.lower() == ".csv"


def _to_ints(values: list[str]) -> list[int]:
    """Ints as given when all parse; else sorted distinct strings numbered 0..N-1."""
    try:
        return [int(v) for v in values]
    except ValueError:
        index = {v: i for i, v in enumerate(sorted(set(values)))}
        return [index[v] for v in values]


def read_manifest(root: str | Path) -> list[ImageRecord]:
    """Read a ``path,pid,camera[,lr]`` CSV; ``root`` is the CSV or a folder holding ``manifest.csv``.

    Example:
        >>> records = read_manifest("data/my_cameras/manifest.csv")  # doctest: +SKIP
    """
    csv_path = _csv_path(as_root(root))
    if not csv_path.is_file():
        raise layout_error(f"manifest not found: {csv_path}", EXPECTED_TREE)
    with open(csv_path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f, skipinitialspace=True)
        header = [h.strip() for h in reader.fieldnames or []]
        if any(col not in header for col in REQUIRED):
            raise layout_error(
                f"manifest {csv_path} has header {header}; expected columns path,pid,camera[,lr]", EXPECTED_TREE
            )
        rows = [{k.strip(): (v or "").strip() for k, v in row.items() if k} for row in reader]
    paths, seen = [], set()
    for line, row in enumerate(rows, start=2):
        path = as_root(csv_path.parent / row["path"])
        if not row["path"] or not path.is_file():
            raise layout_error(f"{csv_path} line {line}: image {path} does not exist", EXPECTED_TREE)
        if not row["pid"] or not row["camera"]:
            raise layout_error(f"{csv_path} line {line}: empty pid or camera for {path}", EXPECTED_TREE)
        if path in seen:
            raise layout_error(f"{csv_path} line {line}: image {path} is listed twice", EXPECTED_TREE)
        if row.get("lr", "").lower() not in FLAGS:
            raise layout_error(
                f"{csv_path} line {line}: lr={row['lr']!r}; expected 1/0/true/false/yes/no", EXPECTED_TREE
            )
        seen.add(path)
        paths.append(path)
    pids = _to_ints([row["pid"] for row in rows])
    cams = _to_ints([row["camera"] for row in rows])
    records = [
        ImageRecord(str(path), pid, cam, FLAGS[row.get("lr", "").lower()])
        for path, pid, cam, row in zip(paths, pids, cams, rows, strict=True)
    ]
    return sorted_records(records, csv_path, EXPECTED_TREE)
