"""Split files say what they hold: the protocol they were drawn under, checked against data.protocol."""

from __future__ import annotations

import json
from pathlib import Path

import hydra
import pytest
from omegaconf import OmegaConf

from cli_checks import assert_one_error_line
from sing_lit.data.records import DatasetError
from sing_lit.data.splits import check_split_protocol
from sing_lit.runtime.cli import PACKAGE_DIR

TINY = ["debug=tiny"]


def write_split(tiny_cfg, path: Path, *overrides: str) -> dict:
    """The trials debug=tiny draws (with ``overrides``), written to ``path`` as a run writes split.json."""
    dm = hydra.utils.instantiate(tiny_cfg(*overrides).data, split_out=str(path))
    dm._prepare_records()
    return json.loads(path.read_text())


def load_with(tiny_cfg, path: Path, *overrides: str):
    dm = hydra.utils.instantiate(tiny_cfg(f"data.split_file={path}", *overrides).data, split_out=None)
    dm._prepare_records()
    return dm


def test_a_split_file_records_its_protocol(tiny_cfg, tmp_path):
    doc = write_split(tiny_cfg, tmp_path / "split.json", "data.protocol.val_mode=refit")
    assert doc["protocol"] == {"trials": "1", "test_ids": "half", "val_ids": "0.2", "one_camera_ids_in_train": "True",
                               "seed": "0", "distractors_in_test_gallery": "False", "splits": "random"}
    assert doc["val_mode"] == "refit" and doc["dataset"] == "synthetic"
    # val_mode decides what trains, not who is in which role: the file serves either mode
    dm = load_with(tiny_cfg, tmp_path / "split.json")
    assert [t.test for t in dm.trials] == [t["test"] for t in doc["trials"]]


def test_a_different_protocol_is_refused_with_one_error_line(tiny_cfg, cli_in_process, tmp_path):
    split = tmp_path / "split.json"
    write_split(tiny_cfg, split)
    proc = cli_in_process([*TINY, f"data.split_file={split}", "data.protocol.seed=1", "data.protocol.val_ids=3"], tmp_path)
    line = assert_one_error_line(proc, str(split), "seed is 0 in the file but 1 in the config",
                                 "val_ids is 0.2 in the file but 3 in the config",
                                 "data.protocol.val_ids=0.2 data.protocol.seed=0", "data.split_file=null",
                                 "python -m sing_lit.make_splits data=synthetic")
    assert "test_ids" not in line  # only the keys that differ
    assert not (tmp_path / "outputs").exists() or not list((tmp_path / "outputs").rglob("*.ckpt"))


def test_only_trials_differing_points_at_the_trials_option(tiny_cfg, tmp_path):
    split = tmp_path / "split.json"
    write_split(tiny_cfg, split, "data.protocol.trials=2")
    with pytest.raises(DatasetError, match=r"trials is 2 in the file but 1 in the config.*pass trials=\[0,1,\.\.\.\]"):
        load_with(tiny_cfg, split)
    assert len(load_with(tiny_cfg, split, "data.protocol.trials=2").trials) == 2


def test_files_that_predate_a_key_read_it_as_its_default(tiny_cfg, tmp_path):
    split = tmp_path / "split.json"
    doc = write_split(tiny_cfg, split)
    for key in ("distractors_in_test_gallery", "splits"):
        del doc["protocol"][key]
    split.write_text(json.dumps(doc))
    assert len(load_with(tiny_cfg, split).trials) == 1
    with pytest.raises(DatasetError, match="distractors_in_test_gallery is False in the file but True"):
        load_with(tiny_cfg, split, "+data.protocol.distractors_in_test_gallery=true")
    del doc["protocol"]
    split.write_text(json.dumps(doc))
    with pytest.raises(DatasetError, match="records no protocol.*make_splits"):
        load_with(tiny_cfg, split)


@pytest.mark.parametrize("name", ["prid2011", "grid", "grid_standard"])
def test_shipped_split_files_fit_their_datasets_default_config(compose_cfg, name):
    """Each shipped file records every protocol key and matches data=<name> as configured (the real-data
    tests check that its identities are what the protocol draws from the dataset)."""
    path = PACKAGE_DIR / "splits" / f"{name}.json"
    doc = json.loads(path.read_text())
    assert doc["dataset"] == name and "splits" in doc["protocol"]
    cfg = compose_cfg([f"data={name}", "data.root=/nowhere"])
    assert Path(cfg.data.split_file) == path
    check_split_protocol(path, doc, OmegaConf.to_container(cfg.data.protocol))
    with pytest.raises(DatasetError, match="test_ids"):
        check_split_protocol(path, doc, {**OmegaConf.to_container(cfg.data.protocol), "test_ids": 7})


@pytest.mark.slow
@pytest.mark.parametrize(("name", "folder"), [("prid2011", "prid_2011"), ("grid", "grid"), ("grid_standard", "grid")])
def test_shipped_split_files_hold_what_the_protocol_draws_from_the_real_data(compose_cfg, shared_data, name, folder):
    """The shipped files were regenerated (to record every protocol key) with the same identities and galleries."""
    from sing_lit.data.splits import load_trials

    cfg = compose_cfg([f"data={name}", f"data.root={shared_data / folder}", "data.split_file=null"])
    dm = hydra.utils.instantiate(cfg.data, split_out=None)
    dm._prepare_records()
    shipped, _ = load_trials(PACKAGE_DIR / "splits" / f"{name}.json", dm.records, dm.data_root,
                             protocol=dm.protocol)
    assert shipped == dm.trials and len(shipped) == 10
