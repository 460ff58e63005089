"""Reading and resizing person images, with errors that name the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from sing_lit.data.records import DatasetError
from sing_lit.runtime.errors import ConfigError

RESAMPLE = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "area": Image.Resampling.BOX,
    "lanczos": Image.Resampling.LANCZOS,
    "nearest": Image.Resampling.NEAREST,
}

MIN_SIDE = 4


def resample_filter(name: str) -> Image.Resampling:
    """PIL filter by name. PIL's bicubic/bilinear/lanczos down-sampling is antialiased."""
    if name not in RESAMPLE:
        raise ConfigError(f"unknown resampling filter {name!r}; allowed: {sorted(RESAMPLE)}")
    return RESAMPLE[name]


def load_rgb(path: str | Path) -> Image.Image:
    """Open an image fully (so truncation is caught here) and check it is a usable RGB crop."""
    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            out = img.convert("RGB") if mode == "P" else img.copy()
    except FileNotFoundError as err:
        raise DatasetError(f"image not found: {path}") from err
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DatasetError(f"unreadable or corrupt image: {path} ({err}); expected a decodable RGB image") from err
    if out.mode != "RGB":
        raise DatasetError(
            f"image {path} has mode {mode!r}; expected an RGB image (convert grayscale/RGBA crops to RGB first)"
        )
    if min(out.size) < MIN_SIDE:
        raise DatasetError(
            f"image {path} is {out.size[0]}x{out.size[1]} (w x h); expected at least {MIN_SIDE} px per side"
        )
    return out


def resize(img: Image.Image, size_hw: tuple[int, int], filter_name: str = "bicubic") -> Image.Image:
    h, w = size_hw
    if img.size == (w, h):
        return img
    return img.resize((w, h), resample_filter(filter_name))


def scaled_size(size_hw: tuple[int, int], ratio: float) -> tuple[int, int]:
    """Size of an image down-sampled by ``ratio`` (at least 2 px per side)."""
    return max(2, round(size_hw[0] * ratio)), max(2, round(size_hw[1] * ratio))


def to_uint8_tensor(img: Image.Image) -> torch.Tensor:
    """(3, H, W) uint8 tensor; kept as uint8 so whole datasets stay small in memory."""
    return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1).contiguous()
