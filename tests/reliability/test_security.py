"""A downloaded checkpoint, weights file or config can never run code; list paths cannot leave the image root.

The payloads are real: each test first shows that an unsafe loader (``torch.load(weights_only=False)``,
``yaml.unsafe_load``) runs them, then that every ``tame`` entry point refuses them with one line.
"""

from __future__ import annotations

import ast
import os
import shutil
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
import yaml
from train_helpers import make_training_data, one_thread, tiny_overrides  # noqa: F401

from tame.config import load_config

PACKAGE = Path(__file__).resolve().parents[2] / "tame"
pytestmark = pytest.mark.usefixtures("one_thread")


class Payload:
    """Unpickling this runs ``touch target``."""

    def __init__(self, target: Path) -> None:
        self.target = str(target)

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> Path:
    """Training data, a config, a good AM checkpoint and a malicious one (a real payload, proven to work)."""
    from tame.models import TameModel

    folder = tmp_path_factory.mktemp("security")
    data = make_training_data(folder / "data")
    cfg = load_config(None, tiny_overrides(data, folder / "unused", "train.epochs=1"))
    cfg.data.val_root, cfg.data.eval_list = str(data), str(data / "val.txt")
    (folder / "config.yaml").write_text(yaml.safe_dump(asdict(cfg)))
    torch.manual_seed(0)
    model = TameModel.from_config(cfg.model, input_size=cfg.data.crop)
    model.save_attention(folder / "am.pt")
    state = {k: v for k, v in model.attention.state_dict().items()}
    state["fuser.weight"] = Payload(folder / "pwned")
    torch.save({"attention": state, "step": 4}, folder / "evil.pt")
    torch.load(folder / "evil.pt", weights_only=False)  # proof: an unsafe load runs the payload
    assert (folder / "pwned").exists()
    (folder / "pwned").unlink()
    return folder


def _entry_points(folder: Path, tmp_path: Path) -> dict[str, list]:
    """Every command line that reads a checkpoint or weights file, pointed at the malicious one."""
    config, evil, good = folder / "config.yaml", folder / "evil.pt", folder / "am.pt"
    train = ["train", "--config", config, f"output_dir={tmp_path / 'run'}"]
    return {
        "train resume": [*train, f"train.resume={evil}"],
        "train model.weights": [*train, f"model.weights={evil}"],
        "eval --checkpoint": ["eval", "--config", config, "--checkpoint", evil, "--out", tmp_path, "--no-progress"],
        "eval model.weights": [
            *("eval", "--config", config, "--checkpoint", good, "--out", tmp_path, f"model.weights={evil}"),
        ],
        "explain --checkpoint": ["explain", folder / "data" / "val.txt", "--config", config, "--checkpoint", evil],
        "explain --weights": ["explain", folder / "x.jpg", "--config", config, "--checkpoint", good, "--weights", evil],
        "lr-find model.weights": ["lr-find", "--config", config, f"model.weights={evil}", "--out", tmp_path],
        "datalist predict --weights": [
            *("datalist", "predict", folder / "data" / "val.txt", "--root", folder / "data"),
            *("--model", "test_resnet", "--weights", evil, "-o", tmp_path / "out.txt", "--backend", "torch"),
        ],
    }


ENTRY_POINTS = list(_entry_points(Path("."), Path(".")))


@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
def test_malicious_pickle_is_refused_by_every_entry_point(cli, setup, tmp_path, entry_point):
    result = cli(*_entry_points(setup, tmp_path)[entry_point])
    result.assert_one_error_line(r"evil\.pt: refused to load: .*GLOBAL posix\.system")
    assert not (setup / "pwned").exists()


def test_malicious_newest_checkpoint_is_skipped_on_auto_resume(cli, setup, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(setup / "evil.pt", run / "epoch_1.pt")
    result = cli("train", "--config", setup / "config.yaml", f"output_dir={run}", "train.max_steps_per_epoch=1")
    assert result.code == 0, result.err
    assert "tame: warning: skipping checkpoint epoch_1.pt: " in result.err and "refused to load" in result.err
    assert not (setup / "pwned").exists()
    assert torch.load(run / "epoch_1.pt", weights_only=True)["step"] == 1  # retrained from scratch, replaced


def test_load_attention_and_safetensors(setup, tmp_path):
    from safetensors.torch import save_file

    from tame.errors import TameError
    from tame.models import TameModel

    cfg = load_config(setup / "config.yaml")
    model = TameModel.from_config(cfg.model, input_size=cfg.data.crop)
    with pytest.raises(TameError, match="refused to load"):
        model.load_attention(setup / "evil.pt")
    state = {k: v.contiguous() for k, v in model.attention.state_dict().items()}
    save_file(state, str(tmp_path / "am.safetensors"))
    model.load_attention(tmp_path / "am.safetensors")
    (tmp_path / "cut.safetensors").write_bytes((tmp_path / "am.safetensors").read_bytes()[:100])
    with pytest.raises(TameError, match="not a readable safetensors file"):
        model.load_attention(tmp_path / "cut.safetensors")
    assert not (setup / "pwned").exists()


def test_yaml_tags_never_build_objects(cli, setup, tmp_path):
    payload = f'model: !!python/object/apply:os.system ["touch {tmp_path / "pwned"}"]\n'
    yaml.unsafe_load(payload)  # proof: an unsafe YAML load runs it
    assert (tmp_path / "pwned").exists()
    (tmp_path / "pwned").unlink()
    (tmp_path / "evil.yaml").write_text(payload)
    for command in (["train"], ["eval", "--checkpoint", setup / "am.pt"], ["explain", "x.jpg", "--checkpoint", "a"]):
        result = cli(*command, "--config", tmp_path / "evil.yaml")
        result.assert_one_error_line(r"evil\.yaml: not valid YAML \(could not determine a constructor for the tag")
    result = cli("train", "--config", setup / "config.yaml", f"model.name=!!python/object/apply:os.system [{payload}]")
    result.assert_one_error_line(r"the value is not valid YAML \(could not determine a constructor")
    assert not (tmp_path / "pwned").exists()


# -- the package source ------------------------------------------------------------------------------------------
def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else ""
            if isinstance(func, ast.Attribute):
                owner = func.value.id if isinstance(func.value, ast.Name) else "?"
                name = f"{owner}.{func.attr}"
            yield node, name


def test_no_code_execution_paths_in_the_package():
    """No shell, no eval/exec, no pickle or unsafe YAML, and every torch.load with weights_only=True (an AST scan of
    tame/: a plain grep would also match ``model.eval()`` and docstrings)."""
    forbidden = {
        *("eval", "exec", "os.system", "os.popen", "os.execv", "os.execvp", "pickle.load", "pickle.loads"),
        *("marshal.loads", "yaml.load", "yaml.unsafe_load", "yaml.full_load", "shelve.open", "dill.load"),
    }
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = path.read_text()
        assert "shell=True" not in source, path
        for node, name in _calls(ast.parse(source)):
            where = f"{path.relative_to(PACKAGE.parent)}:{node.lineno}"
            if name in forbidden:
                found.append(f"{where}: {name}(")
            if any(k.arg == "shell" for k in node.keywords):
                found.append(f"{where}: shell=")
            if name == "torch.load":
                safe = [k for k in node.keywords if k.arg == "weights_only" and getattr(k.value, "value", None) is True]
                if not safe:
                    found.append(f"{where}: torch.load without weights_only=True")
    assert found == []


@pytest.mark.parametrize("path", ["../x.jpg", "a/../../x.jpg", "/etc/passwd", "..", "..\\x.jpg", "C:\\x.jpg"])
def test_list_paths_cannot_leave_the_image_root(tmp_path, path):
    from tame.data.lists import escapes_root, parse_list

    assert escapes_root(path)
    (tmp_path / "list.txt").write_text(f"{path} 0\n")
    entries, problems = parse_list(tmp_path / "list.txt")
    assert entries == [] and [p.kind for p in problems] == ["path"]
