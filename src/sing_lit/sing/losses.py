"""SING's joint loss for one batch: L = L_reid + alpha * L_sr (Eq. 2-5)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sing_lit.models.sing_net import SINGNet
from sing_lit.runtime.cli import UserError


def sing_losses(net: SINGNet, batch: dict[str, torch.Tensor], alpha: float, synthetic_stream: bool) -> dict[str, torch.Tensor]:
    """The SING loss terms for one batch of float images in [0, 1].

    L = L_reid + alpha * L_sr (Eq. 5), where L_reid (Eq. 3) sums the batch-mean cross-entropy
    of the HR, synthetic-LR and LR streams and L_sr (Eq. 2) is the MSE between F_sr(x^{h2l})
    and x^h. Eq. (2)'s squared Frobenius norm is divided by the pixel count (a per-pixel mean)
    so alpha does not depend on the input size. Without the synthetic stream (Table 3
    ablation) both the x^{h2l} cross-entropy and L_sr are gone.

    All streams share one forward pass through F_sr and one through F_fe.
    """
    x_l, x_h = batch["lr"], batch["hr"]
    n_l, n_h = len(x_l), len(x_h)
    if synthetic_stream:
        sr_out = net.super_resolve(torch.cat([x_l, batch["h2l"]]))
        sr_l, sr_h2l = sr_out[:n_l], sr_out[n_l:]
        _, logits = net.reid_net(torch.cat([x_h, sr_l, sr_h2l]))
    else:
        sr_l = net.super_resolve(x_l)
        _, logits = net.reid_net(torch.cat([x_h, sr_l]))
    out = {
        "loss_reid_hr": F.cross_entropy(logits[:n_h], batch["hr_label"]),
        "loss_reid_lr": F.cross_entropy(logits[n_h:n_h + n_l], batch["lr_label"]),
    }
    loss_reid = out["loss_reid_hr"] + out["loss_reid_lr"]
    total = loss_reid
    if synthetic_stream:
        out["loss_reid_h2l"] = F.cross_entropy(logits[n_h + n_l:], batch["hr_label"])
        out["loss_sr"] = F.mse_loss(sr_h2l, x_h)
        loss_reid = loss_reid + out["loss_reid_h2l"]
        total = loss_reid + alpha * out["loss_sr"]
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
