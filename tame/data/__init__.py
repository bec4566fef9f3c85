"""List files (parse, check, make, predict), DALI pipelines, the PIL fallback loader and synthetic benchmark data."""

from tame.data.check import ListReport, check_list, validate_list
from tame.data.lists import ListEntry, Problem, parse_list, read_list, write_list
from tame.data.loaders import build_loader, resolve_backend
from tame.data.sharding import EpochPlan, Loader, plan_epoch

__all__ = [
    "EpochPlan",
    "ListEntry",
    "ListReport",
    "Loader",
    "Problem",
    "build_loader",
    "check_list",
    "parse_list",
    "plan_epoch",
    "read_list",
    "resolve_backend",
    "validate_list",
    "write_list",
]
