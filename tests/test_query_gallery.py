"""MLR-Market-1501 / MLR-DukeMTMC-reID: readers, MLR view, splits and camera-aware metrics on tiny layouts in the
original naming, each checked against hand-computed numbers or an independent brute-force loop."""

from __future__ import annotations

import json
from pathlib import Path

import hydra
import numpy as np
import pytest
import torch
from hydra.errors import InstantiationException
from PIL import Image

from sing_lit.data.images import scaled_size
from sing_lit.data.mlr import QUERY_GALLERY_VIEW, lr_view
from sing_lit.data.query_gallery import load_query_gallery_trials, save_query_gallery_trials
from sing_lit.data.readers.dukemtmc import read_dukemtmc
from sing_lit.data.readers.market1501 import read_market1501
from sing_lit.data.records import DatasetError
from sing_lit.evaluation.protocol import evaluate_ranking
from sing_lit.evaluation.ranking import cmc_and_map, rank_metrics
from sing_lit.models.sing_net import build_sing_net
from sing_lit.models.small_cnn import SmallCNN
from sing_lit.models.sr_net import SRNet
from sing_lit.runtime.errors import ConfigError
from sing_lit.sing.module import SINGModule
from tiny_market import LAYOUT, QUERY_IDS, SIZE, TRAIN_IDS, write_tiny

READERS = {"market1501": read_market1501, "dukemtmc": read_dukemtmc}
DATASETS = ("market1501", "dukemtmc")
PINNED = json.loads((Path(__file__).parent / "tiny_market_single_shot.json").read_text())


@pytest.fixture(scope="module", params=DATASETS)
def tiny(request, tmp_path_factory) -> tuple[str, Path]:
    return request.param, write_tiny(tmp_path_factory.mktemp(request.param), request.param)


def layout_count(folder: str, pid: int | None = None, cam: int | None = None) -> int:
    return sum(n for f, p, c, n in LAYOUT if f == folder and pid in (None, p) and cam in (None, c))


# ---- independent reference: walk each query's ranked list -------------------------------------------------
def brute_force(dist, q_pid, g_pid, q_cam=None, g_cam=None, junk=None) -> dict:
    """Per query: drop junk and (with cameras) its own person seen by its own camera, sort by (distance,
    is_match) so wrong items win ties, then read the first hit, the precision at every hit, the last hit."""
    dist, n_g = np.asarray(dist, dtype=np.float64), len(g_pid)
    cmc, aps, inps = np.zeros(n_g), [], []
    for i in range(len(q_pid)):
        valid = [g for g in range(n_g) if not (junk is not None and junk[g])
                 and not (q_cam is not None and g_pid[g] == q_pid[i] and g_cam[g] == q_cam[i])]
        order = sorted(valid, key=lambda g: (dist[i, g], g_pid[g] == q_pid[i]))
        hits = [g_pid[g] == q_pid[i] for g in order]
        if not any(hits):
            continue
        positions = [pos for pos, hit in enumerate(hits, start=1) if hit]
        cmc[positions[0] - 1:] += 1
        aps.append(np.mean([k / pos for k, pos in enumerate(positions, start=1)]))
        inps.append(len(positions) / positions[-1])
    return {"cmc": 100 * cmc / len(aps), "mAP": 100 * np.mean(aps), "mINP": 100 * np.mean(inps),
            "num_valid_queries": len(aps)}


def assert_matches(out: dict, ref: dict) -> None:
    np.testing.assert_allclose(out["cmc"], ref["cmc"], atol=1e-9)
    assert out["mAP"] == pytest.approx(ref["mAP"], abs=1e-9) and out["mINP"] == pytest.approx(ref["mINP"], abs=1e-9)
    assert out["num_valid_queries"] == ref["num_valid_queries"]
    for k in (1, 5, 10, 20):
        assert out[f"rank{k}"] == pytest.approx(ref["cmc"][min(k, len(ref["cmc"])) - 1])


# ---- readers ------------------------------------------------------------------------------------------------
def test_reader_keeps_distractors_in_the_gallery_and_drops_junk(tiny):
    name, root = tiny
    records = READERS[name](root, distractors=True)
    assert {r.pid for r in records} == set(TRAIN_IDS) | set(QUERY_IDS) | {0}  # no -1
    assert len(records) == sum(n for f, p, c, n in LAYOUT if p != -1)
    for r in records:
        folder = Path(r.path).parent.name
        assert r.subset == {"bounding_box_train": "train", "query": "query", "bounding_box_test": "gallery"}[folder]
        assert Path(r.path).name.startswith(f"{r.pid:04d}_c{r.cam + 1}")  # cameras c1.. -> 0..
    assert {r.subset for r in records if r.pid == 0} == {"gallery"}
    assert sorted(r.cam for r in records if r.pid == 0) == [0, 1, 5]
    for folder, subset in (("bounding_box_train", "train"), ("query", "query"), ("bounding_box_test", "gallery")):
        assert sum(r.subset == subset for r in records) == sum(n for f, p, c, n in LAYOUT if f == folder and p != -1)
    # the single-shot reading (the default) leaves the distractors out as well
    assert {r.pid for r in READERS[name](root)} == set(TRAIN_IDS) | set(QUERY_IDS)


# ---- ranking: the placeholder rank_metrics against the brute force ----------------------------------------
def test_rank_metrics_hand_made():
    # query A (pid 1, cam 0): gallery pid 1 in cam 0 (removed), pid 1 in cam 1 at 0.3, wrong items at 0.1 and 0.3
    # (the tie ranks before the match) -> first match at 3: AP 1/3, INP 1/3.
    # query B (pid 2, cam 1): its only pid-2 item is in cam 1 -> excluded.
    dist = torch.tensor([[0.0, 0.3, 0.1, 0.3, 0.9], [0.5, 0.5, 0.5, 0.5, 0.0]])
    g_pid, g_cam = torch.tensor([1, 1, 0, 3, 2]), torch.tensor([0, 1, 2, 2, 1])
    out = rank_metrics(dist, torch.tensor([1, 2]), g_pid, probe_cams=torch.tensor([0, 1]), gallery_cams=g_cam)
    assert out["num_valid_queries"] == 1 and out["num_queries"] == 2
    assert out["cmc"][:3] == [0.0, 0.0, 100.0] and out["rank1"] == 0.0 and out["rank5"] == 100.0
    assert out["mAP"] == pytest.approx(100 / 3) and out["mINP"] == pytest.approx(100 / 3)


@pytest.mark.parametrize("seed", range(6))
def test_rank_metrics_matches_brute_force_with_ties_junk_and_cameras(seed):
    rng = np.random.default_rng(seed)
    n_q, n_g = 25, 40
    g_pid, g_cam = rng.integers(0, 6, n_g), rng.integers(0, 3, n_g)
    q_pid, q_cam = rng.integers(0, 7, n_q), rng.integers(0, 3, n_q)  # pid 6: never in the gallery
    junk = rng.random(n_g) < 0.15
    dist = rng.integers(0, 4, (n_q, n_g)).astype(np.float64)  # many exact ties
    t = torch.from_numpy
    out = rank_metrics(t(dist), t(q_pid), t(g_pid), probe_cams=t(q_cam), gallery_cams=t(g_cam), gallery_junk=t(junk))
    assert_matches(out, brute_force(dist, q_pid, g_pid, q_cam, g_cam, junk))
    no_cams = rank_metrics(t(dist), t(q_pid), t(g_pid))
    assert_matches(no_cams, brute_force(dist, q_pid, g_pid))
    # junk flagged is junk removed: the benchmark's "zero influence"
    kept = ~junk
    removed = rank_metrics(t(dist[:, kept]), t(q_pid), t(g_pid[kept]), probe_cams=t(q_cam), gallery_cams=t(g_cam[kept]))
    for k in ("rank1", "rank5", "mAP", "mINP", "num_valid_queries"):
        assert removed[k] == pytest.approx(out[k])


def test_cameras_on_one_side_only_are_refused():
    with pytest.raises(ValueError, match="must both carry camera ids"):
        evaluate_ranking(torch.zeros(1, 2), torch.tensor([1]), torch.tensor([1, 2]), torch.tensor([0]))


def test_without_cameras_the_single_shot_evaluation_is_unchanged():
    rng = np.random.default_rng(0)
    dist = torch.from_numpy(rng.random((6, 5)))
    pids = torch.tensor([0, 1, 2, 3, 4])
    q = torch.tensor([0, 1, 1, 2, 3, 4])
    assert evaluate_ranking(dist, q, pids) == cmc_and_map(dist, q, pids)


# ---- the MLR view -----------------------------------------------------------------------------------------
def test_mlr_view_downsamples_every_query_and_one_camera_per_training_person(tiny):
    name, root = tiny
    records = READERS[name](root, distractors=True)
    flags = lr_view(records, QUERY_GALLERY_VIEW, seed=0)
    assert all(f for r, f in zip(records, flags) if r.subset == "query")
    assert not any(f for r, f in zip(records, flags) if r.subset == "gallery")
    for pid in TRAIN_IDS:
        cams = {r.cam for r in records if r.pid == pid}
        lr_cams = {r.cam for r, f in zip(records, flags) if r.pid == pid and f}
        if len(cams) == 1:
            assert not lr_cams  # 0025: seen by one camera, HR only
        else:  # exactly one camera, all of its images
            assert len(lr_cams) == 1
            assert all(f for r, f in zip(records, flags) if r.pid == pid and r.cam in lr_cams)
    with pytest.raises(DatasetError, match="train, query and gallery"):
        lr_view([r for r in records if r.subset != "query"], QUERY_GALLERY_VIEW, seed=0)


# ---- the data module: eval sets, trials, refusals ------------------------------------------------------------
def datamodule(compose_cfg, name: str, root: Path, *overrides: str, trial: int = 0):
    cfg = compose_cfg([f"data={name}", f"data.root={root}", "data.protocol.val_ids=2", "data.input_size=[32,16]",
                       *overrides])
    dm = hydra.utils.instantiate(cfg.data, trial=trial, split_out=None)
    dm.setup_eval()
    return dm


def test_test_set_is_the_query_folder_against_the_whole_gallery(compose_cfg, tiny):
    name, root = tiny
    dm = datamodule(compose_cfg, name, root)
    probes, gallery = dm.eval_records("test")
    assert [r.subset for r in probes] == ["query"] * layout_count("query")
    assert all(r.genuine_lr for r in probes) and not any(r.genuine_lr for r in gallery)
    originals = {Path(r.path).stem: r for r in READERS[name](root, distractors=True)}
    for r in probes:  # down-sampled by the ratio drawn for it, from {1/2, 1/3, 1/4}
        ratio = dm.ratio_of[r.path]
        assert ratio in (1 / 2, 1 / 3, 1 / 4)
        assert originals[Path(r.path).stem.split("_", 1)[1]].pid == r.pid
        w, h = Image.open(r.path).size
        assert (h, w) == scaled_size((SIZE[1], SIZE[0]), ratio)
    assert sorted(r.pid for r in gallery) == sorted(p for f, p, c, n in LAYOUT for _ in range(n)
                                                    if f == "bounding_box_test" and p != -1)
    probe_set, gallery_set = dm.eval_sets["test"]
    assert probe_set.cams.tolist() == [r.cam for r in probes] and gallery_set.cams.tolist() == [r.cam for r in gallery]
    assert probe_set[0]["cam"] == probes[0].cam and "cam" in gallery_set[0]
    assert gallery_set.areas.tolist() == [SIZE[0] * SIZE[1]] * len(gallery)


def test_same_camera_matches_are_removed_hand_computed(compose_cfg, tiny):
    """Every wrong gallery item at distance 1, every true match at 2: a query's first match ranks after all the
    wrong items it keeps. Counts from the layout (13 gallery images, tiny_market.LAYOUT):
    0003/c1 keeps 0003's two c3 images (its c1 one is removed): 10 wrong -> matches at 11, 12;
    0003/c2 keeps all three: 11, 12, 13; 0005/c3 keeps c1, c2: 11, 12; 0008/c1 keeps c2, c5: 12, 13;
    0009/c4 has only c4 images of itself: no match left, excluded."""
    name, root = tiny
    probe, gallery = datamodule(compose_cfg, name, root).eval_sets["test"]
    dist = torch.where(probe.pids[:, None] == gallery.pids[None, :], 2.0, 1.0)
    out = evaluate_ranking(dist, probe.pids, gallery.pids, probe.cams, gallery.cams)
    by_query = {(int(p), int(c) + 1): i for i, (p, c) in enumerate(zip(probe.pids, probe.cams))}
    assert set(by_query) == {(3, 1), (3, 2), (5, 3), (8, 1), (9, 4)}
    positions = [[11, 12], [11, 12, 13], [11, 12], [12, 13]]
    ap = [np.mean([k / p for k, p in enumerate(pos, start=1)]) for pos in positions]
    inp = [len(pos) / pos[-1] for pos in positions]
    assert out["num_valid_queries"] == 4 and out["num_queries"] == 5
    assert out["rank1"] == out["rank10"] == 0.0 and out["cmc"][10] == 75.0 and out["cmc"][11] == 100.0
    assert out["mAP"] == pytest.approx(100 * np.mean(ap)) and out["mINP"] == pytest.approx(100 * np.mean(inp))
    # without the camera filter, 0005/c3 would find its c3 image among its matches: different numbers
    assert cmc_and_map(dist, probe.pids, gallery.pids)["mAP"] != pytest.approx(out["mAP"])


def test_validation_is_held_out_of_training(compose_cfg, tiny):
    name, root = tiny
    dm = datamodule(compose_cfg, name, root)
    trial = dm.trials[0]
    assert len(trial.val) == 2 and sorted(trial.train + trial.val) == TRAIN_IDS and trial.test == QUERY_IDS
    assert 25 not in trial.val  # validation needs two cameras (LR and HR images)
    probes, gallery = dm.eval_records("val")
    assert {r.pid for r in probes} == {r.pid for r in gallery} == set(trial.val)
    assert all(r.genuine_lr and r.subset == "train" for r in probes) and not any(r.genuine_lr for r in gallery)
    assert dm.eval_sets["val"][0].cams is not None
    dm.setup("fit")
    assert dm.num_classes == len(trial.train) == 5
    labels = set(dm.train_set.lr_label.tolist()) | set(dm.train_set.hr_label.tolist())
    assert labels == set(range(5))


def test_trials_redraw_the_mlr_view_and_the_validation_people(compose_cfg, tiny):
    name, root = tiny
    one = datamodule(compose_cfg, name, root)
    t0 = datamodule(compose_cfg, name, root, "data.protocol.trials=3")
    t1 = datamodule(compose_cfg, name, root, "data.protocol.trials=3", trial=1)
    assert t0.trials[0] == one.trials[0] and t0.ratio_of == one.ratio_of  # trial 0 does not depend on the count
    assert [t.test for t in t0.trials] == [QUERY_IDS] * 3  # the query folder, every trial
    assert t1.ratio_of != t0.ratio_of and [r.genuine_lr for r in t1.records] != [r.genuine_lr for r in t0.records]
    assert len({tuple(t.val) for t in t0.trials}) > 1
    assert t1.signature()["split"] != t0.signature()["split"]


def test_split_file_round_trip_and_refusals(compose_cfg, tiny, tmp_path):
    name, root = tiny
    dm = datamodule(compose_cfg, name, root, "data.protocol.trials=2")
    path = tmp_path / "split.json"
    save_query_gallery_trials(path, dm.trials, dm.split_meta)
    again = datamodule(compose_cfg, name, root, "data.protocol.trials=2", f"data.split_file={path}")
    assert again.trials == dm.trials
    with pytest.raises(DatasetError, match="protocol.val_ids=2"):
        load_query_gallery_trials(path, dm.records, dm.data_root, {**dm.protocol, "val_ids": 3})
    doc = json.loads(path.read_text())
    doc["trials"][0]["val"] = [25, 2]  # 0025 is seen by one camera: no LR images to validate on
    path.write_text(json.dumps(doc))
    with pytest.raises(DatasetError, match=r"validation people \[25\]"):
        load_query_gallery_trials(path, dm.records, dm.data_root, dm.protocol)


@pytest.mark.parametrize(("override", "error", "words"), [
    ("data.protocol.test_ids=750", ConfigError, "test_ids=750 does not apply"),
    ("data.mlr.lr_camera=one_per_person", ConfigError, "lr_camera=query_and_one_per_person"),
    ("data.protocol.kind=multi_shot", ConfigError, "protocol.kind must be one of"),
    ("data.protocol.kind=single_shot", ConfigError, "data=market1501_single_shot"),
    ("data.protocol.val_ids=6", DatasetError, "val_ids=6"),
])
def test_bad_protocol_settings_are_refused(compose_cfg, tiny, override, error, words):
    name, root = tiny
    with pytest.raises(Exception) as caught:
        datamodule(compose_cfg, name, root, override)
    err = caught.value.__cause__ if isinstance(caught.value, InstantiationException) else caught.value
    assert isinstance(err, error) and words in str(err), err


def test_single_shot_variant_reproduces_the_old_split(compose_cfg, tiny):
    """data=<name>_single_shot gives the trials, galleries and MLR ratios the old data=<name> gave (pinned)."""
    name, root = tiny
    for t in (0, 1):
        dm = datamodule(compose_cfg, f"{name}_single_shot", root, "data.protocol.test_ids=3", "data.protocol.trials=2",
                        "data.protocol.val_ids=0.2", trial=t)
        trial, want = dm.trials[t], PINNED[name][str(t)]
        assert not dm.query_gallery and dm.eval_sets["test"][0].cams is None
        assert [trial.train, trial.val, trial.test] == [want["train"], want["val"], want["test"]]
        assert {str(k): v for k, v in trial.val_gallery.items()} == want["val_gallery"]
        assert {str(k): v for k, v in trial.test_gallery.items()} == want["test_gallery"]
        assert sorted([Path(p).name, m] for p, m in dm.ratio_of.items()) == want["ratios"]
        assert dm.eval_sets["test"][0].pids.tolist() == want["probe_pids"]
        assert "kind" not in dm.split_meta["protocol"]  # split files of the single-shot datasets unchanged


# ---- the LightningModule's val/test: camera-aware when the batches carry cameras -----------------------------
def test_module_evaluation_is_camera_aware_when_batches_carry_cameras():
    def net(num_classes):
        torch.manual_seed(0)
        return build_sing_net(num_classes, backbone=lambda: SmallCNN(widths=(4,)), sr_net=lambda: SRNet(channels=(4, 2)),
                              feat_dim=5)

    module = SINGModule(net=net, num_classes=3, optimizer=torch.optim.Adam).eval()
    module.logged = {}
    module.log_dict = lambda metrics, **kw: module.logged.update(metrics)
    g = torch.Generator().manual_seed(0)
    n_q, n_g = 11, 17
    gallery = {"image": torch.randint(0, 256, (n_g, 3, 16, 8), generator=g, dtype=torch.uint8),
               "pid": torch.randint(0, 4, (n_g,), generator=g), "cam": torch.randint(0, 3, (n_g,), generator=g),
               "area": torch.full((n_g,), 128.0, dtype=torch.float64),
               "h2l": torch.randint(0, 256, (n_g, 3, 16, 8), generator=g, dtype=torch.uint8)}
    probe = {"image": torch.randint(0, 256, (n_q, 3, 16, 8), generator=g, dtype=torch.uint8),
             "pid": gallery["pid"][torch.randint(0, n_g, (n_q,), generator=g)],
             "cam": torch.randint(0, 3, (n_q,), generator=g), "area": torch.full((n_q,), 32.0, dtype=torch.float64)}
    gallery["pid"][gallery["pid"] == 3] = 2  # person 3: one gallery image, in camera 0, and a query from camera 0
    gallery["pid"][0], gallery["cam"][0], probe["pid"][0], probe["cam"][0] = 3, 0, 3, 0
    with torch.no_grad():
        for i in range(0, n_q, 4):
            module.test_step({k: v[i:i + 4] for k, v in probe.items()}, 0, dataloader_idx=0)
        for i in range(0, n_g, 5):
            module.test_step({k: v[i:i + 5] for k, v in gallery.items()}, 0, dataloader_idx=1)
        module.on_test_epoch_end()
        q = module.net.lr_features(probe["image"].float() / 255).double()
        f = module.net.hr_features(gallery["image"].float() / 255).double()
    ref = brute_force(torch.cdist(q, f).numpy(), probe["pid"].numpy(), gallery["pid"].numpy(), probe["cam"].numpy(),
                      gallery["cam"].numpy())
    out = module.last_eval
    assert ref["num_valid_queries"] < n_q  # the camera filter left query 0 without a match
    ignoring_cameras = brute_force(torch.cdist(q, f).numpy(), probe["pid"].numpy(), gallery["pid"].numpy())
    assert ignoring_cameras["mAP"] != pytest.approx(ref["mAP"], abs=1e-3)
    assert out["rank1"] == pytest.approx(ref["cmc"][0], abs=1e-9) and out["mAP"] == pytest.approx(ref["mAP"], abs=1e-6)
    assert out["mINP"] == pytest.approx(ref["mINP"], abs=1e-6) and out["cmc"] == pytest.approx(list(ref["cmc"][:20]))
    assert module.logged["test/mINP"] == pytest.approx(out["mINP"])
