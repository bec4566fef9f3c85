"""AD/IC, ROAD and localisation metrics: exact pixel counts, stable ties, known answers, no input mutation."""

from __future__ import annotations

import math

import pytest
import torch

from tame.data.boxes import boxes_to_mask
from tame.errors import TameError
from tame.metrics import (
    average_drop,
    drop_counts,
    energy_pointing_game,
    increase_in_confidence,
    keep_top_fraction,
    level_name,
    linear_imputation,
    noisy_linear_imputation,
    pixel_order,
    pointing_game,
    removal_mask,
    top_count,
)


@pytest.mark.parametrize("fraction", [1.0, 0.5, 0.15, 0.01])
@pytest.mark.parametrize("size", [(7, 7), (32, 32), (13, 29)])
def test_keep_top_fraction_keeps_exactly_ceil_p_hw_pixels(fraction, size):  # no ties, p·H·W not an integer
    torch.manual_seed(0)
    maps = torch.rand(3, *size) + 0.1  # no zeros, so kept pixels are the non-zero ones
    kept = keep_top_fraction(maps, fraction)
    count = math.ceil(fraction * size[0] * size[1])
    assert (kept != 0).flatten(1).sum(dim=1).tolist() == [count] * 3
    assert torch.equal(kept[kept != 0], maps[kept != 0])  # soft values, unchanged
    if count < size[0] * size[1]:  # and they are the largest ones
        for b in range(3):
            assert kept[b][kept[b] != 0].min() >= maps[b][kept[b] == 0].max()


def test_top_count_matches_the_reference_numbers():
    assert [top_count(p, 224, 224) for p in (1.0, 0.5, 0.15)] == [50176, 25088, 7527]
    assert top_count(0.15, 7, 7) == 8
    with pytest.raises(TameError):
        top_count(0.0, 4, 4)
    assert [level_name(p) for p in (1.0, 0.5, 0.15)] == ["100%", "50%", "15%"]


def test_ties_at_the_threshold_keep_the_later_pixels_in_raster_order():
    """The authors' drop_Npercent: below the threshold t -> 0, then the *first* ties -> 0 until n remain."""
    maps = torch.full((1, 4, 4), 0.5)
    maps[0, 3, 3] = 0.9
    # 25 %: t = the int(0.75 · 16) = 12th smallest = 0.5, n = 4; nothing is below t, 16 positive: the first 12 of
    # the 15 ties (raster 0..11) -> 0, the last three 0.5s (row 3) and the 0.9 stay
    kept = keep_top_fraction(maps, 0.25)
    expected = torch.zeros(1, 4, 4)
    expected[0, 3] = torch.tensor([0.5, 0.5, 0.5, 0.9])
    assert torch.equal(kept, expected)
    assert torch.equal(
        keep_top_fraction(torch.ones(2, 4, 4), 0.25), torch.cat([torch.zeros(2, 3, 4), torch.ones(2, 1, 4)], 1)
    )


def test_ties_below_and_at_the_threshold_on_a_map_with_several_levels():
    maps = torch.tensor([[[0.2, 0.6, 0.6, 0.1], [0.6, 0.9, 0.6, 0.6]]])  # 8 pixels
    # 50 %: t = the 4th smallest = 0.6, n = 4; 0.2 and 0.1 -> 0; 6 positive: the first 2 of the five 0.6s -> 0
    expected = torch.tensor([[[0.0, 0.0, 0.0, 0.0], [0.6, 0.9, 0.6, 0.6]]])
    assert torch.equal(keep_top_fraction(maps, 0.5), expected)
    # 15 %: t = the int(0.85 · 8) = 6th smallest = 0.6, n = ceil(0.15000000000000002 · 8) = 2: 6 positive, the first
    # 4 of the five 0.6s -> 0, the last one and the 0.9 stay
    expected = torch.tensor([[[0.0, 0.0, 0.0, 0.0], [0.0, 0.9, 0.0, 0.6]]])
    assert torch.equal(keep_top_fraction(maps, 0.15), expected)


def test_a_zero_threshold_drops_nothing_but_the_zeros():
    maps = torch.zeros(1, 4, 5)
    maps[0, 0, :2] = torch.tensor([0.3, 0.7])  # 2 positive pixels of 20; at 15 % t = the 17th smallest = 0
    assert torch.equal(keep_top_fraction(maps, 0.15), maps)
    assert torch.equal(keep_top_fraction(maps, 0.5), maps)


def test_the_kept_count_follows_the_authors_float_arithmetic():
    """ceil((1 - 0.85) · 20) = ceil(3.0000000000000004) = 4 pixels at 15 % of a 4x5 map, not ceil(0.15 · 20) = 3."""
    assert drop_counts(0.15, 20) == (17, 4)
    assert drop_counts(0.15, 224 * 224) == (42649, 7527) and drop_counts(0.5, 224 * 224) == (25088, 25088)
    maps = torch.arange(1.0, 21.0).view(1, 4, 5)
    assert keep_top_fraction(maps, 0.15).flatten().nonzero().flatten().tolist() == [16, 17, 18, 19]
    with pytest.raises(TameError, match="no pixel to drop"):
        drop_counts(0.9, 2)  # int(2 · 0.09999999999999998) = 0: the reference's kthvalue would fail


def test_the_batched_rule_drops_ties_per_map():
    maps = torch.stack([torch.full((2, 2), 0.5), torch.tensor([[0.1, 0.4], [0.3, 0.2]])])
    kept = keep_top_fraction(maps, 0.5)  # t: 0.5 (four ties: the first two -> 0) and 0.2 (no ties)
    assert torch.equal(kept, torch.tensor([[[0.0, 0.0], [0.5, 0.5]], [[0.0, 0.4], [0.3, 0.0]]]))
    assert torch.equal(keep_top_fraction(maps, 0.5, pixel_order(maps)), kept)


def test_keep_top_fraction_does_not_change_its_input():
    maps = torch.rand(2, 8, 8)
    copy = maps.clone()
    keep_top_fraction(maps, 0.5)
    keep_top_fraction(maps, 1.0)
    assert torch.equal(maps, copy)
    assert torch.equal(keep_top_fraction(maps, 1.0), maps)


def test_average_drop_and_increase_in_confidence_known_values():
    base = torch.tensor([0.5, 0.2, 0.4, 0.8])
    masked = torch.tensor([0.25, 0.4, 0.4, 0.0])
    # drops: 0.5, 0 (increase), 0 (equal), 1.0 -> AD = 100 * 1.5 / 4; increases: only the second -> IC = 25
    assert average_drop(base, masked) == pytest.approx(37.5)
    assert increase_in_confidence(base, masked) == pytest.approx(25.0)
    with pytest.raises(TameError):
        average_drop(base, masked[:2])


# -- ROAD ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("order", ["morf", "lerf"])
def test_removal_mask_removes_the_right_pixels(order):
    torch.manual_seed(1)
    maps = torch.rand(2, 10, 12)
    for q in (0.1, 0.5, 0.9):
        removed = removal_mask(maps, q, order)
        assert removed.flatten(1).sum(dim=1).tolist() == [math.ceil(q * 120)] * 2
        for b in range(2):
            if order == "morf":
                assert maps[b][removed[b]].min() >= maps[b][~removed[b]].max()
            else:
                assert maps[b][removed[b]].max() <= maps[b][~removed[b]].min()
    with pytest.raises(TameError):
        removal_mask(maps, 0.5, "random")


def test_linear_imputation_matches_the_road_reference_imputer():
    from pytorch_grad_cam.metrics.road import NoisyLinearImputer  # Rong et al.'s code, as pytorch-grad-cam ships it

    torch.manual_seed(0)
    image = torch.rand(3, 20, 24)
    maps = torch.rand(1, 20, 24)
    for order in ("morf", "lerf"):
        for q in (0.1, 0.5, 0.9):
            removed = removal_mask(maps, q, order)[0]
            ours = linear_imputation(image, removed)
            reference = NoisyLinearImputer(noise=0.0)(image, (~removed).float())
            torch.testing.assert_close(ours, reference, atol=1e-6, rtol=0)
            assert torch.equal(ours[:, ~removed], image[:, ~removed])


def test_linear_imputation_reproduces_an_affine_image_away_from_the_border():
    ys, xs = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    image = torch.stack([0.01 * ys + 0.02 * xs, 0.5 - 0.01 * xs, 0.03 * ys]).float()
    removed = torch.zeros(16, 16, dtype=torch.bool)
    removed[3:12, 4:10] = True  # symmetric weights average an affine function back to itself
    torch.testing.assert_close(linear_imputation(image, removed), image, atol=1e-5, rtol=0)


def test_noisy_imputation_is_reproducible_and_touches_only_removed_pixels():
    torch.manual_seed(0)
    images = torch.rand(3, 3, 12, 12)
    copy = images.clone()
    removed = removal_mask(torch.rand(3, 12, 12), 0.4)
    first = noisy_linear_imputation(images, removed, seed=3, workers=2)
    again = noisy_linear_imputation(images, removed, seed=3)
    assert torch.equal(first, again)
    assert torch.equal(images, copy)
    keep = ~removed.unsqueeze(1).expand_as(images)
    assert torch.equal(first[keep], images[keep])
    noiseless = torch.stack([linear_imputation(images[b], removed[b]) for b in range(3)])
    difference = (first - noiseless)[~keep]
    assert 0.005 < difference.std() < 0.02  # sigma = 0.01
    with pytest.raises(TameError):
        linear_imputation(images[0], torch.ones(12, 12, dtype=torch.bool))


# -- localisation --------------------------------------------------------------------------------------------------
def test_boxes_to_mask_is_exclusive_and_clipped():
    mask = boxes_to_mask([[1, 2, 4, 3], [6, 6, 20, 20]], (8, 8))
    assert mask.sum() == 3 + 4
    assert mask[2, 1:4].all() and not mask[2, 4] and not mask[3, 1]
    assert mask[6:, 6:].all()
    with pytest.raises(TameError):
        boxes_to_mask([[3, 3, 3, 5]], (8, 8))


def test_a_map_equal_to_the_object_scores_perfectly():
    regions = torch.zeros(2, 16, 16, dtype=torch.bool)
    regions[0, 2:6, 3:9] = True
    regions[1, 10:15, 0:4] = True
    maps = regions.float()
    assert pointing_game(maps, regions).tolist() == [True, True]
    assert energy_pointing_game(maps, regions).tolist() == [1.0, 1.0]


def test_pointing_game_misses_and_tolerance():
    regions = torch.zeros(1, 16, 16, dtype=torch.bool)
    regions[0, 0:4, 0:4] = True
    maps = torch.zeros(1, 16, 16)
    maps[0, 5, 5] = 1.0  # peak 2·sqrt(2) ≈ 2.83 px from the region's corner (3, 3)
    assert not pointing_game(maps, regions)[0]
    assert not pointing_game(maps, regions, tolerance=2.5)[0]
    assert pointing_game(maps, regions, tolerance=3.0)[0]
    uniform = torch.ones(1, 16, 16)
    assert energy_pointing_game(uniform, regions)[0].item() == pytest.approx(16 / 256)
    assert energy_pointing_game(torch.zeros(1, 16, 16), regions)[0].item() == 0.0
