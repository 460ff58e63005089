"""Learning-rate schedules stepped per optimisation step: linear warm-up, then cosine decay."""

from __future__ import annotations

import math

import torch

from sing_lit.runtime.errors import ConfigError


def warmup_cosine(optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int | None = None,
                  warmup_fraction: float = 0.1, min_factor: float = 0.01) -> torch.optim.lr_scheduler.LambdaLR:
    """Each group's LR times a factor that rises linearly from ``1/warmup_steps`` to 1 over the first
    ``warmup_steps`` steps (default: ``warmup_fraction`` of ``total_steps``), then follows a half
    cosine down to ``min_factor`` at ``total_steps``. The LightningModule passes ``total_steps``
    (the trainer's estimated optimisation steps), so the schedule fits any budget.

    Luo et al. (2019) warm up because an ImageNet-initialised net hit with the full LR at once
    loses much of what it brought; here it also keeps a fresh classifier from wrecking the backbone.

    Example:
        >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
        >>> s = warmup_cosine(opt, total_steps=10, warmup_steps=2)
        >>> [round(s.lr_lambda[0](k), 3) for k in (0, 1, 2, 10)]
        [0.5, 1.0, 1.0, 0.01]
    """
    if warmup_steps is None:
        warmup_steps = int(warmup_fraction * total_steps)
    if total_steps < 1 or not 0 <= warmup_steps < total_steps or not 0 <= min_factor <= 1:
        raise ConfigError(f"warmup_cosine needs total_steps >= 1 (trainer.max_steps), 0 <= warmup_steps < "
                         f"total_steps and 0 <= min_factor <= 1, got total_steps={total_steps}, "
                         f"warmup_steps={warmup_steps}, min_factor={min_factor}")

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
