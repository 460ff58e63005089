"""The package as a wheel installs it: configs inside, found there, outputs never written into it."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tomllib
from setuptools import find_packages

from sing_lit.runtime.cli import config_dir

REPO = Path(__file__).resolve().parents[1]


def test_pyproject_lists_every_package_of_the_tree():
    listed = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["packages"]
    assert sorted(listed) == sorted([*find_packages(str(REPO / "src")), "sing_lit.conf"])


def test_config_dir_prefers_the_installed_copy_then_the_checkout(tmp_path):
    installed = tmp_path / "site-packages" / "sing_lit"
    (installed / "conf").mkdir(parents=True)
    (installed / "conf" / "train.yaml").write_text("{}\n", encoding="utf-8")
    assert config_dir(installed) == installed / "conf"
    checkout = tmp_path / "repo" / "src" / "sing_lit"
    checkout.mkdir(parents=True)
    (tmp_path / "repo" / "conf").mkdir()
    (tmp_path / "repo" / "conf" / "train.yaml").write_text("{}\n", encoding="utf-8")
    assert config_dir(checkout) == tmp_path / "repo" / "conf"
    with pytest.raises(FileNotFoundError, match="configs are missing"):
        config_dir(tmp_path / "elsewhere" / "a" / "sing_lit")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation", "--quiet",
                    "-w", str(out)], check=True, capture_output=True, timeout=300)
    (path,) = out.glob("sing_lit-*.whl")
    return path


def test_the_wheel_ships_every_config(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    configs = sorted(p.relative_to(REPO / "conf").as_posix() for p in (REPO / "conf").rglob("*.yaml"))
    assert configs and [c for c in configs if f"sing_lit/conf/{c}" not in names] == []
    assert "sing_lit/splits/prid2011.json" in names


def test_installed_wheel_runs_from_another_directory_and_writes_there(wheel, tmp_path, cache_dir):
    """An unpacked wheel is what ``pip install`` puts in site-packages (pure Python); no checkout nearby."""
    site = tmp_path / "site-packages"
    zipfile.ZipFile(wheel).extractall(site)
    cwd = tmp_path / "work"
    cwd.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "SING_LIT_CACHE": str(cache_dir)}
    probe = subprocess.run([sys.executable, "-c", "import sing_lit.runtime.cli as c; print(c.__file__); "
                            "print(c.CONFIG_DIR)"], cwd=cwd, env=env, capture_output=True, text=True, check=True)
    module_file, conf = probe.stdout.split()
    assert Path(module_file).is_relative_to(site) and Path(conf) == site / "sing_lit" / "conf"
    before = sorted(p for p in site.rglob("*") if p.is_file() and p.suffix != ".pyc")
    proc = subprocess.run([sys.executable, "-m", "sing_lit.make_splits", "data.reader.num_ids=16"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (cwd / "synthetic.json").is_file()
    assert f"data.split_file={cwd / 'synthetic.json'}" in proc.stdout
    assert sorted(p for p in site.rglob("*") if p.is_file() and p.suffix != ".pyc") == before
