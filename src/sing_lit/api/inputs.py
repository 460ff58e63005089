"""Turning what a caller has (paths, PIL images, tensors, arrays) into the network's input batch.

The policy is the training one (:class:`sing_lit.data.datamodule.SINGDataModule`): every image is
resized to ``data.input_size``, LR probes by the checkpoint's ``data.upscale`` filter and HR gallery
images by bicubic, kept as uint8 and divided by 255 when fed (the net standardises internally).
Each image's genuine area (before any resizing) is recorded for Eq. (7).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from sing_lit.data.images import load_rgb_converting, resize, to_uint8_tensor
from sing_lit.data.records import DatasetError

log = logging.getLogger("sing_lit.api")

ImageLike = str | Path | Image.Image | torch.Tensor | np.ndarray
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm", ".pnm")


@dataclass
class Prepared:
    """A batch at the input size and what Eq. (7) needs from the genuine images.

    Attributes:
        images: (N, 3, H, W) uint8 at the model's input size.
        areas: (N,) float64 pixel counts of the images as given (before resizing).
    """

    images: torch.Tensor
    areas: torch.Tensor


class Converter:
    """Converts images to RGB, logging each kind of conversion once (not once per image)."""

    def __init__(self) -> None:
        self.logged: set[str] = set()

    def note(self, mode: str, what: str) -> None:
        if mode != "RGB" and mode not in self.logged:
            self.logged.add(mode)
            log.warning("converting %s images to RGB (first one: %s)", mode, what)

    def to_pil(self, item: ImageLike) -> Image.Image:
        """One image as an 8-bit RGB PIL image; errors name the file or the item."""
        if isinstance(item, (str, Path)):
            img, mode = load_rgb_converting(item)
            self.note(mode, str(item))
            return img
        if isinstance(item, Image.Image):
            if item.mode in ("I", "F") or item.mode.startswith("I;16"):
                raise DatasetError(f"PIL image of mode {item.mode} has 16 or more bits per channel; expected 8-bit RGB")
            if item.mode != "RGB":
                self.note(item.mode, "a PIL image")
                item = item.convert("RGB")
            return item
        if isinstance(item, np.ndarray):
            item = torch.from_numpy(np.array(item))  # a copy: the array may be read-only (np.asarray of a PIL image)
            if item.ndim == 3 and item.shape[-1] in (1, 3, 4) and item.shape[0] not in (1, 3, 4):
                item = item.permute(2, 0, 1)  # an (H, W, C) array, the numpy/PIL layout
        if isinstance(item, torch.Tensor):
            return self._tensor_to_pil(item)
        raise TypeError(f"expected a path, a PIL image, a tensor or an array, got {type(item).__name__}")

    def _tensor_to_pil(self, x: torch.Tensor) -> Image.Image:
        if x.ndim == 2:
            x = x[None]
        if x.ndim != 3 or x.shape[0] not in (1, 3, 4):
            raise DatasetError(f"image tensor of shape {tuple(x.shape)}; expected (3, H, W), (1, H, W) or (H, W)")
        if x.dtype == torch.uint8:
            pass
        elif x.is_floating_point():
            # Training fed 8-bit images; a float image is quantised the same way first.
            x = x.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8)
        else:
            raise DatasetError(f"image tensor of dtype {x.dtype}; expected uint8 or float in [0, 1] "
                               "(convert 16-bit images to 8 bits first)")
        if x.shape[0] != 3:
            self.note("L" if x.shape[0] == 1 else "RGBA", f"a tensor of shape {tuple(x.shape)}")
            x = x[:1].expand(3, -1, -1) if x.shape[0] == 1 else x[:3]
        return Image.fromarray(x.cpu().permute(1, 2, 0).contiguous().numpy(), "RGB")


def as_list(images: ImageLike | Sequence[ImageLike]) -> list[ImageLike]:
    """One image or many; a 4-D tensor is a batch of images."""
    if isinstance(images, torch.Tensor) and images.ndim == 4:
        return list(images)
    if isinstance(images, (str, Path, Image.Image, torch.Tensor, np.ndarray)):
        return [images]
    return list(images)


def prepare(images: Iterable[ImageLike], input_size: tuple[int, int], filter_name: str,
            converter: Converter | None = None, workers: int = 2) -> Prepared:
    """Load (paths), convert to RGB, record genuine areas and resize with ``filter_name``."""
    converter = converter or Converter()
    size = (int(input_size[0]), int(input_size[1]))

    def one(item: ImageLike) -> tuple[torch.Tensor, float]:
        img = converter.to_pil(item)
        return to_uint8_tensor(resize(img, size, filter_name)), float(img.width * img.height)

    items = list(images)
    with ThreadPoolExecutor(max(1, workers)) as pool:
        out = list(pool.map(one, items))
    if not out:
        return Prepared(torch.zeros(0, 3, *size, dtype=torch.uint8), torch.zeros(0, dtype=torch.float64))
    return Prepared(torch.stack([t for t, _ in out]), torch.tensor([a for _, a in out], dtype=torch.float64))


def image_files(folder: str | Path, what: str) -> list[Path]:
    """Every image under ``folder`` (recursively, any common format), sorted by path."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{what} folder {folder} does not exist or is not a folder")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DatasetError(f"{what} folder {folder} holds no images (looked recursively for "
                           f"{', '.join(IMAGE_SUFFIXES)})")
    return files
