"""Distance-based rules: each update is judged by its distances to the others.

Krum, Multi-Krum (Euclidean and cosine), the trimmed mean over Multi-Krum's selection, Bulyan,
and RFA's geometric median. Every one starts from the (N, N) float64 distance matrix of one
pass over the data; the selection mathematics is in :mod:`invariant_aggregator.functional`.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from .. import functional as F
from .._inputs import check_int, check_real
from ..errors import AggregatorError
from .base import AggregationRule, check_backend, check_f, register

__all__ = ["Krum", "MultiKrum", "MultiKrumCosine", "KrumTrimmedMean", "Bulyan", "RFA"]


class _KrumFamily(AggregationRule):
    metric: ClassVar[str] = "euclidean"

    def _distances(self, stack):
        if self.metric == "cosine":
            return 1.0 - F.cosine_similarities(stack, backend=self.backend)
        return F.pairwise_sq_distances(stack, backend=self.backend)

    def _selection(self, stack, m):
        if stack.n < 2 * self.f + 3:
            raise AggregatorError(
                f"{self.name} with f = {self.f} needs N >= 2f + 3 = {2 * self.f + 3} updates, got N = {stack.n}"
            )
        if m > stack.n:
            raise AggregatorError(f"{self.name}: m = {m} exceeds the number of updates N = {stack.n}")
        return F.krum_select(self._distances(stack), self.f, m, stack, rule=self.name)

    def _m(self, stack) -> int:
        return stack.n - self.f if self.m is None else self.m


@register
class Krum(_KrumFamily):
    """Krum (Blanchard et al. 2017): the update with the lowest score, where the score of g_i is
    the sum of squared distances to its N - f - 2 nearest other updates. Needs N >= 2f + 3.
    Exactly tied scores are decided by the updates' values (lexicographic), never by client
    order. Distances are direct float64 differences (no Gram shortcut).

    Example
        >>> import numpy as np, invariant_aggregator as ia
        >>> ia.make("krum", f=1)(np.array([[0.0], [1.0], [2.0], [4.0], [90.0]]))  # scores 5, 2, 5, 13, ...
        array([1.])
    """

    name = "krum"

    def __init__(self, f=None, *, backend="auto"):
        self._set(f=check_f(f))
        self.backend = check_backend(backend)

    def _aggregate(self, stack, weights, client_ids):
        best = int(self._selection(stack, 1)[0])
        return stack.tensor[best].clone()


@register
class MultiKrum(_KrumFamily):
    """Multi-Krum: the mean of the m updates with the lowest Krum scores (default m = N - f).

    Example
        >>> import numpy as np, invariant_aggregator as ia
        >>> ia.make("multi_krum", f=1, m=2)(np.array([[0.0], [1.0], [2.0], [4.0], [90.0]]))
        array([0.5])
    """

    name = "multi_krum"

    def __init__(self, f=None, m=None, *, backend="auto"):
        self._set(f=check_f(f), m=None if m is None else check_int("m", m, 1))
        self.backend = check_backend(backend)

    def _aggregate(self, stack, weights, client_ids):
        return F.weighted_mean(stack, rows=self._selection(stack, self._m(stack)), backend=self.backend)


@register
class MultiKrumCosine(MultiKrum):
    """Multi-Krum with cosine distance 1 - cos(g_i, g_j) in place of squared Euclidean distance
    (the paper's Multi-Krum_C). A zero update has cosine similarity 0 to every update.

    Example
        >>> import numpy as np, invariant_aggregator as ia
        >>> g = np.array([[1.0, 0.0], [2.0, 0.2], [1.0, 0.3], [3.0, -0.3], [0.0, 5.0]])
        >>> ia.make("multi_krum_cosine", f=1, m=1)(g)  # [1, 0] sits between [2, .2] and [3, -.3]
        array([1., 0.])
    """

    name = "multi_krum_cosine"
    metric = "cosine"


@register
class KrumTrimmedMean(MultiKrum):
    """Trimmed mean (Definition 3, level alpha) over the m updates Multi-Krum selects.

    Example
        >>> import numpy as np, invariant_aggregator as ia
        >>> g = np.array([[0.0], [1.0], [2.0], [3.0], [4.0], [90.0]])
        >>> ia.make("krum_trimmed_mean", f=1, m=5, alpha=0.2)(g)
        array([2.])
    """

    name = "krum_trimmed_mean"

    def __init__(self, f=None, m=None, alpha=0.2, *, backend="auto"):
        super().__init__(f=f, m=m, backend=backend)
        self._set(f=self.f, m=self.m, alpha=check_real("alpha", alpha, 0.0, 0.5, high_open=True))

    def _aggregate(self, stack, weights, client_ids):
        rows = np.sort(self._selection(stack, self._m(stack)))
        lo, hi = F.trim_bounds(rows.shape[0], self.alpha)
        return F.sorted_window_mean(stack, lo, hi, rows=rows, backend=self.backend)


@register
class Bulyan(_KrumFamily):
    """Bulyan (El Mhamdi et al. 2018). Needs N >= 4f + 3.

    1. Select theta = N - 2f updates by Krum applied repeatedly to the remaining set (each
       pick leaves it; scores use the max(1, r - f - 2) nearest of the r - 1 others; exact
       ties, which one neighbour makes common, go by the updates' values, not client order).
    2. Per coordinate, average the beta = theta - 2f values closest to the median of the
       selected values (even count: midpoint median; a value as near as another: the lower one first).
       Distances to the median are float64: two that differ by less than their rounding (2^-126
       and 1 around a median of 0.5) count as equal, and the tie rule decides.

    Example
        >>> import numpy as np, invariant_aggregator as ia
        >>> g = np.array([[0.0], [1.0], [2.0], [3.0], [4.0], [5.0], [6.0], [100.0]])
        >>> ia.make("bulyan", f=1)(g)  # keeps 0..5, then the 4 values nearest 2.5
        array([2.5])
    """

    name = "bulyan"

    def __init__(self, f=None, *, backend="auto"):
        self._set(f=check_f(f))
        self.backend = check_backend(backend)

    def _aggregate(self, stack, weights, client_ids):
        n, f = stack.n, self.f
        if n < 4 * f + 3:
            raise AggregatorError(f"bulyan with f = {f} needs N >= 4f + 3 = {4 * f + 3} updates, got N = {n}")
        chosen = F.bulyan_select(F.pairwise_sq_distances(stack, backend=self.backend), f, stack)
        return F.closest_to_median_mean(stack, n - 4 * f, rows=chosen)


@register
class RFA(AggregationRule):
    """Robust Federated Aggregation (Pillutla et al. 2022): the (weighted) geometric median
    argmin_z sum_i w_i |z - g_i| by the smoothed Weiszfeld iteration

        beta_i = w_i / |z - g_i|,   z <- sum_i beta_i g_i / sum_i beta_i   (updates farther than nu),

    from z = the coordinate-wise median, until the optimality residual (the gradient's length
    net of the weight sitting at z) is at most ``tol`` times the total weight, or ``max_iter``
    iterations; updates within ``nu`` of z count as coinciding with it (Vardi & Zhang's step).
    See :func:`functional.geometric_median`: no update's distance can stop it early. Each
    iteration reads the data twice. ``last_result`` holds the iterations, convergence and residual.

    Example
        >>> import numpy as np, invariant_aggregator as ia
        >>> g = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [50.0, 50.0]])
        >>> z = ia.make("rfa", nu=1e-9, tol=1e-12, max_iter=1000)(g)
        >>> bool(np.linalg.norm(z) < 1.0)
        True
    """

    name = "rfa"
    accepts_weights = True

    def __init__(self, nu=1e-6, tol=1e-6, max_iter=100, *, backend="auto"):
        self._set(
            nu=check_real("nu", nu, 0.0, math.inf, low_open=True),
            tol=check_real("tol", tol, 0.0, math.inf, low_open=True),
            max_iter=check_int("max_iter", max_iter, 1),
        )
        self.backend = check_backend(backend)
        self.last_result: F.GeometricMedian | None = None

    def _aggregate(self, stack, weights, client_ids):
        z, self.last_result = F.geometric_median(
            stack, weights, nu=self.nu, tol=self.tol, max_iter=self.max_iter, backend=self.backend
        )
        return z
