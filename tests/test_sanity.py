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
        assert spearman(a, b)[i].item() == pytest.approx(similarity.correlation_spearman(x.ravel(), y.ravel()), abs=1e-9)
        assert ssim(a, b)[i].item() == pytest.approx(similarity.ssim(x, y), abs=1e-9)


def test_hog_similarity_matches_scikit_image():
    feature = pytest.importorskip("skimage.feature")
    import numpy as np

    a, b = _maps(1)
    for i in range(3):
        x, y = (feature.hog(m[i].double().numpy()) for m in (a, b))
        assert hog_similarity(a, b)[i].item() == pytest.approx(np.corrcoef(x, y)[0, 1], abs=1e-6)
