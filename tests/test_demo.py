"""The demo pipeline end to end in its reduced-size mode (the full run is `make demo`)."""

from __future__ import annotations

import ast
import logging
import re
from pathlib import Path

import pytest

import tame.demo
from tame.demo.pipeline import run_demo
from tame.demo.sizes import QUICK

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "demo.yaml"


@pytest.mark.slow
def test_quick_demo_runs_end_to_end_and_reuses_stages(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(logging.getLogger("tame"), "propagate", True)  # setup_logging (a CLI test) may have cut it
    caplog.set_level(logging.INFO, logger="tame")
    report = run_demo(CONFIG, tmp_path, QUICK)
    assert report == tmp_path / "report.html"
    page = report.read_text()
    for method in (
        "tame",
        "gradcam (layer3)",
        "gradcam (layer4)",
        "gradcam++ (layer3)",
        "gradcam++ (layer4)",
        "random",
        "p-tame",  # tame.demo.ptame: the same classifier explained by P-TAME
    ):
        assert f"<td>{method}</td>" in page
    assert "on its better layer" in page and "worst class" in page
    assert (tmp_path / "tune" / "val.txt").is_file()  # the held-out tuning split
    figures = ("tame/loss_curve.png", "lr_find/lr_find.png", "compare/compare.png", "gallery/00.png")
    for figure in (*figures, "composites/00.png", "sanity/compare_sanity.png"):
        assert (tmp_path / figure).stat().st_size > 1000, figure
        assert figure in page
    assert (tmp_path / "report.md").read_text().startswith("# TAME demo")
    assert re.search(  # Grad-CAM on the layer the check stage chose on the tuning split
        r"\| class \| TAME PG \| Grad-CAM \((layer\d)\) PG \| TAME AD\(15%\) \| Grad-CAM \(\1\) AD\(15%\) \|",
        (tmp_path / "report.md").read_text(),
    )
    assert "\n| circle | " in (tmp_path / "report.md").read_text()  # per-class rows named, not numbered
    assert "Class sensitivity (report split" in page and "Sanity checks on" in page
    assert "P-TAME's map never reads" in (tmp_path / "report.md").read_text()  # P-TAME's AM is sanity-checked too
    assert re.search(r"\| tame \| [\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+ \|", (tmp_path / "report.md").read_text())
    caplog.clear()
    run_demo(CONFIG, tmp_path, QUICK)
    printed = caplog.text
    for stage in ("data", "classifier", "lr-find", "tame", "p-tame", "compare", "check", "sanity"):
        assert f"[{stage}] reusing" in printed


def test_the_demo_calls_functions_not_command_lines():
    """No module of the demo imports the CLI (or a command module) to run a stage through an argument list."""
    for path in Path(tame.demo.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        imported = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
        imported += [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
        assert not [name for name in imported if name == "tame.cli" or name.startswith("tame.commands")], path
        assert "tame.cli" not in path.read_text(), path


def test_occlusion_keeps_the_object_or_hides_it():
    """ClassifierRecipe.occlusion_fraction blacks out only background; hidden_fraction blacks out the object."""
    import torch

    from tame.demo.classifier import ClassifierRecipe, occlude

    torch.manual_seed(0)
    images = torch.rand(8, 3, 64, 64) + 0.1  # no pixel is black
    shapes = torch.zeros(8, 64, 64, dtype=torch.bool)
    shapes[:, 20:40, 24:44] = True
    labels = torch.arange(8)
    recipe = ClassifierRecipe(occlusion_fraction=0.25, hidden_fraction=0.25)
    kept, kept_labels, hidden = occlude(images, labels, shapes, recipe)
    assert kept.shape[0] == 6 and hidden.shape[0] == 2 and kept_labels.tolist() == [0, 1, 4, 5, 6, 7]
    assert torch.equal(kept[:2][:, :, shapes[0]], images[:2][:, :, shapes[0]])  # the object stays
    assert torch.equal(kept[2:], images[4:])  # the rest is untouched
    assert (hidden[:, :, shapes[0]] == 0).all() and (hidden[:, :, ~shapes[0]] > 0).any()


def test_object_masks_follow_the_loaders_flips():
    import numpy as np
    import torch

    from tame.data.sharding import EpochPlan
    from tame.demo.classifier import ObjectMasks

    masks = torch.zeros(2, 4, 4, dtype=torch.bool)
    masks[:, :, 0] = True  # the left column
    augment = np.array([[0.5, 0.5, 0.9], [0.5, 0.5, 0.1]], dtype=np.float32)  # flip if < 0.5
    plan = EpochPlan(np.array([0, 1]), np.zeros(2, dtype=bool), augment, batch_size=2)
    batch = ObjectMasks(masks).batch(plan, 0)
    assert batch[0, :, 0].all() and not batch[0, :, 3].any()
    assert batch[1, :, 3].all() and not batch[1, :, 0].any()


class _Recorder(__import__("torch").nn.Module):
    """A linear classifier that remembers the images it was given."""

    def __init__(self, classes: int = 3) -> None:
        import torch

        super().__init__()
        torch.manual_seed(0)
        self.linear = torch.nn.Linear(3 * 4 * 4, classes)
        self.seen = None

    def forward(self, images):
        self.seen = images
        return self.linear(images.flatten(1))


def test_classifier_loss_is_label_smoothed_cross_entropy_plus_uniform_blanks():
    import torch
    import torch.nn.functional as F

    from tame.demo.classifier import ClassifierRecipe, classifier_loss

    images, labels = torch.rand(8, 3, 4, 4) + 0.1, torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    net = _Recorder()
    plain = classifier_loss(net, lambda x: x, images, labels, ClassifierRecipe())
    assert torch.allclose(plain, F.cross_entropy(net.linear(images.flatten(1)), labels, label_smoothing=0.1))
    blanks = classifier_loss(net, lambda x: x, images, labels, ClassifierRecipe(blank_fraction=0.25))
    assert net.seen.shape[0] == 10 and (net.seen[8:] == 0).all()  # two blank images joined the batch
    blank_logits = net.linear(torch.zeros(2, 48))
    uniform = -F.log_softmax(blank_logits, dim=1).mean(dim=1).mean()
    assert torch.allclose(blanks, (8 * plain + 2 * uniform) / 10)


def test_dimmed_images_get_targets_mixed_with_uniform_by_their_brightness():
    """dim_fraction: the first images are multiplied by t ~ U(0, 1); the target is w * smoothed + (1 - w) / K with
    w = min(1, t / dim_knee)."""
    import torch
    import torch.nn.functional as F

    from tame.demo.classifier import ClassifierRecipe, classifier_loss

    images, labels = torch.rand(8, 3, 4, 4) + 0.1, torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    net = _Recorder()
    for knee in (1.0, 0.25):
        torch.manual_seed(3)
        t = torch.rand(4)
        torch.manual_seed(3)
        loss = classifier_loss(net, lambda x: x, images, labels, ClassifierRecipe(dim_fraction=0.5, dim_knee=knee))
        assert torch.allclose(net.seen[:4], images[:4] * t[:, None, None, None])
        assert torch.equal(net.seen[4:], images[4:])
        w = torch.cat([(t / knee).clamp(max=1), torch.ones(4)])[:, None]
        smoothed = F.one_hot(labels, 3).float() * 0.9 + 0.1 / 3
        targets = w * smoothed + (1 - w) / 3
        expected = -(targets * F.log_softmax(net.linear(net.seen.flatten(1)), dim=1)).sum(1).mean()
        assert torch.allclose(loss, expected)


def test_the_demo_seed_reaches_tame_and_bad_seeds_or_threads_are_refused(tmp_path):
    import pytest

    from tame.demo.pipeline import demo_config
    from tame.errors import TameError

    cfg, overrides = demo_config(CONFIG, tmp_path, QUICK, seed=3)
    assert cfg.train.seed == 3 and "train.seed=3" in overrides
    for seed, threads in ((-1, None), (0, 0)):
        with pytest.raises(TameError, match="--seed must be >= 0 and --threads >= 1"):
            run_demo(CONFIG, tmp_path, QUICK, seed=seed, threads=threads)
    assert not any(tmp_path.iterdir())  # refused before anything was written


def test_a_classifier_recipe_out_of_range_is_refused():
    import pytest

    from tame.demo.classifier import ClassifierRecipe
    from tame.errors import TameError

    for bad in ({"dim_fraction": 1.5}, {"dim_knee": 0.0}, {"blank_fraction": -0.1}):
        with pytest.raises(TameError, match="classifier recipe"):
            ClassifierRecipe(**bad)
