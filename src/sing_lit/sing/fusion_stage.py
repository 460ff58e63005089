"""The fusion-eval stage's work (Eq. 6-8), shared by ``sing_lit.fuse``, the multirun pipeline and ``sr_reid``.

For each trial: extract every val/test image's features once per anchor, compute each
anchor's L2 distances, choose sigma by cross-validation on the validation identities (with models
that did not train on them: ``val_mode=refit`` takes the holdout runs' checkpoints), then
report on the test identities the fused distance next to two references (the unweighted
mean of the anchors' distances and the best single anchor, picked on validation) and every
non-empty anchor subset (the paper's Table 4). Writes metrics.json, table.md, table.csv and
cmc.png into the output dir and prints the table.

With re-ranking (``eval.rerank=true``, :mod:`sing_lit.evaluation.rerank`) each anchor's probe-gallery
distances are re-ranked with that anchor's own probe-probe and gallery-gallery distances, for val and
test alike, and everything above (sigma's CV included) runs on the re-ranked distances. Eq. (6)'s
per-probe weights need a probe's resolution ratio r (Eq. 7), which gallery-gallery pairs do not have,
so a fused distance has no gallery-gallery part to re-rank; each anchor's distances do.
"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path
from typing import Any

import hydra
import torch

from sing_lit.evaluation.protocol import REPORTED_METRICS, evaluate_ranking, reported, table_columns
from sing_lit.evaluation.ranking import pairwise_l2
from sing_lit.evaluation.rerank import Rerank
from sing_lit.reporting.report import format_table, summarize, table_csv
from sing_lit.runtime.anchors import AnchorRun, build_net, check_trial, data_config, load_checkpoint
from sing_lit.runtime.atomic import write_json_atomic, write_text_atomic
from sing_lit.runtime.cli import UserError
from sing_lit.runtime.run_info import write_run_info
from sing_lit.sing.fusion import (
    anchor_name,
    fuse_distances,
    fusion_weights,
    mean_fusion,
    resolution_ratio,
    select_sigma,
)

log = logging.getLogger("sing_lit.fuse")

FUSED, MEAN, BEST = "SING fused (Eq. 6-8)", "mean of anchors (unweighted)", "best single anchor (by val)"


@torch.no_grad()
def extract(net, loader, lr: bool) -> dict[str, torch.Tensor]:
    """``feat``, ``pid`` and ``area`` (genuine pixels) of one eval set, and ``cam`` where the set has cameras
    (the query/gallery protocol)."""
    feats, rows = [], {}
    for batch in loader:
        x = batch["image"].float().div_(255.0)
        feats.append(net.lr_features(x) if lr else net.hr_features(x))
        for key in ("pid", "area", "cam"):
            if key in batch:
                rows.setdefault(key, []).append(batch[key])
    return {"feat": torch.cat(feats).float(), **{k: torch.cat(v) for k, v in rows.items()}}


def anchor_distances(anchors: list[AnchorRun], trial: int, data: dict[str, Any] | None = None,
                     rerank: Rerank | None = None) -> dict[str, Any]:
    """Per anchor and role (val/test): the probe x gallery distances, plus ids, r (Eq. 7) and, under the
    query/gallery protocol, the cameras (``q_cam``, ``g_cam``).

    Test distances come from each anchor's tested checkpoint; validation distances, which choose sigma
    and the best single anchor, from the checkpoint that the validation people were held out of: the
    same one, or with ``data.protocol.val_mode=refit`` the holdout run's (a model trained on them would
    turn the cross-validation into a training-set fit, so it is refused). ``data`` may hold ``root`` and
    ``cache_dir`` to replace the trained ones (see :func:`sing_lit.runtime.anchors.data_config`). With
    ``rerank`` the distances are each anchor's re-ranked ones (see the module docstring).
    """
    paths = {"val": {a.name: a.val_checkpoint(trial) for a in anchors},
             "test": {a.name: a.checkpoints[trial] for a in anchors}}
    loaded = {p: load_checkpoint(p) for role in paths.values() for p in role.values()}
    ckpts = {role: {n: loaded[p] for n, p in by_name.items()} for role, by_name in paths.items()}
    metas = {role: {n: c["sing_lit"] for n, c in by_name.items()} for role, by_name in ckpts.items()}
    for role in ("test", "val"):
        check_trial(anchors, metas[role], trial)
    for a in anchors:
        held_out, tested = metas["val"][a.name]["data"], metas["test"][a.name]["data"]
        if held_out.get("trained_on") == "train+val":
            raise UserError(f"anchor {a.name}: checkpoint {paths['val'][a.name]} was trained on the validation people "
                            "(data.protocol.val_mode=refit), so sigma cannot be chosen on them, and no holdout-run "
                            "checkpoint is known for it; fuse the anchor's run dir, or keep trial_<k>/holdout/ next "
                            "to the checkpoint")
        if held_out["split"] != tested["split"]:
            raise UserError(f"anchor {a.name}: its holdout checkpoint {paths['val'][a.name]} and its tested checkpoint "
                            f"{paths['test'][a.name]} were trained on different splits")
    data_cfg = data_config(metas["test"][anchors[0].name], **(data or {}))
    dm = hydra.utils.instantiate(data_cfg, trial=trial, split_out=None)
    dm.setup_eval()
    if dm.signature()["split"] != metas["test"][anchors[0].name]["data"]["split"]:
        raise UserError(f"anchor {anchors[0].name}: the dataset at {dm.data_root} no longer gives the split it was "
                        "trained on (files changed, or a different split file)")
    out: dict[str, Any] = {}
    for role in ("val", "test"):
        if dm.eval_sets[role] is None:
            raise UserError(f"the {role} split of {dm.name} is empty; fusion needs validation identities to pick "
                            "sigma (data.protocol.val_ids > 0)")
        probe_loader, gallery_loader = dm._eval_loaders(role)
        dists = []
        for a in anchors:
            net = build_net(ckpts[role][a.name], paths[role][a.name])
            q, g = extract(net, probe_loader, lr=True), extract(net, gallery_loader, lr=False)
            dists.append(pairwise_l2(q["feat"], g["feat"]) if rerank is None
                         else rerank.distances(q["feat"], g["feat"], where=f"{role} set of {a.name}"))
        out[role] = {"dists": torch.stack(dists), "q_pid": q["pid"], "g_pid": g["pid"],
                     "r": resolution_ratio(q["area"], g["area"])}
        if "cam" in q:
            out[role].update(q_cam=q["cam"], g_cam=g["cam"])
    return out


def fuse_trial(anchors: list[AnchorRun], trial: int, sigma_grid: list[float], metric: str,
               data: dict[str, Any] | None = None, rerank: Rerank | None = None) -> dict[str, Any]:
    """One trial: sigma by CV on val, then every row of the result table on test."""
    d = anchor_distances(anchors, trial, data, rerank)
    return fuse_precomputed(d, [a.ratio for a in anchors], [a.name for a in anchors], trial, sigma_grid, metric)


def fuse_precomputed(d: dict[str, Any], ratios: list[float], names: list[str], trial: int,
                     sigma_grid: list[float], metric: str) -> dict[str, Any]:
    """Fusion rows of one trial from precomputed distances of any re-id method.

    ``d["val"]`` and ``d["test"]`` hold ``dists`` (A, Nq, Ng) (one matrix per anchor, in the order of
    ``ratios``), ``q_pid``, ``g_pid`` and ``r`` (Eq. 7), and ``q_cam``, ``g_cam`` under the query/gallery
    protocol (then every metric is camera-aware and mINP joins them). sigma is chosen on val for every subset of
    >= 2 anchors; the rows are the fused distance, the unweighted mean, the best single anchor by val,
    and every non-empty subset (Table 4), all measured on test.
    """
    val, test = d["val"], d["test"]

    def evaluate(dist: torch.Tensor, role: dict) -> dict[str, Any]:
        return evaluate_ranking(dist, role["q_pid"], role["g_pid"], role.get("q_cam"), role.get("g_cam"))

    def metrics(dist: torch.Tensor, role: dict) -> dict[str, Any]:
        m = evaluate(dist, role)
        return {**reported(m), "cmc": [float(c) for c in m["cmc"][:20]]}

    rows: dict[str, dict] = {}
    sigmas: dict[str, float] = {}
    curves: dict[str, list] = {}
    subsets = [list(c) for k in range(1, len(ratios) + 1) for c in itertools.combinations(range(len(ratios)), k)]
    for idx in subsets:  # Table 4's order: singles, pairs, ..., all anchors
        name = "+".join(anchor_name(ratios[i]) for i in idx)
        if len(idx) == 1:
            rows[name] = metrics(test["dists"][idx[0]], test)
            continue
        sub = [ratios[i] for i in idx]
        sigma, curve = select_sigma(val["dists"][idx], val["r"], sub, val["q_pid"], val["g_pid"], sigma_grid, metric,
                                    probe_cams=val.get("q_cam"), gallery_cams=val.get("g_cam"))
        sigmas[name], curves[name] = sigma, curve
        rows[name] = metrics(fuse_distances(test["dists"][idx], fusion_weights(test["r"], sub, sigma)), test)
    all_name = "+".join(anchor_name(m) for m in ratios)
    val_single = [evaluate(val["dists"][i], val)[metric] for i in range(len(ratios))]
    best_i = max(range(len(ratios)), key=lambda i: (val_single[i], -i))
    result = {
        "trial": trial,
        "sigma": sigmas.get(all_name),
        "sigma_cv_curve": curves.get(all_name, []),
        "sigma_per_subset": sigmas,
        "rows": {
            FUSED: rows[all_name],
            MEAN: metrics(mean_fusion(test["dists"]), test),
            BEST: {**rows[anchor_name(ratios[best_i])], "anchor": names[best_i]},
        },
        "subsets": rows,
        "resolution_ratio": {"test_min": float(test["r"].min()), "test_max": float(test["r"].max())},
    }
    return result


def collect_trials(anchors: list[AnchorRun]) -> list[int]:
    common = sorted(set.intersection(*(set(a.checkpoints) for a in anchors)))
    for a in anchors:
        extra = sorted(set(a.checkpoints) - set(common))
        if extra:
            raise UserError(f"anchor {a.name} has trials {extra} that other anchors lack; "
                            "train every anchor on the same trials")
    return common


def run_fusion(anchors: list[AnchorRun], out_dir: str | Path, sigma_grid: list[float], metric: str = "rank1",
               title: str = "", wandb_init: dict[str, Any] | None = None,
               info: dict[str, Any] | None = None, data: dict[str, Any] | None = None,
               rerank: Rerank | None = None) -> dict[str, Any]:
    """Fuse anchors over all their common trials and write the result files into ``out_dir``.

    With ``wandb_init`` (see :func:`sing_lit.runtime.wandb_runs.fusion_wandb_init`) the same work runs inside a
    W&B run (job_type ``fuse``) that logs the result table, the sigma CV curve and the CMC curves.
    ``info`` goes into run_info.json as is (the pipeline records each group's overrides there; metrics.json
    stays the same bytes whichever way the stage was started). ``data`` (``root``, ``cache_dir``) replaces
    where the anchors' dataset is, for run dirs moved to another machine. ``rerank``: re-rank each anchor's
    distances first (module docstring); metrics.json then records it under ``rerank``.
    """
    if wandb_init:
        from sing_lit.runtime.wandb_runs import fusion_run, log_fusion

        with fusion_run(wandb_init) as run:
            result = run_fusion(anchors, out_dir, sigma_grid, metric, title, info=info, data=data, rerank=rerank)
            log_fusion(run, result, out_dir)
        return result
    if len(anchors) < 2:
        raise UserError(f"fusion needs at least 2 anchors, got {[a.name for a in anchors]}")
    anchors = sorted(anchors, key=lambda a: -a.ratio)
    trials = [fuse_trial(anchors, k, list(sigma_grid), metric, data, rerank) for k in collect_trials(anchors)]
    sources = [{"name": a.name, "source": str(Path(a.source).resolve()),
                "checkpoints": {k: str(Path(p).resolve()) for k, p in a.checkpoints.items()},
                **({"val_checkpoints": {k: str(Path(p).resolve()) for k, p in a.val_checkpoints.items()}}
                   if a.val_checkpoints else {})} for a in anchors]
    return write_fusion(trials, [{"name": a.name, "ratio": a.ratio} for a in anchors], out_dir, sigma_grid, metric,
                        title, run_info={"anchors": sources, **(info or {})}, rerank=rerank)


def write_fusion(trials: list[dict[str, Any]], anchors: list[dict[str, Any]], out_dir: str | Path,
                 sigma_grid: list[float], metric: str, title: str = "", run_info: dict[str, Any] | None = None,
                 extra: dict[str, Any] | None = None, rerank: Rerank | None = None) -> dict[str, Any]:
    """Mean ± std over trials of :func:`fuse_precomputed` results; writes metrics.json, table.md,
    table.csv and cmc.png into ``out_dir`` (metrics.json last: its presence means the stage finished).
    ``rerank``: the re-ranking the distances went through, named in the title and metrics.json."""
    out_dir = Path(out_dir)
    table = {name: summarize([t["rows"][name] for t in trials], REPORTED_METRICS) for name in (FUSED, MEAN, BEST)}
    table4 = {name: summarize([t["subsets"][name] for t in trials], REPORTED_METRICS) for name in trials[0]["subsets"]}
    columns = table_columns(table)  # mINP only under the query/gallery protocol
    sigmas = [t["sigma"] for t in trials]
    title = title or f"{len(trials)} trial(s), sigma by {metric} on validation: {sigmas}"
    if rerank is not None:
        title += f"; {rerank.label()}"
    md = "\n\n".join([format_table(table, title=f"Fusion: {title}", metrics=columns),
                      format_table(table4, title="Table 4 layout: anchor subsets (r=1 as in the paper)",
                                   metrics=columns)])
    # metrics.json holds only what the anchors and config determine; their paths go to run_info.json.
    result = {"task": "fuse", "anchors": anchors, "metric": metric, "sigma_grid": list(sigma_grid),
              "sigma": sigmas, "table": table, "table4": table4, "trials": trials, **(extra or {})}
    if rerank is not None:
        result["rerank"] = rerank.describe()
    from sing_lit.viz.plots import plot_cmc

    n = min(len(t["rows"][FUSED]["cmc"]) for t in trials)
    curves = {name: [sum(t["rows"][name]["cmc"][i] for t in trials) / len(trials) for i in range(n)]
              for name in (FUSED, MEAN, BEST)}
    out_dir.mkdir(parents=True, exist_ok=True)
    plot_cmc(curves, out_dir / "cmc.png", title="CMC (mean over trials)")
    write_text_atomic(out_dir / "table.md", md + "\n")
    write_text_atomic(out_dir / "table.csv", table_csv({**table, **table4}, metrics=columns))
    write_run_info(out_dir, **(run_info or {}))
    write_json_atomic(out_dir / "metrics.json", result)
    print(md)
    return result
