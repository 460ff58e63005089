"""python -m sing_lit.export: ONNX graphs that onnxruntime runs to torch's features, and fusion outside Python."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import sing_lit.api.export as export_mod
from sing_lit.api import load
from sing_lit.api.model import split_records
from test_fuse_pipeline import run, sweep  # noqa: F401  (the tiny three-anchor sweep fixture)

ort = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def exported(sweep, tmp_path_factory):  # noqa: F811
    base, cache, proc = sweep
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path_factory.mktemp("export") / "onnx"
    proc = run(["sing_lit.export", f"model={base / 'mr'}", f"out={out}"], base, cache)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "max abs diff" in proc.stdout
    return base / "mr", out


def test_the_json_holds_what_fusion_outside_python_needs(exported):
    mr, out = exported
    meta = json.loads((out / "sing_onnx.json").read_text())
    fuse = json.loads((mr / "fuse" / "metrics.json").read_text())
    assert meta["sigma"] == fuse["trials"][0]["sigma"]
    assert [(a["name"], a["ratio"]) for a in meta["anchors"]] == [(a["name"], a["ratio"]) for a in fuse["anchors"]]
    assert meta["input"]["shape"][1:] == [3, 64, 32] and meta["input"]["range"] == [0.0, 1.0]
    assert meta["check"]["max_abs_diff"] <= 1e-4
    for a in meta["anchors"]:
        assert (out / a["probe"]).is_file() and (out / a["gallery"]).is_file()


def test_onnxruntime_fusion_equals_the_torch_api(exported):
    """Features from onnxruntime at a batch size the export never saw, fused with numpy from the JSON alone."""
    mr, out = exported
    meta = json.loads((out / "sing_onnx.json").read_text())
    model = load(mr)
    probes, gallery = split_records(model, "test")
    q_paths, g_paths = [r.path for r in probes[:7]], [r.path for r in gallery]
    q, g = model.prepare(q_paths, lr=True), model.prepare(g_paths, lr=False)
    r = np.sqrt(q.areas.numpy() / g.areas.numpy().mean())
    raw = np.stack([np.exp(-((r - a["ratio"]) ** 2) / meta["sigma"] ** 2) for a in meta["anchors"]], axis=1)
    w = raw / raw.sum(1, keepdims=True)
    fused = np.zeros((len(q_paths), len(g_paths)))
    for i, a in enumerate(meta["anchors"]):
        fq = ort.InferenceSession(str(out / a["probe"])).run(None, {"image": q.images.numpy() / np.float32(255)})[0]
        fg = ort.InferenceSession(str(out / a["gallery"])).run(None, {"image": g.images.numpy() / np.float32(255)})[0]
        net = model.anchors[i].net
        with torch.no_grad():
            ref = net.lr_features(q.images.float() / 255).numpy()
        unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
        assert np.abs(unit(fq) - unit(ref)).max() <= 1e-4
        fused += w[:, i:i + 1] * np.sqrt(((fq[:, None].astype(np.float64) - fg[None]) ** 2).sum(-1))
    np.testing.assert_allclose(fused, model.fuse(q_paths, g_paths).distances.numpy(), rtol=1e-4, atol=1e-4)


def test_a_failed_self_check_writes_nothing(exported, monkeypatch, tmp_path):
    mr, _ = exported
    monkeypatch.setattr(export_mod, "TOLERANCE", -1.0)
    with pytest.raises(RuntimeError, match="self-check failed"):
        export_mod.export_onnx(load(mr), tmp_path / "onnx", tmp_path / "cache")
    assert not (tmp_path / "onnx").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name != "cache"] == []
