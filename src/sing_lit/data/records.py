"""The one currency every dataset reader returns: a list of `ImageRecord`s.

Readers only parse a download's layout; they never decide which camera is
low-resolution for MLR construction (that is `sing_lit.data.mlr`), except for
datasets whose LR camera is *genuinely* low-resolution (CAVIAR, GRID probe).
"""

from __future__ import annotations

from dataclasses import dataclass

from sing_lit.runtime.errors import UserError


class DatasetError(UserError, ValueError):
    """A dataset on disk is missing, malformed or inconsistent.

    The message always names the offending path and what was expected, so a
    user can act on it without reading a traceback.
    """


@dataclass(frozen=True, order=True)
class ImageRecord:
    """One image of one person.

    Attributes:
        path: absolute path of the image file as downloaded (or as cached by MLR construction).
        pid: person identity, an int unique within the dataset (not yet relabelled to 0..C-1).
        cam: camera index, an int unique within the dataset. For CUHK03 it is
            ``2 * (pair - 1) + (cam - 1)`` so ``cam // 2`` is the camera pair.
        genuine_lr: True when the image comes from a genuinely low-resolution camera
            (CAVIAR camera 2, a manifest's LR flag, GRID's probe view). False otherwise.
        subset: the download's own subset the image belongs to, where it has one: ``train``, ``query``
            or ``gallery`` for the Market-style folders (``bounding_box_train``, ``query``,
            ``bounding_box_test``), which the query/gallery protocol uses; ``""`` otherwise.
    """

    path: str
    pid: int
    cam: int
    genuine_lr: bool = False
    subset: str = ""
