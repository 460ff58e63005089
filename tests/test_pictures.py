"""The pictures: layout and content of the SR grid and ranked lists, and the callback that writes them."""

from __future__ import annotations

import math
from pathlib import Path

import hydra
import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image

from sing_lit.evaluation.sr_quality import psnr
from sing_lit.viz.callback import PicturesCallback
from sing_lit.viz.pictures import (
    BOX,
    HEADER_H,
    LABEL_H,
    MATCH,
    PAD,
    SEP,
    SR_COLUMNS,
    RankedRow,
    ranked_strip,
    save_png,
    sr_grid,
    sr_row,
    to_pil,
    zoom_for,
)


def sr_grid_size(rows: int, tile_hw: tuple[int, int]) -> tuple[int, int]:
    z = zoom_for(tile_hw[1])
    th, tw = tile_hw[0] * z, tile_hw[1] * z
    return PAD + len(SR_COLUMNS) * (tw + PAD), HEADER_H + rows * (th + LABEL_H + PAD) + PAD


def ranked_size(rows: int, k: int, tile_hw: tuple[int, int]) -> tuple[int, int]:
    z = zoom_for(tile_hw[1])
    th, tw = tile_hw[0] * z, tile_hw[1] * z
    return PAD + (1 + k) * (tw + PAD) + SEP, PAD + rows * (th + LABEL_H + PAD)


def random_image(hw: tuple[int, int], seed: int) -> torch.Tensor:
    return torch.randint(0, 256, (3, *hw), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_psnr_matches_the_definition():
    a, b = torch.rand(3, 8, 4), torch.rand(3, 8, 4)
    mse = np.mean((a.numpy().astype(np.float64) - b.numpy()) ** 2)
    assert psnr(a, b) == pytest.approx(10 * np.log10(1 / mse), rel=1e-5)
    assert psnr(a, a) == math.inf


def test_psnr_per_image_of_a_batch_matches_torchmetrics():
    from torchmetrics.functional.image import peak_signal_noise_ratio

    x, ref = torch.rand(5, 3, 16, 8, generator=torch.Generator().manual_seed(1)), torch.rand(5, 3, 16, 8)
    want = peak_signal_noise_ratio(x, ref, data_range=1.0, reduction="none", dim=(1, 2, 3))
    torch.testing.assert_close(psnr(x, ref), want)


@pytest.mark.parametrize("hw", [(64, 32), (160, 72)])
def test_sr_row_columns(hw):
    hr = random_image(hw, 0)
    row = sr_row(hr, 1 / 3, super_resolve=lambda x: x)  # no SR net: the model's column is its bicubic input
    assert len(row.images) == len(SR_COLUMNS) and all(im.size == (hw[1], hw[0]) for im in row.images)
    assert row.images[3].tobytes() == row.images[2].tobytes() and row.psnrs[3] == pytest.approx(row.psnrs[2], abs=1e-4)
    assert row.images[4].tobytes() == to_pil(hr).tobytes() and row.psnrs[4] == math.inf
    # LR shown with its own pixels: nearest-upscaled blocks of a round(h/3) x round(w/3) image
    lr = np.asarray(row.images[0])
    assert len(np.unique(lr.reshape(-1, 3), axis=0)) <= round(hw[0] / 3) * round(hw[1] / 3)
    assert all(0 < p < 60 for p in row.psnrs[:4])


@pytest.mark.parametrize(("hw", "rows"), [((64, 32), 4), ((160, 72), 2), ((24, 12), 1)])
def test_sr_grid_layout(hw, rows):
    grid = sr_grid([sr_row(random_image(hw, i), 0.5, lambda x: x) for i in range(rows)], hw)
    assert grid.size == sr_grid_size(rows, hw)
    z = zoom_for(hw[1])
    # the HR tile of the last row sits where the layout says, zoomed by nearest neighbour
    hr = to_pil(random_image(hw, rows - 1))
    x, y = PAD + 4 * (hw[1] * z + PAD), HEADER_H + (rows - 1) * (hw[0] * z + LABEL_H + PAD)
    tile = grid.crop((x, y, x + hw[1] * z, y + hw[0] * z))
    assert tile.tobytes() == hr.resize((hw[1] * z, hw[0] * z), Image.Resampling.NEAREST).tobytes()


def test_ranked_strip_boxes_the_true_match_only():
    hw, k = (64, 32), 5
    gallery = [to_pil(random_image(hw, 10 + i)) for i in range(k)]
    rows = [RankedRow(to_pil(random_image(hw, 0)), "id 3", gallery, [i == 2 for i in range(k)]),
            RankedRow(to_pil(random_image(hw, 1)), "id 4", gallery, [False] * k)]
    img = ranked_strip(rows, hw, k)
    assert img.size == ranked_size(2, k, hw)
    z = zoom_for(hw[1])
    th, tw = hw[0] * z, hw[1] * z

    def boxed(row: int, rank: int) -> bool:
        x, y = PAD + (1 + rank) * (tw + PAD) + SEP, PAD + row * (th + LABEL_H + PAD)
        edge = [img.getpixel((x + i, y + j)) for i in range(tw) for j in range(BOX)]
        return all(p == MATCH for p in edge)

    assert [boxed(0, r) for r in range(k)] == [False, False, True, False, False]
    assert not any(boxed(1, r) for r in range(k))


def test_png_writes_are_atomic(tmp_path):
    img = Image.new("RGB", (4, 4))
    path = save_png(img, tmp_path / "pictures" / "a.png")
    assert Image.open(path).size == (4, 4)

    class Crashes:
        def save(self, fp, format):
            Path(fp).write_bytes(b"\x89PNG half")
            raise OSError("disk full")

    with pytest.raises(OSError):
        save_png(Crashes(), tmp_path / "pictures" / "a.png")
    assert Image.open(path).size == (4, 4)  # the old picture survives
    assert sorted(p.name for p in (tmp_path / "pictures").iterdir()) == ["a.png"]


# ---- the callback in a tiny training run -------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory, cache_dir):
    """A tiny 2-epoch fit + test with only the pictures callback (every 2nd epoch), no logger."""
    from conftest import compose_config

    root = tmp_path_factory.mktemp("pictures")
    cfg = compose_config([f"paths.root_dir={root}", f"paths.output_dir={root}", f"paths.cache_dir={cache_dir}",
                          "debug=tiny", "trainer.max_epochs=2"])
    L.seed_everything(0, verbose=False)
    dm = hydra.utils.instantiate(cfg.data, trial=0, split_out=None)
    dm.setup("fit")
    model = hydra.utils.instantiate(cfg.model, num_classes=dm.num_classes)
    cb = PicturesCallback(every_n_epochs=2, num_images=4, top_k=10)
    trainer = hydra.utils.instantiate(cfg.trainer, callbacks=[cb], logger=False, enable_checkpointing=False,
                                      enable_progress_bar=False, default_root_dir=str(root / "trial_0"))
    trainer.fit(model, datamodule=dm)
    trainer.test(model, datamodule=dm, verbose=False)
    return root / "trial_0" / "pictures", dm, model, cb


def test_callback_writes_every_n_epochs_with_the_layout_sizes(trained):
    pics, dm, _, _ = trained
    assert sorted(p.name for p in pics.iterdir()) == ["cmc_epoch001.png", "cmc_test.png", "ranked_epoch001.png",
                                                      "sr_grid_epoch001.png"]
    probe, gallery = dm.eval_sets["val"]
    hw = tuple(dm.input_size)
    n = min(4, len(gallery))
    n_probes = sum(int((probe.pids == p).any()) for p in gallery.pids[:4].tolist())
    with Image.open(pics / "sr_grid_epoch001.png") as img:
        assert img.format == "PNG" and img.size == sr_grid_size(n, hw)
    with Image.open(pics / "ranked_epoch001.png") as img:
        assert img.size == ranked_size(n_probes, min(10, len(gallery)), hw)
    with Image.open(pics / "cmc_test.png") as img:
        img.verify()


def test_ranked_strip_shows_the_brute_force_ranking(trained):
    """Each probe's true match is boxed at the rank a brute-force distance sort gives it."""
    _, dm, model, cb = trained
    probe, gallery = dm.eval_sets["val"]
    model.eval()
    img = cb.draw_ranked(model, probe, gallery)
    with torch.no_grad():
        g = model.net.hr_features(gallery.images.float() / 255).double()
        z = zoom_for(dm.input_size[1])
        th, tw = dm.input_size[0] * z, dm.input_size[1] * z
        row = 0
        for pid in gallery.pids[:4].tolist():
            idx = (probe.pids == pid).nonzero().flatten()
            if not len(idx):
                continue
            q = model.net.lr_features(probe.images[idx[:1]].float() / 255).double()[0]
            dist = [float(((q - g[j]) ** 2).sum()) for j in range(len(g))]
            order = sorted(range(len(g)), key=lambda j: (dist[j], j))[:10]
            for rank, j in enumerate(order):
                x, y = PAD + (1 + rank) * (tw + PAD) + SEP, PAD + row * (th + LABEL_H + PAD)
                top = [img.getpixel((x + i, y)) for i in range(tw)]
                assert all(p == MATCH for p in top) == (int(gallery.pids[j]) == pid), (pid, rank)
            row += 1
    assert row > 0
