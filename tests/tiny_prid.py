"""A tiny dataset in PRID2011's single-shot layout, and the bad images users really have."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

# data=prid2011 on the tiny layout: one trial drawn from the protocol, small images, a tiny net.
PRID_TINY = ["data=prid2011", "data.split_file=null", "data.protocol.trials=1", "data.input_size=[32,16]",
             "data.batch_size=4", "trainer.max_epochs=1", "+trainer.limit_train_batches=1",
             "model.net.backbone.widths=[8,16]", "model.net.sr_net.channels=[8,4]", "logger=[]",
             "~callbacks.pictures"]


def write_tiny_prid(root: Path, both: int = 8, b_only: int = 2, size: tuple[int, int] = (16, 32)) -> Path:
    """``single_shot/cam_a|cam_b/person_NNNN.png``: ``both`` people in both cameras, ``b_only`` in B only."""
    rng = np.random.default_rng(0)
    for cam, people in (("cam_a", range(1, both + 1)), ("cam_b", range(1, both + b_only + 1))):
        folder = root / "single_shot" / cam
        folder.mkdir(parents=True, exist_ok=True)
        for pid in people:
            pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"person_{pid:04d}.png")
    return root


def corrupt_jpeg_bytes() -> bytes:
    """A JPEG cut off half-way (what an interrupted download leaves)."""
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (32, 16, 3), dtype=np.uint8)).save(buffer, "JPEG")
    data = buffer.getvalue()
    return data[: len(data) // 2]


def write_bad_image(path: Path, kind: str) -> None:
    """Replace ``path`` with a grayscale, RGBA, 1x1 or truncated-JPEG image."""
    if kind == "grayscale":
        Image.new("L", (16, 32), 128).save(path)
    elif kind == "rgba":
        Image.new("RGBA", (16, 32), (1, 2, 3, 128)).save(path)
    elif kind == "1x1":
        Image.new("RGB", (1, 1), (1, 2, 3)).save(path)
    elif kind == "corrupt_jpeg":
        path.write_bytes(corrupt_jpeg_bytes())
    else:
        raise ValueError(kind)
