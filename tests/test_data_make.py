"""``tame datalist make``: lists from folder trees (ImageNet synset order) and flat folders, seeded subsets."""

from __future__ import annotations

import pytest
from PIL import Image

from tame.cli import main
from tame.data.lists import ListEntry, read_list
from tame.data.make import list_from_flat, list_from_tree, random_subsets
from tame.errors import TameError


def _image(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (200, 10, 10)).save(path)


def test_tree_of_synsets_gets_imagenet_indices(tmp_path):
    for path in ("n01443537/b.JPEG", "n01440764/a.JPEG", "n01440764/deep/c.png", "n15075141/z.jpg"):
        _image(tmp_path / path)
    (tmp_path / "n01440764" / "notes.txt").write_text("not an image")
    (tmp_path / "n02000000").mkdir()  # no images: not a class
    entries, labels = list_from_tree(tmp_path)
    assert labels == {"n01440764": 0, "n01443537": 1, "n15075141": 999}
    assert [(entry.path, entry.label) for entry in entries] == [
        ("n01440764/a.JPEG", 0),
        ("n01440764/deep/c.png", 0),
        ("n01443537/b.JPEG", 1),
        ("n15075141/z.jpg", 999),
    ]


def test_tree_of_other_names_gets_sorted_order(tmp_path):
    for path in ("dog/1.jpg", "cat/2.jpg", "n01440764/3.jpg"):
        _image(tmp_path / path)
    _, labels = list_from_tree(tmp_path)
    assert labels == {"cat": 0, "dog": 1, "n01440764": 2}


def test_tree_errors(tmp_path):
    with pytest.raises(TameError, match="image folder not found"):
        list_from_tree(tmp_path / "missing")
    with pytest.raises(TameError, match="no class folders"):
        list_from_tree(tmp_path)
    _image(tmp_path / "cat" / "my photo.jpg")
    with pytest.raises(TameError, match="whitespace"):
        list_from_tree(tmp_path)


def test_flat_folder_with_label_file(tmp_path):
    for name in ("a.jpg", "b.jpg"):
        _image(tmp_path / "flat" / name)
    labels = tmp_path / "labels.txt"
    labels.write_text("b.jpg 7\na.jpg 3\ngone.jpg 1\n")
    entries, unused = list_from_flat(tmp_path / "flat", labels)
    assert [(entry.path, entry.label) for entry in entries] == [("a.jpg", 3), ("b.jpg", 7)] and unused == 1
    _image(tmp_path / "flat" / "c.jpg")
    with pytest.raises(TameError, match=r"c.jpg: no label in .*labels.txt \(1 of 3 images"):
        list_from_flat(tmp_path / "flat", labels)


def test_random_subsets_are_disjoint_and_seeded():
    entries = [ListEntry(f"{i}.jpg", i % 10, i + 1) for i in range(100)]
    first, second = random_subsets(entries, [20, 30], seed=0)
    assert len(first) == 20 and len(second) == 30
    assert not {e.path for e in first} & {e.path for e in second}
    assert random_subsets(entries, [20, 30], seed=0) == [first, second]
    assert random_subsets(entries, [20, 30], seed=1)[0] != first
    with pytest.raises(TameError, match="do not fit"):
        random_subsets(entries, [60, 50], seed=0)


def test_cli_make_tree_and_subsets(tmp_path, capsys):
    for i in range(6):
        _image(tmp_path / "tree" / ("cat" if i % 2 else "dog") / f"{i}.jpg")
    out, classes = tmp_path / "all.txt", tmp_path / "classes.txt"
    assert main(["datalist", "make", "--tree", str(tmp_path / "tree"), "-o", str(out), "--classes", str(classes)]) == 0
    assert classes.read_text() == "0 cat\n1 dog\n"
    assert len(read_list(out, tmp_path / "tree")) == 6
    val, test = tmp_path / "val.txt", tmp_path / "test.txt"
    args = ["datalist", "make", "--list", str(out), "--subset", f"{val}=2", "--subset", f"{test}=3", "--seed", "4"]
    assert main(args) == 0
    assert len(read_list(val)) == 2 and len(read_list(test)) == 3
    assert not {e.path for e in read_list(val)} & {e.path for e in read_list(test)}
    assert main(["datalist", "make", "--list", str(out)]) == 2
    assert "nothing to write" in capsys.readouterr().err


def test_outputs_may_not_overwrite_a_source_or_each_other(tmp_path):
    from tame.errors import TameError
    from tame.io import check_output_paths

    source = tmp_path / "val.txt"
    with pytest.raises(TameError, match="it is the input"):
        check_output_paths([source], [tmp_path / "a.txt", tmp_path / "sub" / ".." / "val.txt"])
    with pytest.raises(TameError, match="same file"):
        check_output_paths([source], [tmp_path / "a.txt", f"{tmp_path}/./a.txt"])
    check_output_paths([source, None], [tmp_path / "a.txt", tmp_path / "b.txt"])


def test_datalist_make_refuses_to_overwrite_its_source(tmp_path, capsys):
    source = tmp_path / "val.txt"
    source.write_text("".join(f"img{i}.jpg {i % 3}\n" for i in range(10)))
    before = source.read_bytes()
    assert main(["datalist", "make", "--list", str(source), "--subset", f"{source}=4"]) == 2
    assert "it is the input" in capsys.readouterr().err
    assert source.read_bytes() == before
    a = tmp_path / "a.txt"
    assert main(["datalist", "make", "--list", str(source), "--subset", f"{a}=2", "--subset", f"{a}=3"]) == 2
    assert "same file" in capsys.readouterr().err and not a.exists()
