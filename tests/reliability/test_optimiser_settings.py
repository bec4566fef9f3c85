"""Settings that had no effect or gave a misleading failure: momentum (cycled by OneCycleLR, so ``train.momentum``
was ignored; 0 raised Nesterov's traceback), non-finite numbers in the config, and mean/std that divide by zero."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.optim.lr_scheduler import OneCycleLR
from train_helpers import attention_of, one_thread, tiny_config  # noqa: F401

from tame.config import load_config
from tame.engine.optim import build_training_optimizer, parameter_groups
from tame.engine.train import train
from tame.errors import TameError
from tame.models import create_classifier, register_backbone
from tame.models.registry import build_classifier

pytestmark = pytest.mark.usefixtures("one_thread")


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, 2, 1))


def _steps(optimizer, scheduler, params, n: int = 25) -> tuple[list[torch.Tensor], list[float]]:
    """Run ``n`` steps with fixed pseudo-random gradients; the final parameters and each step's momentum."""
    generator = torch.Generator().manual_seed(1)
    momenta = []
    for _ in range(n):
        for p in params:
            p.grad = torch.randn(p.shape, generator=generator)
        momenta.append(optimizer.param_groups[0]["momentum"])
        optimizer.step()
        scheduler.step()
    return [p.detach().clone() for p in params], momenta


def test_default_is_the_reference_optimiser_bit_for_bit():
    """The default config builds what the reference builds: SGD(momentum=0.9, nesterov) + OneCycleLR(torch's
    defaults: momentum cycled 0.95 -> 0.85 -> 0.95); the same parameters after 25 steps, bit for bit."""
    cfg = load_config(None, ["train.max_lr=1e-2"]).train
    ours_net, reference_net = _net(), _net()
    optimizer, scheduler = build_training_optimizer(ours_net, cfg, total_steps=25)
    reference = torch.optim.SGD(parameter_groups(reference_net, 1e-2, 5e-4), lr=1e-2, momentum=0.9, nesterov=True)
    reference_schedule = OneCycleLR(reference, max_lr=[1e-2, 2e-2], total_steps=25)
    ours, our_momenta = _steps(optimizer, scheduler, list(ours_net.parameters()))
    theirs, their_momenta = _steps(reference, reference_schedule, list(reference_net.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs))
    assert our_momenta == their_momenta and our_momenta[0] == pytest.approx(0.95) and min(our_momenta) < 0.86


def final_weights(data: Path, out: Path, *extra: str) -> dict[str, torch.Tensor]:
    train(tiny_config(data, out, "train.epochs=1", "train.checkpoint_every=0", *extra))
    return attention_of(out / "epoch_1.pt")


def same(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def test_momentum_changes_the_result_when_cycling_is_off(data, tmp_path, caplog):
    off_09 = final_weights(data, tmp_path / "a", "train.cycle_momentum=false", "train.momentum=0.9")
    off_05 = final_weights(data, tmp_path / "b", "train.cycle_momentum=false", "train.momentum=0.5")
    plain = final_weights(
        data, tmp_path / "c", "train.cycle_momentum=false", "train.momentum=0", "train.nesterov=false"
    )
    assert not same(off_09, off_05) and not same(off_05, plain) and not same(off_09, plain)
    cycled = final_weights(data, tmp_path / "d")
    assert not same(cycled, off_09)
    with caplog.at_level(logging.WARNING):  # cycling on: train.momentum is not used (the reference), and says so
        assert same(cycled, final_weights(data, tmp_path / "e", "train.momentum=0.5"))
    assert "train.momentum=0.5 is not used while train.cycle_momentum is true" in caplog.text
    base_max = ("train.base_momentum=0.5", "train.max_momentum=0.6")
    assert not same(cycled, final_weights(data, tmp_path / "f", *base_max))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["train.momentum=.nan"], r"train\.momentum: must be a finite number, got nan"),
        (["train.momentum=1.0"], r"train\.momentum: must be in \[0, 1\), got 1\.0"),
        (["train.momentum=-0.1"], r"train\.momentum: must be in \[0, 1\)"),
        (["train.momentum=0"], r"train\.momentum: Nesterov momentum needs a momentum > 0, got 0\.0 .*nesterov=false"),
        (["train.base_momentum=0"], r"train\.base_momentum: Nesterov momentum needs a momentum > 0"),
        (["train.max_momentum=1.5"], r"train\.max_momentum: must be in \[0, 1\)"),
        (["train.base_momentum=0.9", "train.max_momentum=0.8"], r"train\.base_momentum: 0\.9 is larger than"),
        (["train.max_lr=.inf"], r"train\.max_lr: must be a finite number, got inf"),
        (["train.max_lr=nan"], r"train\.max_lr: must be a finite number, got nan"),
        (["train.weight_decay=.nan"], r"train\.weight_decay: must be a finite number"),
        (["model.std=[0, 0, 0]"], r"config key model\.std: every value must be positive .*got \[0\.0, 0\.0, 0\.0\]"),
        (["model.std=[0.2, -0.1, 0.2]"], r"config key model\.std: every value must be positive"),
        (["model.std=[0.2, .nan, 0.2]"], r"config key model\.std: must be a finite number"),
        (["model.mean=[0.5, .inf, 0.5]"], r"config key model\.mean: must be a finite number"),
        (["model.std=[0.2, 0.2]"], r"config key model\.std: expected 3 values"),
    ],
)
def test_bad_numbers_are_one_line_naming_the_key(overrides, message):
    with pytest.raises(TameError, match=message):
        load_config(None, overrides)


def test_momentum_keys_are_checked_only_where_used():
    load_config(None, ["train.momentum=0", "train.nesterov=false"])  # plain SGD
    load_config(None, ["train.cycle_momentum=false", "train.base_momentum=0", "train.max_momentum=2"])


def test_zero_std_through_the_cli_is_one_line(cli_here, data, tmp_path):
    result = cli_here("train", "model.name=test_resnet", "model.pretrained=false", "model.std=[0,0,0]")
    result.assert_one_error_line(r"config key model\.std: every value must be positive")


@pytest.fixture(scope="module")
def zero_std_backbone():
    """A backbone whose own pretrained_cfg says std 0 (a user-registered module)."""
    from tame.models.registry import BACKBONES

    @register_backbone("zero_std_net")
    def build(pretrained: bool = False, **kwargs) -> nn.Module:
        net = create_classifier("test_resnet", pretrained=False).net
        net.pretrained_cfg = {**net.pretrained_cfg, "mean": (0.5, 0.5, 0.5), "std": (0.0, 0.0, 0.0)}
        return net

    yield "zero_std_net"
    BACKBONES._entries.pop("zero_std_net", None)


def test_zero_std_from_the_model_names_its_pretrained_cfg(zero_std_backbone):
    with pytest.raises(TameError, match=r"backbone 'zero_std_net': its pretrained_cfg std .*must be positive"):
        create_classifier(zero_std_backbone, pretrained=False)
    cfg = load_config(None, [f"model.name={zero_std_backbone}", "model.pretrained=false"])
    with pytest.raises(TameError, match=r"its pretrained_cfg std \(set model\.std to override it\)"):
        build_classifier(cfg)
    build_classifier(load_config(None, [f"model.name={zero_std_backbone}", "model.std=[0.5,0.5,0.5]"]))  # overridden


def test_zero_std_saved_in_a_checkpoint_names_the_checkpoint(tmp_path):
    from tame.models import TameModel

    cfg = load_config(None, ["model.name=test_resnet", "model.pretrained=false", "data.crop=32", "data.resize=36"])
    model = TameModel.from_config(cfg.model, input_size=32, data_cfg=cfg.data)
    model.save_attention(tmp_path / "am.pt")
    state = torch.load(tmp_path / "am.pt", weights_only=True)
    state["meta"]["preprocessing"]["std"] = [0.0, 0.0, 0.0]
    torch.save(state, tmp_path / "am.pt")
    with pytest.raises(TameError, match=r"checkpoint .*am\.pt: saved std: every value must be positive"):
        build_classifier(load_config(None, ["model.name=test_resnet"]), tmp_path / "am.pt")


def logged_lr(run: Path) -> dict[int, float]:
    import json

    return {s["step"]: s["lr"] for s in json.loads((run / "train_record.json").read_text())["steps"]}


@pytest.mark.parametrize(
    ("changed", "resume_from"),
    [
        (("train.max_lr=1e-4",), "epoch_1.pt"),
        (("train.cycle_momentum=false",), "epoch_1.pt"),
    ],
    ids=["lower-max_lr", "no-momentum-cycling"],  # a changed train.epochs is refused: test_resume_settings.py
)
def test_resuming_with_changed_settings_uses_them(data, tmp_path, changed, resume_from):
    """The checkpoint's optimizer/scheduler states held the old schedule: a lower max_lr (the NaN hint) had no
    effect, more epochs raised OneCycleLR's ValueError. Now the resumed run goes on, from its step, exactly as a
    run started with the new settings."""
    fresh = tmp_path / "fresh"
    train(tiny_config(data, fresh, *changed))
    resumed = tmp_path / "resumed"
    train(tiny_config(data, resumed))
    newest = [p.name for p in resumed.glob("*.pt")]
    for name in newest:
        if name != resume_from and (name.startswith("step_") or name > resume_from):
            (resumed / name).unlink()
    start = torch.load(resumed / resume_from, weights_only=True)["step"]
    train(tiny_config(data, resumed, *changed))
    expected, got = logged_lr(fresh), logged_lr(resumed)
    assert {k: v for k, v in got.items() if k > start} == {k: v for k, v in expected.items() if k > start}
    groups = torch.load(resumed / f"epoch_{3 if 'epochs' in changed[0] else 2}.pt", weights_only=True)
    reference = torch.load(fresh / f"epoch_{3 if 'epochs' in changed[0] else 2}.pt", weights_only=True)
    for ours, theirs in zip(groups["optimizer"]["param_groups"], reference["optimizer"]["param_groups"]):
        assert {k: ours[k] for k in theirs if k != "params"} == {k: v for k, v in theirs.items() if k != "params"}
