"""Checkpoint files that are never half-written, never hold NaN weights, and fail with one clear line.

Lightning's ``TorchCheckpointIO`` writes through an fsspec transaction whose temp file lives in
the system temp dir; when that is another file system the final move is a copy, which a crash
can leave half-written. Here the checkpoint goes to a temp file next to its target, is fsynced
and renamed over it (:func:`sing_lit.runtime.atomic.atomic_path`).
"""

from __future__ import annotations

import errno
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from sing_lit.runtime.anchors import first_sentence
from sing_lit.runtime.atomic import atomic_path
from sing_lit.runtime.cli import UserError


class CheckpointSpaceError(UserError):
    """No space left on the device that holds the checkpoint dir."""


def non_finite_weights(state_dict: dict[str, Any]) -> list[str]:
    """Names of floating-point tensors that hold a NaN or an infinity."""
    return [k for k, v in state_dict.items()
            if isinstance(v, torch.Tensor) and v.is_floating_point() and not bool(torch.isfinite(v).all())]


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` with atomic local writes, a NaN-weight refusal and clear errors."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None) -> None:
        if "://" in str(path):  # remote storage: Lightning's own transaction
            return super().save_checkpoint(checkpoint, path, storage_options)
        path = Path(path)
        bad = non_finite_weights(checkpoint.get("state_dict", {}))
        if bad:
            raise UserError(f"refusing to save checkpoint {path}: non-finite weights in {', '.join(bad[:3])}"
                            f"{' ...' if len(bad) > 3 else ''}; the previous checkpoint is kept")
        try:
            with atomic_path(path) as tmp:
                with open(tmp, "wb") as f:
                    torch.save(checkpoint, f)
                    f.flush()
                    os.fsync(f.fileno())
        except OSError as err:
            if err.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):  # no EDQUOT on Windows
                raise CheckpointSpaceError(f"no space left on the device for checkpoint {path.name} in {path.parent} "
                                           f"({err.strerror}); free some space there (the previous checkpoint is "
                                           "intact) and resume with ckpt_path=last") from err
            raise

    def load_checkpoint(self, path: str | Path, map_location: Any | None = None,
                        weights_only: bool | None = None) -> dict[str, Any]:
        if "://" not in str(path) and not Path(path).is_file():
            raise UserError(f"checkpoint {path} does not exist")
        try:
            return super().load_checkpoint(path, map_location=map_location, weights_only=weights_only)
        except (EOFError, pickle.UnpicklingError, zipfile.BadZipFile) as err:
            raise UserError(f"checkpoint {path} is corrupt or truncated ({type(err).__name__}: {first_sentence(err)}); "
                            "use another checkpoint or train again") from err
        except RuntimeError as err:
            if "zip" not in str(err).lower() and "archive" not in str(err).lower():
                raise
            raise UserError(f"checkpoint {path} is corrupt or truncated ({first_sentence(err)}); "
                            "use another checkpoint or train again") from err
