"""SYSU (Chen et al. 2017a, TPAMI): 24,446 images of 502 people in two cameras; the paper's MLR-SYSU.

No public file layout of this dataset could be found, so this reader supports one simple,
documented layout: one folder per camera, one sub-folder per person named by its integer id,
any image file names inside. Arrange a download that way (e.g. ``mkdir -p cam1/0001 && mv ...``).
The paper "randomly selected three images per person per camera"; ``images_per_camera`` does
that with a seeded draw per (person, camera), so the subset is the same on every machine.
"""

from __future__ import annotations

import random
from pathlib import Path

from sing_lit.data.readers._common import (
    IMAGE_SUFFIXES,
    as_root,
    image_files,
    layout_error,
    require_dir,
    sorted_records,
)
from sing_lit.data.records import ImageRecord
from sing_lit.runtime.errors import ConfigError

EXPECTED_TREE = """\
<root>/                     the SYSU images, arranged in this supported layout
|-- cam1/                   camera 1 -> cam 0
|   |-- 0001/               one folder per person, named by its integer id
|   |   |-- <any>.jpg       any image names (jpg, png, bmp, ...)
|   |   `-- ...
|   `-- ...                 502 people
`-- cam2/                   camera 2 -> cam 1
    |-- 0001/
    `-- ..."""

CAMERAS = {"cam1": 0, "cam2": 1}


def looks_like(root: str | Path) -> bool:
    root = as_root(root)
    return all((root / cam).is_dir() and any(p.is_dir() for p in (root / cam).iterdir()) for cam in CAMERAS)


def _person_dirs(cam_dir: Path) -> list[Path]:
    """Per-person folders of one camera; stray images or oddly named folders are errors."""
    people = []
    for entry in sorted(cam_dir.iterdir()):
        if entry.name.startswith(".") or (entry.is_file() and entry.suffix.lower() not in IMAGE_SUFFIXES):
            continue  # Thumbs.db, readme.txt: not part of the dataset
        if not entry.is_dir() or not entry.name.isdigit():
            raise layout_error(
                f"{entry} is not a person folder; expected folders named by integer ids "
                "(e.g. 0001/) inside each camera folder",
                EXPECTED_TREE,
            )
        people.append(entry)
    return people


def _select(paths: list[Path], k: int | None, seed: int, pid: int, cam: int) -> list[Path]:
    """``k`` paths drawn without replacement; a str seed is hashed by sha512, stable across runs."""
    if k is None or len(paths) <= k:
        return paths
    return sorted(random.Random(f"{seed}/{pid}/{cam}").sample(paths, k))


def read_sysu(root: str | Path, images_per_camera: int | None = 3, seed: int = 0) -> list[ImageRecord]:
    """Read ``cam1|cam2/<pid>/*``, keeping ``images_per_camera`` random images per person and camera.

    Args:
        root: folder holding ``cam1/`` and ``cam2/``.
        images_per_camera: images kept per (person, camera), as the paper's 3; ``None`` keeps all.
            People with fewer images keep all of theirs.
        seed: seed of the selection.

    Example:
        >>> records = read_sysu("data/sysu", images_per_camera=3)  # doctest: +SKIP
        >>> len(records)  # doctest: +SKIP
        3012
    """
    if images_per_camera is not None and images_per_camera < 1:
        raise ConfigError(f"images_per_camera={images_per_camera!r}; expected a positive int or None (all images)")
    root = require_dir(as_root(root), EXPECTED_TREE)
    records = []
    for name, cam in CAMERAS.items():
        cam_dir = require_dir(root / name, EXPECTED_TREE, f"SYSU camera folder {name}")
        for person in _person_dirs(cam_dir):
            pid = int(person.name)
            paths = image_files(person)
            if not paths:
                raise layout_error(f"person folder {person} holds no images", EXPECTED_TREE)
            records += [ImageRecord(str(p), pid, cam) for p in _select(paths, images_per_camera, seed, pid, cam)]
    return sorted_records(records, root, EXPECTED_TREE)
