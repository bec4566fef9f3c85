"""Configuration: the typed run configuration (:mod:`tame.config.tree`), the allowed values of every choice
(:mod:`tame.config.choices`) and the YAML reader with its limits (:mod:`tame.config.safe_yaml`)."""

from tame.config.tree import (
    VAL_METRICS,
    CompareConfig,
    Config,
    DataConfig,
    EvalConfig,
    ExplainConfig,
    ExportConfig,
    FeaturesConfig,
    LogConfig,
    LossConfig,
    ModelConfig,
    TrainConfig,
    check_mean_std,
    expand_path,
    load_config,
    save_config,
    validate,
)

__all__ = [
    "VAL_METRICS",
    "CompareConfig",
    "Config",
    "DataConfig",
    "EvalConfig",
    "ExplainConfig",
    "ExportConfig",
    "FeaturesConfig",
    "LogConfig",
    "LossConfig",
    "ModelConfig",
    "TrainConfig",
    "check_mean_std",
    "expand_path",
    "load_config",
    "save_config",
    "validate",
]
