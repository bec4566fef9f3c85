"""``tame datalist check`` finds each planted defect, on the right line, and writes the clean list."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tame.cli import main
from tame.data.check import check_list
from tame.data.lists import read_list


def _jpeg(path, size=(40, 30), seed=0):
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, quality=90)
    return path.read_bytes()


@pytest.fixture
def planted(tmp_path):
    """A list whose odd lines are good and whose even lines each carry one defect."""
    root = tmp_path / "images"
    (root / "sub").mkdir(parents=True)
    data = _jpeg(root / "good1.jpg")
    _jpeg(root / "sub" / "good2.jpg", seed=1)
    (root / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (root / "empty.jpg").write_bytes(b"")
    (root / "folder.jpg").mkdir()
    Image.new("RGB", (8, 8)).save(root / "anim.gif")
    lines = [
        "good1.jpg 0 ",  # 1
        "missing.jpg 1",  # 2 missing file
        "sub/good2.jpg 2",  # 3
        "good1.jpg 7",  # 4 label out of range (num_classes=5)
        "good1.jpg",  # 5 malformed
        "../images/good1.jpg 1",  # 6 escapes the root
        "truncated.jpg 1",  # 7 truncated JPEG (found with --decode)
        "empty.jpg 1",  # 8 zero bytes
        "folder.jpg 1",  # 9 a directory
        "anim.gif 1",  # 10 a format DALI cannot decode (found with --decode)
        "sub/good2.jpg 2",  # 11 (listed twice with the same label: fine)
    ]
    list_file = tmp_path / "list.txt"
    list_file.write_text("\n".join(lines) + "\n")
    return list_file, root


def test_cheap_check_finds_each_defect(planted):
    list_file, root = planted
    report = check_list(list_file, root, num_classes=5)
    found = {problem.line: problem.kind for problem in report.problems}
    assert found == {2: "missing", 4: "label", 5: "malformed", 6: "path", 8: "empty", 9: "missing"}
    assert [entry.line for entry in report.entries] == [1, 3, 7, 10, 11]
    assert not report.ok
    assert report.summary() == "11 entries, 5 good, 6 bad (empty: 1, label: 1, malformed: 1, missing: 2, path: 1)"


def test_decode_check_also_finds_truncated_and_unsupported(planted):
    list_file, root = planted
    report = check_list(list_file, root, num_classes=5, decode=True, workers=2)
    found = {problem.line: problem for problem in report.problems}
    assert found[7].kind == "decode" and "truncated" in found[7].message
    assert found[10].kind == "decode" and "GIF" in found[10].message
    assert [entry.line for entry in report.entries] == [1, 3, 11]


def test_cli_prints_every_bad_line_and_writes_the_clean_list(planted, capsys):
    list_file, root = planted
    clean = list_file.parent / "clean.txt"
    code = main(
        [
            "datalist",
            "check",
            str(list_file),
            "--root",
            str(root),
            "--num-classes",
            "5",
            "--decode",
            "--write-clean",
            str(clean),
        ]
    )
    out = capsys.readouterr().out.splitlines()
    assert code == 1
    assert out[0] == f"{list_file}:2: missing.jpg: file not found"
    assert out[2] == f"{list_file}:5: expected 'path label', got 1 field(s): 'good1.jpg'"
    assert any(line.startswith(f"{list_file}:7: truncated.jpg: cannot decode") for line in out)
    assert (
        out[-2]
        == f"{list_file}: 11 entries, 3 good, 8 bad (decode: 2, empty: 1, label: 1, malformed: 1, missing: 2, path: 1)"
    )
    assert out[-1] == f"wrote 3 good lines to {clean}"
    assert clean.read_text() == "good1.jpg 0\nsub/good2.jpg 2\nsub/good2.jpg 2\n"
    assert main(["datalist", "check", str(clean), "--root", str(root), "--decode"]) == 0
    assert capsys.readouterr().out.strip() == f"{clean}: 3 entries, all good"
    assert len(read_list(clean, root)) == 3


def test_cli_bad_root_is_one_line(planted, capsys):
    list_file, root = planted
    assert main(["datalist", "check", str(list_file), "--root", str(root / "nope")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tame: error: image root not found") and "\n" not in err
