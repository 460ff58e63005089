"""Train an SR network on its own (MSE only): the "SRCNN" of the paper's SR + re-id scheme (Table 2).

The paper fine-tunes SRCNN "on the same training images as SING": pairs of a synthetic LR
image x^{h2l} (an HR training image down-sampled by the anchor ratio m, then bicubic-upscaled
to the input size) and the HR image x^h. The loss is Eq. (2) alone; no identity label is used.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from sing_lit.evaluation.sr_quality import psnr
from sing_lit.runtime.errors import ConfigError


def _psnr(sr: nn.Module, h2l: torch.Tensor, hr: torch.Tensor, batch_size: int) -> float:
    """Mean PSNR (dB) of ``sr(h2l)`` against ``hr`` over all images (uint8 inputs)."""
    device = next(sr.parameters()).device
    total, n = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(hr), batch_size):
            x = h2l[i:i + batch_size].to(device).float().div_(255.0)
            y = hr[i:i + batch_size].to(device).float().div_(255.0)
            total += float(psnr(sr(x).clamp(0, 1), y).clamp_max(120.0).sum())  # 120 dB: an exact copy counts finite
            n += len(x)
    return total / n


def train_srcnn(sr: nn.Module, hr: torch.Tensor, h2l: torch.Tensor, steps: int, lr: float = 1e-3,
                batch_size: int = 32, seed: int = 0) -> dict[str, float]:
    """Fit ``sr`` so that ``sr(h2l) ~ hr`` by Adam on the per-pixel MSE, then freeze it.

    Args:
        sr: the SR network (e.g. :class:`sing_lit.models.sr_net.SRNet`), on any device.
        hr: (N, 3, H, W) uint8 HR training images at the input size.
        h2l: (N, 3, H, W) uint8 synthetic LR images made from ``hr`` (same order), upscaled to the input size.
        steps: optimisation steps (mini-batches drawn with ``seed``, reproducible).
        lr, batch_size: Adam learning rate and mini-batch size.

    Returns:
        ``{"steps", "loss_first", "loss_last", "psnr_before", "psnr_after"}`` (PSNR in dB on the training pairs).
        The parameters of ``sr`` are left with ``requires_grad=False``.
    """
    if hr.shape != h2l.shape or hr.ndim != 4 or len(hr) == 0:
        raise ValueError(f"train_srcnn needs matching non-empty (N, 3, H, W) hr and h2l, got "
                         f"{tuple(hr.shape)} and {tuple(h2l.shape)}")
    if steps < 0 or batch_size < 1 or not lr > 0:
        raise ConfigError(f"train_srcnn: steps >= 0, batch_size >= 1 and lr > 0 are needed, got steps={steps}, "
                         f"batch_size={batch_size}, lr={lr}")
    device = next(sr.parameters()).device
    gen = torch.Generator().manual_seed(int(seed))
    sr.train()
    for p in sr.parameters():
        p.requires_grad_(True)
    psnr_before = _psnr(sr, h2l, hr, 256)
    opt = torch.optim.Adam(sr.parameters(), lr=lr)
    first = last = math.nan
    for step in range(steps):
        idx = torch.randint(len(hr), (min(batch_size, len(hr)),), generator=gen)
        x = h2l[idx].to(device).float().div_(255.0)
        y = hr[idx].to(device).float().div_(255.0)
        if torch.rand((), generator=gen) < 0.5:  # the same flip for input and target
            x, y = x.flip(-1), y.flip(-1)
        loss = F.mse_loss(sr(x), y)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"SRCNN training diverged at step {step} (loss {float(loss)}); lower the SR "
                                     f"learning rate (now {lr})")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        last = float(loss.detach())
        first = last if step == 0 else first
    for p in sr.parameters():
        p.requires_grad_(False)
    return {"steps": steps, "loss_first": first, "loss_last": last, "psnr_before": psnr_before,
            "psnr_after": _psnr(sr, h2l, hr, 256)}
