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


@pytest.mark.parametrize("k,c_in,c_out,bias", [(5, 32, 3, True), (3, 8, 1, False), (1, 4, 3, True), (9, 3, 5, True)])
def test_transposed_equivalent_computes_the_same_conv(k, c_in, c_out, bias):
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=bias).double()
    x = torch.randn(2, c_in, 13, 7, dtype=torch.float64)
    t = export_mod.transposed_equivalent(conv)
    assert isinstance(t, torch.nn.ConvTranspose2d)
    # reference: the convolution written out as a sum over the kernel's taps of shifted inputs
    xp = torch.nn.functional.pad(x, [k // 2] * 4)
    ref = sum(torch.einsum("oc,nchw->nohw", conv.weight[:, :, i, j], xp[:, :, i:i + 13, j:j + 7])
              for i in range(k) for j in range(k))
    if bias:
        ref = ref + conv.bias.view(1, -1, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(t(x), ref, rtol=0, atol=1e-10)


@pytest.mark.parametrize("conv", [torch.nn.Conv2d(4, 3, 3, stride=2, padding=1), torch.nn.Conv2d(4, 3, 3, padding=0),
                                  torch.nn.Conv2d(4, 3, 3, padding=2, dilation=2), torch.nn.Conv2d(4, 2, 3, padding=1, groups=2),
                                  torch.nn.Conv2d(4, 3, 3, padding=1, padding_mode="reflect")])
def test_convs_without_a_transposed_equivalent_are_left_alone(conv):
    assert export_mod.transposed_equivalent(conv) is None


def test_deployment_copy_rewrites_only_narrow_same_convs_and_leaves_the_net_alone():
    from sing_lit.models.sr_net import SRNet

    sr = SRNet(channels=(16, 8), kernel_sizes=(9, 1, 5))
    before = [type(m) for m in sr.body]
    copy = export_mod.deployment_copy(sr)
    assert [type(m) for m in sr.body] == before  # the trained net is untouched
    assert [type(m).__name__ for m in copy.body] == ["Conv2d", "ReLU", "Conv2d", "ReLU", "ConvTranspose2d"]
    x = torch.rand(3, 3, 24, 12)
    with torch.no_grad():
        torch.testing.assert_close(copy(x), sr(x), rtol=0, atol=1e-5)
