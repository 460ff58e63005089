"""The paper's published numbers (quoted, never re-run) and the markdown layouts of its tables.

Quoted from Jiao et al., "Deep Low-Resolution Person Re-Identification", AAAI 2018 (Tables 1-4),
in percent. JUDEA, SLD²L and SDF are only ever quoted: the suite does not implement them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sing_lit.evaluation.ranking import RANK_NAMES
from sing_lit.reporting.report import cell

PAPER_DATASETS = ("CAVIAR", "MLR-CUHK03", "MLR-SYSU", "MLR-VIPeR")
# Our dataset config names -> the paper's dataset names (quoted rows are shown for these only).
PAPER_NAME = {"caviar": "CAVIAR", "cuhk03": "MLR-CUHK03", "sysu": "MLR-SYSU", "viper": "MLR-VIPeR"}
RANKS = RANK_NAMES  # the columns of the paper's tables

# Table 1: rank 1/5/10/20 per dataset; None where the paper has "-" (SLD²L ran out of memory).
TABLE1: dict[str, dict[str, tuple | None]] = {
    "JUDEA": {"CAVIAR": (22.0, 60.1, 80.8, 98.1), "MLR-CUHK03": (26.2, 58.0, 73.4, 87.0),
              "MLR-SYSU": (18.3, 41.9, 54.5, 68.0), "MLR-VIPeR": (26.0, 55.1, 69.2, 82.3)},
    "SLD²L": {"CAVIAR": (18.4, 44.8, 61.2, 83.6), "MLR-CUHK03": None,
              "MLR-SYSU": (20.3, 34.8, 43.4, 55.4), "MLR-VIPeR": (20.3, 44.0, 62.0, 78.2)},
    "SDF": {"CAVIAR": (14.3, 37.5, 62.5, 95.2), "MLR-CUHK03": (22.2, 48.0, 64.0, 80.0),
            "MLR-SYSU": (13.3, 26.7, 42.9, 66.7), "MLR-VIPeR": (9.52, 38.1, 52.4, 68.0)},
    "SING": {"CAVIAR": (33.5, 72.7, 89.0, 98.6), "MLR-CUHK03": (67.7, 90.7, 94.7, 97.4),
             "MLR-SYSU": (50.7, 75.4, 83.1, 88.1), "MLR-VIPeR": (33.5, 57.0, 66.5, 76.6)},
}

# Table 2: (SR, re-id) -> rank 1/5/10/20 on CAVIAR, MLR-CUHK03, MLR-SYSU, MLR-VIPeR (16 numbers).
_TABLE2 = """
Bilinear XQDA 22.7 61.4 81.9 98.8 45.5 78.0 87.8 93.7 39.3 67.4 77.2 85.6 37.6 65.7 78.5 89.7
Bicubic XQDA 24.3 63.4 83.1 99.2 45.1 78.1 87.7 93.3 40.0 66.9 77.2 85.5 37.8 66.0 78.9 89.3
SRCNN XQDA 24.8 64.3 84.0 99.1 44.7 77.8 87.5 93.1 40.3 67.3 77.4 85.6 36.5 65.1 78.9 89.8
Bilinear NFST 23.3 60.5 82.2 99.0 48.0 47.9 46.2 49.0 41.6 69.0 79.5 87.7 39.7 68.4 81.0 90.4
Bicubic NFST 24.5 61.1 82.1 99.2 47.9 74.8 83.6 92.8 42.4 69.3 80.5 88.0 39.2 67.9 80.3 90.7
SRCNN NFST 25.0 61.2 82.9 99.2 49.0 74.8 85.0 92.1 43.2 69.6 80.3 88.0 38.6 67.1 79.5 90.1
Bilinear DGD 25.3 61.0 82.6 98.4 58.5 86.0 92.2 96.0 39.6 66.4 74.8 82.5 23.1 45.9 56.6 67.7
Bicubic DGD 27.4 63.4 83.0 98.5 62.5 88.7 93.7 96.5 41.5 67.4 76.9 84.7 25.0 51.3 59.2 69.3
SRCNN DGD 28.4 66.3 85.9 98.5 63.8 89.3 93.9 96.8 42.6 68.2 77.1 85.5 25.3 48.4 57.3 66.5
SING - 33.5 72.7 89.0 98.6 67.7 90.7 94.7 97.4 50.7 75.4 83.1 88.1 33.5 57.0 66.5 76.6
"""
TABLE2: dict[tuple[str, str], dict[str, tuple]] = {}
for _line in _TABLE2.strip().splitlines():
    _sr, _reid, *_vals = _line.split()
    TABLE2[(_sr, _reid)] = {d: tuple(float(v) for v in _vals[4 * i:4 * i + 4]) for i, d in enumerate(PAPER_DATASETS)}

# Table 3 and Table 4: rank-1 per dataset.
TABLE3 = {"SING (No Synthetic LR)": (25.8, 57.1, 38.7, 23.1), "SING": (33.5, 67.7, 50.7, 33.5)}
TABLE4 = {"M1/2": (29.5, 63.1, 44.0, 28.5), "M1/3": (27.2, 62.6, 45.1, 30.7), "M1/4": (27.4, 61.6, 44.6, 30.1),
          "M1/2+M1/3": (31.1, 66.8, 48.6, 31.3), "M1/2+M1/4": (31.9, 64.7, 48.6, 32.0),
          "M1/3+M1/4": (29.9, 63.6, 49.5, 32.6), "M1/2+M1/3+M1/4": (33.5, 67.7, 50.7, 33.5)}
# Fig. 6 in the text: alpha = 0 vs alpha = 1, rank-1.
FIG6_TEXT = {"CAVIAR": {0.0: 26.6, 1.0: 33.5}, "MLR-VIPeR": {0.0: 25.0, 1.0: 33.5}}


def quoted(values: Sequence[float] | None) -> str:
    """Markdown cells of quoted rank-1/5/10/20 numbers (``-`` where the paper has none)."""
    return " | ".join("-" for _ in RANKS) if values is None else " | ".join(f"{v}" for v in values)


def measured_table(rows: Sequence[tuple[Sequence[str], Mapping[str, Mapping[str, float]]]], head: Sequence[str],
                   metrics: Sequence[str]) -> str:
    """Markdown: label columns ``head`` then one column per metric, cells mean ± std over trials."""
    names = [("r=" + m[4:]) if m.startswith("rank") else m for m in metrics]
    lines = ["| " + " | ".join([*head, *names]) + " |", "|" + "---|" * (len(head) + len(metrics))]
    for labels, stats in rows:
        lines.append("| " + " | ".join([*labels, *(cell(stats.get(m)) for m in metrics)]) + " |")
    return "\n".join(lines)


def csv_rows(rows: Sequence[tuple[Sequence[str], Mapping[str, Mapping[str, float]]]], head: Sequence[str],
             metrics: Sequence[str], source: str = "measured") -> list[list[str]]:
    """CSV rows (with a header row) of :func:`measured_table`'s content, plus mean/std/n columns."""
    out = [[*head, "source", *(f"{m}_{s}" for m in metrics for s in ("mean", "std")), "trials"]]
    for labels, stats in rows:
        n = max((int(stats[m].get("n", 1)) for m in metrics if m in stats), default=0)
        out.append([*labels, source, *(f"{stats[m][s]:.4f}" if m in stats else "" for m in metrics
                                        for s in ("mean", "std")), str(n)])
    return out


def quoted_csv_row(label: str, values: Sequence[float] | None, metrics: Sequence[str]) -> list[str]:
    """A row of quoted rank-1/5/10/20 numbers in :func:`csv_rows`' columns (``metrics``): empty cells
    for what the paper does not report (mAP, mINP, std) and for the trial count."""
    quoted_values = dict(zip(RANKS, values or [None] * len(RANKS)))
    cells = [x for m in metrics for x in ("" if quoted_values.get(m) is None else f"{quoted_values[m]}", "")]
    return [label, "quoted from the paper", *cells, ""]
