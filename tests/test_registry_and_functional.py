"""The rule contract (registry, abstract bases, error messages) and the mathematics moved out of
the rule classes into pure functions, each tested on its own against its definition."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import invariant_aggregator as ia
from invariant_aggregator import functional as F


# --------------------------------------------------------------------------- registry
def test_register_refuses_a_taken_name_and_unregister_frees_it():
    class Mine(ia.AggregationRule):
        name = "fedavg"

        def __init__(self):
            self._set()

        def _aggregate(self, stack, weights, client_ids):
            return stack.tensor[0].clone()

    with pytest.raises(ia.AggregatorError, match="'fedavg' is already registered"):
        ia.register(Mine)
    assert ia.RULES["fedavg"] is not Mine
    Mine.name = "test_first_row"
    ia.register(Mine)
    try:
        out = ia.make("test_first_row")(np.array([[3.0, 4.0], [1.0, 1.0]]))
        assert isinstance(out, np.ndarray) and out.tolist() == [3.0, 4.0]  # the caller's type, restored once
        with pytest.raises(ia.AggregatorError, match="already registered"):
            ia.register(Mine)
    finally:
        ia.unregister("test_first_row")
    assert "test_first_row" not in ia.available_rules()


@pytest.mark.parametrize("bad", [int, object(), type("NoName", (ia.AggregationRule,), {"_aggregate": None})])
def test_register_refuses_what_is_not_a_named_rule(bad):
    with pytest.raises(ia.AggregatorError):
        ia.register(bad)


def test_rule_bases_are_abstract():
    with pytest.raises(TypeError):
        ia.AggregationRule()

    class Forgetful(ia.StatefulRule):  # no reset / state_dict / load_state_dict
        name = "forgetful"

        def _aggregate(self, stack, weights, client_ids):
            return stack.tensor[0]

    with pytest.raises(TypeError, match="abstract"):
        Forgetful()


@pytest.mark.parametrize("name", ["invariant", "krum", "fedavg", "rfa", "weak_dp", "bulyan", "median"])
@pytest.mark.parametrize("big", [False, True])
def test_non_finite_error_names_the_offending_rows(name, big):
    params = {"krum": {"f": 1}, "bulyan": {"f": 1}}.get(name, {})
    d = (1 << 18) + 3 if big else 5  # the fused specialised kernels, and the generic ones
    x = np.random.default_rng(0).normal(size=(9, d)).astype(np.float32)
    x[2, d - 1] = np.nan
    x[7, 0] = -np.inf
    with pytest.raises(ia.AggregatorError, match=r"NaN or Inf \(rows 2, 7\)"):
        ia.make(name, **params)(x)


def test_non_finite_error_names_rows_on_the_torch_path():
    x = torch.randn(6, 4, dtype=torch.float64)
    x[4, 1] = float("nan")
    with pytest.raises(ia.AggregatorError, match=r"\(row 4\)"):
        ia.make("invariant", backend="torch")(x)


# --------------------------------------------------------------------------- pure functions
def _brute_force_bulyan_selection(x: np.ndarray, f: int) -> list[int]:
    """Bulyan's first phase written from its definition: repeatedly take the Krum winner of the
    remaining set (score: sum of squared distances to the max(1, r - f - 2) nearest others), ties by
    the lexicographically smallest update."""
    remaining, chosen = list(range(len(x))), []
    for _ in range(len(x) - 2 * f):
        r = len(remaining)
        k = min(max(1, r - f - 2), r - 1)

        def score(i, k=k, remaining=remaining):
            d = sorted(float(np.sum((x[i] - x[j]) ** 2)) for j in remaining if j != i)
            return sum(d[:k])

        pick = min(remaining, key=lambda i: (score(i), tuple(x[i])))
        chosen.append(pick)
        remaining.remove(pick)
    return sorted(chosen)


@given(data=st.data(), f=st.integers(0, 2))
def test_bulyan_select_matches_its_definition(data, f):
    n = data.draw(st.integers(4 * f + 3, 4 * f + 6))
    values = st.sampled_from([-2.0, -1.0, 0.0, 0.5, 1.0, 3.0])  # ties and duplicated rows are common
    x = data.draw(hnp.arrays(np.float64, (n, 2), elements=values))
    stack = ia._inputs.as_stack(x)
    got = F.bulyan_select(F.pairwise_sq_distances(stack), f, stack)
    expected = _brute_force_bulyan_selection(x, f)
    # identical rows are interchangeable: compare the selected updates, not their indices
    assert sorted(map(tuple, x[got])) == sorted(map(tuple, x[expected]))


@given(hnp.arrays(np.float64, (5,), elements=st.floats(0, 1e300)), st.floats(0.1, 1e3))
def test_clip_factors_bound_every_norm(norms, clip):
    factors = F.clip_factors(norms, clip)
    assert np.all((0 < factors) & (factors <= 1))
    assert np.all(norms * factors <= clip * (1 + 1e-12))
    assert np.all(factors[norms <= clip] == 1.0)


def test_foolsgold_weights_from_the_definition():
    # clients 0 and 1 identical (cos 1): weight 0; client 2 orthogonal to both: the most trusted
    cs = np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    w = F.foolsgold_weights(cs, 1.0)
    assert w[0] == w[1] == 0.0
    # a_2 = 1 -> 0.99 after normalising; kappa * (logit(0.99) + 0.5) > 1 -> clipped to 1
    assert w[2] == 1.0
    assert F.foolsgold_weights(np.ones((3, 3)), 1.0).tolist() == [0.0, 0.0, 0.0]


@given(hnp.arrays(np.float64, (4, 4), elements=st.floats(-1, 1)), st.floats(0.1, 5))
def test_foolsgold_weights_lie_in_the_unit_interval_and_are_pure(cs, kappa):
    cs = (cs + cs.T) / 2
    np.fill_diagonal(cs, 1.0)
    before = cs.copy()
    w = F.foolsgold_weights(cs, kappa)
    assert np.array_equal(cs, before)  # the input is not changed
    assert w.shape == (4,) and np.all((w >= 0) & (w <= 1))


@given(st.integers(0, 2**31 - 1), st.integers(1, 12))
def test_error_feedback_releases_the_k_largest_and_conserves_the_rest(seed, k):
    gen = torch.Generator().manual_seed(seed)
    error, update = (
        torch.randn(12, generator=gen, dtype=torch.float64),
        torch.randn(12, generator=gen, dtype=torch.float64),
    )
    error_copy = error.clone()
    released, carried = F.error_feedback_top_k(error, update, k)
    assert torch.equal(error, error_copy)  # pure: the old accumulator is untouched
    total = error + update
    assert torch.equal(released + carried, total)  # exact: each entry is in exactly one of them
    kept = released != 0
    assert int(kept.sum()) <= k and torch.all(released[kept] == total[kept]) and torch.all(carried[kept] == 0)
    if int(kept.sum()) == k and k < 12:
        assert total[kept].abs().min() >= total[~kept].abs().max()


def test_sparsefed_rule_is_the_pure_step_applied_round_by_round():
    rounds = [np.random.default_rng(r).normal(size=(3, 8)) for r in range(4)]
    rule = ia.make("sparsefed", k=2, clip_norm=100.0)
    error = torch.zeros(8, dtype=torch.float64)
    for x in rounds:
        released, error = F.error_feedback_top_k(error, torch.from_numpy(x.mean(0)), 2)
        np.testing.assert_allclose(rule(x), released.numpy(), rtol=0, atol=1e-15)


def test_functional_keeps_the_callers_type_for_direct_calls():
    x = np.arange(12.0).reshape(4, 3)
    for fn in (F.trimmed_mean, F.weighted_mean, F.coordinate_median, F.sign_consistency):
        args = (0.2,) if fn is F.trimmed_mean else ()
        assert isinstance(fn(x, *args), np.ndarray)
        assert isinstance(fn(torch.from_numpy(x), *args), torch.Tensor)


def test_every_rule_in_each_family_module():
    from invariant_aggregator.rules import coordinate, distance, stateful

    families = {name for m in (coordinate, distance, stateful) for name in m.__all__}
    assert {cls.__name__ for cls in ia.RULES.values()} <= families
    assert all(issubclass(ia.RULES[n], ia.StatefulRule) for n in ("weak_dp", "foolsgold", "sparsefed"))
