"""LightningModule: SING's joint loss (Eq. 2-5), optimisation, and evaluation (single-shot, or query/gallery)."""

from __future__ import annotations

from collections.abc import Callable

import lightning as L
import torch
from torchmetrics.functional.image import structural_similarity_index_measure

from sing_lit.evaluation.gather import gather_eval_set
from sing_lit.evaluation.protocol import evaluate_ranking, reported
from sing_lit.evaluation.ranking import pairwise_l2
from sing_lit.evaluation.rerank import Rerank
from sing_lit.evaluation.sr_quality import psnr
from sing_lit.models.sing_net import SINGNet
from sing_lit.runtime.anchors import load_checkpoint
from sing_lit.runtime.cli import UserError
from sing_lit.runtime.errors import ConfigError
from sing_lit.runtime.rng import rng_states, set_rng_states
from sing_lit.sing.losses import SR_REDUCTIONS, check_finite, sing_losses
from sing_lit.sing.sr_init import gain_over_bicubic, pretrain_sr
from sing_lit.sing.triplet import MODES


class SINGModule(L.LightningModule):
    """Trains one SING anchor model and evaluates it: single-shot, or camera-aware query/gallery when the eval
    batches carry ``cam`` (``data.protocol.kind=query_gallery``; :mod:`sing_lit.evaluation.protocol`).

    Args:
        net: builder ``net(num_classes=...) -> SINGNet`` (a Hydra ``_partial_``).
        num_classes: training identities, known once the data is set up.
        alpha: weight of L_sr in Eq. (5); the paper uses 1.
        lr_sr, lr_reid: learning rates of the SR and re-id sub-networks.
        synthetic_stream: False removes x^{h2l} and L_sr (Table 3 ablation).
        h2l_reid_weight: weight of the x^{h2l} cross-entropy in Eq. (3) (the paper: 1); 0 keeps x^{h2l}
            for L_sr only (see :func:`sing_lit.sing.losses.sing_losses`).
        optimizer: ``_partial_`` optimizer taking param groups.
        scheduler: optional ``_partial_`` LR scheduler stepped per epoch.
        scale_lr: multiply the learning rates by the number of DDP processes (see :meth:`lr_scale`).
        sr_training: ``joint`` (SING: F_sr learns with the re-id loss, Eq. 5) or ``separate`` (Table 2's
            "SRCNN + re-id": before the first epoch F_sr is trained alone by MSE on the trial's HR training
            images and their synthetic LR (:func:`sing_lit.baselines.srcnn_training.train_srcnn`), then frozen;
            the re-id net trains on its outputs and alpha must be 0).
        sr_steps, sr_batch_size: the separate SR training's Adam steps and batch size (its learning rate is lr_sr).
        sr_init_steps: joint training only: > 0 first trains F_sr alone by MSE at the anchor ratio for that many
            steps (the paper's pre-trained SRCNN initialisation; :mod:`sing_lit.sing.sr_init`, cached), then SING
            trains it jointly. ``sr_init_images``: a folder whose images join the trial's HR training images there.
        label_smoothing: of every cross-entropy term (Luo et al. 2019 use 0.1).
        triplet_weight, triplet_margin, triplet_mode: weight (0 = off), margin and mode (``cross``: LR anchors
            against HR images and back; ``all``) of a batch-hard triplet loss (:mod:`sing_lit.sing.triplet`).
        sr_loss_reduction: Eq. (2)'s reduction, ``mean`` (per pixel; alpha independent of the input size) or
            ``sum`` (the paper's squared Frobenius norm per image); see :func:`sing_lit.sing.losses.sr_loss`.
        scheduler_interval: ``epoch`` or ``step``: when the scheduler is stepped.
        channels_last: train in the channels-last memory format (NHWC), which oneDNN and cuDNN run faster
            for most convolutions (about 1.7x for MobileNetV2's fwd + bwd on 2 CPU cores here).
        init_from: a sing_lit checkpoint whose weights initialise ``init_parts`` (``fe``: F_fe, the backbone
            and neck, not the classifier; ``sr``: F_sr) — e.g. a re-id net trained on a source dataset.
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
        scale_lr: bool = True,
        sr_training: str = "joint",
        sr_steps: int = 300,
        sr_batch_size: int = 32,
        sr_init_steps: int = 0,
        sr_init_images: str | None = None,
        label_smoothing: float = 0.0,
        triplet_weight: float = 0.0,
        triplet_margin: float = 0.3,
        triplet_mode: str = "cross",
        sr_loss_reduction: str = "mean",
        scheduler_interval: str = "epoch",
        init_from: str | None = None,
        init_parts: tuple[str, ...] | list[str] = ("fe", "sr"),
        channels_last: bool = False,
        h2l_reid_weight: float = 1.0,
    ) -> None:
        super().__init__()
        if sr_training not in ("joint", "separate"):
            raise ConfigError(f"model.sr_training must be 'joint' or 'separate', got {sr_training!r}")
        if alpha < 0:
            raise ConfigError(f"model.alpha must be >= 0 (weight of L_sr in Eq. 5), got {alpha}")
        if lr_sr < 0 or lr_reid <= 0:
            raise ConfigError(f"model.lr_sr must be >= 0 and model.lr_reid > 0, got lr_sr={lr_sr}, lr_reid={lr_reid}")
        if not 0 <= label_smoothing < 1 or triplet_weight < 0 or triplet_margin < 0:
            raise ConfigError(f"model.label_smoothing must be in [0, 1) and model.triplet_weight, "
                             f"model.triplet_margin >= 0, got {label_smoothing}, {triplet_weight}, {triplet_margin}")
        if triplet_mode not in MODES or sr_loss_reduction not in SR_REDUCTIONS:
            raise ConfigError(f"model.triplet_mode must be one of {list(MODES)} and model.sr_loss_reduction one of "
                             f"{list(SR_REDUCTIONS)}, got {triplet_mode!r}, {sr_loss_reduction!r}")
        if scheduler_interval not in ("epoch", "step"):
            raise ConfigError(f"model.scheduler_interval must be 'epoch' or 'step', got {scheduler_interval!r}")
        if sr_init_steps < 0:
            raise ConfigError(f"model.sr_init_steps must be >= 0, got {sr_init_steps}")
        if h2l_reid_weight < 0:
            raise ConfigError(f"model.h2l_reid_weight must be >= 0 (weight of the synthetic-LR cross-entropy), "
                              f"got {h2l_reid_weight}")
        # init_parts (a ListConfig from Hydra) is used here only; checkpoints must load with weights_only=True
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler", "init_parts"])
        self.net = net(num_classes=num_classes)
        self.sr_training = sr_training
        if init_from:
            init_weights(self.net, init_from, list(init_parts))
        if sr_init_steps and (self.net.sr_net is None or sr_training != "joint"):
            raise ConfigError("model.sr_init_steps > 0 initialises F_sr for joint training: it needs an SR network "
                             f"and model.sr_training=joint, got sr_net={self.net.sr_net is not None}, {sr_training}")
        if sr_init_steps:
            self.register_buffer("sr_trained", torch.tensor(False))
        if sr_training == "separate":
            if self.net.sr_net is None:
                raise ConfigError("model.sr_training=separate needs an SR network (sr=srcnn_separate), got sr_net=null")
            if alpha != 0:
                raise ConfigError("model.sr_training=separate trains F_sr alone on (x^h2l, x^h) pairs, then freezes "
                                 f"it: it needs model.alpha=0, got {alpha}")
            if sr_steps < 0 or sr_batch_size < 1:
                raise ConfigError(f"model.sr_steps must be >= 0 and model.sr_batch_size >= 1, got {sr_steps}, "
                                 f"{sr_batch_size}")
            # Frozen from the start, so that DDP never expects gradients for it; a buffer records
            # (in every checkpoint) that the separate SR training is done, so a resumed run skips it.
            self.net.sr_net.requires_grad_(False)
            self.register_buffer("sr_trained", torch.tensor(False))
        self.optimizer_fn, self.scheduler_fn = optimizer, scheduler
        self.alpha, self.synthetic_stream = alpha, synthetic_stream
        self._eval: dict[int, list[dict[str, torch.Tensor]]] = {}
        # Provenance stored in every checkpoint (config, data signature, anchor), so the
        # fusion stage can rebuild the net and refuse anchors that do not belong together.
        self.meta: dict = {}
        # eval.rerank: set by the entry points before a reported evaluation (never for training's
        # per-epoch validation, which selects checkpoints on the plain L2 distance); not a hyper-parameter.
        self.rerank: Rerank | None = None

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["sing_lit"] = self.meta
        checkpoint["rng_states"] = rng_states()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.meta = checkpoint.get("sing_lit", {})
        # Applied at on_train_start, right before the first resumed batch: Lightning's set-up
        # between loading and training may draw from the global RNGs.
        self._rng_to_restore = checkpoint.get("rng_states")

    def on_fit_start(self) -> None:
        separate = self.sr_training == "separate"
        if not hasattr(self, "sr_trained") or bool(self.sr_trained):
            return
        dm = self.trainer.datamodule
        hr, h2l = dm.train_set.hr, dm.train_set.h2l
        if h2l is None:
            raise ConfigError("training F_sr alone needs the synthetic-LR images: set data.synthetic_stream=true")
        extra = self.hparams.get("sr_init_images")
        if extra and not separate:
            x_h, x_h2l = dm.folder_pairs(extra)
            hr, h2l = torch.cat([hr, x_h]), torch.cat([h2l, x_h2l])
        steps = self.hparams.sr_steps if separate else self.hparams.sr_init_steps
        key = {"data": dm.signature(), "ratio": dm.anchor_ratio, "sr_net": self.meta.get("config", {}).get(
            "model", {}).get("net", {}).get("sr_net"), "extra": str(extra) if extra and not separate else None}
        stats = pretrain_sr(self.net.sr_net, hr, h2l, steps=steps, lr=self.hparams.lr_sr,
                            batch_size=self.hparams.sr_batch_size, seed=torch.initial_seed(),
                            cache_dir=getattr(dm, "cache_dir", None), key_parts=key)
        if separate:
            self.net.sr_net.requires_grad_(False)
        val = dm.eval_sets.get("val")
        if val is not None:
            gallery = val[1]
            stats["val"] = gain_over_bicubic(self.net.sr_net, gallery.h2l, gallery.images)
        self.sr_trained.fill_(True)
        self.meta["sr_separate" if separate else "sr_init"] = stats
        where = "cached" if stats["cached"] else f"{stats['steps']} steps"
        msg = f"{'separate SR training' if separate else 'SR initialisation'} ({where}): PSNR on the training pairs " \
              f"{stats['psnr_before']:.2f} -> {stats['psnr_after']:.2f} dB"
        if "val" in stats:
            msg += f"; val gallery {stats['val']['psnr_sr']:.2f} dB vs bicubic {stats['val']['psnr_bicubic']:.2f} dB"
        print(msg)

    def on_train_start(self) -> None:
        states, self._rng_to_restore = getattr(self, "_rng_to_restore", None), None
        if states:
            set_rng_states(states)

    def setup(self, stage: str) -> None:
        if self.hparams.get("channels_last"):
            self.net.to(memory_format=torch.channels_last)

    def to_float(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 images (as the DataModule sends them) to floats in [0, 1]; floats pass through."""
        x = x.float().div_(255.0) if x.dtype == torch.uint8 else x
        if self.hparams.get("channels_last") and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        batch = {k: self.to_float(v) for k, v in batch.items()}
        h = self.hparams
        losses = sing_losses(self.net, batch, self.alpha, self.synthetic_stream,
                             label_smoothing=h.get("label_smoothing", 0.0), triplet_weight=h.get("triplet_weight", 0.0),
                             triplet_margin=h.get("triplet_margin", 0.3), triplet_mode=h.get("triplet_mode", "cross"),
                             sr_loss_reduction=h.get("sr_loss_reduction", "mean"),
                             h2l_reid_weight=h.get("h2l_reid_weight", 1.0))
        check_finite(losses, self.global_step, self.current_epoch, batch_idx)
        # sync_dist: under DDP the logged losses are the mean over ranks (a no-op on one process)
        self.log_dict({f"train/{k}": v for k, v in losses.items()}, on_step=True, on_epoch=True,
                      batch_size=len(batch["hr"]), sync_dist=True)
        return losses["loss"]

    # ---- evaluation ------------------------------------------------------------------
    def _eval_step(self, batch: dict[str, torch.Tensor], dataloader_idx: int) -> None:
        image = self.to_float(batch["image"])
        # dataloader 0 = LR probes (through F_sr, then F_fe); 1 = HR gallery (F_fe only).
        feats = self.net.lr_features(image) if dataloader_idx == 0 else self.net.hr_features(image)
        rec = {"feat": feats.float(), "pid": batch["pid"], "area": batch["area"]}
        if "index" in batch:  # the item's dataset index: lets DDP ranks' shares be merged (evaluation.gather)
            rec["index"] = batch["index"]
        if "cam" in batch:  # query/gallery protocol: the evaluation is camera-aware
            rec["cam"] = batch["cam"]
        if dataloader_idx == 1:  # per image, so that the mean runs over unique images under DDP
            sr = self.net.super_resolve(self.to_float(batch["h2l"])).float().clamp(0, 1)
            rec["psnr"] = psnr(sr, image)
            rec["ssim"] = structural_similarity_index_measure(sr, image, data_range=1.0, reduction="none")
        self._eval.setdefault(dataloader_idx, []).append(rec)

    def validation_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._eval_step(batch, dataloader_idx)

    def test_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._eval_step(batch, dataloader_idx)

    def _eval_end(self, stage: str) -> dict[str, float]:
        # Every rank's share, each probe and gallery image once, in dataset order (a collective under DDP).
        probe, gallery = gather_eval_set(self, self._eval.get(0, [])), gather_eval_set(self, self._eval.get(1, []))
        self._eval = {}
        if probe is None or gallery is None:
            return {}
        if self.rerank is None:
            dist = pairwise_l2(probe["feat"], gallery["feat"])
        else:
            dist = self.rerank.distances(probe["feat"], gallery["feat"], where=f"{stage} set")
        metrics = evaluate_ranking(dist, probe["pid"], gallery["pid"], probe.get("cam"), gallery.get("cam"))
        out = reported(metrics)
        out["psnr"] = float(gallery["psnr"].double().mean())
        out["ssim"] = float(gallery["ssim"].double().mean())
        self.log_dict({f"{stage}/{k}": v for k, v in out.items()}, add_dataloader_idx=False)
        self.last_eval = {"stage": stage, **out, "cmc": [float(c) for c in metrics["cmc"][:20]]}
        return out

    def on_validation_epoch_end(self) -> None:
        self._eval_end("val")

    def on_test_epoch_end(self) -> None:
        self._eval_end("test")

    def lr_scale(self) -> float:
        """The linear scaling rule: ``model.lr_*`` hold for one process with ``data.batch_size``.

        ``data.batch_size`` is per process, so N processes (devices x nodes) train on N times the
        batch; with ``scale_lr`` they also use N times the learning rates. One process: always 1.
        """
        trainer = self._trainer
        world = int(trainer.world_size) if trainer is not None else 1
        return float(world) if self.hparams.get("scale_lr", True) else 1.0

    def configure_optimizers(self):
        sr_params = [] if self.net.sr_net is None or self.sr_training == "separate" else list(self.net.sr_net.parameters())
        scale = self.lr_scale()
        groups = [{"params": list(self.net.reid_net.parameters()), "lr": self.hparams.lr_reid * scale, "name": "reid"}]
        if sr_params:
            groups.append({"params": sr_params, "lr": self.hparams.lr_sr * scale, "name": "sr"})
        optimizer = self.optimizer_fn(groups)
        if self.scheduler_fn is None:
            return optimizer
        interval = self.hparams.get("scheduler_interval", "epoch")
        # A per-step schedule spans the whole budget, whatever trainer.max_epochs / max_steps say.
        extra = {"total_steps": int(self.trainer.estimated_stepping_batches)} if interval == "step" else {}
        scheduler = self.scheduler_fn(optimizer, **extra)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": interval}}


def init_weights(net: SINGNet, path: str, parts: list[str]) -> None:
    """Copy F_fe (backbone and neck, not the classifier) and/or F_sr from a sing_lit checkpoint."""
    bad = sorted(set(parts) - {"fe", "sr"})
    if bad or not parts:
        raise ConfigError(f"model.init_parts must be a non-empty subset of ['fe', 'sr'], got {list(parts)}")
    state = load_checkpoint(path)["state_dict"]
    mine = net.state_dict()
    prefixes = {"fe": "reid_net.", "sr": "sr_net."}
    for part in parts:
        keys = [k for k in mine if k.startswith(prefixes[part]) and not k.startswith("reid_net.classifier.")]
        if part == "sr" and net.sr_net is None:
            raise UserError("model.init_parts has 'sr' but this net has no SR sub-network (sr=none); drop it")
        theirs = {k: state.get("net." + k) for k in keys}
        missing = [k for k, v in theirs.items() if v is None]
        if missing:
            raise UserError(f"model.init_from={path} has no {part} weights for this net (e.g. {missing[0]}); "
                            f"it was trained with another {'backbone or neck' if part == 'fe' else 'SR net'}")
        for k, v in theirs.items():
            if v.shape != mine[k].shape:
                raise UserError(f"model.init_from={path}: {k} has shape {tuple(v.shape)}, this net's is "
                                f"{tuple(mine[k].shape)}; train with the same backbone, neck and feat_dim")
        net.load_state_dict(theirs, strict=False)

