"""Coordinate-wise rules: invariant, and_mask, trimmed_mean, median, fedavg, sign_sgd."""

import math

import numpy as np
import pytest
import scipy.stats
import torch
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import invariant_aggregator as ia
from invariant_aggregator import functional as F
from tests import oracles
from tests.support import to_numpy, to_target

# Values with many ties and zeros (sign(0) = 0 matters), and a wide dynamic range.
values = st.one_of(
    st.sampled_from([0.0, 1.0, -1.0, 2.0, -0.5]),
    st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False, width=32),
)


@st.composite
def stacks(draw, min_n=1, max_n=12, max_d=5, dtype=np.float64):
    n = draw(st.integers(min_n, max_n))
    d = draw(st.integers(1, max_d))
    return draw(arrays(dtype, (n, d), elements=values))


def close(actual, expected, x):
    scale = max(1.0, float(np.abs(x).max()))
    tol = 1e-5 if x.dtype == np.float32 else 1e-12
    np.testing.assert_allclose(to_numpy(actual), expected, rtol=tol, atol=tol * scale)


alphas = st.sampled_from([0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.45])
taus = st.sampled_from([0.0, 0.1, 0.2, 0.3, 0.5, 0.6, 0.7, 0.9, 1.0])


# --------------------------------------------------------------------------- oracles
@given(x=stacks(), alpha=alphas, tau=taus)
def test_invariant_matches_definition(x, alpha, tau, target):
    n = x.shape[0]
    assume(n - 2 * oracles.exact_threshold(alpha, n) >= 1)
    out = ia.make("invariant", tau=tau, alpha=alpha, backend=target[1])(to_target(x, target))
    close(out, oracles.invariant(x, tau, alpha), x)


@given(x=stacks(), alpha=alphas)
def test_trimmed_mean_matches_definition_3(x, alpha, target):
    n = x.shape[0]
    assume(n - 2 * oracles.exact_threshold(alpha, n) >= 1)
    out = ia.make("trimmed_mean", alpha=alpha, backend=target[1])(to_target(x, target))
    close(out, oracles.trimmed_mean(x, alpha), x)


@given(x=stacks(min_n=2), data=st.data())
def test_trimmed_mean_equals_scipy_where_conventions_coincide(x, data):
    # scipy trims floor(p * N), Definition 3 ceil(alpha * N): equal when alpha * N is an integer.
    n = x.shape[0]
    k = data.draw(st.integers(0, (n - 1) // 2))
    out = ia.make("trimmed_mean", alpha=k / n)(x)
    # scipy cuts int(p * N): (k + 0.5) / N floors to k exactly, where int(k / N * N) may give k - 1
    np.testing.assert_allclose(out, scipy.stats.trim_mean(x, (k + 0.5) / n, axis=0), rtol=1e-12, atol=1e-9)


@given(x=stacks())
def test_trimmed_mean_at_alpha_zero_is_the_mean(x, target):
    out = ia.make("trimmed_mean", alpha=0.0, backend=target[1])(to_target(x, target))
    close(out, x.mean(axis=0), x)


@given(x=stacks(), alpha=alphas)
def test_trimmed_mean_within_coordinate_range(x, alpha):
    assume(x.shape[0] - 2 * oracles.exact_threshold(alpha, x.shape[0]) >= 1)
    out = ia.make("trimmed_mean", alpha=alpha)(x)
    assert np.all(out >= x.min(axis=0)) and np.all(out <= x.max(axis=0))


@given(x=stacks(), tau=taus)
def test_and_mask_zero_below_tau_and_mean_elsewhere(x, tau, target):
    out = to_numpy(ia.make("and_mask", tau=tau, backend=target[1])(to_target(x, target)))
    consistency = np.abs(oracles.sign_count(x)) / x.shape[0]
    masked = np.abs(oracles.sign_count(x)) < oracles.exact_threshold(tau, x.shape[0])
    assert np.all(out[masked] == 0.0)
    close(out[~masked], x.mean(axis=0)[~masked], x)
    # and the mask agrees with the averaged-scale reading |(1/N) sum sign| >= tau
    assert np.array_equal(~masked, consistency >= tau - 1e-12)


@given(x=stacks())
def test_median_matches_numpy(x, target):
    out = ia.make("median", backend=target[1])(to_target(x, target))
    close(out, np.median(x, axis=0), x)


@given(x=stacks(), w=st.lists(st.floats(0.0, 10.0), min_size=12, max_size=12))
def test_fedavg_weighted_mean(x, w):
    w = np.array(w[: x.shape[0]])
    assume(w.sum() > 0)
    # the oracle scales the weights to a maximum of 1 first (the weighted mean is the same): numpy's
    # own sum of w * x underflows for subnormal weights (w = 5e-324 on one row gave 0, not the row)
    close(ia.make("fedavg")(x, weights=w), np.average(x, axis=0, weights=w / w.max()), x)


@given(x=stacks(), lr=st.sampled_from([1e-3, 0.5, 2.0]))
def test_sign_sgd_outputs_only_three_values(x, lr, target):
    out = to_numpy(ia.make("sign_sgd", lr=lr, backend=target[1])(to_target(x, target)))
    assert set(np.unique(out)) <= {-lr, 0.0, lr}
    np.testing.assert_array_equal(out, lr * np.sign(oracles.sign_count(x)))


@given(x=stacks())
def test_sign_consistency_is_mean_sign_magnitude(x, target):
    out = to_numpy(F.sign_consistency(to_target(x, target), backend=target[1]))
    np.testing.assert_allclose(out, np.abs(oracles.sign_count(x)) / x.shape[0], rtol=1e-6)
    assert np.all((0 <= out) & (out <= 1))


@given(x=stacks(), tau=taus, alpha=st.sampled_from([0.0, 0.1, 0.2]))
def test_tau_sum_reading_equals_tau_times_n(x, tau, alpha):
    n = x.shape[0]
    assume(n - 2 * oracles.exact_threshold(alpha, n) >= 1)
    averaged = ia.make("invariant", tau=tau, alpha=alpha)(x)
    summed = ia.make("invariant", tau_sum=tau * n, alpha=alpha)(x)
    np.testing.assert_array_equal(summed, averaged)


@given(x=stacks(min_n=10, max_n=30), tau=taus)
def test_invariant_with_authors_trim(x, tau):
    n = x.shape[0]
    lo, hi = int(0.45 * n), int(0.55 * n)
    assume(hi > lo)
    expected = oracles.and_mask(x, tau) * oracles.window_mean(x, lo, hi)
    close(ia.make("invariant", tau=tau, trim="authors")(x), expected, x)


# --------------------------------------------------------------------------- invariances
SYMMETRIC = [
    ("invariant", {"tau": 0.5, "alpha": 0.1}),
    ("and_mask", {"tau": 0.5}),
    ("trimmed_mean", {"alpha": 0.2}),
    ("median", {}),
    ("fedavg", {}),
    ("sign_sgd", {"lr": 1.0}),
    ("krum", {"f": 1}),
    ("multi_krum", {"f": 1}),
    ("multi_krum_cosine", {"f": 1}),
    ("krum_trimmed_mean", {"f": 1, "alpha": 0.2}),
    ("bulyan", {"f": 1}),
    ("rfa", {"tol": 1e-12, "max_iter": 200}),
    ("weak_dp", {"noise_std": 0.0, "clip_norm": 3.0}),
]


@pytest.mark.parametrize("name,params", SYMMETRIC, ids=[s[0] for s in SYMMETRIC])
@given(data=st.data())
def test_permutation_invariance(name, params, data):
    # distinct rows in general position, so selection rules have no ties to break by index
    n = data.draw(st.integers(7, 11))
    d = data.draw(st.integers(1, 4))
    seed = data.draw(st.integers(0, 2**31 - 1))
    x = np.random.default_rng(seed).normal(size=(n, d))
    perm = np.array(data.draw(st.permutations(range(n))))
    rule = ia.make(name, **params)
    np.testing.assert_allclose(rule(x[perm]), rule(x), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(
    "name,params",
    [s for s in SYMMETRIC if s[0] not in ("and_mask", "invariant", "sign_sgd", "weak_dp", "multi_krum_cosine")],
)
@given(data=st.data())
def test_translation_equivariance(name, params, data):
    # f(x + c) = f(x) + c for location estimators (not for sign-based or clipping rules)
    n = data.draw(st.integers(7, 10))
    seed = data.draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    c = rng.normal(size=3) * 5
    rule = ia.make(name, **params)
    np.testing.assert_allclose(rule(x + c), rule(x) + c, rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("name,params", SYMMETRIC[:7] + SYMMETRIC[8:11], ids=lambda p: str(p))
@given(data=st.data())
def test_positive_scale_equivariance(name, params, data):
    # f(s x) = s f(x) for s > 0; sign_sgd is scale-invariant instead (checked separately)
    n = data.draw(st.integers(7, 10))
    seed = data.draw(st.integers(0, 2**31 - 1))
    s = data.draw(st.sampled_from([0.25, 3.0, 1024.0]))
    x = np.random.default_rng(seed).normal(size=(n, 3))
    rule = ia.make(name, **params)
    expected = rule(x) if name == "sign_sgd" else s * rule(x)
    np.testing.assert_allclose(rule(s * x), expected, rtol=1e-7, atol=1e-12)


# --------------------------------------------------------------------------- conventions
def test_thresholds_snap_float_products_to_integers():
    # alpha * N = 5 exactly in intent, a hair above in binary: trims 5, not 6
    x = np.arange(12, dtype=np.float64)[:, None]
    assert F.trim_bounds(12, 5 / 12) == (5, 7)
    assert F.trim_bounds(10, 0.1) == (1, 9)
    assert F.min_agreeing_signs(10, tau=0.7) == 7
    assert F.min_agreeing_signs(20, tau=0.6) == 12
    assert ia.make("trimmed_mean", alpha=5 / 12)(x)[0] == 5.5


def test_tau_is_exact_on_decimal_boundaries():
    # 7 of 10 positive: consistency 0.4 -> masked at tau = 0.5, kept at 0.4 (exact, no float slop)
    x = np.array([[1.0]] * 7 + [[-1.0]] * 3)
    assert ia.make("and_mask", tau=0.4)(x)[0] == pytest.approx(0.4)
    assert ia.make("and_mask", tau=0.41)(x)[0] == 0.0
    # the sum scale of Eq. 3 says the same thing with tau_sum = N * tau
    assert ia.make("and_mask", tau_sum=4)(x)[0] == pytest.approx(0.4)
    assert ia.make("and_mask", tau_sum=5)(x)[0] == 0.0


def test_zero_signs_abstain():
    # 3 positive, 0 negative, 7 zeros: consistency 0.3
    x = np.array([[1.0]] * 3 + [[0.0]] * 7)
    assert ia.make("and_mask", tau=0.3)(x)[0] == pytest.approx(0.3)
    assert ia.make("and_mask", tau=0.31)(x)[0] == 0.0


def test_authors_trim_slicing():
    x = np.arange(20, dtype=np.float64)[:, None][::-1].copy()
    # N = 20: positions [9, 11) -> mean of the two middle values = the median
    assert ia.make("trimmed_mean", trim="authors")(x)[0] == 9.5
    assert F.trim_bounds(15, None, "authors") == (6, 8)  # asymmetric for odd N
    with pytest.raises(ia.AggregatorError, match="no values"):
        ia.make("trimmed_mean", trim="authors")(np.ones((5, 2)))
    with pytest.raises(ia.AggregatorError, match="leave alpha unset"):
        ia.make("invariant", trim="authors", alpha=0.1)


def test_trimmed_mean_keeps_precision_under_huge_outliers():
    # an attacker's 1e30 must not absorb the benign values (no total-minus-tails arithmetic)
    x = np.array([[1.0], [2.0], [3.0], [1e30], [-1e30]], dtype=np.float32)
    np.testing.assert_array_equal(ia.make("trimmed_mean", alpha=0.2)(x), [2.0])
    np.testing.assert_array_equal(ia.make("median")(x), [2.0])


# --------------------------------------------------------------------------- kernels agree
@pytest.mark.parametrize("n", [2, 3, 7, 20])
def test_specialised_kernel_bitwise_equal_to_generic(n, monkeypatch):
    rng = np.random.default_rng(n)
    x = rng.normal(size=(n, 3000)).astype(np.float32)
    x[:, :50] = np.round(x[:, :50])  # ties and zeros
    k = math.ceil(0.2 * n) if n - 2 * math.ceil(0.2 * n) >= 1 else 0
    generic = ia.make("invariant", tau=0.5, alpha=k / n if k else 0.0)(x)
    monkeypatch.setattr(F, "SPECIALISE_MIN_COORDINATES", 0)
    specialised = ia.make("invariant", tau=0.5, alpha=k / n if k else 0.0)(x)
    np.testing.assert_array_equal(specialised, generic)
    np.testing.assert_allclose(generic, oracles.invariant(x, 0.5, k / n if k else 0.0), rtol=1e-6, atol=1e-6)


def test_specialised_kernel_detects_non_finite(monkeypatch):
    monkeypatch.setattr(F, "SPECIALISE_MIN_COORDINATES", 0)
    x = np.zeros((3, 100), np.float32)
    x[1, 77] = np.inf
    with pytest.raises(ia.AggregatorError, match="NaN or Inf"):
        ia.make("median")(x)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_result_type_device_and_dtype_follow_input(dtype, target):
    x = np.random.default_rng(0).normal(size=(9, 17)).astype(dtype)
    for name, params in SYMMETRIC:
        out = ia.make(name, **params, backend=target[1])(to_target(x, target))
        if target == ("cpu", "auto"):
            assert isinstance(out, np.ndarray) and out.dtype == dtype and out.shape == (17,)
        else:
            assert isinstance(out, torch.Tensor) and out.device.type == target[0]
            assert out.dtype == torch.from_numpy(x).dtype and out.shape == (17,)


def test_torch_cpu_tensor_runs_through_numba_without_copy():
    x = torch.randn(5, 40)
    out = ia.make("median")(x)
    assert isinstance(out, torch.Tensor)
    np.testing.assert_allclose(out.numpy(), np.median(x.numpy(), axis=0), rtol=1e-6)


@given(data=st.data())
def test_rfa_is_scale_equivariant_when_nu_scales_too(data):
    # nu is an absolute length, so RFA(s x; nu) != s RFA(x; nu) in general; with nu -> s nu
    # and the same number of iterations every iterate scales exactly
    seed = data.draw(st.integers(0, 2**31 - 1))
    s = data.draw(st.sampled_from([0.25, 3.0, 1024.0]))
    x = np.random.default_rng(seed).normal(size=(data.draw(st.integers(3, 10)), 3))
    a = ia.make("rfa", nu=1e-3, tol=1e-300, max_iter=5)
    b = ia.make("rfa", nu=1e-3 * s, tol=1e-300, max_iter=5)
    za, zb = a(x), b(s * x)
    # compare the same iterate: near the optimum the objective is flat, so *when* it stops
    # changing in floating point (the stop rule) fixes z only to ~sqrt(eps)
    assume(a.last_result.iterations == b.last_result.iterations == 5)
    np.testing.assert_allclose(zb, s * za, rtol=1e-9, atol=1e-12 * s)


# --------------------------------------------------------------------------- D.2's mean/variance-ratio filter
def _ratio_oracle(x):
    mean, std = x.mean(0), x.std(0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(std > 0, np.abs(mean) / np.where(std > 0, std, 1), np.where(mean != 0, np.inf, 0.0))


@given(
    x=arrays(np.float64, st.tuples(st.integers(5, 12), st.integers(1, 8)), elements=st.floats(-5, 5, width=32)),
    threshold=st.floats(0, 3),
)
def test_mean_ratio_threshold_is_the_definition(x, threshold):
    ratio = _ratio_oracle(x)
    assume(np.all(np.abs(ratio - threshold) > 1e-9 * np.maximum(1, threshold)))  # no float near-tie
    np.testing.assert_allclose(F.mean_std_ratio(x).numpy(), ratio, rtol=1e-9, atol=1e-12)
    got = ia.make("mean_ratio", threshold=threshold, alpha=0.2)(x)
    expected = (ratio >= threshold) * oracles.trimmed_mean(x, 0.2)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


@given(
    x=arrays(np.float64, st.tuples(st.integers(5, 12), st.integers(1, 8)), elements=st.floats(-5, 5, width=32)),
    tau=st.sampled_from([0.2, 0.4, 0.6, 0.8]),
)
def test_mean_ratio_matched_keeps_as_many_coordinates_as_the_and_mask(x, tau):
    ratio = _ratio_oracle(x)
    keep = int(oracles.and_mask(x, tau).sum())
    order = np.argsort(-ratio, kind="stable")
    if 0 < keep < len(ratio):  # the boundary must not be a near-tie of two ratios
        assume(abs(ratio[order[keep - 1]] - ratio[order[keep]]) > 1e-9 * max(1.0, abs(ratio[order[keep]])))
    mask = np.zeros(len(ratio))
    mask[order[:keep]] = 1
    got = ia.make("mean_ratio", match_tau=tau, alpha=0.2)(x)
    np.testing.assert_allclose(got, mask * oracles.trimmed_mean(x, 0.2), rtol=1e-12, atol=1e-12)


@given(
    x=arrays(np.float64, (7, 5), elements=st.floats(-5, 5, width=32)),
    exponent=st.integers(-300, 300),
)
def test_mean_ratio_filter_commutes_with_scaling(x, exponent):
    s = 2.0**exponent
    rule = ia.make("mean_ratio", threshold=1.0, alpha=0.2)
    assert np.array_equal(rule(x * s) / s, rule(x))


def test_mean_ratio_needs_one_criterion_and_two_updates():
    with pytest.raises(ia.AggregatorError, match="exactly one of threshold"):
        ia.make("mean_ratio")
    with pytest.raises(ia.AggregatorError, match="exactly one of threshold"):
        ia.make("mean_ratio", threshold=1.0, match_tau=0.6)
    with pytest.raises(ia.AggregatorError, match="at least 2 updates"):
        ia.make("mean_ratio", threshold=1.0, alpha=0.0)(np.ones((1, 3)))
