"""sr=fsrcnn: the cheaper F_sr works on the LR grid and keeps SRNet's interface (issue #13)."""

from __future__ import annotations

import hydra
import pytest
import torch
from torch import nn

from sing_lit.models.fsrcnn import FSRCNN, upscale_factor
from sing_lit.models.reid_net import ReIDNet
from sing_lit.models.sing_net import SINGNet
from sing_lit.models.small_cnn import SmallCNN
from sing_lit.models.sr_net import SRNet
from sing_lit.sing.losses import sing_losses


def _conv_macs(net: nn.Module, x: torch.Tensor) -> int:
    """Multiply-adds of every convolution, from the shapes its hooks see (no profiler)."""
    total = [0]

    def hook(conv, inp, out):
        total[0] += out.numel() * conv.in_channels // conv.groups * conv.kernel_size[0] * conv.kernel_size[1]

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        net(x)
    for h in handles:
        h.remove()
    return total[0]


@pytest.mark.parametrize(("ratio", "scale"), [(1 / 2, 2), (1 / 3, 3), (1 / 4, 4)])
def test_works_on_the_lr_grid_and_returns_the_input_size(ratio, scale):
    sr = FSRCNN(ratio=ratio, d=8, s=4, m=1)
    seen = []
    sr.body[0].register_forward_hook(lambda mod, inp, out: seen.append(tuple(inp[0].shape[-2:])))
    x = torch.rand(2, 3, 161, 73)  # sizes not divisible by the factor: the output is cropped back
    assert sr(x).shape == x.shape
    assert seen == [(-(-161 // scale), -(-73 // scale))]
    assert upscale_factor(ratio) == scale


def test_starts_near_the_bicubic_input_and_is_far_cheaper_than_srcnn():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 160, 72)
    fsr, srcnn = FSRCNN(ratio=1 / 3), SRNet(channels=(64, 32), kernel_sizes=(9, 1, 5))
    assert (fsr(x) - x).abs().max() < 0.05
    # Reference count by hand for 160x72 at m=1/3 (54x24 LR grid): per LR pixel 5*5*3*56 + 56*12
    # + 4*9*12*12 + 12*56 + 9*56*27 = 24,336 multiply-adds; SRCNN 9-1-5: 81*3*64 + 64*32 + 25*32*3
    # = 20,000 per input pixel.
    assert _conv_macs(fsr, x[:1]) == 54 * 24 * 24_336
    assert _conv_macs(srcnn, x[:1]) == 160 * 72 * 20_000
    assert _conv_macs(srcnn, x[:1]) / _conv_macs(fsr, x[:1]) > 7


def test_feeds_eq_2_to_5_and_learns():
    torch.manual_seed(0)
    net = SINGNet(ReIDNet(SmallCNN(widths=(8, 16)), num_classes=4, feat_dim=16), FSRCNN(ratio=1 / 2, d=8, s=4, m=1))
    batch = {k: torch.rand(4, 3, 32, 16) for k in ("lr", "hr", "h2l")}
    batch["lr_label"] = batch["hr_label"] = torch.arange(4)
    losses = sing_losses(net, batch, alpha=1.0, synthetic_stream=True)
    losses["loss"].backward()
    assert torch.isfinite(losses["loss"]) and set(losses) >= {"loss_sr", "loss_reid_h2l"}
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.sr_net.parameters())


def test_config_takes_the_anchor_ratio(compose_cfg):
    cfg = compose_cfg(["sr=fsrcnn", "+anchor=1/4"])
    sr = hydra.utils.instantiate(cfg.model.net.sr_net)()
    assert isinstance(sr, FSRCNN) and sr.scale == 4


def test_bad_ratio_is_refused():
    with pytest.raises(ValueError, match=r"anchor ratio m in \(0, 1\)"):
        FSRCNN(ratio=2.0)
