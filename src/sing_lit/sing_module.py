"""LightningModule: SING's joint loss (Eq. 2-5), optimisation, and single-shot evaluation."""

from __future__ import annotations

from collections.abc import Callable

import lightning as L
import torch
import torch.nn.functional as F
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from sing_lit.evaluation.ranking import cmc_and_map, pairwise_l2
from sing_lit.models.sing_net import SINGNet


def sing_losses(net: SINGNet, batch: dict[str, torch.Tensor], alpha: float, synthetic_stream: bool) -> dict[str, torch.Tensor]:
    """The SING loss terms for one batch of float images in [0, 1].

    L = L_reid + alpha * L_sr (Eq. 5), where L_reid (Eq. 3) sums the batch-mean cross-entropy
    of the HR, synthetic-LR and LR streams and L_sr (Eq. 2) is the MSE between F_sr(x^{h2l})
    and x^h. Eq. (2)'s squared Frobenius norm is divided by the pixel count (a per-pixel mean)
    so alpha does not depend on the input size. Without the synthetic stream (Table 3
    ablation) both the x^{h2l} cross-entropy and L_sr are gone.

    All streams share one forward pass through F_sr and one through F_fe.
    """
    x_l, x_h = batch["lr"], batch["hr"]
    n_l, n_h = len(x_l), len(x_h)
    if synthetic_stream:
        sr_out = net.super_resolve(torch.cat([x_l, batch["h2l"]]))
        sr_l, sr_h2l = sr_out[:n_l], sr_out[n_l:]
        _, logits = net.reid_net(torch.cat([x_h, sr_l, sr_h2l]))
    else:
        sr_l = net.super_resolve(x_l)
        _, logits = net.reid_net(torch.cat([x_h, sr_l]))
    out = {
        "loss_reid_hr": F.cross_entropy(logits[:n_h], batch["hr_label"]),
        "loss_reid_lr": F.cross_entropy(logits[n_h:n_h + n_l], batch["lr_label"]),
    }
    loss_reid = out["loss_reid_hr"] + out["loss_reid_lr"]
    total = loss_reid
    if synthetic_stream:
        out["loss_reid_h2l"] = F.cross_entropy(logits[n_h + n_l:], batch["hr_label"])
        out["loss_sr"] = F.mse_loss(sr_h2l, x_h)
        loss_reid = loss_reid + out["loss_reid_h2l"]
        total = loss_reid + alpha * out["loss_sr"]
    out["loss_reid"] = loss_reid
    out["loss"] = total
    return out


class SINGModule(L.LightningModule):
    """Trains one SING anchor model and evaluates it with the single-shot protocol.

    Args:
        net: builder ``net(num_classes=...) -> SINGNet`` (a Hydra ``_partial_``).
        num_classes: training identities, known once the data is set up.
        alpha: weight of L_sr in Eq. (5); the paper uses 1.
        lr_sr, lr_reid: learning rates of the SR and re-id sub-networks.
        synthetic_stream: False removes x^{h2l} and L_sr (Table 3 ablation).
        optimizer: ``_partial_`` optimizer taking param groups.
        scheduler: optional ``_partial_`` LR scheduler stepped per epoch.
    """

    def __init__(
        self,
        net: Callable[..., SINGNet],
        num_classes: int,
        optimizer: Callable,
        alpha: float = 1.0,
        lr_sr: float = 1e-4,
        lr_reid: float = 1e-3,
        synthetic_stream: bool = True,
        scheduler: Callable | None = None,
    ) -> None:
        super().__init__()
        if alpha < 0:
            raise ValueError(f"model.alpha must be >= 0 (weight of L_sr in Eq. 5), got {alpha}")
        if lr_sr < 0 or lr_reid <= 0:
            raise ValueError(f"model.lr_sr must be >= 0 and model.lr_reid > 0, got lr_sr={lr_sr}, lr_reid={lr_reid}")
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"])
        self.net = net(num_classes=num_classes)
        self.optimizer_fn, self.scheduler_fn = optimizer, scheduler
        self.alpha, self.synthetic_stream = alpha, synthetic_stream
        self._eval: dict[int, list[dict[str, torch.Tensor]]] = {}
        # Provenance stored in every checkpoint (config, data signature, anchor), so the
        # fusion stage can rebuild the net and refuse anchors that do not belong together.
        self.meta: dict = {}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["sing_lit"] = self.meta

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.meta = checkpoint.get("sing_lit", {})

    @staticmethod
    def to_float(x: torch.Tensor) -> torch.Tensor:
        """uint8 images (as the DataModule sends them) to floats in [0, 1]; floats pass through."""
        return x.float().div_(255.0) if x.dtype == torch.uint8 else x

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        batch = {k: self.to_float(v) for k, v in batch.items()}
        losses = sing_losses(self.net, batch, self.alpha, self.synthetic_stream)
        self.log_dict({f"train/{k}": v for k, v in losses.items()}, on_step=True, on_epoch=True,
                      batch_size=len(batch["hr"]))
        return losses["loss"]

    # ---- evaluation ------------------------------------------------------------------
    def _eval_step(self, batch: dict[str, torch.Tensor], dataloader_idx: int) -> None:
        image = self.to_float(batch["image"])
        # dataloader 0 = LR probes (through F_sr, then F_fe); 1 = HR gallery (F_fe only).
        feats = self.net.lr_features(image) if dataloader_idx == 0 else self.net.hr_features(image)
        rec = {"feat": feats.float(), "pid": batch["pid"], "area": batch["area"]}
        if dataloader_idx == 1:
            sr = self.net.super_resolve(self.to_float(batch["h2l"])).clamp(0, 1)
            rec["psnr_sum"] = peak_signal_noise_ratio(sr, image, data_range=1.0, reduction="none",
                                                      dim=(1, 2, 3)).sum()
            rec["ssim_sum"] = structural_similarity_index_measure(sr, image, data_range=1.0, reduction="none").sum()
        self._eval.setdefault(dataloader_idx, []).append(rec)

    def validation_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._eval_step(batch, dataloader_idx)

    def test_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._eval_step(batch, dataloader_idx)

    def _eval_end(self, stage: str) -> dict[str, float]:
        probe, gallery = self._eval.get(0, []), self._eval.get(1, [])
        self._eval = {}
        if not probe or not gallery:
            return {}
        q = torch.cat([r["feat"] for r in probe])
        g = torch.cat([r["feat"] for r in gallery])
        metrics = cmc_and_map(pairwise_l2(q, g), torch.cat([r["pid"] for r in probe]),
                              torch.cat([r["pid"] for r in gallery]))
        n_g = len(g)
        out = {k: float(metrics[k]) for k in ("rank1", "rank5", "rank10", "rank20", "mAP")}
        out["psnr"] = float(sum(r["psnr_sum"] for r in gallery) / n_g)
        out["ssim"] = float(sum(r["ssim_sum"] for r in gallery) / n_g)
        self.log_dict({f"{stage}/{k}": v for k, v in out.items()}, add_dataloader_idx=False)
        self.last_eval = {"stage": stage, **out, "cmc": [float(c) for c in metrics["cmc"][:20]]}
        return out

    def on_validation_epoch_end(self) -> None:
        self._eval_end("val")

    def on_test_epoch_end(self) -> None:
        self._eval_end("test")

    def configure_optimizers(self):
        sr_params = [] if self.net.sr_net is None else list(self.net.sr_net.parameters())
        groups = [{"params": list(self.net.reid_net.parameters()), "lr": self.hparams.lr_reid, "name": "reid"}]
        if sr_params:
            groups.append({"params": sr_params, "lr": self.hparams.lr_sr, "name": "sr"})
        optimizer = self.optimizer_fn(groups)
        if self.scheduler_fn is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.scheduler_fn(optimizer), "interval": "epoch"}}
