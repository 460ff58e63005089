"""Check a dataset download and print what it holds.

``python -m sing_lit.inspect data=prid2011 data.root=/data/prid_2011``

Instantiates ``cfg.data.reader`` (a partial ``callable(root) -> list[ImageRecord]``), reads the
layout, decodes every image (a truncated file fails here, not in the middle of training) and
prints `sing_lit.data.stats.describe`. Any problem exits with status 2 and one ``error:``
message that names the path and, for a dataset problem, the expected layout; no traceback.

Configs are ``conf/inspect.yaml`` and ``conf/data/<name>.yaml`` (found relative to the package,
``src/sing_lit/../../conf``); a data config kept elsewhere is found with Hydra's own
``--config-dir=/my/conf`` (a folder holding ``data/<name>.yaml``).
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import hydra
from omegaconf import DictConfig
from omegaconf.errors import MissingMandatoryValue

from sing_lit.data.images import load_rgb, scaled_size
from sing_lit.data.mlr import draw_ratios, lr_view
from sing_lit.data.readers import READERS, detect_layout
from sing_lit.data.readers._common import layout_error
from sing_lit.data.records import DatasetError, ImageRecord
from sing_lit.data.stats import HEIGHT_BINS, describe, format_description, height_bin, image_sizes
from sing_lit.runtime.cli import CONFIG_DIR, run_guarded


def expected_tree(reader: Callable) -> str:
    """The ``EXPECTED_TREE`` of the module a reader (or a partial of one) lives in, or ``""``."""
    module = sys.modules.get(getattr(getattr(reader, "func", reader), "__module__", ""))
    return getattr(module, "EXPECTED_TREE", "")


def _decode_error(path: str) -> str | None:
    """What training would say about this image (a full decode: verify() misses truncated data;
    then the mode and size checks of :func:`sing_lit.data.images.load_rgb`), or None."""
    try:
        load_rgb(path)
    except DatasetError as err:
        return str(err)
    return None


def verify_images(records: Sequence[ImageRecord], tree: str = "", workers: int = 4) -> None:
    """Decode every image; raise a `DatasetError` naming the first bad file (and how many are bad)."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        errors = list(pool.map(_decode_error, [r.path for r in records]))
    bad = [(r.path, e) for r, e in zip(records, errors, strict=True) if e is not None]
    if bad:
        _, message = bad[0]  # names the file
        if len(bad) > 1:
            message += f" ({len(bad)} bad images in all)"
        raise layout_error(message, tree) if tree else DatasetError(message)


def _layout_hint(root: str, name: str) -> str:
    """Which reader would read ``root``, when that is not the one configured."""
    if not Path(root).exists():
        return ""
    found = detect_layout(root)
    if not found:
        return f"\nhint: no known layout matches {root} (readers: {', '.join(READERS)})"
    if name not in found:
        return f"\nhint: {root} looks like the layout of {', '.join(found)}: try data={found[0]}"
    return ""


def inspect_dataset(cfg: DictConfig) -> str:
    """Read, verify and describe ``cfg.data``; return the report to print."""
    reader = hydra.utils.instantiate(cfg.data.reader)
    tree = expected_tree(reader)
    try:
        root = cfg.data.root
    except MissingMandatoryValue as err:
        raise layout_error(
            f"data.root is not set: pass data.root=<path to the {cfg.data.name} download>",
            tree or "(see the reader's docstring)",
        ) from err
    try:
        records = reader(root)
    except DatasetError as err:
        raise DatasetError(f"{err}{_layout_hint(root, cfg.data.name)}") from err
    if cfg.verify:
        verify_images(records, tree, cfg.workers)
    lines = [f"dataset: {cfg.data.name}", f"root: {Path(root).expanduser().absolute()}"]
    if cfg.verify:
        lines.append(f"decoded: all {len(records)} images")
    lines.append(format_description(describe(records, cfg.workers)))
    mlr = cfg.data.get("mlr")
    if mlr is not None and str(mlr.lr_camera) != "genuine":
        lines.append(mlr_view(records, mlr, cfg.workers))
    return "\n".join(lines)


def mlr_view(records: Sequence[ImageRecord], mlr: DictConfig, workers: int) -> str:
    """The resolution histogram after MLR construction, computed in memory (nothing is written)."""
    flags = lr_view(records, mlr.lr_camera, int(mlr.seed))
    lr_idx = [i for i, f in enumerate(flags) if f]
    ratios = draw_ratios(len(lr_idx), list(mlr.ratios), int(mlr.seed))
    sizes = image_sizes(records, workers)
    heights = {i: scaled_size((sizes[i][1], sizes[i][0]), m)[0] for i, m in zip(lr_idx, ratios)}
    lr_hist = Counter(height_bin(h) for h in heights.values())
    hr_hist = Counter(height_bin(sizes[i][1]) for i in range(len(records)) if i not in heights)
    out = [f"MLR view (data.mlr.lr_camera={mlr.lr_camera}, ratios {[round(float(m), 4) for m in mlr.ratios]}, "
           f"seed {mlr.seed}, filter {mlr.resample}): {len(lr_idx)} LR images, {len(records) - len(lr_idx)} HR",
           "height (px)    LR      HR"]
    out += [f"{height_bin(low):>11}  {lr_hist[height_bin(low)]:>6}  {hr_hist[height_bin(low)]:>6}" for low in HEIGHT_BINS]
    return "\n".join(out)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="inspect")
def main(cfg: DictConfig) -> None:
    print(run_guarded(lambda: inspect_dataset(cfg)))


if __name__ == "__main__":
    main()
