"""No half-written outputs: interrupted writers leave the old file and no temp files; checkpoint
files are atomic, refuse NaN weights, and fail with one clear line on a full disk or a corrupt file;
a NaN loss stops training at that step and the last good checkpoint survives."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest
import torch

import sing_lit.runtime.atomic as atomic
import sing_lit.runtime.checkpoint_io as checkpoint_io
from sing_lit.runtime.atomic import build_dir_atomic, write_json_atomic
from sing_lit.runtime.checkpoint_io import AtomicCheckpointIO, CheckpointSpaceError
from sing_lit.runtime.cli import UserError, run_guarded


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_interrupted_json_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "metrics.json"
    write_json_atomic(path, {"rank1": 1.0})
    old = path.read_bytes()

    def broken_dumps(*args, **kwargs):
        raise KeyboardInterrupt  # killed while serialising

    monkeypatch.setattr(atomic.json, "dumps", broken_dumps)
    with pytest.raises(KeyboardInterrupt):
        write_json_atomic(path, {"rank1": 2.0})
    monkeypatch.undo()
    assert path.read_bytes() == old and leftovers(tmp_path) == []


def test_failed_rename_keeps_the_old_file_and_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "metrics.json"
    write_json_atomic(path, {"rank1": 1.0})

    def broken_replace(src, dst):
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(atomic.os, "replace", broken_replace)
    with pytest.raises(OSError):
        write_json_atomic(path, {"rank1": 2.0})
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"rank1": 1.0} and leftovers(tmp_path) == []


def test_interrupted_folder_build_leaves_nothing(tmp_path):
    def build(tmp: Path) -> None:
        (tmp / "000001.png").write_bytes(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_dir_atomic(tmp_path / "mlr_cache", build)
    assert list(tmp_path.iterdir()) == []


def checkpoint(value: float) -> dict:
    return {"state_dict": {"net.w": torch.full((3,), value)}, "sing_lit": {"backbone": "x"}, "epoch": 0}


def test_checkpoint_io_writes_atomically(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    path = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint(checkpoint(1.0), path)
    assert torch.equal(io.load_checkpoint(path)["state_dict"]["net.w"], torch.ones(3))

    def killed_mid_write(obj, f):
        f.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint_io.torch, "save", killed_mid_write)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint(checkpoint(2.0), path)
    monkeypatch.undo()
    assert torch.equal(io.load_checkpoint(path)["state_dict"]["net.w"], torch.ones(3))
    assert leftovers(path.parent) == []


def test_full_disk_gives_a_clear_error_naming_the_directory(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint(checkpoint(1.0), path)

    def no_space(obj, f):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint_io.torch, "save", no_space)
    with pytest.raises(CheckpointSpaceError, match="no space left") as err:
        io.save_checkpoint(checkpoint(2.0), path)
    assert str(tmp_path) in str(err.value) and "ckpt_path=last" in str(err.value)
    monkeypatch.undo()
    assert torch.equal(io.load_checkpoint(path)["state_dict"]["net.w"], torch.ones(3))
    assert leftovers(tmp_path) == []


def test_non_finite_weights_are_never_saved(tmp_path):
    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint(checkpoint(1.0), path)
    with pytest.raises(UserError, match=r"non-finite weights in net\.w"):
        io.save_checkpoint(checkpoint(float("nan")), path)
    assert torch.equal(io.load_checkpoint(path)["state_dict"]["net.w"], torch.ones(3))


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_corrupt_checkpoint_is_detected_on_load(tmp_path, damage):
    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint(checkpoint(1.0), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"not a checkpoint\n")
    with pytest.raises(UserError, match="corrupt or truncated"):
        io.load_checkpoint(path)


def test_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(tiny_cfg, tmp_path, monkeypatch, capsys):
    import sing_lit.sing.module as sing_module
    from sing_lit.train import train

    real = sing_module.sing_losses
    calls = []

    def nan_at_second_step(*args, **kwargs):
        out = real(*args, **kwargs)
        calls.append(1)
        if len(calls) == 2:
            out["loss_sr"] = out["loss_sr"] * float("nan")
            out["loss"] = out["loss_reid"] + out["loss_sr"]
        return out

    monkeypatch.setattr(sing_module, "sing_losses", nan_at_second_step)
    cfg = tiny_cfg("callbacks.step_checkpoint.every_n_train_steps=1", "logger=[]", "~callbacks.pictures",
                   "model.net.sr_net.channels=[8,4]")
    with pytest.raises(SystemExit) as exit_info:
        run_guarded(lambda: train(cfg))
    assert exit_info.value.code == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, lines
    assert "non-finite loss at step 1" in lines[0] and "train/loss_sr=nan" in lines[0]
    assert "train/loss_reid=" not in lines[0]  # only the bad terms are named
    out = tmp_path / "out"
    last = torch.load(out / "trial_0" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert last["global_step"] == 1
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values() if v.is_floating_point())
    assert not (out / "metrics.json").exists() and not (out / "trial_0" / "metrics.json").exists()


def test_full_disk_during_training_gives_one_error_line(tiny_cfg, tmp_path, monkeypatch, capsys):
    from sing_lit.train import train

    def no_space(obj, f):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint_io.torch, "save", no_space)
    cfg = tiny_cfg("logger=[]", "~callbacks.pictures", "model.net.sr_net.channels=[8,4]")
    with pytest.raises(SystemExit) as exit_info:
        run_guarded(lambda: train(cfg))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    checkpoints = tmp_path / "out" / "trial_0" / "checkpoints"
    assert len(lines) == 1 and "Traceback" not in err, err
    assert "no space left" in lines[0] and str(checkpoints) in lines[0]
    assert not list(checkpoints.iterdir()) and not (tmp_path / "out" / "metrics.json").exists()


def test_full_disk_where_errno_has_no_edquot(tmp_path, monkeypatch):
    """Windows' errno has no EDQUOT: the full-disk error must still be the clear one."""
    monkeypatch.delattr(errno, "EDQUOT", raising=False)

    def no_space(obj, f):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint_io.torch, "save", no_space)
    with pytest.raises(CheckpointSpaceError, match="no space left"):
        AtomicCheckpointIO().save_checkpoint(checkpoint(2.0), tmp_path / "last.ckpt")


def test_resume_removes_the_temp_file_a_killed_checkpoint_write_left(tmp_path):
    from omegaconf import OmegaConf

    from sing_lit.runtime.resume import resume_checkpoint

    ckpts = tmp_path / "trial_0" / "checkpoints"
    ckpts.mkdir(parents=True)
    backbone = "sing_lit.models.small_cnn.SmallCNN"
    torch.save({"sing_lit": {"backbone": backbone}, "state_dict": {}}, ckpts / "last.ckpt")
    (ckpts / ".last.ckpt.k3j9x_2a.tmp").write_bytes(b"PK\x03\x04 half a checkpoint")  # as atomic_path names it
    (ckpts / ".best.ckpt.0abc.tmp").write_bytes(b"")
    (ckpts / "notes.tmp").write_bytes(b"the user's")
    cfg = OmegaConf.create({"ckpt_path": "last", "model": {"net": {"backbone": {"_target_": backbone}}}})
    path, meta = resume_checkpoint(cfg, 0, tmp_path / "trial_0")
    assert path == str(ckpts / "last.ckpt") and meta == {"backbone": backbone}
    assert sorted(p.name for p in ckpts.iterdir()) == ["last.ckpt", "notes.tmp"]


def test_text_outputs_are_utf8_whatever_the_locale(tmp_path):
    """A plain ``open(path, "w")`` uses the locale's encoding (ASCII here, cp1252 on many Windows machines)."""
    import os
    import subprocess
    import sys

    out = tmp_path / "table.md"
    env = {**os.environ, "LC_ALL": "C", "LANG": "C", "PYTHONCOERCECLOCALE": "0", "PYTHONUTF8": "0"}
    code = ("import sys; from sing_lit.runtime.atomic import write_text_atomic; "
            "write_text_atomic(sys.argv[1], '| 41.2 \\u00b1 1.3 | 64\\u00b2 |\\n')")
    proc = subprocess.run([sys.executable, "-c", code, str(out)], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert out.read_bytes() == "| 41.2 ± 1.3 | 64² |\n".encode()


def test_every_text_write_in_the_package_names_its_encoding():
    """Every ``open(..., "w"/"a")``, ``Path.open(...)`` for writing and ``write_text`` in src/ says encoding=."""
    import ast

    src = Path(__file__).resolve().parents[1] / "src"
    missing = []
    for path in sorted(src.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or any(k.arg == "encoding" for k in node.keywords):
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            modes = [a.value for a in [*node.args, *(k.value for k in node.keywords if k.arg == "mode")]
                     if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            writes_text = any(set(m) & set("wax") and "b" not in m and len(m) <= 3 for m in modes)
            if name == "write_text" or (name == "open" and writes_text):
                missing.append(f"{path.relative_to(src)}:{node.lineno}")
    assert missing == []
