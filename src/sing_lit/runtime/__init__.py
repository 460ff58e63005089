"""Run plumbing: entry-point helpers and user errors, checkpoints, resume, DDP, run info, atomic writes, W&B runs."""
