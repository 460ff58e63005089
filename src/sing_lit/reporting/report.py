"""Mean ± std summaries over trials, printed as markdown tables and written as CSV."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping, Sequence

from sing_lit.evaluation.ranking import RANK_METRICS as TABLE_METRICS


def summarize(per_trial: Sequence[Mapping[str, float]], metrics: Iterable[str]) -> dict[str, dict[str, float]]:
    """``{metric: {"mean", "std", "n"}}`` over trials (population std; 0 for one trial)."""
    if not per_trial:
        return {}
    out = {}
    for m in metrics:
        vals = [float(t[m]) for t in per_trial if m in t]
        if not vals:
            continue
        mean = sum(vals) / len(vals)
        std = math.sqrt(sum((v - mean) ** 2 for v in vals) / len(vals))
        out[m] = {"mean": mean, "std": std, "n": len(vals)}
    return out


def pooled(parts: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """``{"mean", "std", "n"}`` over the union of disjoint sets of trials, from each set's :func:`summarize` entry.

    Exact: the population variance of the union is the mean of (std² + mean²) weighted by n, less the
    squared mean of the union.
    """
    n = sum(int(p["n"]) for p in parts)
    if n == 0:
        raise ValueError("pooled() needs at least one trial")
    mean = sum(p["n"] * p["mean"] for p in parts) / n
    var = sum(p["n"] * (p["std"] ** 2 + p["mean"] ** 2) for p in parts) / n - mean ** 2
    return {"mean": mean, "std": math.sqrt(max(var, 0.0)), "n": n}


def cell(stat: Mapping[str, float] | None) -> str:
    """``mean ± std`` (one decimal); the mean alone for one trial; ``-`` when missing."""
    if not stat:
        return "-"
    return f"{stat['mean']:.1f} ± {stat['std']:.1f}" if stat.get("n", 1) > 1 else f"{stat['mean']:.1f}"


def format_table(rows: Mapping[str, Mapping[str, Mapping[str, float]]], title: str = "",
                 metrics: Sequence[str] = TABLE_METRICS) -> str:
    """A markdown table: one row per model, one column per metric (percent)."""
    head = "| model | " + " | ".join("r=" + m[4:] if m.startswith("rank") else m for m in metrics) + " |"
    lines = ([f"**{title}**", ""] if title else []) + [head, "|" + "---|" * (len(metrics) + 1)]
    for name, stats in rows.items():
        lines.append(f"| {name} | " + " | ".join(cell(stats.get(m)) for m in metrics) + " |")
    return "\n".join(lines)


def table_csv(rows: Mapping[str, Mapping[str, Mapping[str, float]]], metrics: Sequence[str] = TABLE_METRICS) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["model"] + [f"{m}_{s}" for m in metrics for s in ("mean", "std")])
    for name, stats in rows.items():
        writer.writerow([name] + [f"{stats[m][s]:.4f}" if m in stats else "" for m in metrics for s in ("mean", "std")])
    return buf.getvalue()
