"""The list parser: the real reference lists, every kind of bad line (with its line number), writing lists."""

from __future__ import annotations

import pytest

from tame.data.lists import escapes_root, parse_list, read_list, write_list
from tame.errors import TameError


@pytest.mark.parametrize(
    ("name", "count"), [("Validation_2000.txt", 2000), ("Evaluation_2000.txt", 2000), ("val.txt", 50000)]
)
def test_reference_lists_parse(reference_lists, name, count):
    entries = read_list(reference_lists / name, num_classes=1000)
    assert len(entries) == count
    assert [entry.line for entry in entries] == list(range(1, count + 1))
    assert all(entry.path.startswith("ILSVRC2012_val_") and entry.path.endswith(".JPEG") for entry in entries)
    assert all(0 <= entry.label < 1000 for entry in entries)


def test_reference_subsets_are_disjoint_and_agree_with_val(reference_lists):
    val = {entry.path: entry.label for entry in read_list(reference_lists / "val.txt")}
    validation = read_list(reference_lists / "Validation_2000.txt")
    evaluation = read_list(reference_lists / "Evaluation_2000.txt")  # its lines end with a stray space
    assert not {entry.path for entry in validation} & {entry.path for entry in evaluation}
    assert all(val[entry.path] == entry.label for entry in validation + evaluation)


def test_stray_whitespace_and_blank_lines(tmp_path):
    path = tmp_path / "list.txt"
    path.write_text("a.jpg 1 \n\n  b/c.png\t2\r\n   \nd.jpg 0")
    assert [tuple(entry) for entry in read_list(path)] == [("a.jpg", 1, 1), ("b/c.png", 2, 3), ("d.jpg", 0, 5)]


@pytest.mark.parametrize(
    ("line", "kind", "words"),
    [
        ("a.jpg", "malformed", "expected 'path label'"),
        ("a.jpg 3 4", "malformed", "3 field(s)"),
        ("a.jpg x", "malformed", "not a non-negative integer"),
        ("a.jpg -1", "malformed", "not a non-negative integer"),
        ("a.jpg 1.0", "malformed", "not a non-negative integer"),
        ("a.jpg 10", "label", "out of range 0..9"),
        ("../a.jpg 1", "path", "leaves the image root"),
        ("x/../../a.jpg 1", "path", "leaves the image root"),
        ("/abs/a.jpg 1", "path", "leaves the image root"),
    ],
)
def test_bad_lines_are_reported_with_their_line(tmp_path, line, kind, words):
    path = tmp_path / "list.txt"
    path.write_text(f"good.jpg 0\n{line}\ngood2.jpg 1\n")
    entries, problems = parse_list(path, num_classes=10)
    assert [entry.line for entry in entries] == [1, 3]
    assert len(problems) == 1 and problems[0].line == 2 and problems[0].kind == kind
    assert words in problems[0].message
    with pytest.raises(TameError, match=rf"^{path}:2: .*{words.split('(')[0]}") as err:
        read_list(path, num_classes=10)
    assert "\n" not in str(err.value)


def test_read_list_counts_the_other_bad_lines(tmp_path):
    path = tmp_path / "list.txt"
    path.write_text("a.jpg x\nb.jpg 1\n../c.jpg 2\nd.jpg\n")
    with pytest.raises(TameError, match=r"list.txt:1: a.jpg: .*and 2 more bad lines.*tame datalist check"):
        read_list(path)


def test_non_utf8_line(tmp_path):
    path = tmp_path / "list.txt"
    path.write_bytes(b"a.jpg 1\n\xff\xfe.jpg 2\n")
    _, problems = parse_list(path)
    assert problems[0].line == 2 and "UTF-8" in problems[0].message


def test_missing_list_root_and_empty_list(tmp_path):
    with pytest.raises(TameError, match="list file not found"):
        read_list(tmp_path / "nope.txt")
    path = tmp_path / "list.txt"
    path.write_text("\n \n")
    with pytest.raises(TameError, match="no entries"):
        read_list(path)
    with pytest.raises(TameError, match="image root not found"):
        read_list(path, root=tmp_path / "missing")


def test_escapes_root():
    assert not escapes_root("a/b.jpg") and not escapes_root("a/../b.jpg") and not escapes_root("..a.jpg")
    assert escapes_root("../b.jpg") and escapes_root("/b.jpg") and escapes_root("a/../../b.jpg")
    assert escapes_root("..") and escapes_root("C:\\b.jpg") and escapes_root("..\\b.jpg")


def test_write_list_round_trip_and_refusals(tmp_path):
    path = tmp_path / "out" / "list.txt"
    assert write_list(path, [("a.jpg", 3), ("b/c.jpg", 0)]) == 2
    assert path.read_text() == "a.jpg 3\nb/c.jpg 0\n"
    assert [(entry.path, entry.label) for entry in read_list(path)] == [("a.jpg", 3), ("b/c.jpg", 0)]
    for bad in ("../a.jpg", "my photo.jpg", "/a.jpg"):
        with pytest.raises(TameError, match="cannot write"):
            write_list(path, [("ok.jpg", 1), (bad, 1)])
    assert path.read_text() == "a.jpg 3\nb/c.jpg 0\n"  # the old list is untouched
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["list.txt"]  # no temporary file left


def test_atomic_path_replaces_on_success_and_cleans_up_on_failure(tmp_path):
    from tame.io import atomic_path, write_bytes_atomic

    target = tmp_path / "deep" / "map.npy"
    write_bytes_atomic(target, b"old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.suffix == ".npy"
        tmp.write_bytes(b"half")
        raise RuntimeError("interrupted")
    assert target.read_bytes() == b"old"
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"new")
        assert target.read_bytes() == b"old"  # nothing visible before the block ends
    assert target.read_bytes() == b"new"
    assert [p.name for p in target.parent.iterdir()] == ["map.npy"]
