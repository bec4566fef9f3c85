"""LR range test: sweep the LR exponentially over one pass of the training data and suggest a max LR.

    tame lr-find --config configs/resnet50.yaml
    torchrun --standalone --nproc_per_node=4 -m tame.cli lr-find --config configs/resnet50.yaml
    make lr-find MODEL=resnet50 GPUS=4
    >>> result = lr_range_test(load_config("configs/synthetic.yaml"), steps=40)  # the same, from Python

As the reference's ``lr_finder.py``: SGD with the training's two parameter groups (biases at
``train.bias_lr_factor`` times the LR), the LR going from ``start_lr`` to ``end_lr`` over the pass, the loss
smoothed exponentially (bias-corrected), stopping once the smoothed loss exceeds 4x its best. Writes
``lr_find.json`` and ``lr_find.png`` to the output folder.
The suggested ``train.max_lr`` is a tenth of the LR at the minimum of the smoothed loss (``tame.engine.lr_suggestion``:
the minimum itself is already at the edge of divergence); a sweep whose loss is still falling at its end, or too
short to have a shape, suggests nothing and says why. The AM trained here is thrown away.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, field
from itertools import islice
from pathlib import Path

from tame.config import Config, expand_path
from tame.distributed import Dist, all_reduce_mean
from tame.engine.lr_suggestion import format_lr, suggest_max_lr
from tame.engine.optim import build_optimizer, set_lr
from tame.engine.train import TrainingSetup, build_training, check_data_paths
from tame.errors import TameError
from tame.io import write_text_atomic
from tame.session import run_session

logger = logging.getLogger(__name__)
RESULT_FILE = "lr_find.json"
PLOT_FILE = "lr_find.png"


@dataclass
class LrFindResult:
    lrs: list[float] = field(default_factory=list)  # the weights' LR at each step (biases: 2x)
    loss: list[float] = field(default_factory=list)  # the loss of each step (mean over ranks)
    smoothed_loss: list[float] = field(default_factory=list)
    suggested_max_lr: float | None = None  # a tenth of minimum_lr; None: see suggestion_reason
    minimum_lr: float | None = None  # the LR at the lowest smoothed loss
    steepest_lr: float | None = None  # the LR where the smoothed loss falls fastest, before the minimum
    suggestion_reason: str = ""  # why there is no suggestion ("" when there is one)
    stopped: str = "end of pass"  # or: diverged, non-finite loss


def default_output_dir(cfg: Config) -> Path:
    """Where the LR range test of ``cfg`` writes by default: ``output_dir/lr_find``."""
    return expand_path(cfg.output_dir, "output_dir") / "lr_find"


def lr_range_test(
    cfg: Config,
    *,
    start_lr: float = 1e-8,
    end_lr: float = 10.0,
    steps: int = 0,
    smoothing: float = 0.98,
    output_dir: Path | None = None,
) -> LrFindResult:
    """Sweep the LR from ``start_lr`` to ``end_lr`` over ``steps`` batches (0: one pass, or
    ``train.max_steps_per_epoch``) of the training that ``cfg`` describes; every rank returns the same result.

    Rank 0 writes ``lr_find.json`` and ``lr_find.png`` to ``output_dir`` (default :func:`default_output_dir`).
    A sweep that recorded no finite loss is a :class:`TameError` (on rank 0, after writing the files).
    """
    if not 0 < start_lr < end_lr:
        raise TameError(f"--start-lr {start_lr} and --end-lr {end_lr}: need 0 < start < end")
    if steps < 0:
        raise TameError(f"--steps {steps}: must not be negative")
    if not 0 <= smoothing < 1:
        raise TameError(f"--smoothing {smoothing}: must be in [0, 1)")
    output_dir = output_dir or default_output_dir(cfg)
    data_paths = check_data_paths(cfg)
    with run_session(cfg, output_dir=output_dir) as session:  # the process group; the global batch checked
        cfg, dist = session.cfg, session.dist
        setup = build_training(cfg, dist, data_paths=data_paths)
        cfg = setup.config  # the preprocessing resolved from the model
        steps = min(steps or setup.steps_per_epoch, len(setup.loader))
        result = sweep(cfg, dist, setup, start_lr=start_lr, end_lr=end_lr, steps=steps, smoothing=smoothing)
        if dist.is_main:
            report(result, *write_result(result, cfg, session.output_dir))
    return result


def report(result: LrFindResult, json_path: Path, plot_path: Path) -> None:
    """Log where the curve is (the suggestion, or why there is none, is in ``result``); no finite loss at all is an
    error."""
    if not result.smoothed_loss:
        raise TameError(f"the LR range test recorded no finite loss ({result.stopped}); see {json_path}")
    logger.info("curve in %s and %s", plot_path, json_path)


def sweep(
    cfg: Config,
    dist: Dist,
    setup: TrainingSetup,
    *,
    start_lr: float,
    end_lr: float,
    steps: int,
    smoothing: float = 0.98,
    diverge: float = 4.0,
) -> LrFindResult:
    """Train for up to ``steps`` batches with the LR rising from ``start_lr`` to ``end_lr`` (every rank calls this)."""
    model = setup.model
    train = cfg.train
    optimizer = build_optimizer(
        model.attention,
        start_lr,
        train.weight_decay,
        train.momentum,
        train.nesterov,
        bias_lr_factor=train.bias_lr_factor,
        bias_weight_decay=train.bias_weight_decay,
    )
    factor = (end_lr / start_lr) ** (1.0 / max(steps - 1, 1))
    result = LrFindResult()
    average, best = 0.0, math.inf
    setup.loader.set_epoch(0)
    model.train()
    batches = islice(setup.loader, steps)
    if dist.is_main:
        from tqdm.auto import tqdm

        batches = tqdm(batches, total=steps, unit="step", desc="lr-find", dynamic_ncols=True, mininterval=1.0)
    for i, (images, labels) in enumerate(batches, start=1):
        lr = start_lr * factor ** (i - 1)
        set_lr(optimizer, lr)
        losses = setup.losses(images, labels)  # {loss, ce, area, var}
        loss = all_reduce_mean(dist, losses["loss"].detach().float()).item()  # the same number on every rank
        if not math.isfinite(loss):
            result.stopped = "non-finite loss"
            break
        average = smoothing * average + (1 - smoothing) * loss
        smoothed = average / (1 - smoothing**i)
        result.lrs.append(lr)
        result.loss.append(loss)
        result.smoothed_loss.append(smoothed)
        if i > 1 and smoothed > diverge * best:
            result.stopped = "diverged"
            break
        best = min(best, smoothed)
        if dist.is_main:
            batches.set_postfix(lr=f"{lr:.2e}", loss=f"{smoothed:.4g}", refresh=False)
        setup.update(optimizer, losses["loss"])
    if result.smoothed_loss:
        result.minimum_lr = result.lrs[min(range(len(result.lrs)), key=result.smoothed_loss.__getitem__)]
    suggestion = suggest_max_lr(result.lrs, result.smoothed_loss)
    result.suggested_max_lr, result.steepest_lr = suggestion.max_lr, suggestion.steepest_lr
    result.suggestion_reason = suggestion.reason
    return result


def write_result(result: LrFindResult, cfg: Config, output_dir: Path) -> tuple[Path, Path]:
    """``lr_find.json`` (the curve, the suggestion, the config) and ``lr_find.png`` in ``output_dir``."""
    from tame.viz.curves import plot_lr_range

    output_dir.mkdir(parents=True, exist_ok=True)
    json_path = output_dir / RESULT_FILE
    write_text_atomic(json_path, json.dumps({**asdict(result), "config": asdict(cfg)}, indent=1))
    title = f"LR range test: {cfg.model.name} {cfg.model.version}, batch {cfg.data.batch_size}"
    plot_path = plot_lr_range(
        result.lrs,
        result.smoothed_loss,
        result.suggested_max_lr,
        output_dir / PLOT_FILE,
        title=title,
        minimum_lr=result.minimum_lr,
        note=f"no suggestion: {result.suggestion_reason}" if result.suggested_max_lr is None else "",
        format_lr=format_lr,
    )
    return json_path, plot_path
