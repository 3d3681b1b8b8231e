"""Every rule on extreme-but-finite inputs: a finite result equal to its definition, or
AggregatorError — never NaN, zeros or an attacker-steered answer.

Honest rows are ordinary numbers; one or two attacker rows are scaled up to 1e307 (float64),
possibly duplicated; weights span 1e-300..1e300. The oracles work in exact rational arithmetic
(``fractions.Fraction`` holds any float exactly, so nothing overflows) and return, with each
value, the sum of the magnitudes behind it: a float64 computation may be off by a few ulps of
that sum (summing 1e300, 5 and -1e300 in any float order loses the 5), never by more.
"""

from __future__ import annotations

import itertools
from fractions import Fraction

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import invariant_aggregator as ia
from invariant_aggregator import functional as F
from tests import oracles

ULPS = 1e-12  # relative to the magnitude sum: ~ N * eps with room to spare
SAFE = 1e150  # below this every squared distance fits in float64: distance rules must not refuse


@st.composite
def extreme_stack(draw, min_honest=7, max_honest=10):
    n_honest = draw(st.integers(min_honest, max_honest))
    d = draw(st.integers(1, 4))
    honest = draw(hnp.arrays(np.float64, (n_honest, d), elements=st.floats(-10, 10, width=32)))
    n_attackers = draw(st.integers(1, 2))
    direction = draw(hnp.arrays(np.float64, (n_attackers, d), elements=st.floats(-1.5, 1.5, width=32)))
    exponents = np.array(draw(st.lists(st.integers(100, 307), min_size=n_attackers, max_size=n_attackers)))
    attackers = direction * 10.0 ** exponents[:, None]
    if n_attackers == 2 and draw(st.booleans()):
        attackers[1] = attackers[0]  # colluders send the same update
    return np.vstack([honest, attackers])


def exact(x):
    return [[Fraction(float(v)) for v in row] for row in x]


def window(x, lo, hi):
    """(mean of sorted positions [lo, hi), magnitude sum / count) per coordinate, exactly."""
    cols = list(zip(*exact(x), strict=True))
    values, scales = [], []
    for col in cols:
        kept = sorted(col)[lo:hi]
        values.append(float(sum(kept) / len(kept)))
        scales.append(float(sum(abs(v) for v in kept) / len(kept)))
    return np.array(values), np.array(scales)


def sq_dist(a, b):
    return sum((p - q) ** 2 for p, q in zip(a, b, strict=True))


def krum_order(x, f, rows=None):
    """Rows ordered by exact Krum score, ties by the update's values; and the scores."""
    ex = exact(x)
    rows = list(range(len(ex))) if rows is None else rows
    scores = {i: sum(sorted(sq_dist(ex[i], ex[j]) for j in rows if j != i)[: len(rows) - f - 2]) for i in rows}
    return sorted(rows, key=lambda i: (scores[i], tuple(x[i]))), scores


def distinct_boundary(scores, order, m):
    """Every score equals the m-th one exactly or lies clearly apart from it: no float near-tie
    can change which rows are selected (exact ties go by value in both the rule and here)."""
    if m >= len(order):
        return True
    a = scores[order[m - 1]]
    return all(b == a or abs(a - b) > Fraction(1, 10**9) * max(abs(a), abs(b)) for b in scores.values())


def norms(x):
    top = np.abs(x).max(axis=1, keepdims=True)
    top[top == 0] = 1
    return top[:, 0] * np.linalg.norm(x / top, axis=1)


def clip_factors(x, clip=2):
    """min(1, C / |x_i|) as exact Fractions of the (float) norms."""
    return [Fraction(1) if v <= clip else Fraction(clip) / Fraction(float(v)) for v in norms(x)]


def cosines(x):
    top = np.abs(x).max(axis=1, keepdims=True)
    top[top == 0] = 1
    u = x / top
    n = np.linalg.norm(u, axis=1)
    n[n == 0] = np.inf
    return (u @ u.T) / np.outer(n, n)


def combination(x, coefficients, divisor):
    """sum_i c_i x_i / divisor exactly (coefficients: floats or Fractions), with its magnitude sum."""
    ex = exact(x)
    c = [v if isinstance(v, Fraction) else Fraction(float(v)) for v in coefficients]
    div = divisor if isinstance(divisor, Fraction) else Fraction(float(divisor))
    value = [float(sum(ci * row[j] for ci, row in zip(c, ex, strict=True)) / div) for j in range(x.shape[1])]
    scale = [float(sum(abs(ci * row[j]) for ci, row in zip(c, ex, strict=True)) / abs(div)) for j in range(x.shape[1])]
    return np.array(value), np.array(scale)


def assert_close(got, value, scale, floor=0.0):
    got = np.asarray(got, dtype=np.float64)
    assert np.all(np.isfinite(got)), got
    np.testing.assert_array_less(np.abs(got - value), ULPS * scale + floor + 1e-300)


SUBNORMAL_SPACING = 2.0**-1074


def subnormal_floor(x, weights):
    """The weighted rules normalise their coefficients to at most 1 (weights by the largest, so
    that 1e308 each still sums); a coefficient that lands below 2^-1022 (a weight 1e-300 of a
    largest 1e18, times a clip factor) keeps only the subnormal spacing 2^-1074 of absolute
    precision. Its error in the result is at most that spacing times the row it multiplies,
    over the normalised weight sum: float64's dynamic range, not a bug."""
    w = np.ones(x.shape[0]) if weights is None else weights
    return 4 * x.shape[0] * SUBNORMAL_SPACING * np.abs(x).max(axis=0) / (w / w.max()).sum()


def outcome(rule, x, **kw):
    try:
        return rule(x, **kw)
    except ia.AggregatorError:
        return None


def oracle(name, x, weights):
    """(value, magnitude scale) of the rule's definition on x, or None when its definition is
    only determined up to a float near-tie (then the case is skipped)."""
    n = x.shape[0]
    if name == "fedavg":
        w = np.ones(n) if weights is None else weights
        return _weighted(x, w)
    if name == "median":
        return window(x, (n - 1) // 2, n // 2 + 1)
    if name in ("trimmed_mean", "invariant"):
        k = oracles.exact_threshold(0.1, n)
        value, scale = window(x, k, n - k)
        if name == "invariant":
            mask = oracles.and_mask(x, 0.6)
            return value * mask, scale * mask
        return value, scale
    if name == "and_mask":
        value, scale = window(x, 0, n)
        mask = oracles.and_mask(x, 0.6)
        return value * mask, scale * mask
    if name == "mean_ratio":
        # |mean| / std >= 1  <=>  mean^2 >= var (sample, ddof = 1): decided exactly in rationals
        cols = list(zip(*exact(x), strict=True))
        keep = []
        for col in cols:
            mean = sum(col) / n
            var = sum((v - mean) ** 2 for v in col) / (n - 1)
            if var > 0 and abs(mean * mean - var) <= Fraction(1, 10**9) * var:
                return None  # the ratio within rounding of the threshold: either side is right
            keep.append(1.0 if (var == 0 and mean != 0) or (var > 0 and mean * mean >= var) else 0.0)
        k = oracles.exact_threshold(0.1, n)
        value, scale = window(x, k, n - k)
        return value * np.array(keep), scale * np.array(keep)
    if name == "sign_sgd":
        return np.sign(oracles.sign_count(x)) * 1e-3, np.zeros(x.shape[1])
    if name in ("krum", "multi_krum", "krum_trimmed_mean"):
        order, scores = krum_order(x, 1)
        m = 1 if name == "krum" else n - 1
        if not distinct_boundary(scores, order, m):
            return None
        chosen = sorted(order[:m])
        if name == "krum_trimmed_mean":
            k = oracles.exact_threshold(0.2, m)
            return window(x[chosen], k, m - k)
        return window(x[chosen], 0, m)
    if name == "bulyan":
        return _bulyan(x, 1)
    if name == "multi_krum_cosine":
        dist = 1.0 - np.clip(cosines(x), -1, 1)
        np.fill_diagonal(dist, 0)
        scores = np.sort(dist + np.diag(np.full(n, np.inf)), axis=1)[:, : n - 3].sum(1)
        order = np.argsort(scores, kind="stable")
        gap = scores[order[n - 1]] - scores[order[n - 2]] if n > 1 else 1
        if gap < 1e-9:
            return None
        return window(x[np.sort(order[: n - 1])], 0, n - 1)
    if name == "weak_dp":
        w = [Fraction(float(v)) for v in (np.ones(n) if weights is None else weights)]
        # the clipped coefficients exactly: a float product w * factor can be subnormal and inexact
        coef = [wi * f for wi, f in zip(w, clip_factors(x), strict=True)]
        return combination(x, coef, sum(w))
    if name == "sparsefed":
        if x.shape[1] < 2:
            return "raises"  # k = 2 coordinates of a 1-d update: refused at the call
        value, scale = combination(x, clip_factors(x), n)
        order = np.argsort(-np.abs(value), kind="stable")
        if x.shape[1] > 2 and abs(value[order[1]]) - abs(value[order[2]]) <= 1e-9 * abs(value[order[1]]):
            return None
        keep = np.zeros(x.shape[1])
        keep[order[:2]] = 1
        return value * keep, scale * keep
    if name == "foolsgold":
        cs = cosines(x)
        # FoolsGold's pardoning compares max similarities (v_i < v_j) and zeroes a_i below the
        # collinear threshold: where the exact values tie or sit on it, float rounding on either
        # side decides, and the definition itself is discontinuous there. It also scales by
        # v_i / v_j: a v_i near 0 turns cosine rounding (1e-16 absolute) into relative errors
        # of 1e-16 / v_i in the weights. Both are the definition's conditioning, not the code's.
        v = np.sort(np.max(cs - 2 * np.eye(n), axis=1))
        gaps = np.diff(v)
        near_ties = np.any((gaps > 0) & (gaps < 1e-9))
        near_threshold = np.any(np.abs(1 - cs[~np.eye(n, dtype=bool)] - 1e-9) < 1e-9)
        if near_ties or near_threshold or np.any((v != 0) & (np.abs(v) < 1e-4)):
            return None
        a = F.foolsgold_weights(cs, 1.0)
        if a.sum() <= 0:
            return "raises"
        value, scale = _weighted(x, a)
        # the weights are a function of cosines that any implementation rounds (~1e-16 absolute):
        # the result can move by the first-order effect of that rounding, sum over pairs of
        # |d out / d cs_ij| * delta (found by perturbing each pair). Beyond 1e-9 of the scale
        # the definition is ill-conditioned here, and no float implementation is held to it.
        delta, moved = 8 * np.finfo(float).eps, np.zeros(x.shape[1])
        for i, j in itertools.combinations(range(n), 2):
            bumped = cs.copy()
            bumped[i, j] += delta
            bumped[j, i] += delta
            b = F.foolsgold_weights(bumped, 1.0)
            if b.sum() <= 0:
                return None
            moved += np.abs(b @ x / b.sum() - a @ x / a.sum())
        if np.any(moved > 1e-9 * np.maximum(scale, np.abs(value))):
            return None
        return value, scale, 2 * moved
    raise AssertionError(name)


def _weighted(x, w):
    exact_w = [Fraction(float(v)) for v in w]
    return combination(x, exact_w, sum(exact_w))


def _bulyan(x, f):
    n = x.shape[0]
    ex = exact(x)
    remaining, chosen = list(range(n)), []
    for _ in range(n - 2 * f):
        r = len(remaining)
        k = min(max(1, r - f - 2), r - 1)
        scores = {i: sum(sorted(sq_dist(ex[i], ex[j]) for j in remaining if j != i)[:k]) for i in remaining}
        order = sorted(remaining, key=lambda i: (scores[i], tuple(x[i])))
        if not distinct_boundary(scores, order, 1):
            return None
        chosen.append(order[0])
        remaining.remove(order[0])
    sel = x[sorted(chosen)]
    beta = n - 4 * f
    for j in range(x.shape[1]):  # the same for the coordinate phase: no near-tie at the window's edge
        vals = sorted(Fraction(float(v)) for v in sel[:, j])
        med = (vals[(len(vals) - 1) // 2] + vals[len(vals) // 2]) / 2
        dist = sorted(abs(v - med) for v in vals)
        if beta < len(dist):
            # any distance near the window's edge but not equal to it, on either side and past a
            # group of exact ties (1.5 x 7, then 1.5 + 2^-126: float64 sees all eight as one)
            edge = dist[beta - 1]
            if any(d != edge and abs(d - edge) <= Fraction(1, 10**9) * max(d, edge) for d in dist):
                return None  # e.g. 2^-126 next to 1: float64 sees the distances 0.5 - 2^-127 and 0.5 as one
    value = np.array([oracles.closest_to_median_mean(sel[:, j], beta) for j in range(x.shape[1])])
    scale = np.abs(sel).max(axis=0)  # the kept values are at most this large
    return value, scale


RULES = {
    "fedavg": {},
    "median": {},
    "trimmed_mean": {"alpha": 0.1},
    "invariant": {"tau": 0.6, "alpha": 0.1},
    "and_mask": {"tau": 0.6},
    "sign_sgd": {},
    "krum": {"f": 1},
    "multi_krum": {"f": 1},
    "krum_trimmed_mean": {"f": 1, "alpha": 0.2},
    "bulyan": {"f": 1},
    "multi_krum_cosine": {"f": 1},
    "weak_dp": {"noise_std": 0.0},
    "sparsefed": {"k": 2},
    "foolsgold": {},
    "mean_ratio": {"threshold": 1.0, "alpha": 0.1},
}
DISTANCE_RULES = {"krum", "multi_krum", "krum_trimmed_mean", "bulyan"}


def test_every_rule_is_covered():
    assert set(RULES) | {"rfa"} == set(ia.available_rules())


@pytest.mark.parametrize("name", sorted(RULES))
@settings(max_examples=60, deadline=None)
@given(x=extreme_stack(), data=st.data())
def test_extreme_rows_give_the_definition_or_an_error(name, x, data):
    rule = ia.make(name, **RULES[name])
    weights = None
    if rule.accepts_weights and data.draw(st.booleans()):
        weights = 10.0 ** np.array(data.draw(st.lists(st.integers(-300, 300), min_size=len(x), max_size=len(x))))
    expected = oracle(name, x, weights)
    assume(expected is not None)
    kw = {"client_ids": list(range(len(x)))} if name == "foolsgold" else {}
    got = outcome(rule, x, weights=weights, **kw) if weights is not None else outcome(rule, x, **kw)
    if expected == "raises":
        assert got is None
        return
    if got is None:
        # only a ranking of squared distances beyond float64 may be refused
        assert name in DISTANCE_RULES and np.abs(x).max() >= SAFE, f"{name} refused a representable case"
        return
    weighted = name in ("fedavg", "weak_dp", "sparsefed", "foolsgold")
    floor = (subnormal_floor(x, weights) if weighted else 0.0) + (expected[2] if len(expected) > 2 else 0.0)
    assert_close(got, expected[0], expected[1], floor=floor)


@settings(max_examples=60, deadline=None)
@given(x=extreme_stack(), data=st.data())
def test_rfa_on_extreme_rows_is_the_geometric_median(x, data):
    # honest values on a grid of 0.5: distinct points are never near-coincident, so "z sits at a
    # data point" below is unambiguous (Weiszfeld approaches a data-point median only in the limit)
    honest = np.abs(x) <= 10
    x[honest] = np.round(2 * x[honest]) / 2
    w = 10.0 ** np.array(data.draw(st.lists(st.integers(-3, 3), min_size=len(x), max_size=len(x))))
    rule = ia.make("rfa", nu=1e-12, tol=1e-12, max_iter=2000)
    z = rule(x, weights=w)
    assert np.all(np.isfinite(z))
    assume(rule.last_result.converged)
    # the geometric median's optimality (a convex function's subgradient contains 0): a data point
    # p is the median iff |sum over the other points of w_i (p - g_i) / |p - g_i|| <= the weight
    # at p (Weiszfeld then only approaches it); otherwise the median is off the data, where
    # sum_i w_i (z - g_i) / |z - g_i| = 0. Which case holds is decided at p, not from how close z
    # is to p: at scales of 1e100 a median 5e99 away from p can look "close" to it.
    dist = norms(z - x)
    nearest = x[np.argmin(dist)]
    at_p = np.all(x == nearest, axis=1)
    if at_p.all():
        assert np.array_equal(z, nearest)
        return
    diff = nearest - x[~at_p]
    pull = np.linalg.norm(w[~at_p] @ (diff / norms(diff)[:, None]))
    if pull <= w[at_p].sum() * (1 - 1e-6):  # p is the median: z converged onto it
        assert dist.min() <= 1e-6 * np.median(norms(diff))
    elif pull >= w[at_p].sum() * (1 + 1e-6):  # it is not: z is off the data, a stationary point
        unit = (z - x) / dist[:, None]
        assert np.linalg.norm(w @ unit) <= 1e-5 * w.sum()


@pytest.mark.parametrize("backend", ["auto", "torch"])
def test_rfa_is_not_steered_by_one_scaled_attacker(backend):
    # the reproduction: 10 N(0, 1) rows and one at 1e10; a converged Weiszfeld gives
    # ~0.4, the old objective-relative stopping rule returned 26.5 after ~8 steps
    rng = np.random.default_rng(0)
    x = rng.normal(size=(11, 5))
    x[-1] = 1e10
    rule = ia.make("rfa", backend=backend)
    z = rule(x)
    diff = z - x
    unit = diff / np.linalg.norm(diff, axis=1)[:, None]
    assert rule.last_result.converged
    assert np.linalg.norm(unit.sum(0)) < 1e-3 * len(x)
    assert np.abs(z).max() < 1.0


@pytest.mark.parametrize("name", ["fedavg", "weak_dp", "rfa"])
def test_weights_of_1e308_each(name):
    x = np.random.default_rng(1).normal(size=(6, 3))
    rule = ia.make(name, **({"noise_std": 0.0} if name == "weak_dp" else {}))
    np.testing.assert_allclose(rule(x, weights=np.full(6, 1e308)), rule(x), rtol=1e-12)


def test_a_mean_divides_once():
    # multiplying by w / sum(w) gives 3.9999999999999996 and moves equal rows by an ulp
    assert ia.make("fedavg")(np.array([[1.0], [4.0], [7.0]]))[0] == 4.0
    row = np.array([0.1, 1 / 3, 2.0 / 7])
    equal = np.tile(row, (7, 1))
    assert np.array_equal(ia.make("fedavg")(equal, weights=np.arange(1.0, 8.0)), row)


@pytest.mark.parametrize("exponent", [-400, -200, 200, 400])
@pytest.mark.parametrize("name", sorted(set(RULES) - {"sign_sgd", "weak_dp", "sparsefed"}) + ["rfa"])
def test_scale_equivariance_by_powers_of_two(name, exponent):
    # every rule but the clipping ones and Sign-SGD commutes with scaling; a power of two
    # scales every float exactly, so the results must agree to the last bit (or both refuse)
    x = np.random.default_rng(2).normal(size=(9, 4))
    s = 2.0**exponent
    kw = {"client_ids": list(range(9))} if name == "foolsgold" else {}
    params, scaled_params = RULES.get(name, {}), RULES.get(name, {})
    if name == "rfa":  # the smoothing nu is a distance: it scales with the data
        params, scaled_params = {"nu": 1e-6}, {"nu": 1e-6 * s}
    plain, scaled = ia.make(name, **params)(x, **kw), ia.make(name, **scaled_params)(x * s, **kw)
    if name == "rfa":  # an iteration, not a formula: equal to its stopping tolerance
        np.testing.assert_allclose(scaled / s, plain, rtol=1e-5, atol=1e-5 * np.abs(plain).max())
    else:
        assert np.array_equal(scaled / s, plain)


@pytest.mark.parametrize("backend", ["auto", "torch"])
def test_window_sum_that_overflows_float64_is_recomputed(backend):
    x = np.array([[1.5e308], [1.6e308], [1.7e308], [-1.0]])
    assert ia.make("median", backend=backend)(x)[0] == 1.55e308
    assert ia.make("trimmed_mean", alpha=0.25, backend=backend)(x)[0] == 1.55e308
    np.testing.assert_allclose(ia.make("fedavg", backend=backend)(x[:3]), [1.6e308], rtol=1e-15)


@pytest.mark.parametrize("backend", ["auto", "torch"])
@pytest.mark.parametrize("name", ["weak_dp", "sparsefed"])
def test_clipping_an_update_at_1e200(name, backend):
    # the old squared norm overflowed to inf, the clip factor became 0: zeros or pure noise
    x = np.array([[1e200, 0.0], [0.0, 1.0], [0.0, 1.0]])
    params = {"noise_std": 0.0} if name == "weak_dp" else {"k": 2}
    out = ia.make(name, clip_norm=2.0, backend=backend, **params)(x)
    np.testing.assert_allclose(out, [2.0 / 3, 2.0 / 3], rtol=1e-15)


def test_norm_beyond_float64_is_refused_by_clipping_rules():
    x = np.array([[1.5e308, 1.5e308], [0.0, 1.0], [0.0, 1.0]])
    with pytest.raises(ia.AggregatorError, match="exceeds the float64"):
        ia.make("weak_dp")(x)


def test_krum_refuses_to_rank_overflowed_scores():
    x = np.vstack([np.full((3, 2), 1e200) * [[1, 1], [1, -1], [-1, 1]], np.zeros((2, 2))])
    with pytest.raises(ia.AggregatorError, match="floating-point range"):
        ia.make("krum", f=1)(x)


def test_exact_oracles_agree_with_the_float_oracles_on_ordinary_data():
    # the rational oracles above against the tests' float64 ones, where both apply
    x = np.random.default_rng(3).normal(size=(8, 3))
    np.testing.assert_allclose(window(x, 2, 6)[0], oracles.window_mean(x, 2, 6), rtol=1e-15)
    order, _ = krum_order(x, 1)
    assert order[0] == oracles.krum_index(x, 1)


@given(st.floats(0, 1.7e308, allow_subnormal=True))
def test_power_of_two_scale_is_finite_and_exact(m):
    s = F.power_of_two_scale(m)
    assert np.isfinite(s) and s > 0 and np.log2(s) == np.round(np.log2(s))  # a power of two
    if m > 0:
        assert 2.0**-53 <= m * s < 1.0  # subnormals: as far as a finite factor goes
        assert m >= 2.0**-1022 or m * s < 0.5


def test_rfa_with_a_weight_whose_beta_is_subnormal():
    # 0.1 / 1e307 is subnormal: scaling it by 2^-exponent overflowed to inf and the mean to NaN
    x = np.zeros((8, 1))
    x[-1] = 1e307
    w = np.ones(8)
    w[-1] = 0.1
    rule = ia.make("rfa", nu=1e-12, tol=1e-12)
    assert rule(x, weights=w)[0] == 0.0 and rule.last_result.converged


def test_rfa_median_off_the_data_at_extreme_scale():
    # found by hypothesis: weight 109 at the origin, 100 each at (1e100, 0) and (0, 1e106). The
    # pull on the origin, |100 (-1, 0) + 100 (0, -1)| = 141 > 109, so the median is off the data,
    # 5e99 from the origin: "close" to it against 1e106, yet not at it.
    x = np.zeros((12, 2))
    x[10, 0], x[11, 1] = 1e100, 1e106
    w = np.array([1.0] * 9 + [100.0] * 3)
    z = ia.make("rfa", nu=1e-12, tol=1e-12, max_iter=2000)(x, weights=w)
    dist = norms(z - x)
    assert dist.min() > 1e99
    assert np.linalg.norm(w @ ((z - x) / dist[:, None])) <= 1e-6 * w.sum()
