"""PNG figures written next to the numbers (no W&B needed to look at them)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from sing_lit.runtime.atomic import atomic_path


def plot_cmc(curves: Mapping[str, Sequence[float]], path: str | Path, title: str = "CMC") -> None:
    """CMC curves (percent at ranks 1..N), one line per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.6), dpi=100)
    for name, curve in curves.items():
        ax.plot(range(1, len(curve) + 1), curve, marker="o", markersize=3, label=name)
    ax.set_xlabel("rank")
    ax.set_ylabel("matching rate (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def plot_metric_curve(xs: Sequence[float], series: Mapping[str, Sequence[tuple[float, float]]], path: str | Path,
                      xlabel: str, title: str = "") -> None:
    """Metrics (percent, mean ± std error bars) against one hyper-parameter, e.g. the paper's Fig. 6."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.6), dpi=100)
    for name, points in series.items():
        ax.errorbar(list(xs), [m for m, _ in points], yerr=[s for _, s in points], marker="o", markersize=4,
                    capsize=3, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("%")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
