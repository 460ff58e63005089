"""A cheaper SR sub-network F_sr: FSRCNN (Dong et al. 2016b) working at the LR image's own resolution.

SRCNN runs every layer on the bicubic-upscaled image. FSRCNN runs them at the LR size and
up-samples only at the end, here with a sub-pixel convolution (ESPCN, Shi et al. 2016) instead of
FSRCNN's deconvolution. It keeps :class:`sing_lit.models.sr_net.SRNet`'s interface, so SINGNet and
Eq. 2-5 are unchanged: ``sr_net(x)`` takes the LR batch bicubic-upscaled to the input size and
returns the same size. Inside, the input is brought back to the LR grid (the mean of each
``f x f`` block, ``f = round(1 / anchor.ratio)``; the border is padded by replication to a multiple
of ``f``), mapped there, and up-sampled by ``f``: sub-pixel ``(i, j)`` of an LR cell is exactly the
input pixel it came from, then cropped to the input size.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def upscale_factor(ratio: float) -> int:
    """The integer up-scaling factor of an anchor ratio m: 1/2 -> 2, 1/3 -> 3, 1/4 -> 4."""
    if not 0 < float(ratio) < 1:
        raise ValueError(f"FSRCNN needs the anchor ratio m in (0, 1) (anchor.ratio), got {ratio}")
    return max(2, round(1 / float(ratio)))


class FSRCNN(nn.Module):
    """FSRCNN: feature extraction, shrinking, mapping, expanding at LR size; sub-pixel up-sampling.

    Args:
        ratio: the anchor's down-sampling ratio m (``${anchor.ratio}``); the net works on a grid
            ``round(1/m)`` times coarser than its input and output.
        d, s, m: FSRCNN's feature width, shrunk width and number of mapping layers (56, 12, 4).
        residual: add the output to the bicubic input, with a near-zero last layer, so that the
            untrained net is (almost) bicubic, as :class:`~sing_lit.models.sr_net.SRNet` does.

    Example:
        >>> sr = FSRCNN(ratio=1 / 3, d=8, s=4, m=1)
        >>> sr(torch.rand(2, 3, 160, 72)).shape
        torch.Size([2, 3, 160, 72])
    """

    def __init__(self, ratio: float, d: int = 56, s: int = 12, m: int = 4, residual: bool = True) -> None:
        super().__init__()
        if min(d, s) < 1 or m < 0:
            raise ValueError(f"FSRCNN needs d, s >= 1 and m >= 0, got d={d}, s={s}, m={m}")
        self.scale = upscale_factor(ratio)
        self.residual = residual
        layers: list[nn.Module] = [nn.Conv2d(3, d, 5, padding=2), nn.PReLU(d), nn.Conv2d(d, s, 1), nn.PReLU(s)]
        for _ in range(m):
            layers += [nn.Conv2d(s, s, 3, padding=1), nn.PReLU(s)]
        layers += [nn.Conv2d(s, d, 1), nn.PReLU(d)]
        self.body = nn.Sequential(*layers)
        self.upsample = nn.Sequential(nn.Conv2d(d, 3 * self.scale**2, 3, padding=1), nn.PixelShuffle(self.scale))
        if residual:
            nn.init.normal_(self.upsample[0].weight, std=1e-3)
            nn.init.zeros_(self.upsample[0].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        f = self.scale
        padded = F.pad(x, (0, math.ceil(w / f) * f - w, 0, math.ceil(h / f) * f - h), mode="replicate")
        out = self.upsample(self.body(F.avg_pool2d(padded, f)))[..., :h, :w]
        return x + out if self.residual else out
