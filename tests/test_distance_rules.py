"""Krum family, Bulyan, RFA: against brute-force definitions, and distance accuracy."""

import numpy as np
import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import optimize

import invariant_aggregator as ia
from invariant_aggregator import functional as F
from tests import oracles
from tests.support import to_numpy, to_target


@st.composite
def general_position(draw, min_n=5, max_n=12, max_d=6):
    n = draw(st.integers(min_n, max_n))
    d = draw(st.integers(1, max_d))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) * draw(st.sampled_from([1e-3, 1.0, 1e3]))
    if draw(st.booleans()):  # a few far outliers, as an attacker would send
        x[: draw(st.integers(1, 2))] += rng.normal(size=d) * 100
    if draw(st.booleans()):  # duplicated updates (colluding clients): exact ties
        x[-1] = x[0]
    return x


@given(x=general_position(), data=st.data())
def test_krum_returns_an_input_and_matches_brute_force(x, data, target):
    n = x.shape[0]
    f = data.draw(st.integers(0, (n - 3) // 2))
    out = to_numpy(ia.make("krum", f=f, backend=target[1])(to_target(x, target)))
    assert any(np.array_equal(out, row) for row in x)
    np.testing.assert_array_equal(out, x[oracles.krum_index(x, f)])


@given(x=general_position(), data=st.data())
def test_multi_krum_averages_the_m_best(x, data):
    n = x.shape[0]
    f = data.draw(st.integers(0, (n - 3) // 2))
    m = data.draw(st.integers(1, n))
    scores = oracles.krum_scores(x, f)
    best = sorted(range(n), key=lambda i: (scores[i], tuple(x[i])))[:m]
    np.testing.assert_allclose(ia.make("multi_krum", f=f, m=m)(x), x[best].mean(0), rtol=1e-12, atol=1e-12)


@given(x=general_position(), data=st.data())
def test_krum_trimmed_mean_is_trimmed_mean_of_selection(x, data):
    n = x.shape[0]
    f = data.draw(st.integers(0, (n - 3) // 2))
    m = data.draw(st.integers(1, n))
    alpha = data.draw(st.sampled_from([0.0, 0.1, 0.2]))
    scores = oracles.krum_scores(x, f)
    best = sorted(range(n), key=lambda i: (scores[i], tuple(x[i])))[:m]
    if m - 2 * oracles.exact_threshold(alpha, m) < 1:
        with pytest.raises(ia.AggregatorError, match="leaving none"):
            ia.make("krum_trimmed_mean", f=f, m=m, alpha=alpha)(x)
        return
    expected = oracles.trimmed_mean(x[best], alpha)
    out = ia.make("krum_trimmed_mean", f=f, m=m, alpha=alpha)(x)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12 * np.abs(x).max())


def test_multi_krum_cosine_uses_angles_not_lengths():
    # three long updates along e1, one short along e1, one along e2: cosine keeps the short one
    x = np.array([[100.0, 0.0], [120.0, 1.0], [90.0, -1.0], [0.01, 0.0], [0.0, 1.0]])
    cos_pick = ia.make("multi_krum_cosine", f=1, m=1)(x)
    assert cos_pick[1] == 0.0 and cos_pick[0] in (100.0, 0.01)
    sel = F.krum_select(F.cosine_distances(F.gram_matrix(x)), 1, 4)
    assert 4 not in sel  # the orthogonal update is the one left out


@given(x=general_position(min_n=7, max_n=12, max_d=4), data=st.data())
def test_bulyan_matches_brute_force(x, data, target):
    n = x.shape[0]
    f = data.draw(st.integers(0, (n - 3) // 4))
    out = to_numpy(ia.make("bulyan", f=f, backend=target[1])(to_target(x, target)))
    np.testing.assert_allclose(out, oracles.bulyan(x, f), rtol=1e-12, atol=1e-12 * np.abs(x).max())


def test_distances_accurate_for_nearly_identical_float32_updates(target):
    # updates = large common part + tiny differences: the Gram shortcut loses every digit here
    rng = np.random.default_rng(1)
    base = rng.normal(size=200_000).astype(np.float32) * 1000
    x = (base + rng.normal(size=(6, base.size)).astype(np.float32) * 1e-3).astype(np.float32)
    exact = np.array([[oracles.sq_dist(a, b) for b in x] for a in x])
    got = F.pairwise_sq_distances(to_target(x, target), backend=target[1])
    np.testing.assert_allclose(got, exact, rtol=1e-9)
    # and the naive float32 Gram shortcut is indeed far off (the reason for the above)
    g = x @ x.T
    naive = np.diag(g)[:, None] + np.diag(g)[None, :] - 2 * g
    off = ~np.eye(6, dtype=bool)
    assert np.max(np.abs(naive[off] - exact[off]) / exact[off]) > 0.5


# --------------------------------------------------------------------------- RFA
@given(
    n=st.integers(3, 10),
    d=st.integers(2, 5),
    seed=st.integers(0, 2**31 - 1),
    scale=st.sampled_from([1e-3, 1.0, 1e3]),
    outliers=st.integers(0, 2),
)
def test_rfa_satisfies_geometric_median_optimality(n, d, seed, scale, outliers):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) * scale
    x[:outliers] += rng.normal(size=d) * 100 * scale
    rule = ia.make("rfa", nu=1e-12 * scale, tol=1e-15, max_iter=5000)
    z = rule(x)
    # Weiszfeld converges sublinearly when the median sits on a data point; the rule says so
    assume(rule.last_result.converged)
    dist = np.linalg.norm(x - z, axis=1)
    assume(dist.min() > 1e-6 * scale)
    g = ((z - x) / dist[:, None]).sum(0)  # the gradient of sum_i |z - x_i| vanishes
    assert np.linalg.norm(g) <= 1e-5 * n
    best = min(np.linalg.norm(x - p, axis=1).sum() for p in list(x) + [x.mean(0)])
    assert dist.sum() <= best * (1 + 1e-12)


def test_rfa_stops_at_a_data_point_that_is_the_median():
    # a duplicated point is the median; Weiszfeld only creeps towards it, the exact test of the
    # nearest update (the others' pull against its weight) returns it
    x = np.array([[0.0, 0.0], [0.0, 0.0], [3.0, 1.0], [-1.0, 4.0]])
    rule = ia.make("rfa", nu=1e-15, tol=1e-15, max_iter=50)
    z = rule(x)
    assert rule.last_result.converged
    assert np.array_equal(z, [0.0, 0.0])


def test_rfa_leaves_a_data_point_that_is_not_the_median():
    # the coordinate-wise median start is the data point (0, 1); the others pull harder than its
    # weight (|(-5, 1)| > 5), so the geometric median lies elsewhere
    x = np.array([[0.0, 1.0]] * 5 + [[1.0, 1.0]] * 5 + [[0.0, 0.0]])
    z = ia.make("rfa", nu=1e-12, tol=1e-12, max_iter=5000)(x)
    objective = lambda p: np.linalg.norm(x - p, axis=1).sum()  # noqa: E731
    best = optimize.minimize(objective, x.mean(0), method="Nelder-Mead", options={"xatol": 1e-12, "fatol": 1e-14})
    assert objective(z) <= best.fun + 1e-9
    assert objective(z) < objective(np.array([0.0, 1.0])) - 1e-3


@given(x=general_position(min_n=3, max_n=10), w=st.lists(st.floats(0.1, 5.0), min_size=10, max_size=10))
def test_rfa_minimises_the_weighted_distance_sum(x, w):
    # independent oracle: scipy's Nelder-Mead on the objective, started from the weighted mean
    w = np.array(w[: x.shape[0]])
    rule = ia.make("rfa", nu=1e-12 * np.abs(x).max(), tol=1e-12, max_iter=5000)
    z = rule(x, weights=w)
    # Weiszfeld escapes a data point that is not the median at a rate set by how nearly the
    # pulls balance (thousands of steps when they almost do); the rule then says so
    assume(rule.last_result.converged)
    objective = lambda p: w @ np.linalg.norm(x - p, axis=1)  # noqa: E731
    best = optimize.minimize(objective, w @ x / w.sum(), method="Nelder-Mead", options={"xatol": 1e-13, "fatol": 1e-15})
    assert objective(z) <= best.fun * (1 + 1e-9) + 1e-300


def test_rfa_resists_outliers_that_move_the_mean():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 10))
    x[:4] += 1000
    z = ia.make("rfa", tol=1e-10, max_iter=1000)(x)
    assert np.linalg.norm(z - x[4:].mean(0)) < 1.0 < np.linalg.norm(x.mean(0) - x[4:].mean(0))


def test_rules_work_on_torch_float64_cpu_and_match_numpy():
    x = np.random.default_rng(3).normal(size=(11, 50))
    for name, params in [("krum", {"f": 2}), ("bulyan", {"f": 2}), ("rfa", {}), ("multi_krum_cosine", {"f": 2})]:
        a = ia.make(name, **params)(x)
        b = ia.make(name, **params)(torch.from_numpy(x))
        np.testing.assert_allclose(b.numpy(), a, rtol=1e-12)


def test_duplicated_large_updates_tie_break_by_value():
    # colluding clients send identical updates: exact score ties on a large vector (the tie
    # break compares rows, it does not lexsort d keys)
    rng = np.random.default_rng(5)
    x = rng.normal(size=(7, 2_000_000)).astype(np.float32)
    x[5] = x[6] = x[2]
    out = ia.make("krum", f=1)(x[::-1].copy())
    np.testing.assert_array_equal(out, ia.make("krum", f=1)(x))
    np.testing.assert_array_equal(out, x[2])


def test_read_only_input_is_used_without_copy():
    x = np.random.default_rng(0).normal(size=(5, 30))
    x.flags.writeable = False
    np.testing.assert_allclose(ia.make("median")(x), np.median(x, axis=0))


def test_bulyan_keeps_the_values_nearest_the_median_when_values_repeat():
    # colluders submit identical rows; a minimax run choice dropped a strictly nearer value (-1.2)
    x = np.array([0.0, 1.0, 0.0, -2.0, 1.0, 1.0, -2.0, -2.0, -2.0])[:, None]
    assert ia.make("bulyan", f=1)(x)[0] == 0.0
    assert oracles.bulyan(x, 1)[0] == 0.0


@given(data=st.data())
def test_bulyan_matches_the_definition_with_repeated_values(data, target):
    f = data.draw(st.integers(0, 2))
    n = data.draw(st.integers(4 * f + 3, 4 * f + 5))
    values = st.sampled_from([-2.0, -1.0, 0.0, 0.5, 1.0, 2.0])  # ties and duplicated rows are the rule here
    x = data.draw(hnp.arrays(np.float64, (n, 2), elements=values))
    out = to_numpy(ia.make("bulyan", f=f, backend=target[1])(to_target(x, target)))
    np.testing.assert_allclose(out, oracles.bulyan(x, f), rtol=0, atol=1e-12)
