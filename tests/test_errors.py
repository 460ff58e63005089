"""User errors are one ``error:`` line; anything else is a bug and keeps its traceback."""

from __future__ import annotations

import importlib
import sys

import hydra
import pytest
from omegaconf import OmegaConf

from sing_lit.data.records import DatasetError
from sing_lit.models.resnet import PretrainedWeightsError
from sing_lit.runtime.cli import is_user_error, run_guarded
from sing_lit.runtime.errors import ConfigError, UserError


def guarded(fn, capsys) -> tuple[int, str]:
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        run_guarded(fn)
    return exit_info.value.code, capsys.readouterr().err


def raiser(err: BaseException):
    def fn():
        raise err
    return fn


@pytest.mark.parametrize("err", [ConfigError("model.alpha=-1 is not allowed"), DatasetError("data.root /x is empty"),
                                 PretrainedWeightsError("no weights offline"), UserError("give anchors=[...]")],
                         ids=["config", "dataset", "weights", "user"])
def test_user_errors_are_one_line(err, capsys):
    code, err_text = guarded(raiser(err), capsys)
    assert code == 2 and err_text == f"error: {err}\n"


@pytest.mark.parametrize("err", [ValueError("shapes (3,) and (4,) differ"), KeyError("rank1"), TypeError("bad")],
                         ids=["ValueError", "KeyError", "TypeError"])
def test_anything_else_is_a_bug_with_its_traceback(err, capsys):
    code, err_text = guarded(raiser(err), capsys)
    assert code == 1
    assert "Traceback (most recent call last)" in err_text and str(err) in err_text
    assert err_text.rstrip().splitlines()[-1].startswith("error: internal error") and "bug" in err_text


def test_config_error_is_also_a_value_error():
    assert issubclass(ConfigError, ValueError) and issubclass(DatasetError, ValueError)


def instantiate(target: str, **kwargs):
    return lambda: hydra.utils.instantiate(OmegaConf.create({"_target_": target, **kwargs}))


@pytest.mark.parametrize(("fn", "user"), [
    (instantiate("sing_lit.models.nope.Nope"), True),                       # no such target
    (instantiate("sing_lit.models.small_cnn.SmallCNN", colour=3), True),    # an argument it does not take
    (instantiate("sing_lit.models.small_cnn.SmallCNN", widths=[]), True),   # a ConfigError inside
    (instantiate("torch.nn.Linear", in_features=-1, out_features=2), True),  # a value the library refuses
    (instantiate("sing_lit.data.streams.TrainStreams", lr=[], lr_label=[], hr=[], h2l=None, hr_label=[]), False),
], ids=["missing_target", "unknown_argument", "config_error", "library_refuses", "internal_check"])
def test_hydra_instantiation_errors(fn, user):
    with pytest.raises(Exception) as err:
        fn()
    assert is_user_error(err.value) is user


def test_an_internal_error_in_train_keeps_its_traceback(tmp_path, monkeypatch, capsys):
    """``python -m sing_lit.train``: a bug deep inside (here a ValueError) is not passed off as a user mistake."""
    train = importlib.import_module("sing_lit.train")

    def broken(cfg):
        raise ValueError("index 3 is out of bounds for axis 0 with size 2")

    monkeypatch.setattr(train, "train_trial", lambda *a, **k: broken(a[0]))
    monkeypatch.setenv("SING_LIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(sys, "argv", ["sing_lit.train", "debug=tiny", "logger=[]", f"hydra.run.dir={tmp_path / 'run'}"])
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        train.main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 1
    assert "Traceback" in err and "in broken" in err and "index 3 is out of bounds" in err
    assert "bug in sing_lit" in err
