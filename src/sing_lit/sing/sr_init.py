"""F_sr trained alone by MSE at the anchor ratio (Eq. 2 only), cached, before re-id training starts.

Two uses: the paper's initialisation of F_sr (it started from an SRCNN trained on ImageNet; here
the trial's HR training images, plus any folder of images, at the anchor ratio m), and Table 2's
"SRCNN + re-id" scheme, which then freezes it. The result is cached by everything that determines
it (data, split, ratio, SR net, steps, seed, extra images), so the anchors and sweeps that share a
ratio train it once.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sing_lit.baselines.srcnn_training import train_srcnn
from sing_lit.evaluation.sr_quality import psnr
from sing_lit.runtime.atomic import atomic_path

log = logging.getLogger(__name__)
@torch.no_grad()
def gain_over_bicubic(sr: nn.Module, h2l: torch.Tensor, hr: torch.Tensor, batch_size: int = 128) -> dict[str, float]:
    """PSNR of F_sr(x^h2l) and of the bicubic x^h2l itself against x^h (uint8 inputs), and the gain."""
    was_training = sr.training
    sr.eval()
    outs = [sr(h2l[i:i + batch_size].float().div(255.0)) for i in range(0, len(h2l), batch_size)]
    sr.train(was_training)
    y = hr.float().div(255.0)
    p_sr = float(psnr(torch.cat(outs).clamp(0, 1), y).mean())
    p_bic = float(psnr(h2l.float().div(255.0), y).mean())
    return {"psnr_sr": p_sr, "psnr_bicubic": p_bic, "psnr_gain": p_sr - p_bic}


def cache_key(parts: dict[str, Any]) -> str:
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:20]


def pretrain_sr(sr: nn.Module, hr: torch.Tensor, h2l: torch.Tensor, steps: int, lr: float, batch_size: int,
                seed: int, cache_dir: str | Path | None, key_parts: dict[str, Any]) -> dict[str, Any]:
    """Train ``sr`` by MSE on (h2l, hr) pairs, or load the cached result of the same training.

    Leaves ``sr`` trainable (``requires_grad=True``); the caller freezes it when it must stay fixed.
    Returns the training stats, plus ``cached`` (bool) and ``cache_file``.
    """
    key = cache_key({**key_parts, "steps": steps, "lr": lr, "batch_size": batch_size, "seed": seed,
                     "n": len(hr), "state": {k: list(v.shape) for k, v in sr.state_dict().items()}})
    path = Path(cache_dir) / "sr_init" / f"{key}.pt" if cache_dir else None
    if path is not None and path.is_file():
        blob = torch.load(path, map_location="cpu", weights_only=True)
        sr.load_state_dict(blob["state"])
        stats = {**blob["stats"], "cached": True, "cache_file": str(path)}
    else:
        stats = train_srcnn(sr, hr, h2l, steps=steps, lr=lr, batch_size=batch_size, seed=seed)
        if path is not None:
            with atomic_path(path) as tmp:
                torch.save({"state": {k: v.detach().cpu() for k, v in sr.state_dict().items()}, "stats": stats}, tmp)
        stats = {**stats, "cached": False, "cache_file": str(path) if path else None}
    for p in sr.parameters():
        p.requires_grad_(True)
    return stats
