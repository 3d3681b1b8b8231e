"""The mathematics of every rule as pure functions: (N, d) updates in, arrays out.

Each function accepts a numpy array or a torch tensor (CPU or CUDA, float32 or float64) and
returns the same kind. Host data runs through the fused numba kernels, other devices through
chunked torch code; ``backend="torch"`` forces the latter (the tests use it as a reference).

Inside the package the rules pass a validated :class:`~invariant_aggregator._inputs.Stack`
instead; d-vectors then come back as one internal type, a torch tensor (a zero-copy view of the
kernel's numpy output on the host), and the rule's base ``__call__`` restores the caller's type
once. Small (N, N) matrices (distances, Gram) are float64 numpy arrays in every case.

Conventions shared by all rules
-------------------------------
* sign(0) = 0: a zero coordinate abstains in every sign count.
* Order statistics x_(0) <= ... <= x_(N-1) are 0-based here; Definition 3 of the paper keeps
  x_(k), ..., x_(N-k-1) with k = ceil(alpha * N).
* Thresholds are exact in intent: alpha * N or tau * N within a relative 1e-9 of an integer
  counts as that integer, so alpha = 0.1 with N = 10 trims one value and tau = 0.7 needs 7 signs.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch

from . import _cpu_kernels as cpu
from . import _torch_kernels as tk
from ._codegen import MAX_SPECIALISED_ROWS, window_kernel
from ._inputs import Stack, as_stack, ceil_product, check_choice, check_weights, raise_non_finite
from ._networks import window_plan
from .errors import AggregatorError

__all__ = [
    "SPECIALISE_MIN_COORDINATES",
    "trim_bounds",
    "min_agreeing_signs",
    "sign_sum",
    "sign_consistency",
    "sorted_window_mean",
    "trimmed_mean",
    "coordinate_median",
    "and_mask_mean",
    "invariant_aggregate",
    "weighted_sum",
    "weighted_mean",
    "pairwise_sq_distances",
    "gram_matrix",
    "row_sq_norms",
    "nearest_sum",
    "krum_scores",
    "krum_select",
    "rank_with_value_ties",
    "cosine_distances",
    "GeometricMedian",
    "geometric_median",
    "mean_std_ratio",
    "top_fraction_mask",
    "power_of_two_scale",
    "row_max_abs",
    "row_norms",
    "row_distances_to",
    "cosine_similarities",
    "closest_to_median_mean",
    "bulyan_select",
    "clip_factors",
    "foolsgold_weights",
    "error_feedback_top_k",
]

TRIM_MODES = ("definition3", "authors")
BACKENDS = ("auto", "torch")
SPECIALISE_MIN_COORDINATES = 1 << 18  # below this the generic kernel is faster than compiling


# --------------------------------------------------------------------------- conventions
def trim_bounds(n: int, alpha: float | None, trim: str = "definition3") -> tuple[int, int]:
    """Sorted positions [lo, hi) (0-based) that the trimmed mean keeps.

    ``definition3``: k = ceil(alpha*N) from each side (the paper's Definition 3).
    ``authors``: [int(0.45 N), int(0.55 N)), the slicing of the authors' code (for N = 20 the
    two middle values, i.e. the median; asymmetric for odd N, empty for N in {3, 5, 7, 9, ...}
    where the two bounds coincide). ``alpha`` is not used by this mode.
    """
    check_choice("trim", trim, TRIM_MODES)
    if trim == "authors":
        lo, hi = int(0.45 * n), int(0.55 * n)
        if hi <= lo:
            raise AggregatorError(
                f"trim='authors' keeps sorted positions [int(0.45*N), int(0.55*N)) = [{lo}, {hi}) for N = {n}: "
                "no values. Use trim='definition3' with an alpha, or an N where the slice is non-empty "
                "(e.g. N = 2, 4, 10, 20)"
            )
        return lo, hi
    k = ceil_product(alpha, n)
    if n - 2 * k < 1:
        raise AggregatorError(
            f"trim level alpha = {alpha} removes ceil(alpha*N) = {k} values from each side of N = {n}, "
            f"leaving none; need alpha*N <= (N-1)/2, i.e. alpha <= {(n - 1) / (2 * n):.4g} for this N, or more clients"
        )
    return k, n - k


def min_agreeing_signs(n: int, tau: float | None = None, tau_sum: float | None = None) -> int:
    """Smallest |sum of signs| that passes the AND-mask: ceil(tau * N), or ceil(tau_sum).

    ``tau`` is on the averaged scale |(1/N) sum sign| >= tau used by the authors' code; ``tau_sum``
    is the unnormalised threshold of Eq. 3 (|sum sign| >= tau_sum). Exactly one is given.
    A threshold of 0 keeps every coordinate (sign consistency is always >= 0).
    """
    if (tau is None) == (tau_sum is None):
        raise AggregatorError("give exactly one of tau (averaged scale, in [0, 1]) or tau_sum (Eq. 3's sum scale)")
    if tau is not None:
        return ceil_product(tau, n)
    return ceil_product(tau_sum, 1)


# --------------------------------------------------------------------------- dispatch helpers
def _on_host(stack: Stack, backend: str) -> bool:
    check_choice("backend", backend, BACKENDS)
    return backend == "auto" and stack.cpu is not None


def _rows(stack: Stack, rows) -> np.ndarray:
    if rows is None:
        return np.arange(stack.n, dtype=np.int64)
    return np.ascontiguousarray(rows, dtype=np.int64)


def _stack(updates, rule: str) -> Stack:
    return updates if isinstance(updates, Stack) else as_stack(updates, rule=rule)


def _vector(updates, stack: Stack, raw):
    """A d-vector result: the internal torch tensor for a rule (which passed a Stack), the
    caller's own type for a direct call."""
    t = torch.from_numpy(raw) if isinstance(raw, np.ndarray) else raw
    return t if isinstance(updates, Stack) else stack.wrap(t)


def _on_device(rule: str, fn, stack: Stack, rows: np.ndarray, *args):
    """Run a torch kernel on the selected rows; NaN/Inf becomes the rule's AggregatorError."""
    try:
        return fn(stack.tensor, torch.as_tensor(rows, dtype=torch.long, device=stack.device), *args)
    except tk.NonFinite:
        raise_non_finite(rule, stack, rows)


# --------------------------------------------------------------------------- coordinate-wise
def _window_mean(stack: Stack, rows: np.ndarray, lo: int, hi: int, min_agree: int, backend: str, rule: str):
    """Raw result (numpy or tensor) of the sorted-window mean over ``rows``.

    A mean lies between the values it averages, so it is always representable; only the float64
    sum on the way can overflow (float64 updates near 1e308). That case, seen as a non-finite
    output, is recomputed on values scaled by a power of two (exact)."""
    n = rows.shape[0]
    if not _on_host(stack, backend):
        out = _on_device(rule, tk.window_mean, stack, rows, lo, hi, min_agree)
    else:
        x = stack.cpu
        out = np.empty(stack.d, dtype=x.dtype)
        if stack.d >= SPECIALISE_MIN_COORDINATES and 2 <= n <= MAX_SPECIALISED_ROWS:
            bad = cpu.run(window_kernel(n, lo, hi), x, rows, min_agree, out, cpu.N_CHUNKS)
        else:
            first, second = window_plan(n, lo, hi)
            block = cpu.block_columns(n, x.itemsize)
            bad = cpu.run(
                cpu.window_mean, x, rows, lo, hi, first, second, min_agree, out, block, cpu.chunk_count(stack.d, block)
            )
        if bad:
            raise_non_finite(rule, stack, rows)
    # float32 values sum in float64 without overflow: only float64 input needs the check
    if stack.dtype == torch.float64 and not bool(torch.as_tensor(out).isfinite().all()):
        scale = float(power_of_two_scale(row_max_abs(stack, rows=rows).max())) * 2.0 ** -(hi - lo).bit_length()
        out = _on_device(rule, tk.window_mean, stack, rows, lo, hi, min_agree, scale)
    return out


def sorted_window_mean(updates, lo: int, hi: int, *, min_agree: int = 0, rows=None, backend: str = "auto"):
    """Per coordinate, the mean of the order statistics x_(lo), ..., x_(hi-1) (0-based),
    times the AND-mask 1[|sum_i sign(x_i)| >= min_agree]. The building block of trimmed mean,
    median and the invariant aggregator."""
    stack = _stack(updates, "sorted_window_mean")
    r = _rows(stack, rows)
    if not 0 <= lo < hi <= r.shape[0]:
        raise AggregatorError(f"window [lo, hi) = [{lo}, {hi}) must satisfy 0 <= lo < hi <= N = {r.shape[0]}")
    return _vector(updates, stack, _window_mean(stack, r, lo, hi, min_agree, backend, "sorted_window_mean"))


def sign_sum(updates, *, rows=None, backend: str = "auto"):
    """S_k = sum_i sign(g_ik) as int32, with sign(0) = 0."""
    stack = _stack(updates, "sign_sum")
    r = _rows(stack, rows)
    if not _on_host(stack, backend):
        return _vector(updates, stack, _on_device("sign_sum", tk.sign_sum, stack, r))
    out = np.empty(stack.d, dtype=np.int32)
    block = cpu.block_columns(r.shape[0], stack.cpu.itemsize)
    if cpu.run(cpu.sign_sum, stack.cpu, r, out, block, cpu.chunk_count(stack.d, block)):
        raise_non_finite("sign_sum", stack, r)
    return _vector(updates, stack, out)


def sign_consistency(updates, *, backend: str = "auto"):
    """|(1/N) sum_i sign(g_ik)| per coordinate, in [0, 1] (Definition 1, averaged scale)."""
    stack = _stack(updates, "sign_consistency")
    s = sign_sum(stack, backend=backend)
    return _vector(updates, stack, s.abs().to(stack.dtype) / stack.n)


def trimmed_mean(updates, alpha: float, *, trim: str = "definition3", backend: str = "auto"):
    """TrMean(x; alpha) = (1 / (N - 2k)) sum_{i=k}^{N-k-1} x_(i), k = ceil(alpha N) (Definition 3)."""
    stack = _stack(updates, "trimmed_mean")
    lo, hi = trim_bounds(stack.n, alpha, trim)
    return _vector(updates, stack, _window_mean(stack, _rows(stack, None), lo, hi, 0, backend, "trimmed_mean"))


def coordinate_median(updates, *, rows=None, backend: str = "auto"):
    """Coordinate-wise median; for even N the midpoint of the two middle values."""
    stack = _stack(updates, "median")
    r = _rows(stack, rows)
    n = r.shape[0]
    return _vector(updates, stack, _window_mean(stack, r, (n - 1) // 2, n // 2 + 1, 0, backend, "median"))


def and_mask_mean(updates, tau: float | None = None, *, tau_sum: float | None = None, backend: str = "auto"):
    """m ⊙ mean(g) with m_k = 1[|sum_i sign(g_ik)| >= tau N] (AND-mask, Parascandolo et al. 2021)."""
    stack = _stack(updates, "and_mask")
    agree = min_agreeing_signs(stack.n, tau, tau_sum)
    return _vector(updates, stack, _window_mean(stack, _rows(stack, None), 0, stack.n, agree, backend, "and_mask"))


def invariant_aggregate(
    updates, tau: float | None = None, alpha: float | None = None, *, tau_sum=None, trim="definition3", backend="auto"
):
    """Algorithm 1: m ⊙ TrMean(g; alpha), m_k = 1[|sum_i sign(g_ik)| >= tau N], in one pass."""
    stack = _stack(updates, "invariant")
    agree = min_agreeing_signs(stack.n, tau, tau_sum)
    lo, hi = trim_bounds(stack.n, alpha, trim)
    return _vector(updates, stack, _window_mean(stack, _rows(stack, None), lo, hi, agree, backend, "invariant"))


# --------------------------------------------------------------------------- scaled forms
def power_of_two_scale(magnitudes) -> np.ndarray:
    """2^-e per magnitude m = f 2^e (0.5 <= f < 1), so that m * scale lies in [0.5, 1); 1 for 0.

    Multiplying by a power of two is exact for every normal float, so a computation done on
    scaled values and scaled back gives the same bits as the plain one wherever the plain one
    does not overflow or underflow, and the right answer where it does."""
    _, exponent = np.frexp(np.asarray(magnitudes, dtype=np.float64))
    # a subnormal magnitude has an exponent below -1021, whose inverse power of two overflows:
    # scale it as far as a finite factor goes (the result then lies in [2^-53, 0.5))
    return np.ldexp(1.0, -np.maximum(exponent, -1021))


def row_max_abs(updates, *, rows=None) -> np.ndarray:
    """max_j |g_ij| per selected row, float64 numpy (one pass, torch code on every device)."""
    stack = _stack(updates, "row_max_abs")
    return _on_device("row_max_abs", tk.row_max_abs, stack, _rows(stack, rows)).cpu().numpy()


def _overflow_error(rule: str, what: str) -> AggregatorError:
    return AggregatorError(
        f"{rule}: {what} exceeds the floating-point range of the updates' dtype, so no finite result is "
        "correct; an update is absurdly large (a scaled attack?). Drop it, or aggregate in float64"
    )


# --------------------------------------------------------------------------- mean/variance ratio
def mean_std_ratio(updates, *, rows=None):
    """|mean_k| / std_k per coordinate over the clients (sample std, ddof = 1), float64 torch;
    a coordinate with std 0 has ratio inf when its mean is non-zero, 0 when it is 0 (all
    values equal). The statistic of the paper's Appendix D.2 ablation, computed in scaled form
    (two passes: the mean, then the spread around it)."""
    stack = _stack(updates, "mean_std_ratio")
    r = _rows(stack, rows)
    if r.shape[0] < 2:
        raise AggregatorError(f"mean_std_ratio: a sample std needs at least 2 updates, got {r.shape[0]}")
    mean = weighted_mean(stack, rows=r, rule="mean_std_ratio", dtype=torch.float64)
    std = _on_device("mean_std_ratio", tk.column_std, stack, r, mean)
    flat = std == 0
    ratio = mean.abs() / torch.where(flat, 1.0, std)
    return torch.where(flat, torch.where(mean != 0, torch.inf, 0.0).to(torch.float64), ratio)


def top_fraction_mask(score: torch.Tensor, keep: int) -> torch.Tensor:
    """A 0/1 mask of the ``keep`` largest scores; equal scores are taken lowest index first."""
    order = torch.sort(score, descending=True, stable=True).indices
    mask = torch.zeros_like(score)
    mask[order[:keep]] = 1.0
    return mask


# --------------------------------------------------------------------------- row combinations
def weighted_sum(
    updates,
    coefficients,
    *,
    rows=None,
    divisor: float = 1.0,
    backend: str = "auto",
    rule: str = "weighted_sum",
    dtype=None,
):
    """(sum_i c_i g_i) / divisor over ``rows`` (all rows by default), accumulated in float64.

    If the float64 sum overflows on the way (updates near 1e308), it is recomputed with the
    updates and coefficients scaled by powers of two; a result that itself lies outside the
    output dtype's range raises AggregatorError. ``dtype`` (torch.float64) asks for a float64
    result whatever the input dtype (for iterations that must not round to float32)."""
    stack = _stack(updates, rule)
    r = _rows(stack, rows)
    coef = np.ascontiguousarray(coefficients, dtype=np.float64)
    if coef.shape != r.shape:
        raise AggregatorError(f"{rule}: {coef.shape[0]} coefficients for {r.shape[0]} rows")
    if not (np.all(np.isfinite(coef)) and np.isfinite(divisor) and divisor != 0):
        raise AggregatorError(
            f"{rule}: coefficients and divisor must be finite (divisor non-zero), got {coef}, {divisor}"
        )
    out_dtype = dtype or stack.dtype
    if not _on_host(stack, backend):
        out = _on_device(rule, tk.weighted_row_sum, stack, r, coef, float(divisor), 1.0, out_dtype)
    else:
        host = np.empty(stack.d, dtype=np.float64 if out_dtype == torch.float64 else stack.cpu.dtype)
        block = cpu.block_columns(r.shape[0], stack.cpu.itemsize)
        if cpu.run(
            cpu.weighted_row_sum, stack.cpu, r, coef, float(divisor), host, block, cpu.chunk_count(stack.d, block)
        ):
            raise_non_finite(rule, stack, r)
        out = torch.from_numpy(host)
    may_overflow = stack.dtype == torch.float64 or np.abs(coef).sum() > abs(divisor)
    if may_overflow and not bool(torch.isfinite(out).all()):
        out = _scaled_weighted_sum(stack, r, coef, float(divisor), out_dtype, rule)
    return _vector(updates, stack, out)


def _scaled_weighted_sum(stack: Stack, r: np.ndarray, coef: np.ndarray, divisor: float, out_dtype, rule: str):
    """The overflow path of :func:`weighted_sum`: sum (c_i 2^-a)(g_i 2^-b) / divisor, times 2^(a+b)."""
    coef_scale = float(power_of_two_scale(np.abs(coef).max()))
    data_scale = float(power_of_two_scale(row_max_abs(stack, rows=r).max()))
    # the scaling of the data happens in the kernel's float64 blocks (no copy of the stack)
    scaled = _on_device(rule, tk.weighted_row_sum, stack, r, coef * coef_scale, divisor, data_scale, torch.float64)
    out = scaled / coef_scale
    if not bool(torch.isfinite(out.to(out_dtype)).all()):
        raise _overflow_error(rule, "the weighted sum of the updates")
    return out.to(out_dtype)


def weighted_mean(updates, weights=None, *, rows=None, backend: str = "auto", rule: str = "weighted_mean", dtype=None):
    """sum_i w_i g_i / sum_i w_i over ``rows`` (uniform weights by default), float64 accumulation.

    Weights are first scaled by a power of two (exact), so weights up to 1e308 work."""
    stack = _stack(updates, rule)
    n = _rows(stack, rows).shape[0]
    w = np.ones(n) if weights is None else check_weights(weights, n, rule)
    w = w * power_of_two_scale(w.max())
    return _vector(
        updates, stack, weighted_sum(stack, w, rows=rows, divisor=w.sum(), backend=backend, rule=rule, dtype=dtype)
    )


def _matrix(stack: Stack, rows, backend: str, cpu_fn, torch_fn, rule: str) -> np.ndarray:
    r = _rows(stack, rows)
    if not _on_host(stack, backend):
        return _on_device(rule, torch_fn, stack, r).cpu().numpy()
    block = cpu.block_columns(r.shape[0], 8)
    result, bad = cpu.run(cpu_fn, stack.cpu, r, block, cpu.chunk_count(stack.d, block))
    if bad:
        raise_non_finite(rule, stack, r)
    return result


def pairwise_sq_distances(updates, *, rows=None, backend: str = "auto") -> np.ndarray:
    """D_ij = |g_i - g_j|^2 as a float64 numpy (n, n) matrix, accurate for near-identical updates."""
    stack = _stack(updates, "pairwise_sq_distances")
    return _matrix(stack, rows, backend, cpu.pairwise_sq_distances, tk.pairwise_sq_distances, "pairwise_sq_distances")


def gram_matrix(updates, *, rows=None, backend: str = "auto") -> np.ndarray:
    """G_ij = <g_i, g_j> as a float64 numpy matrix."""
    stack = _stack(updates, "gram_matrix")
    return _matrix(stack, rows, backend, cpu.gram, tk.gram, "gram_matrix")


def row_sq_norms(updates, *, rows=None, backend: str = "auto") -> np.ndarray:
    """|g_i|^2 per row, float64 numpy."""
    stack = _stack(updates, "row_sq_norms")
    return _matrix(stack, rows, backend, cpu.row_sq_norms, tk.row_sq_norms, "row_sq_norms")


_SQUARE_UNDERFLOW = 2.0**-900  # below this a sum of squares may have lost digits to underflow


def _rescaled_rows(sq: np.ndarray) -> np.ndarray:
    """Rows whose plain float64 sum of squares overflowed or may have underflowed."""
    return np.flatnonzero(~np.isfinite(sq) | (sq < _SQUARE_UNDERFLOW))


def row_norms(updates, *, rows=None, backend: str = "auto") -> np.ndarray:
    """|g_i| per row, float64 numpy, accurate over the whole float range: rows whose plain sum
    of squares overflows (entries beyond ~1e154) or underflows are redone as
    |g_i| = |g_i s_i| / s_i with s_i a power of two (inf only where the norm itself exceeds
    the float64 range)."""
    stack = _stack(updates, "row_norms")
    r = _rows(stack, rows)
    sq = row_sq_norms(stack, rows=r, backend=backend)
    norms = np.sqrt(sq)
    redo = _rescaled_rows(sq)
    if redo.size:
        scale = power_of_two_scale(row_max_abs(stack, rows=r[redo]))
        sq = _on_device("row_norms", tk.row_sq_norms, stack, r[redo], torch.as_tensor(scale, device=stack.device))
        with np.errstate(over="ignore"):  # a norm beyond float64 is inf: the caller decides
            norms[redo] = np.sqrt(sq.cpu().numpy()) / scale
    return norms


def row_distances_to(updates, z, *, rows=None, backend: str = "auto") -> np.ndarray:
    """|g_i - z| per row for one vector z, float64 numpy, with the same scaled redo as
    :func:`row_norms` for rows whose plain sum of squares overflows."""
    stack = _stack(updates, "row_distances_to")
    r = _rows(stack, rows)
    z64 = torch.as_tensor(z, dtype=torch.float64, device=stack.device)
    if z64.shape != (stack.d,):
        raise AggregatorError(f"row_distances_to: z must have shape ({stack.d},), got {tuple(z64.shape)}")
    if not _on_host(stack, backend):
        sq = _on_device("row_distances_to", tk.row_sq_distances_to, stack, r, z64).cpu().numpy()
    else:
        block = cpu.block_columns(r.shape[0], 8)
        sq, bad = cpu.run(cpu.row_sq_distances_to, stack.cpu, r, z64.numpy(), block, cpu.chunk_count(stack.d, block))
        if bad:
            raise_non_finite("row_distances_to", stack, r)
    dist = np.sqrt(sq)
    redo = np.flatnonzero(~np.isfinite(sq))
    if redo.size:
        biggest = np.maximum(row_max_abs(stack, rows=r[redo]), float(z64.abs().max()))
        scale = power_of_two_scale(biggest) * 0.5  # |g - z| entries reach twice the larger of the two
        sq = _on_device(
            "row_distances_to", tk.row_sq_distances_to, stack, r[redo], z64, torch.as_tensor(scale, device=stack.device)
        )
        with np.errstate(over="ignore"):  # beyond float64: inf, and the caller decides
            dist[redo] = np.sqrt(sq.cpu().numpy()) / scale
    return dist


def cosine_similarities(updates, *, rows=None, backend: str = "auto") -> np.ndarray:
    """cos(g_i, g_j) as a float64 (n, n) matrix (a zero update: similarity 0 to all, 1 to itself
    is not used), computed from the Gram matrix of the rows each scaled by a power of two when a
    plain squared norm overflows or underflows (cosines do not change with a row's scale)."""
    stack = _stack(updates, "cosine_similarities")
    r = _rows(stack, rows)
    g = gram_matrix(stack, rows=r, backend=backend)
    if _rescaled_rows(np.diag(g)).size:
        scale = torch.as_tensor(power_of_two_scale(row_max_abs(stack, rows=r)), device=stack.device)
        g = _on_device("cosine_similarities", tk.gram, stack, r, scale).cpu().numpy()
    return 1.0 - cosine_distances(g)


# --------------------------------------------------------------------------- selection rules
def nearest_sum(dist: np.ndarray, neighbours: int) -> np.ndarray:
    """For each row of a (n, n) distance matrix, the sum of its ``neighbours`` smallest
    distances to the *other* rows (0 neighbours: all zeros)."""
    n = dist.shape[0]
    others = np.sort(dist + np.diag(np.full(n, np.inf)), axis=1)[:, :neighbours]
    with np.errstate(over="ignore"):  # a score beyond float64 is inf; a rule that selects it raises
        return others.sum(axis=1)


def krum_scores(dist: np.ndarray, f: int) -> np.ndarray:
    """Krum score of each update: the sum of its n - f - 2 smallest distances to the others
    (Blanchard et al. 2017). ``dist`` is a (n, n) matrix of squared (or cosine) distances."""
    n = dist.shape[0]
    if n - f - 2 < 1:
        raise AggregatorError(f"Krum with f = {f} needs N >= 2f + 3 = {2 * f + 3} updates, got N = {n}")
    return nearest_sum(dist, n - f - 2)


def rank_with_value_ties(scores: np.ndarray, stack: Stack | None = None, candidates=None) -> np.ndarray:
    """Positions of ``scores`` in increasing order; exactly tied scores are ordered by the
    updates' own values (lexicographically), so a selection never depends on client order.

    Ties are structural, not just rare: with one neighbour (Krum late in Bulyan's selection),
    two mutual nearest neighbours always share a score. ``candidates[i]`` is the row of
    ``stack`` behind ``scores[i]`` (default: row i). Identical rows are interchangeable.
    """
    order = np.argsort(scores, kind="stable")
    if stack is None:
        return order
    candidates = np.arange(len(scores)) if candidates is None else np.asarray(candidates)
    sorted_scores = scores[order]
    start = 0
    while start < len(order):
        stop = start + 1
        while stop < len(order) and sorted_scores[stop] == sorted_scores[start]:
            stop += 1
        if stop - start > 1:
            group = order[start:stop]
            key = functools.cmp_to_key(lambda i, j: _lexicographic(stack.tensor, candidates[i], candidates[j]))
            order[start:stop] = sorted(group, key=key)
        start = stop
    return order


def _lexicographic(t: torch.Tensor, i: int, j: int) -> int:
    """-1, 0, 1 as row i is lexicographically below, equal to, above row j (one vectorised pass)."""
    differ = torch.nonzero(t[i] != t[j])
    if differ.numel() == 0:
        return 0
    k = differ[0, 0]
    return -1 if bool(t[i, k] < t[j, k]) else 1


def _check_selected_scores(scores: np.ndarray, selected, rule: str) -> None:
    """A selection is exact only if every selected score is finite: an update beyond ~1e154
    has squared distances that overflow to inf, and infinite scores cannot be ranked."""
    if not np.all(np.isfinite(scores[selected])):
        raise _overflow_error(rule, "a squared distance between the updates it must rank")


def krum_select(dist: np.ndarray, f: int, m: int, stack: Stack | None = None, rule: str = "krum") -> np.ndarray:
    """Indices of the m lowest Krum scores; exact ties go by the updates' values (see
    :func:`rank_with_value_ties`) when ``stack`` is given, else by index. Raises if a selected
    score overflowed (a row of squared distances beyond float64; unselected rows may overflow)."""
    scores = krum_scores(dist, f)
    chosen = rank_with_value_ties(scores, stack)[:m]
    _check_selected_scores(scores, chosen, rule)
    return chosen


def cosine_distances(gram: np.ndarray) -> np.ndarray:
    """1 - cos(g_i, g_j) from a Gram matrix; a zero update has cosine similarity 0 to all."""
    norms = np.sqrt(np.clip(np.diag(gram), 0, None))
    denom = np.outer(norms, norms)
    cos = np.divide(gram, denom, out=np.zeros_like(gram), where=denom > 0)
    dist = 1.0 - np.clip(cos, -1.0, 1.0)
    np.fill_diagonal(dist, 0.0)
    return dist


@dataclass(frozen=True)
class GeometricMedian:
    """How the Weiszfeld iteration ended: iterations run, whether the optimality test passed,
    the objective sum_i w_i |z - g_i| / sum_i w_i, and the last optimality residual (see
    :func:`geometric_median`)."""

    iterations: int
    converged: bool
    objective: float
    residual: float


def _norm64(v: torch.Tensor) -> float:
    """|v| of a float64 vector without overflow or underflow: one pass when the plain norm is a
    normal number, else again scaled by the largest entry."""
    plain = float(torch.linalg.vector_norm(v))
    if math.isfinite(plain) and plain > _SQUARE_UNDERFLOW:
        return plain
    top = float(v.abs().max()) if v.numel() else 0.0
    return top * float(torch.linalg.vector_norm(v / top)) if top > 0 else 0.0


def geometric_median(
    updates, weights=None, *, nu: float = 1e-6, tol: float = 1e-6, max_iter: int = 100, backend: str = "auto"
):
    """The weighted geometric median argmin_z sum_i w_i |z - g_i| by Weiszfeld's iteration, as
    RFA runs it (Pillutla et al. 2022), with a stopping rule that one far update cannot fool and
    the exact step at data points.

    From z = the coordinate-wise median (the start is not part of the definition, only of the
    speed: from the mean, one update at 1e160 needs ~160 steps back), each iteration forms

        T = sum_i beta_i g_i / sum_i beta_i,  beta_i = w_i / |z - g_i|  over the updates farther than ``nu``,
        r = |sum_i beta_i (T - z)| = |sum_i w_i (z - g_i) / |z - g_i||  (the gradient's length),

    with eta the weight of the updates within ``nu`` of z. z is optimal when r <= eta (the
    subgradient contains 0), so the iteration stops when r - eta <= ``tol`` * sum_i w_i: a
    residual in units of weight, which no update's distance can inflate (the objective's
    relative improvement, used before, stops after a few steps whenever one far update dominates
    the objective; the estimate's movement stalls near a data point that is not the median).
    Otherwise z <- (1 - lam) T + lam z, lam = min(1, eta / r) (Vardi & Zhang 2000; lam = 0 is the
    plain Weiszfeld step). At the end the update nearest z is tested exactly and returned when
    it is the median (Weiszfeld only approaches such a point).

    Each iteration reads the data twice (distances, then a weighted mean); z is kept in float64
    and distances are computed in scaled form, so updates near 1e300 neither overflow nor steer
    the result. Returns (z in the updates' dtype, :class:`GeometricMedian`)."""
    stack = _stack(updates, "rfa")
    w = np.ones(stack.n) if weights is None else check_weights(weights, stack.n, "rfa")
    w = w * power_of_two_scale(w.max())
    total = float(w.sum())

    def distances(z):
        dist = row_distances_to(stack, z, backend=backend)
        if not np.all(np.isfinite(dist)):
            raise _overflow_error("rfa", "the distance of an update to the estimate")
        return dist

    def pull(z, dist, near):
        """(T, the others' pull r, the weight eta within nu of z)."""
        beta = np.where(near, 0.0, w / np.where(near, 1.0, dist))
        if beta.sum() == 0:
            return z, 0.0, float(w[near].sum())
        target = weighted_mean(stack, beta, backend=backend, rule="rfa", dtype=torch.float64)
        return target, float(beta.sum()) * _norm64(target - z), float(w[near].sum())

    z = coordinate_median(stack, backend=backend).to(torch.float64)
    dist = distances(z)
    converged, residual, it = False, math.inf, 0
    for it in range(1, max_iter + 1):  # noqa: B007 - the count is reported
        target, r, eta = pull(z, dist, dist <= nu)
        residual = max(0.0, r - eta)
        if residual <= tol * total:
            converged = True
            break
        lam = min(1.0, eta / r)
        z = (1.0 - lam) * target + lam * z if lam > 0 else target
        dist = distances(z)
    if not converged or dist.min() <= nu:  # ended near (not on) an update: is that update the median?
        nearest = int(np.argmin(dist))
        p = stack.tensor[nearest].to(torch.float64)
        p_dist = distances(p)
        _, r, eta = pull(p, p_dist, p_dist == 0)
        if r <= eta:
            z, dist, converged, residual = p, p_dist, True, 0.0
    top = dist.max()
    objective = float(top * np.dot(w / total, dist / top)) if top > 0 else 0.0
    return _vector(updates, stack, z.to(stack.dtype)), GeometricMedian(it, converged, objective, residual)


def closest_to_median_mean(updates, beta: int, *, rows=None):
    """Per coordinate, the mean of the beta values closest to the median (Bulyan's second
    phase). Runs the torch code on every device (there is no fused CPU kernel for it)."""
    stack = _stack(updates, "bulyan")
    r = _rows(stack, rows)
    if not 1 <= beta <= r.shape[0]:
        raise AggregatorError(f"beta must be in [1, {r.shape[0]}], got {beta}")
    return _vector(updates, stack, _on_device("bulyan", tk.closest_to_median_mean, stack, r, beta))


def bulyan_select(dist: np.ndarray, f: int, stack: Stack | None = None) -> np.ndarray:
    """Bulyan's first phase (El Mhamdi et al. 2018): theta = N - 2f picks of Krum applied
    repeatedly to the remaining set, in increasing row order.

    Each pick leaves the set; scores use the max(1, r - f - 2) nearest of the r - 1 others; exact
    ties, which one neighbour makes common, go by the updates' values (see
    :func:`rank_with_value_ties`), never by client order.
    """
    n = dist.shape[0]
    remaining = list(range(n))
    chosen = []
    for _ in range(n - 2 * f):
        r = len(remaining)
        sub = dist[np.ix_(remaining, remaining)]
        scores = nearest_sum(sub, min(max(1, r - f - 2), r - 1))
        best = int(rank_with_value_ties(scores, stack, remaining)[0])
        _check_selected_scores(scores, [best], "bulyan")
        pick = remaining[best]
        chosen.append(pick)
        remaining.remove(pick)
    return np.sort(chosen)


def clip_factors(norms: np.ndarray, clip_norm: float) -> np.ndarray:
    """min(1, C / |g_i|) per row from the L2 norms (a zero row keeps factor 1)."""
    with np.errstate(over="ignore"):  # C / (a tiny norm) overflows to inf: the factor is 1 either way
        return np.minimum(1.0, clip_norm / np.maximum(norms, np.finfo(np.float64).tiny))


FOOLSGOLD_COLLINEAR = 1e-9  # 1 - cos below this is float rounding of collinear vectors


def foolsgold_weights(cs: np.ndarray, kappa: float, *, collinear: float = FOOLSGOLD_COLLINEAR) -> np.ndarray:
    """FoolsGold's per-client weights (Fung et al. 2020) from the (n, n) cosine similarities of
    the clients' update histories:

    1. v_i = max_j cs_ij (j != i); pardoning: cs_ij <- cs_ij * v_i / v_j where v_i < v_j;
    2. a_i = 1 - max_j cs_ij, clipped to [0, 1], divided by max_i a_i (all zero: all weights 0);
    3. a_i <- clip(kappa * (ln(a_i / (1 - a_i)) + 0.5), 0, 1), with a_i = 1 replaced by 0.99.

    A similarity within ``collinear`` of 1 counts as 1 (float rounding of collinear histories).
    """
    n = cs.shape[0]
    cs = cs.copy()
    np.fill_diagonal(cs, -np.inf if n > 1 else 0.0)
    v = cs.max(axis=1) if n > 1 else np.zeros(1)
    for i in range(n):
        for j in range(n):
            if i != j and v[i] < v[j] and v[j] > 0:
                cs[i, j] *= v[i] / v[j]
    a = 1.0 - (cs.max(axis=1) if n > 1 else np.zeros(1))
    # collinear histories give cos = 1 - 2e-16, not 1; normalising by max(a) below would
    # blow that rounding noise up into full weights
    a[a < collinear] = 0.0
    a = np.clip(a, 0.0, 1.0)
    if a.max() <= 0:
        return np.zeros(n)
    a = a / a.max()
    a[a == 1.0] = 0.99
    with np.errstate(divide="ignore"):
        logit = np.log(a / (1.0 - a))
    return np.clip(kappa * (logit + 0.5), 0.0, 1.0)


def error_feedback_top_k(error: torch.Tensor, update: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """SparseFed's server step (Panda et al. 2022): e = error + update; release the k entries of
    e largest in magnitude and carry the rest. Returns (released, carried), with
    released + carried = e exactly. Ties in magnitude are broken by :func:`torch.topk`."""
    accumulated = error.to(update.device, update.dtype) + update
    idx = torch.topk(accumulated.abs(), k, sorted=False).indices
    released = torch.zeros_like(accumulated)
    released[idx] = accumulated[idx]
    accumulated[idx] = 0
    return released, accumulated
