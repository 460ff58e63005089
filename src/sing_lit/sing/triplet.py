"""Batch-hard triplet loss (Hermans et al. 2017), within a batch or across resolutions.

Not in the SING paper. Its cross-entropy alone classifies each stream against the training
identities but never asks an LR image's feature to sit next to the HR feature of the same person,
which is what matching does. ``cross`` mode adds exactly that pull: each LR-side (super-resolved)
image's positive and negatives are HR images, and each HR image's are LR-side images.
"""

from __future__ import annotations

import torch

from sing_lit.runtime.errors import ConfigError

MODES = ("none", "all", "cross")


def pairwise_euclidean(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(Na, Nb) Euclidean distances; clamped before the root so the gradient stays finite at 0."""
    d2 = (a * a).sum(1, keepdim=True) + (b * b).sum(1) - 2 * a @ b.T
    return d2.clamp_min(1e-12).sqrt()


def batch_hard(anchors: torch.Tensor, anchor_labels: torch.Tensor, cands: torch.Tensor, cand_labels: torch.Tensor,
               margin: float, exclude_self: bool = False) -> tuple[torch.Tensor, int]:
    """Sum over anchors of max(0, d(a, hardest positive) - d(a, hardest negative) + margin), and the count.

    An anchor with no positive or no negative among the candidates is left out. ``exclude_self``
    (anchors and candidates are the same images) keeps an image from being its own positive.
    """
    d = pairwise_euclidean(anchors, cands)
    same = anchor_labels[:, None] == cand_labels[None, :]
    pos = same.clone()
    if exclude_self:
        pos.fill_diagonal_(False)
    neg = ~same
    valid = pos.any(1) & neg.any(1)
    if not bool(valid.any()):
        return d.sum() * 0.0, 0
    d_ap = torch.where(pos, d, torch.full_like(d, -float("inf"))).amax(1)
    d_an = torch.where(neg, d, torch.full_like(d, float("inf"))).amin(1)
    loss = torch.relu(d_ap - d_an + margin)[valid]
    return loss.sum(), int(valid.sum())


def triplet_loss(hr: torch.Tensor, hr_labels: torch.Tensor, lr: torch.Tensor, lr_labels: torch.Tensor,
                 margin: float = 0.3, mode: str = "cross") -> torch.Tensor:
    """Mean batch-hard triplet loss over the valid anchors.

    Args:
        hr, hr_labels: features of the HR images and their identities.
        lr, lr_labels: features of the LR-side images (super-resolved genuine and synthetic LR).
        mode: ``cross``: LR anchors against HR candidates and HR anchors against LR candidates;
            ``all``: every image against every other, resolution ignored.
    """
    if mode not in MODES or mode == "none":
        raise ConfigError(f"triplet mode must be 'all' or 'cross', got {mode!r}")
    if mode == "all":
        feats, labels = torch.cat([hr, lr]), torch.cat([hr_labels, lr_labels])
        total, n = batch_hard(feats, labels, feats, labels, margin, exclude_self=True)
    else:
        a, na = batch_hard(lr, lr_labels, hr, hr_labels, margin)
        b, nb = batch_hard(hr, hr_labels, lr, lr_labels, margin)
        total, n = a + b, na + nb
    return total / max(n, 1)
