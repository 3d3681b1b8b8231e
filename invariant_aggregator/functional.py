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
from dataclasses import dataclass

import numpy as np
import torch

from . import _cpu_kernels as cpu
from . import _torch_kernels as tk
from ._codegen import MAX_SPECIALISED_ROWS, window_kernel
from ._inputs import Stack, as_stack, ceil_product, check_choice, raise_non_finite
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
    "geometric_median_coefficients",
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
    """Raw result (numpy or tensor) of the sorted-window mean over ``rows``."""
    n = rows.shape[0]
    if not _on_host(stack, backend):
        return _on_device(rule, tk.window_mean, stack, rows, lo, hi, min_agree)
    x = stack.cpu
    out = np.empty(stack.d, dtype=x.dtype)
    if stack.d >= SPECIALISE_MIN_COORDINATES and 2 <= n <= MAX_SPECIALISED_ROWS:
        bad = window_kernel(n, lo, hi)(x, rows, min_agree, out, cpu.N_CHUNKS)
    else:
        first, second = window_plan(n, lo, hi)
        block = cpu.block_columns(n, x.itemsize)
        bad = cpu.window_mean(x, rows, lo, hi, first, second, min_agree, out, block, cpu.chunk_count(stack.d, block))
    if bad:
        raise_non_finite(rule, stack, rows)
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
    if cpu.sign_sum(stack.cpu, r, out, block, cpu.chunk_count(stack.d, block)):
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


# --------------------------------------------------------------------------- row combinations
def weighted_sum(updates, coefficients, *, rows=None, backend: str = "auto", rule: str = "weighted_sum"):
    """sum_i c_i g_i over ``rows`` (all rows by default), accumulated in float64."""
    stack = _stack(updates, rule)
    r = _rows(stack, rows)
    coef = np.ascontiguousarray(coefficients, dtype=np.float64)
    if coef.shape != r.shape:
        raise AggregatorError(f"{rule}: {coef.shape[0]} coefficients for {r.shape[0]} rows")
    if not _on_host(stack, backend):
        return _vector(updates, stack, _on_device(rule, tk.weighted_row_sum, stack, r, coef))
    out = np.empty(stack.d, dtype=stack.cpu.dtype)
    block = cpu.block_columns(r.shape[0], stack.cpu.itemsize)
    if cpu.weighted_row_sum(stack.cpu, r, coef, out, block, cpu.chunk_count(stack.d, block)):
        raise_non_finite(rule, stack, r)
    return _vector(updates, stack, out)


def weighted_mean(updates, weights=None, *, rows=None, backend: str = "auto"):
    """sum_i w_i g_i / sum_i w_i over ``rows`` (uniform weights by default), float64 accumulation."""
    stack = _stack(updates, "weighted_mean")
    n = _rows(stack, rows).shape[0]
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    return _vector(updates, stack, weighted_sum(stack, w / w.sum(), rows=rows, backend=backend, rule="weighted_mean"))


def _matrix(stack: Stack, rows, backend: str, cpu_fn, torch_fn, rule: str) -> np.ndarray:
    r = _rows(stack, rows)
    if not _on_host(stack, backend):
        return _on_device(rule, torch_fn, stack, r).cpu().numpy()
    block = cpu.block_columns(r.shape[0], 8)
    result, bad = cpu_fn(stack.cpu, r, block, cpu.chunk_count(stack.d, block))
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


# --------------------------------------------------------------------------- selection rules
def nearest_sum(dist: np.ndarray, neighbours: int) -> np.ndarray:
    """For each row of a (n, n) distance matrix, the sum of its ``neighbours`` smallest
    distances to the *other* rows (0 neighbours: all zeros)."""
    n = dist.shape[0]
    others = np.sort(dist + np.diag(np.full(n, np.inf)), axis=1)[:, :neighbours]
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


def krum_select(dist: np.ndarray, f: int, m: int, stack: Stack | None = None) -> np.ndarray:
    """Indices of the m lowest Krum scores; exact ties go by the updates' values (see
    :func:`rank_with_value_ties`) when ``stack`` is given, else by index."""
    return rank_with_value_ties(krum_scores(dist, f), stack)[:m]


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
    """Result of the smoothed Weiszfeld iteration: z = sum_j coefficients[j] g_j."""

    coefficients: np.ndarray
    iterations: int
    converged: bool
    objective: float


def geometric_median_coefficients(
    dist: np.ndarray, weights: np.ndarray, nu: float, tol: float, max_iter: int
) -> GeometricMedian:
    """Smoothed Weiszfeld (Pillutla et al. 2022) run on the squared-distance matrix alone.

    Every iterate is an affine combination z = sum_j a_j g_j (sum a = 1), for which
    |z - g_i|^2 = sum_j a_j D_ij - (1/2) a^T D a. So the iterations never touch the d-dimensional
    data: one pass computes D, one more forms z. Update: beta_i = w_i / max(nu, |z - g_i|),
    a = beta / sum(beta); stop when the objective sum_i w_i |z - g_i| improves by <= tol times itself.
    """
    w = weights / weights.sum()

    def distances(a):
        sq = dist @ a - 0.5 * (a @ dist @ a)
        return np.sqrt(np.clip(sq, 0.0, None))

    a = w.copy()
    dz = distances(a)
    objective = float(w @ dz)
    for it in range(1, max_iter + 1):
        beta = w / np.maximum(nu, dz)
        a = beta / beta.sum()
        dz = distances(a)
        new_objective = float(w @ dz)
        if abs(objective - new_objective) <= tol * new_objective:
            return GeometricMedian(a, it, True, new_objective)
        objective = new_objective
    return GeometricMedian(a, max_iter, False, objective)


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
        pick = remaining[int(rank_with_value_ties(scores, stack, remaining)[0])]
        chosen.append(pick)
        remaining.remove(pick)
    return np.sort(chosen)


def clip_factors(sq_norms: np.ndarray, clip_norm: float) -> np.ndarray:
    """min(1, C / |g_i|) per row from the squared norms (a zero row keeps factor 1)."""
    norms = np.sqrt(sq_norms)
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
