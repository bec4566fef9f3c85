"""Writes that destroyed what was there (third probe, issue 25 items 1-4): device nodes and FIFOs replaced by files,
symlinks cut, a checkpoint or list overwritten by the command reading it, a user's train.txt overwritten by synth.
Every refusal is one line, exit 2 (``datalist check``: exit 1 when nothing good is left to write), nothing written."""

from __future__ import annotations

import os
import stat

import pytest
from bad_inputs import write_jpeg

from tame.errors import TameError
from tame.io import save_atomic, write_bytes_atomic, write_text_atomic


def _targets(tmp_path):
    """Paths that are not regular files, each made in ``tmp_path`` (nothing outside it can be harmed)."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    folder = tmp_path / "folder"
    folder.mkdir()
    (tmp_path / "to-dev-full").symlink_to("/dev/full")
    (tmp_path / "to-folder").symlink_to(folder)
    return {
        "fifo": fifo,
        "folder": folder,
        "link-to-device": tmp_path / "to-dev-full",
        "link-to-folder": tmp_path / "to-folder",
    }


WRITERS = {
    "text": lambda path: write_text_atomic(path, "x"),
    "bytes": lambda path: write_bytes_atomic(path, b"x"),
    "torch": lambda path: save_atomic({"x": 1}, path),
}


@pytest.mark.parametrize("kind", ["fifo", "folder", "link-to-device", "link-to-folder"])
@pytest.mark.parametrize("write", WRITERS)
def test_a_target_that_is_not_a_regular_file_is_refused_and_kept(tmp_path, kind, write):
    target = _targets(tmp_path)[kind]
    before = os.lstat(target)
    with pytest.raises(TameError, match=r"cannot write .*not a regular file; give the name of a file"):
        WRITERS[write](target)
    after = os.lstat(target)
    assert stat.S_IFMT(after.st_mode) == stat.S_IFMT(before.st_mode) and after.st_ino == before.st_ino
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo", "folder", "to-dev-full", "to-folder"]


def test_dev_full_itself_is_refused_without_touching_it():
    before = os.stat("/dev/full")
    with pytest.raises(TameError, match="/dev/full: it is a device"):
        write_text_atomic("/dev/full", "x")
    assert os.stat("/dev/full").st_ino == before.st_ino and stat.S_ISCHR(os.stat("/dev/full").st_mode)


@pytest.mark.parametrize("chain", [1, 2], ids=["link", "link-to-link"])
def test_a_symlink_is_written_through_and_kept(tmp_path, chain):
    real = tmp_path / "data" / "real.csv"
    real.parent.mkdir()
    real.write_text("old\n")
    link = real
    for index in range(chain):
        (tmp_path / f"link{index}.csv").symlink_to(link)
        link = tmp_path / f"link{index}.csv"
    write_text_atomic(link, "new\n")
    assert link.is_symlink() and real.read_text() == "new\n"
    assert not [p for p in real.parent.iterdir() if p.name != "real.csv"]  # no temporary file left


def test_a_dangling_symlink_creates_its_target(tmp_path):
    (tmp_path / "link.txt").symlink_to("made.txt")
    write_text_atomic(tmp_path / "link.txt", "x")
    assert (tmp_path / "link.txt").is_symlink() and (tmp_path / "made.txt").read_text() == "x"


def test_a_symlink_loop_is_refused(tmp_path):
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("a")
    with pytest.raises(TameError, match="cannot write .*a: it is a symlink"):
        write_text_atomic(tmp_path / "a", "x")


@pytest.fixture
def images(tmp_path):
    root = tmp_path / "images"
    root.mkdir()
    for index in range(3):
        write_jpeg(root / f"{index}.jpg", seed=index)
    listing = tmp_path / "list.txt"
    listing.write_text("0.jpg 0\n1.jpg 1\nmissing.jpg 2\n")
    return root, listing


def _same_file_spellings(path):
    """``path`` itself, spelled with ``./``, through a symlink and through a hard link."""
    folder = path.parent
    (folder / "sym").symlink_to(path)
    os.link(path, folder / "hard")
    return [path, folder / "." / path.name, folder / "sym", folder / "hard"]


@pytest.mark.parametrize("spelling", range(4), ids=["same", "dot", "symlink", "hard-link"])
def test_check_write_clean_refuses_its_own_input(cli_here, images, spelling):
    root, listing = images
    target = _same_file_spellings(listing)[spelling]
    result = cli_here("datalist", "check", listing, "--root", root, "--write-clean", target, "--workers", 1)
    result.assert_one_error_line(r"refusing to write .*: it is the input .*list\.txt")
    assert listing.read_text() == "0.jpg 0\n1.jpg 1\nmissing.jpg 2\n"


@pytest.mark.parametrize("existing", [None, "keep me\n"], ids=["new-file", "existing-file"])
def test_check_write_clean_with_no_good_line_writes_nothing(cli_here, images, tmp_path, existing):
    _, listing = images
    empty_root = tmp_path / "empty"
    empty_root.mkdir()
    out = tmp_path / "clean.txt"
    if existing:
        out.write_text(existing)
    result = cli_here("datalist", "check", listing, "--root", empty_root, "--write-clean", out, "--workers", 1)
    assert result.code == 1 and f"no good lines: {out} not written" in result.out
    assert (out.read_text() if existing else out.exists()) == (existing or False)


def test_check_write_clean_to_a_device_is_refused_before_checking(cli_here, images, tmp_path):
    root, listing = images
    (tmp_path / "out.txt").symlink_to("/dev/full")
    result = cli_here("datalist", "check", listing, "--root", root, "--write-clean", tmp_path / "out.txt")
    result.assert_one_error_line(r"out\.txt: it is a device")
    assert result.out == ""  # refused before the check ran


@pytest.mark.parametrize("spelling", range(4), ids=["same", "dot", "symlink", "hard-link"])
def test_export_refuses_to_overwrite_the_checkpoint_it_reads(cli_here, tmp_path, spelling):
    checkpoint = tmp_path / "epoch_4.pt"
    save_atomic({"attention": {}}, checkpoint)
    data = checkpoint.read_bytes()
    target = _same_file_spellings(checkpoint)[spelling]
    result = cli_here("export", "--checkpoint", checkpoint, "-o", target, "model.name=test_resnet")
    result.assert_one_error_line(r"refusing to write .*: it is the input .*epoch_4\.pt")
    assert checkpoint.read_bytes() == data


def test_export_refuses_to_overwrite_its_config(cli_here, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("model: {name: test_resnet}\n")
    result = cli_here("export", "--config", config, "--checkpoint", tmp_path / "am.pt", "-o", config)
    result.assert_one_error_line(r"it is the input .*run\.yaml")
    assert config.read_text() == "model: {name: test_resnet}\n"


@pytest.mark.parametrize("name", ["train.txt", "classes.txt", "val.txt", "boxes.json"])
def test_synth_keeps_a_users_lists(cli_here, tmp_path, name):
    mine = tmp_path / name
    mine.write_text("my own\n")
    result = cli_here("datalist", "synth", tmp_path, "--classes", 2, "--train-per-class", 1, "--val-per-class", 1)
    result.assert_one_error_line(rf"refusing to write the synthetic set into .*: it already holds {name}")
    assert mine.read_text() == "my own\n" and sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_synth_rewrites_its_own_earlier_set_and_an_interrupted_one(cli_here, tmp_path):
    args = ("datalist", "synth", tmp_path, "--classes", 2, "--train-per-class", 1, "--val-per-class", 1, "--size", 32)
    assert cli_here(*args).code == 0
    first = (tmp_path / "train.txt").read_bytes()
    assert cli_here(*args).code == 0 and (tmp_path / "train.txt").read_bytes() == first
    (tmp_path / "val.txt").unlink()  # as if killed half-way: the marker boxes.json is written first
    (tmp_path / "boxes.json").write_text('{"size": 32, "seed": 0, "classes": ["circle", "square"], "images": {}}')
    assert cli_here(*args).code == 0 and (tmp_path / "val.txt").is_file()
