"""``python -m sing_lit.inspect``: a report on a good layout, one clear error on a bad one."""

from __future__ import annotations

import functools
import io
import os
import subprocess
from pathlib import Path

import numpy as np
from PIL import Image

from cli_checks import run_in_process
from python_runs import run_python
from sing_lit.data.readers import prid2011
from sing_lit.inspect import expected_tree

REPO = Path(__file__).resolve().parents[1]


def run_inspect(*overrides: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    return run_python(["-m", "sing_lit.inspect", *overrides], cwd, env, timeout=120)


def inspect_here(monkeypatch, capsys, *overrides: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``run_inspect`` in this process (the bad layouts, refused before any work)."""
    return run_in_process(list(overrides), cwd, {}, monkeypatch, capsys, "sing_lit.inspect")


def prid_layout(root: Path) -> Path:
    for name in [
        "cam_a/person_0001.png",
        "cam_a/person_0002.png",
        "cam_b/person_0001.png",
        "cam_b/person_0003.png",
        "cam_b/person_0004.png",
    ]:
        path = root / "single_shot" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (16, 40), (9, 99, 199)).save(path)
    return root


def assert_one_clear_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stderr.count("error:") == 1 and result.stderr.startswith("error: ")
    for needle in needles:
        assert needle in result.stderr, (needle, result.stderr)


def test_expected_tree_of_a_partial_reader() -> None:
    assert expected_tree(functools.partial(prid2011.read_prid2011)) == prid2011.EXPECTED_TREE
    assert expected_tree(print) == ""


def test_inspect_prints_counts(tmp_path: Path) -> None:
    root = prid_layout(tmp_path / "prid")
    result = run_inspect("data=prid2011", f"data.root={root}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "images: 5" in out and "people: 4" in out and "people seen by 2+ cameras: 1" in out
    assert "decoded: all 5 images" in out and "HR sizes: width 16-16 px, height 40-40 px" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prid"]  # inspect writes nothing


def test_inspect_wrong_layout(tmp_path: Path, monkeypatch, capsys) -> None:
    root = prid_layout(tmp_path / "prid")
    result = inspect_here(monkeypatch, capsys, "data=viper", f"data.root={root}", cwd=tmp_path)
    assert_one_clear_error(result, str(root / "cam_a"), "expected layout:", "cam_b/", "try data=prid2011")


def test_inspect_bad_root_and_missing_root(tmp_path: Path, monkeypatch, capsys) -> None:
    result = inspect_here(monkeypatch, capsys, "data=grid", f"data.root={tmp_path / 'nowhere'}", cwd=tmp_path)
    assert_one_clear_error(result, str(tmp_path / "nowhere"), "expected layout:", "underground_reid/")
    result = inspect_here(monkeypatch, capsys, "data=prid2011", cwd=tmp_path)
    assert_one_clear_error(result, "data.root", "expected layout:", "single_shot/")


def test_inspect_corrupt_image(tmp_path: Path, monkeypatch, capsys) -> None:
    root = prid_layout(tmp_path / "prid")
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (128, 64, 3), dtype=np.uint8)).save(buffer, "PNG")
    broken = root / "single_shot" / "cam_b" / "person_0003.png"
    broken.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    result = inspect_here(monkeypatch, capsys, "data=prid2011", f"data.root={root}", cwd=tmp_path)
    assert_one_clear_error(result, str(broken), "expected layout:")


def test_inspect_with_a_data_config_outside_the_repo(tmp_path: Path) -> None:
    root = prid_layout(tmp_path / "prid")
    conf = tmp_path / "conf" / "data"
    conf.mkdir(parents=True)
    (conf / "mine.yaml").write_text(
        "name: mine\nroot: ???\nreader:\n  _target_: sing_lit.data.readers.prid2011.read_prid2011\n  _partial_: true\n"
    )
    result = run_inspect(
        f"--config-dir={tmp_path / 'conf'}",
        "data=mine",
        f"data.root={root / 'single_shot'}",
        "verify=false",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "dataset: mine" in result.stdout and "images: 5" in result.stdout
