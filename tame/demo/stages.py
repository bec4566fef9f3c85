"""Stages of the demo that are reused on a rerun while their inputs are unchanged (``stage.json`` in each folder)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

from tame.io import write_text_atomic

logger = logging.getLogger(__name__)


class Stage:
    """A folder whose ``stage.json`` records the inputs it was made from; reused while they are unchanged."""

    def __init__(self, folder: Path, inputs: dict, force: bool) -> None:
        self.folder, self.inputs = folder, inputs
        self.record = folder / "stage.json"
        self.done = not force and self.record.is_file() and json.loads(self.record.read_text()).get("inputs") == inputs

    def finish(self, outputs: dict) -> dict:
        write_text_atomic(self.record, json.dumps({"inputs": self.inputs, "outputs": outputs}, indent=1))
        return outputs

    def outputs(self) -> dict:
        return json.loads(self.record.read_text())["outputs"]


def run_stage(name: str, folder: Path, inputs: dict, force: bool, make: Callable[[], dict]) -> dict:
    """The outputs of stage ``name``: its recorded ones when ``folder`` was made from ``inputs``, else ``make()``'s
    (with the seconds it took), recorded."""
    stage = Stage(folder, inputs, force)
    if stage.done:
        logger.info("tame demo: [%s] reusing %s", name, folder)
        return stage.outputs()
    logger.info("tame demo: [%s] ...", name)
    started = time.perf_counter()
    outputs = make()
    outputs["seconds"] = round(time.perf_counter() - started, 1)
    return stage.finish(outputs)
