"""Sanity checks (issue #28): the map similarities against Quantus 0.6 / scikit-image, and the checks' protocol."""

from __future__ import annotations

import pytest
import torch

from tame.metrics.sanity import average_ranks, hog_similarity, spearman, ssim


def _maps(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two batches of smooth-ish 32 x 32 maps in [0, 1] (random 8 x 8 upsampled, plus ties from clamping)."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(2, 3, 1, 8, 8, generator=generator)
    fine = torch.nn.functional.interpolate(coarse.flatten(0, 1), size=32, mode="bilinear")[:, 0].view(2, 3, 32, 32)
    return fine[0].clamp(0.2, 0.9), fine[1]


def test_identical_maps_are_similar_by_every_measure():
    a, _ = _maps()
    for measure in (spearman, ssim, hog_similarity):
        assert measure(a, a).tolist() == pytest.approx([1.0] * 3)


def test_average_ranks_share_ties():
    assert average_ranks(torch.tensor([[3.0, 1.0, 3.0, 2.0]])).tolist() == [[2.5, 0.0, 2.5, 1.0]]


def test_spearman_and_ssim_match_quantus():
    similarity = pytest.importorskip("quantus.functions.similarity_func")
    a, b = _maps()
    for i in range(3):
        x, y = a[i].double().numpy(), b[i].double().numpy()
        assert spearman(a, b)[i].item() == pytest.approx(
            similarity.correlation_spearman(x.ravel(), y.ravel()), abs=1e-9
        )
        assert ssim(a, b)[i].item() == pytest.approx(similarity.ssim(x, y), abs=1e-9)


def test_hog_similarity_matches_scikit_image():
    feature = pytest.importorskip("skimage.feature")
    import numpy as np

    a, b = _maps(1)
    for i in range(3):
        x, y = (feature.hog(m[i].double().numpy()) for m in (a, b))
        assert hog_similarity(a, b)[i].item() == pytest.approx(np.corrcoef(x, y)[0, 1], abs=1e-6)


# -- the checks' protocol ---------------------------------------------------------------------------------------------
def test_a_map_that_ignores_weights_and_class_fails_both_checks(tiny_model):
    from tame.evaluation.sanity import random_logit, sanity_checks

    images = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    record = sanity_checks(tiny_model, "random", images)
    assert record["images"] == 3
    steps = [step["step"] for step in record["cascade"]]
    assert steps == ["fc", "layer4", "layer3", "layer2", "layer1", "bn1", "conv1"]
    for values in [*record["cascade"], record["random_logit"]]:
        assert [values[m] for m in ("spearman", "ssim", "hog")] == pytest.approx([1.0] * 3)
    assert random_logit(tiny_model, "random", images) == record["random_logit"]


def test_tame_cascade_starts_at_its_attention_and_ignores_the_head(tiny_model):
    from tame.evaluation.sanity import cascading_randomisation

    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    before = {name: value.clone() for name, value in tiny_model.state_dict().items()}
    steps = cascading_randomisation(tiny_model, "tame", images)
    assert [step["step"] for step in steps[:2]] == ["attention", "fc"]
    assert steps[0]["ssim"] < 1.0
    # TAME's map is read from the features by the AM: re-initialising fc on top of the AM changes nothing
    assert {k: v for k, v in steps[1].items() if k != "step"} == {k: v for k, v in steps[0].items() if k != "step"}
    after = tiny_model.state_dict()
    assert all(torch.equal(before[name], after[name]) for name in before)  # the weights are restored


def test_gradcam_cascade_changes_the_map_at_the_head(tiny_model):
    from tame.evaluation.sanity import cascading_randomisation

    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    steps = cascading_randomisation(tiny_model, "gradcam", images, {"layer": "layer3"})
    assert steps[0]["step"] == "fc" and steps[0]["ssim"] < 0.99
