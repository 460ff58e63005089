"""The method learns, and Eq. (7) is fed the images' genuine sizes."""

from __future__ import annotations

import hydra
import lightning as L
import pytest
import torch
from PIL import Image

from tiny_prid import PRID_TINY, write_tiny_prid

# The built-in benchmark at a CPU budget of about a minute: 32 identities (16 tested), a small net, 10 epochs.
BUDGET = ["data.reader.num_ids=32", "data.batch_size=16", "trainer.max_epochs=10", "model.lr_reid=3e-3",
          "model.net.backbone.widths=[16,32]", "model.net.sr_net.channels=[16,8]", "logger=[]", "~callbacks.pictures",
          "+trainer.enable_progress_bar=false"]


def test_rank1(compose_cfg, shuffle_labels: bool) -> tuple[float, float]:
    """Train one anchor on the benchmark, then its test rank-1 (%) and the chance rank-1 (%)."""
    cfg = compose_cfg(BUDGET)
    L.seed_everything(0, workers=True, verbose=False)
    dm = hydra.utils.instantiate(cfg.data, split_out=None)
    dm.setup("fit")
    if shuffle_labels:  # every training image gets another image's identity: nothing left to learn
        gen = torch.Generator().manual_seed(1)
        ts = dm.train_set
        ts.lr_label = ts.lr_label[torch.randperm(len(ts.lr_label), generator=gen)]
        ts.hr_label = ts.hr_label[torch.randperm(len(ts.hr_label), generator=gen)]
    model = hydra.utils.instantiate(cfg.model, num_classes=dm.num_classes)
    trainer = hydra.utils.instantiate(cfg.trainer, callbacks=[], logger=False, enable_checkpointing=False,
                                      default_root_dir=str(cfg.paths.output_dir))
    trainer.fit(model, datamodule=dm)
    trainer.test(model, datamodule=dm, verbose=False)
    return model.last_eval["rank1"], 100.0 / len(dm.trials[0].test_gallery)


@pytest.mark.slow
def test_the_model_learns_and_shuffled_labels_do_not(compose_cfg):
    rank1, chance = test_rank1(compose_cfg, shuffle_labels=False)
    shuffled, _ = test_rank1(compose_cfg, shuffle_labels=True)
    assert rank1 >= 3 * chance, (rank1, chance)
    assert shuffled < 3 * chance, (shuffled, chance)


test_rank1.__test__ = False  # a helper, not a test


def test_eq7_sees_the_images_genuine_sizes(compose_cfg, tmp_path):
    """The areas the DataModule's eval loaders hand to fusion (what ``fusion_stage.extract`` reads) are the
    probe and gallery images' sizes on disk, before the resize to ``input_size``, read here with PIL."""
    root = write_tiny_prid(tmp_path / "prid_2011", both=10, size=(24, 60))
    dm = hydra.utils.instantiate(compose_cfg([*PRID_TINY, f"data.root={root}", f"data.cache_dir={tmp_path / 'cache'}"]).data, split_out=None)
    dm.setup_eval()
    trial = dm.trials[0]
    probe_loader, gallery_loader = dm._eval_loaders("test")

    def areas(loader) -> dict[int, list[float]]:
        out: dict[int, list[float]] = {}
        for batch in loader:
            assert batch["image"].shape[-2:] == (32, 16)  # the network input ...
            for pid, area in zip(batch["pid"].tolist(), batch["area"].tolist()):
                out.setdefault(pid, []).append(area)  # ... and the area of the image before the resize
        return out

    def size_on_disk(path) -> float:
        with Image.open(path) as im:
            return float(im.width * im.height)

    # Probes: the MLR view's down-sampled cam_a images, cached as person_<id>.png at their genuine size.
    cached = {int(p.stem.split("_")[-1]): p for p in (tmp_path / "cache").rglob("*_person_*.png")}
    want_probe = {pid: [size_on_disk(cached[pid])] for pid in trial.test}
    want_gallery = {pid: [size_on_disk(root / trial.test_gallery[pid])] for pid in trial.test}
    assert areas(probe_loader) == want_probe and areas(gallery_loader) == want_gallery
    assert all(a == [24.0 * 60] for a in want_gallery.values())
    assert all(a[0] < 24 * 60 for a in want_probe.values()) and len({a[0] for a in want_probe.values()}) > 1
