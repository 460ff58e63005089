"""Initialising SING: F_sr pre-trained by MSE (cached) and F_fe / F_sr copied from another checkpoint."""

from __future__ import annotations

import hydra
import lightning as L
import pytest
import torch

from sing_lit.runtime.anchors import build_net, load_checkpoint


def _fit(cfg, cache=None):
    overrides = {"cache_dir": str(cache)} if cache else {}
    dm = hydra.utils.instantiate(cfg.data, trial=0, split_out=None, seed=0, **overrides)
    dm.setup("fit")
    model = hydra.utils.instantiate(cfg.model, num_classes=dm.num_classes)
    trainer = L.Trainer(max_epochs=1, limit_train_batches=1, limit_val_batches=0, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, accelerator="cpu")
    torch.manual_seed(0)
    trainer.fit(model, datamodule=dm)
    return model, dm


def test_sr_init_trains_once_per_ratio_then_reuses_the_cache(tiny_cfg, tmp_path, capsys):
    cfg = tiny_cfg("+anchor=1/3", "model.sr_init_steps=30", "model.net.sr_net.channels=[8,4]")
    first, dm = _fit(cfg, tmp_path / "c")
    stats = first.meta["sr_init"]
    assert not stats["cached"] and stats["psnr_after"] > stats["psnr_before"]
    # its validation PSNR gain, checked against PSNR computed here from the val gallery
    gallery = dm.eval_sets["val"][1]
    mse = ((gallery.h2l.double() - gallery.images.double()) / 255).pow(2).flatten(1).mean(1)  # by hand
    assert stats["val"]["psnr_bicubic"] == pytest.approx(float((10 * torch.log10(1 / mse)).mean()), rel=1e-5)
    second, _ = _fit(cfg, tmp_path / "c")
    assert second.meta["sr_init"]["cached"]
    assert "SR initialisation (cached)" in capsys.readouterr().out
    # F_sr then trains jointly: it is in the optimiser and has gradients
    assert all(p.requires_grad for p in second.net.sr_net.parameters())
    other, _ = _fit(tiny_cfg("+anchor=1/2", "model.sr_init_steps=30", "model.net.sr_net.channels=[8,4]"),
                    tmp_path / "c")
    assert not other.meta["sr_init"]["cached"]  # another ratio is another SR problem


def test_init_from_copies_fe_and_sr_but_not_the_classifier(tiny_cfg, tmp_path, run_cli):
    src_run = tmp_path / "src"
    proc = run_cli(["debug=tiny", "model.net.sr_net.channels=[8,4]", f"hydra.run.dir={src_run}", "logger=[]",
                    "~callbacks.pictures"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    ckpt = src_run / "trial_0" / "checkpoints" / "last.ckpt"
    theirs = build_net(load_checkpoint(ckpt), ckpt).state_dict()
    cfg = tiny_cfg("model.net.sr_net.channels=[8,4]", f"model.init_from={ckpt}", "data.reader.num_ids=24")
    model = hydra.utils.instantiate(cfg.model, num_classes=7)  # another dataset: another classifier size
    mine = model.net.state_dict()
    copied = [k for k in mine if not k.startswith("reid_net.classifier.")]
    assert copied and all(torch.equal(mine[k], theirs[k]) for k in copied)
    only_fe = hydra.utils.instantiate(tiny_cfg("model.net.sr_net.channels=[8,4]", f"model.init_from={ckpt}",
                                               "model.init_parts=[fe]").model, num_classes=7).net.state_dict()
    assert not all(torch.equal(only_fe[k], theirs[k]) for k in only_fe if k.startswith("sr_net."))
    with pytest.raises(Exception, match="has shape"):  # Hydra wraps errors raised while instantiating
        hydra.utils.instantiate(tiny_cfg("model.net.sr_net.channels=[6,4]", f"model.init_from={ckpt}").model,
                                num_classes=7)
    with pytest.raises(Exception, match="no SR sub-network"):
        hydra.utils.instantiate(tiny_cfg("sr=none", f"model.init_from={ckpt}").model, num_classes=7)
    with pytest.raises(Exception, match="does not exist"):
        hydra.utils.instantiate(tiny_cfg(f"model.init_from={tmp_path / 'nope.ckpt'}").model, num_classes=7)


def test_consumers_rebuild_a_pretrained_net_without_reading_weight_files(tiny_cfg, tmp_path, monkeypatch):
    from sing_lit.models import mobilenet

    cfg = tiny_cfg("backbone=mobilenet_v2", "~model.net.backbone.widths", "model.net.backbone.width_mult=1.0")
    module = hydra.utils.instantiate(cfg.model, num_classes=3)
    ckpt = {"sing_lit": {"config": {"model": {"net": dict(__import__("omegaconf").OmegaConf.to_container(
        cfg.model.net, resolve=True))}}, "num_classes": 3},
        "state_dict": {f"net.{k}": v for k, v in module.net.state_dict().items()}}
    monkeypatch.setattr(mobilenet, "load_imagenet_features",
                        lambda *a, **k: (_ for _ in ()).throw(AssertionError("read the weight file")))
    net = build_net(ckpt, tmp_path / "x.ckpt")
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), module.net.state_dict().values()))


@pytest.mark.slow
def test_source_pretraining_on_grid_initialises_prid_anchors(run_cli, tmp_path, shared_data):
    """The paper's "F_fe pre-trained on another dataset" path on real data: GRID as the source, PRID as the target."""
    grid, prid = shared_data / "grid", shared_data / "prid_2011"
    small = ["data.input_size=[32,16]", "+trainer.limit_train_batches=2", "trainer.max_epochs=1", "logger=[]",
             "~callbacks.pictures", "model.net.backbone.widths=[8,16]", "test=false"]
    src = tmp_path / "grid_src"
    proc = run_cli(["experiment=pretrain_source", "data=grid", f"data.root={grid}", *small, f"hydra.run.dir={src}"],
                   tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = src / "trial_0" / "checkpoints" / "last.ckpt"
    source = load_checkpoint(ckpt)
    assert source["sing_lit"]["data"]["dataset"] == "grid" and source["sing_lit"]["config"]["model"]["net"]["sr_net"] is None
    theirs = build_net(source, ckpt).state_dict()
    # The target anchor starts from the source's F_fe (its SR net is new: GRID's run had none).
    from tests.conftest import compose_config

    cfg = compose_config([f"paths.cache_dir={tmp_path / 'cache'}", "data=prid2011", f"data.root={prid}",
                          "+anchor=1/3", *[s for s in small if s.startswith(("model.", "data."))],
                          f"model.init_from={ckpt}", "model.init_parts=[fe]"])
    model = hydra.utils.instantiate(cfg.model, num_classes=50)
    mine = model.net.state_dict()
    fe = [k for k in mine if k.startswith("reid_net.") and not k.startswith("reid_net.classifier.")]
    assert fe and all(torch.equal(mine[k], theirs[k]) for k in fe)
    assert mine["reid_net.classifier.weight"].shape[0] == 50 != theirs["reid_net.classifier.weight"].shape[0]
