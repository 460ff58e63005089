"""The SING CNN: SR sub-network followed by the re-id sub-network (Fig. 3)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from sing_lit.models.reid_net import ReIDNet
from sing_lit.models.sr_net import SRNet


class SINGNet(nn.Module):
    """Joint SR + re-id network.

    Deployment follows the paper: an HR image goes through F_fe; an LR image (bicubic
    upscaled to the input size) goes through F_sr, then F_fe. With ``sr_net=None`` the
    network is the "bicubic-only" baseline: LR images reach F_fe bicubic-upscaled.

    Matching policy (stored with the net, so every consumer of a checkpoint matches the same way):
    ``flip_test`` averages the features of an image and its mirror image; ``normalize`` L2-normalises
    the features, so that L2 distances rank as cosine distances do (d^2 = 2 - 2 cos).
    """

    def __init__(self, reid_net: ReIDNet, sr_net: SRNet | None, flip_test: bool = False,
                 normalize: bool = False) -> None:
        super().__init__()
        self.sr_net = sr_net
        self.reid_net = reid_net
        self.flip_test, self.normalize = bool(flip_test), bool(normalize)

    def _match(self, fe, x: torch.Tensor) -> torch.Tensor:
        f = fe(x)
        if self.flip_test:
            f = (f + fe(x.flip(-1))) / 2
        return torch.nn.functional.normalize(f, dim=1) if self.normalize else f

    def super_resolve(self, x_lr: torch.Tensor) -> torch.Tensor:
        """F_sr on a bicubic-upscaled LR batch (identity for the bicubic-only baseline)."""
        return x_lr if self.sr_net is None else self.sr_net(x_lr)

    def hr_features(self, x_hr: torch.Tensor) -> torch.Tensor:
        """f^h = F_fe(x^h)."""
        return self._match(self.reid_net.features, x_hr)

    def lr_features(self, x_lr: torch.Tensor) -> torch.Tensor:
        """f^l = F_fe(F_sr(x^l))."""
        return self._match(lambda x: self.reid_net.features(self.super_resolve(x)), x_lr)


def build_sing_net(
    num_classes: int,
    backbone: Callable[[], nn.Module],
    sr_net: Callable[[], SRNet] | None = None,
    feat_dim: int | None = 256,
    dropout: float = 0.0,
    neck: str = "fc",
    neck_feat: str = "after",
    flip_test: bool = False,
    normalize: bool = False,
) -> SINGNet:
    """Build a SINGNet once the number of training identities is known.

    Hydra gives ``backbone`` and ``sr_net`` as ``_partial_`` constructors, because the
    classifier size comes from the data, not from the config.
    """
    reid_net = ReIDNet(backbone(), num_classes=num_classes, feat_dim=feat_dim, dropout=dropout, neck=neck,
                       neck_feat=neck_feat)
    return SINGNet(reid_net=reid_net, sr_net=None if sr_net is None else sr_net(), flip_test=flip_test,
                   normalize=normalize)
