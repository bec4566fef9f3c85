"""Evaluation metrics as pure tensor functions: AD/IC, ROAD, localisation (pointing game)."""

from tame.metrics.ad_ic import (
    LEVELS,
    average_drop,
    class_probability,
    confidence_drop,
    confidence_increase,
    drop_counts,
    increase_in_confidence,
    keep_top_fraction,
    level_name,
    pixel_mask,
    pixel_order,
    top_count,
)
from tame.metrics.localisation import energy_pointing_game, pointing_game
from tame.metrics.road import linear_imputation, noisy_linear_imputation, removal_mask

__all__ = [
    "LEVELS",
    "average_drop",
    "class_probability",
    "confidence_drop",
    "confidence_increase",
    "drop_counts",
    "energy_pointing_game",
    "increase_in_confidence",
    "keep_top_fraction",
    "level_name",
    "linear_imputation",
    "noisy_linear_imputation",
    "pixel_mask",
    "pixel_order",
    "pointing_game",
    "removal_mask",
    "top_count",
]
