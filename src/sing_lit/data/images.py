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


def _check_size(img: Image.Image, path: str | Path) -> Image.Image:
    if min(img.size) < MIN_SIDE:
        raise DatasetError(
            f"image {path} is {img.size[0]}x{img.size[1]} (w x h); expected at least {MIN_SIDE} px per side"
        )
    return img


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
    return _check_size(out, path)


# Modes that convert to RGB without losing what re-id needs (the conversion is the caller's to log).
CONVERTIBLE = ("L", "LA", "La", "RGBA", "RGBa", "RGBX", "PA", "CMYK", "YCbCr", "LAB", "HSV", "1")
HIGH_BIT_DEPTH = ("I", "F", "I;16", "I;16B", "I;16L", "I;16N")


def load_rgb_converting(path: str | Path) -> tuple[Image.Image, str]:
    """Like :func:`load_rgb`, but grayscale, RGBA, CMYK, ... images are converted to RGB.

    Returns the RGB image and the file's original mode (``"RGB"`` when nothing was converted).
    16-bit and float images are refused: squeezing them to 8 bits needs a choice of range only
    their owner can make.
    """
    try:
        with Image.open(path) as img:
            mode = img.mode
            if mode in HIGH_BIT_DEPTH or any(";16" in str(t.args) for t in img.tile or ()):
                raise DatasetError(f"image {path} has {mode} pixels with 16 or more bits per channel; "
                                   "expected an 8-bit image (convert it to 8-bit RGB first)")
            img.load()
            out = img.convert("RGB") if mode in CONVERTIBLE or mode == "P" else img.copy()
    except FileNotFoundError as err:
        raise DatasetError(f"image not found: {path}") from err
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        if isinstance(err, DatasetError):
            raise
        raise DatasetError(f"unreadable or corrupt image: {path} ({err}); expected a decodable image") from err
    if out.mode != "RGB":
        raise DatasetError(f"image {path} has mode {mode!r}, which does not convert to RGB; expected an RGB image")
    return _check_size(out, path), mode


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


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff", ".webp")


def folder_images(folder: str | Path) -> list[Path]:
    """Every image file under ``folder`` (recursively), sorted; one error if there is none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"model.sr_init_images={folder} is not a folder; expected a folder of images")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise DatasetError(f"model.sr_init_images={folder} holds no image ({', '.join(IMAGE_SUFFIXES)})")
    return files
