"""`tame export`: ONNX / TorchScript / exported-program graphs that match TameModel.explain, and their bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from train_helpers import TINY_MODEL_CONFIG as CONFIG

from tame.cli import main
from tame.errors import TameError
from tame.export import export_model, open_exported
from tame.export.runtime import explain_with_onnx
from tame.models import TameModel, create_classifier

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")


def trained(name: str, layers: list[str], size: int) -> TameModel:
    """A tiny random classifier with an AM trained for a few steps (BatchNorm statistics no longer the defaults)."""
    torch.manual_seed(0)
    model = TameModel(create_classifier(name, pretrained=False), layers, input_size=size)
    optimiser = torch.optim.SGD(model.attention.parameters(), lr=0.05)
    model.train()
    for _ in range(3):
        optimiser.zero_grad()
        model.training_step(torch.rand(4, 3, size, size))["loss"].backward()
        optimiser.step()
    return model.eval()


@pytest.fixture(scope="module")
def resnet() -> TameModel:
    return trained("test_resnet", ["layer2", "layer3", "layer4"], 64)


@pytest.fixture(scope="module")
def vit() -> TameModel:
    return trained("test_vit", ["blocks.1", "blocks.3", "blocks.5"], 160)


def pixels(batch: int, size: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, 256, (batch, 3, size, size), generator=torch.Generator().manual_seed(seed)).to(torch.uint8)


def check_against_explain(model: TameModel, outputs, images: torch.Tensor, classes: torch.Tensor) -> None:
    """outputs (logits, class, map) of an exported graph against TameModel.explain on the same images."""
    logits, chosen, maps = (torch.as_tensor(np.asarray(t)) for t in outputs)
    floats = images.float().div(255)
    predicted = model.explain(floats).classes
    reference = model.explain(floats, torch.where(classes < 0, predicted, classes))  # -1: the predicted class
    assert maps.shape == reference.maps.shape and logits.shape == reference.logits.shape
    assert torch.equal(chosen, reference.classes)
    assert (maps - reference.maps).abs().max() <= 1e-4
    assert (logits - reference.logits).abs().max() <= 1e-4


def test_onnx_cnn_dynamic_batch_runs_in_onnxruntime(resnet, tmp_path):
    path = tmp_path / "resnet.onnx"
    result = export_model(resnet, path, input_size=64, resize=72, dynamic_batch=True)
    assert result.exporter == "torch.onnx.export(dynamo=True)" and result.verification.ok
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])  # as a user would, no tame
    assert [i.name for i in session.get_inputs()] == ["images", "classes"]
    images = pixels(3, 64)  # another batch size than the export's example
    predicted = session.run(None, {"images": images.numpy(), "classes": np.full(3, -1, dtype=np.int64)})
    check_against_explain(resnet, predicted, images, torch.full((3,), -1))
    given = torch.tensor([5, 999, 0])
    outputs = session.run(None, {"images": images.numpy(), "classes": given.numpy()})
    check_against_explain(resnet, outputs, images, given)
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert meta["model"] == "test_resnet" and json.loads(meta["layers"]) == ["layer2", "layer3", "layer4"]
    sizes = [json.loads(meta[key]) for key in ("input_size", "resize", "num_classes")]
    assert sizes == [64, 72, 1000]
    assert json.loads(meta["mean"]) == [0.5, 0.5, 0.5] and meta["tame_version"] and meta["input_dtype"] == "uint8"


def test_onnx_and_torchscript_vit(vit, tmp_path):
    images, classes = pixels(2, 160), torch.tensor([-1, 7])
    export_model(vit, tmp_path / "vit.onnx", input_size=160, batch_size=2, verify_count=3)  # fixed batch: 2 + 1 padded
    session = ort.InferenceSession(str(tmp_path / "vit.onnx"), providers=["CPUExecutionProvider"])
    outputs = session.run(None, {"images": images.numpy(), "classes": classes.numpy()})
    check_against_explain(vit, outputs, images, classes)
    options = {"fmt": "torchscript", "input_dtype": "float", "verify_count": 2}
    result = export_model(vit, tmp_path / "vit.pt", input_size=160, **options)
    assert result.exporter == "torch.jit.trace"
    module = torch.jit.load(str(tmp_path / "vit.pt"))
    with torch.no_grad():
        outputs = module(images.float().div(255), torch.tensor([-1, -1]))
    check_against_explain(vit, outputs, images, torch.tensor([-1, -1]))


def test_torchscript_and_exported_program_cnn(resnet, tmp_path):
    images, classes = pixels(4, 64), torch.tensor([3, 1, 4, 1])
    for fmt, name in (("torchscript", "m.pt"), ("exported-program", "m.pt2")):
        export_model(resnet, tmp_path / name, input_size=64, fmt=fmt, dynamic_batch=True, verify_count=2)
        runner = open_exported(tmp_path / name)
        assert runner.format == fmt and runner.meta["layers"] == ["layer2", "layer3", "layer4"]
        check_against_explain(resnet, runner(images.numpy(), classes.numpy()), images, classes)


def test_onnx_falls_back_to_the_torchscript_exporter(resnet, tmp_path, monkeypatch):
    real_export = torch.onnx.export

    def dynamo_fails(*args, dynamo=True, **kwargs):
        if dynamo:
            raise RuntimeError("pretend the dynamo exporter cannot handle this model")
        return real_export(*args, dynamo=False, **kwargs)

    monkeypatch.setattr(torch.onnx, "export", dynamo_fails)
    result = export_model(resnet, tmp_path / "m.onnx", input_size=64, dynamic_batch=True, verify_count=2)
    assert result.exporter == "torch.onnx.export(dynamo=False)" and result.verification.ok
    assert open_exported(tmp_path / "m.onnx").meta["exporter"] == "torch.onnx.export(dynamo=False)"


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
def test_cli_export_and_onnx_runtime_explain_match_tame_explain(
    resnet, tmp_path, example_images, capsys, interpolation
):
    """The ONNX runtime resizes as the config did (the interpolation travels in the file's metadata)."""
    resnet.save_attention(tmp_path / "am.pt")
    torch.save(resnet.classifier.net.state_dict(), tmp_path / "classifier.pth")  # the same classifier in both runs
    weights = f"weights: {tmp_path / 'classifier.pth'}"
    (tmp_path / "config.yaml").write_text(CONFIG.replace("pretrained: false", weights))
    images = [str(example_images / name) for name in ("885.JPEG", "129_130.png")]  # a JPEG, an RGBA PNG
    config = ["--config", str(tmp_path / "config.yaml"), "--checkpoint", str(tmp_path / "am.pt")]
    config.append(f"data.interpolation={interpolation}")
    model_file = tmp_path / "model.onnx"
    assert main(["export", *config, "-o", str(model_file), "--dynamic-batch", "--verify-images", *images]) == 0
    assert open_exported(model_file).meta["interpolation"] == interpolation
    printed = capsys.readouterr().out
    assert "torch.onnx.export(dynamo=True)" in printed and "classes agree: yes" in printed
    assert main(["explain", *images, *config, "--out", str(tmp_path / "torch"), "--top-k", "2"]) == 0
    entries, skipped = explain_with_onnx(model_file, images, tmp_path / "onnx", top_k=2)
    assert not skipped and len(entries) == 2 * 2
    reference = json.loads((tmp_path / "torch" / "explanations.json").read_text())["maps"]
    assert [(e["image"], e["class"], e["rank"]) for e in entries] == [
        (e["image"], e["class"], e["rank"]) for e in reference
    ]
    for entry, ref in zip(entries, reference):
        assert entry["probability"] == pytest.approx(ref["probability"], abs=1e-5)
        ours, theirs = np.load(tmp_path / "onnx" / entry["map"]), np.load(tmp_path / "torch" / ref["map"])
        assert np.abs(ours - theirs).max() <= 1e-4
        assert (tmp_path / "onnx" / entry["overlay"]).stat().st_size > 1000
    assert "129_130.png" in (tmp_path / "onnx" / "index.html").read_text()


def run_cli(tmp_path, *extra: str) -> int:
    (tmp_path / "config.yaml").write_text(CONFIG)
    return main(["export", "--config", str(tmp_path / "config.yaml"), *extra])


def test_bad_input_is_one_line_and_leaves_no_file(resnet, tmp_path, capsys):
    other = TameModel(create_classifier("test_resnet", pretrained=False), ["layer3", "layer4"], input_size=64)
    other.save_attention(tmp_path / "other_layers.pt")
    torch.save({"attention": {"fuser.weight": torch.zeros(3, 3, 1, 1)}}, tmp_path / "other_shapes.pt")
    resnet.save_attention(tmp_path / "am.pt")
    cases = [
        (["--checkpoint", str(tmp_path / "other_layers.pt")], "trained with layers="),
        (["--checkpoint", str(tmp_path / "other_shapes.pt")], "does not fit the model"),
        (["--checkpoint", str(tmp_path / "am.pt"), "--opset", "11"], "opset 11 is not supported"),
        (["--checkpoint", str(tmp_path / "am.pt"), "--opset", "99"], "opset 99 is not supported"),
    ]
    for extra, message in cases:
        assert run_cli(tmp_path, *extra, "-o", str(tmp_path / "out.onnx")) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    missing = tmp_path / "missing" / "out.onnx"
    assert run_cli(tmp_path, "--checkpoint", str(tmp_path / "am.pt"), "-o", str(missing)) == 2
    assert "does not exist" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["am.pt", "config.yaml", "other_layers.pt", "other_shapes.pt"]


@pytest.mark.skipif(
    not hasattr(__import__("os"), "geteuid") or __import__("os").geteuid() == 0,
    reason="needs a non-root POSIX user: root may write into a read-only folder",
)
def test_read_only_folder_is_refused(resnet, tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(TameError, match="read-only"):
            export_model(resnet, folder / "m.onnx", input_size=64)
    finally:
        folder.chmod(0o755)


def test_failed_write_or_verification_leaves_nothing(resnet, tmp_path, monkeypatch):
    def refuse(*_args):
        raise PermissionError(30, "Read-only file system")

    with monkeypatch.context() as patch:
        patch.setattr("tame.export.api.os.replace", refuse)  # the rename at the end fails (read-only, full disk)
        with pytest.raises(TameError, match="cannot write .*Read-only file system"):
            export_model(resnet, tmp_path / "m.pt2", input_size=64, fmt="exported-program", verify_count=1)
    monkeypatch.setattr("tame.export.verify.TOLERANCE", -1.0)
    monkeypatch.setattr("tame.export.api.verify_export.__defaults__", (-1.0,))  # nothing can match now
    with pytest.raises(TameError, match="does not match PyTorch, nothing written"):
        export_model(resnet, tmp_path / "m.pt2", input_size=64, fmt="exported-program", verify_count=1)
    assert list(tmp_path.iterdir()) == []


def test_metadata_interpolation_is_checked_and_defaults_to_bilinear():
    from tame.export.runners import check_metadata

    sizes = {"input_size": 64, "resize": 73, "num_classes": 3}
    check_metadata(sizes, {}, "old.onnx")  # exported before the interpolation was recorded: bilinear, as it resized
    check_metadata(sizes | {"interpolation": "bicubic"}, {}, "new.onnx")
    with pytest.raises(TameError, match="metadata interpolation='nearest' is not one of bilinear, bicubic"):
        check_metadata(sizes | {"interpolation": "nearest"}, {}, "bad.onnx")


def test_export_defaults_to_the_models_own_preprocessing(tmp_path):
    """Issue 33.8: without sizes the export took ImageNet's resize (crop / 0.875: 73 for 64) whatever the model's;
    now its input size, resize and interpolation are the classifier's own, recorded in the metadata."""
    own = {"resize": 70, "crop": 64, "interpolation": "bicubic"}
    classifier = create_classifier("test_resnet", pretrained=False, preprocessing=own)
    model = TameModel(classifier, ["layer3", "layer4"], input_size=64).eval()
    export_model(model, tmp_path / "m.onnx", dynamic_batch=True, verify_count=1)
    meta = open_exported(tmp_path / "m.onnx").meta
    assert (int(meta["input_size"]), int(meta["resize"]), meta["interpolation"]) == (64, 70, "bicubic")


def test_the_export_section_spells_the_exporters_choices():
    """export.format / export.input_dtype / export.opset (the config tree, which cannot import tame.export) name
    what the exporters take; `tame export --format` is generated from the field."""
    from tame.config import ExportConfig
    from tame.config.choices import ExportFormat, InputDtype, allowed
    from tame.export.exporters import DEFAULT_OPSET, FORMATS
    from tame.export.graph import INPUT_DTYPES

    assert allowed(ExportFormat) == FORMATS and allowed(InputDtype) == tuple(INPUT_DTYPES)
    assert ExportConfig().opset == DEFAULT_OPSET


def test_export_flags_layer_over_the_config_file(resnet, tmp_path, capsys):
    """`export.batch_size=0` in the overrides is refused as --batch-size is, naming both."""
    resnet.save_attention(tmp_path / "am.pt")
    code = run_cli(
        tmp_path, "--checkpoint", str(tmp_path / "am.pt"), "-o", str(tmp_path / "m.onnx"), "export.batch_size=0"
    )
    assert code == 2 and "export.batch_size (--batch-size): must be at least 1, got 0" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()
