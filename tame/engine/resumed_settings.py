"""What a resumed run may change, and how a change takes effect (``train.resume``).

The one-cycle LR schedule (``tame.engine.optim``) is laid out over ``train.epochs * steps_per_epoch`` steps when a
run starts, and the sampler's position is counted in batches, so two kinds of settings differ on resume:

- refused, with one line naming the checkpoint's value and this run's: ``train.epochs`` (a longer run would train
  the rest of the old schedule and then fail; a shorter one would end at once or past its own end) and
  ``data.batch_size`` (the position in the epoch would point at other images). A changed number of steps per
  epoch (data list, batch size, ``train.max_steps_per_epoch``) is refused by :class:`tame.engine.resume.Checkpoints`,
  and so is another ``train.schedule``;
- adopted from the resumed step on, with a warning that says so: ``train.max_lr`` (the schedule continues at the
  same step with the new peak: what ``stopped`` advises after a non-finite loss), ``train.weight_decay``, the bias
  settings (``bias_lr_factor``, ``bias_weight_decay``), ``train.lr_decay`` and the momentum settings
  (``Checkpoints._keep_current_schedule`` puts this config's values back after loading the state).
  The checkpoint's optimiser state would otherwise bring back the old values silently.
"""

from __future__ import annotations

import logging
from pathlib import Path

from tame.config import Config
from tame.errors import TameError

logger = logging.getLogger(__name__)
REFUSED = (("train", "epochs"), ("data", "batch_size"), ("train", "schedule"))
ADOPTED = ("max_lr", "weight_decay", "momentum", "cycle_momentum", "base_momentum", "max_momentum", "nesterov")
ADOPTED += ("bias_lr_factor", "bias_weight_decay", "lr_decay")


def check_resumed_settings(path: Path, saved: dict, cfg: Config, step: int) -> None:
    """Refuse a change of :data:`REFUSED` keys; announce a change of :data:`ADOPTED` ones (rank 0)."""
    for section, key in REFUSED:
        old, new = saved.get(section, {}).get(key), getattr(getattr(cfg, section), key)
        if old is not None and old != new:
            raise TameError(
                f"checkpoint {path} belongs to a run with {section}.{key}={old}, this run has {section}.{key}={new}: "
                f"{_WHY[key]}; keep {section}.{key}={old} to continue it, or start a new run in another output_dir"
            )
    changed = changed_adopted(saved, cfg)
    if changed:
        logger.warning(
            "%s changed: in effect from step %d on (the one-cycle schedule goes on from that step with the new values)",
            ", ".join(f"train.{key}" for key in changed),
            step + 1,
        )


_WHY = {
    "epochs": "the one-cycle LR schedule is laid out over the run's length when it starts and cannot be stretched "
    "or cut mid-run",
    "batch_size": "the position within the epoch is counted in batches, so resuming would repeat or skip images",
    "schedule": "the checkpoint's scheduler state belongs to the other schedule",
}


def changed_adopted(saved: dict, cfg: Config) -> list[str]:
    train = saved.get("train", {})
    return [key for key in ADOPTED if key in train and train[key] != getattr(cfg.train, key)]
