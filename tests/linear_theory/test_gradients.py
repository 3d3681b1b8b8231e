"""The data model, the sympy gradient and the exact expected gradient against independent oracles."""

import mpmath as mp
import numpy as np
import pytest
import sympy as sp
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import special

from linear_theory.gradients import (
    expect,
    expected_gradient,
    expected_gradient_sign,
    log_expect,
    monte_carlo_gradient,
    per_sample_gradient,
    symbolic_gradient,
)
from linear_theory.model import GaussianDataModel
from linear_theory.records import confidence_z

KINDS = ("s", "s_neg", "s_prime")


def mp_log_expect(kind, m, v, dps=30):
    """log E[f(Z)], Z ~ N(m, v), by mpmath quadrature in u = (z - m)/sd with the peak factored out."""
    mp.mp.dps = dps
    m, v = mp.mpf(m), mp.mpf(v)
    sd = mp.sqrt(v)

    def logf(z):
        a, b = -mp.log1p(mp.exp(-z)), -mp.log1p(mp.exp(z))
        return {"s": a, "s_neg": b, "s_prime": a + b}[kind]

    # Locate the log-concave integrand's peak by golden-section-free scanning on a coarse grid.
    grid = [mp.mpf(u) / 4 for u in range(-400, 401)]
    us = max(grid, key=lambda u: logf(m + sd * u) - u * u / 2)
    h0 = logf(m + sd * us) - us * us / 2
    bends = [(b - m) / sd for b in (-30, -3, 0, 3, 30)]
    pts = sorted({us + k for k in (-60, -20, -8, -3, -1, 0, 1, 3, 8, 20, 60)} | {b for b in bends if abs(b - us) < 60})
    val = mp.quad(lambda u: mp.exp(logf(m + sd * u) - u * u / 2 - h0), pts, maxdegree=10)
    return float(mp.log(val) + h0 - mp.log(2 * mp.pi) / 2)


@settings(max_examples=25)
@given(st.sampled_from(KINDS), st.floats(-300, 300), st.floats(-6, 9))
def test_logistic_normal_integrals_match_mpmath(kind, m, log10_v):
    v = 10.0**log10_v
    ours = float(log_expect(kind, m, v))
    ref = mp_log_expect(kind, m, v)
    assert abs(np.expm1(ours - ref)) < 1e-11, (ours, ref)


def test_a_fixed_gauss_hermite_rule_is_not_accurate_where_log_expect_is():
    # The reason for the panels: at score sd 100 a 20-point Gauss-Hermite rule misses the bend.
    m, v = 3.0, 1e4
    x, w = np.polynomial.hermite_e.hermegauss(20)
    gh = float(np.sum(w * special.expit(m + np.sqrt(v) * x)) / np.sqrt(2 * np.pi))
    ref = np.exp(mp_log_expect("s", m, v))
    assert abs(gh - ref) > 1e-3
    assert abs(expect("s", m, v) - ref) < 1e-13


@given(st.floats(0, 1e6))
def test_closed_forms(v):
    assert expect("s", 0.0, v) == pytest.approx(0.5, abs=1e-13)
    assert expect("s_neg", 0.0, v) == pytest.approx(0.5, abs=1e-13)


@given(st.floats(-40, 40), st.floats(0, 1e4))
def test_complement_and_reflection(m, v):
    assert expect("s", m, v) + expect("s_neg", m, v) == pytest.approx(1.0, rel=1e-12)
    assert log_expect("s", m, v) == pytest.approx(log_expect("s_neg", -m, v), rel=1e-12, abs=1e-12)


@given(st.floats(-700, 700))
def test_zero_spread_is_the_point_value(m):
    assert log_expect("s", m, 0.0) == pytest.approx(-float(np.logaddexp(0.0, -m)), rel=1e-12)


@given(st.floats(-20, 20), st.floats(0.01, 400))
def test_derivative_in_the_mean_is_the_expected_slope(m, v):
    # d/dm E[s(m + sd U)] = E[s'(Z)]
    h = 1e-4 * max(1.0, abs(m))
    fd = (expect("s", m + h, v) - expect("s", m - h, v)) / (2 * h)
    assert fd == pytest.approx(float(expect("s_prime", m, v)), rel=1e-5, abs=1e-12)


def test_sympy_derivation_is_the_textbook_gradient():
    grad, dz, (z, y, x_k, s) = symbolic_gradient()
    assert sp.simplify(grad - (s(z) - y) * x_k) == 0


@settings(max_examples=20)
@given(st.integers(0, 2**31), st.integers(1, 6))
def test_per_sample_gradient_matches_torch_autograd(seed, d):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(3, 5, d)) * 3
    y = rng.integers(0, 2, size=(3, 5))
    w = rng.normal(size=d)
    ours = per_sample_gradient(x, y, w)
    wt = torch.tensor(w, requires_grad=True)
    xt, yt = torch.tensor(x), torch.tensor(y, dtype=torch.float64)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(xt @ wt, yt, reduction="sum")
    (ref,) = torch.autograd.grad(loss, wt)
    np.testing.assert_allclose(ours.sum(axis=(0, 1)), ref.numpy(), rtol=1e-10, atol=1e-12)


def _model(rng, clients, d, sigma_is):
    mu = rng.normal(0, 1, (clients, d))
    sigma = rng.uniform(0.3, 2.0, (clients, d))
    return GaussianDataModel(mu, sigma, sigma_is)


@settings(max_examples=10)
@given(st.integers(0, 2**31), st.sampled_from(("std", "variance")), st.floats(0.1, 3))
def test_exact_expected_gradient_agrees_with_monte_carlo(seed, sigma_is, scale):
    rng = np.random.default_rng(seed)
    model = _model(rng, 3, 4, sigma_is)
    w = scale * rng.normal(size=4)
    exact = expected_gradient(model.mu, model.variance, w)
    mean, se, ess = monte_carlo_gradient(model, w, rng, 100_000)
    # Where few samples carry the mean (ess small) the empirical stderr itself is unreliable.
    trusted = ess > 1000
    assume(trusted.mean() >= 0.5)
    assert np.all(np.abs(exact - mean)[trusted] <= confidence_z() * se[trusted] + 1e-12)


@given(st.integers(0, 2**31), st.floats(0.01, 50))
def test_reflection_flips_the_gradient(seed, scale):
    rng = np.random.default_rng(seed)
    mu, var, w = rng.normal(size=(4, 3)), rng.uniform(0.1, 3, (4, 3)), scale * rng.normal(size=3)
    np.testing.assert_allclose(expected_gradient(-mu, var, -w), -expected_gradient(mu, var, w), rtol=1e-12, atol=1e-300)
    np.testing.assert_array_equal(expected_gradient_sign(-mu, var, -w), -expected_gradient_sign(mu, var, w))


@given(st.integers(0, 2**31))
def test_gradient_at_zero_weights_is_minus_half_the_mean(seed):
    rng = np.random.default_rng(seed)
    mu, var = rng.normal(size=(3, 5)), rng.uniform(0.1, 3, (3, 5))
    np.testing.assert_allclose(expected_gradient(mu, var, np.zeros(5)), -mu / 2, rtol=1e-13)


@given(st.integers(0, 2**31), st.floats(0.01, 100))
def test_sign_in_log_space_matches_the_value_where_it_is_representable(seed, scale):
    rng = np.random.default_rng(seed)
    mu, var, w = rng.normal(size=(5, 3)), rng.uniform(0.1, 3, (5, 3)), scale * rng.normal(size=3)
    g = expected_gradient(mu, var, w)
    sign = expected_gradient_sign(mu, var, w)
    ok = np.abs(g) > 1e-250
    np.testing.assert_array_equal(sign[ok], np.sign(g[ok]))


def test_sign_survives_underflow():
    # Score mean 2000 with tiny spread: E[s(-Z)] ~ e^-2000, far below the smallest double.
    mu = np.array([[1.0, 2000.0]])
    w = np.array([0.0, 1.0])
    assert expected_gradient(mu, 1e-6, w)[0, 0] == 0.0  # the value underflows ...
    assert expected_gradient_sign(mu, 1e-6, w)[0, 0] == -1.0  # ... its sign does not


def test_model_moments_and_validation():
    rng = np.random.default_rng(0)
    for sigma_is, var in (("std", 4.0), ("variance", 2.0)):
        m = GaussianDataModel(np.array([[1.5]]), np.array([[2.0]]), sigma_is)
        x, y = m.sample(rng, 200_000)
        pos = x[0, y[0] == 1, 0]
        assert pos.mean() == pytest.approx(1.5, abs=0.03) and pos.var() == pytest.approx(var, rel=0.02)
        assert m.accuracy(np.zeros(1))[0] == 0.5
        assert m.accuracy(np.ones(1))[0] == pytest.approx(special.ndtr(1.5 / np.sqrt(var)))
    with pytest.raises(ValueError, match="sigma must be > 0"):
        GaussianDataModel(np.zeros((1, 2)), np.array([1.0, 0.0]))
    with pytest.raises(ValueError, match="not a reading"):
        GaussianDataModel(np.zeros((1, 2)), 1.0, "stdev")
    with pytest.raises(ValueError, match="NaN"):
        GaussianDataModel(np.array([[np.nan, 0.0]]), 1.0)
    with pytest.raises(ValueError, match="trigger_mu must be non-zero"):
        GaussianDataModel.with_trigger(n_clients=3, n_malicious=1, n_features=2, trigger_mu=0.0, rng=rng)
    with pytest.raises(ValueError, match="expected"):
        expected_gradient(np.zeros((2, 3)), 1.0, np.zeros(2))
