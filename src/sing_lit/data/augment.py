"""Training augmentations of the strong re-id recipe (Luo et al. 2019), on uint8 (3, H, W) tensors.

Every draw comes from a generator seeded by (seed, item key), never from the global RNG, so an
item's augmentation does not depend on when or where it loads (see :mod:`sing_lit.data.resumable`).
An HR image and its synthetic LR get the same crop and the same erased box, so the SR target of
Eq. (2) stays aligned with its input.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

# ImageNet mean colour, the fill of Zhong et al.'s random erasing as Luo et al. use it
ERASE_FILL = torch.tensor([0.485, 0.456, 0.406]).mul(255).round().to(torch.uint8).view(3, 1, 1)


def crop_box(rng: np.random.Generator, pad: int) -> tuple[int, int]:
    """Offsets (dy, dx) in [0, 2 * pad] of an H x W crop out of the image zero-padded by ``pad``."""
    return int(rng.integers(0, 2 * pad + 1)), int(rng.integers(0, 2 * pad + 1))


def pad_crop(img: torch.Tensor, pad: int, offset: tuple[int, int]) -> torch.Tensor:
    """Zero-pad by ``pad`` on every side, then crop the original size at ``offset``."""
    h, w = img.shape[-2:]
    dy, dx = offset
    return F.pad(img, (pad, pad, pad, pad))[..., dy:dy + h, dx:dx + w]


def erase_box(rng: np.random.Generator, size_hw: tuple[int, int], p: float, area=(0.02, 0.4),
              aspect=(0.3, 3.33)) -> tuple[int, int, int, int] | None:
    """With probability ``p``, a box (y, x, h, w) of ``area`` of the image and aspect in ``aspect``."""
    if rng.random() >= p:
        return None
    height, width = size_hw
    for _ in range(100):
        target = rng.uniform(*area) * height * width
        r = math.exp(rng.uniform(math.log(aspect[0]), math.log(aspect[1])))
        h, w = int(round(math.sqrt(target * r))), int(round(math.sqrt(target / r)))
        if 0 < h < height and 0 < w < width:
            return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w
    return None


def erase(img: torch.Tensor, box: tuple[int, int, int, int] | None) -> torch.Tensor:
    if box is None:
        return img
    y, x, h, w = box
    out = img.clone()
    out[:, y:y + h, x:x + w] = ERASE_FILL
    return out


# ITU-R 601 luma weights, as torchvision's rgb_to_grayscale
LUMA = torch.tensor([0.2989, 0.587, 0.114]).view(3, 1, 1)


def color_factors(rng: np.random.Generator, strength: float) -> tuple[float, float, float]:
    """Brightness, contrast and saturation factors, each uniform in [1 - strength, 1 + strength]."""
    return tuple(float(f) for f in rng.uniform(1 - strength, 1 + strength, size=3))


def brightness_mean(img: torch.Tensor, brightness: float) -> float:
    """The grey level that contrast blends with: the mean luma of the brightness-scaled image."""
    return float(((img.float() * brightness).clamp(0, 255) * LUMA).sum(0).mean())


def color_jitter(img: torch.Tensor, factors: tuple[float, float, float], mean: float | None = None) -> torch.Tensor:
    """torchvision's ColorJitter without hue, in its order: brightness (scale), contrast (blend with the
    mean luma ``mean``), saturation (blend with the image's own luma), clipped after each step; uint8 in,
    uint8 out (rounded). Pass ``mean`` to give every view of one image the same transform."""
    b, c, s = factors
    x = (img.float() * b).clamp(0, 255)
    m = float((x * LUMA).sum(0).mean()) if mean is None else mean  # brightness_mean of img, from x
    x = ((x - m) * c + m).clamp(0, 255)
    grey = (x * LUMA).sum(0, keepdim=True)
    x = ((x - grey) * s + grey).clamp(0, 255)
    return x.round().to(torch.uint8)


def augment_views(views: list[torch.Tensor | None], rng: np.random.Generator, pad: int,
                  erase_p: float, color: float = 0.0) -> list[torch.Tensor | None]:
    """One crop, one erased box and one colour jitter, drawn once, applied to every view of one image
    (None passes). The colour is applied first, so the erased box keeps its fill."""
    present = [v for v in views if v is not None]
    if not present:
        return views
    offset = crop_box(rng, pad) if pad > 0 else None
    box = erase_box(rng, tuple(present[0].shape[-2:]), erase_p) if erase_p > 0 else None
    factors = color_factors(rng, color) if color > 0 else None
    mean = brightness_mean(present[0], factors[0]) if factors else None
    out = []
    for v in views:
        if v is not None and factors is not None:
            v = color_jitter(v, factors, mean)
        if v is not None and offset is not None:
            v = pad_crop(v, pad, offset)
        out.append(erase(v, box) if v is not None else None)
    return out
