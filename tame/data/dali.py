"""NVIDIA DALI pipelines built from a list file: decode -> resize shorter side -> crop (-> flip), one per epoch.

Each epoch (or resumed epoch) gets a fresh pipeline whose ``fn.readers.file(files=..., labels=...)`` reads this
rank's samples of :meth:`Loader.plan` in order (``random_shuffle=False``, starting at ``skip_batches``); the
reader's labels are positions in that order, mapped back to list labels on the host. Crop positions and flips come
from the plan through ``fn.external_source``, so DALI and the PIL loader crop the same windows and a resumed epoch
repeats the uninterrupted one exactly. The resize uses the same integer output size as the PIL loader
(``fn.peek_image_shape`` + arithmetic) with antialiased linear or cubic interpolation (the model's own).

On a GPU the decoder is ``mixed`` (nvJPEG) and the rest runs on the GPU; without one the same pipeline runs on the
CPU (``device_id=None``, CPU decoder). A file DALI cannot decode stops the pipeline; the loader then decodes that
batch's files with PIL to name the bad one (``data.validate: decode`` finds them all before a run).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import numpy as np
import torch

from tame.data.images import DecodeError, load_rgb
from tame.data.sharding import EpochPlan, Loader
from tame.errors import TameError


@functools.cache
def dali_available(cpu_only: bool) -> bool:
    """True if DALI imports (and, with ``cpu_only``, runs a small CPU-only pipeline)."""
    try:
        import nvidia.dali.fn as fn
        from nvidia.dali import pipeline_def
    except ImportError:
        return False
    if not cpu_only:
        return True

    @pipeline_def(batch_size=1, num_threads=1, device_id=None)
    def probe():
        return fn.random.uniform(range=(0.0, 1.0), seed=0)

    try:
        pipe = probe()
        pipe.build()
        pipe.run()
    except RuntimeError:
        return False
    return True


def build_pipeline(
    files: list[str],
    positions: list[int],
    augment,
    *,
    batch_size: int,
    threads: int,
    device_id: int | None,
    resize: int,
    crop: int,
    interpolation: str,
):
    """A DALI pipeline yielding (images [B, 3, crop, crop] float32 in [0, 1], positions [B, 1] int32).

    ``augment``: a batch source ``iteration -> (crop_pos_x [B] float32, crop_pos_y [B] float32, mirror [B] int32)``,
    or None for the centre crop without flip.
    """
    import nvidia.dali.fn as fn
    import nvidia.dali.math as dmath
    import nvidia.dali.types as types
    from nvidia.dali import pipeline_def

    interp_type = {"bilinear": types.INTERP_LINEAR, "bicubic": types.INTERP_CUBIC}[interpolation]

    @pipeline_def(batch_size=batch_size, num_threads=threads, device_id=device_id, prefetch_queue_depth=2)
    def pipeline():
        encoded, position = fn.readers.file(
            files=files, labels=positions, random_shuffle=False, pad_last_batch=True, name="reader"
        )
        shape = fn.peek_image_shape(encoded)  # [H, W, C] int64
        images = fn.decoders.image(encoded, device="cpu" if device_id is None else "mixed", output_type=types.RGB)
        height, width = shape[0], shape[1]
        short = dmath.min(height, width)
        images = fn.resize(
            images,
            resize_y=fn.cast(resize * height // short, dtype=types.FLOAT),
            resize_x=fn.cast(resize * width // short, dtype=types.FLOAT),
            interp_type=interp_type,
            antialias=True,
        )
        if augment is None:
            pos_x, pos_y, mirror = 0.5, 0.5, 0
        else:
            pos_x, pos_y, mirror = fn.external_source(source=augment, num_outputs=3, batch=True)
        images = fn.crop_mirror_normalize(
            images,
            crop=(crop, crop),
            crop_pos_x=pos_x,
            crop_pos_y=pos_y,
            mirror=mirror,
            dtype=types.FLOAT,
            output_layout="CHW",
            mean=[0.0, 0.0, 0.0],
            std=[255.0, 255.0, 255.0],
        )
        return images, position

    pipe = pipeline()
    pipe.build()
    return pipe


class DaliLoader(Loader):
    """DALI backend: ``mixed`` decoding on a CUDA device, the CPU pipeline otherwise."""

    backend = "dali"

    def __init__(self, *args, interpolation: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.interpolation = interpolation  # bilinear | bicubic (INTERP_LINEAR | INTERP_CUBIC, antialiased)

    def _device_id(self) -> int | None:
        if self.device.type != "cuda":
            return None
        return self.device.index if self.device.index is not None else torch.cuda.current_device()

    def _augment_source(self, plan: EpochPlan, skip: int):
        if plan.augment is None:
            return None

        def source(iteration: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            k = skip + iteration
            if k >= plan.num_batches:
                raise StopIteration
            augment = plan.augment[plan.batch(k)]
            return augment[:, 0].copy(), augment[:, 1].copy(), (augment[:, 2] < 0.5).astype(np.int32)

        return source

    def _iterate(self, plan: EpochPlan, skip: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        from nvidia.dali.plugin.pytorch.torch_utils import to_torch_tensor

        start = skip * plan.batch_size
        indices = plan.indices[start:]
        files = [str(self.root / self.entries[index].path) for index in indices.tolist()]
        pipe = build_pipeline(
            files,
            list(range(len(files))),
            self._augment_source(plan, skip),
            batch_size=plan.batch_size,
            threads=max(1, self.workers),
            device_id=self._device_id(),
            resize=self.resize,
            crop=self.crop,
            interpolation=self.interpolation,
        )
        for k in range(skip, plan.num_batches):
            try:
                images, positions = pipe.run()
            except RuntimeError as err:
                raise TameError(self._decode_failure(plan, k, err)) from None
            rows = plan.batch(k)
            size = rows.stop - rows.start
            images = to_torch_tensor(images.as_tensor(), copy=True)[:size]  # [B, 3, crop, crop] on the device
            # the reader pads the last batch by repeating its last sample: keep the real ones
            order = np.asarray(positions.as_tensor()).reshape(-1)[:size] + start
            if not np.array_equal(order, np.arange(rows.start, rows.stop)):
                raise RuntimeError(f"DALI returned samples out of order in batch {k}")
            yield images.to(self.device, non_blocking=True), self.batch_labels(plan, k)

    def _decode_failure(self, plan: EpochPlan, k: int, err: RuntimeError) -> str:
        """Name the file that stopped the pipeline (decoding with PIL the files of batch ``k`` and the prefetched
        ones after it)."""
        suspects = plan.indices[plan.batch(k).start : plan.batch(k + 2).stop]
        for index in suspects.tolist():
            entry = self.entries[index]
            try:
                load_rgb(self.root / entry.path)
            except DecodeError as bad:
                return (
                    f"{self.list_file}:{entry.line}: {entry.path}: {bad} (DALI stopped on it; run `tame datalist "
                    f"check {self.list_file} --root {self.root} --decode` to find every bad image)"
                )
        lines = ", ".join(str(self.entries[index].line) for index in suspects[:8].tolist())
        lines += ", ..." if len(suspects) > 8 else ""
        reason = " ".join(str(err).split("encountered:")[-1].split("Current pipeline object")[0].split())
        return (
            f"{self.list_file}: DALI failed on one of list lines {lines}, which PIL decodes: {reason} "
            "(use data.backend=torch, or re-encode those images as JPEG)"
        )
