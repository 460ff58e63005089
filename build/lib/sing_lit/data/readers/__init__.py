"""Dataset readers: each parses one download layout into a sorted ``list[ImageRecord]``.

``READERS`` maps a dataset name to its reader (a plain dict, so every name is greppable); a data
config points at one with ``reader: {_target_: sing_lit.data.readers.<name>.read_<name>,
_partial_: true}``. Each reader module also has ``EXPECTED_TREE`` (printed in its errors) and
``looks_like(root)``, which ``detect_layout`` uses to suggest the right reader.

Example:
    >>> from sing_lit.data.readers import READERS, detect_layout
    >>> records = READERS["prid2011"]("/data/prid_2011")  # doctest: +SKIP
    >>> detect_layout("/data/prid_2011")  # doctest: +SKIP
    ['prid2011']
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sing_lit.data.readers import caviar, cuhk03, dukemtmc, grid, manifest, market1501, prid2011, sysu, viper
from sing_lit.data.records import ImageRecord

READERS: dict[str, Callable[[str | Path], list[ImageRecord]]] = {
    "viper": viper.read_viper,
    "caviar": caviar.read_caviar,
    "cuhk03": cuhk03.read_cuhk03,
    "sysu": sysu.read_sysu,
    "market1501": market1501.read_market1501,
    "dukemtmc": dukemtmc.read_dukemtmc,
    "prid2011": prid2011.read_prid2011,
    "grid": grid.read_grid,
    "manifest": manifest.read_manifest,
}

LAYOUT_CHECKS: dict[str, Callable[[str | Path], bool]] = {
    "viper": viper.looks_like,
    "caviar": caviar.looks_like,
    "cuhk03": cuhk03.looks_like,
    "sysu": sysu.looks_like,
    "market1501": market1501.looks_like,
    "dukemtmc": dukemtmc.looks_like,
    "prid2011": prid2011.looks_like,
    "grid": grid.looks_like,
    "manifest": manifest.looks_like,
}


def detect_layout(root: str | Path) -> list[str]:
    """Names of the readers whose layout ``root`` looks like (cheap checks, for error messages)."""
    matches = []
    for name, looks_like in LAYOUT_CHECKS.items():
        try:
            if looks_like(root):
                matches.append(name)
        except OSError:  # unreadable folders simply do not match
            continue
    return matches
