"""CUHK03 (Li et al. 2014): 1,467 people in 5 camera pairs, labeled and detected boxes; MLR-CUHK03.

Two layouts are read: images already extracted as ``images_labeled/`` and ``images_detected/``
(the common ``{pair}_{pid:03d}_{cam}_{img:02d}.png`` naming), or the official ``cuhk-03.mat``
(MATLAB v7.3 = HDF5), whose images are extracted once, with that same naming, into the cache dir:
``<cache_dir>/cuhk03_<key of the root>/{labeled,detected}/`` (built in a temp folder, then renamed, so an
interrupted extraction never leaves half a folder). The dataset root is only read, so it may be a
read-only shared mount.

Ids: ``pid = PAIR_OFFSETS[pair] + person - 1``, a global index over (pair, person) that is the
same for labeled and detected boxes of one person; ``cam = 2 * (pair - 1) + (cam - 1)``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from pathlib import Path

import numpy as np
from PIL import Image

from sing_lit.data.readers._common import as_root, image_files, layout_error, parse_name, require_dir, sorted_records
from sing_lit.data.records import DatasetError, ImageRecord
from sing_lit.runtime.atomic import build_dir_atomic

log = logging.getLogger(__name__)

EXPECTED_TREE = """\
either extracted images:
<root>/
|-- images_labeled/
|   |-- 1_001_1_01.png      camera pair 1, person 001, camera 1, image 01 (.png or .jpg)
|   `-- ...
`-- images_detected/
    `-- ...
or the official release (<root> may also be cuhk03_release/ itself):
<root>/
`-- cuhk03_release/
    `-- cuhk-03.mat         MATLAB v7.3; extracted once to <cache_dir>/cuhk03_<key>/{labeled,detected}/"""

SUBSETS = ("labeled", "detected")
PEOPLE_PER_PAIR = (843, 440, 77, 58, 49)  # 1,467 people in the official release
PAIR_OFFSETS = tuple(int(x) for x in np.cumsum((0,) + PEOPLE_PER_PAIR[:-1]))
IMAGES_PER_PERSON = 10  # cells 1-5 from the pair's first camera, 6-10 from its second
NAME = re.compile(r"([1-5])_(\d{3})_([12])_(\d{2})\.(?:png|jpg)", re.IGNORECASE)
EXTRACTED = "_sing_lit_extracted"  # where versions before 0.1 extracted into the root; still read


def extracted_dir(root: Path, cache_dir: str | Path | None) -> Path:
    """The cache folder of one root's extracted ``.mat`` (keyed by the root's absolute path)."""
    cache = Path(cache_dir) if cache_dir is not None else Path(os.environ.get("SING_LIT_CACHE", ".data_cache"))
    return cache.absolute() / f"cuhk03_{hashlib.sha1(str(root).encode()).hexdigest()[:12]}"


def find_mat(root: Path) -> Path | None:
    """``cuhk-03.mat`` under ``root`` (or its ``cuhk03_release/``), if there."""
    for path in (root / "cuhk-03.mat", root / "cuhk03_release" / "cuhk-03.mat"):
        if path.is_file():
            return path
    return None


def looks_like(root: str | Path) -> bool:
    root = as_root(root)
    return find_mat(root) is not None or any((root / f"images_{s}").is_dir() for s in SUBSETS)


def extract_mat(mat_path: Path, subset: str, out_dir: Path) -> Path:
    """Write every image of ``subset`` in ``cuhk-03.mat`` to ``out_dir`` as PNG (once, atomically)."""
    import h5py  # only the .mat layout needs it

    def build(tmp: Path) -> None:
        try:
            mat = h5py.File(mat_path, "r")
        except OSError as err:
            raise layout_error(f"cannot read {mat_path} as MATLAB v7.3 (HDF5): {err}", EXPECTED_TREE) from err
        with mat:
            if subset not in mat:
                raise layout_error(f"{mat_path} has no {subset!r} cell array (found {sorted(mat)})", EXPECTED_TREE)
            for pair, pair_ref in enumerate(np.ravel(mat[subset][()]), start=1):
                # MATLAB stores the people x 10 cell array transposed: (10, people).
                cells = mat[pair_ref][()]
                if cells.ndim != 2 or cells.shape[0] != IMAGES_PER_PERSON:
                    raise layout_error(
                        f"{mat_path}: {subset} pair {pair} has shape {cells.shape}; "
                        f"expected ({IMAGES_PER_PERSON}, people)",
                        EXPECTED_TREE,
                    )
                for person in range(cells.shape[1]):
                    for image in range(IMAGES_PER_PERSON):
                        pixels = mat[cells[image, person]][()]
                        if pixels.ndim != 3:
                            continue  # an empty cell ([] is stored as a 2-element array): no such image
                        cam = 1 if image < IMAGES_PER_PERSON // 2 else 2
                        name = f"{pair}_{person + 1:03d}_{cam}_{image + 1:02d}.png"
                        # Stored transposed as (channels, width, height).
                        Image.fromarray(np.ascontiguousarray(pixels.transpose(2, 1, 0))).save(tmp / name)

    log.info("extracting CUHK03 %s images from %s to %s (once)", subset, mat_path, out_dir)
    return build_dir_atomic(out_dir, build)


def _subset_dir(root: Path, subset: str, cache_dir: str | Path | None) -> Path:
    """The folder of one subset's images, extracting the .mat into the cache if that is all there is."""
    cached = extracted_dir(root, cache_dir) / subset
    for folder in (root / f"images_{subset}", root / EXTRACTED / subset, cached):
        if folder.is_dir():
            return folder
    mat_path = find_mat(root)
    if mat_path is None:
        raise layout_error(f"neither {root / f'images_{subset}'} nor cuhk-03.mat found under {root}", EXPECTED_TREE)
    return extract_mat(mat_path, subset, cached)


def person_id(pair: int, person: int) -> int:
    """This suite's pid of CUHK03's person ``person`` (1-based) of camera pair ``pair`` (1-5)."""
    if not 1 <= pair <= len(PEOPLE_PER_PAIR) or not 1 <= person <= PEOPLE_PER_PAIR[pair - 1]:
        raise ValueError(f"CUHK03 has no person {person} in camera pair {pair}")
    return PAIR_OFFSETS[pair - 1] + person - 1


def _record(path: Path) -> ImageRecord:
    pair, person, cam, image = (
        int(g)
        for g in parse_name(
            NAME, path, "{pair}_{pid:03d}_{cam}_{img:02d}.png, e.g. 1_001_1_01.png", EXPECTED_TREE
        ).groups()
    )
    if not 1 <= person <= PEOPLE_PER_PAIR[pair - 1] or not 1 <= image <= IMAGES_PER_PERSON:
        raise layout_error(
            f"{path}: person {person} or image {image} out of range; camera pair {pair} has "
            f"people 1-{PEOPLE_PER_PAIR[pair - 1]}, images 1-{IMAGES_PER_PERSON}",
            EXPECTED_TREE,
        )
    return ImageRecord(str(path), person_id(pair, person), 2 * (pair - 1) + (cam - 1))


def read_cuhk03(root: str | Path, subset: str = "both", cache_dir: str | Path | None = None) -> list[ImageRecord]:
    """Read CUHK03's labeled and/or detected boxes.

    Args:
        root: folder holding ``images_labeled/``/``images_detected/`` or ``cuhk-03.mat``.
        subset: ``labeled``, ``detected`` or ``both`` (the paper, after Xiao et al. 2016, uses both).
        cache_dir: where the ``.mat`` layout is extracted (default ``$SING_LIT_CACHE`` or ``./.data_cache``).

    Example:
        >>> records = read_cuhk03("data/cuhk03", subset="both")  # doctest: +SKIP
        >>> len({r.pid for r in records})  # doctest: +SKIP
        1467
    """
    if subset not in (*SUBSETS, "both"):
        raise DatasetError(f"CUHK03 subset={subset!r}; expected one of labeled, detected, both")
    root = require_dir(as_root(root), EXPECTED_TREE)
    subsets = SUBSETS if subset == "both" else (subset,)
    records = [_record(path) for s in subsets for path in image_files(_subset_dir(root, s, cache_dir))]
    return sorted_records(records, root, EXPECTED_TREE)
