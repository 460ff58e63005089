"""Search a folder of LR images against a folder of HR images with a trained suite.

``python -m sing_lit.search model=<sweep dir | run dir | checkpoint> query=<folder> gallery=<folder> out=<dir>``
(or ``split=test`` for the trained trial's own test probes and gallery). Writes ranking.json,
ranking.csv and contact sheets into ``out`` (see :mod:`sing_lit.api.search`); prints CMC/mAP when
file names (or the split) give person ids.
"""

from __future__ import annotations

import sys
from typing import Any

import hydra
from omegaconf import DictConfig

from sing_lit.api.model import load, model_source
from sing_lit.api.search import search, select_images, write_search
from sing_lit.runtime.cli import CONFIG_DIR, alias_args, run_guarded


def search_from_config(cfg: DictConfig) -> dict[str, Any]:
    model = load(model_source(cfg.model_source), trial=int(cfg.trial), sigma=cfg.sigma, batch_size=int(cfg.batch_size))
    queries, gallery, q_pids, g_pids = select_images(model, cfg.query, cfg.gallery, cfg.split)
    result = search(model, queries, gallery, int(cfg.top_k), cfg.cache_dir, q_pids, g_pids, bool(cfg.progress))
    out = write_search(result, model, cfg.out, int(cfg.pictures))
    print(f"{len(queries)} queries x {len(gallery)} gallery images, {len(model.anchors)} anchors, "
          f"sigma {model.sigma}: {out}/ranking.json")
    if result.metrics:
        m = result.metrics
        print(f"fused rank-1 {m['rank1']:.2f}  rank-5 {m['rank5']:.2f}  mAP {m['mAP']:.2f}  mINP {m['mINP']:.2f}  "
              f"({m['queries_evaluated']} of {m['queries']} queries have their id in the gallery)")
    return {"out": str(out), "metrics": result.metrics, "timings": result.timings}


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="search")
def main(cfg: DictConfig) -> None:
    run_guarded(lambda: search_from_config(cfg))


def cli() -> None:
    """``python -m sing_lit.search``: its `model=` read as model_source, then :func:`main`."""
    sys.argv = alias_args(sys.argv, {"model": "model_source"})
    main()


if __name__ == "__main__":
    cli()
