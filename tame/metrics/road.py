"""ROAD: RemOve And Debias (Rong, Leemann et al., ICML 2022), as T-TAME reports it.

At each removal level q (10 … 90 %) the ceil(q·H·W) most relevant (MoRF) or least relevant (LeRF) pixels of
the explanation map are removed and imputed by *noisy linear imputation*: every removed pixel takes the
weighted mean of its 8 neighbours (weight 1/6 for the 4 direct, 1/12 for the 4 diagonal ones, renormalised at
the border), solved jointly for all removed pixels as one sparse linear system, plus Gaussian noise (σ = 0.01
on the [0, 1] image). The classifier then sees the imputed images; the metric is the accuracy and the
probability of the originally predicted class at each level (MoRF: lower is better; LeRF: higher is better).

Ordering uses the same stable sort as AD/IC (ties in raster order). The noise is one fixed field drawn from
``seed`` (not a stream that advances per image), so results do not depend on batching or sharding.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from tame.errors import TameError
from tame.metrics.ad_ic import pixel_mask, pixel_order, top_count

LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)  # fractions of pixels removed
ORDERS = ("morf", "lerf")  # most relevant first, least relevant first
NOISE = 0.01

# (dy, dx, weight) of the 8 neighbours (Rong et al.'s reference imputer)
NEIGHBOUR_WEIGHTS = (
    (1, 1, 1 / 12),
    (0, 1, 1 / 6),
    (-1, 1, 1 / 12),
    (1, -1, 1 / 12),
    (0, -1, 1 / 6),
    (-1, -1, 1 / 12),
    (1, 0, 1 / 6),
    (-1, 0, 1 / 6),
)


def removal_mask(
    maps: torch.Tensor, fraction: float, order: str = "morf", ranking: torch.Tensor | None = None
) -> torch.Tensor:
    """maps: [B, H, W] -> bool [B, H, W], True on the ceil(fraction·H·W) pixels to remove.

    ``order``: ``morf`` removes the most relevant pixels, ``lerf`` the least relevant.
    ``ranking``: ``pixel_order(maps)`` when the caller already has it.
    """
    if order not in ORDERS:
        raise TameError(f"ROAD order must be one of {', '.join(ORDERS)}, got {order!r}")
    height, width = maps.shape[-2:]
    count = top_count(fraction, height, width)
    if ranking is None:
        ranking = pixel_order(maps)
    chosen = ranking[:, :count] if order == "morf" else ranking[:, ranking.shape[1] - count :]
    return pixel_mask(chosen, maps)


def linear_imputation(image: torch.Tensor, removed: torch.Tensor) -> torch.Tensor:
    """image: [C, H, W], removed: bool [H, W] -> [C, H, W] with the removed pixels imputed (no noise).

    Solves, for every removed pixel i, s_i·x_i − Σ_{j removed} w_ij·x_j = Σ_{j kept} w_ij·v_j over its
    in-image neighbours j (s_i = Σ_j w_ij): symmetric and positive definite whenever a pixel is kept.
    """
    from scipy.sparse import csc_matrix
    from scipy.sparse.linalg import splu

    channels, height, width = image.shape
    flat_removed = removed.reshape(-1).cpu().numpy()
    unknown = np.flatnonzero(flat_removed)  # [N] raster indices of the removed pixels
    count = unknown.size
    if count == 0:
        return image.clone()
    if count == flat_removed.size:
        raise TameError("ROAD cannot impute an image with every pixel removed")
    variable = np.full(flat_removed.size, -1, dtype=np.int64)
    variable[unknown] = np.arange(count)
    values = image.reshape(channels, -1).detach().cpu().double().numpy()  # [C, H·W]
    ys, xs = np.divmod(unknown, width)

    diagonal = np.zeros(count)
    rhs = np.zeros((count, channels))
    rows, cols, weights = [np.arange(count)], [np.arange(count)], []
    for dy, dx, weight in NEIGHBOUR_WEIGHTS:
        ny, nx = ys + dy, xs + dx
        inside = (ny >= 0) & (ny < height) & (nx >= 0) & (nx < width)
        equation = np.flatnonzero(inside)
        neighbour = ny[inside] * width + nx[inside]
        diagonal[equation] += weight
        is_unknown = flat_removed[neighbour]
        rows.append(equation[is_unknown])
        cols.append(variable[neighbour[is_unknown]])
        weights.append(np.full(int(is_unknown.sum()), -weight))
        rhs[equation[~is_unknown]] += weight * values[:, neighbour[~is_unknown]].T
    system = csc_matrix(
        (np.concatenate([diagonal, *weights]), (np.concatenate(rows), np.concatenate(cols))), shape=(count, count)
    )
    solution = splu(system, permc_spec="MMD_AT_PLUS_A").solve(rhs)  # [N, C]

    filled = values.copy()
    filled[:, unknown] = solution.T
    return torch.from_numpy(filled).to(dtype=image.dtype, device=image.device).view_as(image)


def noise_field(shape: Sequence[int], seed: int = 0, std: float = NOISE) -> torch.Tensor:
    """The fixed N(0, std²) field [C, H, W] added to imputed pixels (CPU, float32)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(tuple(shape), generator=generator) * std


def noisy_linear_imputation(
    images: torch.Tensor, removed: torch.Tensor, *, noise: float = NOISE, seed: int = 0, workers: int = 1
) -> torch.Tensor:
    """images: [B, C, H, W], removed: bool [B, H, W] -> imputed images [B, C, H, W] (same device and dtype).

    ``workers`` threads solve images in parallel (the sparse solver releases the GIL).
    """
    if images.dim() != 4 or removed.shape != (images.shape[0], *images.shape[-2:]):
        raise TameError(
            f"expected images [B, C, H, W] and a removal mask [B, H, W], got "
            f"{tuple(images.shape)} and {tuple(removed.shape)}"
        )
    cpu_images, cpu_removed = images.detach().cpu(), removed.cpu()
    solve = lambda b: linear_imputation(cpu_images[b], cpu_removed[b])  # noqa: E731
    if workers > 1 and images.shape[0] > 1:
        with ThreadPoolExecutor(min(workers, images.shape[0])) as pool:
            imputed = list(pool.map(solve, range(images.shape[0])))
    else:
        imputed = [solve(b) for b in range(images.shape[0])]
    out = torch.stack(imputed)
    if noise > 0:
        field = noise_field(images.shape[1:], seed, noise).to(out.dtype)
        out = torch.where(cpu_removed.unsqueeze(1), out + field, out)
    return out.to(images.device)
