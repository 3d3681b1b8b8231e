"""Every invalid input or hyperparameter gives one AggregatorError naming the problem."""

import numpy as np
import pytest
import torch

import invariant_aggregator as ia

ALL = {
    "invariant": {},
    "and_mask": {},
    "trimmed_mean": {},
    "median": {},
    "fedavg": {},
    "sign_sgd": {},
    "krum": {"f": 1},
    "multi_krum": {"f": 1},
    "multi_krum_cosine": {"f": 1},
    "krum_trimmed_mean": {"f": 1},
    "bulyan": {"f": 1},
    "weak_dp": {},
    "foolsgold": {},
    "rfa": {},
    "sparsefed": {"k": 2},
    "mean_ratio": {"threshold": 1.0},
}


def call(name, x, **kw):
    rule = ia.make(name, **ALL[name])
    if name == "foolsgold":
        kw.setdefault("client_ids", list(range(len(x))))
    return rule(x, **kw)


def test_every_rule_is_covered():
    assert set(ALL) == set(ia.available_rules())


@pytest.mark.parametrize("name", sorted(ALL))
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("kind", ["numpy32", "numpy64", "torch"])
def test_non_finite_updates_raise(name, bad, kind):
    x = np.random.default_rng(0).normal(size=(9, 40))
    x[4, 33] = bad
    x = {"numpy32": x.astype(np.float32), "numpy64": x, "torch": torch.from_numpy(x)}[kind]
    with pytest.raises(ia.AggregatorError, match="NaN or Inf"):
        call(name, x)


@pytest.mark.parametrize("name", sorted(ALL))
def test_non_finite_in_large_input_raises_on_the_fused_path(name):
    x = np.zeros((9, 300_000), np.float32)
    x[:, ::7] = 1.0
    x[8, 299_999] = np.nan
    with pytest.raises(ia.AggregatorError, match="NaN or Inf"):
        call(name, x)


@pytest.mark.parametrize("name", sorted(ALL))
@pytest.mark.parametrize(
    "x,message",
    [
        (np.ones(5), r"shape \(N, d\).*updates\[None\]"),
        (np.ones((2, 3, 4)), r"shape \(N, d\)"),
        (np.ones((4, 0)), "d = 0"),
        (np.ones((4, 3), dtype=np.int64), "float32 or float64"),
        (np.ones((4, 3), dtype=np.float16), "float32 or float64"),
        ([[1.0, 2.0], [3.0, 4.0]], "torch.stack"),
    ],
)
def test_malformed_stacks_raise(name, x, message):
    with pytest.raises(ia.AggregatorError, match=message):
        call(name, x)


@pytest.mark.parametrize(
    "name,params,n,message",
    [
        ("krum", {"f": 2}, 6, r"N >= 2f \+ 3 = 7"),
        ("multi_krum", {"f": 1}, 4, r"N >= 2f \+ 3 = 5"),
        ("bulyan", {"f": 1}, 6, r"N >= 4f \+ 3 = 7"),
        ("trimmed_mean", {"alpha": 0.4}, 4, "leaving none"),
        ("invariant", {"alpha": 0.34}, 3, "leaving none"),
        ("multi_krum", {"f": 1, "m": 9}, 8, "exceeds"),
        ("sparsefed", {"k": 50}, 3, "exceeds the number of coordinates"),
    ],
)
def test_too_few_clients_for_the_rule(name, params, n, message):
    with pytest.raises(ia.AggregatorError, match=message):
        ia.make(name, **params)(np.random.default_rng(0).normal(size=(n, 10)))


@pytest.mark.parametrize(
    "name,params,message",
    [
        ("invariant", {"tau": 1.5}, r"tau must lie in \[0, 1\]"),
        ("invariant", {"tau": -0.1}, r"tau must lie in \[0, 1\]"),
        ("invariant", {"alpha": 0.5}, r"alpha must lie in \[0, 0.5\)"),
        ("invariant", {"alpha": float("nan")}, "alpha must lie"),
        ("invariant", {"tau": 0.6, "tau_sum": 12}, "not both"),
        ("invariant", {"trim": "median"}, "trim must be one of"),
        ("invariant", {"tau": "0.6"}, "tau must be a real number"),
        ("and_mask", {"tau_sum": -1}, "tau_sum must lie"),
        ("trimmed_mean", {"alpha": -0.1}, "alpha must lie"),
        ("krum", {}, "f, the number of malicious updates"),
        ("krum", {"f": -1}, "f must be an integer >= 0"),
        ("krum", {"f": 1.5}, "f must be an integer"),
        ("krum", {"f": True}, "f must be an integer"),
        ("multi_krum", {"f": 1, "m": 0}, "m must be an integer >= 1"),
        ("sign_sgd", {"lr": 0}, r"lr must lie in \(0"),
        ("weak_dp", {"clip_norm": 0}, "clip_norm must lie"),
        ("weak_dp", {"noise_std": -1}, "noise_std must lie"),
        ("rfa", {"nu": 0}, "nu must lie"),
        ("rfa", {"max_iter": 0}, "max_iter must be an integer >= 1"),
        ("sparsefed", {}, "needs k"),
        ("sparsefed", {"k": 1.5}, r"k must lie in \(0, 1\)"),
        ("invariant", {"backend": "cuda"}, "backend must be one of"),
        ("invariant", {"taus": 0.6}, "accepted hyperparameters: tau, alpha"),
        ("nonexistent", {}, "unknown aggregation rule 'nonexistent'; available: and_mask"),
    ],
)
def test_impossible_hyperparameters_raise_at_construction(name, params, message):
    with pytest.raises(ia.AggregatorError, match=message):
        ia.make(name, **params)


@pytest.mark.parametrize(
    "weights,message",
    [
        ([1.0, 2.0], r"shape \(4,\)"),
        ([1.0, -1.0, 1.0, 1.0], "non-negative"),
        ([0.0, 0.0, 0.0, 0.0], "positive sum"),
        ([1.0, np.nan, 1.0, 1.0], "finite"),
    ],
)
def test_bad_weights(weights, message):
    with pytest.raises(ia.AggregatorError, match=message):
        ia.make("fedavg")(np.ones((4, 3)), weights=weights)


def test_weights_refused_by_rules_that_do_not_define_them():
    with pytest.raises(ia.AggregatorError, match="does not define per-client weights; rules that do: fedavg, rfa"):
        ia.make("invariant")(np.ones((4, 3)), weights=[1, 1, 1, 1])


def test_client_ids_must_match_rows():
    rule = ia.make("foolsgold")
    with pytest.raises(ia.AggregatorError, match="one id per update row"):
        rule(np.ones((3, 2)), client_ids=[1, 2])
    with pytest.raises(ia.AggregatorError, match="distinct"):
        rule(np.ones((3, 2)), client_ids=[1, 1, 2])


def test_aggregator_error_is_a_value_error():
    assert issubclass(ia.AggregatorError, ValueError)


# --------------------------------------------------------------------------- legitimate arrays
@pytest.mark.parametrize("view", ["reversed rows", "reversed columns", "big-endian", "fortran order"])
def test_legitimate_numpy_layouts_work(view):
    x = np.random.default_rng(0).normal(size=(7, 5))
    arrays = {
        "reversed rows": (x[::-1], x[::-1].copy()),
        "reversed columns": (x[:, ::-1], x[:, ::-1].copy()),
        "big-endian": (x.astype(">f8"), x),
        "fortran order": (np.asfortranarray(x), x),
    }
    given, plain = arrays[view]
    for name in ("median", "invariant", "fedavg", "krum"):
        rule = ia.make(name, **ALL[name])
        assert np.array_equal(rule(given), rule(plain))


@pytest.mark.parametrize(
    "weights",
    [["a"] * 4, {"a": 1}, "abcd", np.ma.masked_array(np.ones(4), mask=[0, 1, 0, 0]), [object()] * 4],
)
def test_weights_that_are_not_numbers(weights):
    with pytest.raises(ia.AggregatorError, match="weights must be a sequence of N numbers"):
        ia.make("fedavg")(np.ones((4, 2)), weights=weights)


@pytest.mark.parametrize("ids", [[[1], [2], [3], [4]], "abcd", 4, [{"a": 1}, 2, 3, 4]])
def test_client_ids_that_are_not_ids(ids):
    with pytest.raises(ia.AggregatorError, match="client.?ids"):
        ia.make("foolsgold")(np.eye(4), client_ids=ids)


def test_masked_arrays_are_refused_not_unmasked():
    x = np.ma.masked_array(np.eye(4), mask=np.eye(4, dtype=bool))
    with pytest.raises(ia.AggregatorError, match="masked array"):
        ia.make("median")(x)


def test_meta_tensors_are_refused():
    with pytest.raises(ia.AggregatorError, match="meta tensor"):
        ia.make("median")(torch.empty(4, 3, device="meta"))


def test_weak_dp_seed_beyond_64_bits():
    with pytest.raises(ia.AggregatorError, match="seed must be an integer"):
        ia.make("weak_dp", seed=2**70)


@pytest.mark.parametrize(
    "name, params, state",
    [
        ("weak_dp", {}, {}),
        ("weak_dp", {}, {"seed": -3, "generators": {}}),
        ("weak_dp", {}, {"seed": 1, "generators": {"cpu": "not a state"}}),
        ("foolsgold", {}, {"history": {0: "abc"}}),
        ("foolsgold", {}, {"history": {0: [[1.0]]}}),
        ("foolsgold", {}, None),
        ("sparsefed", {"k": 1}, {"error": [[1.0]]}),
        ("sparsefed", {"k": 1}, {"err": None}),
    ],
)
def test_foreign_state_dicts_are_refused(name, params, state):
    rule = ia.make(name, **params)
    before = rule.state_dict()
    with pytest.raises(ia.AggregatorError, match="load_state_dict"):
        rule.load_state_dict(state)
    assert str(rule.state_dict()) == str(before)  # nothing half-loaded
