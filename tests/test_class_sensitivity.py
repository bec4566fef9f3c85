"""Class sensitivity (issue #28): composites, tile regions and the score, on maps whose answer is known by hand."""

from __future__ import annotations

import pytest
import torch

from tame.errors import TameError
from tame.metrics.class_sensitivity import class_sensitivity, compose, tile_regions


def test_compose_places_tiles_left_right_and_in_a_grid():
    images = torch.arange(4.0).view(1, 4, 1, 1, 1).expand(1, 4, 1, 2, 3)  # tile t is all t, 2 x 3 pixels
    two = compose(images[:, :2])
    assert two.shape == (1, 1, 2, 6)
    assert two[0, 0].tolist() == [[0, 0, 0, 1, 1, 1]] * 2
    four = compose(images)
    assert four.shape == (1, 1, 4, 6)
    assert four[0, 0, :, 0].tolist() == [0, 0, 2, 2] and four[0, 0, :, 5].tolist() == [1, 1, 3, 3]


def test_tile_regions_partition_the_composite_as_compose_lays_it_out():
    regions = tile_regions(4, 4, 6)
    assert regions.shape == (4, 4, 6) and regions.sum(dim=0).eq(1).all()
    laid_out = compose(torch.arange(4.0).view(1, 4, 1, 1, 1).expand(1, 4, 1, 2, 3))[0, 0]
    for t in range(4):
        assert laid_out[regions[t]].eq(t).all()
    with pytest.raises(TameError, match="2 or 4"):
        tile_regions(3, 4, 6)
    with pytest.raises(TameError, match="does not split"):
        tile_regions(2, 4, 5)


def _two(left: list[float], right: list[float]) -> torch.Tensor:
    """A [1, 2, 1, 4] pair of maps: slot t's map as 4 pixels, the first two in the left tile, the last two in the
    right one."""
    return torch.tensor([[left, right]]).view(1, 2, 1, 4)


def test_a_selective_pair_and_its_mass_shares():
    maps = _two([3, 1, 0, 0], [0, 1, 1, 2])  # left class: all mass left; right class: 3 of 4 right
    score = class_sensitivity(maps, tile_regions(2, 1, 4))
    assert score.own_mass.tolist() == [[1.0, 0.75]]
    assert score.peak_own.tolist() == [[True, True]] and score.selective.tolist() == [True]


def test_the_same_map_for_both_classes_is_not_selective():
    maps = _two([0, 1, 4, 0], [0, 1, 4, 0])  # "an object is here" (the right one) whatever the class
    score = class_sensitivity(maps, tile_regions(2, 1, 4))
    assert score.own_mass.tolist() == [[0.2, 0.8]]
    assert score.on_own.tolist() == [[False, True]] and score.selective.tolist() == [False]


def test_peak_and_mass_must_agree():
    # the left class peaks left but holds more mass right: not on its own object
    maps = _two([5, 0, 3, 3], [0, 0, 0, 1])
    score = class_sensitivity(maps, tile_regions(2, 1, 4))
    assert score.peak_own.tolist() == [[True, True]]
    assert score.on_own.tolist() == [[False, True]] and not score.selective.item()


def test_an_all_zero_map_is_on_no_object():
    maps = _two([0, 0, 0, 0], [0, 0, 1, 0])
    score = class_sensitivity(maps, tile_regions(2, 1, 4))
    assert score.own_mass.tolist() == [[0.0, 1.0]]
    assert score.on_own.tolist() == [[False, True]]


def test_four_tiles_own_tile_must_hold_the_most_mass():
    regions = tile_regions(4, 2, 2)  # one pixel per tile: pixel (r, c) is tile 2r + c
    maps = torch.zeros(1, 4, 2, 2)
    maps[0, 0] = torch.tensor([[4.0, 3.0], [2.0, 1.0]])  # own tile 0 holds 40 %: the most, and the peak
    maps[0, 1] = torch.tensor([[1.0, 1.0], [1.0, 1.0]])  # ties: the peak is pixel 0 (tile 0), not own
    maps[0, 2] = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    maps[0, 3] = torch.tensor([[0.0, 0.0], [0.0, 2.0]])
    score = class_sensitivity(maps, regions)
    assert score.own_mass[0].tolist() == pytest.approx([0.4, 0.25, 1.0, 1.0])
    assert score.on_own.tolist() == [[True, False, True, True]] and not score.selective.item()


def test_shapes_are_checked():
    with pytest.raises(TameError, match=r"\[N, T, H, W\]"):
        class_sensitivity(torch.rand(2, 3, 4, 4), tile_regions(2, 4, 4))


# -- the protocol on images: composites drawn from a list ------------------------------------------------------------
def test_plan_draws_distinct_labels_and_is_seeded():
    from tame.evaluation.class_sensitivity import plan_composites

    labels = [0, 0, 1, 1, 2, 2, 2]
    plan = plan_composites(labels, 2, 50)
    assert plan.shape == (50, 2)
    assert all(labels[a] != labels[b] for a, b in plan.tolist())
    assert torch.equal(plan, plan_composites(labels, 2, 50))
    assert not torch.equal(plan, plan_composites(labels, 2, 50, seed=1))
    with pytest.raises(TameError, match="at least 4 labels"):
        plan_composites(labels, 4, 1)


class _ColourExplainer:
    """Marks the pixels whose red value is the explained label's colour (label / 10): a perfectly class-sensitive
    map on composites of flat images coloured by label; ``blind`` marks every non-black pixel instead."""

    def __init__(self, blind: bool = False) -> None:
        self.blind = blind
        self.classifier = torch.nn.Linear(1, 1)

    def explain(self, images, classes):
        from tame.models import Explanation

        red = images[:, 0]  # [n, H, W]
        own = (red - classes.view(-1, 1, 1) / 10).abs() < 0.02  # [n, H, W]: the label's colour
        maps = (red > 0).float() if self.blind else own.float()
        return Explanation(maps, classes, torch.zeros(len(images), 3))


@pytest.fixture
def coloured_list(tmp_path):
    """A list of 6 flat 8 x 8 PNGs, two per label 1..3, each with red = label / 10."""
    from PIL import Image

    from tame.data.lists import ListEntry

    entries = []
    for label in (1, 2, 3):
        for copy in range(2):
            name = f"{label}_{copy}.png"
            Image.new("RGB", (8, 8), (round(255 * label / 10), 0, 0)).save(tmp_path / name)
            entries.append(ListEntry(name, label, 0))
    return entries, tmp_path


def test_measure_scores_a_class_sensitive_and_a_blind_explainer(coloured_list):
    from tame.evaluation.class_sensitivity import CompositeSet, measure

    entries, root = coloured_list
    source = CompositeSet(entries, root, resize=8, crop=8)
    names = ["zero", "one", "two", "three"]
    sensitive = measure(_ColourExplainer(), source, 2, count=10, batch=3, names=names)
    assert (sensitive.composites, sensitive.selective, sensitive.own_mass, sensitive.peak) == (10, 100.0, 100.0, 100.0)
    assert [c["name"] for c in sensitive.per_class] == ["one", "two", "three"]
    assert sum(c["slots"] for c in sensitive.per_class) == 20
    # the blind map covers both tiles evenly: half its mass on its own tile, its peak (pixel 0) always in the left one
    blind = measure(_ColourExplainer(blind=True), source, 2, count=10, batch=3)
    assert (blind.selective, blind.own_mass, blind.peak) == (0.0, 50.0, 50.0)
    assert blind.columns() == {"CS selective": 0.0, "CS mass": 50.0, "CS peak": 50.0}


def test_compare_and_eval_write_class_sensitivity_and_sanity_checks(tmp_path):
    import csv
    import json

    from train_helpers import eval_config

    from tame.cli import main
    from tame.data.synthetic import make_synthetic
    from tame.evaluation import compare

    synthetic = make_synthetic(tmp_path / "data", classes=4, train_per_class=1, val_per_class=2, size=32)
    (tmp_path / "config.yaml").write_text(f"""
model: {{name: test_resnet, pretrained: false, num_classes: 4, layers: [layer2, layer3, layer4]}}
data: {{val_root: {synthetic.root}, eval_list: {synthetic.val_list}, backend: torch, batch_size: 4, workers: 0,
       resize: 32, crop: 32}}
output_dir: {tmp_path / "run"}
""")
    out = tmp_path / "cmp"
    options = dict(config=tmp_path / "config.yaml", road=False, progress=False, composites=6)
    compare(eval_config(methods=["gradcam", "random"], class_sensitivity=4, sanity_checks=3, out=out, **options))
    report = json.loads((out / "compare.json").read_text())["class_sensitivity"]
    assert set(report) == {"gradcam", "random"} and report["gradcam"]["tiles"] == 4
    assert report["random"]["composites"] == 6 and sum(c["slots"] for c in report["random"]["per_class"]) == 24
    assert "Class sensitivity on 6 composites" in (out / "compare.md").read_text()
    rows = list(csv.DictReader((out / "compare_class_sensitivity.csv").open()))
    assert [(r["method"], r["label"]) for r in rows[:2]] == [("gradcam", "all"), ("gradcam", "0")]
    assert float(rows[0]["selective"]) == pytest.approx(report["gradcam"]["selective"], abs=1e-4)
    sanity = json.loads((out / "compare.json").read_text())["sanity"]
    assert sanity["random"]["images"] == 3 and sanity["random"]["random_logit"]["ssim"] == pytest.approx(1.0)
    assert "Sanity checks on 3 images" in (out / "compare.md").read_text()
    assert (out / "compare_sanity.png").is_file() and (out / "compare_sanity.csv").read_text().count("\n") == 17

    common = ["--config", str(tmp_path / "config.yaml"), "--no-road", "--no-progress", "--composites", "6"]
    args = ["eval", *common, "--method", "gradcam", "--class-sensitivity", "--out", str(tmp_path / "eval")]
    assert main(args) == 0
    run = json.loads((tmp_path / "eval" / "gradcam_val.json").read_text())
    assert run["class_sensitivity"][""]["tiles"] == 2
    assert (tmp_path / "eval" / "gradcam_val_class_sensitivity.csv").is_file()


def test_a_fixed_size_classifier_is_refused_in_one_line(coloured_list):
    """A ViT takes only its own input size: a composite twice as wide is a TameError naming why, not a traceback."""
    from examples.torchvision_vit import tiny
    from tame.evaluation.class_sensitivity import CompositeSet, measure
    from tame.methods import create_explainer
    from tame.models import Classifier, TameModel

    entries, root = coloured_list
    torch.manual_seed(0)
    classifier = Classifier(tiny(num_classes=4, image_size=8 * 4), "tiny_vit", [0.5] * 3, [0.5] * 3)
    model = TameModel(classifier, ["encoder.layers.encoder_layer_3.ln_1"], input_size=32).eval()
    with create_explainer("tame", model) as explainer:
        assert explainer.explain(torch.rand(1, 3, 32, 32)).maps.shape[-2:] == (32, 32)  # its own size works
        with pytest.raises(TameError, match=r"does not take a 32 x 64 composite of 2 images .*fixed input size"):
            measure(explainer, CompositeSet(entries, root, resize=32, crop=32), 2, count=2)
