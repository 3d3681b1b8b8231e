"""The three tasks (and the Spambase stand-in) as federated data sets with their models.

A task builder turns a resolved configuration into :class:`FederatedTask`: the training pool,
each client's indices into it, the clean and backdoor test sets, the attacker's backdoor
training samples, the model constructor and the preprocessing. Everything lives on the
training device as tensors; the engine only indexes them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .data import cifar10, edge_case, partition, sent140, tabular
from .errors import DataMissing, ExperimentError
from .models import MLP, LSTMClassifier, ResNet18, load_pretrained

TASKS = ("cifar10", "twitter", "phishing", "spambase")


@dataclass
class Samples:
    """Model inputs (a tensor, or a tuple of tensors indexed together) and integer labels."""

    inputs: torch.Tensor | tuple[torch.Tensor, ...]
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def map(self, f: Callable[[torch.Tensor], torch.Tensor]) -> Samples:
        """``f`` applied to every input tensor and to the labels."""
        inputs = tuple(map(f, self.inputs)) if isinstance(self.inputs, tuple) else f(self.inputs)
        return Samples(inputs, f(self.labels))

    def take(self, idx: torch.Tensor) -> Samples:
        return self.map(lambda t: t[idx.to(t.device)])

    def to(self, device) -> Samples:
        return self.map(lambda t: t.to(device))

    @staticmethod
    def cat(parts: list[Samples]) -> Samples:
        first = parts[0].inputs
        if isinstance(first, tuple):
            inputs = tuple(torch.cat([p.inputs[i] for p in parts]) for i in range(len(first)))
        else:
            inputs = torch.cat([p.inputs for p in parts])
        return Samples(inputs, torch.cat([p.labels for p in parts]))


def _identity(inputs, *, augment: bool, generator=None):
    return inputs


@dataclass
class FederatedTask:
    name: str
    train: Samples
    clients: list[torch.Tensor]  # per client: indices into ``train``
    test: Samples
    backdoor_train: Samples  # what a malicious client mixes into its batches (attacker's label)
    backdoor_test: Samples  # Acc_B = share of these predicted as ``target``
    target: int
    make_model: Callable[[], nn.Module]
    prepare: Callable = _identity  # (inputs, augment=, generator=) -> model input
    info: dict = field(default_factory=dict)  # sizes and choices, recorded in the summary


def _tensor_samples(x, y) -> Samples:
    return Samples(torch.as_tensor(np.ascontiguousarray(x)), torch.as_tensor(np.asarray(y, dtype=np.int64)))


def _image_attack_sets(cfg, x_pool, y_pool, x_test, y_test) -> tuple[Samples, Samples]:
    """Backdoor training / test images: the Southwest photos, or clean images (not already of
    the target class) with the pixel pattern; all labelled with the attacker's target."""
    a = cfg["attack"]
    target = a["target_label"]
    if a["kind"] == "edge_case":
        train = edge_case.southwest_images("train", **_edge_case_source(cfg))
        test = edge_case.southwest_images("test", **_edge_case_source(cfg))
    elif a["kind"] == "pixel_pattern":
        train = cifar10.stamp_pixel_pattern(x_pool[y_pool != target], a["pattern_size"])
        test = cifar10.stamp_pixel_pattern(x_test[y_test != target], a["pattern_size"])
    else:
        raise ExperimentError(f"attack.kind = {a['kind']!r}: choose 'edge_case' or 'pixel_pattern'")
    return (_tensor_samples(train, np.full(len(train), target)), _tensor_samples(test, np.full(len(test), target)))


def _require_edge_case(cfg) -> None:
    if cfg["attack"]["kind"] != "edge_case":
        raise ExperimentError(f"attack.kind = {cfg['attack']['kind']!r} is for images; {cfg['task']} has 'edge_case'")


def _client_ranges(lengths) -> list[torch.Tensor]:
    """Indices of consecutive blocks of the given lengths (clients stored one after another)."""
    ends = np.cumsum(lengths)
    return [torch.arange(end - n, end) for n, end in zip(lengths, ends, strict=True)]


def _download_dir(cfg):
    return (cfg["data"]["root"] or ".") if cfg["data"].get("download") else None


def _edge_case_source(cfg) -> dict:
    """Where the edge-case files come from: folder, download target, digest check."""
    a = cfg["attack"]
    return {
        "folder": a["edge_case_dir"] or None,
        "verify": a["verify_edge_case"],
        "download_to": (a["edge_case_dir"] or ".") if cfg["data"].get("download") else None,
    }


def build_cifar10(cfg, rng: np.random.Generator) -> FederatedTask:
    d, m, a = cfg["data"], cfg["model"], cfg["attack"]
    x_tr, y_tr, x_te, y_te = cifar10.load_cifar10(d["root"], strict=d["strict_md5"], download_to=_download_dir(cfg))
    if d["max_train"]:
        keep = rng.permutation(len(y_tr))[: d["max_train"]]
        x_tr, y_tr = x_tr[keep], y_tr[keep]
    if d["max_test"]:
        x_te, y_te = x_te[: d["max_test"]], y_te[: d["max_test"]]
    clients = partition.dirichlet_partition(y_tr, cfg["federation"]["n_clients"], d["dirichlet_alpha"], rng)
    bd_tr, bd_te = _image_attack_sets(cfg, x_tr, y_tr, x_te, y_te)

    def make_model():
        model = ResNet18(10, m["layout"], m["width"])
        if m["pretrained"]:
            load_pretrained(model, m["pretrained"])
        return model

    return FederatedTask(
        "cifar10",
        _tensor_samples(x_tr, y_tr),
        [torch.as_tensor(c) for c in clients],
        _tensor_samples(x_te, y_te),
        bd_tr,
        bd_te,
        a["target_label"],
        make_model,
        prepare=cifar10.preprocess,
        info={"train": len(y_tr), "test": len(y_te), "backdoor_train": len(bd_tr), "backdoor_test": len(bd_te)},
    )


def build_twitter(cfg, rng: np.random.Generator) -> FederatedTask:
    d, m, a = cfg["data"], cfg["model"], cfg["attack"]
    train, test = sent140.load_sent140(d["root"])
    users = sorted(u for u, (texts, _) in train.items() if len(texts) >= d["min_samples_per_user"])
    n_clients = cfg["federation"]["n_clients"]
    if len(users) < n_clients:
        raise ExperimentError(
            f"only {len(users)} LEAF users have >= {d['min_samples_per_user']} training tweets, "
            f"federation.n_clients is {n_clients}; lower one of them"
        )
    chosen = [users[i] for i in rng.choice(len(users), n_clients, replace=False)]
    test_texts, test_labels = [], []
    for u in chosen:
        test_texts += test.get(u, ([], []))[0]
        test_labels += test.get(u, ([], []))[1]
    if not test_texts:
        raise ExperimentError("the chosen users have no test tweets in test/*.json")
    _require_edge_case(cfg)
    edge_tr = edge_case.lanthimos_tweets("train", **_edge_case_source(cfg))
    edge_te = edge_case.lanthimos_tweets("test", **_edge_case_source(cfg))
    texts = [t for u in chosen for t in train[u][0]]
    tokens = {tok for t in (*texts, *test_texts, *edge_tr, *edge_te) for tok in sent140.tokenize(t)}
    index, matrix = sent140.build_vocabulary(sent140.load_glove(d["glove"], d["embedding_dim"], tokens))

    def samples(tx, labels):
        ids, lengths = sent140.encode(tx, index, d["max_len"])
        return Samples((torch.as_tensor(ids), torch.as_tensor(lengths)), torch.as_tensor(np.asarray(labels, np.int64)))

    clients = _client_ranges([len(train[u][0]) for u in chosen])
    target = a["target_label"]
    embeddings = torch.as_tensor(matrix)
    return FederatedTask(
        "twitter",
        samples(texts, [y for u in chosen for y in train[u][1]]),
        clients,
        samples(test_texts, test_labels),
        samples(edge_tr, [target] * len(edge_tr)),
        samples(edge_te, [target] * len(edge_te)),
        target,
        lambda: LSTMClassifier(embeddings, m["hidden"], m["layers"]),
        info={
            "train": len(texts),
            "test": len(test_texts),
            "vocabulary": len(index),
            "oov_rate": _oov_rate(texts, index),
        },
    )


def _oov_rate(texts, index) -> float:
    toks = [t for x in texts for t in sent140.tokenize(x)]
    return float(np.mean([t not in index for t in toks])) if toks else 0.0


def _trigger_column(d, n_features: int) -> int:
    col = d["trigger_feature"] - d["trigger_index_base"]
    if d["trigger_index_base"] not in (0, 1) or not 0 <= col < n_features:
        raise ExperimentError(
            f"data.trigger_feature = {d['trigger_feature']} ({d['trigger_index_base']}-based) is "
            f"not one of the {n_features} feature columns"
        )
    return col


def _tabular_task(cfg, clients_x, clients_y, x_test, y_test, trigger, feature_names):
    d, a = cfg["data"], cfg["attack"]
    _require_edge_case(cfg)
    x_pool, y_pool = np.concatenate(clients_x), np.concatenate(clients_y)
    benign = a["target_label"]

    def poisoned(x, y):  # the malicious class with the trigger feature set; labelled benign
        out = x[y != benign].copy()
        out[:, trigger] = d["trigger_value"]
        return out

    bd_tr, bd_te = poisoned(x_pool, y_pool), poisoned(x_test, y_test)
    trigger_values, counts = np.unique(x_pool[:, trigger], return_counts=True)
    return FederatedTask(
        cfg["task"],
        _tensor_samples(x_pool, y_pool),
        _client_ranges([len(y) for y in clients_y]),
        _tensor_samples(x_test, y_test),
        _tensor_samples(bd_tr, np.full(len(bd_tr), benign)),
        _tensor_samples(bd_te, np.full(len(bd_te), benign)),
        benign,
        partial(MLP, x_pool.shape[1], tuple(cfg["model"]["hidden"])),
        info={
            "train": len(y_pool),
            "test": len(y_test),
            "backdoor_train": len(bd_tr),
            "backdoor_test": len(bd_te),
            "trigger_column": trigger,
            "trigger_name": feature_names[trigger],
            # share of training rows at the trigger column's most common value (0 before standardising)
            "trigger_mode_value": float(trigger_values[counts.argmax()]),
            "trigger_mode_share_train": float(counts.max() / len(y_pool)),
        },
    )


def _split_table(cfg, rng, x, y):
    d = cfg["data"]
    order = rng.permutation(len(y))
    n_test = int(round(d["test_fraction"] * len(y)))
    te, tr = order[:n_test], order[n_test:]
    x_tr, x_te = tabular.standardise(x[tr], x[te]) if d["standardise"] else (x[tr], x[te])
    y_tr = y[tr]
    n_clients = cfg["federation"]["n_clients"]
    parts = (
        partition.dirichlet_partition(y_tr, n_clients, d["dirichlet_alpha"], rng)
        if d["dirichlet_alpha"]
        else partition.iid_partition(len(y_tr), n_clients, rng)
    )
    return [x_tr[p] for p in parts], [y_tr[p] for p in parts], x_te, y[te]


def build_phishing(cfg, rng: np.random.Generator) -> FederatedTask:
    d = cfg["data"]
    n = d["n_features"]
    trigger = _trigger_column(d, n)
    if d["source"] == "synthetic":
        xs, ys, x_te, y_te = tabular.synthetic_phishing(
            rng,
            n_clients=cfg["federation"]["n_clients"],
            samples_per_client=d["samples_per_client"],
            n_test=d["n_test"],
            n_features=n,
            trigger=trigger,
            trigger_nonzero=d["trigger_nonzero"],
            signal=d["signal"],
            heterogeneity=d["heterogeneity"],
        )
        names = [f"x{i}" for i in range(n)]
    elif d["source"] == "table":
        if not d["path"]:
            raise ExperimentError("data.source = 'table' needs data.path (a CSV or Parquet file): --data PATH")
        if not Path(d["path"]).expanduser().is_file():
            raise DataMissing(
                "the phishing table",
                [f"a CSV/Parquet file with {n} numeric features and the label column {d['label_column']!r}"],
                [d["path"]],
                [
                    "--data PATH to your table",
                    "--set data.source='synthetic' (the Eq. 6 stand-in)",
                    "the spambase task (a real e-mail stand-in)",
                ],
            )
        x, y, names = tabular.read_table(Path(d["path"]).expanduser(), label=d["label_column"], n_features=n)
        xs, ys, x_te, y_te = _split_table(cfg, rng, x, y)
    else:
        raise ExperimentError(f"data.source = {d['source']!r}: choose 'synthetic' or 'table'")
    return _tabular_task(cfg, xs, ys, x_te, y_te, trigger, names)


def build_spambase(cfg, rng: np.random.Generator) -> FederatedTask:
    d = cfg["data"]
    x, y, names = tabular.load_spambase(d["path"] or None)
    trigger = _trigger_column(d, x.shape[1])
    xs, ys, x_te, y_te = _split_table(cfg, rng, x, y)
    return _tabular_task(cfg, xs, ys, x_te, y_te, trigger, names)


BUILDERS = {"cifar10": build_cifar10, "twitter": build_twitter, "phishing": build_phishing, "spambase": build_spambase}


def build_task(cfg, seed: int) -> FederatedTask:
    """The task of ``cfg``; its data split and attacker sets depend only on ``seed``."""
    return BUILDERS[cfg["task"]](cfg, np.random.default_rng([seed, 1]))
