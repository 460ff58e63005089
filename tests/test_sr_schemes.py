"""Table 2's fixed-SR schemes in the deep model: bilinear upscaling and a separately trained, frozen SRCNN."""

from __future__ import annotations

import hydra
import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from PIL import Image

from sing_lit.baselines.srcnn_training import train_srcnn
from sing_lit.models.sr_net import SRNet
from sing_lit.runtime.pipeline import asked_anchors_of


def _dm(cfg, **kw):
    dm = hydra.utils.instantiate(cfg.data, trial=0, split_out=None, **kw)
    dm.setup("fit")
    return dm


def test_bilinear_upscale_changes_only_lr_images(tiny_cfg):
    cfg = tiny_cfg("+anchor=1/3")
    bic, bil = _dm(cfg), _dm(cfg, upscale="bilinear")
    (p_bic, g_bic), (p_bil, g_bil) = bic.eval_sets["test"], bil.eval_sets["test"]
    assert torch.equal(g_bic.images, g_bil.images) and torch.equal(bic.train_set.hr, bil.train_set.hr)
    assert not torch.equal(p_bic.images, p_bil.images)
    assert not torch.equal(bic.train_set.h2l, bil.train_set.h2l)
    # Independent reference: the genuine LR image resized by PIL's bilinear filter.
    probe_recs = [r for r in bil.records if r.genuine_lr and r.pid in set(bil.trials[0].test)]
    with Image.open(probe_recs[0].path) as im:
        ref = np.asarray(im.convert("RGB").resize(tuple(reversed(cfg.data.input_size)), Image.Resampling.BILINEAR))
    assert np.array_equal(p_bil.images[0].permute(1, 2, 0).numpy(), ref)


def test_train_srcnn_lowers_mse_is_seeded_and_freezes():
    torch.manual_seed(0)
    hr = (torch.rand(24, 3, 16, 8) * 255).to(torch.uint8)
    h2l = torch.nn.functional.interpolate(torch.nn.functional.avg_pool2d(hr.float(), 2), scale_factor=2,
                                          mode="bicubic").clamp(0, 255).to(torch.uint8)
    nets = []
    for _ in range(2):
        torch.manual_seed(1)
        sr = SRNet(channels=(8, 4), kernel_sizes=(3, 1, 3))
        stats = train_srcnn(sr, hr, h2l, steps=40, lr=1e-2, batch_size=8, seed=3)
        nets.append(sr)
    assert stats["psnr_after"] > stats["psnr_before"]
    assert stats["loss_last"] < stats["loss_first"]
    assert all(torch.equal(a, b) for a, b in zip(nets[0].state_dict().values(), nets[1].state_dict().values()))
    assert not any(p.requires_grad for p in nets[0].parameters())
    with pytest.raises(ValueError, match="matching"):
        train_srcnn(sr, hr, h2l[:3], steps=1)


class _Snapshots(Callback):
    def __init__(self):
        self.at = {}

    def _take(self, name, module):
        self.at[name] = {k: v.detach().clone() for k, v in module.net.state_dict().items()}

    def on_fit_start(self, trainer, module):  # callbacks' on_fit_start run before the module's
        self._take("init", module)

    def on_train_start(self, trainer, module):
        self._take("after_sr_training", module)

    def on_train_end(self, trainer, module):
        self._take("end", module)


def test_separate_sr_is_trained_first_then_frozen(tiny_cfg):
    cfg = tiny_cfg("+anchor=1/3", "sr=srcnn_separate", "model.sr_steps=5", "trainer.max_epochs=2")
    dm = _dm(cfg, seed=0)
    model = hydra.utils.instantiate(cfg.model, num_classes=dm.num_classes)
    snaps = _Snapshots()
    trainer = L.Trainer(max_epochs=2, limit_train_batches=2, limit_val_batches=0, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, callbacks=[snaps], accelerator="cpu")
    trainer.fit(model, datamodule=dm)
    sr = [k for k in snaps.at["init"] if k.startswith("sr_net.")]
    reid = [k for k in snaps.at["init"] if k.startswith("reid_net.") and k.endswith("weight")]
    assert any(not torch.equal(snaps.at["init"][k], snaps.at["after_sr_training"][k]) for k in sr)
    assert all(torch.equal(snaps.at["after_sr_training"][k], snaps.at["end"][k]) for k in sr)  # frozen
    assert any(not torch.equal(snaps.at["init"][k], snaps.at["end"][k]) for k in reid)
    assert bool(model.sr_trained)
    groups = {g.get("name") for g in trainer.optimizers[0].param_groups}
    assert groups == {"reid"}  # the SR net is not optimised with the re-id loss


@pytest.mark.parametrize("overrides, match", [
    (["sr=srcnn_separate", "model.alpha=1"], "alpha=0"),
    (["sr=none", "model.sr_training=separate"], "needs an SR network"),
    (["model.sr_training=both"], "'joint' or 'separate'"),
])
def test_separate_sr_bad_configs(tiny_cfg, overrides, match):
    cfg = tiny_cfg("+anchor=1/3", *overrides)
    with pytest.raises(Exception, match=match):
        hydra.utils.instantiate(cfg.model, num_classes=4)


def test_anchors_asked_by_an_experiment_config():
    assert asked_anchors_of([], {"+anchor": "1/2,1/3,1/4", "model.alpha": "0,1"}) == ["1/2", "1/3", "1/4"]
    assert asked_anchors_of(["+anchor=1/3"], {"+anchor": "1/2,1/3,1/4"}) == ["1/3"]  # the command line wins
    assert asked_anchors_of([], None) == []
