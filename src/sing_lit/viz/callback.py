"""Lightning callback: pictures of the model after validation, as PNGs in the run dir and W&B images.

Every ``every_n_epochs`` validation (and after the last epoch) it writes, into
``<run>/trial_<k>/pictures/`` (the trainer's ``default_root_dir``):

- ``sr_grid_epoch{E:03d}.png``: the paper's Fig. 5 for the first ``num_images`` validation gallery
  identities: LR (nearest-upscaled), bilinear, bicubic, the model's SR and HR, PSNR under each;
- ``ranked_epoch{E:03d}.png``: one probe of each of those identities and its top-k gallery
  matches on the validation gallery, the true match boxed in green;
- ``cmc_epoch{E:03d}.png``: the validation CMC curve; ``cmc_test.png`` after ``trainer.test``.

The same images are fixed across epochs, so they can be compared. With a WandbLogger they are
also logged as ``pictures/sr_grid``, ``pictures/ranked``, ``pictures/cmc`` and ``pictures/cmc_test``
(with a TensorBoardLogger as images under the same tags).
"""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from PIL import Image

from sing_lit.evaluation.ranking import pairwise_l2
from sing_lit.runtime.errors import ConfigError
from sing_lit.viz.pictures import RankedRow, ranked_strip, save_png, sr_grid, sr_row, to_pil
from sing_lit.viz.plots import plot_cmc

log = logging.getLogger("sing_lit.viz.pictures")


class PicturesCallback(Callback):
    """SR grids, ranked lists and CMC plots of fixed validation images (see the module docstring).

    Args:
        every_n_epochs: draw after every n-th epoch's validation (and after the last epoch).
        num_images: how many validation identities (SR grid rows, ranked-list probes).
        top_k: gallery matches shown per probe.
        dirpath: where to write; null: ``<trainer.default_root_dir>/pictures``.
    """

    def __init__(self, every_n_epochs: int = 1, num_images: int = 4, top_k: int = 10,
                 dirpath: str | None = None) -> None:
        if every_n_epochs < 1 or num_images < 1 or top_k < 1:
            raise ConfigError(f"callbacks.pictures: every_n_epochs, num_images and top_k must be >= 1, got "
                             f"{every_n_epochs}, {num_images}, {top_k}")
        self.every_n_epochs, self.num_images, self.top_k, self.dirpath = every_n_epochs, num_images, top_k, dirpath

    def _dir(self, trainer: L.Trainer) -> Path:
        return Path(self.dirpath) if self.dirpath else Path(trainer.default_root_dir) / "pictures"

    def _due(self, trainer: L.Trainer) -> bool:
        epoch = trainer.current_epoch + 1
        last = trainer.max_epochs is not None and trainer.max_epochs > 0 and epoch >= trainer.max_epochs
        return epoch % self.every_n_epochs == 0 or last

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not self._due(trainer) or not trainer.is_global_zero:
            return  # drawn from the whole val set: one rank is enough
        sets = getattr(trainer.datamodule, "eval_sets", {}).get("val")
        if sets is None:
            return
        epoch = trainer.current_epoch
        out = self._dir(trainer)
        was_training = pl_module.training
        pl_module.eval()
        try:
            grid = self.draw_sr_grid(trainer.datamodule, pl_module, sets[1])
            ranked = self.draw_ranked(pl_module, *sets)
        finally:
            pl_module.train(was_training)
        self._emit(trainer, "sr_grid", save_png(grid, out / f"sr_grid_epoch{epoch:03d}.png"), grid,
                   f"epoch {epoch}: LR, bilinear, bicubic, SR, HR (PSNR dB)")
        self._emit(trainer, "ranked", save_png(ranked, out / f"ranked_epoch{epoch:03d}.png"), ranked,
                   f"epoch {epoch}: probe and top-{self.top_k} (true match in green)")
        last = getattr(pl_module, "last_eval", None) or {}
        if last.get("stage") == "val" and last.get("cmc"):
            path = out / f"cmc_epoch{epoch:03d}.png"
            plot_cmc({"val": last["cmc"]}, path, title=f"validation CMC, epoch {epoch}")
            self._emit(trainer, "cmc", path, None, f"epoch {epoch}")

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        last = getattr(pl_module, "last_eval", None) or {}
        if last.get("stage") == "test" and last.get("cmc"):
            path = self._dir(trainer) / "cmc_test.png"
            plot_cmc({"test": last["cmc"]}, path, title="test CMC")
            self._emit(trainer, "cmc_test", path, None, "test")

    # ---- drawing ------------------------------------------------------------------------
    def draw_sr_grid(self, datamodule, pl_module: L.LightningModule, gallery) -> Image.Image:
        device = pl_module.device
        rows = [sr_row(gallery.images[i], datamodule.anchor_ratio,
                       lambda x: pl_module.net.super_resolve(x.to(device)),
                       datamodule.mlr["resample"], datamodule.upscale)
                for i in range(min(self.num_images, len(gallery)))]
        return sr_grid(rows, tuple(gallery.images.shape[-2:]))

    @torch.no_grad()
    def draw_ranked(self, pl_module: L.LightningModule, probe, gallery) -> Image.Image:
        device, net = pl_module.device, pl_module.net
        g_feat = torch.cat([net.hr_features(chunk.to(device).float().div(255.0))
                            for chunk in gallery.images.split(128)]).float()
        picks = []  # the first probe of each of the first num_images gallery identities
        for pid in gallery.pids[:self.num_images].tolist():
            idx = (probe.pids == pid).nonzero().flatten()
            if len(idx):
                picks.append(int(idx[0]))
        k = min(self.top_k, len(gallery))
        rows = []
        if picks:
            q_feat = net.lr_features(probe.images[picks].to(device).float().div(255.0)).float()
            order = torch.argsort(pairwise_l2(q_feat, g_feat).cpu(), dim=1, stable=True)[:, :k]
            for p, ranks in zip(picks, order.tolist()):
                pid = int(probe.pids[p])
                rows.append(RankedRow(to_pil(probe.images[p]), f"id {pid}", [to_pil(gallery.images[g]) for g in ranks],
                                      [int(gallery.pids[g]) == pid for g in ranks]))
        return ranked_strip(rows, tuple(gallery.images.shape[-2:]), k)

    # ---- output ---------------------------------------------------------------------------
    @staticmethod
    def _emit(trainer: L.Trainer, name: str, path: Path, image: Image.Image | None, caption: str) -> None:
        """Log a written picture to the experiment loggers that show images."""
        from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger

        for lg in trainer.loggers:
            if isinstance(lg, WandbLogger):
                lg.log_image(key=f"pictures/{name}", images=[image if image is not None else str(path)],
                             step=trainer.global_step, caption=[caption])
            elif isinstance(lg, TensorBoardLogger):
                array = np.asarray((image if image is not None else Image.open(path)).convert("RGB"))
                lg.experiment.add_image(f"pictures/{name}", array, trainer.global_step, dataformats="HWC")
