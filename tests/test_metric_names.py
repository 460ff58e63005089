"""mINP joins the ranking metrics everywhere; result files written before it stay readable."""

from __future__ import annotations

import csv
import io

import torch

from sing_lit.evaluation.ranking import EVAL_METRICS, RANK_METRICS, cmc_and_map, rank_metrics
from sing_lit.reporting.paper_tables import TABLE1, csv_rows, measured_table, quoted_csv_row
from sing_lit.reporting.report import format_table, summarize, table_csv

OLD_TRIAL = {"rank1": 40.0, "rank5": 60.0, "rank10": 70.0, "rank20": 80.0, "mAP": 30.0}  # before mINP


def test_every_ranking_metric_name_is_computed():
    assert RANK_METRICS == ("rank1", "rank5", "rank10", "rank20", "mAP", "mINP")
    assert EVAL_METRICS == (*RANK_METRICS, "psnr", "ssim")
    d, pids = torch.tensor([[0.1, 0.2], [0.3, 0.1]]), torch.tensor([0, 1])
    for out in (cmc_and_map(d, pids, pids), rank_metrics(d, pids, pids)):
        assert set(RANK_METRICS) <= set(out)


def test_tables_of_results_without_minp_show_it_missing():
    stats = summarize([OLD_TRIAL, OLD_TRIAL], RANK_METRICS)
    assert "mINP" not in stats and stats["mAP"] == {"mean": 30.0, "std": 0.0, "n": 2}
    md = format_table({"old run": stats})
    assert md.splitlines()[0] == "| model | r=1 | r=5 | r=10 | r=20 | mAP | mINP |"
    assert md.splitlines()[-1].endswith("| 30.0 ± 0.0 | - |")
    rows = list(csv.DictReader(io.StringIO(table_csv({"old run": stats}))))
    assert rows[0]["mAP_mean"] == "30.0000" and rows[0]["mINP_mean"] == rows[0]["mINP_std"] == ""
    assert measured_table([(["old"], stats)], ["method"], RANK_METRICS).splitlines()[-1].endswith("| - |")


def test_quoted_rows_line_up_with_the_measured_columns():
    measured = csv_rows([(["SING (measured)"], summarize([OLD_TRIAL], RANK_METRICS))], ["method"], RANK_METRICS)
    quoted = [quoted_csv_row("JUDEA (CAVIAR)", TABLE1["JUDEA"]["CAVIAR"], RANK_METRICS),
              quoted_csv_row("SLD²L (MLR-CUHK03)", None, RANK_METRICS)]
    buf = io.StringIO()
    csv.writer(buf).writerows(measured + quoted)
    rows = {r["method"]: r for r in csv.DictReader(io.StringIO(buf.getvalue()))}
    assert all(len(r) == len(measured[0]) for r in measured + quoted)
    judea = rows["JUDEA (CAVIAR)"]
    assert (judea["rank1_mean"], judea["rank20_mean"], judea["mAP_mean"], judea["mINP_mean"]) == ("22.0", "98.1", "", "")
    assert judea["source"] == "quoted from the paper" and judea["trials"] == ""
    assert all(v == "" for k, v in rows["SLD²L (MLR-CUHK03)"].items() if k not in ("method", "source"))
