"""SING's joint loss for one batch: L = L_reid + alpha * L_sr (Eq. 2-5), plus the re-id recipe's terms."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sing_lit.models.sing_net import SINGNet
from sing_lit.runtime.cli import UserError
from sing_lit.runtime.errors import ConfigError
from sing_lit.sing.triplet import MODES, triplet_loss

SR_REDUCTIONS = ("mean", "sum")


def sr_loss(sr: torch.Tensor, hr: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """L_sr of Eq. (2), averaged over the batch.

    ``sum``: the paper's squared Frobenius norm ||F_sr(x^h2l) - x^h||_F^2 of each image (pixels in [0, 1]).
    ``mean``: the same divided by the image's values (3 x H x W), so alpha does not depend on the
    input size; alpha = 1 under ``mean`` equals alpha = 1 / (3 H W) under ``sum`` (1/34,560 at 160x72).
    """
    if reduction not in SR_REDUCTIONS:
        raise ConfigError(f"model.sr_loss_reduction must be one of {list(SR_REDUCTIONS)}, got {reduction!r}")
    per_image = (sr - hr).pow(2).flatten(1)
    return per_image.sum(1).mean() if reduction == "sum" else per_image.mean()


def sing_losses(net: SINGNet, batch: dict[str, torch.Tensor], alpha: float, synthetic_stream: bool,
                label_smoothing: float = 0.0, triplet_weight: float = 0.0, triplet_margin: float = 0.3,
                triplet_mode: str = "cross", sr_loss_reduction: str = "mean",
                h2l_reid_weight: float = 1.0) -> dict[str, torch.Tensor]:
    """The SING loss terms for one batch of float images in [0, 1].

    L = L_reid + alpha * L_sr (Eq. 5), where L_reid (Eq. 3) sums the batch-mean cross-entropy
    of the HR, synthetic-LR and LR streams and L_sr (Eq. 2) compares F_sr(x^{h2l}) with x^h
    (see :func:`sr_loss` for its two reductions). Without the synthetic stream (Table 3
    ablation) both the x^{h2l} cross-entropy and L_sr are gone.

    ``h2l_reid_weight`` (not in the paper, which uses 1) scales the x^{h2l} cross-entropy in Eq. (3).
    At 0 the synthetic-LR images train F_sr through L_sr only: they skip F_fe, so they are in
    neither the cross-entropy nor the triplet loss (``loss_reid_h2l`` is not computed).

    The re-id recipe (not in the paper) adds label smoothing to every cross-entropy and, with
    ``triplet_weight > 0``, ``triplet_weight`` times a batch-hard triplet loss on the
    metric-learning features (see :mod:`sing_lit.sing.triplet`), logged as ``loss_triplet``.

    All streams share one forward pass through F_sr and one through F_fe.
    """
    if triplet_mode not in MODES:
        raise ConfigError(f"model.triplet.mode must be one of {list(MODES)}, got {triplet_mode!r}")
    x_l, x_h = batch["lr"], batch["hr"]
    n_l, n_h = len(x_l), len(x_h)
    h2l_reid = synthetic_stream and h2l_reid_weight > 0
    if synthetic_stream:
        sr_out = net.super_resolve(torch.cat([x_l, batch["h2l"]]))
        sr_l, sr_h2l = sr_out[:n_l], sr_out[n_l:]
        f_t, logits = net.reid_net(torch.cat([x_h, sr_l, sr_h2l] if h2l_reid else [x_h, sr_l]))
    else:
        sr_l = net.super_resolve(x_l)
        f_t, logits = net.reid_net(torch.cat([x_h, sr_l]))

    def ce(lo: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(lo, y, label_smoothing=label_smoothing)

    out = {
        "loss_reid_hr": ce(logits[:n_h], batch["hr_label"]),
        "loss_reid_lr": ce(logits[n_h:n_h + n_l], batch["lr_label"]),
    }
    loss_reid = out["loss_reid_hr"] + out["loss_reid_lr"]
    if h2l_reid:
        out["loss_reid_h2l"] = ce(logits[n_h + n_l:], batch["hr_label"])
        loss_reid = loss_reid + h2l_reid_weight * out["loss_reid_h2l"]
    total = loss_reid
    if triplet_weight > 0 and triplet_mode != "none":
        lr_labels = torch.cat([batch["lr_label"], batch["hr_label"]]) if h2l_reid else batch["lr_label"]
        out["loss_triplet"] = triplet_loss(f_t[:n_h], batch["hr_label"], f_t[n_h:], lr_labels,
                                           margin=triplet_margin, mode=triplet_mode)
        total = total + triplet_weight * out["loss_triplet"]
    if synthetic_stream:
        out["loss_sr"] = sr_loss(sr_h2l, x_h, sr_loss_reduction)
        total = total + alpha * out["loss_sr"]
    out["loss_reid"] = loss_reid
    out["loss"] = total
    return out


class NonFiniteLossError(UserError):
    """A loss term became NaN or infinite; training stops before the bad step updates the weights."""


def check_finite(losses: dict[str, torch.Tensor], step: int, epoch: int, batch_idx: int) -> None:
    """Raise :class:`NonFiniteLossError` naming the step and every non-finite loss term."""
    values = torch.stack([v.detach().float() for v in losses.values()])
    if bool(torch.isfinite(values).all()):  # one host sync per step
        return
    bad = [f"train/{k}={float(v.detach()):g}" for k, v in losses.items() if not torch.isfinite(v.detach()).item()]
    raise NonFiniteLossError(f"non-finite loss at step {step} (epoch {epoch}, batch {batch_idx}): {', '.join(bad)}; "
                             "training stopped before this step updated the weights, the last checkpoint is intact; "
                             "lower model.lr_reid / model.lr_sr or model.alpha, or check the input images")
