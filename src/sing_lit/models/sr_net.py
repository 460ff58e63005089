"""SR sub-network F_sr: an SRCNN (Dong et al. 2016), the paper's Fig. 3(d)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from sing_lit.runtime.errors import ConfigError


class SRNet(nn.Module):
    """SRCNN: conv-ReLU (patch extraction), conv-ReLU (non-linear mapping), reconstruction conv.

    The input is the LR image already bicubic-upscaled to the model input size, as in SRCNN
    and the paper ("we upscale the LR images ... by bicubic interpolation"), so input and
    output have the same size ("same" padding).

    Args:
        channels: filters of the first two convs; SRCNN uses (64, 32).
        kernel_sizes: kernel sizes of the three convs; SRCNN's 9-5-5 by default.
        residual: predict a correction added to the bicubic input instead of the image itself.
            At initialisation the residual net is then within ~1e-2 of the bicubic identity, which
            converges in a fraction of the steps on a CPU budget. ``False`` is plain SRCNN.

    Example:
        >>> sr = SRNet(channels=(8, 4))
        >>> sr(torch.rand(2, 3, 32, 16)).shape
        torch.Size([2, 3, 32, 16])
    """

    def __init__(
        self,
        channels: Sequence[int] = (64, 32),
        kernel_sizes: Sequence[int] = (9, 5, 5),
        residual: bool = True,
    ) -> None:
        super().__init__()
        if len(channels) != 2 or len(kernel_sizes) != 3:
            raise ConfigError(
                f"SRNet needs 2 channel counts and 3 kernel sizes (SRCNN's conv-conv-conv), "
                f"got channels={list(channels)}, kernel_sizes={list(kernel_sizes)}"
            )
        if any(k % 2 == 0 for k in kernel_sizes):
            raise ConfigError(f"SRNet kernel sizes must be odd to keep the size, got {list(kernel_sizes)}")
        c1, c2 = channels
        k1, k2, k3 = kernel_sizes
        self.residual = residual
        self.body = nn.Sequential(
            nn.Conv2d(3, c1, k1, padding=k1 // 2),
            nn.ReLU(inplace=True),
            nn.Conv2d(c1, c2, k2, padding=k2 // 2),
            nn.ReLU(inplace=True),
            nn.Conv2d(c2, 3, k3, padding=k3 // 2),
        )
        if residual:
            # A near-zero reconstruction layer makes the untrained net (almost exactly) bicubic
            # while still passing gradients to the first two layers from the first step.
            nn.init.normal_(self.body[-1].weight, std=1e-3)
            nn.init.zeros_(self.body[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return x + out if self.residual else out
