"""The demo's P-TAME run: the same frozen classifier explained by P-TAME (``model.version: P-TAME``), beside TAME.

Offline there is no pretrained ResNet-18 to read features from, so the auxiliary network is a second copy of the
demo's own trained classifier (its ``layer1``..``layer4``, ``model.features``); the explained classifier is only
called on images and masked images, as P-TAME does for any model. Optimiser as P-TAME's (AdamW with amsgrad, one LR,
weight decay on every parameter, the version's loss weights); the epochs, batch and regulariser are the demo's
TAME run's, and the LR (1e-3) is the demo's choice: P-TAME's 1e-4 is for one epoch of ImageNet (40k steps), the demo
has a few hundred steps. The compare stage lists it as ``p-tame``.
"""

from __future__ import annotations

import shutil

from tame.checkpoint.naming import epoch_file
from tame.config import load_config

LAYERS = "[layer1, layer2, layer3, layer4]"
MAX_LR = 1e-3
WEIGHT_DECAY = 2.4266552933845608e-4  # P-TAME's ResNet-50 recipe


def ptame_overrides(demo) -> list[str]:
    """The demo config's overrides turned into the P-TAME run (``demo``: a :class:`tame.demo.pipeline.DemoRun`)."""
    return [
        *demo.overrides,
        "model.version=P-TAME",
        "model.layers=[]",
        f"model.features.name={demo.size.classifier}",
        "model.features.pretrained=false",
        f"model.features.weights={demo.out / 'classifier' / 'classifier.pth'}",
        f"model.features.num_classes={demo.size.classes}",
        f"model.features.layers={LAYERS}",
        "train.optimizer=adamw",
        "train.bias_lr_factor=1",
        "train.bias_weight_decay=true",
        f"train.weight_decay={WEIGHT_DECAY!r}",
        f"train.max_lr={MAX_LR!r}",
        "train.resume=none",
        f"output_dir={demo.out / 'p-tame'}",
    ]


def ptame_stage(demo, classifier: dict, force: bool) -> dict:
    """Train P-TAME (stage ``p-tame``, reused while its inputs stay the same); outputs its last epoch's checkpoint."""
    from tame.demo.stages import run_stage
    from tame.engine.train import train

    folder, overrides = demo.out / "p-tame", ptame_overrides(demo)

    def make() -> dict:
        shutil.rmtree(folder, ignore_errors=True)  # a stale run's checkpoints would be refused
        train(load_config(demo.config_path, overrides))
        return {"checkpoint": str(epoch_file(folder, demo.size.tame_epochs)), "max_lr": MAX_LR}

    return run_stage("p-tame", folder, demo.inputs(classifier=classifier, ptame=overrides), force, make)
