"""`tame runs` on damaged run folders (third probe, issue 25 items 15, 19 and the empty-checkpoint part of 22): a
record nested 100,000 deep was a RecursionError, one bad config.yaml ended the command with no table, a 0-byte
``epoch_<20 digits>.pt`` showed as an epoch. Now each unreadable folder is a row saying why (exit 1), the others
are shown as before, and empty checkpoint files are not counted."""

from __future__ import annotations

import json
import re

import pytest

CONFIG = "model: {name: resnet50, layers: [layer2, layer3, layer4], version: TAME}\ntrain: {epochs: 2, max_lr: 0.001}\n"


def _run(folder, config: str | None = CONFIG, record: str | None = None):
    folder.mkdir(parents=True)
    if config is not None:
        (folder / "config.yaml").write_text(config)
    if record is not None:
        (folder / "train_record.json").write_text(record)
    return folder


def _good(root):
    record = {"epochs": [{"epoch": 1, "step": 4}, {"epoch": 2, "step": 8}], "best": {"epoch": 2, "AD(15%)": 30.5}}
    folder = _run(root / "good", record=json.dumps(record))
    (folder / "best.pt").write_bytes(b"x")  # the record names a best epoch: its file is there
    return folder


BAD = {
    "record-nested-100000-deep": (None, "[" * 100_000 + "]" * 100_000, r"unreadable: .*nested too deep"),
    "record-dict-nested-deep": (None, '{"a":' * 100_000 + "1" + "}" * 100_000, r"nested too deep"),
    "config-not-yaml": ("train: {epochs: 2\n", None, r"unreadable: .*config\.yaml: unreadable \(.*not valid YAML"),
    "config-nested-deep": ("a: " + "[" * 5000 + "]" * 5000 + "\n", None, r"nested deeper than"),
    "record-epochs-not-a-list": (CONFIG, '{"epochs": 7}', r"unreadable: unexpected content .*TypeError"),
    "record-best-a-string": (CONFIG, '{"best": "yes"}', r"unreadable: unexpected content .*best is"),
    "config-epochs-text": ("train: {epochs: many}\n", None, r"unexpected content .*ValueError"),
}


@pytest.mark.parametrize("name", BAD)
def test_an_unreadable_run_is_a_row_and_the_others_are_shown(cli_here, tmp_path, name):
    config, record, message = BAD[name]
    _good(tmp_path)
    _run(tmp_path / "bad", config=config, record=record)
    result = cli_here("runs", tmp_path)
    assert result.code == 1 and "Traceback" not in result.err, result.err
    lines = result.out.splitlines()
    assert lines[0].startswith("run ") and len(lines) == 3
    good, bad = (next(line for line in lines if line.startswith(str(tmp_path / n))) for n in ("good", "bad"))
    assert good.split()[-1] == "finished" and "30.50" in good
    assert re.search(message, bad), bad


def test_a_readable_folder_alone_still_exits_0(cli_here, tmp_path):
    _good(tmp_path)
    assert cli_here("runs", tmp_path / "good").code == 0


@pytest.mark.parametrize(
    "name", ["epoch_99999999999999999999.pt", "epoch_2.pt", "step_8.pt"], ids=["20-digits", "epoch", "step"]
)
def test_empty_checkpoint_files_are_not_epochs(cli_here, tmp_path, name):
    folder = _run(tmp_path / "run")
    (folder / "epoch_1.pt").write_bytes(b"x" * 10)  # a real (non-empty) one
    (folder / name).write_bytes(b"")
    result = cli_here("runs", folder)
    assert result.code == 0, result.err
    row = result.out.splitlines()[1]
    assert " 1/2 " in row and row.endswith("stopped at step 0"), row


def test_an_absurd_epoch_number_is_not_counted_even_with_bytes(cli_here, tmp_path):
    folder = _run(tmp_path / "run")
    (folder / "epoch_99999999999999999999.pt").write_bytes(b"x")
    row = cli_here("runs", folder).out.splitlines()[1]
    assert " 0/2 " in row and "finished" not in row
