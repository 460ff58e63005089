"""Re-id sub-network: feature extractor F_fe plus identity classifier F_c (Fig. 3(e))."""

from __future__ import annotations

import torch
from torch import nn

from sing_lit.runtime.errors import ConfigError


class ReIDNet(nn.Module):
    """Backbone, global pooling, the penultimate FC (the re-id feature) and the last FC (F_c).

    The feature is batch-normalised after the FC, so L2 matching on it is well scaled
    across identities and anchors; the classifier reads the same feature, as in the paper
    ("the penultimate FC layer outputs the re-id feature, which is then fed into the last
    FC layer for identity classification").

    Args:
        backbone: a module mapping images (B, 3, H, W) to feature maps (B, C, h, w) with an
            ``out_channels`` attribute.
        num_classes: number of training identities.
        feat_dim: size of the re-id feature.
        dropout: dropout before the classifier.
    """

    def __init__(self, backbone: nn.Module, num_classes: int, feat_dim: int = 256, dropout: float = 0.0) -> None:
        super().__init__()
        if num_classes < 2:
            raise ConfigError(f"ReIDNet needs at least 2 training identities, got num_classes={num_classes}")
        self.backbone = backbone
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc_feat = nn.Linear(backbone.out_channels, feat_dim)
        self.bn_feat = nn.BatchNorm1d(feat_dim)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(feat_dim, num_classes)
        # Images arrive in [0, 1] (the SR sub-network works in pixel space); F_fe sees them
        # standardised with ImageNet statistics, which pretrained backbones expect.
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """F_fe: the re-id feature used for L2 matching."""
        pooled = self.pool(self.backbone((x - self.mean) / self.std)).flatten(1)
        return self.bn_feat(self.fc_feat(pooled))

    def classify(self, feature: torch.Tensor) -> torch.Tensor:
        """F_c: identity logits from a re-id feature."""
        return self.classifier(self.dropout(feature))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feature = self.features(x)
        return feature, self.classify(feature)
