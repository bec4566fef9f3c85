"""Backbone registry, feature taps, checkpoints (ours, original TAME, malicious), tame-inspect, bad input."""

from __future__ import annotations

import functools
import os
import pickle
import sys

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from tame.cli import inspect_main
from tame.config import load_config
from tame.errors import TameError
from tame.models import FeatureTaps, TameModel, create_classifier, register_backbone, tokens_to_map
from tame.models.inspect import default_layers, feature_layers

LAYERS = ["layer2", "layer3", "layer4"]


# -- registry ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("config", ["vgg16", "vgg16_lcam_img"])
def test_the_vgg16_configs_train_with_torchvisions_dropout(config):
    """Both Dropout(0.5) of VGG-16's classifier act while the AM trains (backbone_mode: train); eval is unchanged."""
    cfg = load_config(f"configs/{config}.yaml", ["model.pretrained=false"])
    assert cfg.model.drop_rate == 0.5 and cfg.train.backbone_mode == "train"
    torch.manual_seed(0)
    model = TameModel.from_config(cfg.model, input_size=64, train_cfg=cfg.train)
    rates = [m.p for m in model.classifier.net.modules() if isinstance(m, nn.Dropout)]
    assert rates == [0.5, 0.5]
    plain = create_classifier(cfg.model.name, pretrained=False)  # timm's default: drop_rate 0
    plain.net.load_state_dict(model.classifier.net.state_dict())
    images, labels = torch.rand(2, 3, 64, 64), torch.tensor([1, 2])
    with torch.no_grad():
        torch.testing.assert_close(model.predict(images), plain(images), rtol=0, atol=0)  # eval: no dropout
    model.train()
    first, second = (model.training_step(images, labels)["ce"].item() for _ in range(2))
    assert first != second  # the masked pass draws new dropout masks
    assert not model.classifier.net.training  # back in eval after the step
    with torch.no_grad():
        model.classifier.net.train()
        assert not torch.equal(model.predict(images), model.predict(images))
        plain.net.train()
        assert torch.equal(plain(images), plain(images))  # without drop_rate: train mode had no dropout at all


def test_drop_rate_is_a_probability():
    with pytest.raises(TameError, match="model.drop_rate"):
        load_config("configs/vgg16.yaml", ["model.drop_rate=1.5"])


def test_timm_classifier_is_frozen_in_eval_with_its_normalisation():
    classifier = create_classifier("test_resnet", pretrained=False)
    assert not classifier.training and not classifier.net.training
    assert all(not p.requires_grad for p in classifier.parameters())
    cfg = classifier.net.pretrained_cfg
    torch.testing.assert_close(classifier.mean.flatten(), torch.tensor(cfg["mean"], dtype=torch.float32))
    images = torch.rand(2, 3, 32, 32)
    expected = classifier.net(
        (images - torch.tensor(cfg["mean"]).view(1, 3, 1, 1)) / torch.tensor(cfg["std"]).view(1, 3, 1, 1)
    )
    torch.testing.assert_close(classifier(images), expected)


def test_pretrained_tag_is_accepted_offline():
    classifier = create_classifier("resnet18.tv_in1k", pretrained=False)
    assert classifier.net.pretrained_cfg["tag"] == "tv_in1k"


@register_backbone("tiny_cnn_for_tests")
def _tiny_cnn(pretrained: bool = False, num_classes: int = 10) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, num_classes),
    )


def build_path_model(pretrained: bool = False) -> nn.Module:
    return _tiny_cnn()


def test_registered_and_module_path_backbones():
    registered = create_classifier("tiny_cnn_for_tests", pretrained=False)
    assert registered(torch.rand(1, 3, 16, 16)).shape == (1, 10)
    torch.testing.assert_close(registered.mean.flatten(), torch.tensor([0.485, 0.456, 0.406]))
    by_path = create_classifier(f"{__name__}:build_path_model", pretrained=False)
    model = TameModel(by_path, ["0", "3"], input_size=16)
    assert model.feature_shapes == [(8, 16, 16), (16, 8, 8)]


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_local_weights_file(tmp_path, suffix):
    source = create_classifier("test_resnet", pretrained=False)
    path = tmp_path / f"weights{suffix}"
    state = {k: v.clone() for k, v in source.net.state_dict().items()}
    if suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    loaded = create_classifier("test_resnet", pretrained=True, weights=path)
    for key, value in loaded.net.state_dict().items():
        assert torch.equal(value, state[key])


def test_weights_file_for_another_model_names_keys(tmp_path):
    path = tmp_path / "other.pth"
    torch.save(create_classifier("tiny_cnn_for_tests", pretrained=False).net.state_dict(), path)
    with pytest.raises(TameError, match="does not fit the model: missing keys"):
        create_classifier("test_resnet", pretrained=False, weights=path)


def test_unknown_model_suggests_close_names():
    with pytest.raises(TameError, match="unknown model 'resnet5O'; did you mean resnet50"):
        create_classifier("resnet5O", pretrained=False)


# -- paper backbones and other families ---------------------------------------------------------------------------
def test_vgg16_and_resnet50_paper_layers_and_shapes():
    vgg = TameModel(create_classifier("vgg16.tv_in1k", pretrained=False), ["features.16", "features.23", "features.30"])
    assert vgg.feature_shapes == [(256, 28, 28), (512, 14, 14), (512, 7, 7)]
    assert vgg.attention.size == (28, 28) and vgg.attention.fuser.out_channels == 1000
    del vgg
    resnet = TameModel(create_classifier("resnet50.tv_in1k", pretrained=False), LAYERS)
    assert resnet.feature_shapes == [(512, 28, 28), (1024, 14, 14), (2048, 7, 7)]
    assert resnet.attention.fuser.in_channels == 512 + 1024 + 2048


def test_vit_tokens_become_maps_and_convnext_works():
    vit = TameModel(
        create_classifier("test_vit", pretrained=False), ["blocks.1", "blocks.3", "blocks.5"], input_size=160
    )
    assert vit.feature_shapes == [(64, 10, 10)] * 3  # 1 class token dropped, 100 patches -> 10 x 10
    vit.eval()
    assert vit.explain(torch.rand(2, 3, 160, 160)).maps.shape == (2, 160, 160)
    convnext = TameModel(
        create_classifier("test_convnext", pretrained=False), ["stages.1", "stages.2", "stages.3"], input_size=64
    )
    out = convnext.train().training_step(torch.rand(2, 3, 64, 64))
    assert torch.isfinite(out["loss"])


def test_tokens_to_map_drops_prefix_tokens():
    tokens = torch.arange(2 * 7 * 3, dtype=torch.float32).view(2, 7, 3)  # 1 prefix + 6 patches, image 2:3
    grid = tokens_to_map(tokens, num_prefix_tokens=1, image_hw=(20, 30))
    assert grid.shape == (2, 3, 2, 3)
    assert torch.equal(grid[0, :, 0, 0], tokens[0, 1])
    assert torch.equal(grid[1, :, 1, 2], tokens[1, 6])


# -- taps ---------------------------------------------------------------------------------------------------------
def test_taps_collect_in_order_and_release_hooks(tiny_classifier):
    net = tiny_classifier.net
    with FeatureTaps(net, ["layer4", "layer2"]) as taps:
        taps.begin((64, 64))
        net(torch.rand(1, 3, 64, 64))
        maps = taps.collect()
        assert [m.shape[1] for m in maps] == [96, 48]
    assert all(not m._forward_hooks for m in net.modules())


@pytest.mark.parametrize(
    ("layers", "message"),
    [
        (["layer2", "layr3"], "unknown layer 'layr3'; closest: layer3"),
        (["layer2", "fc"], "layer 'fc' outputs shape"),
        (["layer2", "layer2"], "repeat"),
    ],
)
def test_bad_layer_choices(tiny_classifier, layers, message):
    with pytest.raises(TameError, match=message):
        TameModel(tiny_classifier, layers, input_size=64)


# -- checkpoints --------------------------------------------------------------------------------------------------
def test_own_checkpoint_round_trip(tiny_classifier, tmp_path):
    model = TameModel(tiny_classifier, LAYERS, input_size=64)
    with torch.no_grad():
        for p in model.attention.parameters():
            p.normal_()
    model.save_attention(tmp_path / "am.pt")
    other = TameModel(tiny_classifier, LAYERS, input_size=64)
    other.load_attention(tmp_path / "am.pt")
    for key, value in model.attention.state_dict().items():
        assert torch.equal(value, other.attention.state_dict()[key])


def test_original_tame_checkpoint_loads_without_conversion(tiny_classifier, tmp_path):
    source = TameModel(tiny_classifier, LAYERS, input_size=64)
    with torch.no_grad():
        source.attention.fuser.weight.normal_()
    original = {f"attn.{k}": v for k, v in source.attention.state_dict().items()}
    original.update({f"body.{k}": v for k, v in tiny_classifier.net.state_dict().items()})
    torch.save(
        {"epoch": 8, "global_counter": 1234, "state_dict": original, "optimizer": {"state": {}}},
        tmp_path / "vgg16_TAME.pt",
    )
    model = TameModel(tiny_classifier, LAYERS, input_size=64)
    model.load_attention(tmp_path / "vgg16_TAME.pt")
    assert torch.equal(model.attention.fuser.weight, source.attention.fuser.weight)


def test_checkpoint_for_other_layers_is_refused(tiny_classifier, tmp_path):
    TameModel(tiny_classifier, ["layer3", "layer4"], input_size=64).save_attention(tmp_path / "am.pt")
    with pytest.raises(TameError, match="trained with layers="):
        TameModel(tiny_classifier, LAYERS, input_size=64).load_attention(tmp_path / "am.pt")
    bare = {
        k: v for k, v in TameModel(tiny_classifier, ["layer3", "layer4"], input_size=64).attention.state_dict().items()
    }
    torch.save(bare, tmp_path / "bare.pt")
    with pytest.raises(TameError, match="does not fit the model: .*shape mismatch"):
        TameModel(tiny_classifier, LAYERS, input_size=64).load_attention(tmp_path / "bare.pt")


class _Payload:
    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


def test_malicious_pickle_is_refused_and_never_runs(tiny_classifier, tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"attn.fuser.weight": _Payload(str(marker))}}, path)
    with pytest.raises(TameError, match="refused to load"):
        TameModel(tiny_classifier, LAYERS, input_size=64).load_attention(path)
    assert not marker.exists()
    torch.load(path, weights_only=False)  # proof that the file really carries a payload
    assert marker.exists()


def test_truncated_checkpoint_is_one_clear_error(tiny_classifier, tmp_path):
    model = TameModel(tiny_classifier, LAYERS, input_size=64)
    model.save_attention(tmp_path / "am.pt")
    data = (tmp_path / "am.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(TameError, match="corrupt or truncated"):
        model.load_attention(tmp_path / "cut.pt")
    (tmp_path / "junk.pt").write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(TameError):
        model.load_attention(tmp_path / "junk.pt")


# -- bad images ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("images", "message"),
    [
        (torch.rand(2, 3, 64, 64) * 255, r"must lie in \[0, 1\]"),
        (torch.rand(3, 64, 64), r"\[B, 3, H, W\]"),
        (torch.rand(2, 1, 64, 64), r"\[B, 3, H, W\]"),
        (torch.randint(0, 2, (2, 3, 64, 64)), "float"),
    ],
)
def test_bad_images_are_clear_errors(tiny_model, images, message):
    with pytest.raises(TameError, match=message):
        tiny_model.eval().explain(images)


def test_class_out_of_range(tiny_model):
    with pytest.raises(TameError, match="class index out of range"):
        tiny_model.eval().explain(torch.rand(1, 3, 64, 64), classes=5000)


# -- tame-inspect -------------------------------------------------------------------------------------------------
def test_inspect_default_layers():
    resnet = feature_layers(create_classifier("resnet50", pretrained=False))
    assert default_layers(resnet) == LAYERS
    vgg = feature_layers(create_classifier("vgg16", pretrained=False))
    assert default_layers(vgg) == ["features.16", "features.23", "features.30"]
    vit = feature_layers(create_classifier("test_vit", pretrained=False), input_size=160)
    assert default_layers(vit) == ["blocks.3", "blocks.4", "blocks.5"]


def test_inspect_cli(capsys):
    assert inspect_main(["test_resnet", "--input-size", "64"]) == 0
    out = capsys.readouterr().out
    assert "* layer3" in out and "48 x 8 x 8" in out and "default layers: layer2 layer3 layer4" in out
    assert inspect_main(["test_resnet", "--input-size", "64", "--layers", "layer2", "layer4"]) == 0
    out = capsys.readouterr().out
    assert "48 x 8 x 8" in out and "layers OK" in out and "attention mechanism TAME" in out
    rows = [line.split()[0] for line in out.splitlines()[2:-1]]  # only the named layers, no table of the rest
    assert rows == ["layer2", "layer4"] and "layer3" not in out and "conv1" not in out
    assert inspect_main(["test_resnet", "--layers", "layer9"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tame-inspect: error: unknown layer 'layer9'") and "Traceback" not in err
    assert inspect_main(["no_such_model_xyz"]) == 2


def test_inspect_reports_every_bad_layer_in_one_line(capsys):
    assert inspect_main(["test_resnet", "--layers", "layer9", "layer2", "layer2", "fc"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "unknown layer 'layer9' in test_resnet; closest: layer4" in err and "'layer2' is named twice" in err
    assert "layer 'fc' does not produce a feature map" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["resnet18", "--input-size", "0"], "--input-size 0: give a side in pixels"),
        (["vgg16", "--input-size", "16"], "cannot run on 16x16 images"),
        (["os:system"], "is a built-in function, not a Python function that builds a model (nothing was called)"),
        (["builtins:eval"], "is a built-in function"),
        (["os:sep"], "os:sep is a str ('/'), not a Python function"),
        (["json:loads"], "cannot be called as json:loads(pretrained=False) (missing a required argument: 's')"),
        ([":resnet18"], "write package.module:function"),
        (["resnet18:"], "write package.module:function"),
        (["collections:OrderedDict"], "class OrderedDict is not an nn.Module"),
        (["os:sistem"], "os has no attribute 'sistem'; did you mean system?"),
        (["no_such_package_xyz.models:build"], "with PYTHONPATH=. (or pip install it)"),
        ([f"{__name__}:returns_a_dict"], "returned a dict ({'weights': 1}), not an nn.Module"),
    ],
)
def test_inspect_bad_input_is_one_line(capsys, argv, message):
    assert inspect_main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("tame-inspect: error: ") and len(err.strip().splitlines()) == 1, err
    assert message in err


def returns_a_dict(pretrained: bool = False) -> dict:
    return {"weights": 1}


def test_module_path_target_never_runs_a_command(monkeypatch):
    """``os:system`` is refused before any call; so is any callable that is not a Python function or Module class."""
    with pytest.raises(TameError, match="os:system is a built-in function.*nothing was called"):
        create_classifier("os:system", pretrained=False)
    calls = []
    monkeypatch.setattr(os, "system", functools.partial(lambda *a, **k: calls.append((a, k))))
    with pytest.raises(TameError, match="os:system is a callable partial.*nothing was called"):
        create_classifier("os:system", pretrained=False)
    assert calls == []


BUILDER_CALLS: list[dict] = []


def builder_raising_type_error(pretrained: bool = False, **kwargs) -> nn.Module:
    BUILDER_CALLS.append({"pretrained": pretrained, **kwargs})
    raise TypeError("bad channel count")


def test_builder_that_raises_is_called_once():
    BUILDER_CALLS.clear()
    with pytest.raises(TameError) as err:
        create_classifier(f"{__name__}:builder_raising_type_error", pretrained=False, num_classes=7)
    assert BUILDER_CALLS == [{"pretrained": False, "num_classes": 7}]
    assert "builder_raising_type_error(pretrained=False, num_classes=7) raised TypeError: bad channel count" in str(
        err.value
    )


class PlainNet(nn.Module):
    """An nn.Module class without a ``pretrained`` argument: built as it is (random weights)."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.net = _tiny_cnn(num_classes=num_classes)

    def forward(self, x):
        return self.net(x)


def test_module_class_without_pretrained_builds():
    classifier = create_classifier(f"{__name__}:PlainNet", pretrained=True, num_classes=4)
    assert classifier(torch.rand(1, 3, 16, 16)).shape == (1, 4)


def test_console_scripts_are_installed():
    bin_dir = os.path.dirname(sys.executable)
    assert os.path.exists(os.path.join(bin_dir, "tame")) and os.path.exists(os.path.join(bin_dir, "tame-inspect"))
