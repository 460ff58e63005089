"""torchvision ResNet-50 trunk, with ImageNet weights only when asked for and loadable."""

from __future__ import annotations

import socket

import torch
import torchvision
from torch import nn

from sing_lit.runtime.errors import ConfigError, UserError


class PretrainedWeightsError(UserError):
    """ImageNet weights were asked for but cannot be loaded (offline, no cached file)."""


def load_imagenet_weights(timeout_s: float = 20.0) -> dict[str, torch.Tensor]:
    """Return torchvision's ResNet-50 IMAGENET1K_V2 state dict from the torch hub cache or the web.

    Raises:
        PretrainedWeightsError: with the file name and the cache folder to place it in,
            instead of hanging on a network without a route.
    """
    weights = torchvision.models.ResNet50_Weights.IMAGENET1K_V2
    cache_dir = f"{torch.hub.get_dir()}/checkpoints"
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout_s)
    try:
        return weights.get_state_dict(progress=False, check_hash=True)
    except Exception as err:  # noqa: BLE001 - any download failure means the same to the user
        file_name = weights.url.rsplit("/", 1)[-1]
        raise PretrainedWeightsError(
            f"cannot load ImageNet weights for resnet50 ({type(err).__name__}: {err}). "
            f"Either set model.backbone.pretrained=false, or download {weights.url} on a machine with "
            f"internet and place it at {cache_dir}/{file_name}"
        ) from err
    finally:
        socket.setdefaulttimeout(previous)


class ResNet50(nn.Module):
    """ResNet-50 up to its last stage (2048 channels); the last stride is 1 by default,
    the usual re-id choice, which doubles the final map on small person crops."""

    def __init__(self, pretrained: bool = False, last_stride: int = 1) -> None:
        super().__init__()
        if last_stride not in (1, 2):
            raise ConfigError(f"ResNet50 last_stride must be 1 or 2, got {last_stride}")
        net = torchvision.models.resnet50(weights=None)
        if pretrained:
            net.load_state_dict(load_imagenet_weights())
        if last_stride == 1:
            net.layer4[0].conv2.stride = (1, 1)
            net.layer4[0].downsample[0].stride = (1, 1)
        self.body = nn.Sequential(*list(net.children())[:-2])
        self.out_channels = 2048

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)
