"""sing_lit.api and python -m sing_lit.search on a tiny trained sweep, against independent references."""

from __future__ import annotations

import doctest
import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import sing_lit.api.model as api_model
from cli_checks import assert_one_error_line, run_in_process
from sing_lit.api import load
from sing_lit.api.model import split_records
from sing_lit.api.search import search
from test_fuse_pipeline import run, sweep  # noqa: F401  (the tiny three-anchor sweep fixture)

FUSED = "SING fused (Eq. 6-8)"


@pytest.fixture(scope="module")
def mr(sweep):  # noqa: F811
    base, _, proc = sweep
    assert proc.returncode == 0, proc.stderr[-3000:]
    return base / "mr"


@pytest.fixture(scope="module")
def model(mr):
    return load(mr)


@pytest.fixture(scope="module")
def test_split(model):
    return split_records(model, "test")


def test_the_api_doctest_runs_on_the_built_in_benchmark(model, test_split):
    probes, gallery = test_split
    globs = {"load": load, "torch": torch, "sweep": str(Path(model.source)),
             "lr": [r.path for r in probes[:5]], "hr": [r.path for r in gallery]}
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    tests = [t for t in finder.find(api_model, globs=globs) if t.examples]
    assert tests
    for t in tests:
        runner.run(t)
    assert runner.failures == 0


def test_fused_distances_equal_a_hand_computed_eq_6_to_8(model, test_split):
    probes, gallery = test_split
    q_paths, g_paths = [r.path for r in probes[:6]], [r.path for r in gallery]
    fused = model.fuse(q_paths, g_paths)
    h, w = model.input_size

    def feats(net, paths, lr):  # the training preprocessing written out: PIL bicubic, /255
        x = torch.stack([torch.from_numpy(np.asarray(Image.open(p).convert("RGB").resize((w, h), Image.BICUBIC),
                                                      dtype=np.float32) / 255.0).permute(2, 0, 1) for p in paths])
        with torch.no_grad():
            return (net.lr_features(x) if lr else net.hr_features(x)).double().numpy()

    q_area = np.array([Image.open(p).width * Image.open(p).height for p in q_paths], dtype=float)
    g_area = np.array([Image.open(p).width * Image.open(p).height for p in g_paths], dtype=float)
    r = np.sqrt(q_area / g_area.mean())
    expected = np.zeros((len(q_paths), len(g_paths)))
    raw = np.stack([np.exp(-((r - a.ratio) ** 2) / model.sigma**2) for a in model.anchors], axis=1)
    weights = raw / raw.sum(1, keepdims=True)
    for i, a in enumerate(model.anchors):
        q, g = feats(a.net, q_paths, True), feats(a.net, g_paths, False)
        d = np.sqrt(((q[:, None, :] - g[None, :, :]) ** 2).sum(-1))
        expected += weights[:, i:i + 1] * d
    np.testing.assert_allclose(fused.r.numpy(), r, rtol=1e-12)
    np.testing.assert_allclose(fused.weights.numpy(), weights, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(fused.distances.numpy(), expected, rtol=1e-4, atol=1e-4)


def test_tensors_pil_images_and_paths_give_the_same_features(model, test_split):
    path = test_split[0][0].path
    img = Image.open(path).convert("RGB")
    as_uint8 = torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1)
    as_float = as_uint8.float() / 255
    encs = [model.encode(x, lr=True) for x in (path, img, as_uint8, as_float, np.asarray(img))]
    for e in encs[1:]:
        assert torch.equal(e.features, encs[0].features)
        assert torch.equal(e.areas, encs[0].areas)
    assert encs[0].areas.item() == img.width * img.height  # the genuine size, not the input size


def test_search_of_the_trial_0_test_split_prints_the_fusion_stages_metrics(mr, sweep, tmp_path):  # noqa: F811
    proc = run(["sing_lit.search", f"model={mr}", "split=test", f"out={tmp_path / 'out'}", "top_k=3",
                f"cache_dir={tmp_path / 'cache'}"], tmp_path, sweep[1])
    assert proc.returncode == 0, proc.stderr[-3000:]
    want = json.loads((mr / "fuse" / "metrics.json").read_text())["trials"][0]["rows"][FUSED]
    got = re.search(r"fused rank-1 ([\d.]+) .* mAP ([\d.]+)", proc.stdout)
    assert got, proc.stdout
    assert abs(float(got.group(1)) - want["rank1"]) <= 0.01 and abs(float(got.group(2)) - want["mAP"]) <= 0.01
    result = json.loads((tmp_path / "out" / "ranking.json").read_text())
    assert result["metrics"]["rank1"] == pytest.approx(want["rank1"], abs=0.01)
    rows = result["ranking"]
    csv_lines = (tmp_path / "out" / "ranking.csv").read_text().splitlines()
    assert len(csv_lines) == 1 + 3 * len(rows)
    for row in rows:
        assert math.isclose(sum(row["weights"].values()), 1.0, rel_tol=1e-9)
        dists = [m["distance"] for m in row["matches"]]
        assert dists == sorted(dists) and len(dists) == 3
        assert all(m["match"] == (m["gallery_pid"] == row["pid"]) for m in row["matches"])
    sheet = tmp_path / "out" / result["sheets"][0]
    assert sheet.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "features" in proc.stderr  # the progress bar


def image_folders(test_split, root: Path) -> tuple[Path, Path]:
    """Query and gallery folders (nested, file names start with the person id as in Market-1501)."""
    probes, gallery = test_split
    q, g = root / "query", root / "gallery"
    for i, rec in enumerate(probes[:8]):
        dst = q / f"sub{i % 2}" / f"{rec.pid:04d}_q{i}.png"
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(rec.path, dst)
    g.mkdir(parents=True)
    for rec in gallery:
        Image.open(rec.path).save(g / f"{rec.pid:04d}_g.jpg", quality=95)
    return q, g


def test_a_second_search_reads_the_gallery_features_from_the_cache(model, test_split, tmp_path, monkeypatch):
    q, g = image_folders(test_split, tmp_path)
    queries, gallery = sorted(map(str, q.rglob("*.png"))), sorted(map(str, g.glob("*.jpg")))
    first = search(model, queries, gallery, top_k=2, cache_dir=tmp_path / "cache", progress=False)
    calls = []
    for a in model.anchors:
        monkeypatch.setattr(a.net, "hr_features", lambda x, _f=a.net.hr_features: calls.append(len(x)) or _f(x))
    second = search(model, queries, gallery, top_k=2, cache_dir=tmp_path / "cache", progress=False)
    assert calls == []
    assert torch.equal(first.fused.distances, second.fused.distances)
    (g / "extra").mkdir()
    Image.open(gallery[0]).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(g / "extra" / "0999_g.png")
    search(model, queries, [*gallery, str(g / "extra" / "0999_g.png")], cache_dir=tmp_path / "cache", progress=False)
    assert calls == [1] * len(model.anchors)  # only the new image is computed


def test_folders_with_ids_in_names_grayscale_and_rgba(mr, sweep, test_split, tmp_path):  # noqa: F811
    q, g = image_folders(test_split, tmp_path)
    first = sorted(q.rglob("*.png"))
    Image.open(first[0]).convert("L").save(first[0])
    Image.open(first[1]).convert("L").save(first[1])
    Image.open(first[2]).convert("RGBA").save(first[2])
    proc = run(["sing_lit.search", f"model={mr}", f"query={q}", f"gallery={g}", f"out={tmp_path / 'out'}",
                "cache_dir=null", "progress=false"], tmp_path, sweep[1])
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    assert out.count("converting L images to RGB") == 1 and out.count("converting RGBA images to RGB") == 1
    assert "fused rank-1" in proc.stdout and "8 of 8 queries" in proc.stdout
    result = json.loads((tmp_path / "out" / "ranking.json").read_text())
    assert [row["pid"] for row in result["ranking"]] == [int(Path(p).name[:4]) for p in map(str, first)]


@pytest.fixture
def bad(sweep, tmp_path, monkeypatch, capsys):  # noqa: F811
    """``bad(*args)``: a search in this process that is to be refused before any work."""
    return lambda *args: run_in_process([*args, f"out={tmp_path / 'out'}", "cache_dir=null"], tmp_path,
                                        {"SING_LIT_CACHE": str(sweep[1])}, monkeypatch, capsys, "sing_lit.search")


def test_bad_images_and_folders_get_one_error_line_naming_them(mr, bad, test_split, tmp_path):  # noqa: F811
    q, g = image_folders(test_split, tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_one_error_line(bad(f"model={mr}", f"query={empty}", f"gallery={g}"), str(empty))
    victim = sorted(q.rglob("*.png"))[0]
    victim.write_bytes(victim.read_bytes()[:60])
    assert_one_error_line(bad(f"model={mr}", f"query={q}", f"gallery={g}"), str(victim),
                          "corrupt")
    victim.unlink()
    deep = sorted(q.rglob("*.png"))[0]
    Image.fromarray(np.arange(32 * 16, dtype=np.uint16).reshape(32, 16) * 100).save(deep)
    assert_one_error_line(bad(f"model={mr}", f"query={q}", f"gallery={g}"), str(deep), "16")
    assert not (tmp_path / "out").exists()


def test_an_unfinished_sweep_and_anchors_that_do_not_belong_together(mr, bad, test_split, tmp_path):  # noqa: F811
    q, g = image_folders(test_split, tmp_path)
    copy = tmp_path / "mr"
    shutil.copytree(mr, copy)
    (copy / "fuse" / "metrics.json").unlink()
    assert_one_error_line(bad(f"model={copy}", f"query={q}", f"gallery={g}"),
                          "not a finished sweep", "fuse/metrics.json")
    assert_one_error_line(bad(f"model=[{mr / '1_x3'},{mr / '1_x3'}]", "sigma=0.1",
                               f"query={q}", f"gallery={g}"), "same ratio")
    assert_one_error_line(bad(f"model={tmp_path}", f"query={q}", f"gallery={g}"),
                          str(tmp_path), "not a finished sweep")
    assert_one_error_line(bad(f"query={q}", f"gallery={g}"), "model=")
    assert not (tmp_path / "out").exists()
