"""The strong re-id recipe: triplet loss, PK sampling, augmentations, warm-up, SR loss units, initialisation."""

from __future__ import annotations

import itertools
import math

import hydra
import lightning as L
import numpy as np
import pytest
import torch

from sing_lit.data.augment import ERASE_FILL, augment_views, color_jitter
from sing_lit.data.streams import IdentityStreams, TrainStreams
from sing_lit.sing.losses import sr_loss
from sing_lit.sing.schedule import warmup_cosine
from sing_lit.sing.triplet import triplet_loss
from tiny_prid import PRID_TINY, write_tiny_prid


def brute_triplet(hr, hy, lr, ly, margin, mode):
    """Loop over every anchor, every positive, every negative: max over positives, min over negatives."""
    def dist(a, b):
        return math.sqrt(sum((float(x) - float(y)) ** 2 for x, y in zip(a, b)))

    if mode == "all":
        feats, labels = list(hr) + list(lr), list(hy) + list(ly)
        pairs = [(feats, labels, feats, labels, True)]
    else:
        pairs = [(list(lr), list(ly), list(hr), list(hy), False), (list(hr), list(hy), list(lr), list(ly), False)]
    losses = []
    for anchors, alabels, cands, clabels, same_set in pairs:
        for i, (a, y) in enumerate(zip(anchors, alabels)):
            pos = [dist(a, c) for j, (c, z) in enumerate(zip(cands, clabels)) if z == y and not (same_set and i == j)]
            neg = [dist(a, c) for c, z in zip(cands, clabels) if z != y]
            if pos and neg:
                losses.append(max(0.0, max(pos) - min(neg) + margin))
    return sum(losses) / max(len(losses), 1)


@pytest.mark.parametrize("mode", ["cross", "all"])
def test_triplet_matches_a_brute_force_loop(mode):
    g = torch.Generator().manual_seed(0)
    hr, lr = torch.randn(7, 5, generator=g), torch.randn(9, 5, generator=g)
    hy, ly = torch.tensor([0, 0, 1, 2, 2, 3, 4]), torch.tensor([0, 1, 1, 2, 5, 3, 3, 4, 0])
    for margin in (0.0, 0.3, 5.0):
        got = float(triplet_loss(hr, hy, lr, ly, margin=margin, mode=mode))
        assert got == pytest.approx(brute_triplet(hr, hy, lr, ly, margin, mode), rel=1e-5, abs=1e-6)


def test_cross_triplet_pulls_lr_towards_hr_of_the_same_person():
    # LR feature 0 sits next to HR person 1's feature: the loss is positive and its gradient moves it to person 0.
    hr = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    lr = torch.tensor([[0.9, 0.0], [1.1, 0.0]], requires_grad=True)
    loss = triplet_loss(hr, torch.tensor([0, 1]), lr, torch.tensor([0, 1]), margin=0.3, mode="cross")
    loss.backward()
    assert float(loss.detach()) > 0 and lr.grad[0, 0] > 0  # descending the gradient lowers x: towards HR person 0


def test_triplet_without_positives_is_zero_not_nan():
    out = triplet_loss(torch.randn(3, 4), torch.tensor([0, 1, 2]), torch.randn(2, 4), torch.tensor([5, 6]))
    assert float(out) == 0.0


def make_streams(cls=IdentityStreams, **kw):
    # 3 people with LR and HR, person 3 in HR only, person 4 in LR only; pixel value = image index
    lr_label = torch.tensor([0, 0, 1, 2, 4])
    hr_label = torch.tensor([0, 1, 1, 2, 3, 3])
    lr = torch.arange(5, dtype=torch.uint8).view(5, 1, 1, 1).expand(5, 3, 8, 4).clone()
    hr = (torch.arange(6, dtype=torch.uint8) + 100).view(6, 1, 1, 1).expand(6, 3, 8, 4).clone()
    h2l = hr - 50
    return cls(lr, lr_label, hr, h2l, hr_label, flip=False, seed=3, **kw), lr_label, hr_label


def test_pk_batches_hold_k_items_of_p_people_each_with_its_own_lr_and_hr():
    ds, lr_label, hr_label = make_streams(k=2)
    assert len(ds) == 4 * 2  # people with an HR image (0, 1, 2, 3), K times; LR-only person 4 is left out
    for epoch in range(3):
        items = [ds[epoch * len(ds) + i] for i in range(len(ds))]
        people = [int(it["hr_label"]) for it in items]
        assert sorted(people) == [0, 0, 1, 1, 2, 2, 3, 3]  # each person exactly K times per epoch
        assert all(people[i] == people[i + 1] for i in range(0, len(people), 2))  # grouped by K
        for it in items:
            p = int(it["hr_label"])
            assert int(it["lr_label"]) == p
            hr_idx = int(it["hr"][0, 0, 0]) - 100
            assert int(hr_label[hr_idx]) == p and int(it["h2l"][0, 0, 0]) == hr_idx + 50  # h2l of that HR image
            v = int(it["lr"][0, 0, 0])
            if p == 3:  # seen in HR only: the LR slot is a synthetic LR of one of their HR images
                assert v - 50 in (4, 5)
            else:
                assert int(lr_label[v]) == p
    orders = [[int(ds[e * len(ds) + i]["hr_label"]) for i in range(0, len(ds), 2)] for e in range(6)]
    assert len({tuple(o) for o in orders}) > 1  # the identity order changes with the epoch
    again, _, _ = make_streams(k=2)
    assert all(torch.equal(ds[k]["lr"], again[k]["lr"]) and torch.equal(ds[k]["hr"], again[k]["hr"])
               for k in range(20))  # a pure function of (seed, key)


def test_pk_sampler_through_the_loader_gives_p_by_k_batches():
    from sing_lit.data.resumable import ResumableLoader

    ds, _, _ = make_streams(k=2)
    loader = ResumableLoader(ds, batch_size=4, seed=0, shuffle=False)
    for batch in loader:
        labels = batch["hr_label"].tolist()
        assert labels[0] == labels[1] and labels[2] == labels[3] and labels[0] != labels[2]


def test_augment_crops_and_erases_hr_and_its_synthetic_lr_alike():
    hr = torch.randint(0, 255, (3, 16, 8), dtype=torch.uint8)
    h2l = hr.clone()
    for seed in range(20):
        rng = np.random.default_rng(seed)
        a, b = augment_views([hr, h2l], rng, pad=2, erase_p=1.0)
        assert torch.equal(a, b) and a.shape == hr.shape
        # brute force: the result is a window of the zero-padded image, except the erased box
        padded = torch.nn.functional.pad(hr, (2, 2, 2, 2))
        erased = (a == ERASE_FILL).all(0)
        assert erased.any()
        ok = [(dy, dx) for dy, dx in itertools.product(range(5), range(5))
              if torch.equal(padded[:, dy:dy + 16, dx:dx + 8][:, ~erased], a[:, ~erased])]
        assert ok


def test_augment_off_keeps_the_paper_items_byte_for_byte():
    plain, _, _ = make_streams(TrainStreams)
    aug, _, _ = make_streams(TrainStreams, pad=0, erase_p=0.0)
    assert all(torch.equal(plain[k]["lr"], aug[k]["lr"]) for k in range(10))


def test_two_view_fraction_gives_the_cross_camera_people_at_least_that_share_of_the_epoch():
    from sing_lit.runtime.errors import ConfigError

    # people 0, 1 in both views, 2-7 in HR only, K = 1: an epoch is 8 places
    lr_label, hr_label = torch.tensor([0, 1]), torch.arange(8)
    lr = torch.arange(2, dtype=torch.uint8).view(2, 1, 1, 1).expand(2, 3, 4, 2).clone()
    hr = torch.arange(8, dtype=torch.uint8).view(8, 1, 1, 1).expand(8, 3, 4, 2).clone()
    plain = IdentityStreams(lr, lr_label, hr, hr.clone(), hr_label, k=1, seed=0)
    for f, n_two in ((0.5, 4), (0.75, 6), (0.1, 2)):  # max(round(f * 8), 2) places
        ds = IdentityStreams(lr, lr_label, hr, hr.clone(), hr_label, k=1, seed=0, two_view_fraction=f)
        assert len(ds) == 8  # the epoch keeps its length
        for epoch in range(3):
            people = [int(ds[epoch * 8 + i]["hr_label"]) for i in range(8)]
            assert people.count(0) == people.count(1) == n_two // 2  # cycled through evenly
            one_view = [p for p in people if p >= 2]
            assert len(one_view) == 8 - n_two == len(set(one_view))  # never twice
            for i in range(8):  # a two-view person's LR slot holds their genuine LR image
                it = ds[epoch * 8 + i]
                if int(it["hr_label"]) < 2:
                    assert int(it["lr"][0, 0, 0]) == int(it["hr_label"])
            if f == 0.1:  # round(0.8) = 1 place: the two already hold more, so the epoch is the plain draw
                assert people == [int(plain[epoch * 8 + i]["hr_label"]) for i in range(8)]
    ds, _, _ = make_streams(k=1, two_view_fraction=0.5)  # 3 of 4 people already in both views: no change
    off, _, _ = make_streams(k=1)
    assert all(torch.equal(ds[k]["hr"], off[k]["hr"]) and torch.equal(ds[k]["lr"], off[k]["lr"]) for k in range(12))
    with pytest.raises(ConfigError, match="pk_two_view_fraction"):
        make_streams(k=1, two_view_fraction=0.0)


def test_color_jitter_matches_torchvision_and_treats_hr_and_its_synthetic_lr_alike():
    import torchvision.transforms.functional as TF

    img = torch.randint(0, 256, (3, 16, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    for b, c, s in [(1.3, 0.7, 1.2), (0.6, 1.4, 0.5), (1.0, 1.0, 1.0)]:
        x = img.float() / 255
        ref = TF.adjust_saturation(TF.adjust_contrast(TF.adjust_brightness(x, b), c), s) * 255
        assert (color_jitter(img, (b, c, s)).float() - ref).abs().max() <= 0.5 + 1e-3  # rounding only
    for seed in range(5):
        a, b = augment_views([img, img.clone()], np.random.default_rng(seed), pad=0, erase_p=0.0, color=0.4)
        assert torch.equal(a, b) and not torch.equal(a, img)


def test_warmup_then_cosine_by_hand():
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=2.0)
    sched = warmup_cosine(opt, total_steps=20, warmup_steps=4, min_factor=0.0)
    lrs = []
    for _ in range(21):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[:4] == pytest.approx([0.5, 1.0, 1.5, 2.0])
    assert lrs[4] == pytest.approx(2.0) and lrs[12] == pytest.approx(1.0) and lrs[20] == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="total_steps"):
        warmup_cosine(opt, total_steps=0)


def test_sr_loss_sum_is_the_squared_frobenius_norm_per_image():
    sr, hr = torch.rand(2, 3, 4, 5), torch.rand(2, 3, 4, 5)
    by_hand = sum(float(((sr[i] - hr[i]) ** 2).sum()) for i in range(2)) / 2
    assert float(sr_loss(sr, hr, "sum")) == pytest.approx(by_hand, rel=1e-6)
    assert float(sr_loss(sr, hr, "mean")) == pytest.approx(by_hand / (3 * 4 * 5), rel=1e-6)
    with pytest.raises(ValueError, match="sr_loss_reduction"):
        sr_loss(sr, hr, "max")


@pytest.mark.parametrize("experiment", ["table3_no_synthetic", "table2_deep_plain"])
def test_no_synthetic_studies_train_on_a_dataset_with_people_seen_in_hr_only(compose_cfg, tmp_path, experiment):
    """PRID's camera B holds people never seen in LR: the PK sampler fills their LR slot with a synthetic LR,
    so the studies without the synthetic-LR stream still build it, and no loss of theirs reads x^h2l."""
    root = write_tiny_prid(tmp_path / "prid", both=4, b_only=4)  # half the training people in HR only
    cfg = compose_cfg([f"experiment={experiment}", "+anchor=1/3", "model.synthetic_stream=false", *PRID_TINY,
                       f"data.root={root}", f"data.cache_dir={tmp_path / 'cache'}", "model.sr_init_steps=2",
                       "+trainer.limit_val_batches=0", "+trainer.enable_progress_bar=false"])
    assert cfg.data.sampler == "pk" and cfg.data.synthetic_stream and not cfg.model.synthetic_stream
    dm = hydra.utils.instantiate(cfg.data, split_out=None)
    dm.setup("fit")
    assert set(dm.train_set.hr_label.tolist()) - set(dm.train_set.lr_label.tolist())  # people seen in HR only
    model = hydra.utils.instantiate(cfg.model, num_classes=dm.num_classes)
    trainer = hydra.utils.instantiate(cfg.trainer, callbacks=[], logger=False, enable_checkpointing=False,
                                      default_root_dir=str(tmp_path / "out"))
    L.seed_everything(0, workers=True, verbose=False)
    trainer.fit(model, datamodule=dm)
    logged = set(trainer.callback_metrics)
    assert any(k.startswith("train/loss_reid") for k in logged), logged
    assert not any("loss_sr" in k or "h2l" in k for k in logged), logged
