"""Read an offline W&B run back from its ``run-<id>.wandb`` file (no network, no wandb service).

The file is a LevelDB-style log of protobuf ``Record``s: a 7-byte header (``:W&B``, magic,
version), then 32 KiB blocks of chunks, each with a 7-byte header (crc32, little-endian
length, type: 1 full, 2 first, 3 middle, 4 last); a block's tail under 7 bytes is padding.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path

BLOCK, HEADER = 32768, 7


def _chunks(data: bytes):
    assert data[:4] == b":W&B", "not a W&B run file"
    pos, buf = HEADER, b""
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:
            pos += left
            continue
        length, kind = struct.unpack("<HB", data[pos + 4:pos + HEADER])
        chunk = data[pos + HEADER:pos + HEADER + length]
        pos += HEADER + length
        if kind == 1:
            yield chunk
        elif kind == 2:
            buf = chunk
        elif kind == 3:
            buf += chunk
        elif kind == 4:
            yield buf + chunk


@dataclass
class OfflineRun:
    """What one offline run recorded: its identity, every history row and its config."""

    dir: Path
    run_id: str = ""
    group: str = ""
    job_type: str = ""
    name: str = ""
    project: str = ""
    history: list[dict] = field(default_factory=list)
    config: dict = field(default_factory=dict)

    @property
    def keys(self) -> set[str]:
        return {k for row in self.history for k in row}

    def values(self, key: str) -> list:
        return [row[key] for row in self.history if key in row]

    def images(self, key: str) -> list[Path]:
        """Files of an image key's entries (``key`` logged as a list gives ``key/filenames``)."""
        out = []
        for row in self.history:
            if row.get(f"{key}/_type") == "images/separated":
                out += [self.dir / "files" / f for f in row[f"{key}/filenames"]]
            elif row.get(f"{key}/_type") == "image-file":
                out.append(self.dir / "files" / row[f"{key}/path"])
        return out


def read_run(run_dir: str | Path) -> OfflineRun:
    from wandb.proto import wandb_internal_pb2 as pb

    run_dir = Path(run_dir)
    files = list(run_dir.glob("run-*.wandb"))
    assert len(files) == 1, f"expected one run-*.wandb in {run_dir}, found {files}"
    out = OfflineRun(run_dir)
    for data in _chunks(files[0].read_bytes()):
        rec = pb.Record()
        rec.ParseFromString(data)
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            r = rec.run
            out.run_id, out.group, out.job_type, out.name, out.project = (r.run_id, r.run_group, r.job_type,
                                                                            r.display_name, r.project)
        elif kind == "history":
            out.history.append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                                for item in rec.history.item})
        elif kind == "config":
            for item in rec.config.update:
                key = item.key or "/".join(item.nested_key)
                out.config[key] = json.loads(item.value_json)
    return out


def offline_runs(root: str | Path) -> list[OfflineRun]:
    """Every offline run under ``root`` (a run dir holds ``wandb/offline-run-*``)."""
    return [read_run(d) for d in sorted(Path(root).rglob("offline-run-*")) if d.is_dir()]
