"""The Flower adapter with hand-built Messages (no simulation, no Ray): the strategy's model update
is the rule's, every rule of the registry runs through it, state follows the client ids, buffers
follow the policy, and bad replies raise Flower's AggregationError naming the client."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import invariant_aggregator as ia

flwr = pytest.importorskip("flwr", reason="Flower is an optional extra: pip install 'invariant-aggregator[flower]'")

from flwr.app import Array, ArrayRecord, ConfigRecord, Error, Message, Metadata, MetricRecord, RecordDict  # noqa: E402
from flwr.serverapp.strategy import FedAvg  # noqa: E402

from invariant_aggregator.flower import AggregationError, AggregatorStrategy, buffer_names  # noqa: E402

# hyperparameters for the rules that have no default for them (N = 7 clients below)
RULE_PARAMS = {
    **{name: {"f": 1} for name in ("krum", "multi_krum", "multi_krum_cosine", "krum_trimmed_mean", "bulyan")},
    "sparsefed": {"k": 5},
    "weak_dp": {"seed": 3},
    "mean_ratio": {"threshold": 0.5},
}


class FakeGrid:
    """What FedAvg.configure_train asks of a Grid: the connected node ids."""

    def __init__(self, nodes):
        self.nodes = list(nodes)

    def get_node_ids(self):
        return self.nodes


@pytest.fixture
def task_identity():
    """Flower's Message() reads the run's identity from the process; outside a run, set one."""
    from flwr.supercore.task_identity import TaskIdentity

    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 0, 0
    yield
    TaskIdentity.run_id = TaskIdentity.node_id = TaskIdentity.task_id = None


def model_arrays(rng, dtype=np.float32):
    return {"fc.weight": rng.normal(size=(3, 4)).astype(dtype), "fc.bias": rng.normal(size=3).astype(dtype)}


def reply(arrays, node, *, client_id=None, examples=10, extra_metrics=None):
    metrics = {"num-examples": examples, "loss": 0.5} | (extra_metrics or {})
    if client_id is not None:
        metrics["client-id"] = client_id
    content = RecordDict(
        {"arrays": ArrayRecord({k: Array(np.asarray(v)) for k, v in arrays.items()}), "metrics": MetricRecord(metrics)}
    )
    meta = Metadata(
        run_id=1, message_id="", src_node_id=node, dst_node_id=0, reply_to_message_id="", group_id="1",
        created_at=0.0, ttl=3600.0, message_type="train",
    )  # fmt: skip
    return Message(content=content, metadata=meta)


def error_reply(node):
    meta = Metadata(
        run_id=1, message_id="", src_node_id=node, dst_node_id=0, reply_to_message_id="", group_id="1",
        created_at=0.0, ttl=3600.0, message_type="train",
    )  # fmt: skip
    return Message(Error(code=1, reason="client crashed"), metadata=meta)


def broadcast(strategy, arrays, server_round=1, nodes=range(100, 110)):
    """configure_train as Flower calls it; returns the messages."""
    record = ArrayRecord({k: Array(np.asarray(v)) for k, v in arrays.items()})
    return list(strategy.configure_train(server_round, record, ConfigRecord(), FakeGrid(nodes)))


def as_dict(record):
    return {k: v.numpy() for k, v in record.items()}


def flat(arrays, keys=("fc.weight", "fc.bias")):
    return np.concatenate([np.asarray(arrays[k], dtype=np.float64).ravel() for k in keys])


# --------------------------------------------------------------------------- the model update
@pytest.mark.parametrize("name", sorted(ia.available_rules()))
def test_every_registered_rule_gives_its_own_update(name, task_identity):
    """w_new = w_b - lr * rule(w_b - w_i), over the flattened arrays in the broadcast's key order."""
    if name.startswith("example_"):
        pytest.skip("a doctest's temporary rule")
    rng = np.random.default_rng(0)
    w_b = model_arrays(rng)
    clients = [{k: v + rng.normal(scale=0.1, size=v.shape).astype(v.dtype) for k, v in w_b.items()} for _ in range(7)]
    params = RULE_PARAMS.get(name, {})
    strategy = AggregatorStrategy(name, server_lr=0.5, fraction_train=0.7, **params)
    broadcast(strategy, w_b)
    replies = [reply(c, node=200 + i, client_id=i) for i, c in enumerate(clients)]
    new, metrics = strategy.aggregate_train(1, replies)
    keys = list(w_b)
    updates = np.stack([flat(w_b, keys) - flat(c, keys) for c in clients]).astype(np.float32)
    expected = flat(w_b, keys) - 0.5 * ia.make(name, **params)(updates, client_ids=list(range(7))).astype(np.float64)
    np.testing.assert_allclose(flat(as_dict(new), keys), expected, rtol=1e-5, atol=1e-6)
    assert list(new.keys()) == keys and metrics["loss"] == pytest.approx(0.5)
    assert "client-id" not in metrics  # an id is not a metric to average


def test_weighted_fedavg_is_flowers_fedavg(task_identity):
    """An independent oracle: Flower's own FedAvg (weighted by num-examples) on the same replies."""
    rng = np.random.default_rng(1)
    w_b = model_arrays(rng)
    clients = [model_arrays(rng) for _ in range(5)]
    sizes = [3, 50, 7, 12, 1]
    ours = AggregatorStrategy("fedavg", weight_by_examples=True, server_lr=1.0)
    broadcast(ours, w_b)
    new, _ = ours.aggregate_train(
        1, [reply(c, 300 + i, client_id=i, examples=n) for i, (c, n) in enumerate(zip(clients, sizes, strict=True))]
    )
    theirs, _ = FedAvg().aggregate_train(
        1, [reply(c, 300 + i, examples=n) for i, (c, n) in enumerate(zip(clients, sizes, strict=True))]
    )
    for k in w_b:
        np.testing.assert_allclose(new[k].numpy(), theirs[k].numpy(), rtol=1e-5, atol=1e-6)


@given(
    n=st.integers(3, 9),
    duplicate=st.booleans(),
    scale=st.sampled_from([1e-30, 1.0, 1e20]),
    seed=st.integers(0, 2**32 - 1),
)
def test_invariant_update_from_the_definition(n, duplicate, scale, seed):
    """The invariant aggregator through Flower, against AND-mask x trimmed mean written out from
    Definition 3 and Eq. 3 with numpy (ties and duplicated clients included)."""
    from flwr.supercore.task_identity import TaskIdentity

    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 0, 0
    try:
        rng = np.random.default_rng(seed)
        w_b = {"w": (rng.normal(size=6) * scale).astype(np.float64)}
        deltas = np.round(rng.normal(size=(n, 6)), 1) * scale  # rounding makes ties and zeros
        if duplicate:
            deltas[1] = deltas[0]
        strategy = AggregatorStrategy("invariant", tau=0.5, alpha=0.2)
        broadcast(strategy, w_b)
        new, _ = strategy.aggregate_train(
            1, [reply({"w": w_b["w"] - d}, 10 + i, client_id=i) for i, d in enumerate(deltas)]
        )
        g = w_b["w"] - (w_b["w"] - deltas)  # what the clients' arrays encode, in float64
        k = int(np.ceil(0.2 * n - 1e-9))
        trimmed = np.sort(g, axis=0)[k : n - k].mean(axis=0)
        mask = np.abs(np.sign(g).mean(axis=0)) >= 0.5
        np.testing.assert_allclose(new["w"].numpy(), w_b["w"] - mask * trimmed, rtol=1e-9, atol=1e-12 * scale)
    finally:
        TaskIdentity.run_id = TaskIdentity.node_id = TaskIdentity.task_id = None


def test_reply_order_and_node_ids_do_not_matter(task_identity):
    rng = np.random.default_rng(2)
    w_b = model_arrays(rng)
    clients = [model_arrays(rng) for _ in range(6)]
    outs = []
    for order, base in (([0, 1, 2, 3, 4, 5], 10), ([5, 3, 1, 0, 2, 4], 900)):
        s = AggregatorStrategy("multi_krum", f=1)
        broadcast(s, w_b)
        new, _ = s.aggregate_train(1, [reply(clients[i], base + i, client_id=i) for i in order])
        outs.append(flat(as_dict(new)))
    np.testing.assert_array_equal(outs[0], outs[1])


def test_error_replies_are_skipped_like_fedavg(task_identity):
    rng = np.random.default_rng(3)
    w_b = model_arrays(rng)
    clients = [model_arrays(rng) for _ in range(3)]
    s = AggregatorStrategy("median")
    broadcast(s, w_b)
    new, _ = s.aggregate_train(1, [reply(c, 10 + i, client_id=i) for i, c in enumerate(clients)] + [error_reply(99)])
    expected = np.median(np.stack([flat(c) for c in clients]), axis=0)
    np.testing.assert_allclose(flat(as_dict(new)), expected, rtol=1e-6)
    s2 = AggregatorStrategy("median")
    broadcast(s2, w_b)
    assert s2.aggregate_train(1, [error_reply(99)]) == (None, None)


# --------------------------------------------------------------------------- stateful rules
def test_foolsgold_state_follows_client_ids_not_nodes(task_identity):
    """Three rounds through the strategy (node ids changing, replies shuffled) and the same rounds
    straight through the rule give the same models: the history is keyed by the clients' ids."""
    rng = np.random.default_rng(4)
    w = model_arrays(rng)
    direct = ia.make("foolsgold")
    strategy = AggregatorStrategy("foolsgold")
    w_direct = flat(w)
    for r in range(1, 4):
        clients = {cid: model_arrays(rng) for cid in (7, 3, 11, 5)}
        clients[5] = {k: v.copy() for k, v in clients[3].items()}  # a sybil pair
        order = list(rng.permutation(list(clients)))
        broadcast(strategy, w, server_round=r)
        new, _ = strategy.aggregate_train(
            r, [reply(clients[c], int(rng.integers(1, 10**6)), client_id=int(c)) for c in order]
        )
        ids = sorted(clients)
        g = np.stack([w_direct - flat(clients[c]) for c in ids]).astype(np.float32)
        w_direct = w_direct - direct(g, client_ids=ids).astype(np.float64)
        np.testing.assert_allclose(flat(as_dict(new)), w_direct, rtol=1e-5, atol=1e-6)
        w = as_dict(new)
    assert strategy.rule.last_weights is not None and strategy.rule.last_weights.min() == 0.0  # the sybils


def test_a_stateful_rule_refuses_a_reply_without_an_id(task_identity):
    rng = np.random.default_rng(5)
    w_b = model_arrays(rng)
    s = AggregatorStrategy("foolsgold")
    broadcast(s, w_b)
    with pytest.raises(AggregationError, match=r"node 4242 has no 'client-id'.*foolsgold"):
        s.aggregate_train(1, [reply(model_arrays(rng), 10, client_id=0), reply(model_arrays(rng), 4242)])


def test_repeated_client_ids_are_refused(task_identity):
    rng = np.random.default_rng(6)
    w_b = model_arrays(rng)
    s = AggregatorStrategy("median")
    broadcast(s, w_b)
    with pytest.raises(AggregationError, match=r"nodes 10 and 11 both sent 'client-id' = 3"):
        s.aggregate_train(1, [reply(model_arrays(rng), 10, client_id=3), reply(model_arrays(rng), 11, client_id=3)])


# --------------------------------------------------------------------------- buffers
def bn_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))


@pytest.mark.parametrize("policy", ["mean", "keep", "exclude"])
def test_buffers_follow_the_policy_and_never_enter_the_rule(policy, task_identity):
    model = bn_model()
    w_b = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    clients = []
    for i in range(4):
        c = {k: v.copy() for k, v in w_b.items()}
        c["0.weight"] = c["0.weight"] - 0.1 * (i + 1)
        c["1.running_mean"] = c["1.running_mean"] + 1e6 * (i + 1)  # huge: would dominate if aggregated
        c["1.num_batches_tracked"] = np.array(10 * (i + 1))
        clients.append(c)
    s = AggregatorStrategy("trimmed_mean", alpha=0.25, buffers=policy, buffer_keys=buffer_names(model))
    broadcast(s, w_b)
    new, _ = s.aggregate_train(1, [reply(c, 50 + i, client_id=i) for i, c in enumerate(clients)])
    new = as_dict(new)
    np.testing.assert_allclose(new["0.weight"], w_b["0.weight"] - 0.25, rtol=1e-6)  # trimmed mean of 0.1..0.4
    np.testing.assert_array_equal(new["0.bias"], w_b["0.bias"])
    if policy == "mean":
        np.testing.assert_allclose(new["1.running_mean"], w_b["1.running_mean"] + 2.5e6)
        assert int(new["1.num_batches_tracked"]) == 40 and new["1.num_batches_tracked"].dtype == np.int64
    elif policy == "keep":
        np.testing.assert_array_equal(new["1.running_mean"], w_b["1.running_mean"])
        assert int(new["1.num_batches_tracked"]) == 0
    else:
        assert not {"1.running_mean", "1.running_var", "1.num_batches_tracked"} & set(new)


def test_an_undeclared_integer_array_is_refused_at_broadcast(task_identity):
    w_b = {k: v.numpy().copy() for k, v in bn_model().state_dict().items()}
    with pytest.raises(AggregationError, match=r"'1.num_batches_tracked' has dtype int64.*buffer_keys"):
        broadcast(AggregatorStrategy("median"), w_b)
    with pytest.raises(AggregationError, match=r"buffer_keys \['bn.nope'\] are not arrays"):
        broadcast(AggregatorStrategy("median", buffer_keys=["bn.nope"]), w_b)


# --------------------------------------------------------------------------- bad replies
def test_bad_replies_name_the_client(task_identity):
    rng = np.random.default_rng(7)
    w_b = model_arrays(rng)
    good = [reply(model_arrays(rng), 10 + i, client_id=i) for i in range(3)]
    nan = model_arrays(rng)
    nan["fc.bias"][1] = np.nan
    cases = [
        (nan, r"client 9 \(node 77\): array 'fc.bias' has 1 NaN/Inf"),
        ({"fc.weight": w_b["fc.weight"]}, r"client 9 \(node 77\) sent arrays .* missing \['fc.bias'\]"),
        ({**w_b, "fc.bias": np.zeros(4, np.float32)}, r"client 9 \(node 77\): array 'fc.bias' has shape \(4,\)"),
    ]
    for arrays, message in cases:
        s = AggregatorStrategy("invariant")
        broadcast(s, w_b)
        with pytest.raises(AggregationError, match=message):
            s.aggregate_train(1, good + [reply(arrays, 77, client_id=9)])


def test_a_rule_error_becomes_an_aggregation_error_with_the_clients(task_identity):
    rng = np.random.default_rng(8)
    w_b = model_arrays(rng)
    s = AggregatorStrategy("krum", f=2)  # Krum needs N >= 2f + 3 = 7
    broadcast(s, w_b)
    with pytest.raises(AggregationError, match=r"round 1: krum.*\[row 0: client 0 \(node 10\), row 1"):
        s.aggregate_train(1, [reply(model_arrays(rng), 10 + i, client_id=i) for i in range(4)])


def test_aggregate_without_configure_is_refused():
    rng = np.random.default_rng(9)
    with pytest.raises(AggregationError, match="did not configure that round"):
        AggregatorStrategy("median").aggregate_train(3, [reply(model_arrays(rng), 10, client_id=0)])


def test_construction_is_validated():
    with pytest.raises(ia.AggregatorError, match="unknown aggregation rule 'nope'"):
        AggregatorStrategy("nope")
    with pytest.raises(ia.AggregatorError, match="tau must lie in"):
        AggregatorStrategy("invariant", tau=2.0)
    with pytest.raises(ia.AggregatorError, match="rule object .* and hyperparameters \\['alpha'\\]"):
        AggregatorStrategy(ia.make("trimmed_mean"), alpha=0.1)
    with pytest.raises(ia.AggregatorError, match="buffers = 'average'"):
        AggregatorStrategy("median", buffers="average")
    with pytest.raises(ia.AggregatorError, match="server_lr must be a positive"):
        AggregatorStrategy("median", server_lr=0)
    with pytest.raises(ia.AggregatorError, match="median takes no per-client weights"):
        AggregatorStrategy("median", weight_by_examples=True)
    s = AggregatorStrategy("invariant", tau=0.4, min_available_nodes=7, fraction_evaluate=0.0)
    assert (s.rule.tau, s.min_available_nodes, s.fraction_evaluate) == (0.4, 7, 0.0)


def test_the_strategy_samples_through_flower_and_remembers_only_the_open_round(task_identity):
    rng = np.random.default_rng(10)
    s = AggregatorStrategy("median", fraction_train=0.5, min_available_nodes=2)
    messages = broadcast(s, model_arrays(rng), server_round=1, nodes=range(100, 110))
    assert len(messages) == 5 and len({m.metadata.dst_node_id for m in messages}) == 5
    broadcast(s, model_arrays(rng), server_round=2)
    with pytest.raises(AggregationError, match="round 1"):
        s.aggregate_train(1, [reply(model_arrays(rng), 10, client_id=0)])


def test_sparsefed_keeps_its_accumulator_across_rounds_without_ids(task_identity):
    """A rule whose state is global needs no client ids: two rounds through the strategy are two
    calls of the rule (what round 1 held back is released in round 2)."""
    rng = np.random.default_rng(11)
    w = model_arrays(rng)
    strategy, direct = AggregatorStrategy("sparsefed", k=3, clip_norm=100.0), ia.make("sparsefed", k=3, clip_norm=100.0)
    w_direct = flat(w)
    for r in (1, 2):
        clients = [model_arrays(rng) for _ in range(4)]
        broadcast(strategy, w, server_round=r)
        new, _ = strategy.aggregate_train(r, [reply(c, 40 + i) for i, c in enumerate(clients)])
        g = np.stack([w_direct - flat(c) for c in clients]).astype(np.float32)
        w_direct = w_direct - direct(g).astype(np.float64)
        np.testing.assert_allclose(flat(as_dict(new)), w_direct, rtol=1e-5, atol=1e-6)
        w = as_dict(new)
    assert np.count_nonzero(strategy.rule.state_dict()["error"]) > 0
