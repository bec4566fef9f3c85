"""Both loader backends (DALI CPU pipeline and PIL fallback): contract, agreement, sharding, resume, bad input.

Measured agreement of the two backends (mean |DALI - PIL| over [0, 1] images, CPU): about 0.0007 on the ten
ImageNet photos of tests/data (eval and train crops), i.e. under 0.2 grey levels; the bound below is 0.002.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from PIL import Image

from tame.config import DataConfig
from tame.data import build_loader, plan_epoch, resolve_backend
from tame.data.dali import dali_available
from tame.data.images import eval_image
from tame.data.synthetic import make_synthetic
from tame.distributed import Dist
from tame.errors import TameError

CPU = torch.device("cpu")
needs_dali = pytest.mark.skipif(not dali_available(cpu_only=True), reason="DALI cannot run CPU-only here")
BACKENDS = [pytest.param("dali", marks=needs_dali), "torch"]
TOLERANCE = 0.002  # mean abs difference of the two backends' crops


def _run(loader):
    return [(images.clone(), labels.clone()) for images, labels in loader]


def _loader(list_file, root, backend, *, train=False, batch_size=4, resize=72, crop=64, rank=0, world_size=1, **kwargs):
    """``batch_size``: the global batch (data.batch_size), split over ``world_size`` simulated ranks."""
    cfg = DataConfig(
        backend=backend, batch_size=batch_size, workers=0, resize=resize, crop=crop, interpolation="bilinear"
    )
    return build_loader(cfg, list_file, root, train=train, dist=_dist(rank, world_size), **kwargs)


def _dist(rank: int = 0, world_size: int = 1) -> Dist:
    """Rank ``rank`` of ``world_size`` on the CPU, without a process group (a loader needs only the numbers)."""
    return Dist(rank=rank, world_size=world_size, local_rank=rank, device=CPU)


@pytest.fixture(scope="module")
def shared_list(tmp_path_factory, example_images):
    """The ten photos of tests/data (one RGBA PNG, sizes 138x150 to 469x500); label = the number before '_' / '.'."""
    root = example_images
    names = sorted(path.name for path in root.iterdir())
    labels = [int(re.match(r"\d+", name).group()) for name in names]
    list_file = tmp_path_factory.mktemp("lists") / "images.txt"
    list_file.write_text("".join(f"{name} {label} \n" for name, label in zip(names, labels)))  # stray spaces
    return list_file, root, labels


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    """4 shape classes: 24 train and 12 val JPEGs of 64 px."""
    return make_synthetic(tmp_path_factory.mktemp("synth"), classes=4, train_per_class=6, val_per_class=3, size=64)


@pytest.fixture(scope="module")
def numbered(tmp_path_factory, synth):
    """11 synthetic images whose labels are their list positions (so every sample is identifiable)."""
    list_file = tmp_path_factory.mktemp("lists") / "numbered.txt"
    list_file.write_text("".join(f"images/val/{i:05d}.jpg {i}\n" for i in range(11)))
    return list_file, synth.root


@pytest.mark.parametrize("backend", BACKENDS)
def test_eval_contract_on_shared_images(shared_list, backend):
    list_file, root, labels = shared_list
    loader = _loader(list_file, root, backend, resize=256, crop=224)
    assert loader.backend == backend and loader.num_samples == 10 and len(loader) == 3
    batches = _run(loader)
    assert [images.shape for images, _ in batches] == [(4, 3, 224, 224)] * 2 + [(2, 3, 224, 224)]
    for images, batch_labels in batches:
        assert images.dtype == torch.float32 and images.device == CPU and batch_labels.dtype == torch.int64
        assert images.min() >= 0 and images.max() <= 1 and images.std() > 0.05
    assert torch.cat([batch_labels for _, batch_labels in batches]).tolist() == labels


@needs_dali
@pytest.mark.parametrize("train", [False, True])
def test_backends_agree_on_shared_images(shared_list, train):
    list_file, root, _ = shared_list
    dali = _run(_loader(list_file, root, "dali", train=train, resize=256, crop=224, seed=3))
    pil = _run(_loader(list_file, root, "torch", train=train, resize=256, crop=224, seed=3))
    assert len(dali) == len(pil) == (2 if train else 3)
    for (a, labels_a), (b, labels_b) in zip(dali, pil):
        assert torch.equal(labels_a, labels_b)
        diff = (a - b).abs().mean(dim=(1, 2, 3))  # [B]
        assert diff.max() < TOLERANCE, diff


@needs_dali
@pytest.mark.parametrize("train", [False, True])
def test_backends_agree_on_synthetic_jpegs(synth, train):
    dali = _run(_loader(synth.train_list, synth.root, "dali", train=train, seed=1))
    pil = _run(_loader(synth.train_list, synth.root, "torch", train=train, seed=1))
    assert len(dali) == len(pil) == 6
    for (a, labels_a), (b, labels_b) in zip(dali, pil):
        assert torch.equal(labels_a, labels_b) and a.shape == (4, 3, 64, 64)
        assert (a - b).abs().mean() < TOLERANCE


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("train", [False, True])
def test_two_ranks(numbered, backend, train):
    """Eval: every sample exactly once over the ranks (padding labelled -1); train: disjoint full batches."""
    list_file, root = numbered
    ranks = [_loader(list_file, root, backend, train=train, batch_size=4, rank=r, world_size=2, seed=7) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == (2 if train else 3)
    seen = [torch.cat([labels for _, labels in _run(loader)]) for loader in ranks]
    everything = torch.cat(seen)
    if train:  # 11 samples, global batch 4 -> 2 full global batches of distinct samples, 3 dropped
        assert len(everything) == 8 and len(set(everything.tolist())) == 8 and everything.min() >= 0
    else:  # 11 samples over 2 ranks -> 6 each, one padding sample
        assert len(seen[0]) == len(seen[1]) == 6
        assert sorted(everything[everything >= 0].tolist()) == list(range(11)) and (everything < 0).sum() == 1


def test_train_plan_global_batches_do_not_depend_on_world_size():
    one = plan_epoch(50, train=True, rank=0, world_size=1, batch_size=8, seed=2, epoch=3)
    parts = [plan_epoch(50, train=True, rank=r, world_size=2, batch_size=4, seed=2, epoch=3) for r in (0, 1)]
    assert one.num_batches == parts[0].num_batches == 6
    for k in range(6):
        gathered = np.concatenate([part.indices[part.batch(k)] for part in parts])
        assert np.array_equal(gathered, one.indices[one.batch(k)])
        assert np.array_equal(
            np.concatenate([part.augment[part.batch(k)] for part in parts]), one.augment[one.batch(k)]
        )
    other = plan_epoch(50, train=True, rank=0, world_size=1, batch_size=8, seed=2, epoch=4)
    assert not np.array_equal(one.indices, other.indices)


@pytest.mark.parametrize("backend", BACKENDS)
def test_epochs_reshuffle_and_resume_exactly(synth, backend):
    loader = _loader(synth.train_list, synth.root, backend, train=True, seed=0)
    epoch0 = _run(loader)
    loader.set_epoch(1)
    epoch1 = _run(loader)
    assert not torch.equal(torch.cat([y for _, y in epoch0]), torch.cat([y for _, y in epoch1]))
    assert torch.equal(torch.cat([y for _, y in _run(loader)]), torch.cat([y for _, y in epoch1]))  # same epoch again
    loader.set_epoch(1, skip_batches=4)
    resumed = _run(loader)
    assert len(resumed) == 2
    for (a, labels_a), (b, labels_b) in zip(resumed, epoch1[4:]):
        assert torch.equal(labels_a, labels_b) and torch.equal(a, b)
    loader.set_epoch(1, skip_batches=len(loader))
    assert _run(loader) == []
    with pytest.raises(ValueError):
        loader.set_epoch(1, skip_batches=len(loader) + 1)


@pytest.fixture(scope="module")
def odd_images(tmp_path_factory):
    """Greyscale, CMYK, palette, LA, 16-bit greyscale PNG, a tiny image and an RGB reference, with a list."""
    root = tmp_path_factory.mktemp("odd")
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (40, 52, 3), dtype=np.uint8)).resize((104, 80), Image.BILINEAR)
    rgb.save(root / "rgb.jpg", quality=95)
    rgb.convert("L").save(root / "grey.jpg", quality=95)
    rgb.convert("CMYK").save(root / "cmyk.jpg", quality=95)
    rgb.convert("P").save(root / "palette.png")
    rgb.convert("LA").save(root / "la.png")
    Image.fromarray(np.asarray(rgb.convert("L")).astype(np.uint16) * 257).save(root / "grey16.png")
    rgb.resize((20, 13)).save(root / "tiny.png")
    names = ["rgb.jpg", "grey.jpg", "cmyk.jpg", "palette.png", "la.png", "grey16.png", "tiny.png"]
    list_file = root / "list.txt"
    list_file.write_text("".join(f"{name} {i}\n" for i, name in enumerate(names)))
    return list_file, root


@needs_dali
def test_odd_images_are_converted_alike(odd_images):
    list_file, root = odd_images
    dali = torch.cat([images for images, _ in _run(_loader(list_file, root, "dali"))])
    pil = torch.cat([images for images, _ in _run(_loader(list_file, root, "torch"))])
    assert dali.shape == pil.shape == (7, 3, 64, 64)
    assert ((dali - pil).abs().mean(dim=(1, 2, 3)) < TOLERANCE).all()
    grey16, grey = pil[5], pil[1]
    assert (grey16[0] - grey16[1]).abs().max() == 0 and (grey16 - grey).abs().mean() < 0.02  # a grey image, 8-bit


def test_eval_image_is_the_loaders_eval_transform(shared_list):
    list_file, root, _ = shared_list
    images, _ = next(iter(_loader(list_file, root, "torch", resize=256, crop=224)))
    assert torch.equal(eval_image(root / "129_130.png", 256, 224, True, "bilinear"), images[0])  # the RGBA PNG
    whole = eval_image(root / "232.JPEG", 256, 224, False, "bilinear")  # 469 x 500, squeezed to 224 x 224
    assert whole.shape == (3, 224, 224) and whole.dtype == torch.float32 and 0 <= whole.min() <= whole.max() <= 1


def test_validation_names_file_and_line(tmp_path, synth):
    list_file = tmp_path / "list.txt"
    list_file.write_text("images/val/00000.jpg 0\nimages/val/00001.jpg 1\nimages/val/nope.jpg 2\n")
    with pytest.raises(TameError, match=r"list.txt:3: images/val/nope.jpg: file not found"):
        _loader(list_file, synth.root, "torch")
    list_file.write_text("images/val/00000.jpg 0\nimages/val/00001.jpg 9\n")
    with pytest.raises(TameError, match=r"list.txt:2: .*out of range 0..3"):
        _loader(list_file, synth.root, "torch", num_classes=4)


@pytest.fixture
def truncated(tmp_path, synth):
    data = (synth.root / "images/val/00001.jpg").read_bytes()
    (tmp_path / "bad.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "good.jpg").write_bytes((synth.root / "images/val/00000.jpg").read_bytes())
    list_file = tmp_path / "list.txt"
    list_file.write_text("good.jpg 0\ngood.jpg 1\ngood.jpg 2\nbad.jpg 3\ngood.jpg 1\n")
    return list_file, tmp_path


@pytest.mark.parametrize("backend", BACKENDS)
def test_truncated_jpeg_is_named(truncated, backend):
    list_file, root = truncated
    with pytest.raises(TameError, match=r"list.txt:4: bad.jpg: cannot decode: image file is truncated"):
        build_loader(
            DataConfig(
                backend=backend,
                batch_size=2,
                validate="decode",
                workers=0,
                resize=72,
                crop=64,
                interpolation="bilinear",
            ),
            list_file,
            root,
            train=False,
            dist=Dist.local(),
        )
    loader = build_loader(
        DataConfig(
            backend=backend, batch_size=2, validate="cheap", workers=0, resize=72, crop=64, interpolation="bilinear"
        ),
        list_file,
        root,
        train=False,
        dist=Dist.local(),
    )
    with pytest.raises(TameError, match=r"list.txt:4: bad.jpg: cannot decode: image file is truncated") as err:
        _run(loader)
    assert "\n" not in str(err.value)


@needs_dali
def test_dali_failure_on_a_file_pil_reads_names_the_lines(truncated, monkeypatch):
    list_file, root = truncated
    monkeypatch.setattr("tame.data.dali.load_rgb", lambda path: None)  # pretend PIL decodes everything
    loader = _loader(list_file, root, "dali", batch_size=2)
    with pytest.raises(TameError, match=r"list.txt: DALI failed on one of list lines 3, 4, 5, which PIL decodes: "):
        _run(loader)


def test_batch_size_and_backend_choices(synth, numbered):
    cfg = DataConfig(backend="torch", batch_size=6, workers=0, resize=72, crop=64, interpolation="bilinear")
    with pytest.raises(TameError, match=r"data.resize, data.crop, data.interpolation: auto, and the loader"):
        build_loader(DataConfig(backend="torch"), synth.val_list, synth.root, train=False, dist=Dist.local())
    with pytest.raises(TameError, match="global batch 6 does not split evenly over 4 processes"):
        build_loader(cfg, synth.val_list, synth.root, train=False, dist=_dist(0, 4))
    with pytest.raises(TameError, match="fewer than one global batch"):
        build_loader(cfg, synth.val_list, synth.root, train=True, dist=_dist(0, 2), global_batch_size=14)
    loader = build_loader(cfg, synth.val_list, synth.root, train=False, dist=Dist.local(), max_samples=5)
    assert loader.num_samples == 5 and len(loader) == 1
    assert resolve_backend("torch", CPU) == "torch"
    assert resolve_backend("auto", CPU) == ("dali" if dali_available(cpu_only=True) else "torch")


def test_torch_loader_worker_processes(synth):
    cfg = DataConfig(backend="torch", batch_size=4, workers=2, resize=72, crop=64, interpolation="bilinear")
    in_workers = _run(build_loader(cfg, synth.train_list, synth.root, train=True, dist=Dist.local()))
    in_main = _run(_loader(synth.train_list, synth.root, "torch", train=True))
    assert all(torch.equal(a, b) and torch.equal(y, z) for (a, y), (b, z) in zip(in_workers, in_main))


@pytest.mark.gpu
@needs_dali
def test_dali_mixed_on_gpu_matches_cpu(synth):
    cuda = torch.device("cuda", 0)
    cfg = DataConfig(backend="dali", batch_size=4, workers=2, resize=72, crop=64, interpolation="bilinear")
    gpu = _run(build_loader(cfg, synth.train_list, synth.root, train=True, dist=Dist.local(cuda), seed=1))
    cpu = _run(_loader(synth.train_list, synth.root, "dali", train=True, seed=1))
    for (a, labels_a), (b, labels_b) in zip(gpu, cpu):
        assert a.device == cuda and labels_a.device == cuda
        assert torch.equal(labels_a.cpu(), labels_b) and (a.cpu() - b).abs().mean() < 0.01  # nvJPEG vs libjpeg-turbo
