"""A small CPU-friendly CNN backbone: the default for the built-in benchmark and tests."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from sing_lit.runtime.errors import ConfigError


def conv_bn_relu(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class SmallCNN(nn.Module):
    """Stages of (strided conv, conv), each halving the resolution.

    Args:
        widths: channels of each stage; the first stage keeps full resolution so that the
            fine cues SR restores (thin stripes, logos) are still seen by the first filters.

    Example:
        >>> SmallCNN(widths=(8, 16))(torch.rand(2, 3, 32, 16)).shape
        torch.Size([2, 16, 16, 8])
    """

    def __init__(self, widths: Sequence[int] = (32, 64, 128)) -> None:
        super().__init__()
        if not widths:
            raise ConfigError("SmallCNN needs at least one stage width, got widths=[]")
        layers: list[nn.Module] = [conv_bn_relu(3, widths[0])]
        c_in = widths[0]
        for i, c_out in enumerate(widths):
            layers += [conv_bn_relu(c_in, c_out, stride=1 if i == 0 else 2), conv_bn_relu(c_out, c_out)]
            c_in = c_out
        self.body = nn.Sequential(*layers)
        self.out_channels = c_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)
