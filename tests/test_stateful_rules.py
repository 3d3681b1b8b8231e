"""FoolsGold, SparseFed, Weak-DP: state across rounds, reset, save/restore."""

import io

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import invariant_aggregator as ia


def roundtrip(state):
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)  # never a plain pickle


# --------------------------------------------------------------------------- FoolsGold
def reference_foolsgold(hist: np.ndarray, kappa=1.0) -> np.ndarray:
    """Fung et al. (2020), Algorithm 1, written out with explicit loops."""
    n = len(hist)
    unit = hist / np.linalg.norm(hist, axis=1, keepdims=True)
    cs = unit @ unit.T
    for i in range(n):
        cs[i, i] = -np.inf
    v = cs.max(1)
    for i in range(n):
        for j in range(n):
            if i != j and v[i] < v[j]:
                cs[i, j] *= v[i] / v[j]
    a = np.clip(1 - cs.max(1), 0, 1)
    a = a / a.max()
    a[a == 1] = 0.99
    with np.errstate(divide="ignore"):
        a = kappa * (np.log(a / (1 - a)) + 0.5)
    return np.clip(a, 0, 1)


def test_foolsgold_downweights_sybils_using_history():
    rng = np.random.default_rng(0)
    rule = ia.make("foolsgold")
    ids = list(range(8))
    honest = rng.normal(size=(6, 30))
    sybil = rng.normal(size=30)
    hist = np.zeros((8, 30))
    for _ in range(3):
        g = np.vstack([honest + 0.5 * rng.normal(size=(6, 30)), sybil, sybil + 1e-3 * rng.normal(size=30)])
        hist += g
        out = rule(g, client_ids=ids)
    w = rule.last_weights
    np.testing.assert_allclose(w, reference_foolsgold(hist), atol=1e-9)
    assert w[6] < 0.05 and w[7] < 0.05 and w[:6].min() > 0.5
    np.testing.assert_allclose(out, (w[:, None] * g).sum(0) / w.sum(), rtol=1e-10)


def test_foolsgold_state_roundtrip_reset_and_missing_ids():
    rng = np.random.default_rng(1)
    g1, g2 = rng.normal(size=(5, 12)), rng.normal(size=(5, 12))
    a = ia.make("foolsgold")
    a(g1, client_ids=["a", "b", "c", "d", "e"])
    b = ia.make("foolsgold")
    b.load_state_dict(roundtrip(a.state_dict()))
    np.testing.assert_array_equal(a(g2, client_ids=list("abcde")), b(g2, client_ids=list("abcde")))
    a.reset()
    fresh = ia.make("foolsgold")
    np.testing.assert_array_equal(a(g2, client_ids=list("abcde")), fresh(g2, client_ids=list("abcde")))
    with pytest.raises(ia.AggregatorError, match="client_ids"):
        a(g2)


def test_foolsgold_all_duplicates_raise_instead_of_zero_vector():
    g = np.array([[1.0, 2.0], [1.0, 2.0], [2.0, 4.0]])
    with pytest.raises(ia.AggregatorError, match="every weight is 0"):
        ia.make("foolsgold")(g, client_ids=[0, 1, 2])


# --------------------------------------------------------------------------- SparseFed
@given(rounds=st.integers(1, 6), k=st.integers(1, 8), seed=st.integers(0, 1000))
def test_sparsefed_error_feedback_conserves_the_clipped_mass(rounds, k, seed):
    # sum of released updates + what is still held = sum of the clipped means
    rng = np.random.default_rng(seed)
    rule = ia.make("sparsefed", k=k, clip_norm=1.5)
    released, fed = np.zeros(8), np.zeros(8)
    for _ in range(rounds):
        g = rng.normal(size=(5, 8)) * rng.choice([0.1, 3.0])
        norms = np.linalg.norm(g, axis=1, keepdims=True)
        fed += (g * np.minimum(1, 1.5 / norms)).mean(0)
        out = rule(g)
        assert np.count_nonzero(out) <= k
        released += out
    held = rule.state_dict()["error"].numpy()
    np.testing.assert_allclose(released + held, fed, rtol=1e-10, atol=1e-12)
    # top-k of the last round: every released coordinate is at least as large as any held back
    # (the released ones are zeroed in the accumulator, so the two sets are disjoint)
    released_last = out[out != 0]
    if released_last.size:
        assert np.abs(released_last).min() >= np.abs(held).max()


def test_sparsefed_fraction_k_and_restore():
    rule = ia.make("sparsefed", k=0.25, clip_norm=10.0)
    g = np.random.default_rng(2).normal(size=(4, 40))
    assert np.count_nonzero(rule(g)) == 10
    other = ia.make("sparsefed", k=0.25, clip_norm=10.0)
    other.load_state_dict(roundtrip(rule.state_dict()))
    np.testing.assert_array_equal(rule(g), other(g))


# --------------------------------------------------------------------------- Weak-DP
def test_weak_dp_clips_then_averages_and_noise_is_seeded():
    rng = np.random.default_rng(3)
    g = rng.normal(size=(10, 5000)) * rng.choice([0.01, 10.0], size=(10, 1))
    clean = ia.make("weak_dp", clip_norm=2.0, noise_std=0.0)(g)
    norms = np.linalg.norm(g, axis=1, keepdims=True)
    np.testing.assert_allclose(clean, (g * np.minimum(1, 2.0 / norms)).mean(0), rtol=1e-12)
    a, b = ia.make("weak_dp", noise_std=0.025, seed=7), ia.make("weak_dp", noise_std=0.025, seed=7)
    first = a(g)
    np.testing.assert_array_equal(first, b(g))
    noise = first - clean
    # the noise is N(0, 0.025^2): 5000 draws put the sample std within 5% of 0.025
    assert abs(noise.std() / 0.025 - 1) < 0.05 and abs(noise.mean()) < 0.003
    # the generator advances, and its state restores
    saved = roundtrip(a.state_dict())
    second = a(g)
    assert not np.array_equal(second, first)
    c = ia.make("weak_dp", noise_std=0.025, seed=0)
    c.load_state_dict(saved)
    np.testing.assert_array_equal(c(g), second)


def test_needs_client_ids_says_which_rules_refuse_a_call_without_them():
    """The flag that the Flower strategy reads: true exactly for the rules that cannot aggregate
    without client_ids."""
    params = {"krum": {"f": 1}, "multi_krum": {"f": 1}, "multi_krum_cosine": {"f": 1}, "krum_trimmed_mean": {"f": 1},
              "bulyan": {"f": 1}, "sparsefed": {"k": 2}, "mean_ratio": {"threshold": 0.5}}  # fmt: skip
    g = np.random.default_rng(0).normal(size=(7, 5))
    for name in ia.available_rules():
        rule = ia.make(name, **params.get(name, {}))
        try:
            rule(g)
            refused = False
        except ia.AggregatorError as exc:
            refused = "client_ids" in str(exc)
        assert rule.needs_client_ids == refused, name
