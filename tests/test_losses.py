"""SING's loss (Eq. 2-5) against hand computations, the Table 3 ablation switch, gradient flow,
the sub-network contracts, and the optimiser's parameter groups."""

from __future__ import annotations

import functools
import socket
import urllib.error

import pytest
import torch
import torchvision
from torch import nn

from sing_lit.models.dgd import DGDNet
from sing_lit.models.reid_net import ReIDNet
from sing_lit.models.resnet import PretrainedWeightsError, ResNet50
from sing_lit.models.sing_net import build_sing_net
from sing_lit.models.small_cnn import SmallCNN
from sing_lit.models.sr_net import SRNet
from sing_lit.sing.losses import sing_losses
from sing_lit.sing.module import SINGModule

NUM_CLASSES = 3


def tiny_net(seed: int = 0, residual: bool = False):
    torch.manual_seed(seed)
    return build_sing_net(num_classes=NUM_CLASSES, backbone=lambda: SmallCNN(widths=(4,)),
                          sr_net=lambda: SRNet(channels=(4, 2), residual=residual), feat_dim=6)


def tiny_batch(n_l: int = 2, n_h: int = 2, seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "lr": torch.rand(n_l, 3, 8, 4, generator=g),
        "hr": torch.rand(n_h, 3, 8, 4, generator=g),
        "h2l": torch.rand(n_h, 3, 8, 4, generator=g),
        # distinct HR and LR labels: a swapped label or stream slice changes the loss
        "lr_label": torch.tensor([2, 0, 1][:n_l]),
        "hr_label": torch.tensor([1, 2, 0][:n_h]),
    }


def hand_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Batch-mean cross-entropy, -log softmax(z)_y, with the log-sum-exp written out."""
    z = logits.double()
    m = z.max(dim=1, keepdim=True).values
    log_softmax = z - m - torch.log(torch.exp(z - m).sum(dim=1, keepdim=True))
    return -torch.stack([log_softmax[i, labels[i]] for i in range(len(labels))]).mean()


def hand_mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return ((a.double() - b.double()) ** 2).sum() / a.numel()


def reference(net, batch, mode: str) -> dict[str, torch.Tensor]:
    """The loss terms computed independently of ``sing_losses``.

    ``eval``: batch norm uses running statistics, so each stream goes through F_sr and F_fe
    on its own and must still give the same numbers as the implementation's concatenated pass.
    ``train``: batch norm normalises over the whole batch, so the reference builds the same
    concatenation [x^h, F_sr(x^l), F_sr(x^{h2l})] (SRNet has no batch norm: F_sr per stream).
    """
    with torch.no_grad():
        sr_l, sr_h2l = net.sr_net(batch["lr"]), net.sr_net(batch["h2l"])
        if mode == "eval":
            logits_hr = net.reid_net(batch["hr"])[1]
            logits_lr = net.reid_net(sr_l)[1]
            logits_h2l = net.reid_net(sr_h2l)[1]
        else:
            logits = net.reid_net(torch.cat([batch["hr"], sr_l, sr_h2l]))[1]
            n_h, n_l = len(batch["hr"]), len(batch["lr"])
            logits_hr, logits_lr, logits_h2l = logits[:n_h], logits[n_h:n_h + n_l], logits[n_h + n_l:]
    return {
        "loss_reid_hr": hand_ce(logits_hr, batch["hr_label"]),
        "loss_reid_lr": hand_ce(logits_lr, batch["lr_label"]),
        "loss_reid_h2l": hand_ce(logits_h2l, batch["hr_label"]),
        "loss_sr": hand_mse(sr_h2l, batch["hr"]),
    }


@pytest.mark.parametrize("mode", ["eval", "train"])
@pytest.mark.parametrize("alpha", [0.0, 0.5, 2.0])
@pytest.mark.parametrize(("n_l", "n_h"), [(2, 2), (3, 2)])
def test_loss_terms_match_hand_computation(mode, alpha, n_l, n_h):
    net, batch = tiny_net(), tiny_batch(n_l, n_h)
    net.train(mode == "train")
    ref = reference(net, batch, mode)
    with torch.no_grad():
        out = sing_losses(net, batch, alpha=alpha, synthetic_stream=True)
    assert set(out) == {"loss_reid_hr", "loss_reid_lr", "loss_reid_h2l", "loss_sr", "loss_reid", "loss"}
    for k, v in ref.items():
        assert out[k].item() == pytest.approx(v.item(), rel=1e-5, abs=1e-6), k
    reid = ref["loss_reid_hr"] + ref["loss_reid_lr"] + ref["loss_reid_h2l"]  # Eq. (3)
    assert out["loss_reid"].item() == pytest.approx(reid.item(), rel=1e-5)
    assert out["loss"].item() == pytest.approx((reid + alpha * ref["loss_sr"]).item(), rel=1e-5)  # Eq. (5)
    assert all(v.ndim == 0 for v in out.values())


def test_loss_sr_is_zero_for_a_perfect_sr():
    """Eq. (2) vanishes when F_sr(x^{h2l}) = x^h (identity SR, h2l equal to hr)."""
    net, batch = tiny_net(residual=True), tiny_batch()
    nn.init.zeros_(net.sr_net.body[-1].weight)  # residual F_sr with a zero correction: exactly identity
    batch["h2l"] = batch["hr"].clone()
    out = sing_losses(net.eval(), batch, alpha=1.0, synthetic_stream=True)
    assert out["loss_sr"].item() == 0.0
    assert out["loss"].item() == pytest.approx(out["loss_reid"].item())


# ---- Table 3 ablation: no synthetic stream ----------------------------------------------------
class CountingSR(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner, self.seen = inner, []

    def forward(self, x):
        self.seen.append(len(x))
        return self.inner(x)


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_ablation_drops_synthetic_stream_and_sr_loss(mode):
    net, batch = tiny_net(), tiny_batch(3, 2)
    net.train(mode == "train")
    ref = reference(net, batch, "eval")
    batch["h2l"] = torch.full_like(batch["h2l"], float("nan"))  # must never be read
    net.sr_net = CountingSR(net.sr_net)
    out = sing_losses(net, batch, alpha=2.0, synthetic_stream=False)
    assert set(out) == {"loss_reid_hr", "loss_reid_lr", "loss_reid", "loss"}
    assert net.sr_net.seen == [3]  # only the LR stream went through F_sr
    assert all(torch.isfinite(v) for v in out.values())
    assert out["loss"].item() == pytest.approx(out["loss_reid_hr"].item() + out["loss_reid_lr"].item(), rel=1e-6)
    assert out["loss"].item() == pytest.approx(out["loss_reid"].item())
    if mode == "eval":
        assert out["loss_reid_hr"].item() == pytest.approx(ref["loss_reid_hr"].item(), rel=1e-5)
        assert out["loss_reid_lr"].item() == pytest.approx(ref["loss_reid_lr"].item(), rel=1e-5)


def test_synthetic_stream_shares_one_sr_pass():
    net, batch = tiny_net(), tiny_batch(3, 2)
    net.sr_net = CountingSR(net.sr_net)
    sing_losses(net, batch, alpha=1.0, synthetic_stream=True)
    assert net.sr_net.seen == [5]


@pytest.mark.parametrize("weight", [0.0, 0.25])
def test_h2l_reid_weight_scales_the_synthetic_cross_entropy(weight):
    """Eq. (3) with the x^{h2l} term weighted; at 0 x^{h2l} reaches L_sr but never F_fe."""
    net, batch = tiny_net(), tiny_batch(3, 2)
    net.eval()
    ref = reference(net, batch, "eval")
    seen = []
    net.reid_net.register_forward_hook(lambda m, i, o: seen.append(len(i[0])))
    with torch.no_grad():
        out = sing_losses(net, batch, alpha=2.0, synthetic_stream=True, h2l_reid_weight=weight)
    reid = ref["loss_reid_hr"] + ref["loss_reid_lr"] + weight * ref["loss_reid_h2l"]
    assert out["loss_reid"].item() == pytest.approx(reid.item(), rel=1e-5)
    assert out["loss"].item() == pytest.approx((reid + 2.0 * ref["loss_sr"]).item(), rel=1e-5)
    assert out["loss_sr"].item() == pytest.approx(ref["loss_sr"].item(), rel=1e-5)
    assert ("loss_reid_h2l" in out) is (weight > 0)
    assert seen == [2 + 3 + (2 if weight > 0 else 0)]  # x^h, F_sr(x^l) and, unless 0, F_sr(x^{h2l})


def test_h2l_reid_weight_zero_leaves_the_triplet_to_genuine_lr():
    """With weight 0 the triplet's LR side holds the genuine LR images only: equal to a batch without x^{h2l}
    in the triplet, i.e. the ablation's triplet term."""
    net, batch = tiny_net(), tiny_batch(3, 2)
    net.eval()
    kw = dict(alpha=0.0, triplet_weight=1.0, triplet_mode="all")
    with torch.no_grad():
        zero = sing_losses(net, batch, synthetic_stream=True, h2l_reid_weight=0.0, **kw)
        ablation = sing_losses(net, batch, synthetic_stream=False, **kw)
    assert zero["loss_triplet"].item() == pytest.approx(ablation["loss_triplet"].item(), rel=1e-6)


@pytest.mark.parametrize("synthetic_stream", [True, False])
def test_datamodule_streams_follow_the_switch(tiny_cfg, synthetic_stream):
    import hydra

    cfg = tiny_cfg(f"model.synthetic_stream={str(synthetic_stream).lower()}")
    assert cfg.data.synthetic_stream is synthetic_stream
    dm = hydra.utils.instantiate(cfg.data)
    dm.setup("fit")
    item = dm.train_set[0]
    assert ("h2l" in item) is synthetic_stream
    batch = next(iter(dm.train_dataloader()))
    assert ("h2l" in batch) is synthetic_stream
    assert batch["hr"].shape[-2:] == tuple(cfg.data.input_size)
    if synthetic_stream:
        assert batch["h2l"].shape == batch["hr"].shape
    # evaluation always has the gallery's synthetic LR (PSNR/SSIM of F_sr)
    assert "h2l" in dm.eval_sets["val"][1][0]


# ---- gradients -----------------------------------------------------------------------------------
def grad_norms(module: nn.Module) -> list[float]:
    return [0.0 if p.grad is None else p.grad.abs().sum().item() for p in module.parameters()]


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_one_backward_reaches_sr_and_reid(alpha):
    net, batch = tiny_net(), tiny_batch()
    net.train()
    sing_losses(net, batch, alpha=alpha, synthetic_stream=True)["loss"].backward()
    # with alpha=0 F_sr still learns, through the re-id loss of the LR and synthetic streams
    assert all(g > 0 for g in grad_norms(net.sr_net)), grad_norms(net.sr_net)
    assert all(p.grad is not None for p in net.reid_net.parameters())
    assert all(g > 0 for g in grad_norms(net.reid_net.backbone) + grad_norms(net.reid_net.classifier))


def test_alpha_changes_only_the_sr_gradient():
    grads = {}
    for alpha in (0.0, 1.0):
        net, batch = tiny_net(), tiny_batch()
        sing_losses(net.train(), batch, alpha=alpha, synthetic_stream=True)["loss"].backward()
        grads[alpha] = ([p.grad.clone() for p in net.sr_net.parameters()],
                        [p.grad.clone() for p in net.reid_net.parameters()])
    assert any(not torch.allclose(a, b) for a, b in zip(grads[0.0][0], grads[1.0][0], strict=True))
    for a, b in zip(grads[0.0][1], grads[1.0][1], strict=True):
        torch.testing.assert_close(a, b)


def test_sr_loss_alone_does_not_reach_reid():
    net, batch = tiny_net(), tiny_batch()
    sing_losses(net.train(), batch, alpha=1.0, synthetic_stream=True)["loss_sr"].backward()
    assert all(g > 0 for g in grad_norms(net.sr_net))
    assert all(g == 0 for g in grad_norms(net.reid_net))


# ---- sub-networks -------------------------------------------------------------------------------
@pytest.mark.parametrize("kernel_sizes", [(9, 5, 5), (9, 1, 5)])
def test_residual_srnet_starts_at_the_bicubic_identity(kernel_sizes):
    """Residual F_sr adds a correction to its (bicubic-upscaled) input; the correction starts
    near zero (the reconstruction conv is N(0, 1e-3)), so the untrained net is ~bicubic."""
    torch.manual_seed(0)
    x = torch.rand(2, 3, 64, 32)
    sr = SRNet(kernel_sizes=kernel_sizes, residual=True)
    out = sr(x)
    torch.testing.assert_close(out, x + sr.body(x))
    assert (out - x).abs().mean() < 5e-3 and (out - x).abs().max() < 5e-2
    assert sr.body[-1].bias.abs().sum() == 0 and sr.body[-1].weight.std() < 2e-3
    nn.init.zeros_(sr.body[-1].weight)
    assert torch.equal(sr(x), x)  # an all-zero correction is exactly the bicubic input
    plain = SRNet(kernel_sizes=kernel_sizes, residual=False)
    assert (plain(x) - x).abs().mean() > 1e-2  # plain SRCNN predicts the image itself


def test_residual_srnet_gets_gradients_in_every_layer_at_init():
    """The near-zero (not zero) reconstruction conv lets the first step train the first two convs."""
    torch.manual_seed(0)
    sr = SRNet(channels=(4, 2), residual=True)
    x = torch.rand(2, 3, 16, 8)
    ((sr(x) - torch.rand_like(x)) ** 2).mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in sr.parameters())


@pytest.mark.parametrize("residual", [True, False])
@pytest.mark.parametrize("size", [(8, 4), (17, 9), (64, 32)])
def test_srnet_keeps_spatial_size(residual, size):
    sr = SRNet(channels=(4, 2), kernel_sizes=(9, 5, 5), residual=residual)
    assert sr(torch.rand(2, 3, *size)).shape == (2, 3, *size)


def test_reidnet_feature_is_penultimate_fc_and_feeds_classifier():
    torch.manual_seed(0)
    net = ReIDNet(SmallCNN(widths=(4, 8)), num_classes=5, feat_dim=7).eval()
    seen = {}
    net.fc_feat.register_forward_hook(lambda m, i, o: seen.update(fc=o))
    net.classifier.register_forward_pre_hook(lambda m, i: seen.update(cls_in=i[0]))
    x = torch.rand(3, 3, 16, 8)
    f_t, logits = net(x)
    assert f_t.shape == (3, 7) and logits.shape == (3, 5)
    torch.testing.assert_close(f_t, seen["fc"])  # the triplet loss sees the penultimate FC ...
    feat = net.features(x)
    torch.testing.assert_close(feat, net.bn_feat(seen["fc"]))  # ... matched batch-normalised
    torch.testing.assert_close(seen["cls_in"], feat)  # ... which is what the last FC classifies
    torch.testing.assert_close(logits, net.classifier(feat))


def test_bnneck_triplet_before_bn_classifier_after_without_bias():
    torch.manual_seed(0)
    backbone = SmallCNN(widths=(4, 8))
    net = ReIDNet(backbone, num_classes=5, feat_dim=None, neck="bnneck").eval()
    x = torch.rand(3, 3, 16, 8)
    f_t, logits = net(x)
    pooled = backbone((x - net.mean) / net.std).mean((2, 3))  # independent: plain average pooling
    torch.testing.assert_close(f_t, pooled)
    bn = net.bn_feat
    by_hand = (pooled - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias
    torch.testing.assert_close(net.features(x), by_hand)
    torch.testing.assert_close(logits, by_hand @ net.classifier.weight.T)
    assert net.classifier.bias is None and not bn.bias.requires_grad


def test_neck_feat_before_matches_the_pooled_feature():
    torch.manual_seed(0)
    backbone = SmallCNN(widths=(4, 8))
    net = ReIDNet(backbone, num_classes=5, feat_dim=None, neck="bnneck", neck_feat="before").eval()
    x = torch.rand(3, 3, 16, 8)
    pooled = backbone((x - net.mean) / net.std).mean((2, 3))  # independent: plain average pooling
    torch.testing.assert_close(net.features(x), pooled)
    f_t, logits = net(x)  # training is unchanged: cross-entropy still reads the BN'd feature
    torch.testing.assert_close(logits, net.bn_feat(pooled) @ net.classifier.weight.T)
    with pytest.raises(ValueError, match="neck_feat must be one of"):
        ReIDNet(SmallCNN(widths=(4,)), num_classes=5, neck_feat="middle")


def test_reidnet_needs_two_classes():
    with pytest.raises(ValueError, match="num_classes=1"):
        ReIDNet(SmallCNN(widths=(4,)), num_classes=1)


@pytest.mark.parametrize(("make", "shape"), [(lambda: DGDNet(width=0.125), (1, 192, 4, 2)),
                                             (lambda: ResNet50(pretrained=False), (1, 2048, 4, 2))])
def test_backbones_forward_on_a_person_crop(make, shape):
    torch.manual_seed(0)
    net = make().eval()
    with torch.no_grad():
        out = net(torch.rand(1, 3, 64, 32))
    assert out.shape == shape and out.shape[1] == net.out_channels
    assert torch.isfinite(out).all()


@pytest.fixture
def offline_hub(monkeypatch, tmp_path):
    """An empty torch hub cache in tmp_path and no network at all."""
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))

    def no_network(*args, **kwargs):
        raise OSError("network access blocked by the test")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    return tmp_path / "hub" / "checkpoints"


def check_weights_error(err: PretrainedWeightsError, cache: object) -> None:
    url = torchvision.models.ResNet50_Weights.IMAGENET1K_V2.url
    msg = str(err)
    assert url in msg
    assert f"{cache}/{url.rsplit('/', 1)[-1]}" in msg
    assert "pretrained=false" in msg


def test_resnet_pretrained_offline_raises_actionable_error(offline_hub, monkeypatch):
    def refuse(self, *args, **kwargs):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(torchvision.models.ResNet50_Weights, "get_state_dict", refuse)
    with pytest.raises(PretrainedWeightsError) as info:
        ResNet50(pretrained=True)
    check_weights_error(info.value, offline_hub)
    assert "URLError" in str(info.value)


def test_resnet_pretrained_real_download_path_fails_fast_offline(offline_hub):
    """No patch of torchvision: the download itself must fail (sockets blocked), not hang."""
    with pytest.raises(PretrainedWeightsError) as info:
        ResNet50(pretrained=True)
    check_weights_error(info.value, offline_hub)
    assert socket.getdefaulttimeout() is None  # the temporary timeout is restored


# ---- optimisation -------------------------------------------------------------------------------
def make_module(sr: bool = True, scheduler=None) -> SINGModule:
    def net(num_classes):
        torch.manual_seed(0)
        return build_sing_net(num_classes, backbone=lambda: SmallCNN(widths=(4,)),
                              sr_net=(lambda: SRNet(channels=(4, 2))) if sr else None, feat_dim=6)

    return SINGModule(net=net, num_classes=NUM_CLASSES, optimizer=functools.partial(torch.optim.Adam),
                      lr_sr=1e-4, lr_reid=1e-3, scheduler=scheduler)


def test_configure_optimizers_two_groups_with_their_rates():
    module = make_module()
    opt = module.configure_optimizers()
    assert isinstance(opt, torch.optim.Adam)
    groups = {g["name"]: g for g in opt.param_groups}
    assert set(groups) == {"sr", "reid"}
    assert groups["sr"]["lr"] == 1e-4 and groups["reid"]["lr"] == 1e-3
    ids = {n: {id(p) for p in g["params"]} for n, g in groups.items()}
    assert ids["sr"] == {id(p) for p in module.net.sr_net.parameters()}
    assert ids["reid"] == {id(p) for p in module.net.reid_net.parameters()}
    assert ids["sr"] | ids["reid"] == {id(p) for p in module.parameters()} and not ids["sr"] & ids["reid"]


def test_configure_optimizers_with_scheduler_and_without_sr():
    sched = functools.partial(torch.optim.lr_scheduler.CosineAnnealingLR, T_max=3)
    out = make_module(scheduler=sched).configure_optimizers()
    assert isinstance(out["lr_scheduler"]["scheduler"], torch.optim.lr_scheduler.CosineAnnealingLR)
    assert out["lr_scheduler"]["interval"] == "epoch"
    opt = make_module(sr=False).configure_optimizers()  # bicubic-only baseline: nothing to super-resolve
    assert [g["name"] for g in opt.param_groups] == ["reid"]


@pytest.mark.parametrize(("kwargs", "match"), [({"alpha": -1.0}, "model.alpha"), ({"lr_reid": 0.0}, "lr_reid"),
                                               ({"lr_sr": -1.0}, "lr_sr"),
                                               ({"h2l_reid_weight": -0.5}, "model.h2l_reid_weight")])
def test_module_rejects_bad_hyperparameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SINGModule(net=lambda num_classes: tiny_net(), num_classes=NUM_CLASSES, optimizer=torch.optim.Adam, **kwargs)
