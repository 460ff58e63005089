"""What a new user's machine does differently: datasets behind links, run dirs copied from elsewhere."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import hydra
import pytest

from cli_checks import call_main
from tiny_prid import PRID_TINY, write_tiny_prid


@pytest.fixture
def env(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("SING_LIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_data_root_reached_through_a_symlink(compose_cfg, tmp_path):
    """``data.root=<link to the dataset>``: records, split and gallery names all stay under the link."""
    target = write_tiny_prid(tmp_path / "mounted_disk" / "prid_2011")
    link = tmp_path / "datasets" / "prid_2011"
    link.parent.mkdir()
    link.symlink_to(target, target_is_directory=True)
    dm = hydra.utils.instantiate(compose_cfg([*PRID_TINY, f"data.root={link}"]).data, split_out=None)
    dm.setup("fit")
    trial = dm.trials[0]
    assert dm.data_root == link
    names = {*trial.val_gallery.values(), *trial.test_gallery.values()}
    assert names and all(n.startswith("single_shot/cam_b/person_") for n in names)
    assert all((link / n).is_file() for n in names)
    assert len(dm.eval_sets["test"][1]) == len(trial.test)  # one gallery image per test person


def train_anchor(root: Path, run: Path, anchor: str, monkeypatch, capsys) -> None:
    code, err = call_main("train", [*PRID_TINY, f"+anchor={anchor}", f"data.root={root}", "data.protocol.val_ids=2",
                                    f"hydra.run.dir={run}"], monkeypatch, capsys)
    assert code == 0, err


def test_a_moved_run_dir_fuses_and_evaluates_with_a_data_root_override(env, monkeypatch, capsys):
    here = write_tiny_prid(env / "machine_a" / "prid_2011", both=10)
    for anchor, name in (("1/2", "x2"), ("1/3", "x3")):
        train_anchor(here, env / "machine_a" / "runs" / name, anchor, monkeypatch, capsys)
    code, err = call_main("fuse", [f"anchors=[{env / 'machine_a/runs/x2'},{env / 'machine_a/runs/x3'}]",
                                   f"hydra.run.dir={env / 'fuse_a'}"], monkeypatch, capsys)
    assert code == 0, err
    # Machine B: the run dirs copied, the dataset at another path, machine A gone.
    shutil.copytree(env / "machine_a" / "runs", env / "machine_b" / "runs")
    shutil.copytree(here, env / "machine_b" / "data" / "prid_2011")
    shutil.rmtree(env / "machine_a")
    anchors = f"anchors=[{env / 'machine_b/runs/x2'},{env / 'machine_b/runs/x3'}]"
    code, err = call_main("fuse", [anchors, f"hydra.run.dir={env / 'fuse_b'}"], monkeypatch, capsys)
    assert code == 2 and "Traceback" not in err
    (line,) = [line for line in err.splitlines() if line.startswith("error:")]
    assert str(here) in line and "data.root=" in line
    there = env / "machine_b" / "data" / "prid_2011"
    code, err = call_main("fuse", [anchors, f"data.root={there}", f"hydra.run.dir={env / 'fuse_b'}"], monkeypatch,
                          capsys)
    assert code == 0, err
    before, after = (json.loads((env / d / "metrics.json").read_text(encoding="utf-8")) for d in ("fuse_a", "fuse_b"))
    assert after["table"] == before["table"] and after["table4"] == before["table4"]
    ckpt = env / "machine_b" / "runs" / "x2" / "trial_0" / "checkpoints" / "best.ckpt"
    code, err = call_main("evaluate", [f"ckpt_path={ckpt}", f"data.root={there}", f"hydra.run.dir={env / 'eval_b'}"],
                          monkeypatch, capsys)
    assert code == 0, err
    evaluated = json.loads((env / "eval_b" / "metrics.json").read_text(encoding="utf-8"))
    trained = json.loads((env / "machine_b" / "runs" / "x2" / "trial_0" / "metrics.json").read_text(encoding="utf-8"))
    assert evaluated["test"]["rank1"] == pytest.approx(trained["test"]["rank1"])
