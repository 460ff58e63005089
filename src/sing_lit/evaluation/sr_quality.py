"""How close a super-resolved image is to its HR original: PSNR (the paper's Fig. 5 and ``val/psnr``)."""

from __future__ import annotations

import torch
from torch import Tensor


def psnr(x: Tensor, ref: Tensor) -> Tensor:
    """PSNR in dB of each image, ``10 log10(1 / MSE)``, for float images in [0, 1].

    Args:
        x, ref: (..., C, H, W) images of the same shape.

    Returns:
        (...) per-image PSNR (float32, like the inputs' math); ``inf`` where ``x`` equals ``ref``.
    """
    if x.shape != ref.shape or x.ndim < 3:
        raise ValueError(f"psnr needs two (..., C, H, W) images of one shape, got {tuple(x.shape)} and "
                         f"{tuple(ref.shape)}")
    mse = ((x.float() - ref.float()) ** 2).flatten(-3).mean(-1)
    return 10 * torch.log10(1.0 / mse)
