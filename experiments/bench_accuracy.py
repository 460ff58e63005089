"""Accuracy benchmark: SING fused vs the same recipe with ``sr=none`` vs LOMO+XQDA, on real data. Prints JSON.

    python experiments/bench_accuracy.py data=prid2011 data.root=../shared/data/prid_2011 [--trials 0,1,2]
    python experiments/bench_accuracy.py data=grid data.root=../shared/data/grid --out experiments/results/grid

For one dataset it runs three anchors (1/2, 1/3, 1/4) plus the fusion stage for three deep models, SING
(the default F_sr, jointly trained), the same recipe with ``sr=none`` (bicubic only), the plain re-id net
of Table 2's deep rows on bicubic inputs (``plain``: HR and LR streams only, no synthetic-LR stream), and
``python -m sing_lit.sr_reid`` with bicubic + LOMO + XQDA, fused the same way. Every study runs with the
defaults of ``conf/`` plus the overrides given here, on the trials asked for. It reports, per model, fused
rank-1 / mAP (mean ± std over trials), the best single anchor, the CPU seconds and wall-clock seconds
spent, and writes ``accuracy.json`` and ``accuracy.md`` into ``--out`` (default
``experiments/results/<dataset>``). A study that finished earlier in ``--runs`` with the same command is reused.

``--pretrain "data=grid data.root=../shared/data/grid"`` first trains F_fe on a source
dataset, re-id only (``experiment=pretrain_source``, the paper's "DGD pre-trained on Market" path), once; every
deep study then starts F_fe from it (``model.init_from=... model.init_parts=[fe]``). Its cost is reported on
its own row, and added to each deep study's in the ``CPU s with pre-training`` column.

SING's per-trial differences to each other model (paired: the same trials, splits and seeds) are reported with
their mean, std and the number of trials SING is ahead in. ``--combine DIR DIR ...`` pools the reports of
earlier runs on disjoint trials of one dataset (e.g. trials 0-2, then 3-4) into one, exactly (means and
population stds from each part's), without training anything:

    python experiments/bench_accuracy.py --combine experiments/results/prid2011 experiments/results/prid2011/trials_3_4 \
        --out experiments/results/prid2011/trials_0_4
"""

from __future__ import annotations

import argparse
import json
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# experiments/paper.py: the one commit stamp of committed results, and the one source pre-training
from paper import PRETRAIN, git_commit, pretrain_overrides, pretrained_fe, study_command
from sing_lit.reporting.report import cell, pooled, summarize
from sing_lit.runtime.atomic import write_json_atomic, write_text_atomic
from sing_lit.runtime.cli import UserError
from sing_lit.sing.fusion_stage import BEST, FUSED

REPO = Path(__file__).resolve().parents[1]
ANCHORS = "1/2,1/3,1/4"
STUDIES = {  # name -> (label, module, extra overrides)
    "sing": ("SING fused", "sing_lit.train", []),  # plus sr=<--sr>
    "bicubic": ("same recipe, sr=none, fused", "sing_lit.train", ["sr=none"]),
    # Table 2's deep "bicubic, then re-id" row (experiment=table2_deep_plain, sr=none): HR and LR streams only,
    # no synthetic-LR cross-entropy, no L_sr; the x^h2l images are built as there, and no loss reads them
    "plain": ("plain re-id net (HR + LR streams), sr=none, fused", "sing_lit.train",
              ["sr=none", "model.alpha=0.0", "model.synthetic_stream=false", "data.synthetic_stream=true"]),
    "lomo_xqda": ("LOMO+XQDA fused", "sing_lit.sr_reid", ["sr_methods=[bicubic]", "reid_methods=[xqda]"]),
}
METRICS = ("rank1", "mAP")
OTHERS = ("bicubic", "plain", "lomo_xqda")  # SING's paired differences are reported against each


def children_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def pretrain_command(source: list[str], overrides: list[str], run_dir: Path) -> list[str]:
    return study_command(PRETRAIN, pretrain_overrides(source, overrides), run_dir)


def command(study: str, overrides: list[str], trials: list[int], run_dir: Path, sr: str = "srcnn",
            sr_init_steps: int = 0) -> list[str]:
    _, module, extra = STUDIES[study]
    if study == "sing":
        extra = [f"sr={sr}", *([f"model.sr_init_steps={sr_init_steps}"] if sr_init_steps else [])]
    trial_arg = f"trials=[{','.join(map(str, trials))}]"
    if module == "sing_lit.sr_reid":  # only its own keys: data, trials, seed, and its method choices
        shared = [o for o in overrides if o.lstrip("+~").split("=")[0].split(".")[0] in ("data", "seed")]
        return [sys.executable, "-m", module, *shared, *extra, trial_arg, f"hydra.run.dir={run_dir}"]
    return [sys.executable, "-m", module, "-m", f"+anchor={ANCHORS}", *overrides, *extra, trial_arg,
            "ckpt_path=last", f"hydra.sweep.dir={run_dir}"]


def run(study: str, cmd: list[str], run_dir: Path) -> dict[str, Any]:
    record = run_dir / "bench_study.json"
    shown = shlex.join(["python", *[c.replace(str(REPO) + "/", "") for c in cmd[1:]]])
    if record.is_file() and json.loads(record.read_text())["command"] == shown:
        print(f"[accuracy] {study}: reused {run_dir}", file=sys.stderr)
        return json.loads(record.read_text())
    print(f"[accuracy] {study}: {shown}", file=sys.stderr, flush=True)
    cpu0, t0 = children_cpu_s(), time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO)
    if proc.returncode != 0:
        sys.exit(f"error: study {study} failed (exit {proc.returncode}); its error is printed above")
    out = {"command": shown, "git_commit": git_commit(), "wall_s": round(time.perf_counter() - t0, 1),
           "cpu_s": round(children_cpu_s() - cpu0, 1)}
    write_json_atomic(record, out)
    return out


def results(study: str, runs: Path) -> dict[str, Any]:
    # sr_reid writes one fusion dir per (SR, re-id) method, in the fusion stage's format
    trials = json.loads((runs / study / ("bicubic_xqda" if study == "lomo_xqda" else "fuse") / "metrics.json")
                        .read_text())["trials"]
    fused = summarize([t["rows"][FUSED] for t in trials], METRICS)
    best = summarize([t["rows"][BEST] for t in trials], METRICS)
    return {"fused": fused, "best_single_anchor": best, "per_trial_fused_rank1": [t["rows"][FUSED]["rank1"]
                                                                                    for t in trials]}


def paired(report: dict[str, Any]) -> None:
    """SING's fused rank-1 minus each other model's: of the means, and per trial (paired)."""
    s = report["studies"]
    for other in OTHERS:
        if "sing" not in s or other not in s:
            continue
        report[f"sing_minus_{other}_rank1"] = round(s["sing"]["fused"]["rank1"]["mean"]
                                                    - s[other]["fused"]["rank1"]["mean"], 2)
        diffs = [a - b for a, b in zip(s["sing"]["per_trial_fused_rank1"], s[other]["per_trial_fused_rank1"],
                                       strict=True)]
        stat = summarize([{"d": d} for d in diffs], ["d"])["d"]
        report[f"sing_minus_{other}_rank1_paired"] = {
            "per_trial": diffs, "mean": round(stat["mean"], 2), "std": round(stat["std"], 2),
            "sing_ahead_in": sum(d > 0 for d in diffs), "level_in": sum(d == 0 for d in diffs), "trials": len(diffs)}


def markdown(report: dict[str, Any]) -> str:
    s, pre = report["studies"], report.get("pretrain")
    rows = ["| model | fused r=1 | fused mAP | best single anchor r=1 | CPU s | wall s |"
            + (" CPU s with pre-training |" if pre else ""), "|---|---|---|---|---|---|" + ("---|" if pre else "")]
    for v in s.values():
        rows.append(f"| {v['label']} | {cell(v['fused']['rank1'])} | {cell(v['fused']['mAP'])} | "
                    f"{cell(v['best_single_anchor']['rank1'])} | {v['cpu_s']:.0f} | {v['wall_s']:.0f} |"
                    + (f" {v.get('cpu_s_with_pretrain', v['cpu_s']):.0f} |" if pre else ""))
    if pre:
        rows.append(f"| F_fe pre-training on the source ({'once per part' if 'parts' in report else 'once'}, "
                    f"shared by the deep models) | - | - | - | {pre['cpu_s']:.0f} | {pre['wall_s']:.0f} | - |")
    diffs = []
    for other in OTHERS:
        d = report.get(f"sing_minus_{other}_rank1_paired")
        if d:
            diffs.append(f"- fused rank-1, SING minus \"{s[other]['label']}\", per trial: "
                         f"{' / '.join(f'{x:+.1f}' for x in d['per_trial'])} (mean {d['mean']:+.2f} ± {d['std']:.2f}; "
                         f"SING ahead in {d['sing_ahead_in']} of {d['trials']}, level in {d['level_in']})")
    if "parts" in report:
        head = [f"- trials {report['trials']}, pooled from {len(report['parts'])} runs (mean ± population std over "
                "all their trials, in %; CPU and wall s summed over the runs):"]
        for part in report["parts"]:
            head.append(f"  - `{part['path']}`: git commit `{part['git_commit']}`, trials {part['trials']}")
        commands = [f"- {k} ({i + 1}): `{c}`" for k, v in ([("pretrain", pre)] if pre else []) + list(s.items())
                    for i, c in enumerate(v["commands"])]
    else:
        head = [f"- git commit: `{report['git_commit']}`; trials {report['trials']}; mean ± std over trials, in %"]
        commands = [*([f"- pretrain: `{pre['command']}`"] if pre else []), *[f"- {k}: `{v['command']}`" for k, v in s.items()]]
    return "\n".join([f"# Accuracy benchmark: {report['dataset']}", "", *head, *commands, "", *rows, "", *diffs, ""])


def combine(dirs: list[Path], repo: Path = REPO) -> dict[str, Any]:
    """One report from the ``accuracy.json`` of runs on disjoint trials of one dataset."""
    parts = []
    for d in dirs:
        path = d / "accuracy.json"
        if not path.is_file():
            raise UserError(f"--combine: {path} does not exist (expected a folder written by bench_accuracy.py)")
        parts.append(json.loads(path.read_text()))
    names = [str(d.resolve().relative_to(repo)) if d.resolve().is_relative_to(repo) else str(d) for d in dirs]
    if len({p["dataset"] for p in parts}) != 1:
        raise UserError(f"--combine: the runs are of different datasets {[p['dataset'] for p in parts]}")
    trials = [t for p in parts for t in p["trials"]]
    if len(set(trials)) != len(trials):
        raise UserError(f"--combine: the runs share trials ({[p['trials'] for p in parts]}); pool disjoint ones only")
    studies = [list(p["studies"]) for p in parts]
    if any(s != studies[0] for s in studies) or any(("pretrain" in p) != ("pretrain" in parts[0]) for p in parts):
        raise UserError(f"--combine: the runs hold different studies {studies}; pool runs of the same models")
    report: dict[str, Any] = {"bench": "accuracy", "dataset": parts[0]["dataset"], "trials": trials,
                              "parts": [{"path": n, "git_commit": p["git_commit"], "trials": p["trials"]}
                                        for n, p in zip(names, parts)], "studies": {}}
    cost = ("cpu_s", "wall_s", "cpu_s_with_pretrain")
    if "pretrain" in parts[0]:
        report["pretrain"] = {"commands": [p["pretrain"]["command"] for p in parts],
                              **{k: round(sum(p["pretrain"][k] for p in parts), 1) for k in cost[:2]}}
    for study in studies[0]:
        each = [p["studies"][study] for p in parts]
        report["studies"][study] = {
            "label": each[0]["label"], "commands": [e["command"] for e in each],
            **{k: round(sum(e[k] for e in each), 1) for k in cost if k in each[0]},
            "fused": {m: pooled([e["fused"][m] for e in each]) for m in METRICS},
            "best_single_anchor": {m: pooled([e["best_single_anchor"][m] for e in each]) for m in METRICS},
            "per_trial_fused_rank1": [r for e in each for r in e["per_trial_fused_rank1"]]}
    paired(report)
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("overrides", nargs="*", help="Hydra overrides for every study (data=... data.root=...)")
    ap.add_argument("--trials", default="0,1,2")
    ap.add_argument("--studies", default=",".join(STUDIES))
    ap.add_argument("--runs", type=Path, default=None, help="default: multirun/accuracy/<dataset>")
    ap.add_argument("--out", type=Path, default=None, help="default: experiments/results/<dataset>")
    ap.add_argument("--sr", default="srcnn", help="SING's F_sr: srcnn (the paper's) or fsrcnn (cheaper: SING measured 1.26x the CPU of sr=none, SRCNN 1.34x FSRCNN per step)")
    ap.add_argument("--sr-init-steps", type=int, default=0,
                    help="SING only: F_sr first trained alone by MSE for this many steps (model.sr_init_steps)")
    ap.add_argument("--pretrain", default=None, metavar="OVERRIDES",
                    help="source dataset overrides, e.g. \"data=grid data.root=../shared/data/grid\" (its budget: 8 epochs): "
                         "F_fe is first trained there (re-id only), and every deep study starts from it")
    ap.add_argument("--combine", nargs="+", type=Path, default=None, metavar="DIR",
                    help="pool earlier reports (DIR/accuracy.json) on disjoint trials of one dataset into --out; trains nothing")
    args = ap.parse_args()
    if args.combine:
        if args.out is None:
            sys.exit("error: --combine needs --out <folder> for the pooled accuracy.{json,md}")
        try:
            report = combine(args.combine)
        except UserError as err:
            sys.exit(f"error: {err}")
        write_json_atomic(args.out / "accuracy.json", report)
        write_text_atomic(args.out / "accuracy.md", markdown(report))
        print(json.dumps(report, indent=1))
        return
    dataset = next((o.split("=", 1)[1] for o in args.overrides if o.startswith("data=")), "synthetic")
    runs = args.runs or REPO / "multirun" / "accuracy" / dataset
    out = args.out or REPO / "experiments" / "results" / dataset
    trials = [int(t) for t in args.trials.split(",")]
    report: dict[str, Any] = {"bench": "accuracy", "dataset": dataset, "trials": trials, "overrides": args.overrides,
                              "git_commit": git_commit(), "studies": {}}
    deep = list(args.overrides)
    if args.pretrain:
        try:
            cmd = pretrain_command(shlex.split(args.pretrain), args.overrides, runs / "pretrain")
        except UserError as err:
            sys.exit(f"error: {err}")
        report["pretrain"] = run("pretrain", cmd, runs / "pretrain")
        deep += pretrained_fe(runs / "pretrain")
    for study in args.studies.split(","):
        is_deep = STUDIES[study][1] == "sing_lit.train"
        cost = run(study, command(study, deep if is_deep else args.overrides, trials, runs / study, args.sr,
                                  args.sr_init_steps), runs / study)
        report["studies"][study] = {"label": STUDIES[study][0], **cost, **results(study, runs)}
        if args.pretrain and is_deep:
            report["studies"][study]["cpu_s_with_pretrain"] = round(cost["cpu_s"] + report["pretrain"]["cpu_s"], 1)
    paired(report)
    md = markdown(report)
    write_json_atomic(out / "accuracy.json", report)
    write_text_atomic(out / "accuracy.md", md)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
