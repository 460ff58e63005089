"""Export a trained suite to ONNX: ``python -m sing_lit.export model=<sweep dir | run dir | checkpoint> out=<dir>``.

See :mod:`sing_lit.api.export`: two graphs per anchor (probe and gallery path), ``sing_onnx.json`` for
fusion outside Python, and an onnxruntime-vs-torch self-check before anything is written.
"""

from __future__ import annotations

import sys
from typing import Any

import hydra
from omegaconf import DictConfig

from sing_lit.api.export import export_onnx
from sing_lit.api.model import load, model_source
from sing_lit.runtime.cli import CONFIG_DIR, alias_args, run_guarded


def export_from_config(cfg: DictConfig) -> dict[str, Any]:
    model = load(model_source(cfg.model_source), trial=int(cfg.trial), sigma=cfg.sigma)
    result = export_onnx(model, cfg.out, cfg.cache_dir)
    print(f"exported {len(result['anchors'])} anchor(s) x 2 graphs to {cfg.out} (onnxruntime vs torch: max abs "
          f"diff {result['check']['max_abs_diff']:.1e} <= {result['check']['tolerance']})")
    return result


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="export")
def main(cfg: DictConfig) -> None:
    run_guarded(lambda: export_from_config(cfg))


def cli() -> None:
    """``python -m sing_lit.export``: its `model=` read as model_source, then :func:`main`."""
    sys.argv = alias_args(sys.argv, {"model": "model_source"})
    main()


if __name__ == "__main__":
    cli()
