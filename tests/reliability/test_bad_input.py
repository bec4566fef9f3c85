"""Every case of the bad-input corpus through `datalist check`, `train`, `eval` and `explain` (docs/RELIABILITY.md).

Each command either accepts the input, reports it in its documented way (`check`: every bad line, exit 1;
`explain`: skipped and counted), or stops with one line ``tame: error: ...``, exit 2 and no traceback.
"""

from __future__ import annotations

import re
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
import yaml
from bad_inputs import CASES, NUM_CLASSES, Case, make_image_root, write_case_list
from train_helpers import tiny_overrides

from tame.config import load_config

REPO = Path(__file__).resolve().parents[2]


def _outcome_params(commands: tuple[str, ...]) -> list:
    return [
        pytest.param(case, command, id=f"{command}-{case.name}")
        for case in CASES
        for command in commands
        if case.outcomes.get(command, "n/a") != "n/a"
    ]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """The image root (good images + one file per image case), a tiny AM checkpoint and a base config."""
    from tame.models import TameModel

    folder = tmp_path_factory.mktemp("corpus")
    root = make_image_root(folder)
    cfg = load_config(
        None,
        tiny_overrides(
            root,
            folder / "unused",
            "train.epochs=1",
            "train.checkpoint_every=0",
            "data.batch_size=2",
            "log.log_every=0",
            "log.images_per_epoch=0",
        ),
    )
    (folder / "base.yaml").write_text(yaml.safe_dump(asdict(cfg)))
    torch.manual_seed(0)
    TameModel.from_config(cfg.model, input_size=cfg.data.crop).save_attention(folder / "am.pt")
    return folder


def case_config(case: Case, corpus: Path, tmp_path: Path, *extra: str) -> Path:
    """The base config with the case's (possibly bad) keys, as a user would write it in YAML."""
    path = tmp_path / "config.yaml"
    if "yaml" in case.extra:
        path.write_bytes(case.extra["yaml"].replace(b"{folder}", str(corpus).encode()))
        return path
    raw = yaml.safe_load((corpus / "base.yaml").read_text())
    in_file = () if case.extra.get("command_line") else case.overrides
    for item in (*in_file, *extra):
        key, _, value = item.partition("=")
        *sections, last = key.split(".")
        node = raw
        for section in sections:
            node = node.setdefault(section, {})
        node[last] = yaml.safe_load(value)
    path.write_text(yaml.safe_dump(raw, allow_unicode=True))
    return path


def command_line_overrides(case: Case) -> tuple[str, ...]:
    return case.overrides if case.extra.get("command_line") else ()


def case_list(case: Case, corpus: Path, tmp_path: Path) -> Path:
    return write_case_list(case, corpus, f"list-{re.sub(r'[^a-z0-9]+', '-', case.name)}-{tmp_path.name}")


@pytest.mark.parametrize(("case", "command"), _outcome_params(("check", "check --decode")))
def test_datalist_check(cli, corpus, tmp_path, case, command):
    decode = ["--decode"] if command.endswith("--decode") else []
    args = ["datalist", "check", case_list(case, corpus, tmp_path), "--root", corpus / "images"]
    result = cli(*args, "--num-classes", NUM_CLASSES, "--workers", 1, *decode)
    expected = case.outcomes[command]
    if expected == "ok":
        assert result.code == 0 and "all good" in result.out, result.out + result.err
    else:
        assert expected == "bad"
        assert result.code == 1, result.out + result.err
        bad = [line for line in result.out.splitlines() if re.search(r"\.txt:3: ", line)]
        assert len(bad) == 1 and re.search(case.message, bad[0]), result.out
        assert "1 bad" in result.out.splitlines()[-1]
    assert "Traceback" not in result.err


@pytest.mark.parametrize(("case", "command"), _outcome_params(("train", "train (label_source=list)")))
def test_train(cli, corpus, tmp_path, case, command):
    extra = ["train.label_source=list"] if "label_source=list" in command else []
    config = case_config(case, corpus, tmp_path, f"output_dir={tmp_path / 'run'}", *extra)
    train_list = f"data.train_list={case_list(case, corpus, tmp_path)}"
    result = cli("train", "--config", config, train_list, *command_line_overrides(case))
    if case.outcomes[command] == "ok":
        assert result.code == 0, result.err
        assert (tmp_path / "run" / "epoch_1.pt").is_file()
    else:
        result.assert_one_error_line(case.message)
        if case.kind != "config":
            assert "list-" in result.err  # names the list file (and its line)


@pytest.mark.parametrize(("case", "command"), _outcome_params(("eval",)))
def test_eval(cli, corpus, tmp_path, case, command):
    config = case_config(case, corpus, tmp_path)
    out = tmp_path / "eval"
    args = ["--list", case_list(case, corpus, tmp_path), "--root", corpus / "images", "--out", out]
    checkpoint = ["--checkpoint", corpus / "am.pt"]
    result = cli("eval", "--config", config, *checkpoint, *args, "--no-progress", *command_line_overrides(case))
    if case.outcomes[command] == "ok":
        assert result.code == 0, result.err
        assert (out / f"tame_{Path(args[1]).stem}.csv").is_file()
    else:
        result.assert_one_error_line(case.message)


@pytest.mark.parametrize(("case", "command"), _outcome_params(("explain",)))
def test_explain(cli, corpus, tmp_path, case, command):
    config = case_config(case, corpus, tmp_path)
    target = corpus / "images" / (case.file or case.line.split()[0] if case.kind != "config" else "good1.jpg")
    good = corpus / "images" / "good0.jpg"
    args = ["--config", config, "--checkpoint", corpus / "am.pt", "--out", tmp_path, *command_line_overrides(case)]
    result = cli("explain", good, target, *args)
    expected = case.outcomes[command]
    if expected == "error":
        result.assert_one_error_line(case.message)
        return
    assert result.code == 0, result.err
    explained, skipped = (2, 0) if expected == "ok" else (1, 1)
    assert f"explained {explained} images (" in result.out and f"skipped {skipped};" in result.out, result.out
    if expected == "skip":
        assert f"skipped {target}: " in result.out


@pytest.fixture(autouse=True)
def no_payload_ran(corpus):
    yield
    assert not (corpus / "pwned-by-yaml").exists()


def test_every_case_is_in_the_reliability_table():
    table = (REPO / "docs" / "RELIABILITY.md").read_text()
    for case in CASES:
        assert f"| {case.name} |" in table, case.name
