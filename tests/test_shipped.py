"""Shipped configs by name, shipped lists as the fallback of relative list paths (tame.config.shipped)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tame.cli import main
from tame.config import load_config
from tame.config.shipped import SHIPPED, resolve_config, resolve_list
from tame.errors import TameError


def test_a_config_name_resolves_to_the_shipped_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    shipped = SHIPPED / "configs" / "resnet50.yaml"
    for name in ("resnet50", "resnet50.yaml", "configs/resnet50.yaml"):
        assert resolve_config(name) == shipped
    (tmp_path / "resnet50").write_text("model:\n  name: vgg16\n")  # an existing file wins over the name
    assert resolve_config("resnet50") == Path("resnet50")
    with pytest.raises(TameError, match=r"config file nope: not found, and not the name of a shipped config"):
        resolve_config("nope")
    with pytest.raises(TameError, match="not found"):
        resolve_config("elsewhere/resnet50.yaml")  # a path in another folder is not a name


def test_relative_lists_fall_back_to_the_shipped_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    value = "datalist/ILSVRC/Validation_2000.txt"
    assert resolve_list(value) == str(SHIPPED / value)
    assert resolve_list("datalist/ILSVRC/ResNet50_train.txt") == "datalist/ILSVRC/ResNet50_train.txt"  # not shipped
    local = tmp_path / value
    local.parent.mkdir(parents=True)
    local.write_text("x.JPEG 0\n")
    assert resolve_list(value) == value  # the working directory's own list wins
    local.unlink()
    cfg = load_config("resnet50", ["data.val_list=datalist/ILSVRC/Validation_2000.txt"])
    assert cfg.data.val_list == str(SHIPPED / value)
    assert cfg.data.eval_list == str(SHIPPED / "datalist/ILSVRC/Evaluation_2000.txt")


def test_tame_configs_lists_and_prints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["configs"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert names == sorted(p.stem for p in (SHIPPED / "configs").glob("*.yaml")) and "resnet50" in names
    assert main(["configs", "resnet50"]) == 0
    assert capsys.readouterr().out == (SHIPPED / "configs" / "resnet50.yaml").read_text()
    assert main(["configs", "nope"]) == 2
