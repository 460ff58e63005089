"""The paper's Fig. 5 from two trained checkpoints of one anchor: LR, Bilinear, Bicubic, SRCNN, SING, HR.

``python -m sing_lit.figure5 <sing.ckpt> <srcnn.ckpt> <out_dir> [--num-images N] [--seed S]``

The SING checkpoint is a joint model (``sr=srcnn``, ``model.sr_training=joint``); the SRCNN one is
Table 2's "SRCNN + re-id" (``sr=srcnn_separate``), whose ``sr_net`` learned by MSE alone. Both must
hold the same anchor ratio m, trial and data. Each row is one test gallery HR image down-sampled by
m with the dataset's MLR filter, then brought back to the input size by every method; the caption
under each tile is its PSNR against HR (the LR tile is nearest-upscaled, to show its pixels).

The shown rows are a seeded pick, so their PSNRs are anecdotes (the paper's are too: SING can score
below SRCNN, Fig. 5). ``figure5.json`` also gives each column's mean PSNR over the whole test
gallery, the number to quote.
"""

from __future__ import annotations

import argparse
import math
from fractions import Fraction
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import OmegaConf

from sing_lit.runtime.anchors import build_net, load_checkpoint
from sing_lit.runtime.atomic import write_json_atomic
from sing_lit.runtime.cli import UserError, run_guarded
from sing_lit.viz.pictures import SRRow, save_png, sr_grid, sr_row_multi

HEADERS = ("LR", "Bilinear", "Bicubic", "SRCNN", "SING", "HR")
COLUMNS = HEADERS[:-1]  # the columns with a PSNR (HR's would be infinite)
# What both checkpoints must share for their SR outputs to be compared on the same LR images.
SAME_DATA = (("dataset", "dataset"), ("split", "split"), ("input_size", "input size"), ("mlr", "MLR construction"),
             ("upscale", "LR upscaling filter"))


def sr_training(meta: dict[str, Any]) -> str:
    """How the checkpoint's SR net learned: ``joint`` (SING, the default) or ``separate`` (SRCNN + re-id)."""
    return meta["config"]["model"].get("sr_training", "joint")


def has_sr_net(meta: dict[str, Any]) -> bool:
    return meta["config"]["model"]["net"].get("sr_net") is not None


def check_pair(sing_path: Path, sing: dict[str, Any], srcnn_path: Path, srcnn: dict[str, Any]) -> None:
    """Refuse checkpoints that do not make a Fig. 5 together, naming both and the value that is wrong."""
    if sr_training(sing) != "joint":
        raise UserError(f"SING checkpoint {sing_path} has model.sr_training={sr_training(sing)}; expected a joint "
                        "SING checkpoint (were the two checkpoints given in the wrong order?)")
    if not has_sr_net(sing):
        raise UserError(f"SING checkpoint {sing_path} has no SR network (sr=none or sr=bilinear): nothing to "
                        "super-resolve; expected a SING model trained with sr=srcnn")
    if sr_training(srcnn) != "separate":
        raise UserError(f"SRCNN checkpoint {srcnn_path} has model.sr_training={sr_training(srcnn)}; expected an "
                        "SRCNN + re-id checkpoint trained with sr=srcnn_separate")
    pair = f"checkpoints {sing_path} (SING) and {srcnn_path} (SRCNN)"
    ratios = float(sing["anchor"]["ratio"]), float(srcnn["anchor"]["ratio"])
    if not math.isclose(*ratios, rel_tol=1e-9):
        raise UserError(f"{pair} have different anchor ratios: {ratios[0]} vs {ratios[1]}; expected one anchor")
    if sing["data"]["trial"] != srcnn["data"]["trial"]:
        raise UserError(f"{pair} are of different trials: {sing['data']['trial']} vs {srcnn['data']['trial']}; "
                        "expected the same trial")
    for key, what in SAME_DATA:
        if sing["data"].get(key) != srcnn["data"].get(key):
            raise UserError(f"{pair} were trained on different {what}s: {sing['data'].get(key)} vs "
                            f"{srcnn['data'].get(key)}; expected the same data")


def load_test_gallery(meta: dict[str, Any], path: Path):
    """The checkpoint's test gallery (HR images at the input size) and its data module, rebuilt from its config."""
    trial = int(meta["data"]["trial"])
    dm = hydra.utils.instantiate(OmegaConf.create(meta["config"]["data"]), trial=trial, split_out=None)
    dm.setup_eval()
    if dm.signature()["split"] != meta["data"]["split"]:
        raise UserError(f"checkpoint {path}: the dataset at {dm.data_root} no longer gives the split it was trained "
                        "on (files changed, or a different split file)")
    if dm.eval_sets["test"] is None:
        raise UserError(f"checkpoint {path}: the test split of {dm.name} trial {trial} is empty; expected test "
                        "identities (data.protocol.test_ids > 0)")
    return dm, dm.eval_sets["test"][1]


def pick_rows(num_gallery: int, num_images: int, seed: int) -> list[int]:
    """``num_images`` distinct gallery indices (all of them if fewer), by a seeded generator, in gallery order."""
    perm = torch.randperm(num_gallery, generator=torch.Generator().manual_seed(seed))
    return sorted(perm[:num_images].tolist())


def mean_psnr(rows: list[SRRow]) -> dict[str, float | None]:
    """Each column's PSNR averaged over ``rows`` (None where an image was reproduced exactly: infinite)."""
    means = [sum(r.psnrs[c] for r in rows) / len(rows) for c in range(len(COLUMNS))]
    return {name: finite(m) for name, m in zip(COLUMNS, means)}


def finite(x: float) -> float | None:
    return x if math.isfinite(x) else None  # JSON has no infinity


def anchor_label(ratio: float) -> str:
    """``1/3`` for ratio 0.333..., the ratio itself when it is no simple fraction."""
    frac = Fraction(ratio).limit_denominator(1000)
    return str(frac) if math.isclose(float(frac), ratio, rel_tol=1e-9) else f"{ratio:g}"


def figure5(sing_ckpt: str | Path, srcnn_ckpt: str | Path, out_dir: str | Path, num_images: int = 4,
            seed: int = 0) -> dict[str, Any]:
    """Draw Fig. 5 into ``<out_dir>/figure5.png`` and write ``<out_dir>/figure5.json``; return the json dict.

    Example:
        >>> figure5("sing/trial_0/checkpoints/best.ckpt", "srcnn/trial_0/checkpoints/best.ckpt", "fig5")  # doctest: +SKIP
    """
    sing_path, srcnn_path, out_dir = Path(sing_ckpt), Path(srcnn_ckpt), Path(out_dir)
    ckpts = {"SING": load_checkpoint(sing_path), "SRCNN": load_checkpoint(srcnn_path)}
    sing, srcnn = ckpts["SING"]["sing_lit"], ckpts["SRCNN"]["sing_lit"]
    check_pair(sing_path, sing, srcnn_path, srcnn)
    if num_images < 1:
        raise UserError(f"num_images must be >= 1, got {num_images}")
    nets = {"SRCNN": build_net(ckpts["SRCNN"], srcnn_path), "SING": build_net(ckpts["SING"], sing_path)}
    dm, gallery = load_test_gallery(sing, sing_path)
    ratio = float(sing["anchor"]["ratio"])
    resolvers = {name: net.super_resolve for name, net in nets.items()}  # HEADERS' order: SRCNN, then SING
    rows = [sr_row_multi(hr, ratio, resolvers, dm.mlr["resample"], dm.upscale) for hr in gallery.images]
    picks = pick_rows(len(rows), num_images, seed)
    title = f"x{anchor_label(ratio)} down-sampling, PSNR (dB) against HR"
    save_png(sr_grid([rows[i] for i in picks], tuple(gallery.images.shape[-2:]), HEADERS, title),
             out_dir / "figure5.png")
    result = {
        "task": "figure5",
        "anchor": sing["anchor"],
        "ratio": ratio,
        "trial": int(sing["data"]["trial"]),
        "dataset": sing["data"]["dataset"],
        "sing_checkpoint": str(sing_path.resolve()),
        "srcnn_checkpoint": str(srcnn_path.resolve()),
        "seed": seed,
        "lr_resample": dm.mlr["resample"],
        "sr_input_upscale": dm.upscale,
        "columns": list(COLUMNS),
        "num_gallery_images": len(rows),
        "rows": [{"gallery_index": i, "pid": int(gallery.pids[i]),
                  "psnr": {name: finite(v) for name, v in zip(COLUMNS, rows[i].psnrs)}} for i in picks],
        "mean_psnr": mean_psnr(rows),
        "png": "figure5.png",
    }
    write_json_atomic(out_dir / "figure5.json", result)  # last: its presence means the figure is complete
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sing_lit.figure5", description=__doc__.splitlines()[0])
    parser.add_argument("sing_ckpt", help="checkpoint of a joint SING model (sr=srcnn)")
    parser.add_argument("srcnn_ckpt", help="checkpoint of SRCNN + re-id (sr=srcnn_separate), same anchor and trial")
    parser.add_argument("out_dir", help="where figure5.png and figure5.json go")
    parser.add_argument("--num-images", type=int, default=4, help="rows of the figure (test gallery images)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the pick of rows")
    args = parser.parse_args(argv)
    result = run_guarded(lambda: figure5(args.sing_ckpt, args.srcnn_ckpt, args.out_dir, args.num_images, args.seed))
    means = ", ".join(f"{k} {v:.2f}" if v is not None else f"{k} inf" for k, v in result["mean_psnr"].items())
    print(f"wrote {Path(args.out_dir) / 'figure5.png'} and figure5.json; mean PSNR (dB) over "
          f"{result['num_gallery_images']} test gallery images: {means}")


if __name__ == "__main__":
    main()
