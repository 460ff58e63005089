"""The bad inputs users really produce, fed to every entry point (train, fuse, inspect, make_splits).

Each gets one ``error:`` line that names the path or value (or Hydra's own message for an unknown
option), exit status 2 (Hydra's: 1), no traceback, and leaves no metrics.json, split file or
half-built cache behind. The entry points run in-process through their ``@hydra.main`` (the same
parsing and error handling as on the command line, without paying an interpreter start per case).
"""

from __future__ import annotations

import importlib
import shutil
import sys
from pathlib import Path

import lightning  # noqa: F401  (imported at collection: its log handler must not bind a test's closed stderr)
import pytest
import torch
import yaml

from cli_checks import call_main
from sing_lit.runtime.cli import CONFIG_DIR
from tiny_prid import PRID_TINY, write_bad_image, write_tiny_prid

BAD_IMAGES = ("grayscale", "rgba", "1x1", "corrupt_jpeg")
SMALL_SYNTHETIC = ["debug=tiny", "model.net.sr_net.channels=[8,4]", "logger=[]", "~callbacks.pictures"]


def one_error_line(code: int, err: str, *names: str) -> str:
    assert code == 2, err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    for name in names:
        assert name in err, (name, err)
    return lines[0]


@pytest.fixture(scope="module")
def datasets(tmp_path_factory) -> dict[str, Path]:
    """A good tiny PRID, one copy per bad image (in cam_a, the view MLR construction decodes), a
    download pointed at one level too high, and an empty folder."""
    base = tmp_path_factory.mktemp("datasets")
    good = write_tiny_prid(base / "good")
    out = {"good": good, "empty": base / "empty", "too_high": base / "downloads"}
    out["empty"].mkdir()
    shutil.copytree(good, out["too_high"] / "prid_2011")
    for kind in BAD_IMAGES:
        shutil.copytree(good, base / kind)
        write_bad_image(base / kind / "single_shot" / "cam_a" / "person_0002.png", kind)
        out[kind] = base / kind
    return out


@pytest.fixture
def env(tmp_path, monkeypatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("SING_LIT_CACHE", str(cache))
    monkeypatch.chdir(tmp_path)
    return cache


def no_leftovers(run: Path, cache: Path) -> None:
    assert not list(run.rglob("metrics.json")) if run.exists() else True
    if cache.exists():  # a failed MLR build leaves no temp folder (".mlr_...") nor a half cache
        assert not [p.name for p in cache.iterdir() if p.name.startswith(".")]


# ---- datasets: train, inspect and make_splits -------------------------------------------------------
def data_args(entry: str, root: str, tmp_path: Path) -> list[str]:
    if entry == "train":
        return [*PRID_TINY, f"data.root={root}", f"hydra.run.dir={tmp_path / 'run'}"]
    if entry == "make_splits":
        return ["data=prid2011", f"data.root={root}", f"out={tmp_path / 'split.json'}"]
    return ["data=prid2011", f"data.root={root}"]


@pytest.mark.parametrize("entry", ["train", "inspect", "make_splits"])
@pytest.mark.parametrize("case", ["nonexistent", "empty", "too_high", *BAD_IMAGES])
def test_bad_dataset(entry, case, datasets, env, tmp_path, monkeypatch, capsys):
    root = "/nonexistent/prid_2011" if case == "nonexistent" else str(datasets[case])
    code, err = call_main(entry, data_args(entry, root, tmp_path), monkeypatch, capsys)
    if case in BAD_IMAGES:
        names = [str(datasets[case] / "single_shot" / "cam_a" / "person_0002.png")]
    elif case == "nonexistent":
        names = ["/nonexistent/prid_2011"]
    else:
        names = [str(datasets[case]), "cam_a"]
    line = one_error_line(code, err, *names)
    expected = {"grayscale": "mode 'L'", "rgba": "mode 'RGBA'", "1x1": "1x1", "corrupt_jpeg": "corrupt"}
    if case in expected:
        assert expected[case] in line, line
    no_leftovers(tmp_path / "run", env)
    assert not (tmp_path / "split.json").exists()


def test_the_good_tiny_dataset_trains(datasets, env, tmp_path, monkeypatch, capsys):
    """The reference the cases above damage: it passes every entry point."""
    for entry in ("inspect", "make_splits", "train"):
        code, err = call_main(entry, data_args(entry, str(datasets["good"]), tmp_path), monkeypatch, capsys)
        assert code == 0, (entry, err)
    assert (tmp_path / "split.json").is_file() and (tmp_path / "run" / "metrics.json").is_file()


# ---- config values and options ----------------------------------------------------------------------
@pytest.mark.parametrize(("entry", "args", "names"), [
    ("train", ["data=nope"], ["Could not find 'data/nope'", "prid2011", "synthetic"]),
    ("train", ["model.alphaa=1"], ["model.alphaa", "not in struct"]),
    ("train", ["+anchor=1/5"], ["Could not find 'anchor/1/5'"]),
    ("fuse", ["fusion.sigmaa=1"], ["fusion.sigmaa", "not in struct"]),
    ("inspect", ["data=nope"], ["Could not find 'data/nope'"]),
], ids=["train_unknown_data", "train_typo", "train_unknown_anchor", "fuse_typo", "inspect_unknown_data"])
def test_hydra_rejects_unknown_options(entry, args, names, env, tmp_path, monkeypatch, capsys):
    code, err = call_main(entry, [*args, f"hydra.run.dir={tmp_path / 'run'}"], monkeypatch, capsys)
    assert code == 1 and "Traceback" not in err
    for name in names:
        assert name in err, err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("args", "names"), [
    (["model.alpha=-1"], ["model.alpha=-1", ">= 0"]),
    (["model.lr_reid=0"], ["model.lr_reid=0", "> 0"]),
    (["trials=[3]"], ["trials=[3]", "0..0"]),
    (["data=prid2011"], ["Missing mandatory value: data.root"]),
], ids=["negative_alpha", "zero_lr", "missing_trial", "no_root"])
def test_bad_train_values(args, names, env, tmp_path, monkeypatch, capsys):
    extra = [] if args == ["data=prid2011"] else SMALL_SYNTHETIC
    code, err = call_main("train", [*extra, *args, f"hydra.run.dir={tmp_path / 'run'}"], monkeypatch, capsys)
    one_error_line(code, err, *names)
    no_leftovers(tmp_path / "run", env)


# ---- checkpoints: train (ckpt_path=...) and fuse (anchors=[...]) -------------------------------------
@pytest.fixture(scope="module")
def anchor(tmp_path_factory) -> Path:
    """One tiny trained anchor (x2, small_cnn), trained in a subprocess-free way via the Hydra main."""
    base = tmp_path_factory.mktemp("anchor")
    mp = pytest.MonkeyPatch()
    try:
        mp.setenv("SING_LIT_CACHE", str(base / "cache"))
        mp.setattr(sys, "argv", ["sing_lit.train", *SMALL_SYNTHETIC, f"hydra.run.dir={base / 'x2'}"])
        importlib.import_module("sing_lit.train").main()
    finally:
        mp.undo()
    assert (base / "x2" / "metrics.json").is_file()
    return base / "x2"


def damaged(anchor: Path, tmp_path: Path, how: str) -> Path:
    src = anchor / "trial_0" / "checkpoints" / "best.ckpt"
    dst = tmp_path / f"{how}.ckpt"
    if how == "truncated":
        data = src.read_bytes()
        dst.write_bytes(data[: len(data) // 3])
    elif how == "text":
        dst.write_text("this is not a checkpoint\n")
    elif how == "other_backbone":  # an x3 anchor whose config says DGD but whose weights are SmallCNN's
        ckpt = torch.load(src, map_location="cpu", weights_only=False)
        meta = ckpt["sing_lit"]
        meta["anchor"] = {"name": "x3", "label": "1/3", "ratio": 1 / 3}
        meta["config"]["model"]["net"]["backbone"] = yaml.safe_load((Path(CONFIG_DIR) / "backbone" / "dgd.yaml")
                                                                    .read_text()) | {"width": 0.125}
        meta["backbone"] = "sing_lit.models.dgd.DGDNet"
        torch.save(ckpt, dst)
    return dst


@pytest.mark.parametrize(("ckpt", "extra", "names"), [
    ("missing", [], ["does not exist"]),
    ("truncated", [], ["truncated.ckpt", "corrupt or truncated"]),
    ("text", [], ["text.ckpt", "corrupt or truncated"]),
    ("good", ["backbone=dgd"], ["sing_lit.models.small_cnn.SmallCNN", "sing_lit.models.dgd.DGDNet"]),
    ("good", ["data.reader.num_ids=24"], ["identities"]),
], ids=["missing", "truncated", "not_a_checkpoint", "other_backbone", "other_data"])
def test_bad_train_checkpoint(ckpt, extra, names, anchor, env, tmp_path, monkeypatch, capsys):
    path = {"missing": tmp_path / "missing.ckpt", "good": anchor / "trial_0" / "checkpoints" / "best.ckpt"}.get(ckpt)
    path = path or damaged(anchor, tmp_path, ckpt)
    args = [*SMALL_SYNTHETIC, f"ckpt_path={path}", *extra, f"hydra.run.dir={tmp_path / 'run'}"]
    code, err = call_main("train", args, monkeypatch, capsys)
    one_error_line(code, err, *names)
    no_leftovers(tmp_path / "run", env)


@pytest.mark.parametrize(("anchors", "names"), [
    ([], ["give anchors="]),
    (["/nonexistent/best.ckpt", "GOOD"], ["/nonexistent/best.ckpt", "does not exist"]),
    (["EMPTY", "GOOD"], ["metrics.json is missing", "unfinished"]),
    (["truncated", "GOOD"], ["truncated.ckpt", "corrupt or truncated"]),
    (["GOOD", "GOOD"], ["same ratio"]),
    (["GOOD", "other_backbone"], ["other_backbone.ckpt", "does not fit", "DGDNet"]),
], ids=["no_anchors", "missing_ckpt", "unfinished_run_dir", "truncated_ckpt", "same_ratio", "other_backbone"])
def test_bad_fuse_anchors(anchors, names, anchor, env, tmp_path, monkeypatch, capsys):
    (tmp_path / "EMPTY").mkdir()
    good = anchor / "trial_0" / "checkpoints" / "best.ckpt"
    paths = [str(good) if a == "GOOD" else str(tmp_path / "EMPTY") if a == "EMPTY"
             else str(damaged(anchor, tmp_path, a)) if a in ("truncated", "other_backbone") else a for a in anchors]
    args = [f"anchors=[{','.join(paths)}]", f"hydra.run.dir={tmp_path / 'fuse'}"]
    code, err = call_main("fuse", args, monkeypatch, capsys)
    one_error_line(code, err, *names)
    assert not (tmp_path / "fuse" / "metrics.json").exists()


def test_fuse_unknown_multirun_dir(env, tmp_path, monkeypatch, capsys):
    code, err = call_main("fuse", [f"multirun_dir={tmp_path / 'nope'}", f"hydra.run.dir={tmp_path / 'fuse'}"],
                          monkeypatch, capsys)
    one_error_line(code, err, "multirun dir", str(tmp_path / "nope"), "does not exist")


def test_make_splits_refuses_to_overwrite(datasets, env, tmp_path, monkeypatch, capsys):
    out = tmp_path / "split.json"
    out.write_text("{}\n")
    code, err = call_main("make_splits", ["data=prid2011", f"data.root={datasets['good']}", f"out={out}"],
                          monkeypatch, capsys)
    one_error_line(code, err, str(out), "overwrite=true")
    assert out.read_text() == "{}\n"
