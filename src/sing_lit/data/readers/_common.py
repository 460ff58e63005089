"""What every reader shares: resolving the root, listing a camera folder, one error shape.

Which files a reader looks at: every file whose suffix is an image suffix (case-insensitive)
must parse, or the reader raises. Hidden files (``.DS_Store``, macOS ``._*`` forks) and
non-image files (``Thumbs.db``, ``readme.txt``, ``*.mat``) are ignored on purpose; sub-folders of
a camera folder are not descended into.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from sing_lit.data.records import DatasetError, ImageRecord

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".gif", ".ppm", ".webp"})


def layout_error(message: str, expected_tree: str) -> DatasetError:
    """A `DatasetError` whose message (which names the path) ends with the expected layout."""
    return DatasetError(f"{message}\nexpected layout:\n{expected_tree.rstrip()}")


def as_root(root: str | Path) -> Path:
    """Absolute, normalised path (symlinks kept, so records point where the user pointed)."""
    return Path(os.path.abspath(Path(root).expanduser()))


def require_dir(path: Path, expected_tree: str, what: str = "dataset root") -> Path:
    if not path.exists():
        raise layout_error(f"{what} does not exist: {path}", expected_tree)
    if not path.is_dir():
        raise layout_error(f"{what} is not a folder: {path}", expected_tree)
    return path


def image_files(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, sorted by name; hidden and non-image files ignored."""
    return sorted(
        p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    )


def parse_name(pattern: re.Pattern[str], path: Path, expected: str, expected_tree: str) -> re.Match[str]:
    """Match a file name or raise: a stray image is an error, never silently skipped."""
    match = pattern.fullmatch(path.name)
    if match is None:
        raise layout_error(f"cannot parse image file name {path.name!r} ({path}); expected {expected}", expected_tree)
    return match


def has_match(folder: Path, pattern: re.Pattern[str]) -> bool:
    """Whether ``folder`` holds at least one file whose name matches (for layout detection)."""
    return folder.is_dir() and any(pattern.fullmatch(p.name) for p in folder.iterdir())


def camera_folder_records(base: Path, cameras: Mapping[str, int], pattern: re.Pattern[str], expected: str,
                          expected_tree: str, dataset: str) -> list[ImageRecord]:
    """One record per image of each camera folder ``base/<name>`` (camera index ``cameras[name]``), its person
    id the file name's first group; a missing folder or a stray image name is an error."""
    records = []
    for name, cam in cameras.items():
        for path in image_files(require_dir(base / name, expected_tree, f"{dataset} camera folder {name}")):
            match = parse_name(pattern, path, expected, expected_tree)
            records.append(ImageRecord(str(path), int(match.group(1)), cam))
    return records


def sorted_records(records: Iterable[ImageRecord], root: Path, expected_tree: str) -> list[ImageRecord]:
    """Records sorted by (cam, pid, path); an empty dataset is an error."""
    out = sorted(records, key=lambda r: (r.cam, r.pid, r.path))
    if not out:
        raise layout_error(f"no images found under {root}", expected_tree)
    return out
