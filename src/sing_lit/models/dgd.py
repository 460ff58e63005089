"""The DGD-style inception network (Xiao et al. 2016), the paper's re-id backbone.

DGD ("Learning deep feature representations with domain guided dropout", CVPR 2016,
Table 1): three 3x3 convs of 32 filters, a 2x2 max-pool, then three pairs of BN-Inception
modules (4a/4b, 5a/5b, 6a/6b) of 256/384, 512/768, 1024/1536 output channels, where the
second module of each pair halves the resolution. Global pooling and the FC layers live
in :class:`sing_lit.models.reid_net.ReIDNet`.
"""

from __future__ import annotations

import torch
from torch import nn

from sing_lit.models.small_cnn import conv_bn_relu
from sing_lit.runtime.errors import ConfigError


def conv1x1(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class Inception(nn.Module):
    """BN-Inception module: 1x1, 1x1-3x3, 1x1-3x3-3x3 and pool branches, concatenated.

    A strided module (``stride=2``) drops the 1x1 branch and passes the max-pooled input
    through, as in BN-Inception's reduction modules.
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.stride = stride
        if stride == 1:
            b = c_out // 4
            self.branches = nn.ModuleList(
                [
                    conv1x1(c_in, b),
                    nn.Sequential(conv1x1(c_in, b), conv_bn_relu(b, b)),
                    nn.Sequential(conv1x1(c_in, b), conv_bn_relu(b, b), conv_bn_relu(b, b)),
                    nn.Sequential(nn.AvgPool2d(3, 1, 1), conv1x1(c_in, c_out - 3 * b)),
                ]
            )
        else:
            if c_out <= c_in:
                raise ValueError(f"a strided Inception module must widen its input, got {c_in} -> {c_out}")
            b = (c_out - c_in) // 2
            self.branches = nn.ModuleList(
                [
                    nn.Sequential(conv1x1(c_in, b), conv_bn_relu(b, b, stride=2)),
                    nn.Sequential(conv1x1(c_in, c_out - c_in - b), conv_bn_relu(c_out - c_in - b, c_out - c_in - b),
                                  conv_bn_relu(c_out - c_in - b, c_out - c_in - b, stride=2)),
                    nn.MaxPool2d(3, 2, 1),
                ]
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)


class DGDNet(nn.Module):
    """DGD trunk. ``width`` scales every channel count (1.0 is the published network).

    Example:
        >>> DGDNet(width=0.125)(torch.rand(1, 3, 64, 32)).shape
        torch.Size([1, 192, 4, 2])
    """

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        if width <= 0:
            raise ConfigError(f"DGDNet width must be > 0, got {width}")

        def c(n: int) -> int:
            return max(8, int(round(n * width / 4)) * 4)

        stem = c(32)
        self.stem = nn.Sequential(
            conv_bn_relu(3, stem), conv_bn_relu(stem, stem), conv_bn_relu(stem, stem), nn.MaxPool2d(2, 2)
        )
        widths = [c(256), c(384), c(512), c(768), c(1024), c(1536)]
        modules: list[nn.Module] = []
        c_in = stem
        for i, c_out in enumerate(widths):
            modules.append(Inception(c_in, c_out, stride=2 if i % 2 else 1))
            c_in = c_out
        self.inceptions = nn.Sequential(*modules)
        self.out_channels = c_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inceptions(self.stem(x))
