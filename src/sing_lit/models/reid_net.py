"""Re-id sub-network: feature extractor F_fe plus identity classifier F_c (Fig. 3(e))."""

from __future__ import annotations

import torch
from torch import nn

from sing_lit.runtime.errors import ConfigError

NECKS = ("fc", "bnneck")
NECK_FEATS = ("after", "before")


class ReIDNet(nn.Module):
    """Backbone, global pooling, a neck that gives the re-id feature, and the last FC (F_c).

    Necks:
        ``fc`` (the paper's): the penultimate FC, batch-normalised, is the re-id feature and feeds
            the classifier ("the penultimate FC layer outputs the re-id feature, which is then fed
            into the last FC layer for identity classification").
        ``bnneck`` (Luo et al. 2019, "Bag of Tricks"): the pooled feature (optionally reduced by a
            bias-free FC to ``feat_dim``) is the metric-learning feature f_t; a BN layer with a frozen
            zero shift gives f_i, which a bias-free classifier reads and which is matched at test time.
            Triplet and cross-entropy then act on different spaces and stop pulling against each other.

    :meth:`embed` returns (f_t, f_i): the feature the triplet loss sees and the one classified. With
    ``fc`` they are the FC output before and after its BN. ``neck_feat`` says which one :meth:`features`
    matches at test time: ``after`` (f_i, Luo et al.'s choice on Market-1501 with cosine) or ``before``
    (f_t). On MLR-PRID and GRID with ``recipe=strong``, ``before`` measured better (README "Training recipe").

    Args:
        backbone: a module mapping images (B, 3, H, W) to feature maps (B, C, h, w) with an
            ``out_channels`` attribute.
        num_classes: number of training identities.
        feat_dim: size of the re-id feature (``bnneck``: null keeps the pooled size, no FC).
        dropout: dropout before the classifier.
        neck: ``fc`` or ``bnneck``.
        neck_feat: ``after`` or ``before`` the neck's BN: the feature matched at test time.
    """

    def __init__(self, backbone: nn.Module, num_classes: int, feat_dim: int | None = 256, dropout: float = 0.0,
                 neck: str = "fc", neck_feat: str = "after") -> None:
        super().__init__()
        if num_classes < 2:
            raise ConfigError(f"ReIDNet needs at least 2 training identities, got num_classes={num_classes}")
        if neck not in NECKS:
            raise ConfigError(f"model.net.neck must be one of {list(NECKS)}, got {neck!r}")
        if neck_feat not in NECK_FEATS:
            raise ConfigError(f"model.net.neck_feat must be one of {list(NECK_FEATS)}, got {neck_feat!r}")
        if neck == "fc" and not feat_dim:
            raise ConfigError("model.net.neck=fc needs model.net.feat_dim > 0")
        self.neck, self.neck_feat = neck, neck_feat
        self.backbone = backbone
        self.pool = nn.AdaptiveAvgPool2d(1)
        dim = int(feat_dim) if feat_dim else backbone.out_channels
        self.fc_feat = nn.Linear(backbone.out_channels, dim, bias=neck == "fc") if feat_dim else nn.Identity()
        self.bn_feat = nn.BatchNorm1d(dim)
        if neck == "bnneck":
            self.bn_feat.bias.requires_grad_(False)  # Luo et al.: a shift would only move the origin of f_i
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(dim, num_classes, bias=neck == "fc")
        if neck == "bnneck":
            nn.init.normal_(self.classifier.weight, std=1e-3)
        # Images arrive in [0, 1] (the SR sub-network works in pixel space); F_fe sees them
        # standardised with ImageNet statistics, which pretrained backbones expect.
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)

    def embed(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(f_t, f_i): the metric-learning feature and the matched/classified feature."""
        f_t = self.fc_feat(self.pool(self.backbone((x - self.mean) / self.std)).flatten(1))
        return f_t, self.bn_feat(f_t)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """F_fe: the re-id feature used for matching (``neck_feat``: f_i after the BN, or f_t before)."""
        return self.embed(x)[1 if self.neck_feat == "after" else 0]

    def classify(self, feature: torch.Tensor) -> torch.Tensor:
        """F_c: identity logits from a re-id feature."""
        return self.classifier(self.dropout(feature))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(f_t, logits): what the triplet and the cross-entropy losses see."""
        f_t, f_i = self.embed(x)
        return f_t, self.classify(f_i)
