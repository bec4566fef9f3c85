"""Per-image and per-class results (``tame eval/compare --per-image FILE.csv --per-class``): the rows average back to
the summary exactly, sharded runs write the CSV of one process, classes are the list's true labels."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from test_evaluate import SIZE, confident_model, data, run_dir  # noqa: F401
from train_helpers import eval_config

from tame.cli import main
from tame.errors import TameError
from tame.evaluation import evaluate
from tame.evaluation.samples import ImageRow, per_class
from tame.methods import Explainer, TameExplainer
from tame.metrics import ad_ic
from tame.models import Explanation, min_max_normalise


def read_rows(path) -> list[dict]:
    with open(path) as handle:
        return list(csv.DictReader(handle))


def list_paths(list_file) -> list[str]:
    return [line.split()[0] for line in list_file.read_text().splitlines() if line.strip()]


def eval_args(root, *extra) -> list[str]:
    return ["eval", "--config", str(root / "config.yaml"), "--checkpoint", str(root), "--no-progress", *extra]


def test_per_image_rows_average_back_to_the_summary(run_dir, tmp_path, capsys):  # noqa: F811
    root, synthetic = run_dir
    out, per_image = tmp_path / "out", tmp_path / "images.csv"
    args = ["--out", str(out), "--boxes", str(synthetic.boxes), "--per-image", str(per_image), "--per-class"]
    assert main(eval_args(root, *args)) == 0
    printed = capsys.readouterr().out
    assert "grouped by the list's (true) label" in printed and "tame epoch 2, per class" in printed
    report = json.loads((out / "tame_val.json").read_text())
    summary = read_rows(out / "tame_val.csv")
    rows = read_rows(per_image)
    assert list(rows[0]) == ["epoch", "path", "label", "predicted", "Y", "O(100%)", "O(50%)", "O(15%)", "PG", "EBPG"]
    paths, labels = (
        list_paths(synthetic.val_list),
        [line.split()[1] for line in synthetic.val_list.read_text().split("\n") if line],
    )
    for epoch, result, line in zip(("1", "2"), report["results"], summary):
        mine = [row for row in rows if row["epoch"] == epoch]
        assert [row["path"] for row in mine] == paths and [row["label"] for row in mine] == labels  # list order
        base = torch.tensor([float(row["Y"]) for row in mine], dtype=torch.float32)
        for level in ("100%", "50%", "15%"):
            masked = torch.tensor([float(row[f"O({level})"]) for row in mine], dtype=torch.float32)
            # the loop's formula (tame.metrics.ad_ic on float32 Y and O, summed in float64): exactly the summary
            ad = 100.0 * ad_ic.confidence_drop(base, masked).double().sum().item() / len(mine)
            ic = 100.0 * ad_ic.confidence_increase(base, masked).double().sum().item() / len(mine)
            assert ad == pytest.approx(result["ad"][level], rel=1e-12, abs=1e-12)
            assert ic == result["ic"][level]
            assert f"{ad:.4f}" == line[f"AD({level})"] and f"{ic:.4f}" == line[f"IC({level})"]
            # the reference's average_drop (float64 throughout) agrees to float32 rounding
            assert ad_ic.average_drop(base, masked) == pytest.approx(ad, abs=1e-4)
        assert 100.0 * sum(int(row["PG"]) for row in mine) / len(mine) == pytest.approx(result["pointing_game"])
        energy = sum(float(row["EBPG"]) for row in mine) / len(mine)
        assert energy == pytest.approx(result["energy_pointing_game"], rel=1e-9)
        assert all(int(row["predicted"]) in range(10) for row in mine)

    classes = read_rows(out / "tame_val_per_class.csv")
    assert [(row["epoch"], row["label"]) for row in classes] == [(e, c) for e in "12" for c in "012"]
    for epoch, result in zip("12", report["results"]):
        mine = [row for row in classes if row["epoch"] == epoch]
        assert sum(int(row["images"]) for row in mine) == 12
        for column, value in (("AD(15%)", result["ad"]["15%"]), ("PG", result["pointing_game"])):
            weighted = sum(int(row["images"]) * float(row[column]) for row in mine) / 12
            assert weighted == pytest.approx(value, abs=1e-3)  # the class rows are written with 4 decimals


def test_per_class_groups_by_the_true_label_not_the_prediction():
    rows = [
        ImageRow(0, "a", label=0, predicted=1, y=0.5, o=(0.25,), hit=True, energy=0.5),
        ImageRow(1, "b", label=0, predicted=0, y=0.5, o=(0.75,), hit=False, energy=0.0),
        ImageRow(2, "c", label=2, predicted=2, y=0.4, o=(0.1,), hit=None, energy=None),  # no box pixel in the crop
    ]
    first, second = per_class(rows, (0.15,), names=["circle", "square", "star"], localisation=True)
    assert (first.label, first.name, first.images, first.accuracy) == (0, "circle", 2, 50.0)
    assert first.ad == {"15%": 25.0} and first.ic == {"15%": 50.0}
    assert (first.pointing_game, first.energy_pointing_game) == (50.0, 25.0)
    assert (second.name, second.ad, second.pointing_game) == ("star", {"15%": 75.0}, 0.0)
    assert per_class(rows, (0.15,))[0].name == "0" and per_class(rows, (0.15,))[0].pointing_game is None


def _per_image_rank(rank: int, world_size: int, init_file: str, options: dict) -> None:
    import os

    from tame.evaluation import run_evaluation

    torch.set_num_threads(1)  # two processes share the cores
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE="2")
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    run_evaluation(eval_config(**options))  # ends the process group


def test_two_processes_write_the_per_image_csv_of_one(run_dir, tmp_path):  # noqa: F811
    import torch.multiprocessing as mp

    from tame.evaluation import run_evaluation

    root, synthetic = run_dir
    options = dict(
        config=str(root / "config.yaml"),
        checkpoint=str(root / "epoch_2.pt"),
        boxes=str(synthetic.boxes),
        max_samples=5,  # odd: rank 1 reads one padding sample
        batch_size=1,  # every image alone in its forward, in both runs (the two processes: a global batch of 2)
        device="cpu",
        progress=False,
        per_class=True,
    )
    one, threads = tmp_path / "one", torch.get_num_threads()
    torch.set_num_threads(1)  # as each of the two processes: the same kernels, so the same float32 bits
    try:
        run_evaluation(eval_config(**options, out=one, per_image=one / "images.csv"))
    finally:
        torch.set_num_threads(threads)
    two = tmp_path / "two"
    mp.spawn(
        _per_image_rank,
        args=(2, str(tmp_path / "init"), {**options, "batch_size": 2, "out": two, "per_image": two / "images.csv"}),
        nprocs=2,
    )
    text = (one / "images.csv").read_text()
    assert (two / "images.csv").read_text() == text
    assert [row["path"] for row in read_rows(one / "images.csv")] == list_paths(synthetic.val_list)[:5]
    assert (two / "tame_val_per_class.csv").read_text() == (one / "tame_val_per_class.csv").read_text()


def test_compare_carries_per_class_rows(run_dir, tmp_path, capsys):  # noqa: F811
    root, synthetic = run_dir
    out, per_image = tmp_path / "compare", tmp_path / "images.csv"
    args = ["compare", "--config", str(root / "config.yaml"), "--checkpoint", str(root), "--methods", "tame", "random"]
    args += ["--no-road", "--boxes", str(synthetic.boxes), "--out", str(out), "--per-class", "--no-progress"]
    assert main([*args, "--per-image", str(per_image)]) == 0
    assert "random, per class" in capsys.readouterr().out
    classes = read_rows(out / "compare_per_class.csv")
    assert [(row["method"], row["label"]) for row in classes] == [(m, c) for m in ("tame", "random") for c in "012"]
    images = read_rows(per_image)
    assert [row["method"] for row in images] == ["tame"] * 12 + ["random"] * 12
    recorded = json.loads((out / "compare.json").read_text())["per_class"]  # the same rows in the JSON and markdown
    for row in classes:
        record = recorded[row["method"]][int(row["label"])]
        assert record["images"] == int(row["images"]) and f"{record['AD(15%)']:.4f}" == row["AD(15%)"]
    page = (out / "compare.md").read_text()
    assert "**random**, per class" in page and "\n| 2 | 4 | " in page

    from tame.evaluation import compare

    comparison = compare(
        eval_config(
            config=str(root / "config.yaml"),
            methods=["gradcam"],
            boxes=str(synthetic.boxes),
            road=False,
            out=tmp_path / "api",
            per_class=True,
            progress=False,
        )
    )
    rows = comparison.per_class("gradcam")
    assert [row.label for row in rows] == [0, 1, 2] and rows[0].pointing_game is not None
    total = sum(row.images * row.ad["15%"] for row in rows) / 12
    assert total == pytest.approx(comparison.result("gradcam").ad["15%"], abs=1e-9)


def test_per_image_must_name_a_file(run_dir, tmp_path, capsys):  # noqa: F811
    root, _ = run_dir
    assert main(eval_args(root, "--per-image", str(tmp_path))) == 2
    assert "is a folder" in capsys.readouterr().err


# -- non-finite maps -----------------------------------------------------------------------------------------------
class BrokenExplainer(Explainer):
    """TAME's maps with one non-finite value in the map of every ``every``-th image."""

    def __init__(self, model, value: float, every: int) -> None:
        super().__init__(model.classifier)
        self.inner, self.value, self.every = TameExplainer(model), value, every

    def explain(self, images, classes=None):
        explanation = self.inner.explain(images, classes)
        maps = explanation.maps.clone()
        maps[:: self.every, 3, 5] = self.value
        return Explanation(maps, explanation.classes, explanation.logits)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_a_non_finite_map_is_never_averaged(value):
    model, images = confident_model(), data(8)
    batches = [(b, torch.zeros(len(b), dtype=torch.long)) for b in images.split(4)]
    with pytest.raises(TameError, match=r"^tame at e\.pt: 4 of 8 images got an explanation map with NaN or infinite"):
        evaluate(BrokenExplainer(model, value, every=2), batches, name="tame at e.pt")
    assert evaluate(TameExplainer(model), batches).num_samples == 8


def test_min_max_normalise_keeps_a_broken_map_broken():
    maps = torch.tensor([[[1.0, 3.0]], [[2.0, 2.0]], [[float("nan"), 1.0]], [[float("inf"), 1.0]]])
    out = min_max_normalise(maps)
    assert out[0].tolist() == [[0.0, 1.0]] and out[1].tolist() == [[0.0, 0.0]]  # a constant map: 0, as before
    assert out[2].isnan().all() and out[3].isnan().any()


def test_the_demo_report_has_a_per_class_table():
    from tame.demo.report import per_class_tables

    row = {"images": 4.0, "PG": 50.0, "AD(15%)": 12.345}
    per_class = {m: [{"name": "circle", **row}, {"name": "star", **row, "PG": 25.0}] for m in ("tame", "gradcam")}
    [(title, header, rows)] = per_class_tables({**per_class, "random": per_class["tame"]})
    assert "true label" in title
    assert header == ["class", "TAME PG", "Grad-CAM PG", "TAME AD(15%)", "Grad-CAM AD(15%)"]
    assert rows == [["circle", "50.00", "50.00", "12.35", "12.35"], ["star", "25.00", "25.00", "12.35", "12.35"]]
    assert per_class_tables({}) == []  # a compare stage recorded before per-class results: no table


def test_per_class_rows_are_named_from_the_class_names_file(run_dir, tmp_path):  # noqa: F811
    """``model.class_names`` is a file: the per-class rows carry the names it holds (not the path's characters)."""
    root, synthetic = run_dir
    out = tmp_path / "out"
    names = tmp_path / "names.txt"  # the classifier has 10 classes; the list uses labels 0-2
    names.write_text("".join(f"shape {k}\n" for k in range(10)))
    assert main(eval_args(root, "--out", str(out), "--per-class", f"model.class_names={names}")) == 0
    rows = read_rows(out / "tame_val_per_class.csv")
    assert [row["name"] for row in rows if row["epoch"] == "2"] == ["shape 0", "shape 1", "shape 2"]
    recorded = json.loads((out / "tame_val.json").read_text())["per_class"]
    assert [record["name"] for record in recorded["2"]] == ["shape 0", "shape 1", "shape 2"]
