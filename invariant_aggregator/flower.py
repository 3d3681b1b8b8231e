"""Every rule of the core as a strategy for Flower's Message API (the optional extra ``flower``).

:class:`AggregatorStrategy` is Flower's own ``flwr.serverapp.strategy.FedAvg`` (its client
sampling, reply checks and metric averaging) with the model update replaced: it remembers the
arrays it broadcast in ``configure_train`` and, in ``aggregate_train``, turns every reply into the
client's pseudo-gradient over one flattened vector, applies a registered rule, and steps the
server's model::

    g_i = w_broadcast - w_i          (the replies' arrays, in the broadcast's key order)
    w_new = w_broadcast - server_lr * rule([g_1; ...; g_N])

With ``rule="fedavg"``, ``weight_by_examples=True`` and ``server_lr=1`` this is Flower's FedAvg.

Conventions (what a client sends back, what the server does with it):

* **Client ids.** A rule that keeps state per client (``rule.needs_client_ids``: FoolsGold's
  history) needs the same id for a client in every round. Each client puts a stable integer
  into its reply's MetricRecord under ``client_id_key`` (default ``"client-id"``; in Flower's
  simulation ``context.node_config["partition-id"]`` is one). Such a rule refuses a reply
  without it; other rules fall back to the reply's node id (stateful rules whose state is
  global, SparseFed's error accumulator and Weak-DP's noise generator, keep it across rounds
  all the same). The id is taken out before the train metrics are averaged.
* **Buffers** (arrays that are not trained by gradient, e.g. BatchNorm's ``running_mean``,
  ``running_var``, ``num_batches_tracked``) are listed in ``buffer_keys``
  (:func:`buffer_names` gives a torch model's) and never enter the rule. ``buffers``:
  ``"mean"`` (default: the clients' mean; integer counters: their maximum), ``"keep"`` (the
  server's broadcast values) or ``"exclude"`` (left out of the new arrays: from then on each
  client keeps its own, as in FedBN; load with ``strict=False``). An integer array that is not
  a declared buffer is refused (a rule aggregates real numbers only).
* **Errors.** A reply whose arrays differ from the broadcast (keys, shapes, NaN/Inf), a missing or
  repeated client id, and every error of the rule itself (e.g. too few clients for Krum) raise
  Flower's ``AggregationError``, naming the offending client (id and node) where there is one.
  Replies that carry an error are skipped, as FedAvg skips them.

Example (a ServerApp's main)::

    from invariant_aggregator.flower import AggregatorStrategy
    strategy = AggregatorStrategy("invariant", tau=0.6, alpha=0.1, server_lr=1.0, fraction_train=0.2)
    result = strategy.start(grid=grid, initial_arrays=ArrayRecord(model.state_dict()), num_rounds=50)

The core never imports this module; ``import invariant_aggregator`` works without Flower.
"""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Iterable

import numpy as np
import torch

from .errors import AggregatorError
from .rules import AggregationRule, make

try:
    from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
    from flwr.serverapp.exception import AggregationError
    from flwr.serverapp.strategy import FedAvg
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "invariant_aggregator.flower needs Flower's Message API (flwr >= 1.30): "
        "pip install 'invariant-aggregator[flower]'"
    ) from exc

__all__ = [
    "AggregatorStrategy",
    "AggregationError",
    "BUFFER_POLICIES",
    "buffer_names",
    "flatten_arrays",
    "unflatten_vector",
    "merge_buffers",
]

BUFFER_POLICIES = ("mean", "keep", "exclude")
FLOWER_OPTIONS = frozenset(inspect.signature(FedAvg.__init__).parameters) - {"self"}


# --------------------------------------------------------------------------- pure functions
def buffer_names(model: torch.nn.Module) -> list[str]:
    """The state-dict keys of ``model``'s buffers (BatchNorm statistics and counters), which a
    strategy must not treat as trained parameters.

    >>> buffer_names(torch.nn.BatchNorm1d(3))
    ['running_mean', 'running_var', 'num_batches_tracked']
    """
    return [name for name, _ in model.named_buffers()]


def vector_dtype(arrays: dict[str, np.ndarray], keys: Iterable[str]) -> np.dtype:
    """float64 if any of the arrays is float64, else float32 (the rules' two dtypes)."""
    return np.dtype(np.float64) if any(arrays[k].dtype == np.float64 for k in keys) else np.dtype(np.float32)


def flatten_arrays(arrays: dict[str, np.ndarray], keys: list[str], dtype=np.float32) -> np.ndarray:
    """The arrays named by ``keys``, in that order, as one flat vector of ``dtype``.

    >>> flatten_arrays({"b": np.array([3.0]), "a": np.ones((1, 2))}, ["a", "b"])
    array([1., 1., 3.], dtype=float32)
    """
    if not keys:
        return np.zeros(0, dtype=dtype)
    return np.concatenate([np.asarray(arrays[k], dtype=dtype).ravel() for k in keys])


def unflatten_vector(vector: np.ndarray, like: dict[str, np.ndarray], keys: list[str]) -> dict[str, np.ndarray]:
    """Cut ``vector`` into arrays of the shapes and dtypes of ``like[k]`` for ``k`` in ``keys``
    (the inverse of :func:`flatten_arrays`).

    >>> unflatten_vector(np.arange(3.0), {"a": np.ones((1, 2), np.float32), "b": np.ones(1)}, ["a", "b"])
    {'a': array([[0., 1.]], dtype=float32), 'b': array([2.])}
    """
    out, start = {}, 0
    for k in keys:
        ref = like[k]
        stop = start + ref.size
        out[k] = np.asarray(vector[start:stop], dtype=ref.dtype).reshape(ref.shape)
        start = stop
    if start != vector.size:
        raise AggregatorError(f"a vector of {vector.size} values does not fill arrays of {start} values")
    return out


def merge_buffers(
    policy: str, broadcast: dict[str, np.ndarray], clients: list[dict[str, np.ndarray]], keys: list[str]
) -> dict[str, np.ndarray]:
    """The server's new buffers under ``policy`` (see the module's docstring): ``"mean"`` averages
    floating buffers over the clients and takes the maximum of integer ones, ``"keep"`` returns
    the broadcast values, ``"exclude"`` returns none.

    >>> merge_buffers("mean", {"n": np.array(1)}, [{"n": np.array(3)}, {"n": np.array(5)}], ["n"])
    {'n': array(5)}
    """
    if policy == "exclude":
        return {}
    if policy == "keep":
        return {k: broadcast[k].copy() for k in keys}
    merged = {}
    for k in keys:
        stacked = np.stack([c[k] for c in clients])
        if np.issubdtype(stacked.dtype, np.floating):
            merged[k] = np.asarray(stacked.astype(np.float64).mean(axis=0), dtype=broadcast[k].dtype)
        else:
            merged[k] = np.asarray(stacked.max(axis=0), dtype=broadcast[k].dtype)
    return merged


def _as_numpy(record: ArrayRecord) -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in record.items()}


# --------------------------------------------------------------------------- the strategy
class AggregatorStrategy(FedAvg):
    """Flower's FedAvg with the model update of any rule of the core.

    Parameters
    ----------
    rule : str or AggregationRule
        A registered rule's name (its hyperparameters as keyword arguments, validated here) or a
        rule object (then no hyperparameters).
    server_lr : float
        The server step: ``w <- w - server_lr * aggregate`` (1.0: the aggregate of the clients'
        models for mean-like rules).
    buffers : {"mean", "keep", "exclude"}
        What happens to the arrays in ``buffer_keys`` (module docstring).
    buffer_keys : iterable of str
        The ArrayRecord keys that are buffers, not trained parameters (:func:`buffer_names`).
    client_id_key : str
        The reply MetricRecord's key that holds the client's stable integer id.
    weight_by_examples : bool
        Pass each reply's ``weighted_by_key`` value (``"num-examples"``) as the client's weight to
        rules that take weights (``fedavg``, ``rfa``, ``weak_dp``); others refuse it. Default
        False: every client counts once, as in the paper's runs.
    **options
        Flower's own FedAvg options (``fraction_train``, ``min_available_nodes``, ...) and the
        rule's hyperparameters, told apart by name.

    Example
        >>> s = AggregatorStrategy("trimmed_mean", alpha=0.1, fraction_train=0.5)
        >>> s.rule, s.fraction_train
        (TrimmedMean(alpha=0.1, trim='definition3'), 0.5)
    """

    def __init__(
        self,
        rule: str | AggregationRule = "invariant",
        *,
        server_lr: float = 1.0,
        buffers: str = "mean",
        buffer_keys: Iterable[str] = (),
        client_id_key: str = "client-id",
        weight_by_examples: bool = False,
        **options,
    ) -> None:
        flower = {k: v for k, v in options.items() if k in FLOWER_OPTIONS}
        rule_params = {k: v for k, v in options.items() if k not in FLOWER_OPTIONS}
        if isinstance(rule, AggregationRule):
            if rule_params:
                raise AggregatorError(
                    f"AggregatorStrategy: got a rule object ({rule!r}) and hyperparameters {sorted(rule_params)}; "
                    "set them when building the rule, or pass its name instead"
                )
            self.rule = rule
        elif isinstance(rule, str):
            self.rule = make(rule, **rule_params)
        else:
            raise AggregatorError(f"AggregatorStrategy: rule must be a rule name or object, got {rule!r}")
        if isinstance(server_lr, bool) or not isinstance(server_lr, (int, float)) or not server_lr > 0:
            raise AggregatorError(f"AggregatorStrategy: server_lr must be a positive number, got {server_lr!r}")
        if not math.isfinite(server_lr):
            raise AggregatorError(f"AggregatorStrategy: server_lr must be finite, got {server_lr!r}")
        if buffers not in BUFFER_POLICIES:
            raise AggregatorError(
                f"AggregatorStrategy: buffers = {buffers!r}; choose one of {', '.join(map(repr, BUFFER_POLICIES))}"
            )
        if isinstance(buffer_keys, str):
            raise AggregatorError(
                f"AggregatorStrategy: buffer_keys must be a list of keys, got the string {buffer_keys!r}"
            )
        if weight_by_examples and not self.rule.accepts_weights:
            raise AggregatorError(
                f"AggregatorStrategy: weight_by_examples=True, but {self.rule.name} takes no per-client weights"
            )
        super().__init__(**flower)
        self.server_lr = float(server_lr)
        self.buffers = buffers
        self.buffer_keys = frozenset(buffer_keys)
        self.client_id_key = client_id_key
        self.weight_by_examples = bool(weight_by_examples)
        self._broadcast: dict[int, dict[str, np.ndarray]] = {}

    def summary(self) -> None:
        super().summary()
        logging.getLogger("flwr").info(
            "\t└──> Aggregation: %r, server_lr %g, buffers %s", self.rule, self.server_lr, self.buffers
        )

    # ----------------------------------------------------------------------- Flower's hooks
    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid) -> Iterable[Message]:
        """Flower's sampling and messages; the broadcast arrays are remembered for this round."""
        broadcast = _as_numpy(arrays)
        self._check_broadcast(broadcast)
        self._broadcast = {server_round: {k: v.copy() for k, v in broadcast.items()}}  # only the open round
        return super().configure_train(server_round, arrays, config, grid)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """The rule's model update from the valid replies (None, None when there is none)."""
        replies = list(replies)
        # the client's own checks first: Flower's consistency check below would refuse a missing id
        # or array too, without naming the client
        clients = sorted((self._client(msg) for msg in replies if not msg.has_error()), key=lambda c: c["order"])
        self._check_ids(clients)
        broadcast = self._broadcast.pop(server_round, None) if clients else None
        if clients and broadcast is None:
            raise AggregationError(
                f"aggregate_train for round {server_round}: this strategy did not configure that round "
                "(configure_train remembers the arrays it broadcast); call configure_train first"
            )
        for client in clients:
            client["arrays"] = self._client_arrays(client, broadcast)
        valid, _ = self._check_and_log_replies(replies, is_train=True)
        if not valid:
            return None, None
        params = [k for k in broadcast if k not in self.buffer_keys]
        dtype = vector_dtype(broadcast, params)
        anchor = flatten_arrays(broadcast, params, dtype)
        updates = np.empty((len(clients), anchor.size), dtype=dtype)
        for row, client in enumerate(clients):
            np.subtract(anchor, flatten_arrays(client["arrays"], params, dtype), out=updates[row])
        ids = [c["id"] for c in clients]
        weights = [c["weight"] for c in clients] if self.weight_by_examples else None
        try:
            aggregate = self.rule(updates, weights=weights, client_ids=ids)
        except AggregatorError as exc:
            who = ", ".join(f"row {i}: {self._name(c)}" for i, c in enumerate(clients))
            raise AggregationError(f"round {server_round}: {exc} [{who}]") from None
        new = unflatten_vector(anchor - self.server_lr * np.asarray(aggregate, dtype=dtype), broadcast, params)
        buffer_keys = [k for k in broadcast if k in self.buffer_keys]
        new |= merge_buffers(self.buffers, broadcast, [c["arrays"] for c in clients], buffer_keys)
        ordered = {k: new[k] for k in broadcast if k in new}
        metrics = self.train_metrics_aggr_fn([self._metrics_without_id(msg) for msg in valid], self.weighted_by_key)
        return ArrayRecord({k: Array(np.asarray(v, order="C")) for k, v in ordered.items()}), metrics

    # ----------------------------------------------------------------------- translation
    def _check_broadcast(self, broadcast: dict[str, np.ndarray]) -> None:
        unknown = sorted(self.buffer_keys - set(broadcast))
        if unknown:
            raise AggregationError(f"buffer_keys {unknown} are not arrays of the model; its keys: {sorted(broadcast)}")
        for k, v in broadcast.items():
            if k in self.buffer_keys:
                continue
            if not np.issubdtype(v.dtype, np.floating):
                raise AggregationError(
                    f"array {k!r} has dtype {v.dtype}: a rule aggregates real numbers only; if it is a buffer "
                    "(BatchNorm's num_batches_tracked), list it in buffer_keys (buffer_names(model))"
                )
            if not np.isfinite(v).all():
                raise AggregationError(f"the server's own array {k!r} holds NaN or Inf; the model has diverged")
        if not any(k not in self.buffer_keys for k in broadcast):
            raise AggregationError("every array is a buffer: there is nothing for the rule to aggregate")

    def _client(self, msg: Message) -> dict:
        node = msg.metadata.src_node_id
        content = msg.content
        if len(content.metric_records) != 1 or len(content.array_records) != 1:
            raise AggregationError(
                f"the reply of node {node} holds {len(content.array_records)} ArrayRecord(s) and "
                f"{len(content.metric_records)} MetricRecord(s); a training reply holds one of each"
            )
        metrics = next(iter(content.metric_records.values()))
        cid = metrics.get(self.client_id_key)
        if cid is None:
            if self.rule.needs_client_ids:
                raise AggregationError(
                    f"the reply of node {node} has no {self.client_id_key!r} in its MetricRecord; "
                    f"{self.rule.name} keeps state per client and needs each client's stable integer id there "
                    f"(e.g. MetricRecord({{'{self.client_id_key}': context.node_config['partition-id'], ...}}))"
                )
            cid, sent = node, False
        else:
            if isinstance(cid, bool) or not isinstance(cid, (int, float)) or float(cid) != int(cid):
                raise AggregationError(f"node {node}: {self.client_id_key!r} = {cid!r}; a client id must be an integer")
            cid, sent = int(cid), True
        array_record = next(iter(content.array_records.values()))
        return {
            "id": cid,
            "node": node,
            "sent_id": sent,
            "order": (not sent, cid),
            "record": array_record,
            "weight": metrics.get(self.weighted_by_key),  # Flower's reply check requires it
        }

    def _name(self, client: dict) -> str:
        return f"client {client['id']} (node {client['node']})" if client["sent_id"] else f"node {client['node']}"

    def _check_ids(self, clients: list[dict]) -> None:
        seen: dict[int, dict] = {}
        for c in clients:
            if c["id"] in seen:
                raise AggregationError(
                    f"nodes {seen[c['id']]['node']} and {c['node']} both sent {self.client_id_key!r} = {c['id']}; "
                    "client ids must be distinct (a stateful rule would mix their histories)"
                )
            seen[c["id"]] = c

    def _client_arrays(self, client: dict, broadcast: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        arrays = _as_numpy(client["record"])
        who = self._name(client)
        missing = sorted(set(broadcast) - set(arrays))
        extra = sorted(set(arrays) - set(broadcast))
        if missing or extra:
            raise AggregationError(
                f"{who} sent arrays that are not the model's: missing {missing}, unexpected {extra}; "
                "a client must return every array it received, under the same keys"
            )
        for k, ref in broadcast.items():
            v = arrays[k]
            if v.shape != ref.shape:
                raise AggregationError(f"{who}: array {k!r} has shape {v.shape}, the model's is {ref.shape}")
            if np.issubdtype(v.dtype, np.floating):
                bad = int(np.count_nonzero(~np.isfinite(v)))
                if bad:
                    raise AggregationError(
                        f"{who}: array {k!r} has {bad} NaN/Inf value(s); its training diverged or the reply is "
                        "corrupt (drop that client, or lower its learning rate)"
                    )
            elif k not in self.buffer_keys or not np.issubdtype(v.dtype, np.integer):
                raise AggregationError(f"{who}: array {k!r} has dtype {v.dtype}, the model's is {ref.dtype}")
        return arrays

    def _metrics_without_id(self, msg: Message) -> RecordDict:
        records = {
            key: MetricRecord({k: v for k, v in rec.items() if k != self.client_id_key})
            for key, rec in msg.content.metric_records.items()
        }
        return RecordDict(records)
