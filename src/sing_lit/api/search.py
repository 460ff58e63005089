"""Search LR query images against an HR gallery with a trained suite: ranking, pictures, metrics.

Gallery features are cached by file content and model (:class:`FeatureCache`), so a second search
against the same gallery reads them instead of recomputing them. The output folder (ranking.json,
ranking.csv, contact sheets) is built aside and renamed into place: it appears whole or not at all.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import re
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from sing_lit.api.inputs import Prepared, image_files
from sing_lit.api.model import Encoded, Fused, SINGModel, split_records
from sing_lit.data.records import DatasetError
from sing_lit.evaluation.ranking import cmc_and_map
from sing_lit.runtime.atomic import atomic_path, build_dir_atomic, write_json_atomic
from sing_lit.runtime.errors import ConfigError
from sing_lit.viz.pictures import RankedRow, ranked_strip, save_png, to_pil

log = logging.getLogger("sing_lit.search")

PID = re.compile(r"^(-?\d+)(?=[_\-.]|$)")  # Market/Duke/our benchmark: 0001_c1s1_....jpg, 0001_00.png
SHEET_ROWS = 16


def pid_from_name(path: str | Path) -> int | None:
    """The person id a file name starts with (``0001_c1s1_001051_00.jpg`` -> 1), or None."""
    m = PID.match(Path(path).name)
    return int(m.group(1)) if m else None


def content_hashes(paths: Sequence[str | Path], workers: int = 2) -> list[str]:
    def one(p: str | Path) -> str:
        try:
            with open(p, "rb") as f:
                return hashlib.sha1(f.read()).hexdigest()
        except OSError as err:
            raise DatasetError(f"unreadable image: {p} ({err.strerror or err})") from err

    with ThreadPoolExecutor(max(1, workers)) as pool:
        return list(pool.map(one, paths))


class FeatureCache:
    """Gallery features keyed by image content, one file per model (``<root>/<model key>.pt``)."""

    def __init__(self, root: str | Path | None, model_key: str) -> None:
        self.path = None if root is None else Path(root) / f"{model_key}.pt"
        self.entries: dict[str, tuple[torch.Tensor, float]] = {}
        if self.path is not None and self.path.is_file():
            try:
                saved = torch.load(self.path, map_location="cpu", weights_only=True)
                self.entries = {h: (saved["features"][:, i], float(saved["areas"][i]))
                                for i, h in enumerate(saved["hashes"])}
            except Exception as err:  # a damaged cache only costs a recomputation
                log.warning("ignoring the damaged feature cache %s (%s)", self.path, type(err).__name__)

    def get(self, hashes: Sequence[str]) -> list[int]:
        """Indices of the hashes that are not cached."""
        return [i for i, h in enumerate(hashes) if h not in self.entries]

    def encoded(self, hashes: Sequence[str]) -> Encoded:
        feats = torch.stack([self.entries[h][0] for h in hashes], dim=1)
        return Encoded(feats, torch.tensor([self.entries[h][1] for h in hashes], dtype=torch.float64))

    def put(self, hashes: Sequence[str], enc: Encoded) -> None:
        for i, h in enumerate(hashes):
            self.entries[h] = (enc.features[:, i].clone(), float(enc.areas[i]))
        if self.path is None or not hashes:
            return
        keys = list(self.entries)
        blob = {"hashes": keys, "features": torch.stack([self.entries[h][0] for h in keys], dim=1),
                "areas": torch.tensor([self.entries[h][1] for h in keys], dtype=torch.float64)}
        with atomic_path(self.path) as tmp:
            buf = io.BytesIO()
            torch.save(blob, buf)
            tmp.write_bytes(buf.getvalue())


@contextmanager
def progress_bar(total: int, enabled: bool = True):
    """A progress bar (on stderr) over feature extraction; yields ``advance(n)``."""
    if not enabled or total == 0:
        yield lambda n: None
        return
    columns = (TextColumn("features"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task("features", total=total)
        yield lambda n: bar.advance(task, n)


@dataclass
class SearchResult:
    """Queries, gallery, the top-k per query and (when ids are known) CMC/mAP."""

    queries: list[str]
    gallery: list[str]
    query_pids: list[int | None]
    gallery_pids: list[int | None]
    fused: Fused
    top: torch.Tensor  # (Nq, k) gallery indices, best first
    query_images: torch.Tensor  # (Nq, 3, H, W) uint8, as fed to the net (for pictures)
    query_areas: torch.Tensor  # (Nq,) genuine pixel counts
    metrics: dict[str, Any] | None
    timings: dict[str, float] = field(default_factory=dict)


def gallery_encoded(model: SINGModel, paths: Sequence[str], hashes: Sequence[str], cache: FeatureCache,
                    advance: Callable[[int], None], timings: dict[str, float]) -> Encoded:
    """Gallery features: cached ones read, the others computed (and added to the cache)."""
    missing = cache.get(hashes)
    if missing:
        t = time.perf_counter()
        prepared = model.prepare([paths[i] for i in missing], lr=False)
        timings["io"] += time.perf_counter() - t
        t = time.perf_counter()
        enc = model.encode(prepared, lr=False, progress=advance)
        timings["features"] += time.perf_counter() - t
        t = time.perf_counter()
        cache.put([hashes[i] for i in missing], enc)
        timings["io"] += time.perf_counter() - t
    return cache.encoded(hashes)


def evaluate(fused: Fused, q_pids: Sequence[int | None], g_pids: Sequence[int | None]) -> dict[str, Any] | None:
    """CMC/mAP/mINP of the fused ranking over the queries whose id is in the gallery (ids from names or a split)."""
    if any(p is None for p in q_pids) or any(p is None for p in g_pids):
        return None
    in_gallery = set(g_pids)
    keep = [i for i, p in enumerate(q_pids) if p in in_gallery]
    if not keep:
        return None
    out = cmc_and_map(fused.distances[keep], torch.tensor([q_pids[i] for i in keep]), torch.tensor(list(g_pids)))
    return {"rank1": out["rank1"], "rank5": out["rank5"], "rank10": out["rank10"], "rank20": out["rank20"],
            "mAP": out["mAP"], "mINP": out["mINP"], "queries_evaluated": len(keep), "queries": len(q_pids)}


def search(model: SINGModel, queries: Sequence[str | Path], gallery: Sequence[str | Path], top_k: int = 10,
           cache_dir: str | Path | None = None, query_pids: Sequence[int | None] | None = None,
           gallery_pids: Sequence[int | None] | None = None, progress: bool = True) -> SearchResult:
    """Rank ``gallery`` (HR image files) for each of ``queries`` (LR image files) by fused distance."""
    if top_k < 1:
        raise ConfigError(f"top_k must be >= 1, got {top_k}")
    queries, gallery = [str(p) for p in queries], [str(p) for p in gallery]
    q_pids = list(query_pids) if query_pids is not None else [pid_from_name(p) for p in queries]
    g_pids = list(gallery_pids) if gallery_pids is not None else [pid_from_name(p) for p in gallery]
    timings = {"io": 0.0, "features": 0.0, "ranking": 0.0}
    start = time.perf_counter()
    cache = FeatureCache(cache_dir, model.key() if cache_dir is not None else "")
    t = time.perf_counter()
    q_prep: Prepared = model.prepare(queries, lr=True)
    g_hashes = content_hashes(gallery)
    timings["io"] += time.perf_counter() - t
    with progress_bar((len(queries) + len(cache.get(g_hashes))) * len(model.anchors), progress) as advance:
        t = time.perf_counter()
        q_enc = model.encode(q_prep, lr=True, progress=advance)
        timings["features"] += time.perf_counter() - t
        g_enc = gallery_encoded(model, gallery, g_hashes, cache, advance, timings)
    t = time.perf_counter()
    fused = model.fuse(q_enc, g_enc)
    top = fused.distances.argsort(dim=1, stable=True)[:, :top_k]
    metrics = evaluate(fused, q_pids, g_pids)
    timings["ranking"] += time.perf_counter() - t
    timings["total"] = time.perf_counter() - start
    return SearchResult(queries, gallery, q_pids, g_pids, fused, top, q_prep.images, q_enc.areas, metrics, timings)


def ranking_rows(result: SearchResult, model: SINGModel) -> list[dict[str, Any]]:
    """One entry per query: its r (Eq. 7), fused weights (Eq. 8) and top-k matches with distances."""
    rows = []
    names = [a.name for a in model.anchors]
    for q, path in enumerate(result.queries):
        matches = []
        for rank, g in enumerate(result.top[q].tolist(), start=1):
            match = None if result.query_pids[q] is None else result.query_pids[q] == result.gallery_pids[g]
            matches.append({"rank": rank, "gallery": result.gallery[g], "distance": float(result.fused.distances[q, g]),
                            "gallery_pid": result.gallery_pids[g], "match": match})
        rows.append({"query": path, "pid": result.query_pids[q], "area": float(result.query_areas[q]),
                     "r": float(result.fused.r[q]),
                     "weights": dict(zip(names, (float(w) for w in result.fused.weights[q]))), "matches": matches})
    return rows


def _contact_sheets(result: SearchResult, model: SINGModel, rows: list[dict], out: Path, limit: int) -> list[str]:
    """Query | its top-k, true matches boxed (when ids are known), ``SHEET_ROWS`` queries per PNG."""
    shown = list(range(min(limit, len(rows))))
    names = []
    for s in range(0, len(shown), SHEET_ROWS):
        chunk = shown[s:s + SHEET_ROWS]
        top = sorted({g for q in chunk for g in result.top[q].tolist()})
        gallery = dict(zip(top, model.prepare([result.gallery[g] for g in top], lr=False).images))
        strip = [RankedRow(to_pil(result.query_images[q]), Path(result.queries[q]).stem[:12],
                           [to_pil(gallery[g]) for g in result.top[q].tolist()],
                           [bool(m["match"]) for m in rows[q]["matches"]]) for q in chunk]
        name = f"sheets/ranking_{s // SHEET_ROWS:03d}.png"
        save_png(ranked_strip(strip, model.input_size, result.top.shape[1]), out / name)
        names.append(name)
    return names


def write_search(result: SearchResult, model: SINGModel, out_dir: str | Path, pictures: int = 64) -> Path:
    """Write ranking.json, ranking.csv and contact sheets of the first ``pictures`` queries into ``out_dir``.

    The folder is built aside and renamed into place (a previous one is replaced only once the new one is whole).
    """
    rows = ranking_rows(result, model)
    names = [a.name for a in model.anchors]

    def build(tmp: Path) -> None:
        sheets = _contact_sheets(result, model, rows, tmp, pictures) if pictures > 0 else []
        with open(tmp / "ranking.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["query", "rank", "gallery", "distance", "match", "r", *(f"w_{n}" for n in names)])
            for row in rows:
                for m in row["matches"]:
                    w.writerow([row["query"], m["rank"], m["gallery"], f"{m['distance']:.6g}",
                                "" if m["match"] is None else int(m["match"]), f"{row['r']:.6g}",
                                *(f"{row['weights'][n]:.6g}" for n in names)])
        write_json_atomic(tmp / "ranking.json", {
            "model": model.source, "trial": model.trial, "sigma": model.sigma,
            "anchors": [{"name": a.name, "ratio": a.ratio} for a in model.anchors],
            "top_k": int(result.top.shape[1]), "queries": len(result.queries), "gallery": len(result.gallery),
            "metrics": result.metrics, "sheets": sheets, "ranking": rows})

    return build_dir_atomic(out_dir, build, replace=True)


def select_images(model: SINGModel, query: str | None, gallery: str | None,
                  split: str | None) -> tuple[list[str], list[str], list | None, list | None]:
    """Query and gallery files (and ids) from two folders, or from the model's own dataset split."""
    if split is not None:
        if query or gallery:
            raise ConfigError("give either split=val|test or query=<folder> gallery=<folder>, not both")
        probes, gal = split_records(model, str(split))
        return [r.path for r in probes], [r.path for r in gal], [r.pid for r in probes], [r.pid for r in gal]
    if not query or not gallery:
        raise ConfigError("give query=<folder of LR images> and gallery=<folder of HR images> (or split=test)")
    return [str(p) for p in image_files(query, "query")], [str(p) for p in image_files(gallery, "gallery")], None, None
