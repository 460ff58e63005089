"""ONNX export of a trained suite: per anchor the probe path (F_sr then F_fe) and the gallery path (F_fe).

Each graph takes a float32 (batch, 3, H, W) RGB batch in [0, 1] at the input size (batch is dynamic)
and returns (batch, D) re-id features; standardisation happens inside the graph. ``sing_onnx.json``
holds what the fusion needs outside Python: anchor ratios, sigma, input size, resize filters and
Eq. (6)-(8). The export checks itself with onnxruntime on images of the built-in benchmark and is
written only when every graph agrees with torch (the folder appears whole).

TorchScript is not exported: ``torch.jit`` is deprecated in the torch versions we support (it warns
to use ``torch.export``), and ONNX already serves deployment outside Python.
"""

from __future__ import annotations

import copy
import logging
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sing_lit.api.model import SINGModel
from sing_lit.runtime.atomic import build_dir_atomic, write_json_atomic
from sing_lit.runtime.cli import UserError

log = logging.getLogger("sing_lit.export")

TOLERANCE = 1e-4  # max abs difference of L2-normalised features, onnxruntime vs torch
OPSET = 17


NARROW_OUTPUT = 8  # a "same" conv with fewer output channels is exported as its equivalent ConvTranspose


def transposed_equivalent(conv: nn.Conv2d) -> nn.ConvTranspose2d | None:
    """The ConvTranspose2d that computes exactly what a stride-1 "same" Conv2d computes, or None.

    A stride-1 convolution is a transposed convolution with the kernel flipped in space and its
    in/out channels swapped; with padding p = (k - 1) / 2 both keep the size. onnxruntime runs a
    transposed convolution as one GEMM over the input channels followed by col2im, which is
    several times faster than its direct Conv for the SR net's reconstruction layer (32 -> 3
    channels, 5x5), whose 3 output channels cannot fill a SIMD block. The result is the same
    function; only the order of the float additions differs (the export's self-check bounds it).
    """
    k = conv.kernel_size
    if (conv.stride != (1, 1) or conv.dilation != (1, 1) or conv.groups != 1 or conv.padding_mode != "zeros"
            or not isinstance(conv.padding, tuple) or any(2 * p != kk - 1 for p, kk in zip(conv.padding, k))):
        return None
    t = nn.ConvTranspose2d(conv.in_channels, conv.out_channels, k, padding=conv.padding, bias=conv.bias is not None)
    with torch.no_grad():
        t.weight.copy_(conv.weight.flip(-1, -2).transpose(0, 1))
        if conv.bias is not None:
            t.bias.copy_(conv.bias)
    return t.to(conv.weight.device, conv.weight.dtype)


def deployment_copy(net: nn.Module) -> nn.Module:
    """A copy of ``net`` for export: narrow-output "same" convs become their transposed equivalents."""
    net = copy.deepcopy(net).eval()
    for parent in list(net.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Conv2d) and child.out_channels < NARROW_OUTPUT:
                replacement = transposed_equivalent(child)
                if replacement is not None:
                    setattr(parent, name, replacement)
    return net


class FeaturePath(nn.Module):
    """One deployment path of an anchor as a module: ``lr_features`` (probe) or ``hr_features`` (gallery).

    The net is :func:`deployment_copy`'d: the same function, in the form onnxruntime runs fastest.
    """

    def __init__(self, net: nn.Module, probe: bool) -> None:
        super().__init__()
        self.net, self.probe = deployment_copy(net), probe

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net.lr_features(image) if self.probe else self.net.hr_features(image)


def onnxruntime_session(path: str | Path):
    try:
        import onnxruntime as ort
    except ImportError as err:
        raise UserError("export needs onnxruntime and onnx: pip install 'sing_lit[onnx]'") from err
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def export_graph(module: nn.Module, example: torch.Tensor, path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter's deprecation notice
        torch.onnx.export(module.eval(), (example,), str(path), dynamo=False, opset_version=OPSET,
                          input_names=["image"], output_names=["feature"],
                          dynamic_axes={"image": {0: "batch"}, "feature": {0: "batch"}})


def max_normalised_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    """Max abs difference of the L2-normalised rows of two feature matrices."""
    na = torch.nn.functional.normalize(a.double(), dim=1)
    nb = torch.nn.functional.normalize(b.double(), dim=1)
    return float((na - nb).abs().max())


def check_images(model: SINGModel, cache_dir: str | Path | None = None, n: int = 16) -> dict[str, torch.Tensor]:
    """Probe and gallery batches (float in [0, 1], at the input size) from the built-in benchmark."""
    from sing_lit.data.synthetic import build_synthetic_benchmark

    root = Path(cache_dir) if cache_dir is not None else Path(tempfile.gettempdir()) / "sing_lit_export_check"
    records = build_synthetic_benchmark(root, num_ids=max(2, n // 2), hr_images_per_id=2, lr_images_per_id=2)
    lr = [r.path for r in records if r.genuine_lr][:n]
    hr = [r.path for r in records if not r.genuine_lr][:n]
    return {"probe": model.prepare(lr, lr=True).images.float() / 255.0,
            "gallery": model.prepare(hr, lr=False).images.float() / 255.0}


def export_onnx(model: SINGModel, out_dir: str | Path, cache_dir: str | Path | None = None) -> dict[str, Any]:
    """Write ``<anchor>_probe.onnx``, ``<anchor>_gallery.onnx`` and ``sing_onnx.json`` into ``out_dir``.

    Raises:
        RuntimeError: an onnxruntime graph disagrees with torch beyond :data:`TOLERANCE`
            (nothing is written then).
    """
    batches = check_images(model, cache_dir)
    h, w = model.input_size
    checks: list[dict[str, Any]] = []
    result: dict[str, Any] = {}

    def build(tmp: Path) -> None:
        anchors = []
        for a in model.anchors:
            a.net.eval()
            entry: dict[str, Any] = {"name": a.name, "ratio": a.ratio}
            for role, probe in (("probe", True), ("gallery", False)):
                module = FeaturePath(a.net, probe).eval()
                name = f"{a.name}_{role}.onnx"
                x = batches[role]
                export_graph(module, x[:2], tmp / name)
                session = onnxruntime_session(tmp / name)
                with torch.inference_mode():  # the trained net itself, not the deployment copy
                    ref = (a.net.lr_features if probe else a.net.hr_features)(x)
                for size in (x.shape[0], 1):  # the batch is dynamic: another size than the export's
                    got = torch.from_numpy(session.run(None, {"image": x[:size].numpy()})[0])
                    diff = max_normalised_diff(got, ref[:size])
                    checks.append({"anchor": a.name, "graph": role, "batch": size, "max_abs_diff": diff})
                    if not diff <= TOLERANCE:
                        raise RuntimeError(f"export self-check failed: {name} gives features {diff:.2e} away from "
                                           f"torch's (max abs after L2 normalisation; tolerance {TOLERANCE})")
                entry[role] = name
                entry["feature_dim"] = int(ref.shape[1])
            anchors.append(entry)
        result.update({
            "anchors": anchors,
            "sigma": model.sigma,
            "trial": model.trial,
            "source": model.source,
            "input": {"name": "image", "shape": ["batch", 3, h, w], "dtype": "float32", "layout": "NCHW, RGB",
                      "range": [0.0, 1.0], "scale": "uint8 pixel / 255",
                      "resize_probe": model.upscale, "resize_gallery": "bicubic",
                      "resize_note": "to (H, W) = input size, PIL filters, from the image as captured"},
            "normalisation": "inside the graphs (ImageNet mean/std standardisation); feed [0, 1] pixels",
            "output": {"name": "feature", "shape": ["batch", "feature_dim"], "distance": "L2 (Eq. 1)"},
            "fusion": {
                "r": "sqrt(probe_area / mean(gallery_areas)), areas in pixels of the images before resizing (Eq. 7)",
                "weights": "w_i = exp(-(r - ratio_i)^2 / sigma^2), normalised to sum 1 per probe (Eq. 8)",
                "distance": "D = sum_i w_i * L2(probe_feature_i, gallery_feature_i) (Eq. 6)",
            },
            "check": {"images": "built-in benchmark (sing_lit.data.synthetic)", "tolerance": TOLERANCE,
                      "max_abs_diff": max(c["max_abs_diff"] for c in checks), "graphs": checks},
            "torchscript": "not exported: torch.jit is deprecated (use these ONNX graphs)",
        })
        write_json_atomic(tmp / "sing_onnx.json", result)

    build_dir_atomic(out_dir, build, replace=True)
    return result
