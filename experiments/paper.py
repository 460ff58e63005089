"""One command per paper artefact: runs the Hydra experiments it needs, then writes it in the paper's layout.

    python experiments/paper.py table2 [data=prid2011 data.root=../shared/data/prid_2011 trainer.max_epochs=5 ...]
    python experiments/paper.py all --out experiments/results/synthetic

Artefacts and the experiment configs (conf/experiment/) they run:

    table1  SING (experiment=sing) next to JUDEA / SLD²L / SDF, whose numbers are QUOTED from the paper
    table2  SR + re-id: experiment=table2_handcrafted (python -m sing_lit.sr_reid), experiment=table2_deep_plain
            (the paper's deep rows), experiment=table2_deep (the same + synthetic-LR stream, labelled), SING
    table3  SING without the synthetic-LR stream (experiment=table3_no_synthetic) vs SING
    table4  every anchor subset of SING's fusion stage (experiment=sing)
    fig5    LR / bilinear / bicubic / SRCNN / SING / HR images with PSNR (checkpoints of table2_deep and sing)
    fig6    rank-1 against alpha (experiment=fig6_alpha)

Every study runs once into ``--runs/<study>`` (default ``multirun/paper/<dataset>``) and is reused by later
artefacts and later calls with the same overrides (an interrupted study resumes: ``ckpt_path=last``).
Overrides after the artefact names go to every study; ``--set STUDY:OVERRIDE`` adds one to one study only
(e.g. ``--set fig6_alpha:+anchor=1/3`` sweeps alpha for one anchor). ``--pretrain "data=grid data.root=..."``
first trains F_fe on that source dataset, re-id only (study ``pretrain_source``, the paper's "DGD pre-trained on
Market" path), and every deep study starts its F_fe from it (``model.init_from=... model.init_parts=[fe]``). Outputs in ``--out`` (default
``experiments/results/<dataset>``): ``<artefact>.md`` and ``.csv`` (mean ± std over trials), ``fig5.png``,
``fig6.png``; each states the dataset, the training budget, the git commit and the commands.
"""

from __future__ import annotations

import argparse
import csv
import io
import itertools
import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from sing_lit.evaluation.ranking import RANK_METRICS as METRICS
from sing_lit.reporting.paper_tables import (
    FIG6_TEXT,
    PAPER_DATASETS,
    PAPER_NAME,
    TABLE1,
    TABLE2,
    TABLE3,
    TABLE4,
    csv_rows,
    measured_table,
    quoted,
    quoted_csv_row,
)
from sing_lit.runtime.anchors import sweep_jobs
from sing_lit.runtime.atomic import write_json_atomic, write_text_atomic
from sing_lit.runtime.cli import CONFIG_DIR, UserError, run_guarded
from sing_lit.sing.fusion_stage import FUSED

REPO = Path(__file__).resolve().parents[1]
STUDIES = {  # name -> (module, multirun)
    "sing": ("sing_lit.train", True),
    "table3_no_synthetic": ("sing_lit.train", True),
    "table2_deep": ("sing_lit.train", True),
    "table2_deep_plain": ("sing_lit.train", True),
    "table2_handcrafted": ("sing_lit.sr_reid", False),
    "fig6_alpha": ("sing_lit.train", True),
    "pretrain_source": ("sing_lit.train", False),  # with --pretrain: F_fe on a source dataset, re-id only
}
PRETRAIN = "pretrain_source"
# target overrides that the source pre-training shares (the net must match; where it logs): not data or budget
PRETRAIN_SHARED = ("backbone", "model.net.backbone", "logger", "callbacks", "seed")
ARTEFACTS = {
    "table1": ["sing"],
    "table2": ["table2_deep_plain", "table2_deep", "sing", "table2_handcrafted"],
    "table3": ["table3_no_synthetic", "sing"],
    "table4": ["sing"],
    "fig5": ["table2_deep", "sing"],
    "fig6": ["fig6_alpha"],
}
SR_LABEL = {"none": "Bicubic", "bilinear": "Bilinear", "srcnn_separate": "SRCNN"}
BACKBONE_LABEL = {"small_cnn": "small CNN", "dgd": "DGD", "resnet": "ResNet-50"}


# ---- running studies ---------------------------------------------------------------------------
# What the hand-crafted study (python -m sing_lit.sr_reid) understands of the shared overrides; the
# training-only ones (trainer, model, backbone, sr, ...) do not apply to it.
SR_REID_KEYS = ("data", "trials", "seed", "fusion", "debug", "paths", "input_size", "srcnn", "lomo", "xqda", "nfst",
                "sr_methods", "reid_methods", "hydra")


def module_overrides(study: str, overrides: list[str]) -> list[str]:
    """The overrides that the study's module understands (all of them, but for the hand-crafted study)."""
    if STUDIES[study][0] == "sing_lit.sr_reid":
        return [o for o in overrides if o.lstrip("+~").split("=")[0].split(".")[0] in SR_REID_KEYS]
    return overrides


def study_command(study: str, overrides: list[str], run_dir: Path) -> list[str]:
    module, multirun = STUDIES[study]
    overrides = module_overrides(study, overrides)
    cmd = [sys.executable, "-m", module, *(["-m"] if multirun else []), f"experiment={study}", *overrides]
    if module == "sing_lit.train":
        cmd.append("ckpt_path=last")  # a re-launch reuses finished trials and resumes interrupted ones
    cmd.append(f"hydra.{'sweep' if multirun else 'run'}.dir={run_dir}")
    return cmd


def pretrain_overrides(source: list[str], overrides: list[str]) -> list[str]:
    """The source pre-training's overrides: the target's net and logging, the source's data and budget."""
    if not any(o.startswith("data=") for o in source):
        raise UserError(f"--pretrain needs the source dataset (data=<name> data.root=<folder>), got {shlex.join(source)!r}")
    shared = [o for o in overrides if o.lstrip("+~").split("=")[0].startswith(PRETRAIN_SHARED)]
    return [*shared, *source, "model.channels_last=true"]


def pretrained_fe(pretrain_dir: Path) -> list[str]:
    """The overrides that start a deep study's F_fe (never its classifier) from the source pre-training."""
    return [f"model.init_from={pretrain_dir / 'trial_0' / 'checkpoints' / 'best.ckpt'}", "model.init_parts=[fe]"]


def run_study(study: str, overrides: list[str], runs: Path) -> Path:
    """Run one study unless it already finished with the same overrides; return its dir."""
    run_dir = runs / study
    record = run_dir / "paper_study.json"
    if record.is_file():
        done = json.loads(record.read_text())
        if done["overrides"] == overrides:
            print(f"[paper] {study}: finished earlier in {run_dir}, reused")
            return run_dir
        raise UserError(f"{run_dir} holds study {study} run with other overrides {done['overrides']} (now "
                        f"{overrides}); pass another --runs dir or delete that one")
    cmd = study_command(study, overrides, run_dir)
    print(f"[paper] {study}: {shlex.join(cmd[1:])}", flush=True)
    proc = subprocess.run(cmd, cwd=REPO)
    if proc.returncode != 0:
        raise UserError(f"study {study} failed (exit {proc.returncode}); its error is printed above; "
                        f"fix it and run the same command again (finished jobs are reused)")
    shown = [c.replace(str(REPO) + "/", "") for c in cmd[1:]]  # repo-relative paths in the written files
    write_json_atomic(record, {"overrides": overrides, "command": shlex.join(["python", *shown]),
                               "git_commit": git_commit()})
    return run_dir


def study_jobs(study: str, overrides: list[str]) -> list[list[str]]:
    """The overrides of each job a study launches: its multirun sweeps (the experiment's
    ``hydra.sweeper.params``, then sweeps given on the command line, which win) expanded, one list per job."""
    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser

    if not STUDIES[study][1]:  # a single run
        return [[f"experiment={study}", *module_overrides(study, overrides)]]
    parser = OverridesParser.create()
    fixed = [o for o in parser.parse_overrides(overrides) if not o.is_sweep_override()]
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("train", overrides=[f"experiment={study}", *(o.input_line for o in fixed),
                                          "paths.root_dir=.", "paths.output_dir=."], return_hydra_config=True)
    params = [f"{k}={v}" for k, v in (cfg.hydra.sweeper.params or {}).items()]
    axes: dict[str, list[str]] = {}
    for o in parser.parse_overrides([*params, *overrides]):
        key = o.get_key_element().lstrip("+~")
        axes.pop(key, None)  # a later override of the same key replaces the earlier one, as Hydra's sweeper does
        axes[key] = [f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()] if o.is_sweep_override() else [o.input_line]
    return [[f"experiment={study}", *job] for job in itertools.product(*axes.values())]


def preflight(studies: dict[str, list[str]], artefacts: dict[str, list[str]]) -> dict[str, Any]:
    """Compose every job of every study and build its trial-0 data (and net) once per distinct config: a
    dataset that lacks what an experiment needs (an LR view, people in both views, validation people for
    sigma, the synthetic-LR stream for PK sampling) fails here, in one line naming the artefact, the study and
    the job, before any study trains. ``artefacts`` maps each study to the artefacts that need it."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from sing_lit.sr_reid import build_datamodule

    classes: dict[str, int] = {}  # data config -> its trial 0's number of training identities
    nets: set[str] = set()
    info: dict[str, Any] | None = None
    for study, overrides in studies.items():
        module = STUDIES[study][0]
        trains = module == "sing_lit.train"
        for job in study_jobs(study, overrides):
            with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
                cfg = compose("train" if trains else "sr_reid", overrides=[*job, "paths.root_dir=.", "paths.output_dir=."])
            name = cfg.data.name
            what = f"{', '.join(artefacts[study])} cannot run on data={name}: study {study}"
            swept = [o for o in job[1:] if o not in overrides]  # the job's own values of the sweeps
            what += f" ({' '.join(swept)})" if swept else ""
            try:
                data_key = json.dumps([module, OmegaConf.to_container(cfg.data, resolve=True),
                                       None if trains else list(cfg.input_size)], sort_keys=True, default=str)
                if data_key not in classes:
                    if trains:
                        dm = instantiate(cfg.data, trial=0, split_out=None)
                        dm.setup("fit")
                    else:
                        dm = build_datamodule(cfg, float(cfg.anchors[0]), 0, "bicubic")
                    if dm.eval_sets["val"] is None or dm.eval_sets["test"] is None:
                        raise UserError("trial 0 has no validation or no test people; fusion picks sigma on "
                                        "validation people (data.protocol.val_ids > 0) and reports on test")
                    classes[data_key] = dm.num_classes
                    if info is None and study != PRETRAIN:
                        info = {"dataset": name, "root": str(dm.data_root)}
                    del dm
                if trains:
                    net_key = json.dumps([OmegaConf.to_container(cfg.model, resolve=True), classes[data_key]],
                                         sort_keys=True, default=str)
                    if net_key not in nets:
                        instantiate(cfg.model, num_classes=classes[data_key])
                        nets.add(net_key)
            except Exception as err:  # noqa: BLE001 - re-raised as one line naming the artefact, study and job
                raise UserError(f"{what}: {err}") from err
    assert info is not None, "preflight needs at least one study on the target dataset"
    return info


# ---- reading results --------------------------------------------------------------------------
def _as_dict(overrides: list[str]) -> dict[str, str]:
    return dict(o.lstrip("+").split("=", 1) for o in overrides if "=" in o)


def fused_groups(sweep: Path) -> list[tuple[dict[str, str], dict[str, Any]]]:
    """(group overrides, fusion metrics.json) of each fused group of a sweep; without fusion (one anchor)
    the single job's test summary in the same shape (``table[FUSED]``, no table4)."""
    groups = []
    for path in sorted(sweep.glob("fuse*/metrics.json")):
        info, m = json.loads((path.parent / "run_info.json").read_text()), json.loads(path.read_text())
        # run_info.json since 2026-11-24; metrics.json of fusion stages run before that
        groups.append((_as_dict(info.get("group_overrides", m.get("group_overrides", []))), m))
    if groups:
        return groups
    from sing_lit.runtime.pipeline import asked_in_sweep

    asked = asked_in_sweep(sweep) or []
    if len(asked) > 1:  # never report unfused anchors in place of a fusion stage that did not finish
        raise UserError(f"{sweep} trained anchors {asked} but holds no fusion result (fuse*/metrics.json): its "
                        "fusion stage failed (see the study's log); run it again with the same command")
    for job in sweep_jobs(sweep):
        m = json.loads((job["dir"] / "metrics.json").read_text())
        over = {k: v for k, v in _as_dict(job["overrides"]).items() if k != "anchor"}
        groups.append((over, {"table": {FUSED: m["test"]}, "table4": {}, "single_anchor": m["anchor"]["label"]}))
    return groups


def budget(sweep: Path) -> dict[str, Any]:
    """What the jobs of a sweep (or a single run) were trained with, from their saved configs."""
    jobs = sweep_jobs(sweep) or [{"dir": sweep, "overrides": []}]
    cfg = yaml.safe_load((jobs[0]["dir"] / ".hydra" / "config.yaml").read_text())
    metrics = json.loads((jobs[0]["dir"] / "metrics.json").read_text())
    trials = [t["trial"] for t in metrics.get("trials", [])] if isinstance(metrics.get("trials"), list) \
        and metrics["trials"] and isinstance(metrics["trials"][0], dict) else metrics.get("trials")
    out = {"dataset": cfg["data"]["name"], "trials": trials, "protocol_trials": cfg["data"]["protocol"]["trials"],
           "input_size": cfg.get("input_size") or cfg["data"]["input_size"]}  # sr_reid's replaces data's
    if "sr_methods" in cfg:  # the hand-crafted study: no training epochs, its SRCNN's steps instead
        out.update(srcnn_steps=cfg["srcnn"]["steps"], srcnn_batch_size=cfg["srcnn"]["batch_size"])
    else:
        out.update(epochs=cfg["trainer"]["max_epochs"], backbone=cfg["model"]["net"]["backbone"]["_target_"],
                   batch_size=cfg["data"]["batch_size"])
    return out


def backbone_label(target: str) -> str:
    for key, label in BACKBONE_LABEL.items():
        if key in target:
            return label
    return target.rsplit(".", 1)[-1]


def git_commit() -> str:
    """HEAD's short hash, plus " (with uncommitted changes)" when tracked files differ from it.

    The results folder is where these scripts write (one dataset's or artefact's files change before
    the next ones are stamped); changes there do not change what the code computes, so they do not make
    the stamp dirty.
    """
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":(exclude)experiments/results"], cwd=REPO,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return sha + (" (with uncommitted changes)" if dirty else "")


# ---- writing artefacts ------------------------------------------------------------------------
class Writer:
    def __init__(self, out: Path, runs: Path, dataset: str, pretrained: bool = False):
        self.out, self.runs, self.dataset, self.pretrained = out, runs, dataset, pretrained
        self.commit = git_commit()

    def header(self, title: str, studies: list[str], command: str) -> str:
        lines = [f"# {title}", "", f"- dataset: **{self.dataset}**", f"- git commit: `{self.commit}`",
                 f"- this file: `{command}`"]
        for s in studies:
            b = budget(self.runs / s)
            desc = ", ".join(f"{k}={v}" for k, v in b.items() if k != "dataset")
            record = json.loads((self.runs / s / "paper_study.json").read_text())
            lines.append(f"- study `{s}` (run at commit `{record.get('git_commit', '?')}`): {desc}; "
                         f"command: `{record['command']}`")
        if self.pretrained:
            record = json.loads((self.runs / PRETRAIN / "paper_study.json").read_text())
            lines.append(f"- F_fe of every deep study starts from study `{PRETRAIN}` (run at commit "
                         f"`{record.get('git_commit', '?')}`; re-id only, on the source dataset): `{record['command']}`")
        lines.append("- cells: mean ± std over trials (population std), in %; CMC single-shot, "
                     "fused by Eq. (6)-(8) unless the row says otherwise")
        return "\n".join(lines) + "\n"

    def write(self, name: str, md: str, rows: list[list[str]]) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        buf = io.StringIO()
        csv.writer(buf).writerows(rows)
        write_text_atomic(self.out / f"{name}.csv", buf.getvalue())
        write_text_atomic(self.out / f"{name}.md", md)
        print(md)


def sing_fused(runs: Path) -> dict[str, Any]:
    groups = fused_groups(runs / "sing")
    return groups[0][1]


def quoted_rank1(dataset: str, table: dict[str, tuple]) -> list[str]:
    """The paper's rank-1 numbers of a Table 3/4-style table for our dataset, if it is one of the paper's."""
    paper = PAPER_NAME.get(dataset)
    if not paper:
        return []
    i = PAPER_DATASETS.index(paper)
    return [f"\nPaper ({paper}, QUOTED, rank-1): " + "; ".join(f"{k} {v[i]}" for k, v in table.items())]


def table1(w: Writer, command: str) -> None:
    sing = sing_fused(w.runs)["table"][FUSED]
    md = [w.header("Table 1: comparing LR re-id methods (%)", ["sing"], command), ""]
    md.append(f"**Measured on {w.dataset}**\n")
    rows = [(["SING (this suite, measured)"], sing)]
    md.append(measured_table(rows, ["method"], METRICS))
    md.append("\n**Published numbers, QUOTED from the paper (JUDEA, SLD²L and SDF are not implemented here; "
              "never re-run)**\n")
    md.append("| dataset | method | r=1 | r=5 | r=10 | r=20 |\n|---|---|---|---|---|---|")
    csv_out = csv_rows(rows, ["method"], METRICS)
    for d in PAPER_DATASETS:
        for method, per in TABLE1.items():
            md.append(f"| {d} | {method} (quoted) | {quoted(per[d])} |")
            csv_out.append(quoted_csv_row(f"{method} ({d})", per[d], METRICS))
    w.write("table1", "\n".join(md) + "\n", csv_out)


def table2(w: Writer, command: str) -> None:
    hand = json.loads((w.runs / "table2_handcrafted" / "metrics.json").read_text())
    deep = fused_groups(w.runs / "table2_deep")
    deep_label = backbone_label(budget(w.runs / "table2_deep").get("backbone", ""))
    rows = []
    for reid in ("XQDA", "NFST"):
        for sr in ("Bilinear", "Bicubic", "SRCNN"):
            stats = hand["table"].get(f"{sr} + {reid}")
            if stats is not None:
                rows.append(([sr, reid], stats))
    # The paper's rows: a plain re-id net (HR and LR streams) on super-resolved inputs; then, labelled,
    # the variant that keeps the synthetic-LR cross-entropy stream (the supervision Table 3 credits to SING).
    plain = fused_groups(w.runs / "table2_deep_plain")
    for groups, label in ((plain, f"{deep_label} (HR + LR streams)"),
                          (deep, f"{deep_label} (+ synthetic-LR stream, no L_sr)")):
        for sr_key in ("bilinear", "none", "srcnn_separate"):
            for over, m in groups:
                if over.get("sr") == sr_key:
                    rows.append(([SR_LABEL[sr_key], label], m["table"][FUSED]))
    rows.append((["SING (joint)", deep_label], sing_fused(w.runs)["table"][FUSED]))
    md = [w.header("Table 2: combinations of image super-resolution and person re-id (%)",
                   ["table2_handcrafted", "table2_deep_plain", "table2_deep", "sing"], command), ""]
    md.append(measured_table(rows, ["Super-Resolution", "Re-ID"], METRICS))
    paper = PAPER_NAME.get(w.dataset)
    if paper:
        md.append(f"\nPaper ({paper}, QUOTED, rank 1/5/10/20):\n\n| SR | Re-ID | r=1 | r=5 | r=10 | r=20 |\n"
                  "|---|---|---|---|---|---|")
        md += [f"| {sr} | {reid} | {quoted(v[paper])} |" for (sr, reid), v in TABLE2.items()]
    w.write("table2", "\n".join(md) + "\n", csv_rows(rows, ["sr", "reid"], METRICS))


def table3(w: Writer, command: str) -> None:
    nosyn = fused_groups(w.runs / "table3_no_synthetic")[0][1]["table"][FUSED]
    rows = [(["SING (No Synthetic LR)"], nosyn), (["SING"], sing_fused(w.runs)["table"][FUSED])]
    md = [w.header("Table 3: effect of jointly super-resolving and classifying synthetic LR images (%)",
                   ["table3_no_synthetic", "sing"], command), "", measured_table(rows, ["model"], METRICS)]
    md += quoted_rank1(w.dataset, TABLE3)
    w.write("table3", "\n".join(md) + "\n", csv_rows(rows, ["model"], METRICS))


def table4(w: Writer, command: str) -> None:
    m = sing_fused(w.runs)
    rows = [([name.replace("M", "M_").replace("+", " + ")], stats) for name, stats in m["table4"].items()]
    rows.append((["unweighted mean of the three (reference)"], m["table"]["mean of anchors (unweighted)"]))
    sigmas = m.get("sigma")
    md = [w.header("Table 4: effect of scale-adaptive multi-resolution fusion (%)", ["sing"], command), "",
          f"sigma of Eq. (8) chosen on the validation people, per trial: {sigmas}", "",
          measured_table(rows, ["models"], METRICS)]
    md += quoted_rank1(w.dataset, TABLE4)
    w.write("table4", "\n".join(md) + "\n", csv_rows(rows, ["models"], METRICS))


def sr_loss_reduction(study_dir: Path) -> str:
    """The L_sr reduction (Eq. 2) the study's jobs trained with, from their composed configs."""
    found = {(yaml.safe_load(p.read_text()).get("model") or {}).get("sr_loss_reduction", "mean")
             for p in sorted(study_dir.glob("*/.hydra/config.yaml"))}
    if len(found) > 1:
        raise UserError(f"{study_dir} mixes L_sr reductions {sorted(found)}: alpha has no single unit there")
    return found.pop() if found else "mean"


def fig6(w: Writer, command: str) -> None:
    from sing_lit.viz.plots import plot_metric_curve

    points = []
    for over, m in fused_groups(w.runs / "fig6_alpha"):
        points.append((float(over["model.alpha"]), m["table"][FUSED], m.get("single_anchor")))
    points.sort(key=lambda p: p[0])
    single = points[0][2] if points and points[0][2] else None
    what = f"anchor M{single} alone (one anchor swept, no fusion)" if single else "fused SING (Eq. 6-8)"
    reduction = sr_loss_reduction(w.runs / "fig6_alpha")
    units = ("per pixel: L_sr is the mean squared error, so alpha here is the paper's alpha times 3HW"
             if reduction == "mean" else "the paper's: L_sr is the squared Frobenius norm of each image")
    rows = [([f"{a:g}"], stats) for a, stats, _ in points]
    md = [w.header("Figure 6: balancing image SR and person re-id loss (alpha of Eq. 5)", ["fig6_alpha"], command),
          "", f"Plotted: test rank-1 and mAP of the {what}, mean ± std over trials.",
          f"alpha's units (model.sr_loss_reduction={reduction}): {units}.", "",
          measured_table(rows, ["alpha"], METRICS), "", "![Figure 6](fig6.png)"]
    paper = PAPER_NAME.get(w.dataset)
    if paper in FIG6_TEXT:
        md.append(f"\nPaper ({paper}, QUOTED from the text, rank-1): " +
                  ", ".join(f"alpha={a:g}: {v}" for a, v in FIG6_TEXT[paper].items()))
    w.out.mkdir(parents=True, exist_ok=True)
    plot_metric_curve([a for a, _, _ in points], {k: [(s[k]["mean"], s[k]["std"]) for _, s, _ in points]
                                                  for k in ("rank1", "mAP")},
                      w.out / "fig6.png", xlabel=f"alpha (Eq. 5; L_sr reduction: {reduction})",
                      title=f"Fig. 6 on {w.dataset}: {what}")
    w.write("fig6", "\n".join(md) + "\n", csv_rows(rows, ["alpha"], METRICS))


def fig5(w: Writer, command: str) -> None:
    from sing_lit.figure5 import figure5
    from sing_lit.runtime.pipeline import anchor_groups

    sing = next(iter(anchor_groups(w.runs / "sing").values()))
    srcnn = [a for rest, a in anchor_groups(w.runs / "table2_deep").items() if "sr=srcnn_separate" in rest]
    if not srcnn:
        raise UserError(f"{w.runs / 'table2_deep'} has no sr=srcnn_separate jobs: Fig. 5 needs the separately "
                        "trained SRCNN")
    by_ratio = {a.ratio: a for a in srcnn[0]}
    anchor = min((a for a in sing if a.ratio in by_ratio), key=lambda a: abs(a.ratio - 1 / 3))
    trial = min(anchor.checkpoints)
    info = figure5(anchor.checkpoints[trial], by_ratio[anchor.ratio].checkpoints[trial], w.out)
    means = info.get("mean_psnr", {})
    md = [w.header("Figure 5: super-resolved person images (PSNR in dB against HR)", ["sing", "table2_deep"], command),
          "", f"Anchor {anchor.name} (ratio {anchor.ratio:.3f}), trial {trial}.", "",
          "Mean PSNR over the whole test gallery: " + ", ".join(f"{k} {v:.2f} dB" for k, v in means.items()),
          "", "![Figure 5](figure5.png)",
          "\nPaper (QUOTED, Fig. 5 top/bottom): bilinear 19.04/21.25, bicubic 19.24/21.60, SRCNN 19.86/22.72, "
          "SING 17.95/18.97 dB"]
    w.write("fig5", "\n".join(md) + "\n", [["column", "mean_psnr_db"], *([k, f"{v:.4f}"] for k, v in means.items())])


WRITERS = {"table1": table1, "table2": table2, "table3": table3, "table4": table4, "fig5": fig5, "fig6": fig6}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("artefacts", nargs="+", help=f"{', '.join(ARTEFACTS)} or all")
    parser.add_argument("--out", type=Path, default=None, help="result dir (default experiments/results/<dataset>)")
    parser.add_argument("--runs", type=Path, default=None, help="study dir (default multirun/paper/<dataset>)")
    parser.add_argument("--set", action="append", default=[], metavar="STUDY:OVERRIDE",
                        help="an override for one study only, e.g. fig6_alpha:+anchor=1/3")
    parser.add_argument("--pretrain", default=None, metavar="OVERRIDES",
                        help="source dataset, e.g. \"data=grid data.root=../shared/data/grid\": F_fe is first trained "
                             f"there (study {PRETRAIN}, re-id only), and every deep study starts from it")
    argv = list(sys.argv[1:] if argv is None else argv)
    # Hydra overrides (key=value, ~key) may sit anywhere; everything else is ours.
    ours, overrides = [], []
    for i, a in enumerate(argv):
        takes_value = i > 0 and argv[i - 1] in ("--set", "--out", "--runs", "--pretrain")
        is_override = ("=" in a or a.startswith("~")) and not a.startswith("-") and not takes_value
        (overrides if is_override else ours).append(a)
    args = parser.parse_args(ours)
    artefacts = list(ARTEFACTS) if args.artefacts == ["all"] else args.artefacts

    def go() -> None:
        unknown = [a for a in artefacts if a not in ARTEFACTS]
        if unknown:
            raise UserError(f"unknown artefact(s) {unknown}; choose from {list(ARTEFACTS)} or all")
        per_study: dict[str, list[str]] = {}
        for item in args.set:
            study, _, override = item.partition(":")
            if study not in STUDIES or "=" not in override:
                raise UserError(f"--set {item!r}: expected STUDY:key=value with STUDY one of {list(STUDIES)}")
            per_study.setdefault(study, []).append(override)
        order = list(dict.fromkeys(s for a in artefacts for s in ARTEFACTS[a]))
        plan = {study: [*overrides, *per_study.get(study, [])] for study in order}
        needed_by = {study: [a for a in artefacts if study in ARTEFACTS[a]] for study in order}
        if args.pretrain is not None:
            source = pretrain_overrides(shlex.split(args.pretrain), overrides)
            plan, needed_by[PRETRAIN] = {PRETRAIN: [*source, *per_study.get(PRETRAIN, [])], **plan}, ["--pretrain"]
        info = preflight(plan, needed_by)  # every job of every study composed, its data built: errors come now
        runs = (args.runs or REPO / "multirun" / "paper" / info["dataset"]).resolve()
        out = (args.out or REPO / "experiments" / "results" / info["dataset"]).resolve()
        init = pretrained_fe(run_study(PRETRAIN, plan.pop(PRETRAIN), runs)) if args.pretrain is not None else []
        for study in plan:
            trains = STUDIES[study][0] == "sing_lit.train"
            run_study(study, [*overrides, *(init if trains else []), *per_study.get(study, [])], runs)
        w = Writer(out, runs, info["dataset"], pretrained=args.pretrain is not None)
        command = shlex.join(["python", "experiments/paper.py", *argv])
        for a in artefacts:
            WRITERS[a](w, command)
        print(f"[paper] wrote {', '.join(artefacts)} to {out}")

    run_guarded(go)


if __name__ == "__main__":
    main()
