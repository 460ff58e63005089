"""A trained SING suite as one object: features per anchor, distances and fused distances (Eq. 6-8).

Example (a tiny model trained on the built-in benchmark; ``sweep`` is a finished multirun dir
``python -m sing_lit.train -m +anchor=1/2,1/3,1/4``, ``lr`` and ``hr`` are image paths):

    >>> model = load(sweep)                                  # the three anchors, sigma of fuse/metrics.json
    >>> [a.name for a in model.anchors], model.sigma in (0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 2, 5)
    (['x2', 'x3', 'x4'], True)
    >>> q, g = model.encode(lr, lr=True), model.encode(hr, lr=False)   # F_sr then F_fe / F_fe only
    >>> q.features.shape[0], q.features.shape[1] == len(lr)          # (anchors, images, feature dim)
    (3, True)
    >>> fused = model.fuse(q, g)                            # Eq. (7) r from the genuine sizes, Eq. (8) weights
    >>> fused.distances.shape == (len(lr), len(hr)), bool((fused.weights.sum(1) - 1).abs().max() < 1e-9)
    (True, True)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import OmegaConf

from sing_lit.api.inputs import Converter, ImageLike, Prepared, as_list, prepare
from sing_lit.evaluation.ranking import pairwise_l2
from sing_lit.models.sing_net import SINGNet
from sing_lit.runtime.anchors import (
    AnchorRun,
    anchor_from_checkpoint,
    anchor_from_run_dir,
    build_net,
    check_trial,
    load_checkpoint,
    sweep_jobs,
)
from sing_lit.runtime.cli import UserError
from sing_lit.sing.fusion import fuse_distances, fusion_weights, resolution_ratio

FEATURE_VERSION = 1  # part of the feature-cache key: bump when preprocessing or feature extraction changes


@dataclass
class Anchor:
    """One anchor model M_i: its name, ratio m_i and network."""

    name: str
    ratio: float
    net: SINGNet
    checkpoint: str | None = None


@dataclass
class Encoded:
    """Features of a set of images under every anchor, with their genuine areas.

    Attributes:
        features: (A, N, D) float32, anchor order as in :attr:`SINGModel.anchors`.
        areas: (N,) float64 genuine pixel counts, for Eq. (7).
    """

    features: torch.Tensor
    areas: torch.Tensor


@dataclass
class Fused:
    """Eq. (6)-(8) for a query set against a gallery.

    Attributes:
        distances: (Nq, Ng) fused distances (Eq. 6).
        anchor_distances: (A, Nq, Ng) each anchor's L2 distances (Eq. 1).
        weights: (Nq, A) normalised weights (Eq. 8) of each query.
        r: (Nq,) resolution ratio of each query (Eq. 7).
    """

    distances: torch.Tensor
    anchor_distances: torch.Tensor
    weights: torch.Tensor
    r: torch.Tensor


@dataclass
class SINGModel:
    """Trained anchors plus the sigma the fusion stage chose, and the training preprocessing.

    Build it with :func:`load` (from a sweep, run dirs or checkpoints) or directly from nets.
    """

    anchors: list[Anchor]
    sigma: float | None
    input_size: tuple[int, int]
    upscale: str = "bicubic"
    trial: int = 0
    batch_size: int = 128
    config: dict[str, Any] = field(default_factory=dict)
    signature: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    converter: Converter = field(default_factory=Converter, repr=False)

    def __post_init__(self) -> None:
        if not self.anchors:
            raise UserError("a SING model needs at least one anchor")
        self.anchors = sorted(self.anchors, key=lambda a: -a.ratio)  # the fusion stage's order
        if len(self.anchors) > 1 and self.sigma is None:
            raise UserError(f"{len(self.anchors)} anchors need the sigma of Eq. (8): load a finished sweep "
                            "(its fuse/metrics.json) or pass sigma=")
        self.input_size = (int(self.input_size[0]), int(self.input_size[1]))
        for a in self.anchors:
            a.net.eval()

    @property
    def ratios(self) -> list[float]:
        return [a.ratio for a in self.anchors]

    def prepare(self, images: ImageLike | Sequence[ImageLike], lr: bool) -> Prepared:
        """Images at the input size (LR by ``upscale``, HR by bicubic) and their genuine areas."""
        return prepare(as_list(images), self.input_size, self.upscale if lr else "bicubic", self.converter)

    @torch.inference_mode()
    def features_of(self, batch: torch.Tensor, lr: bool, progress: Any = None) -> torch.Tensor:
        """(A, N, D) features of a prepared uint8 batch: F_fe(F_sr(x)) for LR, F_fe(x) for HR."""
        out = []
        for a in self.anchors:
            feats = []
            for start in range(0, batch.shape[0], self.batch_size):
                x = batch[start:start + self.batch_size].float().div_(255.0)
                feats.append(a.net.lr_features(x) if lr else a.net.hr_features(x))
                if progress is not None:
                    progress(x.shape[0])
            out.append(torch.cat(feats).float() if feats else torch.zeros(0, 0))
        return torch.stack(out)

    def encode(self, images: ImageLike | Sequence[ImageLike] | Prepared, lr: bool, progress: Any = None) -> Encoded:
        """Features of LR probes (``lr=True``) or HR gallery images under every anchor."""
        prepared = images if isinstance(images, Prepared) else self.prepare(images, lr)
        return Encoded(self.features_of(prepared.images, lr, progress), prepared.areas)

    def distances(self, query: Encoded, gallery: Encoded) -> torch.Tensor:
        """(A, Nq, Ng) L2 distances of every anchor (Eq. 1)."""
        return torch.stack([pairwise_l2(q, g) for q, g in zip(query.features, gallery.features)])

    def fuse(self, query: Encoded | Sequence[ImageLike], gallery: Encoded | Sequence[ImageLike]) -> Fused:
        """Fused distances of queries (LR) against a gallery (HR), Eq. (6)-(8) with the model's sigma."""
        query = query if isinstance(query, Encoded) else self.encode(query, lr=True)
        gallery = gallery if isinstance(gallery, Encoded) else self.encode(gallery, lr=False)
        dists = self.distances(query, gallery)
        r = resolution_ratio(query.areas, gallery.areas)
        if len(self.anchors) == 1:
            weights = torch.ones(r.shape[0], 1, dtype=torch.float64)
        else:
            weights = fusion_weights(r, self.ratios, float(self.sigma))
        return Fused(fuse_distances(dists, weights), dists, weights, r)

    def key(self) -> str:
        """What gallery features depend on (weights, input size, version), for the feature cache."""
        h = hashlib.sha1(f"{FEATURE_VERSION} {self.input_size}".encode())
        for a in self.anchors:
            h.update(a.name.encode())
            if a.checkpoint:
                with open(a.checkpoint, "rb") as f:
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        h.update(chunk)
            else:
                for name, t in sorted(a.net.state_dict().items()):
                    h.update(name.encode())
                    h.update(t.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()[:20]


def _fuse_metrics_sigma(fuse_dir: Path, anchors: list[AnchorRun], trial: int) -> float:
    path = fuse_dir / "metrics.json"
    if not path.is_file():
        raise UserError(f"model dir {fuse_dir.parent} is not a finished sweep: {path} is missing "
                        "(the fusion stage did not run or did not finish; run python -m sing_lit.fuse "
                        f"multirun_dir={fuse_dir.parent})")
    try:
        result = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise UserError(f"{path} is not valid JSON ({err}); run the fusion stage again") from err
    fused = sorted(a["name"] for a in result.get("anchors", []))
    if fused != sorted(a.name for a in anchors):
        raise UserError(f"{path} fused anchors {fused}, but the sweep holds {sorted(a.name for a in anchors)}")
    for t in result.get("trials", []):
        if int(t["trial"]) == trial and t.get("sigma") is not None:
            return float(t["sigma"])
    raise UserError(f"{path} has no sigma for trial {trial}; trials: {[t['trial'] for t in result.get('trials', [])]}")


def resolve(source: str | Path | Sequence[str | Path], trial: int) -> tuple[list[AnchorRun], float | None]:
    """Anchors (and the fusion stage's sigma, for a sweep) from a sweep dir, run dirs or checkpoints."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists():
            raise UserError(f"model {path} does not exist; expected a sweep dir, an anchor run dir or a checkpoint")
        if path.is_file():
            return [anchor_from_checkpoint(path)], None
        if sweep_jobs(path):
            from sing_lit.runtime.pipeline import anchor_groups

            groups = anchor_groups(path)
            if len(groups) != 1:
                raise UserError(f"sweep {path} holds {len(groups)} groups of anchors (other overrides vary); "
                                "give the run dirs of one group and sigma=")
            anchors = next(iter(groups.values()))
            return anchors, _fuse_metrics_sigma(path / "fuse", anchors, trial)
        if (path / "metrics.json").is_file():
            return [anchor_from_run_dir(path)], None
        raise UserError(f"model dir {path} is not a finished sweep (no job dirs with .hydra/overrides.yaml) "
                        "nor an anchor run dir (no metrics.json)")
    anchors = []
    for p in source:
        found, _ = resolve(p, trial)
        if len(found) != 1:
            raise UserError(f"{p} is a sweep; give it alone as the model, or list anchor run dirs or checkpoints")
        anchors.extend(found)
    return anchors, None


def model_source(value: Any) -> str | list[str]:
    """The ``model=`` argument of an entry point: one path, or a list of run dirs/checkpoints."""
    if value is None or value == "":
        raise UserError("give model=<finished sweep dir | anchor run dir | checkpoint | [run dirs or checkpoints]>")
    if isinstance(value, (str, Path)):
        return str(value)
    return [str(v) for v in value]


def load(source: str | Path | Sequence[str | Path], trial: int = 0, sigma: float | None = None,
         batch_size: int = 128) -> SINGModel:
    """Load a trained SING suite for inference on CPU.

    Args:
        source: a finished sweep dir (``multirun/train/<dataset>/<time>``: the anchor jobs and
            ``fuse/metrics.json``), one anchor run dir or checkpoint, or a list of run dirs/checkpoints.
        trial: which trial's checkpoints to use (and its sigma).
        sigma: overrides the fusion stage's sigma; needed for several anchors given without a sweep.
        batch_size: images per forward pass.

    Raises:
        UserError: a missing/unfinished/corrupt model, or anchors that do not belong together.
    """
    anchors, chosen = resolve(source, int(trial))
    ckpts, metas = {}, {}
    for a in anchors:
        if trial not in a.checkpoints:
            raise UserError(f"anchor {a.name} ({a.source}) has no trial {trial}; it has {sorted(a.checkpoints)}")
        ckpts[a.name] = load_checkpoint(a.checkpoints[trial])
        metas[a.name] = ckpts[a.name]["sing_lit"]
    check_trial(anchors, metas, int(trial))
    config = metas[anchors[0].name]["config"]
    data = config["data"]
    nets = [Anchor(a.name, a.ratio, build_net(ckpts[a.name], a.checkpoints[trial]), str(a.checkpoints[trial]))
            for a in anchors]
    return SINGModel(nets, sigma if sigma is not None else chosen, tuple(data["input_size"]),
                     upscale=data.get("upscale", "bicubic"), trial=int(trial), batch_size=batch_size,
                     config=config, signature=metas[anchors[0].name]["data"], source=str(source))


def split_records(model: SINGModel, role: str) -> tuple[list, list]:
    """The probe and gallery records of the model's own dataset, trial and ``role`` (``val``/``test``)."""
    if not model.config:
        raise UserError("this model was not loaded from checkpoints: it has no dataset to take a split from")
    dm = hydra.utils.instantiate(OmegaConf.create(model.config["data"]), trial=model.trial, split_out=None)
    records = dm.eval_records(role)
    if dm.signature()["split"] != model.signature.get("split"):
        raise UserError(f"the dataset at {dm.data_root} no longer gives the split the model was trained on "
                        "(files changed, or a different split file)")
    return records
