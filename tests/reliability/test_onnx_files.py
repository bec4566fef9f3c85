"""Damaged and forged ONNX files under `tame explain --runtime onnx` (third probe, issue 25 items 9 and 17): a file
with flipped bytes ran and gave other maps; metadata input_size=100000 ended in a DecompressionBombError. Now the
checksum `tame export` records is verified and the metadata is checked against the graph: one line, nothing
written."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from PIL import Image

from tame.errors import TameError
from tame.export.checksum import CHECKSUM_KEY, onnx_checksum
from tame.export.runners import open_exported

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny test_resnet TAME model exported to ONNX at 32 px, and one image."""
    from tame.export import export_model
    from tame.models import TameModel, create_classifier

    folder = tmp_path_factory.mktemp("onnx_files")
    torch.manual_seed(0)
    model = TameModel(create_classifier("test_resnet", pretrained=False), ["layer2", "layer3"], input_size=32)
    export_model(model, folder / "model.onnx", input_size=32, verify_count=1)
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(folder / "a.png")
    return folder


def _explain(cli_here, model, folder, out):
    return cli_here("explain", "--runtime", "onnx", model, folder / "a.png", "--out", out)


def test_the_export_records_a_checksum_that_holds(exported):
    digest, recorded = onnx_checksum((exported / "model.onnx").read_bytes())
    assert recorded == digest and digest.startswith("sha256:")
    assert open_exported(exported / "model.onnx").meta["input_size"] == 32


def _flipped(data: bytes, where: float, count: int = 16) -> bytes:
    start = int(len(data) * where)
    return data[:start] + bytes(b ^ 0xFF for b in data[start : start + count]) + data[start + count :]


@pytest.mark.parametrize("where", [0.3, 0.6, 0.9], ids=["weights-early", "weights-middle", "weights-late"])
def test_flipped_bytes_are_one_line_and_write_nothing(cli_here, exported, tmp_path, where):
    damaged = tmp_path / "damaged.onnx"
    damaged.write_bytes(_flipped((exported / "model.onnx").read_bytes(), where))
    result = _explain(cli_here, damaged, exported, tmp_path / "out")
    result.assert_one_error_line(r"damaged\.onnx: (the file is damaged or was changed after `tame export`|not a)")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("cut", [0.5, 0.999], ids=["half", "last-bytes"])
def test_a_truncated_file_is_one_line(cli_here, exported, tmp_path, cut):
    data = (exported / "model.onnx").read_bytes()
    (tmp_path / "cut.onnx").write_bytes(data[: int(len(data) * cut)])
    _explain(cli_here, tmp_path / "cut.onnx", exported, tmp_path / "out").assert_one_error_line(r"cut\.onnx: ")
    assert not (tmp_path / "out").exists()


def _rewritten(exported, tmp_path, checksum: bool, **changes) -> str:
    """The export with metadata ``changes``, its checksum recomputed (a consistent forgery) or removed."""
    proto = onnx.load(str(exported / "model.onnx"))
    props = {p.key: p.value for p in proto.metadata_props if p.key != CHECKSUM_KEY}
    props.update({key: str(value) for key, value in changes.items()})
    onnx.helper.set_model_props(proto, props)
    if checksum:
        onnx.helper.set_model_props(proto, {**props, CHECKSUM_KEY: onnx_checksum(proto.SerializeToString())[0]})
    path = tmp_path / "rewritten.onnx"
    path.write_bytes(proto.SerializeToString())
    return path


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"input_size": 100000}, r"metadata input_size=100000 but the graph has 32"),
        ({"resize": 100000}, r"metadata resize=100000 does not fit input_size=32"),
        ({"resize": 16}, r"metadata resize=16 does not fit input_size=32"),
        ({"num_classes": 5}, r"metadata num_classes=5 but the graph has 1000"),
        ({"input_size": "-3"}, r"metadata input_size=-3 is not a positive integer"),
        ({"resize": "big"}, r"metadata resize='big' is not a positive integer"),
    ],
    ids=["input-size-huge", "resize-huge", "resize-below-crop", "classes", "negative", "not-a-number"],
)
@pytest.mark.parametrize("checksum", [True, False], ids=["re-checksummed", "no-checksum"])
def test_metadata_must_agree_with_the_graph(cli_here, exported, tmp_path, changes, message, checksum):
    forged = _rewritten(exported, tmp_path, checksum, **changes)
    _explain(cli_here, forged, exported, tmp_path / "out").assert_one_error_line(message)
    assert not (tmp_path / "out").exists()


def test_edited_metadata_without_a_new_checksum_is_damage(exported, tmp_path):
    proto = onnx.load(str(exported / "model.onnx"))
    for prop in proto.metadata_props:
        if prop.key == "resize":
            prop.value = "40"  # plausible, but not what was exported
    (tmp_path / "edited.onnx").write_bytes(proto.SerializeToString())
    with pytest.raises(TameError, match="was changed after `tame export`"):
        open_exported(tmp_path / "edited.onnx")


def test_a_file_without_checksum_runs_with_a_warning(cli_here, exported, tmp_path, caplog):
    older = _rewritten(exported, tmp_path, checksum=False)
    with caplog.at_level(logging.WARNING):
        result = _explain(cli_here, older, exported, tmp_path / "out")
    assert result.code == 0 and "explained 1 images" in result.out, result.err
    assert "has no checksum" in caplog.text
