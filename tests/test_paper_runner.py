"""experiments/paper.py: one command per paper artefact, on tiny settings."""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path

import pytest

from cli_checks import assert_one_error_line
from python_runs import run_python
from tiny_prid import PRID_TINY, write_tiny_prid

REPO = Path(__file__).resolve().parents[1]
TINY = ["debug=tiny", "logger=[]", "~callbacks.pictures", "model.sr_steps=5"]


def run_paper(args, cache_dir, timeout=900):
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env.update(SING_LIT_CACHE=str(cache_dir), PYTHONUNBUFFERED="1")
    return run_python([REPO / "experiments" / "paper.py", *args], REPO, env, timeout)


def _fused_r1(sweep: Path) -> float:
    return json.loads((sweep / "fuse" / "metrics.json").read_text())["table"]["SING fused (Eq. 6-8)"]["rank1"]["mean"]


@pytest.mark.slow
def test_tables_and_fig6_from_one_command(tmp_path, cache_dir):
    runs, out = tmp_path / "runs", tmp_path / "out"
    args = ["table1", "table3", "table4", "fig6", *TINY, "--runs", str(runs), "--out", str(out),
            "--set", "fig6_alpha:model.alpha=0,1", "--set", "fig6_alpha:+anchor=1/3"]
    proc = run_paper(args, cache_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("table1", "table3", "table4", "fig6"):
        md = (out / f"{name}.md").read_text()
        assert "dataset: **synthetic**" in md and "git commit:" in md and "epochs=1" in md
    assert (out / "fig6.png").stat().st_size > 1000
    # The tables hold the numbers the fusion stage wrote, not anything else.
    sing_r1 = _fused_r1(runs / "sing")
    rows = {r["method"]: r for r in csv.DictReader((out / "table1.csv").open())}
    assert float(rows["SING (this suite, measured)"]["rank1_mean"]) == pytest.approx(sing_r1, abs=1e-3)
    assert rows["JUDEA (CAVIAR)"]["source"] == "quoted from the paper" and rows["JUDEA (CAVIAR)"]["rank1_mean"] == "22.0"
    assert "QUOTED" in (out / "table1.md").read_text()
    t3 = {r["model"]: float(r["rank1_mean"]) for r in csv.DictReader((out / "table3.csv").open())}
    assert t3["SING"] == pytest.approx(sing_r1, abs=1e-3)
    assert t3["SING (No Synthetic LR)"] == pytest.approx(_fused_r1(runs / "table3_no_synthetic"), abs=1e-3)
    t4 = [r["models"] for r in csv.DictReader((out / "table4.csv").open())]
    assert t4[:7] == ["M_1/2", "M_1/3", "M_1/4", "M_1/2 + M_1/3", "M_1/2 + M_1/4", "M_1/3 + M_1/4",
                      "M_1/2 + M_1/3 + M_1/4"]
    alphas = [r["alpha"] for r in csv.DictReader((out / "fig6.csv").open())]
    assert alphas == ["0", "1"]
    for job in sorted((runs / "fig6_alpha").glob("*_x3")):
        test_r1 = json.loads((job / "metrics.json").read_text())["test"]["rank1"]["mean"]
        alpha = json.loads((job / "metrics.json").read_text())["alpha"]
        row = next(r for r in csv.DictReader((out / "fig6.csv").open()) if float(r["alpha"]) == alpha)
        assert float(row["rank1_mean"]) == pytest.approx(test_r1, abs=1e-3)

    # A second call reuses every finished study (no training) and rewrites the same numbers.
    again = run_paper(["table3", *TINY, "--runs", str(runs), "--out", str(out)], cache_dir)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "reused" in again.stdout and "Launching" not in again.stdout + again.stderr
    # ...but refuses a study dir that was run with other overrides.
    other = run_paper(["table3", *TINY, "trainer.max_epochs=2", "--runs", str(runs), "--out", str(out)], cache_dir)
    assert_one_error_line(other, "other overrides")


def test_experiment_on_a_dataset_without_what_it_needs(tmp_path, cache_dir):
    root = write_tiny_prid(tmp_path / "prid")
    proc = run_paper(["table3", "data=prid2011", f"data.root={root}", "data.split_file=null",
                      "data.mlr.lr_camera=genuine", "--runs", str(tmp_path / "runs")], cache_dir, timeout=300)
    assert_one_error_line(proc, "table3 cannot run on data=prid2011", "genuinely low-resolution camera")
    assert not (tmp_path / "runs").exists()  # nothing was trained or written


def test_unknown_artefact_and_bad_set(tmp_path, cache_dir):
    assert_one_error_line(run_paper(["table9", *TINY], cache_dir), "unknown artefact", "table9")
    assert_one_error_line(run_paper(["table3", *TINY, "--set", "nosuchstudy:x=1"], cache_dir), "--set")


def test_pretrain_runs_once_first_and_starts_every_deep_study_from_it(tmp_path, monkeypatch, capsys):
    """paper.py --pretrain: the source study gets the target's net and logging but the source's data; every
    training study then loads its F_fe; the hand-crafted study gets neither."""
    paper = _paper_module()
    calls = []

    def fake_run_study(study, overrides, runs):
        calls.append((study, overrides))
        return runs / study

    monkeypatch.setattr(paper, "run_study", fake_run_study)
    monkeypatch.setattr(paper, "preflight", lambda overrides, artefacts: {"dataset": "prid2011", "root": "/prid"})
    monkeypatch.setattr(paper, "WRITERS", {**paper.WRITERS, "table2": lambda w, command: None})
    target = ["data=prid2011", "data.root=/prid", "backbone=mobilenet_v2", "trainer.max_epochs=2", "logger=[csv]"]
    paper.main(["table2", *target, "--runs", str(tmp_path), "--out", str(tmp_path / "out"),
                "--pretrain", "data=grid data.root=/grid", "--set", "sing:model.sr_init_steps=10"])
    assert calls[0] == ("pretrain_source", ["backbone=mobilenet_v2", "logger=[csv]", "data=grid", "data.root=/grid",
                                            "model.channels_last=true"])
    init = [f"model.init_from={tmp_path / 'pretrain_source' / 'trial_0' / 'checkpoints' / 'best.ckpt'}",
            "model.init_parts=[fe]"]
    studies = dict(calls[1:])
    assert set(studies) == {"table2_deep_plain", "table2_deep", "sing", "table2_handcrafted"}
    assert studies["table2_deep_plain"] == studies["table2_deep"] == [*target, *init]
    assert studies["sing"] == [*target, *init, "model.sr_init_steps=10"]
    assert studies["table2_handcrafted"] == target  # sr_reid trains no F_fe
    with pytest.raises(SystemExit):  # a source without its dataset: one error line (run_guarded)
        paper.main(["table2", *target, "--runs", str(tmp_path), "--pretrain", "trainer.max_epochs=3"])
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "--pretrain needs the source dataset" in err[0]


def _paper_module():
    sys.path.insert(0, str(REPO / "experiments"))
    try:
        import paper
    finally:
        sys.path.remove(str(REPO / "experiments"))
    return paper


def test_study_jobs_expand_the_sweeps_as_hydra_launches_them():
    """Each job's overrides, enumerated by hand from conf/experiment/*.yaml: the experiment's sweeper params,
    with a command-line value (sweep or not) of the same key replacing the experiment's."""
    paper = _paper_module()
    anchors = ["+anchor=1/2", "+anchor=1/3", "+anchor=1/4"]
    assert paper.study_jobs("table2_deep_plain", ["data=grid"]) == [
        ["experiment=table2_deep_plain", a, f"sr={sr}", "data=grid"]
        for a in anchors for sr in ("none", "bilinear", "srcnn_separate")]
    # fig6 for one anchor (paper.py's docstring example), alpha swept on the command line
    assert paper.study_jobs("fig6_alpha", ["+anchor=1/3", "model.alpha=0,1"]) == [
        ["experiment=fig6_alpha", "+anchor=1/3", "model.alpha=0"], ["experiment=fig6_alpha", "+anchor=1/3", "model.alpha=1"]]
    # a sweeper param overridden through the hydra node (as the README's Fig. 5 command does)
    assert paper.study_jobs("table2_deep", ["hydra.sweeper.params.sr=srcnn_separate"]) == [
        ["experiment=table2_deep", a, "sr=srcnn_separate", "hydra.sweeper.params.sr=srcnn_separate"] for a in anchors]
    assert paper.study_jobs("table3_no_synthetic", []) == [
        ["experiment=table3_no_synthetic", a, "model.synthetic_stream=false"] for a in anchors]
    # single runs: one job; the hand-crafted study keeps only the overrides sr_reid understands
    assert paper.study_jobs("pretrain_source", ["data=grid", "trainer.max_epochs=3"]) == [
        ["experiment=pretrain_source", "data=grid", "trainer.max_epochs=3"]]
    assert paper.study_jobs("table2_handcrafted", ["data=grid", "trainer.max_epochs=3", "backbone=mobilenet_v2"]) == [
        ["experiment=table2_handcrafted", "data=grid"]]


def test_preflight_stops_on_a_later_study_before_any_study_trains(tmp_path, monkeypatch, capsys):
    """The error of one job of the second study (here: PK sampling of PRID's HR-only people without the
    synthetic-LR stream) comes before the first study trains, as one line naming artefact, study and job."""
    paper = _paper_module()
    root = write_tiny_prid(tmp_path / "prid", both=8, b_only=4)
    calls = []
    monkeypatch.setattr(paper, "run_study", lambda study, overrides, runs: calls.append(study) or runs / study)
    monkeypatch.setattr(paper, "WRITERS", {**paper.WRITERS, "table1": lambda w, c: None, "table3": lambda w, c: None})
    monkeypatch.setenv("SING_LIT_CACHE", str(tmp_path / "cache"))
    args = ["table1", "table3", *PRID_TINY, f"data.root={root}", "--runs", str(tmp_path / "runs"),
            "--out", str(tmp_path / "out")]
    with pytest.raises(SystemExit):
        paper.main([*args, "--set", "table3_no_synthetic:data.synthetic_stream=false"])
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: table3 cannot run on data=prid2011: study table3_no_synthetic "
                                               "(+anchor=1/2 model.synthetic_stream=false): "), err
    assert "synthetic-LR stream (data.synthetic_stream=true)" in err[0]
    assert calls == [] and not (tmp_path / "runs").exists()  # nothing trained, nothing written
    paper.main(args)  # the shipped configs pass: every study then runs, in order
    assert calls == ["sing", "table3_no_synthetic"]


@pytest.mark.slow
def test_table2_and_fig5_from_one_command(tmp_path, cache_dir):
    runs, out = tmp_path / "runs", tmp_path / "out"
    args = ["table2", "fig5", *TINY, "--runs", str(runs), "--out", str(out),
            "--set", "table2_handcrafted:srcnn.steps=2", "--set", "table2_handcrafted:input_size=[48,48]",
            # the paper's rows at one anchor (3 jobs, not 9): their unfused rows; the labelled variant stays fused
            "--set", "table2_deep_plain:+anchor=1/3"]
    proc = run_paper(args, cache_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = list(csv.DictReader((out / "table2.csv").open()))
    pairs = [(r["sr"], r["reid"]) for r in rows]
    assert pairs == [("Bilinear", "XQDA"), ("Bicubic", "XQDA"), ("SRCNN", "XQDA"),
                     ("Bilinear", "NFST"), ("Bicubic", "NFST"), ("SRCNN", "NFST"),
                     # the paper's deep rows (HR + LR streams), then the labelled synthetic-stream variant
                     ("Bilinear", "small CNN (HR + LR streams)"), ("Bicubic", "small CNN (HR + LR streams)"),
                     ("SRCNN", "small CNN (HR + LR streams)"),
                     ("Bilinear", "small CNN (+ synthetic-LR stream, no L_sr)"),
                     ("Bicubic", "small CNN (+ synthetic-LR stream, no L_sr)"),
                     ("SRCNN", "small CNN (+ synthetic-LR stream, no L_sr)"), ("SING (joint)", "small CNN")]
    # Each row is the fused result its own stage wrote.
    hand = json.loads((runs / "table2_handcrafted" / "metrics.json").read_text())["table"]
    assert float(rows[0]["rank1_mean"]) == pytest.approx(hand["Bilinear + XQDA"]["rank1"]["mean"], abs=1e-3)
    assert not list((runs / "table2_deep_plain").glob("fuse*"))  # one anchor: each row is that job's test result
    from sing_lit.runtime.anchors import sweep_jobs

    plain = {next(o.split("=")[1] for o in job["overrides"] if o.startswith("sr=")): job["dir"]
             for job in sweep_jobs(runs / "table2_deep_plain")}
    assert sorted(plain) == ["bilinear", "none", "srcnn_separate"]
    bicubic = json.loads((plain["none"] / "metrics.json").read_text())["test"]["rank1"]["mean"]
    assert float(rows[7]["rank1_mean"]) == pytest.approx(bicubic, abs=1e-3)
    fused = sorted((runs / "table2_deep").glob("fuse*"))
    srcnn_dir = next(d for d in fused
                     if "sr=srcnn_separate" in json.loads((d / "run_info.json").read_text())["group_overrides"])
    srcnn = json.loads((srcnn_dir / "metrics.json").read_text())
    assert float(rows[11]["rank1_mean"]) == pytest.approx(srcnn["table"]["SING fused (Eq. 6-8)"]["rank1"]["mean"],
                                                         abs=1e-3)
    assert float(rows[12]["rank1_mean"]) == pytest.approx(_fused_r1(runs / "sing"), abs=1e-3)
    # The hand-crafted study got only the overrides it understands (no trainer/model keys).
    cmd = json.loads((runs / "table2_handcrafted" / "paper_study.json").read_text())["command"]
    assert "sing_lit.sr_reid" in cmd
    fig5 = json.loads((out / "figure5.json").read_text())
    assert set(fig5["mean_psnr"]) == {"LR", "Bilinear", "Bicubic", "SRCNN", "SING"}
    assert (out / "figure5.png").stat().st_size > 1000 and "figure5.png" in (out / "fig5.md").read_text()
