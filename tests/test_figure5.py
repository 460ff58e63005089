"""Fig. 5 from two real tiny checkpoints: layout, PSNRs against an independent PIL/numpy recomputation, errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import hydra
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from sing_lit.figure5 import COLUMNS, HEADERS, figure5, main, pick_rows
from sing_lit.runtime.anchors import build_net, load_checkpoint
from sing_lit.runtime.cli import UserError
from sing_lit.viz.pictures import HEADER_H, LABEL_H, PAD, zoom_for

TINY = ["+anchor=1/3", "debug=tiny", "callbacks.pictures=null"]


def best_checkpoint(run_dir: Path) -> Path:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return run_dir / metrics["trials"][0]["best_checkpoint"]


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory, run_cli) -> dict[str, Path]:
    """A joint SING and an SRCNN + re-id checkpoint of the 1/3 anchor, trained for a few steps."""
    root = tmp_path_factory.mktemp("figure5_runs")
    out = {}
    for name, extra in (("sing", []), ("srcnn", ["sr=srcnn_separate", "model.sr_steps=5"])):
        proc = run_cli([*TINY, *extra, f"hydra.run.dir={root / name}"], cwd=root)
        assert proc.returncode == 0, proc.stderr[-3000:]
        out[name] = best_checkpoint(root / name)
    return out


@pytest.fixture(scope="module")
def fig(ckpts, tmp_path_factory) -> tuple[dict, Path]:
    out_dir = tmp_path_factory.mktemp("figure5_out")
    return figure5(ckpts["sing"], ckpts["srcnn"], out_dir, num_images=3, seed=0), out_dir


def gallery_of(ckpt_path: Path):
    """The test gallery, rebuilt from the checkpoint's data config as a user would."""
    meta = load_checkpoint(ckpt_path)["sing_lit"]
    dm = hydra.utils.instantiate(OmegaConf.create(meta["config"]["data"]), trial=0, split_out=None)
    dm.setup_eval()
    return dm.eval_sets["test"][1]


def np_psnr(x: np.ndarray, ref: np.ndarray) -> float:
    """PSNR of uint8 or [0, 1] float images, by the definition."""
    x = x.astype(np.float64) / (255.0 if x.dtype == np.uint8 else 1.0)
    ref = ref.astype(np.float64) / 255.0
    return 10 * np.log10(1.0 / np.mean((x - ref) ** 2))


def reference_row(hr: torch.Tensor, sr_nets: dict) -> dict[str, float]:
    """Every column's PSNR with PIL resizing and numpy, as Fig. 5 defines them (ratio 1/3, bicubic MLR)."""
    hr_np = hr.permute(1, 2, 0).numpy()
    h, w = hr_np.shape[:2]
    lr = Image.fromarray(hr_np).resize((round(w / 3), round(h / 3)), Image.Resampling.BICUBIC)
    up = {name: np.asarray(lr.resize((w, h), f)) for name, f in
          (("LR", Image.Resampling.NEAREST), ("Bilinear", Image.Resampling.BILINEAR),
           ("Bicubic", Image.Resampling.BICUBIC))}
    out = {name: np_psnr(im, hr_np) for name, im in up.items()}
    x = torch.from_numpy(up["Bicubic"].copy()).permute(2, 0, 1)[None].float() / 255.0
    with torch.no_grad():
        for name, net in sr_nets.items():
            sr = net.sr_net(x)[0].clamp(0, 1).permute(1, 2, 0).numpy()
            out[name] = np_psnr(sr, hr_np)
    return out


def test_png_layout_and_json(fig, ckpts):
    result, out_dir = fig
    on_disk = json.loads((out_dir / "figure5.json").read_text())
    assert on_disk == result
    assert result["columns"] == list(COLUMNS) == ["LR", "Bilinear", "Bicubic", "SRCNN", "SING"]
    assert result["ratio"] == pytest.approx(1 / 3) and result["trial"] == 0 and result["dataset"] == "synthetic"
    assert result["sing_checkpoint"] == str(ckpts["sing"].resolve())
    assert result["srcnn_checkpoint"] == str(ckpts["srcnn"].resolve())
    gallery = gallery_of(ckpts["sing"])
    assert result["num_gallery_images"] == len(gallery) > 3
    assert [r["pid"] for r in result["rows"]] == [int(gallery.pids[r["gallery_index"]]) for r in result["rows"]]
    assert all(set(r["psnr"]) == set(COLUMNS) for r in result["rows"]) and len(result["rows"]) == 3
    h, w = gallery.images.shape[-2:]
    z = zoom_for(w)
    with Image.open(out_dir / "figure5.png") as png:
        size = png.size
    assert size == (PAD + len(HEADERS) * (w * z + PAD), 2 * HEADER_H + 3 * (h * z + LABEL_H + PAD) + PAD)
    assert not list(out_dir.glob(".*.tmp"))  # atomic writes leave no temp files


def test_psnrs_match_an_independent_recomputation(fig, ckpts):
    result, _ = fig
    nets = {name: build_net(load_checkpoint(ckpts[key]), ckpts[key])
            for name, key in (("SRCNN", "srcnn"), ("SING", "sing"))}
    gallery = gallery_of(ckpts["sing"])
    row = result["rows"][0]
    ref = reference_row(gallery.images[row["gallery_index"]], nets)
    for name in COLUMNS:
        assert row["psnr"][name] == pytest.approx(ref[name], abs=2e-3), name
    # the mean over the WHOLE test gallery, not the shown rows
    refs = [reference_row(hr, nets) for hr in gallery.images]
    for name in COLUMNS:
        assert result["mean_psnr"][name] == pytest.approx(np.mean([r[name] for r in refs]), abs=2e-3), name


def test_sing_and_srcnn_columns_differ(fig):
    result, out_dir = fig
    assert all(r["psnr"]["SING"] != r["psnr"]["SRCNN"] for r in result["rows"])
    assert result["mean_psnr"]["SING"] != result["mean_psnr"]["SRCNN"]
    with Image.open(out_dir / "figure5.png") as png:
        png.load()
        tw = (png.width - PAD) // len(HEADERS) - PAD
        th = (png.height - 2 * HEADER_H - PAD) // 3 - LABEL_H - PAD
        tiles = [png.crop((x, 2 * HEADER_H, x + tw, 2 * HEADER_H + th)).tobytes()
                 for x in (PAD + c * (tw + PAD) for c in (2, 3, 4))]  # bicubic, SRCNN, SING
    assert tiles[1] != tiles[2] and tiles[0] != tiles[2]


def test_same_seed_same_figure(fig, ckpts, tmp_path):
    result, out_dir = fig
    again = figure5(ckpts["sing"], ckpts["srcnn"], tmp_path, num_images=3, seed=0)
    assert again["rows"] == result["rows"] and again["mean_psnr"] == result["mean_psnr"]
    assert (tmp_path / "figure5.png").read_bytes() == (out_dir / "figure5.png").read_bytes()


def test_pick_rows_is_seeded():
    assert pick_rows(50, 4, seed=3) == pick_rows(50, 4, seed=3)
    assert len({tuple(pick_rows(50, 4, seed=s)) for s in range(5)}) > 1
    assert pick_rows(5, 4, 0) == sorted(set(pick_rows(5, 4, 0))) and len(pick_rows(5, 4, 0)) == 4
    assert pick_rows(3, 10, 0) == [0, 1, 2]  # fewer gallery images than asked: all of them


def edited(src: Path, dst: Path, edit) -> Path:
    ckpt = load_checkpoint(src)
    edit(ckpt["sing_lit"])
    torch.save(ckpt, dst)
    return dst


@pytest.mark.parametrize(("which", "edit", "match"), [
    ("srcnn", lambda m: m["anchor"].update(ratio=0.5), r"different anchor ratios: 0.333\d* vs 0.5"),
    ("srcnn", lambda m: m["data"].update(trial=1), "different trials: 0 vs 1"),
    ("srcnn", lambda m: m["data"].update(input_size=[128, 64]), r"different input sizes: \[64, 32\] vs \[128, 64\]"),
    ("sing", lambda m: m["config"]["model"]["net"].update(sr_net=None), "has no SR network"),
    ("srcnn", lambda m: m["config"]["model"].update(sr_training="joint"), "expected an SRCNN \\+ re-id checkpoint"),
])
def test_mismatched_checkpoints_are_refused(ckpts, tmp_path, which, edit, match):
    paths = dict(ckpts)
    paths[which] = edited(ckpts[which], tmp_path / f"{which}.ckpt", edit)
    with pytest.raises(UserError, match=match) as err:
        figure5(paths["sing"], paths["srcnn"], tmp_path / "out")
    if "different" in match:
        assert str(paths["sing"]) in str(err.value) and str(paths["srcnn"]) in str(err.value)
    assert not (tmp_path / "out").exists()


def test_swapped_arguments_are_refused(ckpts, tmp_path):
    with pytest.raises(UserError, match=r"model.sr_training=separate; expected a joint SING checkpoint") as err:
        figure5(ckpts["srcnn"], ckpts["sing"], tmp_path)
    assert str(ckpts["srcnn"]) in str(err.value)


def test_cli_errors_are_one_line(ckpts, tmp_path, capsys):
    missing = tmp_path / "nope.ckpt"
    with pytest.raises(SystemExit) as exit_info:
        main([str(ckpts["sing"]), str(missing), str(tmp_path / "out")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: checkpoint {missing} does not exist"]
    with pytest.raises(SystemExit) as exit_info:
        main([str(ckpts["sing"]), str(ckpts["srcnn"]), str(tmp_path / "out"), "--num-images", "0"])
    assert exit_info.value.code == 2 and "num_images must be >= 1, got 0" in capsys.readouterr().err


def test_cli_writes_the_figure(ckpts, tmp_path, capsys):
    main([str(ckpts["sing"]), str(ckpts["srcnn"]), str(tmp_path), "--num-images", "2", "--seed", "1"])
    result = json.loads((tmp_path / "figure5.json").read_text())
    assert len(result["rows"]) == 2 and result["seed"] == 1 and (tmp_path / "figure5.png").is_file()
    assert all(math.isfinite(v) for v in result["mean_psnr"].values())
    assert "mean PSNR (dB)" in capsys.readouterr().out
