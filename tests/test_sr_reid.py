"""Table 2's hand-crafted rows (sing_lit.sr_reid): SR, then LOMO + XQDA / NFST, fused over anchors.

One tiny run on the built-in benchmark is shared by the tests; the reference numbers are
recomputed here from the DataModule's images with lomo + XQDA directly.
"""

from __future__ import annotations

import json
from pathlib import Path

import hydra
import numpy as np
import pytest
import torch

from cli_checks import assert_one_error_line
from conftest import compose_config
from sing_lit.baselines.lomo import lomo
from sing_lit.baselines.xqda import XQDA
from sing_lit.evaluation.ranking import cmc_and_map
from sing_lit.models.sr_net import SRNet
from sing_lit.runtime.cli import UserError
from sing_lit.sr_reid import check_config, run_sr_reid, super_resolve

TINY = ["data.reader.num_ids=16", "data.protocol.trials=1", "input_size=[48,48]",
        "srcnn.steps=3", "srcnn.channels=[8,4]", "srcnn.batch_size=8"]
LABELS = [f"{s} + {r}" for s in ("Bilinear", "Bicubic", "SRCNN") for r in ("XQDA", "NFST")]


def tiny_cfg(out: Path, cache: Path, *overrides: str):
    return compose_config([f"paths.root_dir={out}", f"paths.output_dir={out}", f"paths.cache_dir={cache}",
                           *TINY, *overrides], config_name="sr_reid")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, cache_dir):
    out = tmp_path_factory.mktemp("sr_reid")
    cfg = tiny_cfg(out, cache_dir)
    summary = run_sr_reid(cfg)
    return cfg, out, summary


def hwc(images: torch.Tensor) -> np.ndarray:
    return images.permute(0, 2, 3, 1).numpy().copy()


def datamodule(cfg, upscale: str, ratio: float = 0.5):
    dm = hydra.utils.instantiate(cfg.data, anchor_ratio=ratio, trial=0, split_out=None, seed=0, upscale=upscale,
                                 input_size=list(cfg.input_size))
    dm.setup("fit")
    return dm


def test_outputs_of_all_six_pairings(tiny_run):
    _, out, summary = tiny_run
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))
    assert on_disk["task"] == "sr_reid" and on_disk["trials"] == [0]
    assert [a["ratio"] for a in on_disk["anchors"]] == [0.5, 1 / 3, 0.25]
    for key in ("table", "table_single", "table4", "sigma"):
        assert list(on_disk[key]) == LABELS, key
    assert set(on_disk["srcnn_stats"]["0"]) == {"M1/2", "M1/3", "M1/4"}
    for sr in ("bilinear", "bicubic", "srcnn"):
        for reid in ("xqda", "nfst"):
            method = json.loads((out / f"{sr}_{reid}" / "metrics.json").read_text())
            assert (method["sr_method"], method["reid_method"]) == (sr, reid)
            assert len(method["table4"]) == 7
    md = (out / "table.md").read_text()
    assert all(f"| {label} |" in md for label in LABELS)
    assert (out / "table.csv").read_text().splitlines()[0].startswith("model,rank1_mean")
    assert "timings_s" in json.loads((out / "run_info.json").read_text())


def test_single_anchor_row_matches_lomo_xqda_recomputed_here(tiny_run):
    """M1/4, the last anchor: its probes' features come from the runner's cache of the first anchor."""
    cfg, out, summary = tiny_run
    dm = datamodule(cfg, "bicubic", 0.25)
    s = dm.train_set
    x_lr = lomo(hwc(torch.cat([s.lr, s.h2l])))
    y_lr = torch.cat([s.lr_label, s.hr_label]).numpy()
    model = XQDA(lambda_=0.001).fit(x_lr, y_lr, lomo(hwc(s.hr)), s.hr_label.numpy())
    probe, gallery = dm.eval_sets["test"]
    dist = model.distance(lomo(hwc(probe.images)), lomo(hwc(gallery.images)))
    expected = cmc_and_map(torch.from_numpy(dist), probe.pids, gallery.pids)
    row = summary["table4"]["Bicubic + XQDA"]["M1/4"]
    assert row["rank1"]["mean"] == pytest.approx(float(expected["rank1"]), abs=1e-9)
    assert row["mAP"]["mean"] == pytest.approx(float(expected["mAP"]), abs=1e-9)
    per_method = json.loads((out / "bicubic_xqda" / "metrics.json").read_text())
    assert per_method["trials"][0]["subsets"]["M1/4"]["mAP"] == pytest.approx(float(expected["mAP"]), abs=1e-9)


def test_upscale_filter_changes_probes_not_hr_gallery(tiny_run):
    cfg, _, _ = tiny_run
    bilinear, bicubic = datamodule(cfg, "bilinear"), datamodule(cfg, "bicubic")
    (p_lin, g_lin), (p_cub, g_cub) = bilinear.eval_sets["test"], bicubic.eval_sets["test"]
    assert torch.equal(p_lin.pids, p_cub.pids)
    assert not torch.equal(p_lin.images, p_cub.images)
    assert not np.array_equal(lomo(hwc(p_lin.images)), lomo(hwc(p_cub.images)))
    np.testing.assert_array_equal(lomo(hwc(g_lin.images)), lomo(hwc(g_cub.images)))
    assert torch.equal(bilinear.train_set.hr, bicubic.train_set.hr)
    assert not torch.equal(bilinear.train_set.h2l, bicubic.train_set.h2l)


def test_two_runs_give_identical_metrics(tiny_run, tmp_path, cache_dir):
    _, out, _ = tiny_run
    run_sr_reid(tiny_cfg(tmp_path, cache_dir))
    assert (tmp_path / "metrics.json").read_bytes() == (out / "metrics.json").read_bytes()


def test_super_resolve_of_an_identity_net_returns_the_input():
    sr = SRNet(channels=(4, 2), kernel_sizes=(3, 1, 3), residual=True)
    torch.nn.init.zeros_(sr.body[-1].weight)
    images = torch.randint(0, 256, (5, 3, 44, 44), dtype=torch.uint8)
    assert torch.equal(super_resolve(sr, images, batch_size=2), images)


@pytest.mark.parametrize("override, needles", [
    ("anchors=[0.5]", ["anchors", "at least 2"]),
    ("anchors=[0.5,0.5]", ["anchors", "at least 2"]),
    ("reid_methods=[kissme]", ["reid_methods", "kissme", "xqda"]),
    ("sr_methods=[]", ["sr_methods", "bilinear"]),
])
def test_bad_method_lists_are_named(tmp_path, cache_dir, override, needles):
    with pytest.raises(UserError) as err:
        check_config(tiny_cfg(tmp_path, cache_dir, override))
    assert all(n in str(err.value) for n in needles), str(err.value)


def test_empty_validation_split_is_refused(tmp_path, cache_dir):
    with pytest.raises(UserError, match="val split .* fusion needs validation"):
        run_sr_reid(tiny_cfg(tmp_path, cache_dir, "data.protocol.val_ids=0", "sr_methods=[bicubic]",
                             "reid_methods=[xqda]"))


@pytest.mark.parametrize("override, needles", [
    ("input_size=[40,48]", ["input_size", "[40, 48]", "44"]),
    ("sr_methods=[bicubic,lanczos]", ["sr_methods", "lanczos", "bilinear, bicubic, srcnn"]),
])
def test_cli_refuses_bad_input_in_one_line(cli_in_process, tmp_path, override, needles):
    proc = cli_in_process([*TINY, override, f"hydra.run.dir={tmp_path / 'run'}"], tmp_path, module="sing_lit.sr_reid")
    assert proc.returncode == 2
    assert_one_error_line(proc, *needles)
    assert not (tmp_path / "run" / "metrics.json").exists()
