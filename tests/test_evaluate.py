"""The evaluation loop and ``tame eval`` / ``tame compare``: the batched numbers equal the one-image-at-a-time
protocol, 2 ranks equal 1, padding is dropped, known answers for localisation, bad input is one line."""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from train_helpers import eval_config

from tame.cli import main
from tame.data.boxes import box_in_crop
from tame.data.sharding import plan_epoch
from tame.evaluation import evaluate
from tame.methods import Explainer, TameExplainer
from tame.metrics import ad_ic
from tame.models import Classifier, Explanation, TameModel, create_classifier

SIZE = 64


def confident_model(seed: int = 0) -> TameModel:
    """A random tiny TAME whose classifier is confident (scaled logits), so AD and IC are not degenerate."""
    torch.manual_seed(seed)
    classifier = create_classifier("test_resnet", pretrained=False, num_classes=10)
    classifier.net.fc.weight.mul_(10)
    model = TameModel(classifier, ["layer2", "layer3", "layer4"], input_size=SIZE)
    with torch.no_grad():  # non-trivial BatchNorm statistics in the AM
        for bn in model.attention.bns:
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
    return model.eval()


def data(samples: int = 8, seed: int = 1) -> torch.Tensor:
    """Random images of random brightness (the masked copies of dim ones can gain confidence: IC > 0)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(samples, 3, SIZE, SIZE, generator=generator) * torch.rand(samples, 1, 1, 1, generator=generator)


def drop_as_the_authors(values: list[float], fraction: float) -> list[float]:
    """docs/METHOD.md, "AD and IC", pixel by pixel: with q = 1 - fraction, t the int(q·n)-th smallest value and
    keep = ceil((1 - q)·n), values below t become 0, then the first ties (== t) in raster order while more than
    keep are positive."""
    if fraction == 1:
        return list(values)
    q = 1 - fraction
    threshold, keep = sorted(values)[int(q * len(values)) - 1], math.ceil((1 - q) * len(values))
    kept = [0.0 if v < threshold else v for v in values]
    surplus = sum(v > 0 for v in kept) - keep
    for i, v in enumerate(kept):
        if surplus < 1:
            break
        if v == threshold:
            kept[i], surplus = 0.0, surplus - 1
    return kept


def test_the_pixel_by_pixel_rule_keeps_the_later_ties():
    values = [0.5, 0.2, 0.5, 0.9, 0.5, 0.5, 0.1, 0.5]  # 8 pixels; 50 %: t = the 4th smallest = 0.5, keep 4
    # below t: 0.2, 0.1 -> 0; positive: 6, surplus 2 -> the first two 0.5s (indices 0, 2) -> 0
    assert drop_as_the_authors(values, 0.5) == [0.0, 0.0, 0.0, 0.9, 0.5, 0.5, 0.0, 0.5]
    maps = torch.tensor(values, dtype=torch.float64).view(1, 2, 4)
    assert ad_ic.keep_top_fraction(maps, 0.5).flatten().tolist() == drop_as_the_authors(values, 0.5)


@torch.no_grad()
def one_by_one(model: TameModel, images: torch.Tensor) -> tuple[dict, dict]:
    """docs/METHOD.md, "AD and IC", literally: one image at a time, all K maps, the authors' rule for the top pixels."""
    drops, increases = {p: [] for p in ad_ic.LEVELS}, {p: [] for p in ad_ic.LEVELS}
    for x in images.split(1):
        logits, features = model.features(x)
        probabilities = torch.softmax(logits, dim=1)[0]
        k = int(probabilities.argmax())
        y = probabilities[k].item()
        c = model.attention(features)[:, k : k + 1]  # [1, 1, h, w] of all K maps
        c = (c - c.min()) / (c.max() - c.min())
        explanation = F.interpolate(c, size=x.shape[-2:], mode="bilinear", align_corners=False)[0, 0].flatten()
        values = explanation.tolist()
        for p in ad_ic.LEVELS:
            kept = torch.tensor(drop_as_the_authors(values, p), dtype=explanation.dtype)
            o = torch.softmax(model.predict(x * kept.view(1, 1, *x.shape[-2:])), dim=1)[0, k].item()
            drops[p].append(max(0.0, y - o) / y)
            increases[p].append(float(o > y))
    ad = {ad_ic.level_name(p): 100 * sum(v) / len(v) for p, v in drops.items()}
    ic = {ad_ic.level_name(p): 100 * sum(v) / len(v) for p, v in increases.items()}
    return ad, ic


def test_batched_ad_ic_equals_the_one_image_at_a_time_protocol():
    model, images = confident_model(), data()
    expected_ad, expected_ic = one_by_one(model, images)
    for batch_size, chunk in ((3, None), (8, 5)):
        batches = [(b, torch.zeros(len(b), dtype=torch.long)) for b in images.split(batch_size)]
        result = evaluate(TameExplainer(model), batches, chunk=chunk)
        assert result.num_samples == 8
        # float tolerance: the map of one class (a gather of fuser weights) and of all K (a conv) differ in the last
        # bits, which can reorder a few near-equal pixels at the top-k boundary
        assert result.ad == pytest.approx(expected_ad, abs=0.02)
        assert result.ic == expected_ic
    assert 0 < result.ad["15%"] < 100 and 0 < result.ic["15%"] < 100  # not a degenerate case


def test_padding_samples_are_dropped():
    model, images = confident_model(), data(6)
    plain = evaluate(
        TameExplainer(model),
        [(images[:5], torch.zeros(5, dtype=torch.long)), (images[5:], torch.zeros(1, dtype=torch.long))],
    )
    padded = torch.cat([images, images[:2]])
    labels = torch.tensor([0, 0, 0, 0, 0, 0, -1, -1])
    result = evaluate(TameExplainer(model), [(padded[:5], labels[:5]), (padded[5:], labels[5:])])
    assert result.num_samples == 6
    assert result.ad == pytest.approx(plain.ad, abs=1e-4) and result.ic == plain.ic


def sharded(images: torch.Tensor, regions: torch.Tensor, rank: int, world_size: int, batch_size: int) -> list:
    """What a rank's eval loader yields (the real sharding plan: positions r, r+W, ...; padding labelled -1)."""
    plan = plan_epoch(
        len(images), train=False, rank=rank, world_size=world_size, batch_size=batch_size, seed=0, epoch=0
    )
    batches = []
    for k in range(plan.num_batches):
        rows = plan.batch(k)
        index = torch.from_numpy(plan.indices[rows])
        labels = torch.where(torch.from_numpy(plan.padding[rows]), -1, 0)
        batches.append((images[index], labels, regions[index]))
    return batches


def object_regions(samples: int) -> torch.Tensor:
    regions = torch.zeros(samples, SIZE, SIZE, dtype=torch.bool)
    for i in range(samples):
        regions[i, 4 * i % 40 : 4 * i % 40 + 20, 10:40] = True
    return regions


EVAL_OPTIONS = dict(road_levels=(0.2, 0.8), localisation=True)


def _rank_main(rank: int, world_size: int, init_file: str, out_file: str) -> None:
    torch.set_num_threads(1)  # two processes share the cores
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        model, images = confident_model(), data(11)
        batches = sharded(images, object_regions(11), rank, world_size, batch_size=3)
        result = evaluate(TameExplainer(model), batches, **EVAL_OPTIONS)
        if rank == 0:
            with open(out_file, "w") as handle:
                json.dump(result.columns() | {"n": result.num_samples}, handle)
    finally:
        torch.distributed.destroy_process_group()


def test_two_ranks_give_the_numbers_of_one(tmp_path):
    import torch.multiprocessing as mp

    out = tmp_path / "two.json"
    mp.spawn(_rank_main, args=(2, str(tmp_path / "init"), str(out)), nprocs=2, join=True)
    two = json.loads(out.read_text())
    one = evaluate(TameExplainer(confident_model()), sharded(data(11), object_regions(11), 0, 1, 3), **EVAL_OPTIONS)
    assert two.pop("n") == one.num_samples == 11
    expected = one.columns()
    for column in expected:
        if column != "ms/img":
            assert two[column] == pytest.approx(expected[column], abs=1e-4), column


class ObjectExplainer(Explainer):
    """A perfect explainer for images whose object is the bright part: the map is the object itself."""

    def explain(self, images, classes=None):
        logits = self.classifier(images)
        return Explanation((images.mean(dim=1) > 0.5).float(), logits.argmax(dim=1), logits)


def test_a_map_that_is_the_object_gets_pointing_game_100():
    images = torch.zeros(4, 3, SIZE, SIZE)
    regions = torch.zeros(4, SIZE, SIZE, dtype=torch.bool)
    for i, (x0, y0) in enumerate([(0, 0), (30, 5), (12, 40), (44, 44)]):
        images[i, :, y0 : y0 + 20, x0 : x0 + 16] = 1.0
        regions[i, y0 : y0 + 20, x0 : x0 + 16] = True
    classifier = create_classifier("test_resnet", pretrained=False, num_classes=3)
    result = evaluate(
        ObjectExplainer(classifier), [(images, torch.zeros(4, dtype=torch.long), regions)], localisation=True
    )
    assert result.pointing_game == 100.0 and result.energy_pointing_game == pytest.approx(100.0)


def test_road_in_the_loop_matches_imputing_image_by_image():
    from tame.metrics.road import noisy_linear_imputation, removal_mask

    model, images = confident_model(), data(3)
    result = evaluate(TameExplainer(model), [(images, torch.zeros(3, dtype=torch.long))], road_levels=(0.3,))
    explanation = model.explain(images)
    correct, probability = 0.0, 0.0
    for i in range(3):
        removed = removal_mask(explanation.maps[i : i + 1], 0.3, "morf")
        imputed = noisy_linear_imputation(images[i : i + 1], removed)
        p = torch.softmax(model.predict(imputed), dim=1)[0]
        correct += float(p.argmax() == explanation.classes[i])
        probability += p[explanation.classes[i]].item()
    assert result.road["morf"]["30%"]["accuracy"] == pytest.approx(100 * correct / 3)
    assert result.road["morf"]["30%"]["probability"] == pytest.approx(probability / 3, abs=1e-5)


def test_boxes_follow_the_eval_transform():
    # 64 px image, shorter side to 72 (x1.125), centre crop 64 at offset 4
    assert box_in_crop([8, 8, 24, 32], (64, 64), 72, 64) == [5.0, 5.0, 23.0, 32.0]
    assert box_in_crop([8, 8, 24, 32], (64, 64), 64, 64) == [8, 8, 24, 32]


# -- the commands --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A synthetic set (12 images), a saved classifier, a config, and a folder with two epoch checkpoints."""
    from tame.data.synthetic import make_synthetic

    root = tmp_path_factory.mktemp("eval")
    synthetic = make_synthetic(root / "data", classes=3, train_per_class=1, val_per_class=4, size=SIZE)
    model = confident_model()
    torch.save(model.classifier.net.state_dict(), root / "classifier.pt")
    (root / "config.yaml").write_text(f"""
model: {{name: test_resnet, pretrained: false, weights: {root / "classifier.pt"}, num_classes: 10,
        layers: [layer2, layer3, layer4]}}
data: {{val_root: {synthetic.root}, eval_list: {synthetic.val_list}, backend: torch, batch_size: 5, workers: 0,
       resize: 72, crop: {SIZE}}}
output_dir: {root / "run"}
""")
    for epoch in (1, 2):
        with torch.no_grad():
            model.attention.fuser.weight.add_(0.1 * epoch)
        state = {k: v.clone() for k, v in model.attention.state_dict().items()}
        torch.save({"attention": state, "epoch": epoch, "meta": model.attention_meta()}, root / f"epoch_{epoch}.pt")
    return root, synthetic


def read_csv(path):
    with open(path) as handle:
        return list(csv.reader(handle))


def test_eval_command_writes_the_reference_csv_for_every_epoch(run_dir, capsys):
    root, synthetic = run_dir
    code = main(
        [
            "eval",
            "--config",
            str(root / "config.yaml"),
            "--checkpoint",
            str(root),
            "--out",
            str(root / "out"),
            "--boxes",
            str(synthetic.boxes),
            "--no-progress",
        ]
    )
    assert code == 0
    rows = read_csv(root / "out" / "tame_val.csv")
    assert rows[0][:7] == ["epoch", "AD(100%)", "IC(100%)", "AD(50%)", "IC(50%)", "AD(15%)", "IC(15%)"]
    assert rows[0][7:] == ["PG", "EBPG", "ms/img"]
    assert [r[0] for r in rows[1:]] == ["1", "2"]
    report = json.loads((root / "out" / "tame_val.json").read_text())
    assert [r["num_samples"] for r in report["results"]] == [12, 12]
    assert "AD(100%)" in capsys.readouterr().out

    # the same numbers as the loop on the same images, for the last epoch
    from tame.config import load_config
    from tame.data import build_loader
    from tame.distributed import Dist
    from tame.models.registry import build_classifier

    cfg, classifier = build_classifier(load_config(root / "config.yaml"))  # the interpolation: the model's own
    model = TameModel.from_config(cfg.model, input_size=SIZE, classifier=classifier).eval()
    model.load_attention(root / "epoch_2.pt")
    loader = build_loader(cfg.data, synthetic.val_list, synthetic.root, train=False, dist=Dist.local())
    direct = evaluate(TameExplainer(model), loader)
    assert [float(v) for v in rows[2][1:7]] == pytest.approx(
        [v for k, v in direct.columns().items() if "(" in k], abs=1e-3
    )


def test_a_corrupt_epoch_keeps_the_rows_already_written(run_dir, tmp_path, capsys):
    import shutil

    root, _ = run_dir
    shutil.copy(root / "epoch_1.pt", tmp_path / "epoch_1.pt")
    (tmp_path / "epoch_2.pt").write_bytes(b"not a checkpoint")
    args = ["eval", "--config", str(root / "config.yaml"), "--checkpoint", str(tmp_path), "--no-progress"]
    assert main(args) == 2
    assert "epoch_2.pt" in capsys.readouterr().err
    assert [r[0] for r in read_csv(tmp_path / "eval" / "tame_val.csv")] == ["epoch", "1"]


def test_eval_command_runs_a_baseline(run_dir):
    root, _ = run_dir
    assert (
        main(
            [
                "eval",
                "--config",
                str(root / "config.yaml"),
                "--method",
                "gradcam",
                "--out",
                str(root / "out"),
                "--no-progress",
                "--max-samples",
                "5",
            ]
        )
        == 0
    )
    rows = read_csv(root / "out" / "gradcam_val.csv")
    assert len(rows) == 2 and rows[1][0] == ""


def test_compare_command_writes_table_and_chart(run_dir):
    root, synthetic = run_dir
    out = root / "compare"
    assert (
        main(
            [
                "compare",
                "--config",
                str(root / "config.yaml"),
                "--checkpoint",
                str(root / "epoch_2.pt"),
                "--methods",
                "tame",
                "gradcam",
                "rise",
                "--num-masks",
                "32",
                "--max-samples",
                "4",
                "--boxes",
                str(synthetic.boxes),
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    table = (out / "compare.md").read_text()
    for name in ("| tame |", "| gradcam |", "| rise |", "ROAD MORF acc", "EBPG", "ms/img"):
        assert name in table
    rows = read_csv(out / "compare.csv")
    assert [r[0] for r in rows] == ["method", "tame", "gradcam", "rise"]
    assert "ROAD-LERF-acc(90%)" in rows[0]
    assert (out / "compare.png").stat().st_size > 1000


@pytest.mark.parametrize(
    "case, message",
    [
        ("mismatch", "was trained with layers"),
        ("empty list", "no entries"),
        ("unknown method", "unknown method 'gradcan'; did you mean gradcam"),
        ("no epochs", "holds no epoch_N.pt files"),
        ("no checkpoint", "--checkpoint is required"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(run_dir, tmp_path, capsys, case, message):
    root, _ = run_dir
    args = [
        "eval",
        "--config",
        str(root / "config.yaml"),
        "--checkpoint",
        str(root / "epoch_1.pt"),
        "--out",
        str(tmp_path),
        "--no-progress",
    ]
    if case == "mismatch":
        torch.manual_seed(0)
        other = TameModel(
            Classifier(create_classifier("test_resnet", pretrained=False).net, "test_resnet", (0.5,) * 3, (0.5,) * 3),
            ["layer3", "layer4"],
            input_size=SIZE,
        )
        other.save_attention(tmp_path / "other.pt")
        args[4] = str(tmp_path / "other.pt")
    elif case == "empty list":
        (tmp_path / "empty.txt").write_text("\n")
        args += ["--list", str(tmp_path / "empty.txt")]
    elif case == "unknown method":
        args += ["--method", "gradcan"]
    elif case == "no epochs":
        args[4] = str(tmp_path)
    else:
        del args[3:5]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


# -- the typed API (tame.evaluation) -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "options, message",
    [
        (dict(batch_size=0), "eval.batch_size (--batch-size): must be at least 1, got 0"),
        (dict(chunk=-2), "eval.chunk (--chunk): must be at least 1, got -2"),
        (dict(max_samples=0), "eval.max_samples (--max-samples): must be at least 1, got 0"),
        (dict(num_masks=0), "eval.num_masks (--num-masks): must be at least 1, got 0"),
        (dict(road_workers=0), "eval.road_workers (--road-workers): must be at least 1, got 0"),
        (dict(class_sensitivity=3), "eval.class_sensitivity (--class-sensitivity): 2 or 4 images per composite"),
        (dict(sanity_checks=-1), "compare.sanity_checks (--sanity-checks): a number of images, got -1"),
        (dict(levels=(0.5, 0.0)), "eval.levels: must be fractions in (0, 1]"),
        (dict(pointing_tolerance=-1.0), "eval.pointing_tolerance (--pointing-tolerance): a distance in pixels"),
    ],
)
def test_eval_section_rejects_bad_values(options, message):
    """The eval / compare sections are checked with the rest of the config (tame.config.validate), once."""
    from tame.errors import TameError

    with pytest.raises(TameError, match=re.escape(message)):
        eval_config(checkpoint="run/", **options)


def test_method_names_are_resolved_and_tame_needs_a_checkpoint():
    from tame.errors import TameError
    from tame.evaluation.spec import compare_methods, eval_method

    assert eval_method(eval_config(method="GradCAM")) == "gradcam"  # a baseline needs no checkpoint
    assert compare_methods(eval_config(methods=["GradCAM", "random", "gradcam"])) == ("gradcam", "random")
    with pytest.raises(TameError, match=re.escape("compare.methods: name at least one method")):
        eval_config(methods=[])
    for bad, message in (
        (dict(methods=["tame"]), "--checkpoint is required to compare tame"),
        (dict(method="tame"), "--checkpoint is required for --method tame"),
        (dict(method="gradcan"), "unknown method 'gradcan'; did you mean gradcam"),
    ):
        with pytest.raises(TameError, match=re.escape(message)):
            (compare_methods if "methods" in bad else eval_method)(eval_config(**bad))


def test_eval_flags_are_generated_from_the_section_and_layer_over_the_file(tmp_path):
    """`tame eval`'s flags are the eval section's fields; a flag given wins over the file's key=value, one left out
    keeps it; compare's --road defaults on, eval's off (eval.road null)."""
    import argparse

    from tame.commands import compare as compare_command
    from tame.commands import eval as eval_command
    from tame.evaluation.spec import with_road

    parser = argparse.ArgumentParser()
    eval_command.add_arguments(parser)
    args = parser.parse_args(
        ["--config", "c.yaml", "eval.chunk=3", "eval.max_samples=9", "--chunk", "5", "--list", "l"]
    )
    args.config = None
    config = eval_command.load_run_config(args)
    assert (config.eval.chunk, config.eval.max_samples, config.eval.list_file) == (5, 9, "l")
    assert with_road(config, default=False).eval.road is False and with_road(config, default=True).eval.road is True
    parser = argparse.ArgumentParser()
    compare_command.add_arguments(parser)
    args = parser.parse_args(["--config", "c.yaml", "--no-road", "--sanity-checks", "--methods", "random"])
    args.config = None
    config = eval_command.load_run_config(args)
    assert (config.eval.road, config.compare.sanity_checks, config.compare.methods) == (False, 32, ["random"])
    assert with_road(config, default=True).eval.road is False


def test_run_evaluation_gives_the_numbers_of_the_eval_command(run_dir, tmp_path, capsys):
    from tame.evaluation import run_evaluation

    root, synthetic = run_dir
    config, boxes = root / "config.yaml", synthetic.boxes
    cli = ["eval", "--config", str(config), "--checkpoint", str(root), "--boxes", str(boxes), "--chunk", "7"]
    assert main([*cli, "--out", str(tmp_path / "cli"), "--no-progress"]) == 0
    assert "12 samples; wrote" in capsys.readouterr().out
    spec = eval_config(config=config, checkpoint=root, boxes=boxes, chunk=7, out=tmp_path / "api", progress=False)
    run = run_evaluation(spec, str(config))
    assert capsys.readouterr().out == ""  # the command prints; the API does not
    assert [label for label, _ in run.rows] == ["1", "2"]
    assert run.checkpoints == [root / "epoch_1.pt", root / "epoch_2.pt"]
    assert run.csv_path == tmp_path / "api" / "tame_val.csv" and run.json_path.is_file()
    command, api = read_csv(tmp_path / "cli" / "tame_val.csv"), read_csv(run.csv_path)
    timing = command[0].index("ms/img")
    assert [r[:timing] for r in api] == [r[:timing] for r in command]  # every number but the timing, as written
    for row, (_, result) in zip(command[1:], run.rows):
        assert [f"{v:.4f}" for k, v in result.columns().items() if k != "ms/img"] == row[1:timing]
    report = json.loads(run.json_path.read_text())
    assert report["config"] == str(config) and [r["epoch"] for r in report["results"]] == ["1", "2"]


def test_compare_api_without_tame_matches_run_evaluation(run_dir, tmp_path):
    from tame.evaluation import compare, run_evaluation

    root, synthetic = run_dir
    options = dict(config=root / "config.yaml", boxes=synthetic.boxes, max_samples=6, road=False, progress=False)
    comparison = compare(eval_config(methods=["gradcam", "gradcam++"], out=tmp_path / "cmp", **options))
    assert [m for m, _ in comparison.rows] == ["gradcam", "gradcam++"] and comparison.checkpoint is None
    assert sorted(p.name for p in (tmp_path / "cmp").iterdir()) == sorted(
        ["compare.md", "compare.csv", "compare.json", "compare.png"]
    )
    alone = run_evaluation(eval_config(method="gradcam", out=tmp_path / "eval", **options)).rows[0][1]
    together = comparison.result("gradcam")
    assert together.num_samples == alone.num_samples == 6
    assert (together.ad, together.ic, together.pointing_game) == (alone.ad, alone.ic, alone.pointing_game)
    assert "| gradcam++ |" in comparison.markdown()


def test_compare_takes_one_cam_method_on_two_layers(run_dir, tmp_path):
    from tame.evaluation import compare, run_evaluation
    from tame.evaluation.spec import compare_methods

    root, synthetic = run_dir
    options = dict(config=root / "config.yaml", boxes=synthetic.boxes, max_samples=6, road=False, progress=False)
    spec = eval_config(methods=["GradCAM@layer3", "gradcam@layer4", "gradcam@layer3"], out=tmp_path / "cmp", **options)
    assert compare_methods(spec) == ("gradcam@layer3", "gradcam@layer4")
    comparison = compare(spec)
    assert [m for m, _ in comparison.rows] == ["gradcam (layer3)", "gradcam (layer4)"]
    for layer in ("layer3", "layer4"):
        alone = run_evaluation(eval_config(method="gradcam", layer=layer, out=tmp_path / layer, **options)).rows[0][1]
        together = comparison.result(f"gradcam ({layer})")
        assert (together.ad, together.ic, together.pointing_game) == (alone.ad, alone.ic, alone.pointing_game)
    assert comparison.result("gradcam (layer3)").ad != comparison.result("gradcam (layer4)").ad
    assert "| gradcam (layer4) |" in comparison.markdown()


@pytest.mark.parametrize("entry", ["random@layer3", "tame@layer3"])
def test_compare_refuses_a_layer_for_a_method_without_one(entry):
    from tame.errors import TameError
    from tame.evaluation.spec import compare_methods

    with pytest.raises(TameError, match="takes no target layer"):
        compare_methods(eval_config(methods=[entry], checkpoint="x.pt"))


LCAM_OVERRIDES = ["model.version=L-CAM-Img", "model.layers=[layer4]"]


def save_random_lcam(config: Path, path: Path) -> list[str]:
    """An untrained L-CAM-Img AM (seed 1) over ``config``'s classifier saved to ``path``; returns its overrides."""
    from tame.config import load_config

    cfg = load_config(config, LCAM_OVERRIDES)
    torch.manual_seed(1)
    TameModel.from_config(cfg.model, data_cfg=cfg.data).save_attention(path)
    return LCAM_OVERRIDES


def test_compare_puts_another_trained_version_in_the_same_table(run_dir, tmp_path):
    from tame.errors import TameError
    from tame.evaluation import compare, run_evaluation
    from tame.evaluation.spec import compare_methods

    root, synthetic = run_dir
    lcam_overrides = save_random_lcam(root / "config.yaml", tmp_path / "lcam.pt")
    options = dict(config=root / "config.yaml", boxes=synthetic.boxes, max_samples=6, road=False, progress=False)
    spec = eval_config(
        methods=["tame", f"lcam-img={tmp_path / 'lcam.pt'}", "gradcam"],
        checkpoint=root / "epoch_2.pt",
        out=tmp_path / "cmp",
        **options,
    )
    comparison = compare(spec)
    assert [m for m, _ in comparison.rows] == ["tame", "lcam-img", "gradcam"]
    alone = run_evaluation(
        eval_config(
            method="tame",
            checkpoint=tmp_path / "lcam.pt",
            out=tmp_path / "eval",
            **options | {"overrides": lcam_overrides},
        )
    ).rows[0][1]
    together = comparison.result("lcam-img")
    assert (together.ad, together.ic, together.pointing_game) == (alone.ad, alone.ic, alone.pointing_game)
    assert together.ad != comparison.result("tame").ad
    assert "| lcam-img |" in comparison.markdown()
    with pytest.raises(TameError, match="built-in method"):
        compare_methods(eval_config(methods=[f"gradcam={tmp_path / 'lcam.pt'}"]))


def test_a_trained_entry_gets_the_sanity_checks_of_its_own_attention(run_dir, tmp_path):
    from tame.evaluation import compare

    root, synthetic = run_dir
    lcam_overrides = save_random_lcam(root / "config.yaml", tmp_path / "lcam.pt")
    options = dict(config=root / "config.yaml", max_samples=6, road=False, progress=False, sanity_checks=4)
    together = compare(
        eval_config(
            methods=["tame", f"lcam-img={tmp_path / 'lcam.pt'}"],
            checkpoint=root / "epoch_2.pt",
            out=tmp_path / "cmp",
            **options,
        )
    ).sanity
    alone = compare(
        eval_config(
            methods=["tame"],
            checkpoint=tmp_path / "lcam.pt",
            out=tmp_path / "alone",
            **options | {"overrides": lcam_overrides},
        )
    ).sanity
    sanity = dict(together)
    assert list(sanity) == ["tame", "lcam-img"]
    assert sanity["lcam-img"]["cascade"][0]["step"] == "attention"
    assert sanity["lcam-img"] == dict(alone)["tame"]  # the entry's own AM, not the config's TAME
    assert sanity["lcam-img"]["random_logit"] != sanity["tame"]["random_logit"]


def test_validate_runs_once_per_eval_command(run_dir, tmp_path, monkeypatch):
    """One `tame eval`: the config tree is validated once (it was twice: load_config, then build_classifier)."""
    import tame.config.tree as tree

    calls = []
    checks = tree.check_commands
    monkeypatch.setattr(tree, "check_commands", lambda config: calls.append(1) or checks(config))
    root, _ = run_dir
    args = ["eval", "--config", str(root / "config.yaml"), "--method", "random", "--max-samples", "4"]
    assert main([*args, "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    assert len(calls) == 1
