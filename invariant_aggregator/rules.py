"""Aggregation rules as small callable objects: ``rule(updates) -> aggregate``.

Every rule validates its hyperparameters at construction, takes an (N, d) stack of client
updates (pseudo-gradients g_i = w_global - w_local, one row per client; numpy or torch, CPU
or CUDA, float32/float64) and returns the aggregated d-vector with the input's type, device
and dtype. The server then applies ``w <- w - lr * aggregate``.

Create rules by name with :func:`invariant_aggregator.make`.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import torch

from . import functional as F
from ._inputs import (
    Stack,
    as_stack,
    check_choice,
    check_client_ids,
    check_int,
    check_real,
    check_weights,
)
from .errors import AggregatorError

__all__ = ["AggregationRule", "StatefulRule", "RULES", "make", "available_rules"]

RULES: dict[str, type[AggregationRule]] = {}


def _register(cls):
    RULES[cls.name] = cls
    return cls


class AggregationRule:
    """Base class. Subclasses set ``name`` and implement ``_aggregate(stack, weights, client_ids)``."""

    name: ClassVar[str] = ""
    accepts_weights: ClassVar[bool] = False
    stateful: ClassVar[bool] = False
    backend: str = "auto"

    def __call__(self, updates, weights=None, client_ids=None):
        """Aggregate an (N, d) stack. ``weights``: per-client, only for rules that define them.
        ``client_ids``: one id per row; used by stateful rules, ignored by the others."""
        stack = as_stack(updates, rule=self.name)
        if weights is not None and not self.accepts_weights:
            raise AggregatorError(
                f"{self.name}: this rule does not define per-client weights; rules that do: "
                f"{', '.join(sorted(n for n, c in RULES.items() if c.accepts_weights))}"
            )
        w = check_weights(weights, stack.n, self.name)
        return stack.wrap(self._aggregate(stack, w, client_ids))

    def _aggregate(self, stack: Stack, weights, client_ids):  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def hyperparameters(self) -> dict[str, Any]:
        """The rule's resolved hyperparameters (for run records)."""
        return dict(self._hparams)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._hparams.items())
        return f"{type(self).__name__}({args})"

    def _set(self, **hparams):
        self._hparams = hparams
        for key, value in hparams.items():
            setattr(self, key, value)


class StatefulRule(AggregationRule):
    """A rule with memory across rounds: ``reset()``, ``state_dict()``, ``load_state_dict()``.

    ``state_dict()`` holds only tensors, numbers, strings and lists/dicts of them, so it can be
    saved with ``torch.save`` and read back with ``torch.load(path, weights_only=True)``.
    """

    stateful: ClassVar[bool] = True

    def reset(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def state_dict(self) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def load_state_dict(self, state: dict) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


def _check_f(f) -> int:
    if f is None:
        raise AggregatorError("f, the number of malicious updates to tolerate, is required (an integer >= 0)")
    return check_int("f", f, 0)


def _check_threshold(tau, tau_sum):
    """Exactly one scale: tau in [0, 1] (default 0.6, the authors' value) or tau_sum >= 0."""
    if tau is not None and tau_sum is not None:
        raise AggregatorError(
            f"give tau (averaged scale, in [0, 1]) or tau_sum (Eq. 3's sum scale, = N * tau), not both; "
            f"got tau = {tau!r}, tau_sum = {tau_sum!r}"
        )
    if tau_sum is not None:
        return None, check_real("tau_sum", tau_sum, 0.0, math.inf)
    return check_real("tau", 0.6 if tau is None else tau, 0.0, 1.0), None


def _check_backend(backend) -> str:
    return check_choice("backend", backend, F.BACKENDS)


# =========================================================================== coordinate-wise
@_register
class Invariant(AggregationRule):
    """The Invariant Aggregator (Algorithm 1): AND-mask ⊙ trimmed mean, per coordinate.

    .. math::
        m_k = \\mathbf 1\\big[\\,|\\tfrac1N \\textstyle\\sum_i \\operatorname{sign}(g_{ik})| \\ge \\tau\\big],\\qquad
        \\bar g_k = \\operatorname{TrMean}(g_{1k},\\dots,g_{Nk};\\alpha),\\qquad
        \\text{out} = m \\odot \\bar g

    Paper: "Invariant Aggregator for Defending against Federated Backdoor Attacks" (ICLR 2023
    submission; AISTATS 2024). Computed in one fused pass over the input on CPU.

    Conventions
        * ``tau`` is on the averaged scale in [0, 1] (the authors ran tau = 0.6); sign(0) = 0.
          Eq. 3 of the paper writes the unnormalised sum: pass ``tau_sum`` (= N * tau) instead,
          never both. The comparison is exact: tau = 0.6, N = 20 needs |sum sign| >= 12.
        * ``trim="definition3"`` (default) keeps x_(k)..x_(N-k-1), k = ceil(alpha N).
          ``trim="authors"`` reproduces the authors' code: positions [int(0.45N), int(0.55N)),
          the median's two middle values at N = 20; ``alpha`` must then be left unset.

    Example
        >>> import numpy as np, invariant_aggregator as ia
        >>> g = np.array([[1.0, 1.0], [2.0, -1.0], [3.0, 1.0], [4.0, -1.0], [100.0, 1.0]])
        >>> ia.make("invariant", tau=0.6, alpha=0.2)(g)
        array([3., 0.])
    """

    name = "invariant"

    def __init__(self, tau=None, alpha=None, *, tau_sum=None, trim="definition3", backend="auto"):
        trim = check_choice("trim", trim, F.TRIM_MODES)
        tau, tau_sum = _check_threshold(tau, tau_sum)
        if trim == "authors":
            if alpha is not None:
                raise AggregatorError("trim='authors' fixes the kept positions; leave alpha unset")
        else:
            alpha = check_real("alpha", 0.2 if alpha is None else alpha, 0.0, 0.5, high_open=True)
        self._set(tau=tau, alpha=alpha, tau_sum=tau_sum, trim=trim)
        self.backend = _check_backend(backend)

    def _aggregate(self, stack, weights, client_ids):
        return F.invariant_aggregate(
            stack, self.tau, self.alpha, tau_sum=self.tau_sum, trim=self.trim, backend=self.backend
        )


@_register
class AndMask(AggregationRule):
    """AND-mask alone: m ⊙ mean(g), m_k = 1[|(1/N) sum_i sign(g_ik)| >= tau] (Parascandolo et al. 2021).

    Same ``tau`` / ``tau_sum`` conventions as :class:`Invariant`.

    Example
        >>> import numpy as np, invariant_aggregator as ia
        >>> ia.make("and_mask", tau=1.0)(np.array([[1.0, 1.0], [3.0, -1.0]]))
        array([2., 0.])
    """

    name = "and_mask"

    def __init__(self, tau=None, *, tau_sum=None, backend="auto"):
        tau, tau_sum = _check_threshold(tau, tau_sum)
        self._set(tau=tau, tau_sum=tau_sum)
        self.backend = _check_backend(backend)

    def _aggregate(self, stack, weights, client_ids):
        return F.and_mask_mean(stack, self.tau, tau_sum=self.tau_sum, backend=self.backend)


@_register
class TrimmedMean(AggregationRule):
    """Coordinate-wise trimmed mean (Definition 3; Xie et al. 2020, Yin et al. 2018).

    TrMean(x; alpha) = 1/(N - 2k) * sum_{i=k}^{N-k-1} x_(i), k = ceil(alpha N), 0-based order
    statistics. alpha in [0, 0.5); alpha = 0 is the mean. ``trim="authors"`` as in :class:`Invariant`.

    Example
        >>> import numpy as np, invariant_aggregator as ia
        >>> ia.make("trimmed_mean", alpha=0.2)(np.array([[0.0], [1.0], [2.0], [3.0], [50.0]]))
        array([2.])
    """

    name = "trimmed_mean"

    def __init__(self, alpha=0.2, *, trim="definition3", backend="auto"):
        trim = check_choice("trim", trim, F.TRIM_MODES)
        alpha = None if trim == "authors" else check_real("alpha", alpha, 0.0, 0.5, high_open=True)
        self._set(alpha=alpha, trim=trim)
        self.backend = _check_backend(backend)

    def _aggregate(self, stack, weights, client_ids):
        return F.trimmed_mean(stack, self.alpha, trim=self.trim, backend=self.backend)


@_register
class Median(AggregationRule):
    """Coordinate-wise median; even N: the midpoint of the two middle values.

    Example
        >>> import numpy as np, invariant_aggregator as ia
        >>> ia.make("median")(np.array([[1.0], [2.0], [10.0], [4.0]]))
        array([3.])
    """

    name = "median"

    def __init__(self, *, backend="auto"):
        self._set()
        self.backend = _check_backend(backend)

    def _aggregate(self, stack, weights, client_ids):
        return F.coordinate_median(stack, backend=self.backend)


@_register
class FedAvg(AggregationRule):
    """Weighted mean sum_i w_i g_i / sum_i w_i (McMahan et al. 2017); uniform by default.

    Example
        >>> import numpy as np, invariant_aggregator as ia
        >>> ia.make("fedavg")(np.array([[1.0], [3.0]]), weights=[3, 1])
        array([1.5])
    """

    name = "fedavg"
    accepts_weights = True

    def __init__(self, *, backend="auto"):
        self._set()
        self.backend = _check_backend(backend)

    def _aggregate(self, stack, weights, client_ids):
        return F.weighted_mean(stack, weights, backend=self.backend)


@_register
class SignSGD(AggregationRule):
    """Majority vote of signs times a server step: lr * sign(sum_i sign(g_i)) (Bernstein et al. 2019).

    Ties (and all-zero coordinates) give 0, so the output takes only the values -lr, 0, +lr.

    Example
        >>> import numpy as np, invariant_aggregator as ia
        >>> ia.make("sign_sgd", lr=0.1)(np.array([[1.0, -2.0, 1.0], [5.0, -1.0, -1.0], [-9.0, 3.0, 0.0]]))
        array([ 0.1, -0.1,  0. ])
    """

    name = "sign_sgd"

    def __init__(self, lr=1e-3, *, backend="auto"):
        self._set(lr=check_real("lr", lr, 0.0, math.inf, low_open=True))
        self.backend = _check_backend(backend)

    def _aggregate(self, stack, weights, client_ids):
        s = F.sign_sum(stack, backend=self.backend)
        if isinstance(s, np.ndarray):
            return (np.sign(s) * self.lr).astype(stack.cpu.dtype)
        return torch.sign(s).to(stack.dtype) * self.lr


# =========================================================================== distance-based
class _KrumFamily(AggregationRule):
    metric: ClassVar[str] = "euclidean"

    def _distances(self, stack):
        if self.metric == "cosine":
            return F.cosine_distances(F.gram_matrix(stack, backend=self.backend))
        return F.pairwise_sq_distances(stack, backend=self.backend)

    def _selection(self, stack, m):
        if stack.n < 2 * self.f + 3:
            raise AggregatorError(
                f"{self.name} with f = {self.f} needs N >= 2f + 3 = {2 * self.f + 3} updates, got N = {stack.n}"
            )
        if m > stack.n:
            raise AggregatorError(f"{self.name}: m = {m} exceeds the number of updates N = {stack.n}")
        return F.krum_select(self._distances(stack), self.f, m, stack)

    def _m(self, stack) -> int:
        return stack.n - self.f if self.m is None else self.m


@_register
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
        self._set(f=_check_f(f))
        self.backend = _check_backend(backend)

    def _aggregate(self, stack, weights, client_ids):
        best = int(self._selection(stack, 1)[0])
        return stack.tensor[best].clone() if stack.cpu is None else stack.cpu[best].copy()


@_register
class MultiKrum(_KrumFamily):
    """Multi-Krum: the mean of the m updates with the lowest Krum scores (default m = N - f).

    Example
        >>> import numpy as np, invariant_aggregator as ia
        >>> ia.make("multi_krum", f=1, m=2)(np.array([[0.0], [1.0], [2.0], [4.0], [90.0]]))
        array([0.5])
    """

    name = "multi_krum"

    def __init__(self, f=None, m=None, *, backend="auto"):
        self._set(f=_check_f(f), m=None if m is None else check_int("m", m, 1))
        self.backend = _check_backend(backend)

    def _aggregate(self, stack, weights, client_ids):
        return F.weighted_mean(stack, rows=self._selection(stack, self._m(stack)), backend=self.backend)


@_register
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


@_register
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


@_register
class Bulyan(_KrumFamily):
    """Bulyan (El Mhamdi et al. 2018). Needs N >= 4f + 3.

    1. Select theta = N - 2f updates by Krum applied repeatedly to the remaining set (each
       pick leaves it; scores use the max(1, r - f - 2) nearest of the r - 1 others; exact
       ties, which one neighbour makes common, go by the updates' values, not client order).
    2. Per coordinate, average the beta = theta - 2f values closest to the median of the
       selected values (even count: midpoint median; ties: the lower-sorted run).

    Example
        >>> import numpy as np, invariant_aggregator as ia
        >>> g = np.array([[0.0], [1.0], [2.0], [3.0], [4.0], [5.0], [6.0], [100.0]])
        >>> ia.make("bulyan", f=1)(g)  # keeps 0..5, then the 4 values nearest 2.5
        array([2.5])
    """

    name = "bulyan"

    def __init__(self, f=None, *, backend="auto"):
        self._set(f=_check_f(f))
        self.backend = _check_backend(backend)

    def _aggregate(self, stack, weights, client_ids):
        n, f = stack.n, self.f
        if n < 4 * f + 3:
            raise AggregatorError(f"bulyan with f = {f} needs N >= 4f + 3 = {4 * f + 3} updates, got N = {n}")
        dist = F.pairwise_sq_distances(stack, backend=self.backend)
        remaining = list(range(n))
        chosen = []
        for _ in range(n - 2 * f):
            r = len(remaining)
            sub = dist[np.ix_(remaining, remaining)]
            scores = F.nearest_sum(sub, min(max(1, r - f - 2), r - 1))
            pick = remaining[int(F.rank_with_value_ties(scores, stack, remaining)[0])]
            chosen.append(pick)
            remaining.remove(pick)
        beta = n - 4 * f
        return F.closest_to_median_mean(stack, beta, rows=np.sort(chosen))


# =========================================================================== robust means
@_register
class RFA(AggregationRule):
    """Robust Federated Aggregation (Pillutla et al. 2022): the (weighted) geometric median
    argmin_z sum_i w_i |z - g_i| by the smoothed Weiszfeld iteration

        beta_i = w_i / max(nu, |z - g_i|),   z <- sum_i beta_i g_i / sum_i beta_i,

    from z = weighted mean, until the objective improves by at most ``tol`` times itself, or
    ``max_iter`` iterations. The iterations run on the N x N distance matrix (see
    :func:`functional.geometric_median_coefficients`), so the cost is two passes over the data
    whatever the number of iterations. ``last_result`` holds the iteration count and convergence.

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
        self.backend = _check_backend(backend)
        self.last_result: F.GeometricMedian | None = None

    def _aggregate(self, stack, weights, client_ids):
        w = np.ones(stack.n) if weights is None else weights
        dist = F.pairwise_sq_distances(stack, backend=self.backend)
        self.last_result = F.geometric_median_coefficients(dist, w, self.nu, self.tol, self.max_iter)
        coef = self.last_result.coefficients
        return F.weighted_mean(stack, coef, backend=self.backend)


def _clip_factors(stack: Stack, clip_norm: float, backend: str) -> np.ndarray:
    norms = np.sqrt(F.row_sq_norms(stack, backend=backend))
    return np.minimum(1.0, clip_norm / np.maximum(norms, np.finfo(np.float64).tiny))


class _RandomState(StatefulRule):
    """Holds a torch.Generator seeded at construction, advanced by every call."""

    def _init_rng(self, seed):
        self._seed = seed
        self._generators: dict[str, torch.Generator] = {}

    def _generator(self, device: torch.device) -> torch.Generator:
        key = str(device)
        if key not in self._generators:
            gen = torch.Generator(device=device)
            if self._seed is None:
                gen.seed()
            else:
                gen.manual_seed(self._seed)
            self._generators[key] = gen
        return self._generators[key]

    def reset(self) -> None:
        self._generators = {}

    def state_dict(self) -> dict:
        return {"seed": self._seed, "generators": {k: g.get_state() for k, g in self._generators.items()}}

    def load_state_dict(self, state: dict) -> None:
        self._seed = state["seed"]
        self._generators = {}
        for key, rng_state in state["generators"].items():
            gen = torch.Generator(device=key)
            gen.set_state(rng_state)
            self._generators[key] = gen


@_register
class WeakDP(_RandomState):
    """Weak differential privacy (Sun et al. 2019): clip each update to L2 norm ``clip_norm``,
    take the (weighted) mean, add N(0, noise_std^2) noise to every coordinate.

        out = sum_i w_i min(1, C / |g_i|) g_i / sum_i w_i + noise_std * xi,  xi ~ N(0, I)

    The noise comes from a generator seeded with ``seed`` (None: fresh entropy); it advances
    with each call and is part of ``state_dict()``. Defaults follow the edge-case attack's code
    (norm bound 2, noise std 0.025).

    Example
        >>> import numpy as np, invariant_aggregator as ia
        >>> ia.make("weak_dp", clip_norm=1.0, noise_std=0.0)(np.array([[3.0, 4.0], [0.3, 0.4]]))
        array([0.45, 0.6 ])
    """

    name = "weak_dp"
    accepts_weights = True

    def __init__(self, clip_norm=2.0, noise_std=0.025, seed=None, *, backend="auto"):
        self._set(
            clip_norm=check_real("clip_norm", clip_norm, 0.0, math.inf, low_open=True),
            noise_std=check_real("noise_std", noise_std, 0.0, math.inf),
            seed=None if seed is None else check_int("seed", seed, 0),
        )
        self.backend = _check_backend(backend)
        self._init_rng(self.seed)

    def _aggregate(self, stack, weights, client_ids):
        w = np.ones(stack.n) if weights is None else weights
        coef = w * _clip_factors(stack, self.clip_norm, self.backend) / w.sum()
        out = F.weighted_sum(stack, coef, backend=self.backend, rule=self.name)
        if self.noise_std > 0:
            device = stack.device
            noise = torch.randn(stack.d, generator=self._generator(device), dtype=torch.float64, device=device)
            noise = (noise * self.noise_std).to(stack.dtype)
            if isinstance(out, np.ndarray):
                out += noise.numpy()
            else:
                out += noise
        return out


@_register
class FoolsGold(StatefulRule):
    """FoolsGold (Fung et al. 2020): down-weight clients whose *historical* updates look alike.

    Per client id, the history H_c is the sum of all its updates so far. For the clients of
    the round, with cs_ij the cosine similarity of their histories (i != j):

    1. v_i = max_j cs_ij; pardoning: cs_ij <- cs_ij * v_i / v_j where v_i < v_j;
    2. a_i = 1 - max_j cs_ij, clipped to [0, 1], divided by max_i a_i;
    3. a_i <- clip(kappa * (ln(a_i / (1 - a_i)) + 0.5), 0, 1), with a_i = 1 replaced by 0.99;
    4. out = sum_i a_i g_i / sum_i a_i (this round's updates).

    A similarity within 1e-9 of 1 counts as 1 (float rounding of collinear histories).
    If every client's history duplicates another's, all weights are 0 and the rule raises
    (FoolsGold then has no client it trusts). Requires ``client_ids``. History dtype follows
    the updates; memory is one d-vector per client ever seen.

    Example
        >>> import numpy as np, invariant_aggregator as ia
        >>> rule = ia.make("foolsgold")
        >>> g = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
        >>> rule(g, client_ids=[0, 1, 2])  # the two identical clients get weight 0
        array([1., 0.])
    """

    name = "foolsgold"
    COLLINEAR = 1e-9  # 1 - cos below this is float rounding of collinear vectors

    def __init__(self, kappa=1.0, *, backend="auto"):
        self._set(kappa=check_real("kappa", kappa, 0.0, math.inf, low_open=True))
        self.backend = _check_backend(backend)
        self.reset()
        self.last_weights: np.ndarray | None = None

    def reset(self) -> None:
        self._history: dict = {}

    def state_dict(self) -> dict:
        return {"history": {c: h.clone() for c, h in self._history.items()}}

    def load_state_dict(self, state: dict) -> None:
        self._history = {c: torch.as_tensor(h).clone() for c, h in state["history"].items()}

    def weights_from_similarity(self, cs: np.ndarray) -> np.ndarray:
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
        a[a < self.COLLINEAR] = 0.0
        a = np.clip(a, 0.0, 1.0)
        if a.max() <= 0:
            return np.zeros(n)
        a = a / a.max()
        a[a == 1.0] = 0.99
        with np.errstate(divide="ignore"):
            logit = np.log(a / (1.0 - a))
        return np.clip(self.kappa * (logit + 0.5), 0.0, 1.0)

    def _aggregate(self, stack, weights, client_ids):
        ids = check_client_ids(client_ids, stack.n, self.name)
        F.row_sq_norms(stack, backend=self.backend)  # raises on NaN/Inf before the history is touched
        for i, c in enumerate(ids):
            row = stack.tensor[i]
            if c in self._history:
                if self._history[c].shape != row.shape:
                    raise AggregatorError(
                        f"foolsgold: client {c!r} sent {row.numel()} coordinates, its history has "
                        f"{self._history[c].numel()}; call reset() when the model changes"
                    )
                self._history[c] = self._history[c].to(row.device, row.dtype) + row
            else:
                self._history[c] = row.clone()
        hist = torch.stack([self._history[c] for c in ids])
        cs = 1.0 - F.cosine_distances(F.gram_matrix(hist, backend=self.backend))
        a = self.weights_from_similarity(cs)
        self.last_weights = a
        if a.sum() <= 0:
            raise AggregatorError(
                "foolsgold: every client's update history is collinear with another client's, so every "
                "weight is 0; FoolsGold cannot tell sybils from honest clients in this round"
            )
        return F.weighted_sum(stack, a / a.sum(), backend=self.backend, rule=self.name)


@_register
class SparseFed(StatefulRule):
    """SparseFed (Panda et al. 2022): clip each update to L2 norm ``clip_norm``, average, add to
    the server's error-feedback accumulator e, release only the top-k coordinates of e by
    magnitude and keep the rest for later rounds:

        e <- e + mean_i min(1, C/|g_i|) g_i;   out = top_k(e);   e <- e - out

    ``k``: an integer count of coordinates, or a float in (0, 1) for a fraction of d (rounded up).
    Ties in magnitude are broken by torch.topk. The accumulator is the rule's state.

    Example
        >>> import numpy as np, invariant_aggregator as ia
        >>> rule = ia.make("sparsefed", k=1, clip_norm=100.0)
        >>> rule(np.array([[3.0, 1.0], [3.0, 1.0]]))
        array([3., 0.])
        >>> rule(np.array([[0.0, 1.5], [0.0, 1.5]]))  # 1 carried + 1.5 new > 0
        array([0. , 2.5])
    """

    name = "sparsefed"

    def __init__(self, k=None, clip_norm=2.0, *, backend="auto"):
        if k is None:
            raise AggregatorError("sparsefed needs k: an integer count of coordinates or a fraction in (0, 1)")
        if isinstance(k, float) and not float(k).is_integer():
            k = check_real("k", k, 0.0, 1.0, low_open=True, high_open=True)
        else:
            k = check_int("k", k, 1)
        self._set(k=k, clip_norm=check_real("clip_norm", clip_norm, 0.0, math.inf, low_open=True))
        self.backend = _check_backend(backend)
        self.reset()

    def reset(self) -> None:
        self._error: torch.Tensor | None = None

    def state_dict(self) -> dict:
        return {"error": None if self._error is None else self._error.clone()}

    def load_state_dict(self, state: dict) -> None:
        self._error = None if state["error"] is None else torch.as_tensor(state["error"]).clone()

    def _aggregate(self, stack, weights, client_ids):
        k = self.k if isinstance(self.k, int) else math.ceil(self.k * stack.d)
        if k > stack.d:
            raise AggregatorError(f"sparsefed: k = {k} exceeds the number of coordinates d = {stack.d}")
        coef = _clip_factors(stack, self.clip_norm, self.backend) / stack.n
        mean = F.weighted_sum(stack, coef, backend=self.backend, rule=self.name)
        mean = torch.from_numpy(mean) if isinstance(mean, np.ndarray) else mean
        if self._error is None:
            self._error = torch.zeros_like(mean)
        elif self._error.shape != mean.shape:
            raise AggregatorError(
                f"sparsefed: updates have d = {stack.d}, the error accumulator {self._error.numel()}; "
                "call reset() when the model changes"
            )
        self._error = self._error.to(mean.device, mean.dtype) + mean
        idx = torch.topk(self._error.abs(), k, sorted=False).indices
        out = torch.zeros_like(self._error)
        out[idx] = self._error[idx]
        self._error[idx] = 0
        return out.numpy() if stack.cpu is not None else out


# =========================================================================== factory
def available_rules() -> list[str]:
    """Names accepted by :func:`make`."""
    return sorted(RULES)


def make(name: str, **hyperparameters) -> AggregationRule:
    """Build an aggregation rule by name, validating its hyperparameters.

    >>> import invariant_aggregator as ia
    >>> ia.make("invariant", tau=0.6, alpha=0.1)
    Invariant(tau=0.6, alpha=0.1, tau_sum=None, trim='definition3')
    """
    if name not in RULES:
        raise AggregatorError(f"unknown aggregation rule {name!r}; available: {', '.join(available_rules())}")
    try:
        return RULES[name](**hyperparameters)
    except TypeError as exc:
        import inspect

        params = [p for p in inspect.signature(RULES[name].__init__).parameters if p != "self"]
        raise AggregatorError(f"{name}: {exc}; accepted hyperparameters: {', '.join(params)}") from None
